//! `log` to stderr, one line a record, prefixed like the kernel's own
//! messages with seconds since boot, so the two interleave readably on a
//! serial console: `[    1.652301] rivet: module virtio_blk loaded`.

use super::sys::boot_seconds;
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;

/// The console's last lines, kept for `log.collect_system_logs`.
const RING_BYTES: usize = 512 * 1024;
static RING: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());
static RING_LEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn keep(line: &str) {
    use std::sync::atomic::Ordering;
    let Ok(mut ring) = RING.lock() else { return };
    let mut len = RING_LEN.load(Ordering::Relaxed) + line.len();
    ring.push_back(line.to_string());
    while len > RING_BYTES {
        match ring.pop_front() {
            Some(old) => len -= old.len(),
            None => break,
        }
    }
    RING_LEN.store(len, Ordering::Relaxed);
}

/// What rivet has logged, oldest first (the last 512 KiB).
pub fn recent() -> String {
    RING.lock()
        .map(|r| r.iter().map(String::as_str).collect())
        .unwrap_or_default()
}

struct Console;

static CONSOLE: Console = Console;

impl Log for Console {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            Level::Error => "ERROR: ",
            Level::Warn => "warning: ",
            Level::Info => "",
            Level::Debug => "debug: ",
            Level::Trace => "trace: ",
        };
        // One write call a line, so lines from threads never interleave.
        let line = format!(
            "[{:>12}] rivet: {level}{}\n",
            crate::stream::Fixed(boot_seconds(), 6),
            record.args()
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        keep(&line);
    }

    fn flush(&self) {}
}

/// Installs the console logger. Safe to call more than once.
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&CONSOLE);
    log::set_max_level(level);
}
