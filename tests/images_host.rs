//! Images as users have them: qcow2 made by qemu-img (every cluster size,
//! compressed with deflate or zstd, subclusters, version 2), gzip and zstd
//! streams of raw images, from files and over HTTP from nginx with and
//! without Range; each result compared byte for byte with what
//! `qemu-img convert -O raw` (or the decompressor) makes of the image.
//!
//! Cost on 2 cores under TCG (`tests/run` prints each binary's time): about 6 s.

mod common;
use common::disk::*;
use common::netns::Net;
use common::scratch;
use serde_json::json;
use std::path::{Path, PathBuf};

/// Fills `disk` with a pattern, so holes the image leaves must be zeroed.
fn garbage(disk: &Path, bytes: u64) {
    let chunk: Vec<u8> = (0..MIB as usize).map(|i| (i * 7 + 3) as u8 | 1).collect();
    let mut f = std::fs::File::create(disk).unwrap();
    for _ in 0..bytes / MIB {
        std::io::Write::write_all(&mut f, &chunk).unwrap();
    }
}

fn qemu_img_convert(src: &Path, dst: &Path, format: &str, opts: &[&str]) {
    let mut args = vec!["convert", "-q", "-O", format];
    args.extend_from_slice(opts);
    args.extend([src.to_str().unwrap(), dst.to_str().unwrap()]);
    ok("qemu-img", &args);
}

/// `qemu-img convert -O raw` of `image`: the reference.
fn reference(image: &Path) -> PathBuf {
    let raw = image.with_extension("ref");
    qemu_img_convert(image, &raw, "raw", &[]);
    raw
}

fn whole_disk_plan(dir: &Path, image: &Path, format: serde_json::Value) -> PathBuf {
    plan_file(
        dir,
        "plan.json",
        json!({"image_type": "whole-disk", "disk_format": format, "deploy_boot_mode": "bios",
               "urls": [file_url(image)],
               "os_hash_algo": "sha256", "os_hash_value": sha256_file(image)}),
    )
}

/// The whole-disk image's partition (1 MiB to 41 MiB, holes and all)
/// and the GPT verified: the rest of the first MiB is rewritten by the
/// deploy (the backup GPT moves to the end of the disk).
fn assert_like_reference(disk: &Path, raw: &Path, what: &str) {
    assert!(
        files_equal_at_both(raw, disk, MIB, 40 * MIB),
        "{what}: the partition differs from qemu-img's"
    );
    assert_sgdisk_clean(disk);
}

fn files_equal_at_both(a: &Path, b: &Path, offset: u64, len: u64) -> bool {
    read_at(a, offset, len as usize) == read_at(b, offset, len as usize)
}

