//! The boot files a partition image's distribution puts on its ESP, found
//! in the image's root filesystem and nothing run from it: where
//! ironic-python-agent would chroot into the image and run grub-install
//! (disabled on stock Ironic 39), rivet copies the distribution's signed
//! shim and grub as its packages ship them.
//!
//! Two layouts, tried in order:
//! - RHEL, Fedora, Rocky, SUSE: shim and grub are installed into
//!   `/boot/efi/EFI/<vendor>/` of the root filesystem itself (with
//!   `BOOTX64.CSV` and a stub `grub.cfg`): that tree is copied as it is.
//! - Debian, Ubuntu: the signed binaries in `/usr/lib/shim/` and
//!   `/usr/lib/grub/x86_64-efi-signed/` become `EFI/<ID>/shimx64.efi`,
//!   `grubx64.efi` (+ `mmx64.efi`, `BOOTX64.CSV`) with the stub `grub.cfg`
//!   grub-install writes, `<ID>` from `/etc/os-release`.
//!
//! Either way the removable path `EFI/BOOT/BOOTX64.EFI` (shim, with grub
//! and MokManager beside it) is laid out too, unless the tree has its own,
//! so the disk boots even where no firmware entry is written.

use crate::fs::{FsError, Kind, RootFs};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// One file for the ESP: its path there (`EFI/debian/shimx64.efi`), where
/// it came from (a path in the image, or "generated"), its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspFile {
    pub path: String,
    pub from: String,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootChain {
    /// The directory under `EFI/` (`debian`, `rocky`).
    pub vendor: String,
    /// Which layout it was found in, for the log.
    pub layout: &'static str,
    pub files: Vec<EspFile>,
}

/// Bounds on what is copied: a shim or grub binary is 1–5 MiB.
const MAX_FILE: u64 = 32 << 20;
const MAX_TOTAL: u64 = 128 << 20;
const MAX_FILES: usize = 256;

const DEBIAN_SHIM: &str = "/usr/lib/shim/shimx64.efi.signed";
const DEBIAN_MM: &str = "/usr/lib/shim/mmx64.efi.signed";
const DEBIAN_CSV: &str = "/usr/lib/shim/BOOTX64.CSV";
const DEBIAN_GRUB: &str = "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed";
const DEBIAN_GRUB_CFG: &str = "/boot/grub/grub.cfg";
const RHEL_ESP: &str = "/boot/efi/EFI";

/// Why no boot chain could be taken from the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Neither layout is there: what was looked for.
    NotFound(String),
    /// A layout is there but broken: what is wrong.
    Invalid(String),
    Fs(FsError),
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::NotFound(m) | Error::Invalid(m) => f.write_str(m),
            Error::Fs(e) => write!(f, "{e}"),
        }
    }
}

impl From<FsError> for Error {
    fn from(e: FsError) -> Error {
        Error::Fs(e)
    }
}

/// The boot chain of the root filesystem `fs` whose UUID is `root_uuid`.
pub fn find(fs: &mut dyn RootFs, root_uuid: &str) -> Result<BootChain, Error> {
    if let Some(chain) = from_installed_esp(fs)? {
        return Ok(chain);
    }
    if let Some(chain) = from_debian_packages(fs, root_uuid)? {
        return Ok(chain);
    }
    Err(Error::NotFound(format!(
        "no UEFI boot loader in the image's {} root filesystem: looked for shim or grub in \
         {RHEL_ESP}/<vendor>/ (RHEL, Fedora, SUSE) and for {DEBIAN_SHIM} with {DEBIAN_GRUB} \
         (Debian, Ubuntu: packages shim-signed and grub-efi-amd64-signed)",
        fs.kind_name()
    )))
}

struct Collect<'a> {
    fs: &'a mut dyn RootFs,
    files: Vec<EspFile>,
    total: u64,
}

