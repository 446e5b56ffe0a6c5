//! The image's hash on a thread of its own.
//!
//! The deploy's thread inflates (zstd, gzip) and hands writes to the
//! disk's writer; the reader thread receives. Hashing on the deploy's
//! thread as well made a zstd image cost the decoder's time plus the
//! hash's (tests/bench/images, "inflating alone": 1.47 s where libzstd
//! alone takes 0.97 s and sha256 of the 627 MB served 0.61 s). Here the
//! bytes are copied into a chunk (a memcpy, ~0.1 s per GiB) and the chunk
//! hashed on another thread while the deploy goes on. Memory: `CHUNKS`
//! chunks of `CHUNK` bytes.

use super::channel::{sync_channel, Receiver, SyncSender};
use super::readahead::Filled;
use crate::deploy::ImageHasher;
use crate::plan::HashAlgo;
use crate::stream::Hasher;

const CHUNK: usize = 128 * 1024;
/// One filled by the deploy while the other is hashed.
const CHUNKS: usize = 2;

/// Chunks travel in the read-ahead's message type (`Ok((chunk, 0))`):
/// one channel type less in /init.
pub struct Offloaded {
    /// Filled chunks to the hashing thread; dropped to end it.
    full: Option<SyncSender<Filled>>,
    /// Hashed chunks back, emptied, and last the digest (`Err(hex)`).
    empty: Receiver<Filled>,
    current: Vec<u8>,
}

/// A hasher on a thread of its own, or on the caller's when no thread
/// can be started.
pub fn image_hasher(algo: HashAlgo) -> Box<dyn ImageHasher> {
    let (full, full_rx) = sync_channel::<Filled>(CHUNKS);
    // Every chunk and the digest fit: the hashing thread never waits.
    let (empty_tx, empty) = sync_channel::<Filled>(CHUNKS + 1);
    for _ in 1..CHUNKS {
        let _ = empty_tx.try_send(Ok((Vec::with_capacity(CHUNK), 0)));
    }
    let worker = std::thread::Builder::new()
        .name("rivet-hasher".into())
        .spawn(move || {
            let mut h = Hasher::new(algo);
            while let Ok(Ok((mut chunk, _))) = full_rx.recv() {
                h.update(&chunk);
                chunk.clear();
                let _ = empty_tx.try_send(Ok((chunk, 0)));
            }
            let _ = empty_tx.try_send(Err(h.finish_hex()));
        });
    if worker.is_err() {
        log::warn!("no thread for the image's hash: hashing on the deploy's");
        return Box::new(Hasher::new(algo));
    };
    Box::new(Offloaded {
        full: Some(full),
        empty,
        current: Vec::with_capacity(CHUNK),
    })
}

impl Offloaded {
    /// Hands the filled chunk over and takes a hashed one back (waiting
    /// for the hashing thread when it is behind).
    fn hand_over(&mut self) {
        let next = match self.empty.recv() {
            Ok(Ok((chunk, _))) => chunk,
            _ => Vec::with_capacity(CHUNK),
        };
        let full = std::mem::replace(&mut self.current, next);
        if let Some(to) = &self.full {
            let _ = to.send(Ok((full, 0)));
        }
    }
}

impl ImageHasher for Offloaded {
    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let n = (CHUNK - self.current.len()).min(data.len());
            self.current.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.current.len() == CHUNK {
                self.hand_over();
            }
        }
    }

    fn finish_hex(mut self: Box<Self>) -> String {
        if let Some(to) = self.full.take() {
            if !self.current.is_empty() {
                let _ = to.send(Ok((std::mem::take(&mut self.current), 0)));
            }
        }
        // The thread hashes what it was sent, hands the chunks back and
        // sends the digest once the sender above is gone.
        loop {
            match self.empty.recv() {
                Ok(Ok(_)) => {}
                Ok(Err(digest)) => return digest,
                Err(_) => return String::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same digest as hashing inline, whatever the pieces' sizes
    /// (empty, one byte, a chunk exactly, across chunks); a hasher dropped
    /// before its end (a failed deploy) lets its thread go.
    #[test]
    fn the_digest_is_the_inline_one_whatever_the_pieces() {
        let data: Vec<u8> = (0..(3 * CHUNK + 12345) as u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for algo in [HashAlgo::Sha256, HashAlgo::Sha512, HashAlgo::Md5] {
            let mut inline = Hasher::new(algo);
            inline.update(&data);
            let expected = inline.finish_hex();
            for pieces in [
                &[0usize, 1, CHUNK, 7][..],
                &[CHUNK - 1, 2, 100_000],
                &[usize::MAX],
            ] {
                let mut h = image_hasher(algo);
                let mut rest = &data[..];
                let mut i = 0;
                while !rest.is_empty() {
                    let n = pieces[i % pieces.len()].min(rest.len());
                    h.update(&rest[..n]);
                    rest = &rest[n..];
                    i += 1;
                }
                assert_eq!(h.finish_hex(), expected, "{algo:?} in pieces of {pieces:?}");
            }
            let mut nothing = image_hasher(algo);
            nothing.update(&[]);
            let mut empty = Hasher::new(algo);
            empty.update(&[]);
            assert_eq!(nothing.finish_hex(), empty.finish_hex());
        }
        let mut dropped = image_hasher(HashAlgo::Sha256);
        dropped.update(&data);
        drop(dropped);
    }
}
