//! Burn-in, as ironic-python-agent's `burnin_cpu`, `burnin_memory`,
//! `burnin_disk` and `burnin_network` steps do it with stress-ng and fio,
//! in rivet's own code: every byte written is a pattern the reader can
//! recompute from its position, so a flipped bit anywhere (RAM, disk, the
//! wire) is found and named by where it sits. No I/O of its own: disks are
//! [`crate::io::BlockDevice`]s, the network a [`crate::net::Transport`],
//! time comes in, and workers stop when a flag says so.

pub mod cpu;
pub mod disk;
pub mod memory;
pub mod network;

/// The pattern's 64-bit word `index` of a stream seeded by `seed`
/// (splitmix64: every word differs from its neighbours and from the same
/// place in a stream of another seed).
pub fn word(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Where whole words of the stream lie in a buffer that starts at byte
/// `offset`: `buf[head..body]`, bytes before and after taken one by one.
fn words_in(len: usize, offset: u64) -> (usize, usize) {
    let head = (offset.wrapping_neg() % 8).min(len as u64) as usize;
    (head, head + (len - head) / 8 * 8)
}

/// Fills `buf` with the bytes of stream `seed` from byte `offset` on.
pub fn fill(buf: &mut [u8], seed: u64, offset: u64) {
    let (head, body) = words_in(buf.len(), offset);
    let first = (offset + head as u64) / 8;
    for (i, w) in buf[head..body].chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&word(seed, first + i as u64).to_le_bytes());
    }
    for range in [0..head, body..buf.len()] {
        let mut bytes = Bytes::new(seed, offset + range.start as u64);
        for b in &mut buf[range] {
            *b = bytes.next_byte();
        }
    }
}

/// The first byte of `buf` that is not stream `seed`'s at `offset + i`:
/// (i, found, expected).
pub fn mismatch(buf: &[u8], seed: u64, offset: u64) -> Option<(usize, u8, u8)> {
    let (head, body) = words_in(buf.len(), offset);
    let bytewise = |from: usize, to: usize| {
        let mut bytes = Bytes::new(seed, offset + from as u64);
        (from..to).find_map(|i| {
            let want = bytes.next_byte();
            (buf[i] != want).then_some((i, buf[i], want))
        })
    };
    if let Some(m) = bytewise(0, head) {
        return Some(m);
    }
    let first = (offset + head as u64) / 8;
    for (i, w) in buf[head..body].chunks_exact(8).enumerate() {
        if w != word(seed, first + i as u64).to_le_bytes() {
            let at = head + i * 8;
            return bytewise(at, at + 8);
        }
    }
    bytewise(body, buf.len())
}

/// Stream `seed`'s bytes from a position on, a word computed per 8 bytes.
struct Bytes {
    seed: u64,
    at: u64,
    word: u64,
}

impl Bytes {
    fn new(seed: u64, at: u64) -> Bytes {
        Bytes {
            seed,
            at,
            word: word(seed, at / 8),
        }
    }
    fn next_byte(&mut self) -> u8 {
        if self.at % 8 == 0 {
            self.word = word(self.seed, self.at / 8);
        }
        let b = (self.word >> (self.at % 8 * 8)) as u8;
        self.at += 1;
        b
    }
}

/// Bytes over milliseconds, as MB/s (10⁶ bytes), for figures and logs.
pub fn mb_per_s(bytes: u64, ms: u64) -> f64 {
    bytes as f64 / 1000.0 / ms.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_is_positional_and_seeded() {
        let mut a = [0u8; 64];
        fill(&mut a, 7, 0);
        let mut b = [0u8; 40];
        fill(&mut b, 7, 24);
        assert_eq!(&a[24..], &b[..], "the same bytes wherever a read starts");
        assert_eq!(mismatch(&a, 7, 0), None);
        assert_eq!(mismatch(&a[3..], 7, 3), None);
        let mut c = [0u8; 64];
        fill(&mut c, 8, 0);
        assert!(a.iter().zip(&c).filter(|(x, y)| x == y).count() < 4);
        a[37] ^= 0x10;
        let (i, found, want) = mismatch(&a, 7, 0).unwrap();
        assert_eq!((i, found ^ want), (37, 0x10));
    }

    #[test]
    fn any_start_and_length_give_the_bytes_of_the_one_stream() {
        // Byte-by-byte reference: byte n is byte n % 8 of word n / 8.
        let reference = |n: u64| (word(3, n / 8) >> (n % 8 * 8)) as u8;
        for offset in 0..17u64 {
            for len in [0usize, 1, 5, 7, 8, 9, 16, 23, 40] {
                let mut buf = alloc::vec![0u8; len];
                fill(&mut buf, 3, offset);
                let want: alloc::vec::Vec<u8> =
                    (0..len as u64).map(|i| reference(offset + i)).collect();
                assert_eq!(buf, want, "offset {offset}, length {len}");
                assert_eq!(mismatch(&buf, 3, offset), None);
                for bad in [0, len / 2, len.saturating_sub(1)] {
                    if len == 0 {
                        continue;
                    }
                    let mut b = buf.clone();
                    b[bad] ^= 0x80;
                    assert_eq!(
                        mismatch(&b, 3, offset),
                        Some((bad, buf[bad] ^ 0x80, buf[bad])),
                        "offset {offset}, length {len}, byte {bad}"
                    );
                }
            }
        }
    }
}