impl Collect<'_> {
    fn add(&mut self, path: String, from: &str) -> Result<(), Error> {
        let data = self.fs.read(from, MAX_FILE)?;
        self.total += data.len() as u64;
        if self.files.len() >= MAX_FILES || self.total > MAX_TOTAL {
            return Err(Error::Invalid(format!(
                "more than {MAX_FILES} files or {} MiB to copy to the ESP",
                MAX_TOTAL >> 20
            )));
        }
        self.files.push(EspFile {
            path,
            from: from.to_string(),
            data,
        });
        Ok(())
    }

    /// Every regular file below `dir` (symlinks to files included) as
    /// `esp_dir/...`, depth-first in directory order.
    fn tree(&mut self, dir: &str, esp_dir: &str, depth: usize) -> Result<(), Error> {
        if depth > 8 {
            return Err(Error::Invalid(format!("{dir}: nested too deep for an ESP")));
        }
        for (name, kind) in self.fs.list(dir)? {
            let from = format!("{dir}/{name}");
            let to = format!("{esp_dir}/{name}");
            let kind = match kind {
                Kind::Symlink => self.fs.kind(&from)?.unwrap_or(Kind::Other),
                k => k,
            };
            match kind {
                Kind::File => self.add(to, &from)?,
                Kind::Dir => self.tree(&from, &to, depth + 1)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn has(&self, esp_path: &str) -> bool {
        self.files
            .iter()
            .any(|f| f.path.eq_ignore_ascii_case(esp_path))
    }
}

fn find_ci(entries: &[(String, Kind)], name: &str) -> Option<String> {
    entries
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(n, _)| n.clone())
}

/// RHEL-style: the ESP's tree is already in the image under /boot/efi.
fn from_installed_esp(fs: &mut dyn RootFs) -> Result<Option<BootChain>, Error> {
    if fs.kind(RHEL_ESP)? != Some(Kind::Dir) {
        return Ok(None);
    }
    // The vendor directory: the one that has shim or grub.
    let mut vendor = None;
    for (name, _) in fs.list(RHEL_ESP)? {
        if name.eq_ignore_ascii_case("BOOT")
            || fs.kind(&format!("{RHEL_ESP}/{name}"))? != Some(Kind::Dir)
        {
            continue;
        }
        let entries = fs.list(&format!("{RHEL_ESP}/{name}"))?;
        if find_ci(&entries, "shimx64.efi").is_some() || find_ci(&entries, "grubx64.efi").is_some()
        {
            vendor = Some((name, entries));
            break;
        }
    }
    let Some((vendor, entries)) = vendor else {
        return Ok(None);
    };
    let mut c = Collect {
        fs,
        files: Vec::new(),
        total: 0,
    };
    c.tree(RHEL_ESP, "EFI", 0)?;
    if !c.has("EFI/BOOT/BOOTX64.EFI") {
        let dir = format!("{RHEL_ESP}/{vendor}");
        let shim = find_ci(&entries, "shimx64.efi");
        let grub = find_ci(&entries, "grubx64.efi");
        let first = shim
            .as_ref()
            .or(grub.as_ref())
            .expect("one of them was found");
        c.add("EFI/BOOT/BOOTX64.EFI".into(), &format!("{dir}/{first}"))?;
        if let (Some(_), Some(grub)) = (&shim, &grub) {
            c.add("EFI/BOOT/grubx64.efi".into(), &format!("{dir}/{grub}"))?;
        }
        if let Some(mm) = find_ci(&entries, "mmx64.efi") {
            c.add("EFI/BOOT/mmx64.efi".into(), &format!("{dir}/{mm}"))?;
        }
        // A grub started from EFI/BOOT may look for its config beside it.
        if let Some(cfg) = find_ci(&entries, "grub.cfg") {
            c.add("EFI/BOOT/grub.cfg".into(), &format!("{dir}/{cfg}"))?;
        }
    }
    Ok(Some(BootChain {
        vendor,
        layout: "installed under /boot/efi in the image",
        files: c.files,
    }))
}

/// `ID=` of an os-release file, if it is a usable directory name.
fn os_release_id(text: &str) -> Option<String> {
    let id = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("ID="))?
        .trim()
        .trim_matches(|c| c == '"' || c == '\'');
    let ok = !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    ok.then(|| id.to_string())
}

/// The config grub-install puts beside grub on the ESP: find the root
/// filesystem by UUID and hand over to its /boot/grub/grub.cfg.
pub fn grub_stub(root_uuid: &str) -> String {
    format!(
        "search.fs_uuid {root_uuid} root\nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n"
    )
}

