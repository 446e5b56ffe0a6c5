//! The deploy plan: Ironic's `image_info` JSON (same keys, same meaning),
//! checked completely before any disk is touched, plus rivet's own optional
//! keys (`target_disk`, `after`). Checksum files (a `checksum` URL) are
//! read by [`checksum`].

pub mod auth;
pub mod checksum;
pub mod proxy;
pub use checksum::parse_checksum_file;

use crate::cmdline::EndAction;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    Partition,
    WholeDisk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootMode {
    Bios,
    Uefi,
}

impl BootMode {
    pub fn name(&self) -> &'static str {
        match self {
            BootMode::Bios => "bios",
            BootMode::Uefi => "uefi",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Msdos,
    Gpt,
}

impl Label {
    pub fn name(&self) -> &'static str {
        match self {
            Label::Msdos => "msdos",
            Label::Gpt => "gpt",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgo {
    Md5,
    Sha256,
    Sha512,
}

impl HashAlgo {
    pub fn name(&self) -> &'static str {
        match self {
            HashAlgo::Md5 => "md5",
            HashAlgo::Sha256 => "sha256",
            HashAlgo::Sha512 => "sha512",
        }
    }
    pub fn hex_len(&self) -> usize {
        match self {
            HashAlgo::Md5 => 32,
            HashAlgo::Sha256 => 64,
            HashAlgo::Sha512 => 128,
        }
    }
}

/// What the image's bytes must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// Algorithm and lowercase hex digest.
    Value(HashAlgo, String),
    /// A checksum file to fetch (`os_hash_value` or `checksum` given as URL).
    Url(Option<HashAlgo>, String),
}

/// Filesystem for the ephemeral partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EphemeralFormat {
    Ext2,
    Ext3,
    Ext4,
    Vfat,
}

impl EphemeralFormat {
    pub fn name(&self) -> &'static str {
        match self {
            EphemeralFormat::Ext2 => "ext2",
            EphemeralFormat::Ext3 => "ext3",
            EphemeralFormat::Ext4 => "ext4",
            EphemeralFormat::Vfat => "vfat",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub image_type: ImageType,
    pub id: Option<String>,
    pub node_uuid: Option<String>,
    /// Where to fetch the image, in order of preference (may be empty when
    /// the caller supplies the bytes, e.g. `rivet deploy --image`).
    pub urls: Vec<String>,
    pub checksum: Checksum,
    /// As declared; None (absent, null, `unknown`): decided from the bytes.
    pub disk_format: Option<DiskFormat>,
    pub root_mb: u64,
    pub swap_mb: u64,
    pub ephemeral_mb: u64,
    pub ephemeral_format: Option<EphemeralFormat>,
    pub preserve_ephemeral: bool,
    /// None when the plan does not say; the caller decides (firmware or default).
    pub boot_mode: Option<BootMode>,
    /// As given; see [`Plan::label`] for the one used.
    pub disk_label: Option<Label>,
    /// Base64 of gzip of the config drive image, or an http(s) URL.
    pub configdrive: Option<String>,
    pub target_disk: Option<String>,
    pub after: Option<EndAction>,
    /// The `Authorization` header of the image and checksum GETs (a
    /// registry token or http_basic), for their first origin only.
    pub authorization: Option<auth::Authorization>,
    /// `proxies` and `no_proxy`, for the same GETs.
    pub proxies: proxy::Proxies,
}

/// The image formats a plan may declare (`gpt` is Ironic's name for a
/// raw whole-disk image).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    Raw,
    Qcow2,
}

impl DiskFormat {
    pub fn name(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        }
    }
}

/// A plan error: the key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub key: String,
    pub problem: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "plan: {}", self.problem)
        } else {
            write!(f, "plan: \"{}\": {}", self.key, self.problem)
        }
    }
}

fn err(key: &str, problem: impl Into<String>) -> Error {
    Error {
        key: key.to_string(),
        problem: problem.into(),
    }
}

fn is_null_or_absent(o: &Map<String, Value>, key: &str) -> bool {
    matches!(o.get(key), None | Some(Value::Null))
}

