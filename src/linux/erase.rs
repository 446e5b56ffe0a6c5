//! Erasing one disk the way ironic-python-agent's `erase_block_device`
//! does: NVMe Format NVM (crypto erase where the controller has it, else a
//! user-data erase), else ATA SECURITY ERASE UNIT through SG_IO, else an
//! overwrite (random passes, then zeros) through one aligned O_DIRECT
//! buffer. Random bytes come from an AES-GCM (or, without AES
//! instructions, ChaCha20) keystream keyed from the kernel: gigabytes per
//! second, not a syscall per block.

use super::blockdev::Disk;
use super::sys::{self, NvmeAdminCmd, SgData};
use crate::deploy::erase::{self, Eraser, Pass, Progress};
use crate::io::BlockDevice;
use crate::stream::AlignedBuf;
use ring::aead;
use std::time::Instant;

/// Ironic's erase knobs (driver_internal_info, from `[deploy]` options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knobs {
    pub iterations: u32,
    pub zeroize: bool,
    pub nvme_secure_erase: bool,
    pub ata_secure_erase: bool,
    /// A secure erase that failed falls back to overwriting.
    pub continue_if_secure_erase_failed: bool,
}

impl Default for Knobs {
    /// Ironic 39's defaults.
    fn default() -> Self {
        Knobs {
            iterations: 1,
            zeroize: true,
            nvme_secure_erase: true,
            ata_secure_erase: true,
            continue_if_secure_erase_failed: false,
        }
    }
}

/// How a disk was erased, for the log and the step's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    NvmeFormat { crypto: bool },
    AtaSecureErase { enhanced: bool },
    Overwrite { passes: usize },
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Method::NvmeFormat { crypto: true } => {
                write!(f, "NVMe Format NVM, cryptographic erase")
            }
            Method::NvmeFormat { crypto: false } => write!(f, "NVMe Format NVM, user data erase"),
            Method::AtaSecureErase { enhanced } => {
                write!(
                    f,
                    "ATA secure erase{}",
                    if *enhanced { ", enhanced" } else { "" }
                )
            }
            Method::Overwrite { passes } => write!(f, "{passes} overwrite pass(es)"),
        }
    }
}

/// A keystream for overwrite passes: AEAD encryption of zeros under a
/// random key, a fresh nonce per buffer.
pub struct Keystream {
    key: aead::LessSafeKey,
    counter: u64,
}

impl Keystream {
    pub fn new() -> Keystream {
        let alg = if super::tls::provider::aes_in_hardware() {
            &aead::AES_256_GCM
        } else {
            &aead::CHACHA20_POLY1305
        };
        let mut key = [0u8; 32];
        sys::random(&mut key);
        let key = aead::UnboundKey::new(alg, &key).expect("a 32-byte key");
        Keystream {
            key: aead::LessSafeKey::new(key),
            counter: 0,
        }
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        buf.fill(0);
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&self.counter.to_le_bytes());
        self.counter += 1;
        let nonce = aead::Nonce::assume_unique_for_key(nonce);
        // Sealing cannot fail below ring's 2^36-byte limit per message.
        let _ = self
            .key
            .seal_in_place_separate_tag(nonce, aead::Aad::empty(), buf);
    }
}

impl Default for Keystream {
    fn default() -> Self {
        Keystream::new()
    }
}

struct Overwriter<'a> {
    keys: Keystream,
    start: Instant,
    report: &'a (dyn Fn(&Progress) + Sync),
}

impl Eraser for Overwriter<'_> {
    fn random(&mut self, buf: &mut [u8]) {
        self.keys.fill(buf);
    }
    fn now_ms(&mut self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
    fn report(&mut self, p: &Progress) {
        (self.report)(p);
    }
}