fn from_debian_packages(fs: &mut dyn RootFs, root_uuid: &str) -> Result<Option<BootChain>, Error> {
    if fs.kind(DEBIAN_SHIM)? != Some(Kind::File) || fs.kind(DEBIAN_GRUB)? != Some(Kind::File) {
        return Ok(None);
    }
    let release = match fs.kind("/etc/os-release")? {
        Some(_) => fs.read("/etc/os-release", 64 << 10)?,
        None => fs.read("/usr/lib/os-release", 64 << 10)?,
    };
    let vendor = os_release_id(&String::from_utf8_lossy(&release)).ok_or_else(|| {
        Error::Invalid("the image's os-release has no usable ID= for the ESP directory".into())
    })?;
    if fs.kind(DEBIAN_GRUB_CFG)? != Some(Kind::File) {
        return Err(Error::Invalid(format!(
            "the image has shim and grub but no {DEBIAN_GRUB_CFG}: grub would find no menu \
             (run update-grub when the image is built)"
        )));
    }
    let mut c = Collect {
        fs,
        files: Vec::new(),
        total: 0,
    };
    let has_mm = c.fs.kind(DEBIAN_MM)? == Some(Kind::File);
    for dir in [format!("EFI/{vendor}"), "EFI/BOOT".to_string()] {
        let shim_name = if dir == "EFI/BOOT" {
            "BOOTX64.EFI"
        } else {
            "shimx64.efi"
        };
        c.add(format!("{dir}/{shim_name}"), DEBIAN_SHIM)?;
        c.add(format!("{dir}/grubx64.efi"), DEBIAN_GRUB)?;
        if has_mm {
            c.add(format!("{dir}/mmx64.efi"), DEBIAN_MM)?;
        }
        c.files.push(EspFile {
            path: format!("{dir}/grub.cfg"),
            from: "generated".into(),
            data: grub_stub(root_uuid).into_bytes(),
        });
    }
    if c.fs.kind(DEBIAN_CSV)? == Some(Kind::File) {
        c.add(format!("EFI/{vendor}/BOOTX64.CSV"), DEBIAN_CSV)?;
    }
    Ok(Some(BootChain {
        vendor,
        layout: "Debian's signed shim and grub packages",
        files: c.files,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::testing::MemFs;

    const UUID: &str = "5e1f2d3c-4b5a-4978-8695-a4b3c2d1e0f9";

    fn debian() -> MemFs {
        let mut fs = MemFs::default();
        fs.file(
            "/etc/os-release",
            b"PRETTY_NAME=\"Debian GNU/Linux 12\"\nID=debian\n",
        );
        fs.file(DEBIAN_SHIM, b"shim");
        fs.file(DEBIAN_MM, b"mm");
        fs.file(DEBIAN_GRUB, b"grub");
        fs.file(DEBIAN_CSV, b"csv");
        fs.file(DEBIAN_GRUB_CFG, b"menuentry");
        fs
    }

    fn paths(c: &BootChain) -> Vec<(&str, &str)> {
        c.files
            .iter()
            .map(|f| (f.path.as_str(), f.from.as_str()))
            .collect()
    }

    #[test]
    fn debian_packages_become_the_vendor_directory_and_the_removable_path() {
        let chain = find(&mut debian(), UUID).unwrap();
        assert_eq!(chain.vendor, "debian");
        assert_eq!(
            paths(&chain),
            [
                ("EFI/debian/shimx64.efi", DEBIAN_SHIM),
                ("EFI/debian/grubx64.efi", DEBIAN_GRUB),
                ("EFI/debian/mmx64.efi", DEBIAN_MM),
                ("EFI/debian/grub.cfg", "generated"),
                ("EFI/BOOT/BOOTX64.EFI", DEBIAN_SHIM),
                ("EFI/BOOT/grubx64.efi", DEBIAN_GRUB),
                ("EFI/BOOT/mmx64.efi", DEBIAN_MM),
                ("EFI/BOOT/grub.cfg", "generated"),
                ("EFI/debian/BOOTX64.CSV", DEBIAN_CSV),
            ]
        );
        assert_eq!(chain.files[0].data, b"shim");
        assert_eq!(
            core::str::from_utf8(&chain.files[3].data).unwrap(),
            "search.fs_uuid 5e1f2d3c-4b5a-4978-8695-a4b3c2d1e0f9 root\n\
             set prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n"
        );
    }

    #[test]
    fn ubuntu_names_its_directory_and_symlinked_binaries_are_followed() {
        let mut fs = debian();
        fs.file(
            "/etc/os-release",
            b"NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\n",
        );
        fs.file("/usr/lib/shim/shimx64.efi.signed.latest", b"shim2");
        fs.link(DEBIAN_SHIM, "shimx64.efi.signed.latest");
        let chain = find(&mut fs, UUID).unwrap();
        assert_eq!(chain.vendor, "ubuntu");
        assert_eq!(chain.files[0].path, "EFI/ubuntu/shimx64.efi");
        assert_eq!(chain.files[0].data, b"shim2");
    }

    #[test]
    fn an_installed_esp_tree_is_copied_as_it_is_and_gains_a_removable_path() {
        let mut fs = MemFs::default();
        fs.file("/etc/os-release", b"ID=\"rocky\"\n");
        fs.file("/boot/efi/EFI/rocky/shimx64.efi", b"shim");
        fs.file("/boot/efi/EFI/rocky/grubx64.efi", b"grub");
        fs.file("/boot/efi/EFI/rocky/BOOTX64.CSV", b"csv");
        fs.file("/boot/efi/EFI/rocky/grub.cfg", b"stub");
        fs.file("/boot/efi/EFI/rocky/fonts/unicode.pf2", b"font");
        // Debian's packages too: the installed tree wins.
        for (p, d) in [(DEBIAN_SHIM, b"x"), (DEBIAN_GRUB, b"y")] {
            fs.file(p, d);
        }
        let chain = find(&mut fs, UUID).unwrap();
        assert_eq!(chain.vendor, "rocky");
        assert_eq!(
            paths(&chain),
            [
                ("EFI/rocky/shimx64.efi", "/boot/efi/EFI/rocky/shimx64.efi"),
                ("EFI/rocky/grubx64.efi", "/boot/efi/EFI/rocky/grubx64.efi"),
                ("EFI/rocky/BOOTX64.CSV", "/boot/efi/EFI/rocky/BOOTX64.CSV"),
                ("EFI/rocky/grub.cfg", "/boot/efi/EFI/rocky/grub.cfg"),
                (
                    "EFI/rocky/fonts/unicode.pf2",
                    "/boot/efi/EFI/rocky/fonts/unicode.pf2"
                ),
                ("EFI/BOOT/BOOTX64.EFI", "/boot/efi/EFI/rocky/shimx64.efi"),
                ("EFI/BOOT/grubx64.efi", "/boot/efi/EFI/rocky/grubx64.efi"),
                ("EFI/BOOT/grub.cfg", "/boot/efi/EFI/rocky/grub.cfg"),
            ]
        );
        // Its own removable path stays as the packages laid it out.
        fs.file("/boot/efi/EFI/BOOT/BOOTX64.EFI", b"own");
        fs.file("/boot/efi/EFI/BOOT/fbx64.efi", b"fb");
        let chain = find(&mut fs, UUID).unwrap();
        let boot: Vec<_> = paths(&chain)
            .into_iter()
            .filter(|(p, _)| p.starts_with("EFI/BOOT"))
            .collect();
        assert_eq!(
            boot,
            [
                ("EFI/BOOT/BOOTX64.EFI", "/boot/efi/EFI/BOOT/BOOTX64.EFI"),
                ("EFI/BOOT/fbx64.efi", "/boot/efi/EFI/BOOT/fbx64.efi")
            ]
        );
    }

    #[test]
    fn nothing_found_says_what_was_looked_for() {
        let mut fs = MemFs::default();
        fs.file("/etc/os-release", b"ID=alpine\n");
        fs.file("/boot/efi/EFI/alpine/readme.txt", b"no loader");
        let e = find(&mut fs, UUID).unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, Error::NotFound(_)), "{m}");
        assert!(
            m.contains("/boot/efi/EFI/<vendor>/")
                && m.contains(DEBIAN_SHIM)
                && m.contains(DEBIAN_GRUB),
            "{m}"
        );
    }

    #[test]
    fn broken_layouts_are_named() {
        let mut fs = debian();
        fs.remove(DEBIAN_GRUB_CFG);
        let m = find(&mut fs, UUID).unwrap_err().to_string();
        assert!(m.contains("/boot/grub/grub.cfg"), "{m}");
        let mut fs = debian();
        fs.file("/etc/os-release", b"ID=\"../../evil\"\n");
        let m = find(&mut fs, UUID).unwrap_err().to_string();
        assert!(m.contains("ID="), "{m}");
        let mut fs = debian();
        fs.file(DEBIAN_GRUB, &alloc::vec![0u8; (MAX_FILE + 1) as usize]);
        assert!(matches!(
            find(&mut fs, UUID),
            Err(Error::Fs(FsError::TooLarge { .. }))
        ));
    }
}
