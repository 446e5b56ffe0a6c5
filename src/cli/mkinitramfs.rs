//! `rivet mkinitramfs`: pick modules for a hardware class from an extracted
//! kernel package, close over their dependencies, and write the initramfs.

use super::args::Args;
use rivet::initramfs::{self, Carried, Extra};
use rivet::kmod::{self, normalize};
use rivet::linux::inventory::human_bytes;
use rivet::linux::kernel_tree::KernelTree;
use rivet::linux::tls::{anchors_from_pem, CA_ANCHORS, CA_BUNDLE};
use std::collections::BTreeMap;

const HELP: &str = "\
rivet mkinitramfs - build rivet's initramfs

USAGE:
    rivet mkinitramfs --kernel DIR --out FILE [OPTIONS]

OPTIONS:
    --kernel DIR      Root of an extracted kernel package (holds lib/modules/<version>)
    --out FILE        Where to write the compressed cpio archive
    --ipa-tarball NAME.tar.gz
                      Also (or instead of --out) write the tarball Metal3's
                      ipa-downloader fetches from IPA_BASEURI: NAME.kernel (the
                      tree's boot/vmlinuz-VERSION) and NAME.initramfs
    --kver VERSION    Kernel version under DIR/lib/modules (needed if there are several)
    --class NAME      Hardware class: virtio, default or full; several as a,b or
                      repeated [default: default]
    --modules a,b,c   More modules to carry (repeatable): names, name globs
                      ('hv_*') or paths below the tree's kernel/ directory, each
                      taking everything below it ('drivers/net/ethernet/broadcom/*')
    --for-host        Carry the modules this machine's hardware uses: the drivers
                      bound to its PCI, USB, SCSI, virtio, VMBus and Xen devices,
                      and the modules whose aliases match those no driver holds
                      (with --class, both) [default class: none]
    --init BIN        Binary to carry as /init [default: this rivet]
    --firmware DIR    Where the carried modules' firmware files are looked for
                      (repeatable, in order) [default: DIR/lib/firmware of --kernel,
                      then this host's /lib/firmware]; a file not found is named
                      in a warning and the build goes on
    --ca-bundle FILE  CA certificates (PEM) https servers are checked against, carried
                      as trust anchors in /etc/ssl/certs/rivet-trust-anchors; `none`
                      carries none [default: this host's /etc/ssl/certs/ca-certificates.crt]
    --compress KIND   xz (smallest; runs this host's `xz`) or gzip [default: xz]
    --module-compression auto|zstd|none
                      Carry each module zstd-compressed (runs this host's `zstd`;
                      PID 1 inflates a module when it loads it), so a large class
                      takes a quarter of the RAM at boot; auto does so when the
                      plain modules exceed 32 MiB [default: auto]
";

/// The classes in initramfs/classes, compiled in.
const CLASSES: &[(&str, &str)] = &[
    (
        "virtio",
        include_str!("../../initramfs/classes/virtio.modules"),
    ),
    (
        "default",
        include_str!("../../initramfs/classes/default.modules"),
    ),
    ("full", include_str!("../../initramfs/classes/full.modules")),
];

/// What a class line or `--modules` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// One module by name: an error if the kernel has none.
    Module(String),
    /// A rule (a path below `kernel/` or a name glob, see
    /// [`KernelTree::select`]): whatever the kernel has that matches.
    Rule(String),
}

impl Wanted {
    fn of(word: &str) -> Wanted {
        if word.contains(['/', '*', '?', '[']) {
            Wanted::Rule(word.to_string())
        } else {
            Wanted::Module(normalize(word))
        }
    }
}

/// What a class asks for, following `include` lines.
pub fn class_modules(name: &str) -> Result<Vec<Wanted>, String> {
    fn walk(name: &str, depth: usize, out: &mut Vec<Wanted>) -> Result<(), String> {
        let Some((_, text)) = CLASSES.iter().find(|(n, _)| *n == name) else {
            let known: Vec<&str> = CLASSES.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown class '{name}' (known: {})",
                known.join(", ")
            ));
        };
        if depth > 8 {
            return Err(format!("class '{name}': include nesting too deep"));
        }
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            match line.split_whitespace().collect::<Vec<_>>()[..] {
                [] => {}
                ["include", other] => walk(other, depth + 1, out)?,
                [word] => out.push(Wanted::of(word)),
                _ => return Err(format!("class '{name}': cannot read line '{line}'")),
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(name, 0, &mut out)?;
    Ok(out)
}

/// The module names `wanted` comes to in `tree`, each once, in the order
/// first asked for. A rule from `--modules` (`strict`) that matches
/// nothing is an error, a typo; one from a class is a warning, as a
/// kernel may be built without a driver.
fn select(tree: &KernelTree, wanted: &[(Wanted, bool)]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for (w, strict) in wanted {
        let names = match w {
            Wanted::Module(name) => vec![name.clone()],
            Wanted::Rule(rule) => {
                let names = tree.select(rule);
                if names.is_empty() {
                    let what = format!("'{rule}' matches no module under {}", tree.root.display());
                    if *strict {
                        return Err(format!("--modules {what}"));
                    }
                    eprintln!("warning: class rule {what}");
                }
                names
            }
        };
        for name in names {
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    Ok(out)
}

pub fn run(argv: Vec<String>) -> Result<(), String> {
    let args = Args::parse(
        argv,
        &[
            "kernel",
            "out",
            "kver",
            "class",
            "modules",
            "init",
            "ca-bundle",
            "compress",
            "firmware",
            "module-compression",
            "ipa-tarball",
        ],
        &["for-host"],
    )?;
    if args.help {
        print!("{HELP}");
        return Ok(());
    }
    let kernel_dir = args.required("kernel")?;
    let ipa = args.get("ipa-tarball").map(ipa_name).transpose()?;
    let out = match (args.get("out"), &ipa) {
        (Some(out), _) => Some(out),
        (None, Some(_)) => None,
        (None, None) => return Err("--out is required (or --ipa-tarball)".into()),
    };
    let compression = Compression::parse(args.get("compress"))?;
    let module_compression = ModuleCompression::parse(args.get("module-compression"))?;
    let bundle = ca_bundle(args.get("ca-bundle"))?;
    let tree = KernelTree::open(kernel_dir.as_ref(), args.get("kver"))?;
    let vmlinuz = std::path::Path::new(kernel_dir).join(format!("boot/vmlinuz-{}", tree.version));
    if ipa.is_some() && !vmlinuz.is_file() {
        return Err(format!(
            "--ipa-tarball needs the kernel image: no {}",
            vmlinuz.display()
        ));
    }
    let mut classes: Vec<&str> = args
        .all("class")
        .iter()
        .flat_map(|c| c.split(','))
        .filter(|c| !c.is_empty())
        .collect();
    let for_host = !args.all("for-host").is_empty();
    if classes.is_empty() && !for_host {
        classes.push("default");
    }
    let class = match for_host {
        true => [&classes[..], &["this host"]].concat().join(","),
        false => classes.join(","),
    };

    let mut wanted: Vec<(Wanted, bool)> = Vec::new();
    for c in &classes {
        wanted.extend(class_modules(c)?.into_iter().map(|w| (w, false)));
    }
    if for_host {
        wanted.extend(this_hosts_modules(&tree, std::path::Path::new("/sys"))?);
    }
    for list in args.all("modules") {
        wanted.extend(
            list.split(',')
                .filter(|m| !m.is_empty())
                .map(|m| (Wanted::of(m), true)),
        );
    }
    let wanted = select(&tree, &wanted)?;
    let (builtin, roots): (Vec<String>, Vec<String>) =
        wanted.into_iter().partition(|m| tree.is_builtin(m));

    // Read each module once; the resolver asks for dependencies by name.
    let mut read: BTreeMap<String, (rivet::wire::modinfo::ModInfo, Vec<u8>)> = BTreeMap::new();
    let mut read_error: Option<String> = None;
    let root_refs: Vec<&str> = roots.iter().map(String::as_str).collect();
    let order = kmod::resolve(&root_refs, |name| {
        if !read.contains_key(name) {
            match tree.read(name) {
                Ok(found) => {
                    read.insert(name.to_string(), found);
                }
                Err(e) => {
                    read_error.get_or_insert(e);
                    return None;
                }
            }
        }
        Some(read[name].0.depends.iter().map(|d| normalize(d)).collect())
    });
    if let Some(e) = read_error {
        return Err(e);
    }
    let order = order.map_err(|e| e.to_string())?;

    let init = match args.get("init") {
        Some(path) => std::fs::read(path).map_err(|e| format!("--init {path}: {e}"))?,
        None => {
            let exe = std::env::current_exe()
                .map_err(|e| format!("cannot find rivet's own binary: {e}"))?;
            std::fs::read(&exe).map_err(|e| format!("{}: {e}", exe.display()))?
        }
    };
    let plain_total: usize = order.iter().map(|n| read[n].1.len()).sum();
    let zstd = module_compression.zstd_for(plain_total);
    let packed_modules = match zstd {
        true => zstd_each(&order, |name| &read[name].1)?,
        false => BTreeMap::new(),
    };
    let carried: Vec<Carried> = order
        .iter()
        .map(|name| Carried {
            name: name.clone(),
            info: read[name].0.clone(),
            bytes: packed_modules.get(name).unwrap_or(&read[name].1),
            zstd,
        })
        .collect();
    let firmware_dirs: Vec<std::path::PathBuf> = match args.all("firmware") {
        dirs if dirs.is_empty() => vec![
            std::path::Path::new(kernel_dir).join("lib/firmware"),
            "/lib/firmware".into(),
        ],
        dirs => dirs.iter().map(Into::into).collect(),
    };
    let config = std::fs::read_to_string(
        std::path::Path::new(kernel_dir).join(format!("boot/config-{}", tree.version)),
    )
    .ok();
    let (firmware, missing) = firmware_of(
        &carried,
        &firmware_dirs,
        &firmware_suffixes(config.as_deref()),
    );
    let mut extra: Vec<Extra> = bundle
        .iter()
        .map(|b| Extra {
            path: CA_ANCHORS.trim_start_matches('/').into(),
            mode: 0o644,
            bytes: &b.anchors,
        })
        .collect();
    extra.extend(firmware.iter().map(|(path, bytes)| Extra {
        path: path.clone(),
        mode: 0o644,
        bytes,
    }));
    let (init_part, rest) =
        initramfs::archive_parts(&init, &carried, &extra).map_err(|e| e.to_string())?;
    // Two compressed archives, concatenated: the kernel unpacks one after
    // the other, and /init's code compresses better with xz's x86 filter.
    let mut packed = compression.compress(&init_part, true)?;
    packed.extend(compression.compress(&rest, false)?);
    let archive_len = init_part.len() + rest.len();
    if let Some(out) = out {
        std::fs::write(out, &packed).map_err(|e| format!("{out}: {e}"))?;
    }
    if let Some((path, name)) = &ipa {
        let kernel = std::fs::read(&vmlinuz).map_err(|e| format!("{}: {e}", vmlinuz.display()))?;
        let mut tar = rivet::wire::tar::Tar::new();
        for (file, bytes) in [("kernel", &kernel), ("initramfs", &packed)] {
            tar.file(&format!("{name}.{file}"), 0o644, 0, bytes)
                .map_err(|_| format!("--ipa-tarball {path}: NAME too long for a tar header"))?;
        }
        // Both parts are compressed already: gzip only wraps them, as
        // the downloader's `tar -xaf` expects of a .tar.gz.
        let tarball = rivet::wire::gzip::compress(&tar.finish(), 1);
        std::fs::write(path, &tarball).map_err(|e| format!("{path}: {e}"))?;
        eprintln!(
            "{path}: {name}.kernel ({}) and {name}.initramfs, {} bytes, for Metal3's ipa-downloader",
            human_bytes(kernel.len() as u64),
            tarball.len()
        );
    }
    let out = out.unwrap_or_else(|| ipa.as_ref().map_or("", |(path, _)| path));

    eprintln!(
        "kernel {} ({}), class {class}",
        tree.version,
        tree.root.display()
    );
    eprintln!("  /init  {:>10}", human_bytes(init.len() as u64));
    let modules_total: usize = carried.iter().map(|c| c.bytes.len()).sum();
    // The largest first, picked rather than sorted: a sort's code costs
    // /init kilobytes.
    let mut left: Vec<&Carried> = carried.iter().collect();
    while let Some((i, c)) = left.iter().enumerate().max_by_key(|(_, c)| c.bytes.len()) {
        if carried.len() - left.len() == SUMMARY_MODULES {
            eprintln!("  … and {} smaller modules", left.len());
            break;
        }
        eprintln!(
            "  {:<30} {:>10}  ({} aliases)",
            c.file(),
            human_bytes(c.bytes.len() as u64),
            c.info.aliases.len()
        );
        left.swap_remove(i);
    }
    if !builtin.is_empty() {
        eprintln!(
            "  built into the kernel, not carried: {}",
            builtin.join(", ")
        );
    }
    for (path, bytes) in &firmware {
        eprintln!("  {path:<40} {:>10}", human_bytes(bytes.len() as u64));
    }
    let searched: Vec<String> = firmware_dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    // One line a module: the full class names some 150 files no host has.
    let mut missing_by_module: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (module, name) in &missing {
        missing_by_module.entry(module).or_default().push(name);
    }
    for (module, names) in missing_by_module {
        eprintln!(
            "warning: module {module} may ask for firmware {}: not in {} (carried without \
             it; the driver may fail or run degraded on hardware that needs it)",
            names.join(", "),
            searched.join(" or ")
        );
    }
    match &bundle {
        Some(b) => eprintln!(
            "  CA bundle {}: {} certificates, {} → {} trust anchors, {}{}",
            b.path,
            b.certificates,
            human_bytes(b.pem_len as u64),
            b.kept,
            human_bytes(b.anchors.len() as u64),
            if b.certificates > b.kept {
                format!(" ({} unusable, left out)", b.certificates - b.kept)
            } else {
                String::new()
            }
        ),
        None => eprintln!("  no CA bundle: https URLs only with ipa-insecure=1"),
    }
    eprintln!(
        "{out}: {} modules ({}{}), cpio {}, {} {} ({} bytes)",
        carried.len(),
        human_bytes(modules_total as u64),
        match zstd {
            true => format!(" zstd, {} plain", human_bytes(plain_total as u64)),
            false => String::new(),
        },
        human_bytes(archive_len as u64),
        compression.name(),
        human_bytes(packed.len() as u64),
        packed.len()
    );
    Ok(())
}

/// `--ipa-tarball PATH`: the path and NAME, the file name without
/// `.tar.gz`, which is what the downloader strips to find NAME.kernel
/// and NAME.initramfs inside.
fn ipa_name(path: &str) -> Result<(String, String), String> {
    let file = std::path::Path::new(path)
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or("");
    match file.strip_suffix(".tar.gz") {
        Some(name) if !name.is_empty() && !name.contains('.') => {
            Ok((path.to_string(), name.to_string()))
        }
        _ => Err(format!(
            "--ipa-tarball {path}: the name must be NAME.tar.gz with no other dot \
             (the downloader strips two extensions to find NAME.kernel), e.g. ipa-rivet.tar.gz"
        )),
    }
}

/// What `--for-host` asks for: the modules of the drivers bound to this
/// machine's devices (`sys` is `/sys`), and every module of `tree` whose
/// aliases match a device no driver holds.
fn this_hosts_modules(
    tree: &KernelTree,
    sys: &std::path::Path,
) -> Result<Vec<(Wanted, bool)>, String> {
    use rivet::linux::host_devices::host_devices;
    let found = host_devices(sys);
    let mut names: Vec<String> = found
        .drivers
        .iter()
        .filter(|d| tree.has(d) || tree.is_builtin(d))
        .cloned()
        .collect();
    let mut matched = Vec::new();
    if !found.unbound.is_empty() {
        for name in tree.names() {
            let (info, _) = tree.read(name)?;
            let hit = info.aliases.iter().any(|pattern| {
                found
                    .unbound
                    .iter()
                    .any(|alias| kmod::alias_matches(pattern, alias))
            });
            if hit && !names.iter().any(|n| n == name) {
                matched.push(name.to_string());
            }
        }
    }
    eprintln!(
        "this host: drivers in use {}; devices without a driver {} → {}",
        found.drivers.iter().cloned().collect::<Vec<_>>().join(" "),
        found.unbound.len(),
        match matched.is_empty() {
            true => "no module of this kernel".to_string(),
            false => matched.join(" "),
        }
    );
    names.extend(matched);
    Ok(names
        .into_iter()
        .map(|n| (Wanted::Module(n), true))
        .collect())
}

/// The summary names this many modules, the largest first.
const SUMMARY_MODULES: usize = 60;

/// Whether modules are carried compressed one by one.
#[derive(Clone, Copy)]
enum ModuleCompression {
    Auto,
    Zstd,
    None,
}

impl ModuleCompression {
    /// Above this, plain modules would take too much of a small machine's
    /// RAM: the unpacked archive stays in memory while rivet runs.
    const AUTO_ABOVE: usize = 32 << 20;

    fn parse(arg: Option<&str>) -> Result<ModuleCompression, String> {
        match arg.unwrap_or("auto") {
            "auto" => Ok(ModuleCompression::Auto),
            "zstd" => Ok(ModuleCompression::Zstd),
            "none" => Ok(ModuleCompression::None),
            other => Err(format!("--module-compression {other}: auto, zstd or none")),
        }
    }

    fn zstd_for(self, plain: usize) -> bool {
        match self {
            ModuleCompression::Auto => plain > Self::AUTO_ABOVE,
            ModuleCompression::Zstd => true,
            ModuleCompression::None => false,
        }
    }
}

/// Each module through the host's `zstd -19`, four at once (the full
/// class's 400 modules take 20 s on one core). A fixed count: std's
/// `available_parallelism` would bring its cgroup parser into /init.
fn zstd_each<'a>(
    names: &'a [String],
    bytes_of: impl Fn(&str) -> &'a [u8] + Sync,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let workers = 4;
    let chunk = names.len().div_ceil(workers).max(1);
    /// A module's name and its compressed bytes.
    type Packed = (String, Vec<u8>);
    let results: Vec<Result<Vec<Packed>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = names
            .chunks(chunk)
            .map(|part| {
                let bytes_of = &bytes_of;
                s.spawn(move || {
                    part.iter()
                        .map(|name| {
                            let packed =
                                run_filter("zstd", &["-19", "-q", "-c", "--check"], bytes_of(name))
                                    .map_err(|e| format!("module {name}: {e}"))?;
                            Ok((name.clone(), packed))
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("zstd worker panicked".into()))
            })
            .collect()
    });
    let mut out = BTreeMap::new();
    for part in results {
        out.extend(part?);
    }
    Ok(out)
}

/// A firmware file to carry: its path in the archive, its bytes.
type Firmware = (String, Vec<u8>);
/// A firmware file not found: the module that names it, its name.
type Missing = (String, String);

/// The compressed firmware the kernel's loader reads itself, from its
/// config (`boot/config-VERSION` of the kernel package): `.xz` with
/// CONFIG_FW_LOADER_COMPRESS_XZ (Debian's), `.zst` with _ZSTD. Without a
/// config, `.xz` only, as before this was read.
fn firmware_suffixes(config: Option<&str>) -> Vec<&'static str> {
    let Some(config) = config else {
        return vec![".xz"];
    };
    let set = |key: &str| config.lines().any(|l| l.trim() == format!("{key}=y"));
    let mut out = Vec::new();
    if set("CONFIG_FW_LOADER_COMPRESS_XZ") {
        out.push(".xz");
    }
    if set("CONFIG_FW_LOADER_COMPRESS_ZSTD") {
        out.push(".zst");
    }
    out
}

/// The firmware files the carried modules name (`firmware=`), found in the
/// first of `dirs` that has them, plain or compressed as the kernel reads it
/// (`suffixes`): their paths in the archive (`lib/firmware/…`, where the
/// kernel looks without a helper) and bytes; and the (module, file) pairs
/// not found. A name that climbs out of the firmware tree is never looked up.
fn firmware_of(
    carried: &[Carried],
    dirs: &[std::path::PathBuf],
    suffixes: &[&str],
) -> (Vec<Firmware>, Vec<Missing>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for c in carried {
        for name in &c.info.firmware {
            if !seen.insert(name.clone()) {
                continue;
            }
            let safe = !name.is_empty()
                && !name.starts_with('/')
                && name.split('/').all(|part| part != ".." && !part.is_empty());
            let file = safe
                .then(|| {
                    dirs.iter().find_map(|d| {
                        std::iter::once(name.clone())
                            .chain(suffixes.iter().map(|s| format!("{name}{s}")))
                            .find_map(|n| Some((n.clone(), std::fs::read(d.join(&n)).ok()?)))
                    })
                })
                .flatten();
            match file {
                Some((n, bytes)) => found.push((format!("lib/firmware/{n}"), bytes)),
                None => missing.push((c.name.clone(), name.clone())),
            }
        }
    }
    (found, missing)
}

/// How the archive is compressed. The kernels rivet targets decompress
/// both (RD_GZIP, RD_XZ); xz makes the initramfs a quarter smaller.
#[derive(Clone, Copy)]
enum Compression {
    Gzip,
    Xz,
}

impl Compression {
    fn parse(arg: Option<&str>) -> Result<Compression, String> {
        match arg.unwrap_or("xz") {
            "xz" => Ok(Compression::Xz),
            "gzip" => Ok(Compression::Gzip),
            other => Err(format!("--compress {other}: xz or gzip")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
        }
    }

    /// `code`: the data is x86 machine code (a linked binary, not
    /// relocatable modules).
    fn compress(self, data: &[u8], code: bool) -> Result<Vec<u8>, String> {
        match self {
            Compression::Gzip => Ok(rivet::wire::gzip::compress(data, initramfs::GZIP_LEVEL)),
            Compression::Xz => xz(data, code),
        }
    }
}

/// Compresses with the host's `xz` (in xz-utils, on every Debian system)
/// rather than carry an encoder in /init. The kernel's decoder wants
/// CRC32 checks and allocates the whole dictionary at boot: -9e's 64 MiB
/// oopses a 96 MiB machine; 2 MiB costs 0.2% in size. The BCJ x86 filter
/// (CONFIG_XZ_DEC_X86, in every distribution kernel) takes 41 KB off
/// /init and adds 10 KB to a module like igb: `code` says which.
fn xz(data: &[u8], code: bool) -> Result<Vec<u8>, String> {
    let x86: &[&str] = if code { &["--x86"] } else { &[] };
    let args = [
        &["--format=xz", "--check=crc32"][..],
        x86,
        &["--lzma2=preset=9e,dict=2MiB", "--threads=1", "--stdout"],
    ]
    .concat();
    run_filter("xz", &args, data).map_err(|e| format!("{e} (or use --compress gzip)"))
}

/// Runs a compressor of this host (`xz`, `zstd`) from stdin to stdout.
fn run_filter(program: &str, args: &[&str], data: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {program}: {e} (install it: xz-utils, zstd)"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let output = std::thread::scope(|s| {
        s.spawn(move || stdin.write_all(data));
        child.wait_with_output()
    })
    .map_err(|e| format!("{program}: {e}"))?;
    if !output.status.success() {
        return Err(format!("{program} failed: {}", output.status));
    }
    Ok(output.stdout)
}

/// A PEM bundle read and turned into trust anchors.
#[derive(Debug)]
struct Bundle {
    path: String,
    pem_len: usize,
    certificates: usize,
    kept: usize,
    anchors: Vec<u8>,
}

/// The bundle to carry: `--ca-bundle FILE`, none for `none`, else this
/// host's if it has one (with a warning when it has not).
fn ca_bundle(arg: Option<&str>) -> Result<Option<Bundle>, String> {
    let path = match arg {
        Some("none") => return Ok(None),
        Some(path) => path,
        None if std::path::Path::new(CA_BUNDLE).exists() => CA_BUNDLE,
        None => {
            eprintln!(
                "warning: no {CA_BUNDLE} on this host: no CA bundle carried (--ca-bundle FILE)"
            );
            return Ok(None);
        }
    };
    let pem = std::fs::read(path).map_err(|e| format!("--ca-bundle {path}: {e}"))?;
    let (anchors, kept, unusable) =
        anchors_from_pem(&pem).map_err(|e| format!("--ca-bundle {path}: {e}"))?;
    let certificates = kept + unusable;
    if certificates == 0 {
        return Err(format!("--ca-bundle {path}: no PEM certificate in it"));
    }
    if kept == 0 {
        return Err(format!(
            "--ca-bundle {path}: no usable CA certificate in it"
        ));
    }
    Ok(Some(Bundle {
        path: path.to_string(),
        pem_len: pem.len(),
        certificates,
        kept,
        anchors,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_resolve_includes() {
        let module = |m: &str| Wanted::Module(m.to_string());
        let rule = |r: &str| Wanted::Rule(r.to_string());
        let virtio = class_modules("virtio").unwrap();
        assert!(virtio.contains(&module("virtio_blk")));
        let default = class_modules("default").unwrap();
        for m in [
            "virtio_net",
            "ahci",
            "nvme",
            "igb",
            "megaraid_sas",
            "mlx5_core",
        ] {
            assert!(default.contains(&module(m)), "{m} missing from default");
        }
        let full = class_modules("full").unwrap();
        assert!(
            full.contains(&module("virtio_blk")),
            "full includes default"
        );
        for r in [
            "drivers/net/ethernet",
            "drivers/scsi",
            "drivers/ata",
            "drivers/md",
        ] {
            assert!(full.contains(&rule(r)), "{r} missing from full");
        }
        assert_eq!(Wanted::of("hv-*"), rule("hv-*"));
        assert_eq!(Wanted::of("xen-netfront"), module("xen_netfront"));
        assert!(class_modules("toaster")
            .unwrap_err()
            .contains("unknown class 'toaster'"));
    }

    #[test]
    fn firmware_is_found_in_the_first_directory_that_has_it_or_named_as_missing() {
        let base = std::env::temp_dir().join(format!("rivet-fw-{}", std::process::id()));
        let (first, second) = (base.join("kernel-tree"), base.join("host"));
        for (dir, file, bytes) in [
            (&first, "tigon/tg3_tso5.bin", &b"from the kernel tree"[..]),
            (&second, "tigon/tg3_tso5.bin", b"from the host"),
            (&second, "tigon/tg3.bin.xz", b"xz"),
            (&base, "shadow", b"outside the firmware trees"),
        ] {
            let p = dir.join(file);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        let info = |names: &[&str]| rivet::wire::modinfo::ModInfo {
            firmware: names.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        };
        let carried = [
            Carried {
                name: "tg3".into(),
                info: info(&[
                    "tigon/tg3_tso5.bin",
                    "tigon/tg3_tso.bin",
                    "tigon/tg3.bin",
                    "../shadow",
                ]),
                bytes: &[],
                zstd: false,
            },
            Carried {
                name: "other".into(),
                info: info(&["tigon/tg3_tso5.bin"]),
                bytes: &[],
                zstd: false,
            },
        ];
        let (found, missing) = firmware_of(&carried, &[first, second], &[".xz"]);
        assert_eq!(
            found,
            vec![
                (
                    "lib/firmware/tigon/tg3_tso5.bin".to_string(),
                    b"from the kernel tree".to_vec()
                ),
                ("lib/firmware/tigon/tg3.bin.xz".to_string(), b"xz".to_vec()),
            ]
        );
        assert_eq!(
            missing,
            vec![
                ("tg3".to_string(), "tigon/tg3_tso.bin".to_string()),
                ("tg3".to_string(), "../shadow".to_string()),
            ]
        );
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn compressed_firmware_is_what_the_kernel_config_reads() {
        let debian =
            "CONFIG_FW_LOADER=y\nCONFIG_FW_LOADER_COMPRESS=y\nCONFIG_FW_LOADER_COMPRESS_XZ=y\n\
                      # CONFIG_FW_LOADER_COMPRESS_ZSTD is not set\n";
        assert_eq!(firmware_suffixes(Some(debian)), [".xz"]);
        let both = "CONFIG_FW_LOADER_COMPRESS_XZ=y\nCONFIG_FW_LOADER_COMPRESS_ZSTD=y\n";
        assert_eq!(firmware_suffixes(Some(both)), [".xz", ".zst"]);
        assert!(firmware_suffixes(Some("CONFIG_FW_LOADER=y\n")).is_empty());
        assert_eq!(firmware_suffixes(None), [".xz"]);
        // The real kernel package's config (tests/setup fetches it).
        let tree =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/kernel/current/boot");
        if let Some(config) = std::fs::read_dir(&tree).ok().and_then(|mut d| {
            d.find_map(|e| {
                let e = e.ok()?;
                e.file_name()
                    .to_str()?
                    .starts_with("config-")
                    .then(|| e.path())
            })
        }) {
            let text = std::fs::read_to_string(config).unwrap();
            assert_eq!(firmware_suffixes(Some(&text)), [".xz"]);
        }
        let dir = std::env::temp_dir().join(format!("rivet-fw-zst-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("intel/ice/ddp")).unwrap();
        std::fs::write(dir.join("intel/ice/ddp/ice.pkg.zst"), b"zstd").unwrap();
        let carried = [Carried {
            name: "ice".into(),
            info: rivet::wire::modinfo::ModInfo {
                firmware: vec!["intel/ice/ddp/ice.pkg".into()],
                ..Default::default()
            },
            bytes: &[],
            zstd: false,
        }];
        let (found, missing) = firmware_of(&carried, std::slice::from_ref(&dir), &[".xz", ".zst"]);
        assert_eq!(
            found,
            vec![(
                "lib/firmware/intel/ice/ddp/ice.pkg.zst".to_string(),
                b"zstd".to_vec()
            )]
        );
        assert!(missing.is_empty());
        let (found, missing) = firmware_of(&carried, std::slice::from_ref(&dir), &[".xz"]);
        assert!(
            found.is_empty() && missing.len() == 1,
            "a .zst the kernel cannot read is not carried"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn ipa_tarball_names_are_what_the_downloader_strips() {
        assert_eq!(
            ipa_name("/srv/ipa-rivet-master.tar.gz").unwrap(),
            (
                "/srv/ipa-rivet-master.tar.gz".into(),
                "ipa-rivet-master".into()
            )
        );
        for bad in ["ipa.tgz", "ipa.tar", ".tar.gz", "ipa-1.2.tar.gz", "/srv/"] {
            assert!(ipa_name(bad)
                .unwrap_err()
                .starts_with(&format!("--ipa-tarball {bad}: ")));
        }
    }

    #[test]
    fn bad_bundles_and_compressions_are_refused_before_building() {
        let dir = std::env::temp_dir().join(format!("rivet-mkinit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let junk = junk.to_str().unwrap();
        assert_eq!(
            ca_bundle(Some(junk)).unwrap_err(),
            format!("--ca-bundle {junk}: no PEM certificate in it")
        );
        let missing = ca_bundle(Some("/nonexistent/ca.pem")).unwrap_err();
        assert!(
            missing.starts_with("--ca-bundle /nonexistent/ca.pem: "),
            "{missing}"
        );
        assert!(ca_bundle(Some("none")).unwrap().is_none());
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".repeat(2);
        let broken = dir.join("broken.pem");
        std::fs::write(&broken, &pem).unwrap();
        assert!(ca_bundle(broken.to_str()).is_err());
        // The host's bundle (tests/setup installs ca-certificates): every
        // certificate becomes an anchor, in a third of the bytes or less.
        let host = ca_bundle(Some(CA_BUNDLE)).unwrap().unwrap();
        assert!(host.certificates > 100, "{}", host.certificates);
        assert_eq!(host.kept, host.certificates);
        assert!(host.anchors.len() * 3 < host.pem_len);
        let anchors = rivet::wire::anchors::Anchors::new_checked(&host.anchors).unwrap();
        assert_eq!(anchors.iter().count(), host.kept);
        assert_eq!(
            Compression::parse(Some("zip")).err().unwrap(),
            "--compress zip: xz or gzip"
        );
        assert_eq!(Compression::parse(None).unwrap().name(), "xz");
        assert_eq!(
            ModuleCompression::parse(Some("lz4")).err().unwrap(),
            "--module-compression lz4: auto, zstd or none"
        );
        let auto = ModuleCompression::parse(None).unwrap();
        assert!(!auto.zstd_for(ModuleCompression::AUTO_ABOVE));
        assert!(auto.zstd_for(ModuleCompression::AUTO_ABOVE + 1));
        assert!(!ModuleCompression::parse(Some("none"))
            .unwrap()
            .zstd_for(usize::MAX));
        assert!(ModuleCompression::parse(Some("zstd")).unwrap().zstd_for(0));
        let _ = std::fs::remove_dir_all(dir);
    }
}
