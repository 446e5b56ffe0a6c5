//! qcow2, QEMU's image format (versions 2 and 3, `compat=0.10` and `1.1`):
//! the header and the L1/L2 table entries. Big-endian throughout.
//! What rivet accepts (no backing file, nothing outside the file, ...) is
//! policy and lives in `deploy/qcow2.rs`; this module only reads fields.
//!
//! A guest cluster `i` is found through the L1 table (one entry per L2
//! table) and an L2 table (one entry per cluster, or per cluster and its 32
//! subclusters with `extended_l2`).

use core::fmt;

pub const MAGIC: [u8; 4] = *b"QFI\xfb";

mod field {
    use core::ops::Range;
    pub const MAGIC: Range<usize> = 0..4;
    pub const VERSION: Range<usize> = 4..8;
    pub const BACKING_FILE_OFFSET: Range<usize> = 8..16;
    pub const CLUSTER_BITS: Range<usize> = 20..24;
    pub const SIZE: Range<usize> = 24..32;
    pub const CRYPT_METHOD: Range<usize> = 32..36;
    pub const L1_SIZE: Range<usize> = 36..40;
    pub const L1_TABLE_OFFSET: Range<usize> = 40..48;
    pub const REFCOUNT_TABLE_OFFSET: Range<usize> = 48..56;
    pub const REFCOUNT_TABLE_CLUSTERS: Range<usize> = 56..60;
    pub const NB_SNAPSHOTS: Range<usize> = 60..64;
    /// Version 3 from here.
    pub const INCOMPATIBLE_FEATURES: Range<usize> = 72..80;
    pub const HEADER_LENGTH: Range<usize> = 100..104;
    pub const COMPRESSION_TYPE: usize = 104;
}

/// Header bytes of a version 2 image; version 3 declares its own (≥ 104).
pub const V2_HEADER_LEN: usize = 72;
const V3_MIN_HEADER_LEN: usize = 104;

/// Incompatible feature bits (version 3).
pub mod incompatible {
    /// Refcounts may be stale: irrelevant to a reader.
    pub const DIRTY: u64 = 1 << 0;
    pub const CORRUPT: u64 = 1 << 1;
    pub const EXTERNAL_DATA_FILE: u64 = 1 << 2;
    pub const COMPRESSION_TYPE: u64 = 1 << 3;
    pub const EXTENDED_L2: u64 = 1 << 4;
    pub const KNOWN: u64 = DIRTY | CORRUPT | EXTERNAL_DATA_FILE | COMPRESSION_TYPE | EXTENDED_L2;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Truncated,
    BadMagic,
    Version(u32),
    /// Outside qemu's 9 (512 B) ..= 21 (2 MiB).
    ClusterBits(u32),
    HeaderLength(u32),
    CompressionType(u8),
    /// Reserved bits set in an L1 or L2 entry.
    Reserved(u64),
    /// A table offset not aligned to a cluster.
    Unaligned(u64),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => write!(f, "qcow2 header truncated"),
            Error::BadMagic => write!(f, "not a qcow2 image"),
            Error::Version(v) => write!(f, "qcow2 version {v} (2 and 3 are known)"),
            Error::ClusterBits(b) => write!(f, "cluster_bits {b} (9 to 21 are valid)"),
            Error::HeaderLength(l) => write!(f, "header_length {l}"),
            Error::CompressionType(t) => write!(f, "unknown compression type {t}"),
            Error::Reserved(e) => write!(f, "table entry {e:#018x} has reserved bits set"),
            Error::Unaligned(o) => write!(f, "table offset {o:#x} is not cluster-aligned"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Raw deflate (no zlib header), qemu's default.
    Deflate,
    Zstd,
}

/// The fields a reader needs, parsed from the image's first bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub backing_file_offset: u64,
    pub cluster_bits: u32,
    /// Virtual disk size in bytes.
    pub size: u64,
    pub crypt_method: u32,
    pub l1_size: u32,
    pub l1_table_offset: u64,
    pub refcount_table_offset: u64,
    pub refcount_table_clusters: u32,
    pub nb_snapshots: u32,
    pub incompatible: u64,
    pub header_length: u32,
    pub compression: Compression,
}

fn be32(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    u32::from_be_bytes(b[r].try_into().unwrap_or([0; 4]))
}

