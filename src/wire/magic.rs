//! Image formats by their first bytes: what Ironic's format inspector
//! looks for. `deploy/format.rs` decides from this which images rivet
//! writes (raw, qcow2, gzip and zstd streams) and refuses the rest by name
//! (VMDK, VHD(X), VDI, QED, xz, bzip2) instead of writing them byte for
//! byte — a disk full of container metadata at best, the image tricks
//! behind CVE-2024-44082 at worst. ISO 9660 is not on the list: hybrid
//! ISOs are raw disk images.

/// Bytes of the image's start this module may need (VDI's magic is at 0x40).
pub const SNIFF_BYTES: usize = 512;

/// A format that is not raw, and what to do if rivet does not write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotRaw {
    /// Ironic's name for the format (`disk_format`), or the compression.
    pub name: &'static str,
    /// What to do about it.
    pub hint: &'static str,
}

const CONVERT: &str =
    "convert it with `qemu-img convert -O raw`, or let Ironic convert it (force_raw_images)";
const DECOMPRESS: &str = "decompress it first";

const LZ4: &[u8] = &[0x04, 0x22, 0x4d, 0x18];

/// `head` past the skippable frames it starts with (magic 0x184D2A5?,
/// then a 32-bit length: zstd's and lz4's, for metadata such as pzstd's
/// frame sizes); empty when one runs past `head`.
pub fn past_skippable(mut head: &[u8]) -> &[u8] {
    while head.len() >= 8 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18] {
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        head = head.get(8usize.saturating_add(len)..).unwrap_or(&[]);
    }
    head
}

/// The format `head` (the image's first bytes) starts with, if not raw.
pub fn sniff(head: &[u8]) -> Option<NotRaw> {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    let found = |name, hint| Some(NotRaw { name, hint });
    if at(0, b"QFI\xfb") {
        return found("qcow2", CONVERT);
    }
    if at(0, b"QED\0") {
        return found("qed", CONVERT);
    }
    if at(0, b"KDMV") || at(0, b"COWD") || at(0, b"# Disk DescriptorFile") {
        return found("vmdk", CONVERT);
    }
    if at(0x40, &[0x7f, 0x10, 0xda, 0xbe]) {
        return found("vdi", CONVERT);
    }
    if at(0, b"vhdxfile") {
        return found("vhdx", CONVERT);
    }
    if at(0, b"conectix") {
        return found("vhd", CONVERT);
    }
    if at(0, &[0x1f, 0x8b, 0x08]) {
        return found("gzip", DECOMPRESS);
    }
    if at(0, &[0x28, 0xb5, 0x2f, 0xfd]) {
        return found("zstd", DECOMPRESS);
    }
    if at(0, LZ4) {
        return found("lz4", DECOMPRESS);
    }
    let skipped = past_skippable(head);
    if skipped.len() != head.len() {
        // pzstd starts every frame with a skippable one; lz4 may too.
        return if skipped.starts_with(LZ4) {
            found("lz4", DECOMPRESS)
        } else {
            found("zstd", DECOMPRESS)
        };
    }
    if at(0, &[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return found("xz", DECOMPRESS);
    }
    if at(0, b"BZh") && head.get(3).is_some_and(|d| (b'1'..=b'9').contains(d)) && at(4, b"1AY&SY") {
        return found("bzip2", DECOMPRESS);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(head: &[u8]) -> Option<&'static str> {
        sniff(head).map(|n| n.name)
    }

    #[test]
    fn container_formats_by_their_magic() {
        // qemu-img's qcow2 v3 header start: magic, version 3.
        assert_eq!(name(&[b'Q', b'F', b'I', 0xfb, 0, 0, 0, 3]), Some("qcow2"));
        assert_eq!(name(b"QED\0\x00\x00\x01\x00"), Some("qed"));
        assert_eq!(name(b"KDMV\x01\x00\x00\x00"), Some("vmdk"));
        assert_eq!(name(b"# Disk DescriptorFile\nversion=1"), Some("vmdk"));
        let mut vdi = [0u8; 0x48];
        vdi[..4].copy_from_slice(b"<<< ");
        vdi[0x40..0x44].copy_from_slice(&[0x7f, 0x10, 0xda, 0xbe]);
        assert_eq!(name(&vdi), Some("vdi"));
        assert_eq!(name(b"vhdxfile\0\0"), Some("vhdx"));
        assert_eq!(name(b"conectix\0\0\0\x02"), Some("vhd"));
    }

    #[test]
    fn compressed_streams_by_their_magic() {
        assert_eq!(name(&[0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3]), Some("gzip"));
        assert_eq!(name(&[0x28, 0xb5, 0x2f, 0xfd, 0x24, 0]), Some("zstd"));
        // pzstd: a skippable frame of 4 bytes (the next frame's size), then
        // a frame; lz4's frame magic, bare or after a skippable frame.
        let pzstd = [
            0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 9, 0, 0, 0, 0x28, 0xb5, 0x2f, 0xfd,
        ];
        assert_eq!(name(&pzstd), Some("zstd"));
        assert_eq!(past_skippable(&pzstd), &[0x28, 0xb5, 0x2f, 0xfd]);
        assert_eq!(name(&[0x04, 0x22, 0x4d, 0x18, 0x64]), Some("lz4"));
        assert_eq!(
            name(&[0x5f, 0x2a, 0x4d, 0x18, 0, 0, 0, 0, 0x04, 0x22, 0x4d, 0x18]),
            Some("lz4")
        );
        // A length past the head: still zstd's family, the stream decides.
        assert_eq!(
            name(&[0x50, 0x2a, 0x4d, 0x18, 0xff, 0xff, 0xff, 0xff]),
            Some("zstd")
        );
        assert_eq!(name(&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, 0, 4]), Some("xz"));
        assert_eq!(name(b"BZh91AY&SY\x01"), Some("bzip2"));
        assert_eq!(name(b"BZh9 not bzip2"), None);
    }

    #[test]
    fn raw_disks_and_filesystems_pass() {
        // An MBR boot sector, an empty image, zeros, an ISO 9660 hybrid.
        let mut mbr = [0u8; 512];
        mbr[0] = 0xeb;
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        assert_eq!(name(&mbr), None);
        assert_eq!(name(&[]), None);
        assert_eq!(name(&[0u8; 512]), None);
        assert_eq!(name(b"QFI"), None, "too short to be qcow2");
    }
}
