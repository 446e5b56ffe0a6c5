//! rivet's own network stack on a veth NIC in a network namespace, against
//! real peers: dnsmasq for DHCP, nginx for files, and a server that cuts
//! connections, answers 5xx or never answers.
//!
//! Cost on 2 cores under TCG (`tests/run` prints each binary's time): about 43 s.

mod common;
use common::disk::{sha256_file, MIB};
use common::netns::Net;
use common::scratch;
use common::tls::TestCa;

fn blob(dir: &std::path::Path, mib: usize) -> std::path::PathBuf {
    let path = dir.join("blob.bin");
    let data: Vec<u8> = (0..mib << 20)
        .map(|i| ((i * 2654435761usize) >> 11) as u8)
        .collect();
    std::fs::write(&path, data).unwrap();
    path
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn dhcp_lease_and_dns_from_dnsmasq_and_download_from_nginx() {
    let dir = scratch("net-nginx");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let src = blob(&www, 24);
    let mut net = Net::new(11, &dir);
    net.dhcp();
    let base = net.nginx(&www);
    let out = dir.join("out.bin");
    let o = net.rivet(&[
        "fetch",
        "--iface",
        "rv1",
        &format!("{base}/blob.bin"),
        "--out",
        out.to_str().unwrap(),
    ]);
    let log = stderr(&o);
    assert!(o.status.success(), "{log}\n{}", net.log("dnsmasq.log"));
    assert!(log.contains("DHCP: 10.77.11."), "no lease logged:\n{log}");
    assert_eq!(sha256_file(&out), sha256_file(&src));
}

#[test]
fn static_address_and_resume_against_nginx() {
    let dir = scratch("net-static");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let src = blob(&www, 4);
    let mut net = Net::new(12, &dir);
    let base = net.nginx(&www);
    let out = dir.join("out.bin");
    let o = net.rivet(&[
        "fetch",
        "--iface",
        "rv1",
        "--ip",
        "10.77.12.5/24",
        &format!("{base}/blob.bin"),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(sha256_file(&out), sha256_file(&src));
    let o = net.rivet(&[
        "fetch",
        "--iface",
        "rv1",
        "--ip",
        "10.77.12.5/24",
        &format!("{base}/missing"),
        "--out",
        "-",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("404"), "{}", stderr(&o));
}

#[test]
fn https_downloads_are_verified_against_the_ca_bundle_or_insecure_on_request() {
    let dir = scratch("net-https");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let src = blob(&www, 8);
    let mut net = Net::new(18, &dir);
    let ca = TestCa::new(&dir, "images");
    let cert = ca.server(&dir, "nginx", &["10.77.18.1"]);
    let base = net.nginx_tls(&www, &cert);
    let out = dir.join("out.bin");
    let fetch = |extra: &[&str]| {
        let _ = std::fs::remove_file(&out);
        let url = format!("{base}/blob.bin");
        let mut args = vec!["fetch", "--iface", "rv1", "--ip", "10.77.18.5/24", &url];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", out.to_str().unwrap()]);
        net.rivet(&args)
    };

    // Verified against the CA that signed nginx's certificate.
    let o = fetch(&["--ca-bundle", ca.pem.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(sha256_file(&out), sha256_file(&src));
    assert!(
        stderr(&o).contains("TLS: 1 CA certificates from"),
        "{}",
        stderr(&o)
    );

    // A bundle without that CA: refused at once, naming the host and the bundle.
    let other = TestCa::new(&dir, "other");
    let o = fetch(&["--ca-bundle", other.pem.to_str().unwrap()]);
    let log = stderr(&o);
    assert!(!o.status.success());
    assert!(log.contains("TLS with 10.77.18.1"), "{log}");
    assert!(
        log.contains(&format!("not signed by a CA in {}", other.pem.display())),
        "{log}"
    );
    assert!(
        !log.contains("retry"),
        "a certificate failure is not retried:\n{log}"
    );
    assert!(!out.exists() || std::fs::metadata(&out).unwrap().len() == 0);

    // Insecure: the same server is taken, and the log says so.
    let o = fetch(&["--insecure"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(sha256_file(&out), sha256_file(&src));
    assert!(
        stderr(&o).contains("certificates are NOT verified"),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cut_connections_resume_with_range_and_bytes_stay_identical() {
    let dir = scratch("net-cut");
    let src = blob(&dir, 16);
    let mut net = Net::new(13, &dir);
    net.dhcp();
    let url = net.fault(
        8081,
        &src,
        &["--cut", &(3 * MIB).to_string(), "--times", "2"],
    );
    let out = dir.join("out.bin");
    let o = net.rivet(&[
        "fetch",
        "--iface",
        "rv1",
        &format!("{url}/img"),
        "--out",
        out.to_str().unwrap(),
    ]);
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    assert_eq!(sha256_file(&out), sha256_file(&src));
    assert!(log.contains("resumed at byte 3145728"), "{log}");
    assert!(log.contains("resumed at byte 6291456"), "{log}");
    assert!(log.contains("2 resumes"), "{log}");
    assert!(net.log("fault-8081.log").contains("range=bytes=6291456-"));
}

#[test]
fn a_server_without_ranges_restarts_from_zero() {
    let dir = scratch("net-noranges");
    let src = blob(&dir, 8);
    let mut net = Net::new(14, &dir);
    net.dhcp();
    let url = net.fault(8082, &src, &["--cut", &MIB.to_string(), "--no-ranges"]);
    let out = dir.join("out.bin");
    let o = net.rivet(&[
        "fetch",
        "--iface",
        "rv1",
        &format!("{url}/img"),
        "--out",
        out.to_str().unwrap(),
    ]);
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    assert!(log.contains("restarting from 0"), "{log}");
    assert_eq!(sha256_file(&out), sha256_file(&src));
}

#[test]
fn server_errors_are_retried_and_silence_times_out() {
    let dir = scratch("net-5xx");
    let src = blob(&dir, 1);
    let mut net = Net::new(15, &dir);
    net.dhcp();
    let url = net.fault(8083, &src, &["--fail", "503", "--times", "2"]);
    let out = dir.join("out.bin");
    let o = net.rivet(&[
        "fetch",
        "--iface",
        "rv1",
        &format!("{url}/img"),
        "--out",
        out.to_str().unwrap(),
    ]);
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    assert!(log.contains("server answered 503"), "{log}");
    assert_eq!(sha256_file(&out), sha256_file(&src));

    let hang = net.fault(8084, &src, &["--hang", "--lifetime", "60"]);
    let o = net.rivet(&[
        "fetch",
        "--iface",
        "rv1",
        "--timeout",
        "2",
        "--retries",
        "1",
        &format!("{hang}/img"),
        "--out",
        "-",
    ]);
    let log = stderr(&o);
    assert!(!o.status.success(), "a silent server must fail the fetch");
    assert!(
        log.contains("no data for 2000 ms") && log.contains("giving up after 2 attempts"),
        "{log}"
    );

    let o = net.rivet(&[
        "fetch",
        "--iface",
        "rv1",
        "--timeout",
        "2",
        "--retries",
        "0",
        "http://10.77.15.1:9/img",
        "--out",
        "-",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("refused"), "{}", stderr(&o));
}

/// `rivet deploy` in the client namespace onto `disk` (256 MiB, afresh) of
/// a partition plan for `url` with `sum`, the plan's other keys from
/// `extra`, more flags in `args`.
fn deploy_over_net(
    net: &Net,
    dir: &std::path::Path,
    url: &str,
    sum: &str,
    extra: serde_json::Value,
    args: &[&str],
) -> std::process::Output {
    let mut plan = serde_json::json!({"image_type": "partition", "root_mb": 32, "deploy_boot_mode": "bios",
        "urls": [url], "os_hash_algo": "sha256", "os_hash_value": sum});
    plan.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let plan = common::disk::plan_file(dir, "plan.json", plan);
    let disk = dir.join("disk.img");
    common::disk::sparse(&disk, 256 * MIB);
    let mut all = vec![
        "deploy",
        "--disk",
        disk.to_str().unwrap(),
        "--plan",
        plan.to_str().unwrap(),
        "--iface",
        "rv1",
    ];
    all.extend_from_slice(args);
    net.rivet(&all)
}

#[test]
fn deploy_downloads_the_plan_urls_with_the_own_stack() {
    let dir = scratch("net-deploy");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let img = common::disk::mkfs_image(&www, "ext4", 24, "net-root");
    let mut net = Net::new(16, &dir);
    net.dhcp();
    let base = net.nginx(&www);
    let o = deploy_over_net(
        &net,
        &dir,
        &format!("{base}/ext4.img"),
        &sha256_file(&img),
        serde_json::json!({}),
        &[],
    );
    let disk = dir.join("disk.img");
    assert!(o.status.success(), "{}", stderr(&o));
    let result: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        result["root uuid"],
        common::disk::blkid_at(&disk, MIB)["UUID"].as_str()
    );
    assert!(common::disk::files_equal_at(&img, &disk, MIB, 24 * MIB));
}

#[test]
fn rivet_serves_http_with_keep_alive_concurrency_and_bounds() {
    let dir = scratch("net-serve");
    let mut net = Net::new(17, &dir);
    net.spawn_rivet(
        &[
            "serve",
            "--iface",
            "rv1",
            "--ip",
            "10.77.17.5/24",
            "--port",
            "9999",
            "--seconds",
            "60",
        ],
        "serve.log",
    );
    let url = "http://10.77.17.5:9999";
    // Wait until it answers (ARP, listen).
    let mut up = false;
    for _ in 0..100 {
        let o = net.run_in_srv("curl", &["-sf", "-m", "1", &format!("{url}/v1/status")]);
        if o.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(up, "rivet serve never answered:\n{}", net.log("serve.log"));

    // Keep-alive: two requests, one connection.
    let o = net.run_in_srv(
        "curl",
        &[
            "-s",
            "-w",
            "%{num_connects} ",
            "-o",
            "/dev/null",
            &format!("{url}/"),
            "-o",
            "/dev/null",
            &format!("{url}/v1/status"),
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "1 0",
        "the second request did not reuse the connection"
    );

    // Several connections at once.
    let urls: Vec<String> = (0..8).map(|i| format!("{url}/v1/status?n={i}")).collect();
    let mut args = vec![
        "-s",
        "--parallel",
        "--parallel-max",
        "4",
        "-w",
        "%{http_code}\n",
    ];
    let refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    args.extend(refs.iter().flat_map(|u| ["-o", "/dev/null", *u]));
    let o = net.run_in_srv("curl", &args);
    let codes = String::from_utf8_lossy(&o.stdout);
    assert_eq!(codes.lines().filter(|l| *l == "200").count(), 8, "{codes}");

    // Bounds and garbage: refused the way the agent API refuses, and rivet keeps serving.
    let big = dir.join("big.json");
    std::fs::write(&big, vec![b'x'; 2 << 20]).unwrap();
    let o = net.run_in_srv(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data-binary",
            &format!("@{}", big.display()),
            &format!("{url}/v1/commands/"),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "413");
    let garbage = "import socket; s=socket.create_connection(('10.77.17.5',9999)); s.sendall(b'\\x16\\x03\\x01 not http\\r\\n\\r\\n'); print(s.recv(100).split(b'\\r\\n')[0].decode())";
    let o = net.run_in_srv("python3", &["-c", garbage]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "HTTP/1.1 400 Bad Request"
    );
    let o = net.run_in_srv(
        "curl",
        &[
            "-s",
            "-w",
            "%{http_code}",
            "-o",
            "/dev/null",
            &format!("{url}/nope"),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "404");
    let o = net.run_in_srv("curl", &["-sf", &format!("{url}/v1/status")]);
    assert!(
        o.status.success(),
        "rivet stopped serving:\n{}",
        net.log("serve.log")
    );

    // Clients that hold connections (idle, a request head a byte at a
    // time) must not lock the API out, and lose their slots in time.
    let hold = r#"
import socket, time, subprocess, sys
held = []
# Up to 20 held; a connect may be refused the moment every slot is taken,
# before rivet makes room, so try again (bounded).
for attempt in range(60):
    if len(held) == 20:
        break
    try:
        s = socket.create_connection(("10.77.17.5", 9999), 2)
        if len(held) % 2:
            s.sendall(b"GET /v1/sta")  # a head that never completes
        held.append(s)
    except OSError:
        time.sleep(0.05)
# While all of them are held, the API still answers.
r = subprocess.run(["curl", "-sf", "-m", "5", "http://10.77.17.5:9999/v1/status"], capture_output=True)
print("status", r.returncode)
# Past the head deadline rivet has closed every one of them.
time.sleep(12)
closed = 0
for s in held:
    s.settimeout(1)
    try:
        closed += s.recv(10) == b""
    except (ConnectionResetError, BrokenPipeError):
        closed += 1
    except socket.timeout:
        pass
print("held", len(held), "closed", closed)
"#;
    let o = net.run_in_srv("python3", &["-c", hold]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.contains("status 0"),
        "locked out:\n{out}\n{}",
        net.log("serve.log")
    );
    let (held, closed) = out
        .lines()
        .find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.first() == Some(&"held")).then(|| {
                (
                    w[1].parse::<usize>().unwrap(),
                    w[3].parse::<usize>().unwrap(),
                )
            })
        })
        .unwrap_or_else(|| panic!("{out}"));
    assert!(held >= 16, "{out}");
    assert_eq!(
        closed, held,
        "idle connections outlived the deadline: {out}"
    );
}

/// rivet on a tagged VLAN at both ends of the veth (this host's kernel has
/// no 802.1Q driver: rivet tags and untags the frames itself, the kernel
/// only reports the tag it sees): they talk on VLAN 100; a rivet on the
/// untagged network does not reach the VLAN.
#[test]
fn rivet_tags_its_frames_for_a_vlan_and_takes_only_that_vlan() {
    let dir = scratch("net-vlan");
    let mut net = Net::new(19, &dir);
    net.spawn_rivet_in_srv(
        &[
            "serve",
            "--iface",
            "rv0",
            "--vlan",
            "100",
            "--ip",
            "10.78.19.1/24",
            "--port",
            "9999",
            "--seconds",
            "60",
        ],
        "serve.log",
    );
    let url = "http://10.78.19.1:9999/v1/status";
    let out = dir.join("status.json");
    let fetch = |extra: &[&str]| {
        let mut args = vec![
            "fetch",
            "--iface",
            "rv1",
            "--ip",
            "10.78.19.5/24",
            "--timeout",
            "3",
            "--retries",
            "0",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[url, "--out", out.to_str().unwrap()]);
        net.rivet(&args)
    };
    let mut ok = None;
    for _ in 0..50 {
        let o = fetch(&["--vlan", "100"]);
        if o.status.success() {
            ok = Some(o);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let o = ok.unwrap_or_else(|| panic!("no answer on VLAN 100:\n{}", net.log("serve.log")));
    assert!(stderr(&o).contains("rv1: VLAN 100"), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    // Untagged, the same address is not there.
    let _ = std::fs::remove_file(&out);
    let o = fetch(&[]);
    assert!(!o.status.success(), "reached the VLAN untagged");
    assert!(!out.exists());
    // Nor on another VLAN.
    let o = fetch(&["--vlan", "200"]);
    assert!(!o.status.success(), "reached VLAN 100 from VLAN 200");
}

/// DHCP-less: the address, gateway and DNS come from a network_data.json
/// that names the NIC by its MAC address (as Ironic writes it for a node).
#[test]
fn network_data_json_configures_the_stack_without_dhcp() {
    let dir = scratch("net-netdata");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let src = blob(&www, 2);
    let mut net = Net::new(21, &dir);
    let base = net.nginx(&www);
    let mac = common::disk::ok(
        "ip",
        &[
            "netns",
            "exec",
            &net.cli,
            "cat",
            "/sys/class/net/rv1/address",
        ],
    )
    .trim()
    .to_string();
    let data = dir.join("network_data.json");
    std::fs::write(
        &data,
        serde_json::to_vec(&serde_json::json!({
            "links": [
                {"id": "other", "type": "phy", "ethernet_mac_address": "02:00:00:00:00:99"},
                {"id": "port0", "type": "phy", "ethernet_mac_address": mac, "mtu": 1500}
            ],
            "networks": [
                {"id": "unplugged", "type": "ipv4", "link": "other", "ip_address": "10.99.0.5/24"},
                {"id": "v6", "type": "ipv6", "link": "port0", "ip_address": "fd00::5/64"},
                {"id": "provisioning", "type": "ipv4", "link": "port0", "ip_address": "10.77.21.7",
                 "netmask": "255.255.255.0",
                 "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.77.21.1"}]}
            ],
            "services": [{"type": "dns", "address": "10.77.21.1"}]
        }))
        .unwrap(),
    )
    .unwrap();
    let out = dir.join("out.bin");
    let o = net.rivet(&[
        "fetch",
        "--network-data",
        data.to_str().unwrap(),
        &format!("{base}/blob.bin"),
        "--out",
        out.to_str().unwrap(),
    ]);
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    assert!(log.contains("network 'provisioning' on rv1"), "{log}");
    assert!(log.contains("10.77.21.7/24"), "{log}");
    assert_eq!(sha256_file(&out), sha256_file(&src));
    // A file that cannot be applied names the key at fault.
    std::fs::write(
        &data,
        br#"{"links": [{"id": "b", "type": "bond", "bond_mode": "802.3ad", "bond_links": ["x"]}],
            "networks": [{"id": "n", "type": "ipv4", "link": "b", "ip_address": "10.0.0.1/8"}]}"#,
    )
    .unwrap();
    let o = net.rivet(&[
        "fetch",
        "--network-data",
        data.to_str().unwrap(),
        &format!("{base}/blob.bin"),
        "--out",
        "-",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("\"links[0].bond_mode\": '802.3ad' is not supported"),
        "{}",
        stderr(&o)
    );
}

/// IPv6 only (no DHCPv4 server), dnsmasq as Metal3 configures it for a
/// stateful DHCPv6 range: the address is leased by DHCPv6, the name
/// answered with AAAA over IPv6, and the download comes over IPv6; also
/// from a literal `http://[addr]:port/` URL.
#[test]
fn ipv6_only_with_stateful_dhcpv6_as_metal3_runs_dnsmasq() {
    let dir = scratch("net-dhcpv6");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let src = blob(&www, 8);
    let mut net = Net::new(31, &dir);
    let ip6 = net.ipv6();
    net.dhcp6(true);
    net.nginx(&www);
    let out = dir.join("out.bin");
    for url in [
        "http://images.test:8080/blob.bin".to_string(),
        format!("http://[{ip6}]:8080/blob.bin"),
    ] {
        let _ = std::fs::remove_file(&out);
        let o = net.rivet(&[
            "fetch",
            "--iface",
            "rv1",
            &url,
            "--out",
            out.to_str().unwrap(),
        ]);
        let log = stderr(&o);
        assert!(
            o.status.success(),
            "{url}:\n{log}\n{}",
            net.log("dnsmasq6.log")
        );
        assert!(
            log.contains("DHCPv6: fd00:77:31::1"),
            "no DHCPv6 lease logged:\n{log}"
        );
        assert!(
            log.contains("rv1: fd00:77:31::1") && log.contains("/64"),
            "the leased address with the advertised prefix's length:\n{log}"
        );
        assert_eq!(sha256_file(&out), sha256_file(&src), "{url}");
    }
    // The kernel's own IPv6 on the NIC was turned off (it would reset
    // rivet's connections from the same EUI-64 addresses).
    let off = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.cli,
            "cat",
            "/proc/sys/net/ipv6/conf/rv1/disable_ipv6",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&off.stdout).trim(), "1");
}

/// IPv6 by SLAAC alone (dnsmasq `ra-only`): the address is the prefix and
/// the MAC's EUI-64, DNS from the advertisement's RDNSS option.
#[test]
fn ipv6_only_with_slaac_and_the_advertised_dns_server() {
    let dir = scratch("net-slaac");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let src = blob(&www, 8);
    let mut net = Net::new(32, &dir);
    net.ipv6();
    net.dhcp6(false);
    net.nginx(&www);
    let mac = net.run_in_cli("cat", &["/sys/class/net/rv1/address"]);
    let m: Vec<u8> = mac
        .trim()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    let want = std::net::Ipv6Addr::new(
        0xfd00,
        0x77,
        0x32,
        0,
        u16::from_be_bytes([m[0] ^ 2, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    );
    let out = dir.join("out.bin");
    let o = net.rivet(&[
        "fetch",
        "--iface",
        "rv1",
        "http://images.test:8080/blob.bin",
        "--out",
        out.to_str().unwrap(),
    ]);
    let log = stderr(&o);
    assert!(o.status.success(), "{log}\n{}", net.log("dnsmasq6.log"));
    assert!(
        log.contains(&format!("IPv6: {want}/64")),
        "no SLAAC address {want}:\n{log}"
    );
    assert!(!log.contains("DHCPv6:"), "ra-only: no DHCPv6\n{log}");
    assert_eq!(sha256_file(&out), sha256_file(&src));
}

/// Prints the first ARP announcement of 10.77.22.5 on the link named by
/// argv[1] (within 20 s), or fails.
const ANNOUNCEMENT_SNIFFER: &str = "
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind((sys.argv[1], 0))
s.settimeout(1)
end = time.time() + 20
while time.time() < end:
    try:
        f = s.recv(128)
    except socket.timeout:
        continue
    ip = bytes([10, 77, 22, 5])
    if len(f) >= 42 and f[20:22] == b'\\0\\1' and f[28:32] == ip and f[38:42] == ip:
        print('announced by', f[6:12].hex(':'))
        sys.exit(0)
sys.exit(1)
";

/// An active-backup bond from network_data.json: rivet speaks on the
/// member with carrier; when that carrier goes (its peer taken down) it
/// moves to the other member and the download goes on, byte for byte.
#[test]
fn an_active_backup_bond_fails_over_when_the_carrier_goes() {
    let dir = scratch("net-bond");
    let mut net = Net::new(22, &dir);
    net.second_link();
    let src = blob(&dir, 8);
    // About 4 s at 2 MB/s: time to pull a cable in the middle.
    let base = net.fault(8099, &src, &["--rate", "2000000"]);
    let mac = |nic: &str| net.run_in_cli("cat", &[&format!("/sys/class/net/{nic}/address")]);
    let (mac1, mac2) = (mac("rv1"), mac("rv2"));
    let nd = serde_json::json!({
        "links": [
            {"id": "p1", "type": "phy", "ethernet_mac_address": mac1.trim()},
            {"id": "p2", "type": "phy", "ethernet_mac_address": mac2.trim()},
            {"id": "bond0", "type": "bond", "bond_links": ["p1", "p2"], "bond_mode": "active-backup",
             "ethernet_mac_address": mac1.trim()}
        ],
        "networks": [{"id": "prov", "type": "ipv4", "link": "bond0", "ip_address": "10.77.22.5/24"}]
    });
    let file = dir.join("network_data.json");
    std::fs::write(&file, nd.to_string()).unwrap();
    let out = dir.join("out.bin");
    let log = dir.join("rivet.log");
    let mut child = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.cli,
            env!("CARGO_BIN_EXE_rivet"),
            "fetch",
        ])
        .args(["--network-data", file.to_str().unwrap()])
        .args([&format!("{base}/blob.bin"), "--out", out.to_str().unwrap()])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while std::fs::metadata(&out).map_or(0, |m| m.len()) < MIB {
        assert!(
            started.elapsed().as_secs() < 30,
            "no data:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Listening on the second link for rivet's ARP announcement of its
    // address (sender and target 10.77.22.5), as a switch would learn it.
    let sniffer = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.srv,
            "python3",
            "-c",
            ANNOUNCEMENT_SNIFFER,
            "rv3",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // rv1's carrier goes with its peer.
    net.in_srv("ip", &["link", "set", "rv0", "down"]);
    let status = child.wait().unwrap();
    let heard = sniffer.wait_with_output().unwrap();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{log}\n{}", net.log("fault-8099.log"));
    assert!(
        log.contains("bond of rv1, rv2 (active-backup): speaking on rv1"),
        "{log}"
    );
    assert!(
        log.contains("bond: rv1 lost its carrier; now speaking on rv2"),
        "{log}"
    );
    assert!(log.contains("bond: announced 10.77.22.5, fe80::"), "{log}");
    let heard = String::from_utf8_lossy(&heard.stdout);
    assert!(
        heard.contains(&format!("announced by {}", mac1.trim())),
        "no ARP announcement on rv3: {heard}"
    );
    for l in log
        .lines()
        .filter(|l| l.contains("bond") || l.contains("fetched"))
    {
        eprintln!("{l}");
    }
    assert_eq!(sha256_file(&out), sha256_file(&src));
}

/// A tagged provisioning network as a switch makes one: the NIC on a trunk,
/// dnsmasq and nginx on an access port of VLAN 100 (tests/fixtures/
/// vlan_switch.py stands in for the switch). rivet gets its DHCP lease and
/// downloads on the VLAN; untagged it hears no DHCP server.
#[test]
fn dhcp_and_a_download_on_a_tagged_vlan_behind_a_switch() {
    let dir = scratch("net-vlan-dhcp");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let src = blob(&www, 8);
    let mut net = Net::new(23, &dir);
    net.behind_vlan(100);
    net.dhcp();
    let base = net.nginx(&www);
    let out = dir.join("out.bin");
    let fetch = |extra: &[&str]| {
        let mut args = vec![
            "fetch",
            "--iface",
            "rv1",
            "--timeout",
            "5",
            "--retries",
            "0",
        ];
        args.extend_from_slice(extra);
        let url = format!("{base}/blob.bin");
        args.extend_from_slice(&[&url, "--out", out.to_str().unwrap()]);
        net.rivet(&args)
    };
    let o = fetch(&["--vlan", "100"]);
    let log = stderr(&o);
    assert!(
        o.status.success(),
        "{log}\n{}\n{}",
        net.log("dnsmasq.log"),
        net.log("vlan-switch.log")
    );
    for l in log
        .lines()
        .filter(|l| l.contains("VLAN") || l.contains("DHCP") || l.contains("fetched"))
    {
        eprintln!("{l}");
    }
    assert!(log.contains("rv1: VLAN 100: frames tagged 802.1Q"), "{log}");
    assert!(
        log.contains("DHCP: 10.77.23."),
        "no lease on the VLAN:\n{log}"
    );
    assert_eq!(sha256_file(&out), sha256_file(&src));
    // Untagged, the same wire has no DHCP server.
    let o = fetch(&[]);
    assert!(!o.status.success(), "a lease off the VLAN:\n{}", stderr(&o));
    assert!(stderr(&o).contains("no address"), "{}", stderr(&o));
}

/// Clients that send a complete request head and then trickle its body (a
/// byte a second, more connections than the API has slots, replaced as
/// they are closed) must not lock the conductor out: a body from a peer
/// that proved nothing has to keep arriving at a minimum rate, and a full
/// server closes its worst connection to make room.
#[test]
fn slow_request_bodies_do_not_lock_the_api_out() {
    let dir = scratch("net-slow-bodies");
    let mut net = Net::new(24, &dir);
    net.spawn_rivet(
        &[
            "serve",
            "--iface",
            "rv1",
            "--ip",
            "10.77.24.5/24",
            "--port",
            "9999",
            "--seconds",
            "90",
        ],
        "serve.log",
    );
    let attack = r#"
import socket, subprocess, threading, time
URL = "http://10.77.24.5:9999/v1/status"
for _ in range(100):
    if subprocess.run(["curl", "-sf", "-m", "1", "-o", "/dev/null", URL]).returncode == 0:
        break
    time.sleep(0.1)
HEAD = (b"POST /v1/commands/ HTTP/1.1\r\nHost: 10.77.24.5\r\nContent-Type: application/json\r\n"
        b"Content-Length: 500000\r\n\r\n")
end = time.time() + 40
opened = [0]
def trickle():
    conns = []
    while time.time() < end:
        while len(conns) < 24:
            try:
                s = socket.create_connection(("10.77.24.5", 9999), 1)
                s.sendall(HEAD)
                conns.append(s)
                opened[0] += 1
            except OSError:
                break
        for s in list(conns):
            try:
                s.sendall(b"{")
            except OSError:
                conns.remove(s)
        time.sleep(1)
threading.Thread(target=trickle, daemon=True).start()
time.sleep(6)
# The conductor's calls, with the retries Ironic's agent client makes.
answered = 0
for _ in range(6):
    r = subprocess.run(["curl", "-sf", "-m", "5", "--retry", "2", "--retry-connrefused", "--retry-delay", "1",
                        "-o", "/dev/null", URL])
    answered += r.returncode == 0
    time.sleep(3)
print("answered", answered, "of 6; slow connections opened", opened[0])
"#;
    let o = net.run_in_srv("python3", &["-c", attack]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    eprintln!("{out}");
    assert!(
        out.contains("answered 6 of 6"),
        "the API was locked out:\n{out}\n{}",
        net.log("serve.log")
    );
    // More than the 16 slots were opened over the run: closed ones were
    // replaced, and the API still answered every call.
    let opened: usize = out
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(opened > 24, "{out}");
}

/// Duplicate address detection (issue 33): network_data.json gives rivet a
/// static IPv6 address the server already holds. The server's kernel
/// answers rivet's probe, and rivet refuses the address by name (before,
/// both hosts answered for it and the download went wherever the switch
/// learnt last). A free address is taken after its silent second.
#[test]
fn a_static_ipv6_address_another_node_holds_is_not_used() {
    let dir = scratch("net-dad");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let src = blob(&www, 1);
    let mut net = Net::new(33, &dir);
    let ip6 = net.ipv6();
    net.nginx(&www);
    let mac = net.run_in_cli("cat", &["/sys/class/net/rv1/address"]);
    let data = dir.join("network_data.json");
    let out = dir.join("out.bin");
    for (address, free) in [(ip6.clone(), false), ("fd00:77:33::5".to_string(), true)] {
        std::fs::write(
            &data,
            serde_json::to_vec(&serde_json::json!({
                "links": [{"id": "port0", "type": "phy", "ethernet_mac_address": mac.trim()}],
                "networks": [{"id": "v6", "type": "ipv6", "link": "port0",
                              "ip_address": format!("{address}/64")}]
            }))
            .unwrap(),
        )
        .unwrap();
        let _ = std::fs::remove_file(&out);
        let o = net.rivet(&[
            "fetch",
            "--network-data",
            data.to_str().unwrap(),
            &format!("http://[{ip6}]:8080/blob.bin"),
            "--out",
            out.to_str().unwrap(),
        ]);
        let log = stderr(&o);
        if free {
            assert!(o.status.success(), "{address}: {log}");
            assert_eq!(sha256_file(&out), sha256_file(&src));
        } else {
            assert!(!o.status.success(), "{address} was taken: {log}");
            assert!(
                log.contains(&format!(
                    "the static IPv6 address {address}/64 is in use by another node on the link \
                     (duplicate address detection)"
                )),
                "{log}"
            );
        }
    }
}

/// Issue 31: an OCI registry's token (Ironic's image_request_authorization)
/// reaches the registry, whose 307 sends the blob to a store that refuses
/// any Authorization: the deploy succeeds only if the token stays home.
/// Without the token the registry's 401 ends the deploy at once, naming
/// the URL; http_basic (image_server_auth_strategy) likewise.
#[test]
fn an_oci_token_reaches_the_registry_and_never_its_blob_store() {
    let dir = scratch("net-registry");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let img = common::disk::mkfs_image(&www, "ext4", 24, "oci-root");
    let sum = sha256_file(&img);
    let mut net = Net::new(34, &dir);
    net.dhcp();
    let base = net.registry(&www, "tok.en-1", "ironic:s3cret");
    let disk = dir.join("disk.img");
    let b64 = |s: &str| rivet::wire::base64::encode(s.as_bytes());
    let deploy =
        |url: &str, extra: serde_json::Value| deploy_over_net(&net, &dir, url, &sum, extra, &[]);
    let blob = format!("{base}/v2/images/rivet/blobs/ext4.img");
    let token = serde_json::json!({"image_request_authorization": b64("Bearer tok.en-1")});
    let o = deploy(&blob, token);
    let log = stderr(&o);
    assert!(o.status.success(), "{log}\n{}", net.log("registry.log"));
    assert!(common::disk::files_equal_at(&img, &disk, MIB, 24 * MIB));
    assert!(!log.contains("tok.en-1"), "the token was logged:\n{log}");
    let requests = net.log("registry.log");
    eprint!("{requests}");
    assert!(
        requests.starts_with("registry /v2/images/rivet/blobs/ext4.img auth 307\n"),
        "{requests}"
    );
    assert!(
        requests.contains("store /store/ext4.img no-auth 200"),
        "{requests}"
    );
    assert!(
        !requests.contains("store /store/ext4.img auth"),
        "the token reached the store:\n{requests}"
    );

    // No token: the registry's 401 is final and names the URL.
    let o = deploy(&blob, serde_json::json!({}));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!("{blob}: server answered 401")),
        "{}",
        stderr(&o)
    );

    // http_basic against /basic/: the right password, then a wrong one.
    let basic = format!("{base}/basic/ext4.img");
    let creds = |p: &str| {
        serde_json::json!({"image_server_auth_strategy": "http_basic",
        "image_server_user": "ironic", "image_server_password": p})
    };
    let o = deploy(&basic, creds("s3cret"));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = deploy(&basic, creds("wrong"));
    assert!(stderr(&o).contains("server answered 401"), "{}", stderr(&o));
}

/// Issue 31: image_info's `proxies` through a real proxy (tinyproxy, with
/// BasicAuth from the proxy URL's userinfo): an https image goes through a
/// CONNECT tunnel (TLS inside, the certificate checked against the image
/// server), an http one as an absolute-form request; `no_proxy` sends it
/// direct; a wrong proxy password is a final error naming the proxy.
#[test]
fn downloads_go_through_the_plans_proxies_except_no_proxy() {
    let dir = scratch("net-proxy");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let img = common::disk::mkfs_image(&www, "ext4", 24, "proxied");
    let sum = sha256_file(&img);
    let mut net = Net::new(35, &dir);
    net.dhcp();
    let ca = TestCa::new(&dir, "images");
    let cert = ca.server(&dir, "nginx", &["10.77.35.1"]);
    let https = net.nginx_tls(&www, &cert);
    let proxy = net.tinyproxy("ironic", "s3cret");
    let disk = dir.join("disk.img");
    let deploy = |url: &str, extra: serde_json::Value| {
        let o = deploy_over_net(
            &net,
            &dir,
            url,
            &sum,
            extra,
            &["--ca-bundle", ca.pem.to_str().unwrap()],
        );
        (o, net.log("tinyproxy.log"))
    };
    let proxies = serde_json::json!({"proxies": {"http": proxy, "https": proxy}});
    let (o, log) = deploy(&format!("{https}/ext4.img"), proxies.clone());
    assert!(o.status.success(), "{}\n{log}", stderr(&o));
    assert!(common::disk::files_equal_at(&img, &disk, MIB, 24 * MIB));
    assert!(log.contains("CONNECT 10.77.35.1:8443 HTTP/1.1"), "{log}");
    assert!(!stderr(&o).contains("s3cret"), "{}", stderr(&o));

    let (o, log) = deploy("http://10.77.35.1:8090/ext4.img", proxies);
    assert!(o.status.success(), "{}\n{log}", stderr(&o));
    assert!(
        log.contains("GET http://10.77.35.1:8090/ext4.img HTTP/1.1"),
        "{log}"
    );

    let before = log.lines().count();
    let direct = serde_json::json!({"proxies": {"http": proxy, "https": proxy}, "no_proxy": "images.lab,10.77.35.0/24"});
    let (o, log) = deploy(&format!("{https}/ext4.img"), direct);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        log.lines().count(),
        before,
        "no_proxy: not through the proxy\n{log}"
    );

    let wrong = proxy.replace("s3cret", "wrong");
    let (o, _) = deploy(
        &format!("{https}/ext4.img"),
        serde_json::json!({"proxies": {"https": wrong}}),
    );
    let err = stderr(&o);
    assert!(!o.status.success());
    // tinyproxy 1.11 answers a CONNECT with wrong credentials 401, others 407.
    assert!(
        err.contains("the proxy 10.77.35.1:8888 answered CONNECT 10.77.35.1:8443 with 40"),
        "{err}"
    );
    assert!(!err.contains("retry"), "{err}");
}
