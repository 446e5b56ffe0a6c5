//! Burn-in (issue 31) in QEMU, driven by the conductor stand-in as manual
//! cleaning with the real agent's `agent_burnin_*` driver_info knobs:
//! CPU, memory and disks in one 256 MiB guest with two CPUs, and the
//! network between two guests on one bridge, each the other's partner.
//! Judged by the step results the stand-in recorded and, for the disks,
//! by the pattern the host finds on them afterwards. Each step's figures
//! are printed (`--nocapture` shows them; tests/run's log keeps them).
//!
//! Cost on 2 cores under TCG (`tests/run` prints each binary's time):
//! about 80 s (three guests, two of them at once).

mod common;
use common::ironic::{finished_record, Conductor};
use common::netns::Net;
use common::{assert_logged, rivet_lines, scratch};
use serde_json::{json, Value};

/// `burnin_cpu`, `burnin_memory` and `burnin_disk` in turn: every CPU
/// busy for the timeout with each round as computed first, most of the
/// free memory written and read back, two disks (virtio and NVMe) written
/// and verified twice; the disks end holding the last pass's pattern.
#[test]
fn cpu_memory_and_disks_burn_in_a_256_mib_guest() {
    let dir = scratch("burnin");
    let virtio = common::blank_disk(&dir, "virtio.img", 64);
    let nvme = common::blank_disk(&dir, "nvme.img", 32);
    let node = json!({"driver_info": {
        "agent_burnin_cpu_timeout": 10,
        "agent_burnin_vm_timeout": 15, "agent_burnin_vm_vm-bytes": "98%",
        "agent_burnin_fio_disk_loops": 2}});
    let node_json = node.to_string();
    let mut conductor = Conductor::start(
        &dir,
        "clean",
        None,
        &[
            "--clean-step",
            "burnin_cpu,burnin_memory,burnin_disk",
            "--node-json",
            &node_json,
        ],
        None,
    );
    conductor.initrd = common::initramfs("default");
    let nvme_drive = format!("file={},if=none,id=nv0,format=raw", nvme.display());
    let mut boot = conductor
        .boot(&dir, &[&virtio], "")
        .arg("--mem", 256)
        .arg("--timeout", 600);
    for token in [
        "-smp",
        "2",
        "-drive",
        &nvme_drive,
        "-device",
        "nvme,serial=burnnvme,drive=nv0",
    ] {
        boot = boot.arg("--qemu-arg", token);
    }
    let console = boot.run("reboot: Power down");
    let record = finished_record(&dir);
    let cleans = record["cleans"].as_array().unwrap();
    assert_eq!(cleans.len(), 3, "{record:#}");
    for c in cleans {
        assert_eq!(c["command_status"], "SUCCEEDED", "{c:#}");
    }
    let result = |i: usize| &cleans[i]["command_result"]["clean_result"];
    let cpu = result(0);
    eprintln!("burnin_cpu: {cpu}");
    assert_eq!(cpu["workers"], 2, "one worker per CPU: {cpu}");
    let rounds = cpu["rounds"].as_array().unwrap();
    assert!(rounds.iter().all(|r| r.as_u64().unwrap() > 0), "{cpu}");
    let mem = result(1);
    eprintln!("burnin_memory: {mem}");
    let tested = mem["bytes"].as_u64().unwrap();
    let available = mem["available_bytes"].as_u64().unwrap();
    assert!(
        tested >= 64 << 20 && tested + (48 << 20) <= available,
        "most of the free memory, less rivet's reserve: {mem}"
    );
    assert!(
        mem["passes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p.as_u64().unwrap() >= 1),
        "{mem}"
    );
    let disks = result(2);
    eprintln!("burnin_disk: {disks}");
    let mut names: Vec<&String> = disks.as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(names, ["/dev/nvme0n1", "/dev/vda"], "{disks}");
    for (name, size) in [("/dev/vda", 64u64 << 20), ("/dev/nvme0n1", 32 << 20)] {
        let d = &disks[name];
        assert_eq!(d["passes"], 2, "{disks}");
        assert_eq!(d["bytes_written"], 2 * size, "{disks}");
        assert_eq!(d["bytes_read"], 2 * size, "{disks}");
    }
    // Each disk holds a second pass's pattern (seed 0x5eed + disk index + 1),
    // the two disks different ones: the data really went to the disks.
    let seeds: Vec<u64> = [&virtio, &nvme]
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).unwrap();
            (0x5eed + 1..0x5eed + 3)
                .find(|&s| rivet::burnin::mismatch(&bytes, s, 0).is_none())
                .unwrap_or_else(|| panic!("{} holds no burn-in pattern", path.display()))
        })
        .collect();
    assert_ne!(seeds[0], seeds[1]);
    let lines = rivet_lines(&console);
    assert_logged(&lines, "burnin_cpu: 2 workers for 10 s");
    assert_logged(&lines, "every round as computed first");
    assert_logged(&lines, "no word differed");
    assert_logged(&lines, "every byte as written");
    let _ = std::fs::remove_dir_all(dir);
}