fn string(o: &Map<String, Value>, key: &str) -> Result<Option<String>, Error> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(err(key, format!("expected a string, got {other}"))),
    }
}

/// Sizes in MiB: a non-negative integer, or a string of digits (Ironic's
/// instance_info may carry either).
fn size_mb(o: &Map<String, Value>, key: &str) -> Result<u64, Error> {
    const MAX_MB: u64 = 1 << 40; // 1 EiB: anything larger is a mistake
    let value = match o.get(key) {
        None | Some(Value::Null) => return Ok(0),
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| err(key, format!("must be a whole number of MiB ≥ 0, got {n}")))?,
        Some(Value::String(s)) => s.trim().parse::<u64>().map_err(|_| {
            err(
                key,
                format!("must be a whole number of MiB ≥ 0, got \"{s}\""),
            )
        })?,
        Some(other) => {
            return Err(err(
                key,
                format!("must be a whole number of MiB, got {other}"),
            ))
        }
    };
    if value > MAX_MB {
        return Err(err(key, format!("{value} MiB is beyond any disk")));
    }
    Ok(value)
}

fn boolean(o: &Map<String, Value>, key: &str) -> Result<bool, Error> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" | "" => Ok(false),
            _ => Err(err(key, format!("expected true or false, got \"{s}\""))),
        },
        Some(other) => Err(err(key, format!("expected true or false, got {other}"))),
    }
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Checks a URL's shape: scheme we can fetch, a host (or a path for file://).
pub fn check_url(url: &str) -> Result<(), String> {
    if let Some(path) = url.strip_prefix("file://") {
        return if path.starts_with('/') {
            Ok(())
        } else {
            Err(format!(
                "'{url}': file:// URLs need an absolute path (file:///path)"
            ))
        };
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("'{url}': only http://, https:// and file:// URLs are supported"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) || rest.contains(char::is_whitespace) {
        return Err(format!("'{url}': no host, or whitespace in the URL"));
    }
    Ok(())
}

fn hash_algo(key: &str, name: &str) -> Result<HashAlgo, Error> {
    match name.to_ascii_lowercase().as_str() {
        "md5" => Ok(HashAlgo::Md5),
        "sha256" => Ok(HashAlgo::Sha256),
        "sha512" => Ok(HashAlgo::Sha512),
        other => Err(err(
            key,
            format!("unsupported hash algorithm '{other}' (md5, sha256, sha512)"),
        )),
    }
}

fn hex_digest(key: &str, algo: HashAlgo, value: &str) -> Result<Checksum, Error> {
    let v = value.trim().to_ascii_lowercase();
    if v.len() != algo.hex_len() || !v.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(err(
            key,
            format!(
                "'{value}' is not a {} digest ({} hex digits)",
                algo.name(),
                algo.hex_len()
            ),
        ));
    }
    Ok(Checksum::Value(algo, v))
}

fn checksum(o: &Map<String, Value>) -> Result<Checksum, Error> {
    let algo = string(o, "os_hash_algo")?;
    let value = string(o, "os_hash_value")?;
    match (algo, value) {
        (Some(algo), Some(value)) => {
            let algo = hash_algo("os_hash_algo", &algo)?;
            if is_url(&value) {
                check_url(&value).map_err(|e| err("os_hash_value", e))?;
                return Ok(Checksum::Url(Some(algo), value));
            }
            return hex_digest("os_hash_value", algo, &value);
        }
        (Some(_), None) => {
            return Err(err(
                "os_hash_value",
                "os_hash_algo is given without os_hash_value",
            ))
        }
        (None, Some(_)) => {
            return Err(err(
                "os_hash_algo",
                "os_hash_value is given without os_hash_algo",
            ))
        }
        (None, None) => {}
    }
    let Some(legacy) = string(o, "checksum")? else {
        return Err(err(
            "",
            "no checksum: give os_hash_algo + os_hash_value, or checksum",
        ));
    };
    if is_url(&legacy) {
        check_url(&legacy).map_err(|e| err("checksum", e))?;
        return Ok(Checksum::Url(None, legacy));
    }
    let n = legacy.trim().len();
    let algo = algo_of_digest_len(n).ok_or_else(|| {
        err(
            "checksum",
            format!("a {n}-character value is not an md5, sha256 or sha512 digest"),
        )
    })?;
    hex_digest("checksum", algo, &legacy)
}

