//! The whole job in QEMU: rivet as PID 1 gets a DHCP lease from QEMU, fetches
//! its plan and image from an HTTP server on the host's loopback (10.0.2.2),
//! deploys onto a virtio disk and POSTs the result. Judged by the callback
//! and by the disk file read from the host afterwards.

mod common;
use common::disk::{blkid_at, ext4_put, files_equal_at, mkfs_image, sha256_file, sparse, MIB};
use common::{initramfs, rivet_lines, scratch, Boot};
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The host-side server; killed on drop.
struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Server {
    fn start(dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new("python3")
            .arg(common::repo().join("tests/fixtures/deploy_server.py"))
            .args(["--dir", dir.to_str().unwrap(), "--lifetime", "600"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("ready ")
            .expect("server did not start")
            .parse()
            .unwrap();
        Server {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    fn url(&self, name: &str) -> String {
        format!("http://10.0.2.2:{}/{name}", self.port)
    }

    fn callback(&self) -> Value {
        let text =
            std::fs::read(self.dir.join("posted-callback.json")).expect("no callback was posted");
        serde_json::from_slice(&text).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn root_image(dir: &Path) -> (PathBuf, String) {
    let img = mkfs_image(dir, "ext4", 48, "qemu-root");
    ext4_put(&img, "etc-hostname", b"deployed-by-rivet\n");
    let sum = sha256_file(&img);
    let path = dir.join("root.img");
    std::fs::rename(&img, &path).unwrap();
    (path, sum)
}

fn write_plan(dir: &Path, plan: Value) {
    std::fs::write(dir.join("plan.json"), serde_json::to_vec(&plan).unwrap()).unwrap();
}

#[test]
fn pid1_deploys_a_partition_image_from_http_and_calls_back() {
    let dir = scratch("qemu-deploy");
    let (img, sum) = root_image(&dir);
    let server = Server::start(&dir, &["--cut", &(5 * MIB).to_string(), "--times", "1"]);
    write_plan(
        &dir,
        json!({"image_type": "partition", "root_mb": 64, "swap_mb": 16, "deploy_boot_mode": "bios",
               "urls": [server.url("root.img")], "os_hash_algo": "sha256", "os_hash_value": sum}),
    );
    // A small disk first (not chosen: Ironic's default is the smallest ≥ 4 GiB).
    let small = dir.join("small.img");
    sparse(&small, 64 * MIB);
    let target = dir.join("target.img");
    sparse(&target, 4 << 30);
    let console = Boot::new(&dir, &initramfs("virtio"))
        .arg("--mem", 128)
        .arg("--disk", small.display())
        .arg("--disk", target.display())
        .arg(
            "--append",
            format!(
                "rivet.plan={} rivet.callback={}",
                server.url("plan.json"),
                server.url("callback")
            ),
        )
        .run("reboot: Power down");
    let lines = rivet_lines(&console);
    common::assert_logged(&lines, "DHCP: 10.0.2.15/24");
    common::assert_logged(&lines, "target disk /dev/vdb");
    common::assert_logged(&lines, "resumed at byte 5242880");
    common::assert_logged(&lines, "checksum verified: sha256");
    common::assert_logged(&lines, "result posted to");
    let cb = server.callback();
    assert_eq!(cb["status"], "succeeded", "{cb}");
    assert_eq!(cb["partitions"]["root"], "/dev/vdb2");
    // Read back from the host: the root uuid on disk is the reported one.
    let root = blkid_at(&target, 17 * MIB);
    assert_eq!(cb["root uuid"], root["UUID"].as_str(), "{cb}");
    assert!(
        files_equal_at(&img, &target, 17 * MIB, 48 * MIB),
        "root partition differs from the image"
    );
    assert_eq!(blkid_at(&target, MIB)["LABEL"], "swap1");
    assert_eq!(
        std::fs::read(&small)
            .unwrap()
            .iter()
            .filter(|&&b| b != 0)
            .count(),
        0,
        "the small disk was touched"
    );
    eprintln!(
        "deploy in QEMU: {} MB/s, boot to report {} s",
        cb["mb_per_s"], cb["boot_to_report_seconds"]
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn checksum_mismatch_is_reported_to_the_callback() {
    let dir = scratch("qemu-mismatch");
    let (_img, sum) = root_image(&dir);
    let server = Server::start(&dir, &[]);
    let wrong = "0".repeat(64);
    write_plan(
        &dir,
        json!({"image_type": "partition", "root_mb": 64, "deploy_boot_mode": "bios",
               "urls": [server.url("root.img")], "os_hash_algo": "sha256", "os_hash_value": wrong}),
    );
    let target = dir.join("target.img");
    sparse(&target, 4 << 30);
    let console = Boot::new(&dir, &initramfs("virtio"))
        .arg("--disk", target.display())
        .arg(
            "--append",
            format!(
                "rivet.plan={} rivet.callback={}",
                server.url("plan.json"),
                server.url("callback")
            ),
        )
        .run("reboot: Power down");
    let cb = server.callback();
    assert_eq!(cb["status"], "failed", "{cb}");
    assert_eq!(cb["step"], "checksum");
    let error = cb["error"].as_str().unwrap();
    assert!(error.contains(&wrong) && error.contains(&sum), "{error}");
    assert!(rivet_lines(&console)
        .iter()
        .any(|l| l.contains("deploy failed in step checksum")));
    assert!(
        !blkid_at(&target, MIB).contains_key("TYPE"),
        "a half-deployed root filesystem is visible"
    );
    let _ = std::fs::remove_dir_all(dir);
}
