//! Shared helpers for the QEMU end-to-end tests: the cached kernel, an
//! initramfs built by rivet itself, and `qemu/boot` run with a console log.
#![allow(dead_code)]

pub mod disk;
pub mod ironic;
pub mod netns;
pub mod tls;
pub mod uefi;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The extracted kernel package (`qemu/fetch-kernel` makes it).
pub fn kernel_dir() -> PathBuf {
    let dir = repo().join(".cache/kernel/current");
    assert!(
        dir.join("vmlinux").exists(),
        "no kernel in {}: run qemu/fetch-kernel (tests/run does)",
        dir.display()
    );
    dir
}

/// The binary to boot as /init: $RIVET_INIT (tests/run points it at the
/// release build, which is what ships) or the one cargo built for this run.
pub fn init_binary() -> PathBuf {
    std::env::var_os("RIVET_INIT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rivet")))
}

/// A scratch directory unique to this test process and name.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rivet-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `rivet mkinitramfs` for a class, built once per test process.
pub fn initramfs(class: &'static str) -> PathBuf {
    static VIRTIO: OnceLock<PathBuf> = OnceLock::new();
    static FULL: OnceLock<PathBuf> = OnceLock::new();
    static DEFAULT: OnceLock<PathBuf> = OnceLock::new();
    let cell = match class {
        "virtio" => &VIRTIO,
        "full" => &FULL,
        "default" => &DEFAULT,
        _ => panic!("no cell for class {class}"),
    };
    cell.get_or_init(|| {
        let out = scratch(&format!("initrd-{class}")).join("initrd.img");
        build_initramfs(class, &out, &[]);
        out
    })
    .clone()
}

/// The virtio class carrying `ca` as its CA bundle, built into `dir`.
pub fn initramfs_with_ca(dir: &Path, ca: &Path) -> PathBuf {
    let out = dir.join("initrd-ca.img");
    build_initramfs("virtio", &out, &["--ca-bundle", ca.to_str().unwrap()]);
    out
}

fn build_initramfs(class: &str, out: &Path, extra: &[&str]) {
    let summary = initramfs_built(class, out, extra);
    eprint!("{summary}");
}

/// `rivet mkinitramfs --class CLASS … EXTRA` into `out`; returns what it
/// printed (the summary and its warnings).
pub fn initramfs_built(class: &str, out: &Path, extra: &[&str]) -> String {
    let built = Command::new(env!("CARGO_BIN_EXE_rivet"))
        .args(["mkinitramfs", "--class", class, "--kernel"])
        .arg(kernel_dir())
        .arg("--init")
        .arg(init_binary())
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&built.stderr).into_owned();
    assert!(
        built.status.success(),
        "rivet mkinitramfs failed:\n{summary}"
    );
    summary
}

/// A sparse raw disk image of `mib` MiB.
pub fn blank_disk(dir: &Path, name: &str, mib: u64) -> PathBuf {
    let path = dir.join(name);
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(mib << 20).unwrap();
    path
}

pub struct Boot {
    pub args: Vec<String>,
    pub log: PathBuf,
}

impl Boot {
    pub fn new(dir: &Path, initrd: &Path) -> Boot {
        let log = dir.join("console.log");
        let args = vec![
            "--initrd".into(),
            initrd.display().to_string(),
            "--log".into(),
            log.display().to_string(),
            "--timeout".into(),
            "240".into(),
        ];
        Boot { args, log }
    }

    pub fn arg(mut self, flag: &str, value: impl ToString) -> Boot {
        self.args.push(flag.into());
        self.args.push(value.to_string());
        self
    }

    /// Runs qemu/boot; returns the console log. The run must end with the
    /// kernel's own line for `end` ("Power down", "Restarting system").
    pub fn run(self, end: &str) -> String {
        let output = Command::new(repo().join("qemu/boot"))
            .args(&self.args)
            .args(["--expect", end])
            .output()
            .unwrap();
        let console =
            String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned();
        assert!(
            output.status.success(),
            "qemu/boot failed:\n{}\n---- console ----\n{console}",
            String::from_utf8_lossy(&output.stderr)
        );
        console
    }
}

impl Boot {
    /// Runs qemu/boot until `done()` holds (asked twice a second, within
    /// the boot's own timeout), then stops QEMU; returns the console log.
    /// For a machine that must stay up: the test decides when it has seen
    /// enough.
    pub fn run_until(self, done: impl Fn() -> bool) -> String {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(repo().join("qemu/boot"))
            .args(&self.args)
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        while !done() && child.try_wait().unwrap().is_none() {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        let group = format!("-{}", child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = child.wait();
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }
}

/// The rivet lines of a console log, without their timestamps.
pub fn rivet_lines(console: &str) -> Vec<String> {
    console
        .lines()
        .filter_map(|l| {
            l.split_once("] rivet: ")
                .map(|(_, rest)| rest.trim_end().to_string())
        })
        .collect()
}

/// Asserts that some rivet line contains `needle`.
pub fn assert_logged(lines: &[String], needle: &str) {
    assert!(
        lines.iter().any(|l| l.contains(needle)),
        "no rivet line contains {needle:?}; rivet said:\n{}",
        lines.join("\n")
    );
}

/// Seconds since boot of the first rivet line containing `needle`.
pub fn logged_at(console: &str, needle: &str) -> Option<f64> {
    console
        .lines()
        .find(|l| l.contains("] rivet: ") && l.contains(needle))
        .and_then(|l| {
            let inner = l.split_once('[')?.1.split_once(']')?.0;
            inner.trim().parse().ok()
        })
}

/// A Python fixture server from tests/fixtures that prints "ready PORT"
/// once listening; killed on drop.
pub struct Fixture {
    child: std::process::Child,
    pub port: u16,
}

impl Fixture {
    pub fn start(script: &str, args: &[&str], log: &Path) -> Fixture {
        Fixture::start_in(None, script, args, log)
    }

    /// The fixture inside network namespace `netns` (or the host's).
    pub fn start_in(netns: Option<&str>, script: &str, args: &[&str], log: &Path) -> Fixture {
        use std::io::BufRead;
        let mut command = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "python3"]);
                c
            }
            None => Command::new("python3"),
        };
        let mut child = command
            .arg(repo().join("tests/fixtures").join(script))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("{script} did not start; see {}", log.display()))
            .parse()
            .unwrap();
        Fixture { child, port }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port free on the loopback right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