fn be64(b: &[u8], r: core::ops::Range<usize>) -> u64 {
    u64::from_be_bytes(b[r].try_into().unwrap_or([0; 8]))
}

impl Header {
    pub fn parse(b: &[u8]) -> Result<Header, Error> {
        if b.len() < V2_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::MAGIC] != MAGIC {
            return Err(Error::BadMagic);
        }
        let version = be32(b, field::VERSION);
        if !(2..=3).contains(&version) {
            return Err(Error::Version(version));
        }
        let cluster_bits = be32(b, field::CLUSTER_BITS);
        if !(9..=21).contains(&cluster_bits) {
            return Err(Error::ClusterBits(cluster_bits));
        }
        let (incompatible, header_length, compression) = if version == 3 {
            if b.len() < V3_MIN_HEADER_LEN {
                return Err(Error::Truncated);
            }
            let len = be32(b, field::HEADER_LENGTH);
            if (len as usize) < V3_MIN_HEADER_LEN || len as u64 >= 1 << cluster_bits {
                return Err(Error::HeaderLength(len));
            }
            let incompatible = be64(b, field::INCOMPATIBLE_FEATURES);
            let compression = if incompatible & incompatible::COMPRESSION_TYPE == 0 {
                Compression::Deflate
            } else {
                if (len as usize) <= field::COMPRESSION_TYPE {
                    return Err(Error::HeaderLength(len));
                }
                match b.get(field::COMPRESSION_TYPE).ok_or(Error::Truncated)? {
                    0 => Compression::Deflate,
                    1 => Compression::Zstd,
                    t => return Err(Error::CompressionType(*t)),
                }
            };
            (incompatible, len, compression)
        } else {
            (0, V2_HEADER_LEN as u32, Compression::Deflate)
        };
        Ok(Header {
            version,
            backing_file_offset: be64(b, field::BACKING_FILE_OFFSET),
            cluster_bits,
            size: be64(b, field::SIZE),
            crypt_method: be32(b, field::CRYPT_METHOD),
            l1_size: be32(b, field::L1_SIZE),
            l1_table_offset: be64(b, field::L1_TABLE_OFFSET),
            refcount_table_offset: be64(b, field::REFCOUNT_TABLE_OFFSET),
            refcount_table_clusters: be32(b, field::REFCOUNT_TABLE_CLUSTERS),
            nb_snapshots: be32(b, field::NB_SNAPSHOTS),
            incompatible,
            header_length,
            compression,
        })
    }

    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    pub fn extended_l2(&self) -> bool {
        self.incompatible & incompatible::EXTENDED_L2 != 0
    }

    /// Bytes per L2 entry: 8, or 16 with subcluster bitmaps.
    pub fn l2_entry_len(&self) -> usize {
        if self.extended_l2() {
            16
        } else {
            8
        }
    }

    /// Clusters one L2 table maps.
    pub fn l2_entries(&self) -> u64 {
        self.cluster_size() / self.l2_entry_len() as u64
    }

    /// L1 entries the virtual size needs.
    pub fn l1_needed(&self) -> u64 {
        let span = self.cluster_size() * self.l2_entries();
        self.size.div_ceil(span)
    }
}

/// Bits 9–55 of L1 and standard L2 entries: a host offset.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const COPIED: u64 = 1 << 63;
const COMPRESSED: u64 = 1 << 62;
const ZERO: u64 = 1;

/// An L1 entry: the host offset of an L2 table, or none (all unallocated).
pub fn l1_entry(e: u64, cluster_bits: u32) -> Result<Option<u64>, Error> {
    if e & !(OFFSET_MASK | COPIED) != 0 {
        return Err(Error::Reserved(e));
    }
    let offset = e & OFFSET_MASK;
    if offset & ((1 << cluster_bits) - 1) != 0 {
        return Err(Error::Unaligned(offset));
    }
    Ok((offset != 0).then_some(offset))
}

/// What one guest cluster reads as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cluster {
    /// No data (reads as zeros: rivet accepts no backing file).
    Unallocated,
    /// Reads as zeros (a preallocated host cluster, if any, is not read).
    Zero,
    /// Stored at `offset`; `from_file` has a bit per subcluster (all 32 set
    /// without extended L2) whose bytes come from the file, the rest read
    /// as zeros.
    Data { offset: u64, from_file: u32 },
    /// Compressed bytes at `offset`, at most `len` of them (the count of
    /// 512-byte sectors is rounded up; the stream ends where it ends).
    Compressed { offset: u64, len: u64 },
}

