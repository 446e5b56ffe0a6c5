//! The image source read on a thread of its own, a few chunks ahead of the
//! deploy.
//!
//! Receiving an image over rivet's own TCP/IP costs a CPU (the packet ring,
//! smoltcp, TLS), and so does hashing it (sha256: ~0.75 s per GiB with
//! SHA-NI). On one thread the two add up; here the source runs on this
//! thread while the deploy hashes (and hands writes to the block device's
//! writer thread) on the caller's, so a deploy costs the slower of the
//! three instead of their sum (tests/bench/net-stream, "HTTP -> loop").
//! A source that reads cheaply (a file) is hashed here too, as it is read:
//! then the deploy's thread only inflates (tests/bench/images, "zstd
//! inflating alone"), where over the network this thread has no time.
//! Memory: `DEPTH + 1` chunks of `CHUNK` bytes (768 KiB), besides the
//! deploy's buffer.

use super::channel::{sync_channel, Receiver, SyncSender};
use super::source::SourceError;
use crate::io::ImageSource;
use crate::plan::HashAlgo;
use crate::stream::{fill, Hasher};
use std::fmt::Display;
use std::sync::{Arc, Mutex};

/// Bytes per hand-over: large enough that the hand-over costs nothing
/// next to the bytes, small enough that the first write is not delayed
/// (512 KiB measured no faster: tests/bench/images, net-stream).
const CHUNK: usize = 256 * 1024;
/// Chunks read but not yet taken.
const DEPTH: usize = 2;
/// Bytes held by the chunks in circulation.
pub const MEMORY: usize = (DEPTH + 1) * CHUNK;

/// A filled chunk and how much of it holds bytes; shorter than the chunk
/// only at the end of the source.
type Filled = Result<(Vec<u8>, usize), String>;

/// What the deploy side asks of the reader.
enum Ask {
    /// Fill this chunk with the next bytes.
    Fill(Vec<u8>),
    /// Read these bytes at an offset, apart from the stream.
    At(u64, usize),
    /// GET another resource over the source's network (a config drive),
    /// its body sent piece by piece on the channel given.
    Other(String, SyncSender<Fetched>),
}

/// A piece of [`Ask::Other`]'s body, or its end: what the source's
/// `fetch_other` returned.
enum Fetched {
    Piece(Vec<u8>),
    End(Option<Result<(), String>>),
}

/// The answer to [`Ask::At`], in the type chunks come in (one channel
/// type less in /init): the bytes, or `Ok` with none when the source cannot
/// read at offsets, or the error.
type ReadAt = Filled;

/// An [`ImageSource`] whose reads come from chunks another thread filled.
pub struct ReadAhead {
    filled: Receiver<Filled>,
    empty: SyncSender<Ask>,
    read_at: Receiver<ReadAt>,
    current: Vec<u8>,
    at: usize,
    len: usize,
    ended: bool,
    size: Option<u64>,
    describe: String,
    /// Set when the reader hashes the stream: the algorithm, and where it
    /// leaves the digest before it hands over the stream's last chunk.
    hashed: Option<(HashAlgo, Arc<Mutex<Option<String>>>)>,
}