#[test]
fn qcow2_images_qemu_img_makes_are_written_as_qemu_img_converts_them() {
    let dir = scratch("qcow2-variants");
    let raw = gpt_whole_disk_image(&dir);
    let disk = dir.join("disk.img");
    for (opts, declared) in [
        (&["-o", "cluster_size=512"][..], json!("qcow2")),
        (&[][..], serde_json::Value::Null),
        (&["-o", "cluster_size=2M"][..], json!("qcow2")),
        (&["-c"][..], json!("qcow2")),
        (&["-c", "-o", "compression_type=zstd"][..], json!("unknown")),
        (&["-o", "extended_l2=on"][..], json!("qcow2")),
        (&["-o", "compat=0.10"][..], json!("qcow2")),
    ] {
        let what = format!("qemu-img convert {opts:?}");
        let image = dir.join("image.qcow2");
        qemu_img_convert(&raw, &image, "qcow2", opts);
        let plan = whole_disk_plan(&dir, &image, declared);
        garbage(&disk, 96 * MIB);
        let d = rivet_deploy(&disk, &plan, &[]);
        assert!(d.ok, "{what}: {}", d.stderr);
        assert!(
            d.stderr.contains("tables read and checked"),
            "{what}: {}",
            d.stderr
        );
        assert_eq!(
            d.result["image_bytes"],
            std::fs::metadata(&image).unwrap().len(),
            "{what}: image_bytes counts the file as served"
        );
        assert_like_reference(&disk, &reference(&image), &what);
        assert_eq!(blkid_at(&disk, MIB)["LABEL"], "whole-root", "{what}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn subclusters_and_zero_clusters_written_by_qemu_io() {
    // A guest that wrote pieces: subclusters from the file, zeroed ones,
    // a zero cluster over data, holes over the disk's old bytes.
    let dir = scratch("qcow2-subclusters");
    let image = dir.join("sub.qcow2");
    ok(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "extended_l2=on",
            image.to_str().unwrap(),
            "8M",
        ],
    );
    ok(
        "qemu-io",
        &[
            "-c",
            "write -P 0x55 4k 4k",
            "-c",
            "write -P 0x66 1M 64k",
            "-c",
            "write -P 0x67 3M 192k",
            "-c",
            "write -z 3M 64k",
            "-c",
            "write -P 0x77 5124k 2k",
            "-c",
            "write -z 5126k 2k",
            image.to_str().unwrap(),
        ],
    );
    let disk = dir.join("disk.img");
    garbage(&disk, 16 * MIB);
    let plan = whole_disk_plan(&dir, &image, json!("qcow2"));
    let d = rivet_deploy(&disk, &plan, &[]);
    assert!(d.ok, "{}", d.stderr);
    let raw = reference(&image);
    assert!(
        files_equal_at_both(&raw, &disk, 0, 8 * MIB),
        "differs from qemu-img's"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_qcow2_partition_image_gives_its_root_uuid_on_512_and_4096_byte_sectors() {
    let dir = scratch("qcow2-partition");
    let fs = mkfs_image(&dir, "ext4", 24, "qcow2-root");
    ext4_put(&fs, "hello", b"from a qcow2");
    let image = dir.join("root.qcow2");
    // 512-byte clusters: on a 4096-byte-sector disk most clusters start
    // inside a sector.
    qemu_img_convert(&fs, &image, "qcow2", &["-c", "-o", "cluster_size=512"]);
    let plan = plan_file(
        &dir,
        "plan.json",
        json!({"image_type": "partition", "root_mb": 32, "deploy_boot_mode": "bios",
               "urls": [file_url(&image)], "checksum": md5_file(&image)}),
    );
    let uuid = blkid_at(&fs, 0)["UUID"].clone();
    for sector in [512u32, 4096] {
        let file = dir.join(format!("disk-{sector}.img"));
        garbage(&file, 128 * MIB);
        let dev = Loop::attach(&file, sector, true);
        let d = rivet_deploy(Path::new(&dev.dev), &plan, &[]);
        assert!(d.ok, "{sector}: {}", d.stderr);
        assert_eq!(d.result["root uuid"], uuid.as_str(), "{sector}");
        let (_, parts) = sfdisk_parts(Path::new(&dev.dev));
        let root = parts.last().unwrap().0 * sector as u64;
        assert!(
            files_equal_at(&fs, &file, root, 24 * MIB),
            "{sector}: the root partition differs"
        );
        // Through a loop device of its own: partition nodes of loop
        // devices do not appear in every sandbox.
        let part = Loop::range(&file, root, 24 * MIB);
        ok("e2fsck", &["-fn", &part.dev]);
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn gzip_and_zstd_streams_are_inflated_while_they_stream() {
    let dir = scratch("compressed");
    let raw = gpt_whole_disk_image(&dir);
    let disk = dir.join("disk.img");
    let half = dir.join("half");
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let p = raw.to_str().unwrap();
    let out = |cmd: &str, args: &[&str]| run(cmd, args).stdout;
    cases.push(("gzip", out("gzip", &["-c", p])));
    // pigz and `cat a.gz b.gz` make several members; zstd the same frames.
    ok(
        "dd",
        &[
            &format!("if={p}"),
            &format!("of={}", half.display()),
            "bs=1M",
            "count=20",
            "status=none",
        ],
    );
    let tail = dir.join("tail");
    ok(
        "dd",
        &[
            &format!("if={p}"),
            &format!("of={}", tail.display()),
            "bs=1M",
            "skip=20",
            "status=none",
        ],
    );
    let (h, t) = (half.to_str().unwrap(), tail.to_str().unwrap());
    cases.push((
        "gzip, two members",
        [out("gzip", &["-c", h]), out("gzip", &["-c", t])].concat(),
    ));
    cases.push(("zstd -19", out("zstd", &["-q", "-19", "-c", p])));
    cases.push((
        "zstd, two frames",
        [out("zstd", &["-q", "-c", h]), out("zstd", &["-q", "-c", t])].concat(),
    ));
    // pzstd puts a skippable frame (the next frame's size) before each
    // frame: it was taken for a raw image and written as it is, and the
    // deploy reported success with no filesystem on the disk.
    cases.push(("pzstd", out("pzstd", &["-q", "-p", "2", "-c", p])));
    for (what, bytes) in cases {
        let image = dir.join("image.z");
        std::fs::write(&image, &bytes).unwrap();
        let plan = whole_disk_plan(&dir, &image, json!("raw"));
        garbage(&disk, 96 * MIB);
        let d = rivet_deploy(&disk, &plan, &[]);
        assert!(d.ok, "{what}: {}", d.stderr);
        assert_eq!(d.result["image_bytes"], bytes.len(), "{what}");
        assert_like_reference(&disk, &raw, what);
    }
    // Corrupt data after a good start: the deploy fails, nothing bootable.
    let mut bad = out("gzip", &["-c", p]);
    let at = bad.len() / 2;
    bad[at..at + 64].fill(0x55);
    let image = dir.join("bad.gz");
    std::fs::write(&image, &bad).unwrap();
    garbage(&disk, 96 * MIB);
    let d = rivet_deploy(&disk, &whole_disk_plan(&dir, &image, json!("raw")), &[]);
    assert!(!d.ok);
    assert!(d.stderr.contains("gzip"), "{}", d.stderr);
    assert!(
        blkid_at(&disk, 0).is_empty(),
        "something recognisable was left"
    );
    assert_ne!(
        read_at(&disk, 510, 2),
        [0x55, 0xaa],
        "a partition table was left"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Refused with the reason, the disk byte for byte as it was.
#[test]
fn images_rivet_cannot_or_must_not_write_are_refused_before_the_disk_is_touched() {
    let dir = scratch("qcow2-refused");
    let fs = mkfs_image(&dir, "ext4", 8, "refused");
    let q = |name: &str, args: &[&str], size: &str| {
        let path = dir.join(name);
        let p = path.to_str().unwrap().to_string();
        let mut a = vec!["create", "-q", "-f", "qcow2"];
        a.extend_from_slice(args);
        a.extend([p.as_str(), size]);
        ok("qemu-img", &a);
        path
    };
    let plain = dir.join("plain.qcow2");
    qemu_img_convert(&fs, &plain, "qcow2", &[]);
    let backed = q(
        "backed.qcow2",
        &["-F", "qcow2", "-b", plain.to_str().unwrap()],
        "8M",
    );
    let data_file = dir.join("data.raw");
    let external = q(
        "external.qcow2",
        &["-o", &format!("data_file={}", data_file.display())],
        "8M",
    );
    // crypt_method 2 (LUKS) in a copy of a plain image: qemu-img's own
    // LUKS creation times its key derivation, which not every sandbox allows.
    let encrypted = dir.join("enc.qcow2");
    std::fs::copy(&plain, &encrypted).unwrap();
    write_at(&encrypted, 32, &2u32.to_be_bytes());
    let huge = q("huge.qcow2", &[], "1T");
    let vmdk = dir.join("image.vmdk");
    qemu_img_convert(&fs, &vmdk, "vmdk", &[]);
    let disk = dir.join("disk.img");
    sparse(&disk, 256 * MIB);
    write_at(&disk, 0, b"the user's old data");
    let before = std::fs::read(&disk).unwrap();
    for (image, declared, says) in [
        (&plain, json!("raw"), "declared raw but its bytes are qcow2"),
        (&backed, json!("qcow2"), "has a backing file"),
        (&external, json!("qcow2"), "external data file"),
        (&encrypted, json!("qcow2"), "encrypted"),
        (&huge, json!("qcow2"), "larger than"),
        (
            &vmdk,
            serde_json::Value::Null,
            "is vmdk, which rivet does not write",
        ),
        (&fs, json!("qcow2"), "declared qcow2 but its bytes are raw"),
    ] {
        for image_type in ["partition", "whole-disk"] {
            let plan = plan_file(
                &dir,
                "plan.json",
                json!({"image_type": image_type, "root_mb": 64, "disk_format": declared,
                       "urls": [file_url(image)],
                       "deploy_boot_mode": "bios", "checksum": md5_file(image)}),
            );
            let d = rivet_deploy(&disk, &plan, &[]);
            assert!(!d.ok, "{image:?} as {image_type} was deployed");
            assert!(d.stderr.contains(says), "{image:?}: {}", d.stderr);
            assert!(
                std::fs::read(&disk).unwrap() == before,
                "{image:?}: the disk changed"
            );
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn qcow2_and_zstd_over_http_with_and_without_range() {
    let dir = scratch("images-http");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let raw = gpt_whole_disk_image(&dir);
    let image = www.join("image.qcow2");
    qemu_img_convert(&raw, &image, "qcow2", &["-c"]);
    let zst = www.join("image.zst");
    std::fs::write(
        &zst,
        run("zstd", &["-q", "-c", raw.to_str().unwrap()]).stdout,
    )
    .unwrap();
    let mut net = Net::new(20, &dir);
    net.dhcp();
    let base = net.nginx(&www);
    let plain = base.replace(":8080", ":8090");
    let disk = dir.join("disk.img");
    for (url, says) in [
        (format!("{base}/image.qcow2"), "tables read and checked"),
        (
            format!("{plain}/image.qcow2"),
            "tables are read as the pass reaches them",
        ),
        (format!("{base}/image.zst"), "zstd-compressed raw"),
    ] {
        let file = if url.ends_with(".zst") { &zst } else { &image };
        let plan = plan_file(
            &dir,
            "plan.json",
            json!({"image_type": "whole-disk", "deploy_boot_mode": "bios", "urls": [url],
                   "os_hash_algo": "sha512", "os_hash_value": sha512_file(file)}),
        );
        garbage(&disk, 96 * MIB);
        let o = net.rivet(&[
            "deploy",
            "--disk",
            disk.to_str().unwrap(),
            "--plan",
            plan.to_str().unwrap(),
            "--iface",
            "rv1",
        ]);
        let log = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{url}: {log}");
        assert!(log.contains(says), "{url}: {log}");
        assert_like_reference(&disk, &raw, &url);
    }
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn sha512_file(path: &Path) -> String {
    ok("sha512sum", &[path.to_str().unwrap()])
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}