/// Decodes an L2 entry; `bitmap` is the second word of an extended entry.
pub fn l2_entry(e: u64, bitmap: Option<u64>, cluster_bits: u32) -> Result<Cluster, Error> {
    if e & COMPRESSED != 0 {
        if bitmap.is_some_and(|b| b != 0) {
            return Err(Error::Reserved(e));
        }
        // x = 62 - (cluster_bits - 8): offset below, sector count above.
        let x = 62 - (cluster_bits - 8);
        let offset = e & ((1u64 << x) - 1);
        let sectors = ((e & !(COPIED | COMPRESSED)) >> x) + 1;
        let len = (sectors * 512).saturating_sub(offset & 511);
        return Ok(Cluster::Compressed { offset, len });
    }
    let offset = e & OFFSET_MASK;
    let reserved = match bitmap {
        // In extended entries bit 0 is reserved; zeros are in the bitmap.
        Some(_) => !(OFFSET_MASK | COPIED),
        None => !(OFFSET_MASK | COPIED | ZERO),
    };
    if e & reserved != 0 {
        return Err(Error::Reserved(e));
    }
    if offset & ((1 << cluster_bits) - 1) != 0 {
        return Err(Error::Unaligned(offset));
    }
    match bitmap {
        None if e & ZERO != 0 => Ok(Cluster::Zero),
        None if offset == 0 => Ok(Cluster::Unallocated),
        None => Ok(Cluster::Data {
            offset,
            from_file: u32::MAX,
        }),
        Some(b) => {
            let allocated = b as u32;
            let zero = (b >> 32) as u32;
            if allocated & zero != 0 {
                return Err(Error::Reserved(b));
            }
            match (offset, allocated) {
                (_, 0) if zero != 0 => Ok(Cluster::Zero),
                (_, 0) => Ok(Cluster::Unallocated),
                (0, _) => Err(Error::Reserved(b)),
                (offset, from_file) => Ok(Cluster::Data { offset, from_file }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `qemu-img create -f qcow2 x.qcow2 1M` (qemu 7.2), the first 112 bytes.
    const V3_1M: [u8; 112] = [
        0x51, 0x46, 0x49, 0xfb, 0x00, 0x00, 0x00, 0x03, // magic, version 3
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // no backing file
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, // backing size, cluster_bits 16
        0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, // size 1 MiB
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // no encryption, l1_size 1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, // l1_table_offset 0x30000
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, // refcount_table_offset 0x10000
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // 1 refcount cluster, 0 snapshots
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // snapshots_offset
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // incompatible
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // compatible
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // autoclear
        0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x70, // refcount_order 4, header_length 112
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // compression type 0, padding
    ];

    #[test]
    fn reads_qemu_img_header() {
        let h = Header::parse(&V3_1M).unwrap();
        assert_eq!(h.version, 3);
        assert_eq!(h.cluster_size(), 65536);
        assert_eq!(h.size, 1 << 20);
        assert_eq!(h.l1_size, 1);
        assert_eq!(h.l1_table_offset, 0x30000);
        assert_eq!(h.refcount_table_offset, 0x10000);
        assert_eq!(h.header_length, 112);
        assert_eq!(h.compression, Compression::Deflate);
        assert_eq!(h.l2_entries(), 8192);
        assert_eq!(h.l1_needed(), 1);
    }

    #[test]
    fn version_2_has_no_feature_fields() {
        let mut v2 = V3_1M;
        v2[7] = 2;
        v2[72] = 0xff; // would be incompatible features in v3
        let h = Header::parse(&v2[..72]).unwrap();
        assert_eq!((h.version, h.incompatible, h.header_length), (2, 0, 72));
    }

    #[test]
    fn zstd_and_extended_l2_from_the_feature_bits() {
        let mut b = V3_1M;
        b[79] = (incompatible::COMPRESSION_TYPE | incompatible::EXTENDED_L2) as u8;
        b[104] = 1;
        let h = Header::parse(&b).unwrap();
        assert_eq!(h.compression, Compression::Zstd);
        assert_eq!((h.l2_entry_len(), h.l2_entries()), (16, 4096));
        b[104] = 7;
        assert_eq!(Header::parse(&b), Err(Error::CompressionType(7)));
    }

    #[test]
    fn refuses_what_is_not_a_readable_header() {
        assert_eq!(Header::parse(&V3_1M[..71]), Err(Error::Truncated));
        assert_eq!(Header::parse(&V3_1M[..100]), Err(Error::Truncated));
        let mut b = V3_1M;
        b[3] = 0xfa;
        assert_eq!(Header::parse(&b), Err(Error::BadMagic));
        let mut b = V3_1M;
        b[7] = 4;
        assert_eq!(Header::parse(&b), Err(Error::Version(4)));
        let mut b = V3_1M;
        b[23] = 22;
        assert_eq!(Header::parse(&b), Err(Error::ClusterBits(22)));
        b[23] = 8;
        assert_eq!(Header::parse(&b), Err(Error::ClusterBits(8)));
        let mut b = V3_1M;
        b[103] = 0x60; // 96 < 104
        assert_eq!(Header::parse(&b), Err(Error::HeaderLength(96)));
    }

    #[test]
    fn l1_entries() {
        assert_eq!(l1_entry(0, 16), Ok(None));
        assert_eq!(l1_entry(0x8000_0000_0004_0000, 16), Ok(Some(0x40000)));
        assert_eq!(
            l1_entry(0x0000_0000_0004_0200, 16),
            Err(Error::Unaligned(0x40200))
        );
        assert_eq!(
            l1_entry(0x0100_0000_0004_0000, 16),
            Err(Error::Reserved(0x0100_0000_0004_0000))
        );
    }

    #[test]
    fn standard_l2_entries() {
        assert_eq!(l2_entry(0, None, 16), Ok(Cluster::Unallocated));
        assert_eq!(l2_entry(1, None, 16), Ok(Cluster::Zero));
        assert_eq!(l2_entry(0x8000_0000_0005_0001, None, 16), Ok(Cluster::Zero));
        assert_eq!(
            l2_entry(0x8000_0000_0005_0000, None, 16),
            Ok(Cluster::Data {
                offset: 0x50000,
                from_file: u32::MAX
            })
        );
        assert_eq!(
            l2_entry(0x0000_0000_0005_0002, None, 16),
            Err(Error::Reserved(0x50002))
        );
        assert_eq!(
            l2_entry(0x0000_0000_0005_1000, None, 16),
            Err(Error::Unaligned(0x51000))
        );
    }

    #[test]
    fn compressed_l2_entries() {
        // cluster_bits 16: x = 54; 2 more sectors, data at 0x50123.
        let e = COMPRESSED | (2 << 54) | 0x50123;
        assert_eq!(
            l2_entry(e, None, 16),
            Ok(Cluster::Compressed {
                offset: 0x50123,
                len: 3 * 512 - 0x123
            })
        );
        // cluster_bits 9: x = 61, one bit of sector count.
        let e = COMPRESSED | (1 << 61) | 0x1000;
        assert_eq!(
            l2_entry(e, None, 9),
            Ok(Cluster::Compressed {
                offset: 0x1000,
                len: 1024
            })
        );
        assert_eq!(l2_entry(e, Some(1), 9), Err(Error::Reserved(e)));
    }

    #[test]
    fn extended_l2_entries() {
        let data = 0x0000_0000_0005_0000;
        assert_eq!(
            l2_entry(data, Some(0x0000_0000_0000_00f0), 16),
            Ok(Cluster::Data {
                offset: 0x50000,
                from_file: 0xf0
            })
        );
        assert_eq!(
            l2_entry(0, Some(0xffff_ffff_0000_0000), 16),
            Ok(Cluster::Zero)
        );
        assert_eq!(l2_entry(0, Some(0), 16), Ok(Cluster::Unallocated));
        // Allocated subclusters with no host cluster, or both bits at once.
        assert_eq!(l2_entry(0, Some(1), 16), Err(Error::Reserved(1)));
        assert_eq!(
            l2_entry(data, Some(0x0000_0001_0000_0001), 16),
            Err(Error::Reserved(0x0000_0001_0000_0001))
        );
        // Bit 0 is reserved in extended entries.
        assert_eq!(
            l2_entry(data | 1, Some(1), 16),
            Err(Error::Reserved(data | 1))
        );
    }
}
