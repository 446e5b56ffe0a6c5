//! `log` to stderr, one line a record, prefixed like the kernel's own
//! messages with seconds since boot, so the two interleave readably on a
//! serial console: `[    1.652301] rivet: module virtio_blk loaded`.

use super::sys::boot_seconds;
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;

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
            "[{:12.6}] rivet: {level}{}\n",
            boot_seconds(),
            record.args()
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the console logger. Safe to call more than once.
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&CONSOLE);
    log::set_max_level(level);
}