/// `burnin_network` between two machines on one bridge with the
/// conductor: each is given the other as its partner (the real agent's
/// static `agent_burnin_fio_network_config`), one starts as writer, and
/// after the first direction they swap. What one wrote the other read.
#[test]
fn two_guests_burn_in_the_network_between_them_both_ways() {
    let dir = scratch("burnin-net");
    let mut net = Net::with_bridge(71, &dir, 2);
    let machines = [
        ("52:54:00:71:00:0a", "10.77.71.50", "writer"),
        ("52:54:00:71:00:0b", "10.77.71.51", "reader"),
    ];
    net.dhcp_fixed(&[
        (machines[0].0, machines[0].1),
        (machines[1].0, machines[1].1),
    ]);
    let runs: Vec<(std::path::PathBuf, Conductor)> = machines
        .iter()
        .enumerate()
        .map(|(i, (mac, _, role))| {
            let partner = machines[1 - i].1;
            let d = dir.join(format!("node{i}"));
            std::fs::create_dir_all(&d).unwrap();
            let node = json!({"driver_info": {
                "agent_burnin_fio_network_config": {"role": role, "partner": partner},
                "agent_burnin_fio_network_runtime": 10,
                "agent_burnin_fio_network_pairing_timeout": 120}});
            let c = Conductor::start_for(
                &d,
                &net,
                "clean",
                &[
                    "--clean-step",
                    "burnin_network",
                    "--node-json",
                    &node.to_string(),
                ],
                &format!("rvtap{i}"),
                mac,
            );
            (d, c)
        })
        .collect();
    let consoles: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = runs
            .iter()
            .map(|(d, c)| {
                s.spawn(move || {
                    let disk = common::blank_disk(d, "disk.img", 8);
                    c.boot(d, &[&disk], "")
                        .arg("--timeout", 300)
                        .run("reboot: Power down")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let results: Vec<Value> = runs
        .iter()
        .map(|(d, _)| {
            let record = finished_record(d);
            let clean = &record["clean"];
            assert_eq!(clean["command_status"], "SUCCEEDED", "{clean:#}");
            clean["command_result"]["clean_result"].clone()
        })
        .collect();
    for (r, (_, ip, _)) in results.iter().zip(machines.iter().rev()) {
        eprintln!("burnin_network: {r}");
        assert_eq!(r["partner"], *ip, "{r}");
        assert_eq!(r["port"], 9000);
    }
    let bytes = |i: usize, role: &str| results[i][role]["bytes"].as_u64().unwrap();
    assert!(bytes(0, "writer") > 1 << 20, "{results:?}");
    assert_eq!(bytes(0, "writer"), bytes(1, "reader"), "first direction");
    assert!(bytes(1, "writer") > 1 << 20, "{results:?}");
    assert_eq!(bytes(1, "writer"), bytes(0, "reader"), "second direction");
    for console in &consoles {
        assert_logged(&rivet_lines(console), "burnin_network: partner 10.77.71.5");
    }
    drop(net);
    let _ = std::fs::remove_dir_all(dir);
}