/// Ironic's rule for a bare digest: the algorithm follows from its length
/// in hex characters.
fn algo_of_digest_len(n: usize) -> Option<HashAlgo> {
    match n {
        32 => Some(HashAlgo::Md5),
        64 => Some(HashAlgo::Sha256),
        128 => Some(HashAlgo::Sha512),
        _ => None,
    }
}

impl Plan {
    pub fn from_json(text: &[u8]) -> Result<Plan, Error> {
        let value: Value =
            serde_json::from_slice(text).map_err(|e| err("", format!("not valid JSON: {e}")))?;
        Plan::from_value(&value)
    }

    pub fn from_value(value: &Value) -> Result<Plan, Error> {
        let o = value
            .as_object()
            .ok_or_else(|| err("", "the plan must be a JSON object"))?;
        // Ironic sends no image_type for whole-disk images.
        let image_type = match string(o, "image_type")?.as_deref() {
            Some("partition") => ImageType::Partition,
            None | Some("whole-disk") | Some("whole_disk") => ImageType::WholeDisk,
            Some(other) => {
                return Err(err(
                    "image_type",
                    format!("'{other}' is not partition or whole-disk"),
                ))
            }
        };
        let urls = match o.get("urls") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|u| {
                    let s = u
                        .as_str()
                        .ok_or_else(|| err("urls", format!("{u} is not a string")))?;
                    check_url(s).map_err(|e| err("urls", e))?;
                    Ok(s.to_string())
                })
                .collect::<Result<_, Error>>()?,
            Some(Value::String(s)) => {
                check_url(s).map_err(|e| err("urls", e))?;
                alloc::vec![s.clone()]
            }
            Some(other) => {
                return Err(err("urls", format!("expected a list of URLs, got {other}")))
            }
        };
        let disk_format = match string(o, "disk_format")?.as_deref() {
            None | Some("unknown") => None,
            Some("raw") | Some("gpt") => Some(DiskFormat::Raw),
            Some("qcow2") => Some(DiskFormat::Qcow2),
            Some(other) => {
                return Err(err(
                    "disk_format",
                    format!(
                    "'{other}' images are not supported: rivet writes raw (plain, gzip or zstd) \
                         and qcow2 images (qemu-img convert -O qcow2 or -O raw)"
                ),
                ))
            }
        };
        let checksum = checksum(o)?;
        let boot_mode = match string(o, "deploy_boot_mode")?
            .or(string(o, "boot_mode")?)
            .as_deref()
        {
            None => None,
            Some("bios") => Some(BootMode::Bios),
            Some("uefi") => Some(BootMode::Uefi),
            Some(other) => {
                return Err(err(
                    "deploy_boot_mode",
                    format!("'{other}' is not bios or uefi"),
                ))
            }
        };
        let disk_label = match string(o, "disk_label")?.as_deref() {
            None => None,
            Some("msdos") => Some(Label::Msdos),
            Some("gpt") => Some(Label::Gpt),
            Some(other) => return Err(err("disk_label", format!("'{other}' is not msdos or gpt"))),
        };
        let root_mb = size_mb(o, "root_mb")?;
        let swap_mb = size_mb(o, "swap_mb")?;
        let ephemeral_mb = size_mb(o, "ephemeral_mb")?;
        let ephemeral_format = match string(o, "ephemeral_format")?.as_deref() {
            None if ephemeral_mb > 0 => Some(EphemeralFormat::Ext4), // Ironic's default
            None => None,
            Some("ext2") => Some(EphemeralFormat::Ext2),
            Some("ext3") => Some(EphemeralFormat::Ext3),
            Some("ext4") => Some(EphemeralFormat::Ext4),
            Some("vfat" | "fat" | "fat32") => Some(EphemeralFormat::Vfat),
            Some(other) => {
                return Err(err(
                    "ephemeral_format",
                    format!("'{other}' is not ext2, ext3, ext4 or vfat"),
                ))
            }
        };
        if image_type == ImageType::Partition && root_mb == 0 {
            return Err(err(
                "root_mb",
                "a partition image needs a root partition size > 0",
            ));
        }
        let configdrive = match o.get("configdrive") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => {
                if is_url(s) {
                    check_url(s).map_err(|e| err("configdrive", e))?;
                }
                Some(s.clone())
            }
            Some(_) => return Err(err(
                "configdrive",
                "must be a base64 gzip image or a URL (Ironic builds the image from JSON itself)",
            )),
        };
        let after = match string(o, "after")?.as_deref() {
            None => None,
            Some(s) => Some(EndAction::parse(s).ok_or_else(|| {
                err(
                    "after",
                    format!("'{s}' is not reboot, poweroff, halt or stay"),
                )
            })?),
        };
        let plan = Plan {
            image_type,
            id: string(o, "id")?,
            node_uuid: string(o, "node_uuid")?,
            urls,
            checksum,
            disk_format,
            root_mb,
            swap_mb,
            ephemeral_mb,
            ephemeral_format,
            preserve_ephemeral: boolean(o, "preserve_ephemeral")?,
            boot_mode,
            disk_label,
            configdrive,
            target_disk: string(o, "target_disk")?,
            after,
            authorization: auth::Authorization::from_plan(o)?,
            proxies: proxy::Proxies::from_plan(o)?,
        };
        if plan.preserve_ephemeral && plan.image_type == ImageType::WholeDisk {
            return Err(err(
                "preserve_ephemeral",
                "only partition images have an ephemeral partition",
            ));
        }
        if !is_null_or_absent(o, "root_gb") && is_null_or_absent(o, "root_mb") {
            return Err(err(
                "root_mb",
                "root_gb is given but root_mb is not (Ironic sends both)",
            ));
        }
        Ok(plan)
    }

    /// The partition table type used: GPT whenever the boot mode is UEFI
    /// (Ironic's agent path ignores disk_label then), else disk_label, else msdos.
    pub fn label(&self, boot_mode: BootMode) -> Label {
        match boot_mode {
            BootMode::Uefi => Label::Gpt,
            BootMode::Bios => self.disk_label.unwrap_or(Label::Msdos),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition_plan() -> &'static str {
        r#"{"id": "8e5b7e1a", "urls": ["http://10.0.2.2:8080/root.img"], "disk_format": "raw",
            "container_format": "bare", "stream_raw_images": true, "node_uuid": "1be26c0b",
            "os_hash_algo": "sha256",
            "os_hash_value": "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "image_type": "partition", "root_gb": 10, "root_mb": 10240, "swap_mb": 1024,
            "ephemeral_mb": 0, "ephemeral_format": null, "preserve_ephemeral": false,
            "deploy_boot_mode": "uefi", "boot_option": "local", "configdrive": null}"#
    }

    #[test]
    fn ironic_partition_image_info() {
        let p = Plan::from_json(partition_plan().as_bytes()).unwrap();
        assert_eq!(p.image_type, ImageType::Partition);
        assert_eq!(p.root_mb, 10240);
        assert_eq!(p.swap_mb, 1024);
        assert_eq!(p.boot_mode, Some(BootMode::Uefi));
        assert_eq!(p.label(BootMode::Uefi), Label::Gpt);
        assert_eq!(
            p.checksum,
            Checksum::Value(
                HashAlgo::Sha256,
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into()
            )
        );
        assert_eq!(p.ephemeral_format, None);
    }

    #[test]
    fn whole_disk_without_image_type_and_legacy_md5() {
        let p = Plan::from_json(
            br#"{"id": "x", "urls": ["file:///images/disk.img"], "checksum": "d41d8cd98f00b204e9800998ecf8427e",
                 "node_uuid": "n", "disk_format": "raw"}"#,
        )
        .unwrap();
        assert_eq!(p.image_type, ImageType::WholeDisk);
        assert_eq!(
            p.checksum,
            Checksum::Value(HashAlgo::Md5, "d41d8cd98f00b204e9800998ecf8427e".into())
        );
        assert_eq!(p.label(BootMode::Bios), Label::Msdos);
    }

    #[test]
    fn uefi_forces_gpt_bios_honours_label() {
        let mut p = Plan::from_json(partition_plan().as_bytes()).unwrap();
        p.disk_label = Some(Label::Msdos);
        assert_eq!(p.label(BootMode::Uefi), Label::Gpt);
        p.disk_label = Some(Label::Gpt);
        assert_eq!(p.label(BootMode::Bios), Label::Gpt);
    }

    #[test]
    fn ephemeral_defaults_to_ext4_like_ironic() {
        let p = Plan::from_json(br#"{"image_type": "partition", "root_mb": 100, "ephemeral_mb": 50, "checksum": "d41d8cd98f00b204e9800998ecf8427e"}"#).unwrap();
        assert_eq!(p.ephemeral_format, Some(EphemeralFormat::Ext4));
    }

    fn error_for(json: &str) -> String {
        Plan::from_json(json.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn bad_input_is_named() {
        let ok = r#""checksum": "d41d8cd98f00b204e9800998ecf8427e""#;
        assert!(error_for("[1, 2]").contains("must be a JSON object"));
        assert!(error_for("{\"image_type\": ").contains("not valid JSON"));
        assert!(error_for(&format!(r#"{{"image_type": "floppy", {ok}}}"#))
            .contains("\"image_type\": 'floppy'"));
        assert!(error_for(&format!(
            r#"{{"image_type": "partition", "root_mb": -5, {ok}}}"#
        ))
        .contains("\"root_mb\""));
        assert!(error_for(&format!(
            r#"{{"image_type": "partition", "root_mb": "ten", {ok}}}"#
        ))
        .contains("\"ten\""));
        assert!(error_for(&format!(
            r#"{{"image_type": "partition", "root_mb": 1.5, {ok}}}"#
        ))
        .contains("1.5"));
        assert!(
            error_for(&format!(r#"{{"image_type": "partition", {ok}}}"#))
                .contains("root partition size")
        );
        assert!(error_for(&format!(r#"{{"disk_label": "sun", {ok}}}"#))
            .contains("'sun' is not msdos or gpt"));
        assert!(error_for(&format!(r#"{{"boot_mode": "coreboot", {ok}}}"#)).contains("'coreboot'"));
        assert!(error_for(&format!(r#"{{"disk_format": "vmdk", {ok}}}"#))
            .contains("'vmdk' images are not supported"));
        assert!(error_for(&format!(r#"{{"disk_format": "iso", {ok}}}"#)).contains("'iso'"));
        assert!(error_for(&format!(r#"{{"urls": ["ftp://h/x"], {ok}}}"#)).contains("only http://"));
        assert!(error_for(&format!(r#"{{"urls": ["http:///x"], {ok}}}"#)).contains("no host"));
        assert!(error_for(r#"{"urls": []}"#).contains("no checksum"));
        assert!(error_for(r#"{"checksum": "abc"}"#).contains("3-character value"));
        assert!(
            error_for(r#"{"checksum": "z41d8cd98f00b204e9800998ecf8427e"}"#)
                .contains("not a md5 digest")
        );
        assert!(
            error_for(r#"{"os_hash_algo": "crc32", "os_hash_value": "00"}"#)
                .contains("unsupported hash")
        );
        assert!(error_for(r#"{"os_hash_algo": "sha256"}"#).contains("without os_hash_value"));
        assert!(
            error_for(&format!(r#"{{"preserve_ephemeral": "maybe", {ok}}}"#)).contains("\"maybe\"")
        );
        assert!(
            error_for(&format!(r#"{{"preserve_ephemeral": true, {ok}}}"#))
                .contains("only partition images")
        );
        assert!(error_for(&format!(
            r#"{{"configdrive": {{"meta_data": {{}}}}, {ok}}}"#
        ))
        .contains("configdrive"));
        assert!(error_for(&format!(r#"{{"after": "explode", {ok}}}"#)).contains("'explode'"));
    }

    #[test]
    fn checksum_urls_are_kept_for_the_fetcher() {
        let p = Plan::from_json(br#"{"checksum": "http://h/SHA256SUMS"}"#).unwrap();
        assert_eq!(
            p.checksum,
            Checksum::Url(None, "http://h/SHA256SUMS".into())
        );
    }
}