/// Erases the disk at `path` as the knobs say; `report` hears overwrite
/// progress. Returns how it was done.
pub fn erase_disk(
    path: &str,
    knobs: &Knobs,
    report: &(dyn Fn(&Progress) + Sync),
) -> Result<Method, String> {
    let mut disk = Disk::open(path, 512)?;
    let name = path.trim_start_matches("/dev/");
    if name.starts_with("nvme") && knobs.nvme_secure_erase {
        match nvme_format(&disk) {
            Ok(crypto) => {
                log::info!(
                    "{path}: Format NVM done ({} erase)",
                    if crypto { "cryptographic" } else { "user data" }
                );
                let _ = disk.reread_partitions();
                return Ok(Method::NvmeFormat { crypto });
            }
            Err(e) if knobs.continue_if_secure_erase_failed => {
                log::warn!("{path}: NVMe secure erase failed ({e}); overwriting instead");
            }
            Err(e) => return Err(format!("{path}: NVMe secure erase failed: {e}")),
        }
    } else if knobs.ata_secure_erase && disk.is_block_device() {
        match ata_security(&disk) {
            Ok(Some(sec)) if sec.usable() => match ata_secure_erase(&disk, sec.enhanced) {
                Ok(()) => {
                    log::info!("{path}: ATA secure erase done");
                    let _ = disk.reread_partitions();
                    return Ok(Method::AtaSecureErase {
                        enhanced: sec.enhanced,
                    });
                }
                Err(e) if knobs.continue_if_secure_erase_failed => {
                    log::warn!("{path}: ATA secure erase failed ({e}); overwriting instead");
                }
                Err(e) => return Err(format!("{path}: ATA secure erase failed: {e}")),
            },
            Ok(Some(sec)) => log::info!("{path}: ATA security {}; overwriting", sec.why_not()),
            Ok(None) => log::info!("{path}: no ATA security feature set; overwriting"),
            Err(e) => log::info!("{path}: not an ATA disk ({e}); overwriting"),
        }
    }
    let passes = erase::passes(knobs.iterations, knobs.zeroize);
    let mut buf = AlignedBuf::new(
        crate::deploy::DEFAULT_BUFFER,
        disk.logical_block().max(4096) as usize,
    );
    let mut eraser = Overwriter {
        keys: Keystream::new(),
        start: Instant::now(),
        report,
    };
    erase::overwrite(&mut disk, &passes, buf.as_mut_slice(), &mut eraser)
        .map_err(|e| e.to_string())?;
    if passes.last() == Some(&Pass::Zeros) {
        let mut seed = [0u8; 8];
        sys::random(&mut seed);
        let mut state = u64::from_le_bytes(seed) | 1;
        erase::check_zeroed(&mut disk, 64, &mut || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        })?;
        log::info!("{path}: read back zero (first and last MiB, 64 random blocks)");
    }
    let _ = disk.reread_partitions();
    Ok(Method::Overwrite {
        passes: passes.len(),
    })
}

/// Whether an NVMe namespace can be formatted, and how: Format NVM on the
/// namespace with its current LBA format, crypto erase (SES 2) when the
/// controller's FNA says so, else user-data erase (SES 1). Returns whether
/// it was a crypto erase.
fn nvme_format(disk: &Disk) -> Result<bool, String> {
    let fd = disk.fd();
    let nsid = sys::nvme_namespace_id(fd).map_err(|e| format!("namespace id: {e}"))?;
    let mut ctrl = vec![0u8; 4096];
    let mut cmd = NvmeAdminCmd {
        opcode: 0x06,
        cdw10: 1, // CNS: identify controller
        ..Default::default()
    };
    check(
        sys::nvme_admin(fd, &mut cmd, Some(&mut ctrl)),
        "identify controller",
    )?;
    let oacs = u16::from_le_bytes([ctrl[256], ctrl[257]]);
    if oacs & 0x2 == 0 {
        return Err("the controller does not support Format NVM".into());
    }
    let crypto = ctrl[524] & 0x4 != 0;
    let mut ns = vec![0u8; 4096];
    let mut cmd = NvmeAdminCmd {
        opcode: 0x06,
        nsid,
        cdw10: 0, // CNS: identify namespace
        ..Default::default()
    };
    check(
        sys::nvme_admin(fd, &mut cmd, Some(&mut ns)),
        "identify namespace",
    )?;
    let flbas = u32::from(ns[26]);
    let lbaf = (flbas & 0xf) | ((flbas >> 5) & 0x3) << 4;
    let format = |ses: u32| {
        log::info!(
            "{}: Format NVM, namespace {nsid}, LBA format {lbaf}, secure erase setting {ses}",
            disk.name()
        );
        let mut cmd = NvmeAdminCmd {
            opcode: 0x80,
            nsid,
            cdw10: (lbaf & 0xf) | (ses << 9) | ((lbaf >> 4) << 12),
            timeout_ms: 3_600_000,
            ..Default::default()
        };
        check(sys::nvme_admin(fd, &mut cmd, None), "Format NVM")
    };
    if crypto {
        match format(2) {
            Ok(()) => return Ok(true),
            // Some controllers announce crypto erase per namespace only.
            Err(e) => log::warn!(
                "{}: cryptographic erase refused ({e}); user data erase",
                disk.name()
            ),
        }
    }
    format(1)?;
    Ok(false)
}