/// Runs `deploy` with `src` read ahead on a scoped thread, hashed there by
/// `hash` when `src` reads cheaply. When `deploy` returns early (an error),
/// the reader stops after the read in progress.
pub fn read_ahead<S, R>(
    src: &mut S,
    hash: Option<HashAlgo>,
    deploy: impl FnOnce(&mut ReadAhead) -> R,
) -> R
where
    S: ImageSource + Send,
    S::Error: Display,
{
    // Room for every chunk, so the reader never waits to hand one over
    // and always comes back for the next ask (a read at an offset).
    let (filled_tx, filled) = sync_channel::<Filled>(DEPTH + 1);
    let (empty, empty_rx) = sync_channel::<Ask>(DEPTH + 1);
    let (read_at_tx, read_at) = sync_channel::<ReadAt>(1);
    for _ in 0..=DEPTH {
        empty
            .send(Ask::Fill(vec![0u8; CHUNK]))
            .expect("the channel holds DEPTH + 1");
    }
    let mut ahead = ReadAhead {
        filled,
        empty,
        read_at,
        current: Vec::new(),
        at: 0,
        len: 0,
        ended: false,
        size: src.size(),
        describe: src.describe(),
        hashed: hash
            .filter(|_| src.reads_cheaply())
            .map(|algo| (algo, Arc::new(Mutex::new(None)))),
    };
    let mut hasher = ahead
        .hashed
        .as_ref()
        .map(|(algo, slot)| (Hasher::new(*algo), slot.clone()));
    let on_no_thread = filled_tx.clone();
    std::thread::scope(move |scope| {
        let reader = std::thread::Builder::new()
            .name("rivet-reader".into())
            .spawn_scoped(scope, move || {
                // Ends when the deploy side has gone (its channels closed);
                // after the source ended or failed it only reads at offsets.
                let mut ended = false;
                while let Ok(ask) = empty_rx.recv() {
                    match ask {
                        Ask::Fill(_) if ended => {}
                        Ask::Fill(mut chunk) => {
                            let message = match fill(src, &mut chunk) {
                                Ok(n) => {
                                    ended = n < CHUNK;
                                    if let Some((h, _)) = &mut hasher {
                                        h.update(&chunk[..n]);
                                    }
                                    if ended {
                                        if let Some((h, slot)) = hasher.take() {
                                            *slot.lock().unwrap_or_else(|e| e.into_inner()) =
                                                Some(h.finish_hex());
                                        }
                                    }
                                    Ok((chunk, n))
                                }
                                Err(e) => {
                                    ended = true;
                                    Err(e.to_string())
                                }
                            };
                            if filled_tx.send(message).is_err() {
                                break;
                            }
                        }
                        Ask::Other(url, to) => {
                            let end = src.fetch_other(&url, &mut |piece| {
                                to.send(Fetched::Piece(piece.to_vec()))
                                    .map_err(|_| "the deploy side stopped taking it".to_string())
                            });
                            let _ = to.send(Fetched::End(end));
                        }
                        Ask::At(offset, len) => {
                            let mut buf = vec![0u8; len];
                            let got = match src.read_at(offset, &mut buf) {
                                Some(Ok(())) => Ok((buf, len)),
                                Some(Err(e)) => Err(e),
                                None => Ok((Vec::new(), 0)),
                            };
                            if read_at_tx.send(got).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        if let Err(e) = reader {
            // The deploy fails with this as its image error, before it
            // writes anything of the image.
            let _ = on_no_thread.send(Err(format!("no thread to read the image on: {e}")));
        }
        drop(on_no_thread);
        let result = deploy(&mut ahead);
        // Closes both channels, so the reader ends before the scope joins it.
        drop(ahead);
        result
    })
}

impl embedded_io::ErrorType for ReadAhead {
    type Error = SourceError;
}

impl embedded_io::Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, SourceError> {
        if self.at == self.len {
            if self.ended {
                return Ok(0);
            }
            let spent = std::mem::take(&mut self.current);
            if !spent.is_empty() {
                // The reader may already have ended: then nobody needs it.
                let _ = self.empty.try_send(Ask::Fill(spent));
            }
            let (chunk, n) = match self.filled.recv() {
                Ok(Ok(filled)) => filled,
                Ok(Err(e)) => {
                    self.ended = true;
                    return Err(SourceError(std::io::Error::other(e)));
                }
                Err(_) => {
                    self.ended = true;
                    return Ok(0);
                }
            };
            self.ended = n < chunk.len();
            self.current = chunk;
            self.at = 0;
            self.len = n;
        }
        let n = buf.len().min(self.len - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl ImageSource for ReadAhead {
    fn size(&self) -> Option<u64> {
        self.size
    }
    fn describe(&self) -> String {
        self.describe.clone()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Option<Result<(), String>> {
        if buf.is_empty() {
            return Some(Ok(()));
        }
        if self.empty.send(Ask::At(offset, buf.len())).is_err() {
            return Some(Err("the image reader has stopped".into()));
        }
        match self.read_at.recv() {
            Ok(Ok((bytes, 0))) if bytes.is_empty() => None,
            Ok(Ok((bytes, _))) => {
                buf.copy_from_slice(&bytes);
                Some(Ok(()))
            }
            Ok(Err(e)) => Some(Err(e)),
            Err(_) => Some(Err("the image reader has stopped".into())),
        }
    }
    fn hashes_stream(&self, algo: HashAlgo) -> bool {
        matches!(&self.hashed, Some((hashing, _)) if *hashing == algo)
    }
    /// The reader left it before handing over the last chunk; it is taken
    /// only once that chunk has been read to its end.
    fn stream_digest(&mut self) -> Option<String> {
        if self.at == self.len && !self.ended {
            // A stream of whole chunks: its end is an empty chunk still to come.
            let _ = embedded_io::Read::read(self, &mut [0u8; 1]);
        }
        let slot = &self.hashed.as_ref()?.1;
        if !(self.ended && self.at == self.len) {
            return None;
        }
        slot.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
    /// Asked of the reader thread, which owns the source (and so the
    /// network); its pieces come back over a channel of their own, which
    /// is dropped when `sink` fails, so the reader stops at once.
    fn fetch_other(
        &mut self,
        url: &str,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Option<Result<(), String>> {
        let (to, pieces) = sync_channel::<Fetched>(4);
        if self.empty.send(Ask::Other(url.into(), to)).is_err() {
            return Some(Err("the image reader has stopped".into()));
        }
        loop {
            match pieces.recv() {
                Ok(Fetched::Piece(piece)) => {
                    if let Err(e) = sink(&piece) {
                        return Some(Err(e));
                    }
                }
                Ok(Fetched::End(end)) => return end,
                Err(_) => return Some(Err("the image reader has stopped".into())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::SliceImage;
    use embedded_io::Read;

    /// Serves `data`, then fails.
    struct Failing<'a>(SliceImage<'a>);
    impl embedded_io::ErrorType for Failing<'_> {
        type Error = SourceError;
    }
    impl Read for Failing<'_> {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, SourceError> {
            match self.0.read(buf) {
                Ok(0) => Err(SourceError(std::io::Error::other("connection reset"))),
                other => Ok(other.unwrap()),
            }
        }
    }
    impl ImageSource for Failing<'_> {
        fn size(&self) -> Option<u64> {
            None
        }
        fn describe(&self) -> String {
            "failing".into()
        }
    }

    fn read_all(r: &mut ReadAhead, step: usize) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; step];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// A source the reader may hash: a file, as far as read_ahead knows.
    struct Cheap<'a>(SliceImage<'a>);
    impl embedded_io::ErrorType for Cheap<'_> {
        type Error = core::convert::Infallible;
    }
    impl Read for Cheap<'_> {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            self.0.read(buf)
        }
    }
    impl ImageSource for Cheap<'_> {
        fn size(&self) -> Option<u64> {
            self.0.size()
        }
        fn describe(&self) -> String {
            "cheap".into()
        }
        fn reads_cheaply(&self) -> bool {
            true
        }
    }

    #[test]
    fn a_cheap_source_is_hashed_by_the_reader_and_the_digest_comes_only_at_the_end() {
        for len in [0, 1000, 2 * CHUNK, 2 * CHUNK + 1] {
            let data: Vec<u8> = (0..len).map(|i| (i * 13 % 241) as u8).collect();
            let mut inline = Hasher::new(HashAlgo::Sha256);
            inline.update(&data);
            let want = inline.finish_hex();
            let mut src = Cheap(SliceImage::new(&data));
            let got = read_ahead(&mut src, Some(HashAlgo::Sha256), |r| {
                assert!(r.hashes_stream(HashAlgo::Sha256));
                assert!(!r.hashes_stream(HashAlgo::Sha512), "another algorithm");
                if len > 1 {
                    let mut first = [0u8; 1];
                    r.read(&mut first).unwrap();
                    assert_eq!(r.stream_digest(), None, "{len}: not at the end yet");
                    return [first.to_vec(), read_all(r, 4096).unwrap()].concat();
                }
                read_all(r, 4096).unwrap()
            });
            assert!(got == data);
            let mut src = Cheap(SliceImage::new(&data));
            let digest = read_ahead(&mut src, Some(HashAlgo::Sha256), |r| {
                // Read exactly the stream's bytes, never the empty read after.
                let mut all = vec![0u8; len];
                crate::stream::fill(r, &mut all).unwrap();
                r.stream_digest()
            });
            assert_eq!(digest, Some(want), "{len} bytes");
        }
    }

    #[test]
    fn a_network_source_or_no_checksum_leaves_the_hash_to_the_deploy() {
        let data = vec![5u8; 3000];
        let mut src = SliceImage::new(&data);
        read_ahead(&mut src, Some(HashAlgo::Sha256), |r| {
            assert!(!r.hashes_stream(HashAlgo::Sha256));
            read_all(r, 4096).unwrap();
            assert_eq!(r.stream_digest(), None);
        });
        let mut src = Cheap(SliceImage::new(&data));
        read_ahead(&mut src, None, |r| {
            assert!(!r.hashes_stream(HashAlgo::Sha256));
        });
    }

    #[test]
    fn every_byte_arrives_in_order_whatever_the_read_size() {
        let data: Vec<u8> = (0..(3 * CHUNK + 12_345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        for step in [1000, CHUNK, 3 * CHUNK + 1] {
            let mut src = SliceImage::new(&data);
            let got = read_ahead(&mut src, None, |r| {
                assert_eq!(r.size(), Some(data.len() as u64));
                read_all(r, step)
            });
            assert!(got.unwrap() == data, "read size {step}");
        }
    }

    #[test]
    fn reads_at_offsets_go_through_the_reader_before_during_and_after_the_stream() {
        let data: Vec<u8> = (0..(2 * CHUNK + 777)).map(|i| (i % 253) as u8).collect();
        let mut src = SliceImage {
            ranges: true,
            ..SliceImage::new(&data)
        };
        let got = read_ahead(&mut src, None, |r| {
            let mut part = vec![0u8; 1000];
            assert_eq!(r.read_at(CHUNK as u64 + 5, &mut part), Some(Ok(())));
            assert_eq!(part, data[CHUNK + 5..CHUNK + 1005]);
            let mut head = vec![0u8; 10];
            assert_eq!(crate::stream::fill(r, &mut head).unwrap(), 10);
            let rest = read_all(r, 4096).unwrap();
            // After the end the reader still answers.
            assert_eq!(r.read_at(3, &mut part[..4]), Some(Ok(())));
            assert_eq!(part[..4], data[3..7]);
            assert!(r.read_at(data.len() as u64, &mut part).unwrap().is_err());
            [head, rest].concat()
        });
        assert!(got == data);
        // A source that cannot read at offsets says so.
        let mut plain = SliceImage::new(&data);
        read_ahead(&mut plain, None, |r| {
            assert_eq!(r.read_at(0, &mut [0u8; 8]), None)
        });
    }

    #[test]
    fn a_source_of_exactly_whole_chunks_ends() {
        let data = vec![9u8; 2 * CHUNK];
        let mut src = SliceImage::new(&data);
        let got = read_ahead(&mut src, None, |r| read_all(r, 4096)).unwrap();
        assert_eq!(got.len(), data.len());
    }

    #[test]
    fn a_source_error_reaches_the_deploy_after_the_bytes_before_it() {
        let data = vec![1u8; CHUNK + 100];
        let mut src = Failing(SliceImage::new(&data));
        let got = read_ahead(&mut src, None, |r| {
            let mut first = vec![0u8; CHUNK];
            assert_eq!(crate::stream::fill(r, &mut first).unwrap(), CHUNK);
            let mut rest = [0u8; 100];
            assert_eq!(
                crate::stream::fill(r, &mut rest).unwrap_err().to_string(),
                "connection reset"
            );
            read_all(r, 4096)
        });
        assert_eq!(got, Ok(Vec::new()), "nothing after the error");
    }

    #[test]
    fn a_deploy_that_stops_early_ends_the_reader() {
        let data = vec![1u8; 8 * CHUNK];
        let mut src = SliceImage::new(&data);
        let first = read_ahead(&mut src, None, |r| {
            let mut b = [0u8; 10];
            r.read(&mut b).unwrap()
        });
        assert_eq!(first, 10, "and the scope joined the reader: this returned");
    }
}