fn check(r: std::io::Result<(u32, u32)>, what: &str) -> Result<(), String> {
    match r {
        Ok((0, _)) => Ok(()),
        Ok((status, _)) => Err(format!("{what}: NVMe status {status:#x}")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// The ATA security state (IDENTIFY DEVICE word 128).
#[derive(Debug, Clone, Copy)]
struct AtaSecurity {
    enabled: bool,
    locked: bool,
    frozen: bool,
    enhanced: bool,
}

impl AtaSecurity {
    fn usable(&self) -> bool {
        !self.enabled && !self.locked && !self.frozen
    }
    fn why_not(&self) -> &'static str {
        if self.frozen {
            "is frozen (the firmware froze it at boot)"
        } else if self.locked {
            "is locked with an unknown password"
        } else {
            "has a password set already"
        }
    }
}

/// ATA PASS-THROUGH (16) with a 28-bit command.
fn ata_cdb(protocol: u8, flags: u8, count: u8, command: u8) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x85;
    c[1] = protocol << 1;
    c[2] = flags;
    c[6] = count;
    c[14] = command;
    c
}

const PIO_IN: u8 = 4;
const PIO_OUT: u8 = 5;
const NON_DATA: u8 = 3;
/// T_DIR from the device, BYT_BLOK, T_LENGTH in the count field.
const FLAGS_IN: u8 = 0x0e;
const FLAGS_OUT: u8 = 0x06;

fn ata(disk: &Disk, cdb: [u8; 16], data: SgData<'_>, timeout_ms: u32) -> Result<(), String> {
    let (status, host, driver, sense) =
        sys::sg_io(disk.fd(), &cdb, data, timeout_ms).map_err(|e| e.to_string())?;
    if status == 0 && host == 0 && driver == 0 {
        Ok(())
    } else {
        Err(format!(
            "ATA command {:#04x}: SCSI status {status:#x}, host {host:#x}, driver {driver:#x}, sense {sense:02x?}",
            cdb[14]
        ))
    }
}

/// None when the drive has no security feature set.
fn ata_security(disk: &Disk) -> Result<Option<AtaSecurity>, String> {
    let mut id = [0u8; 512];
    ata(
        disk,
        ata_cdb(PIO_IN, FLAGS_IN, 1, 0xec),
        SgData::In(&mut id),
        10_000,
    )?;
    let word = |w: usize| u16::from_le_bytes([id[2 * w], id[2 * w + 1]]);
    let sec = word(128);
    if sec & 0x1 == 0 {
        return Ok(None);
    }
    Ok(Some(AtaSecurity {
        enabled: sec & 0x2 != 0,
        locked: sec & 0x4 != 0,
        frozen: sec & 0x8 != 0,
        enhanced: sec & 0x20 != 0,
    }))
}

/// SECURITY SET PASSWORD (user, "NULL" as hdparm and the real agent use),
/// ERASE PREPARE, ERASE UNIT; a successful erase clears the password.
fn ata_secure_erase(disk: &Disk, enhanced: bool) -> Result<(), String> {
    let mut block = [0u8; 512];
    block[2..6].copy_from_slice(b"NULL");
    ata(
        disk,
        ata_cdb(PIO_OUT, FLAGS_OUT, 1, 0xf1),
        SgData::Out(&block),
        10_000,
    )?;
    ata(disk, ata_cdb(NON_DATA, 0, 0, 0xf3), SgData::None, 10_000)?;
    if enhanced {
        block[0] = 0x2;
    }
    // Hours on a large spinning disk.
    ata(
        disk,
        ata_cdb(PIO_OUT, FLAGS_OUT, 1, 0xf4),
        SgData::Out(&block),
        24 * 3_600_000,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keystream_differs_per_buffer_and_per_key() {
        let mut a = Keystream::new();
        let mut b = Keystream::new();
        let (mut x, mut y, mut z) = (vec![0u8; 4096], vec![0u8; 4096], vec![0u8; 4096]);
        a.fill(&mut x);
        a.fill(&mut y);
        b.fill(&mut z);
        assert_ne!(x, y);
        assert_ne!(x, z);
        assert!(x.iter().filter(|&&v| v == 0).count() < 64, "looks random");
    }

    #[test]
    fn pass_through_commands_are_ata_pass_through_16() {
        let c = ata_cdb(PIO_IN, FLAGS_IN, 1, 0xec);
        assert_eq!(c, [0x85, 8, 0x0e, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xec, 0]);
        let s = AtaSecurity {
            enabled: false,
            locked: false,
            frozen: true,
            enhanced: true,
        };
        assert!(!s.usable());
        assert!(s.why_not().contains("frozen"));
    }
}
