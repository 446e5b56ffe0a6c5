//! Two network namespaces joined by a veth pair: a server side (dnsmasq,
//! nginx, the fault server) and a client side where rivet runs on the raw
//! NIC. Everything lives on 10.77.N.0/24 inside the namespaces and is torn
//! down on drop.
#![allow(dead_code)]

use super::disk::ok;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub struct Net {
    pub srv: String,
    pub cli: String,
    pub server_ip: String,
    /// fd00:77:N::1 once [`Net::ipv6`] gave the server side IPv6.
    pub server_ip6: Option<String>,
    pub subnet: u8,
    /// The server side's interface: the veth end or the tap.
    pub link: String,
    pub dir: PathBuf,
    children: Vec<Child>,
    fixtures: Vec<super::Fixture>,
}

impl Net {
    /// `n` (1-250) keeps parallel tests apart: names and subnet derive from it.
    pub fn new(n: u8, dir: &Path) -> Net {
        let net = Net::namespaces(n, dir, "rv0");
        ok(
            "ip",
            &[
                "link", "add", "rv0", "netns", &net.srv, "type", "veth", "peer", "name", "rv1",
                "netns", &net.cli,
            ],
        );
        net.address_server_side();
        // The server side keeps veth's checksum offload: its TCP and UDP
        // checksums reach rivet partial (TP_STATUS_CSUMNOTREADY), as a
        // conductor's do on the same hypervisor, and rivet must take them.
        // Segmentation offload goes: veth would hand rivet's packet socket
        // unsegmented 64 KiB frames, which no NIC delivers (a QEMU guest's
        // virtio-net neither, once rivet turns its receive offloads off).
        net.in_srv("ethtool", &["-K", "rv0", "tso", "off", "gso", "off"]);
        net
    }

    /// A second veth pair beside the first (rv3 on the server side, rv2 on
    /// the client's), for a bond: the server answers on both with the same
    /// address, and its route follows whichever link is up.
    pub fn second_link(&self) {
        ok(
            "ip",
            &[
                "link", "add", "rv3", "netns", &self.srv, "type", "veth", "peer", "name", "rv2",
                "netns", &self.cli,
            ],
        );
        let cidr = format!("{}/24", self.server_ip);
        ok("ip", &["-n", &self.srv, "addr", "add", &cidr, "dev", "rv3"]);
        self.in_srv("ethtool", &["-K", "rv3", "tso", "off", "gso", "off"]);
        self.in_srv(
            "sysctl",
            &["-qw", "net.ipv4.conf.all.ignore_routes_with_linkdown=1"],
        );
        ok("ip", &["-n", &self.srv, "link", "set", "rv3", "up"]);
    }

    /// Puts the services behind VLAN `id`: the client's link becomes a
    /// trunk, and a user-space switch (tests/fixtures/vlan_switch.py)
    /// passes that VLAN's frames, untagged, to an access link `acc1` that
    /// now holds the server's address (dnsmasq and nginx go there). This
    /// host's kernel has no 8021q to do it.
    pub fn behind_vlan(&mut self, id: u16) {
        ok(
            "ip",
            &[
                "-n", &self.srv, "link", "add", "acc0", "type", "veth", "peer", "name", "acc1",
            ],
        );
        ok("ip", &["-n", &self.srv, "addr", "flush", "dev", &self.link]);
        let cidr = format!("{}/24", self.server_ip);
        ok(
            "ip",
            &["-n", &self.srv, "addr", "add", &cidr, "dev", "acc1"],
        );
        // Frames are forwarded as the packet socket sees them: whole and
        // with their checksums done.
        self.in_srv(
            "ethtool",
            &["-K", "acc1", "tso", "off", "gso", "off", "tx", "off"],
        );
        for l in ["acc0", "acc1"] {
            ok("ip", &["-n", &self.srv, "link", "set", l, "up"]);
        }
        let fixture = super::Fixture::start_in(
            Some(&self.srv),
            "vlan_switch.py",
            &[
                "--trunk",
                &self.link,
                "--access",
                "acc0",
                "--vlan",
                &id.to_string(),
            ],
            &self.dir.join("vlan-switch.log"),
        );
        self.fixtures.push(fixture);
        self.link = "acc1".into();
    }

    /// A server namespace with a tap device `link` for a QEMU guest
    /// (`qemu/boot --tap`), left at the kernel's and QEMU's default offloads.
    pub fn with_tap(n: u8, dir: &Path) -> Net {
        let net = Net::namespaces(n, dir, "rvtap");
        net.in_srv("ip", &["tuntap", "add", "dev", "rvtap", "mode", "tap"]);
        net.address_server_side();
        net
    }

    /// A server namespace with a bridge `rvbr` holding the server's address
    /// and `taps` tap devices on it (`rvtap0`, `rvtap1`, …): several
    /// machines on one segment with the conductor, as in a rack.
    pub fn with_bridge(n: u8, dir: &Path, taps: usize) -> Net {
        let net = Net::namespaces(n, dir, "rvbr");
        net.in_srv(
            "ip",
            &[
                "link",
                "add",
                "rvbr",
                "type",
                "bridge",
                "forward_delay",
                "0",
            ],
        );
        for i in 0..taps {
            let tap = format!("rvtap{i}");
            net.in_srv("ip", &["tuntap", "add", "dev", &tap, "mode", "tap"]);
            net.in_srv("ip", &["link", "set", &tap, "master", "rvbr"]);
            net.in_srv("ip", &["link", "set", &tap, "up"]);
        }
        net.address_server_side();
        net
    }

    fn namespaces(n: u8, dir: &Path, link: &str) -> Net {
        let pid = std::process::id() % 10_000;
        let (srv, cli) = (format!("rvs{pid}-{n}"), format!("rvc{pid}-{n}"));
        for ns in [&srv, &cli] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        ok("ip", &["netns", "add", &srv]);
        ok("ip", &["netns", "add", &cli]);
        Net {
            server_ip: format!("10.77.{n}.1"),
            server_ip6: None,
            subnet: n,
            srv,
            cli,
            link: link.to_string(),
            dir: dir.to_path_buf(),
            children: Vec::new(),
            fixtures: Vec::new(),
        }
    }

    fn address_server_side(&self) {
        let cidr = format!("{}/24", self.server_ip);
        ok(
            "ip",
            &["-n", &self.srv, "addr", "add", &cidr, "dev", &self.link],
        );
        ok("ip", &["-n", &self.srv, "link", "set", &self.link, "up"]);
        ok("ip", &["-n", &self.srv, "link", "set", "lo", "up"]);
    }

    pub fn in_srv(&self, cmd: &str, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", &self.srv, cmd];
        all.extend_from_slice(args);
        ok("ip", &all)
    }

    fn spawn_in_srv(&mut self, cmd: &str, args: &[&str], log: &str) {
        let logfile = std::fs::File::create(self.dir.join(log)).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.srv, cmd])
            .args(args)
            .stdout(Stdio::null())
            .stderr(logfile)
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    fn wait_for_port(&self, port: u16) {
        let probe = format!(
            "import socket,time\nfor _ in range(100):\n  try:\n    socket.create_connection(('{}',{port}),1); break\n  except OSError: time.sleep(0.05)",
            self.server_ip
        );
        self.in_srv("python3", &["-c", &probe]);
    }

    /// dnsmasq answering DHCPv4 on the server side's link, with `extra`.
    fn dnsmasq(&mut self, extra: &[&str]) {
        let range = format!("--dhcp-range=10.77.{0}.100,10.77.{0}.200,1h", self.subnet);
        let iface = format!("--interface={}", self.link);
        let router = format!("--dhcp-option=option:router,{}", self.server_ip);
        let mut args = vec![
            "--no-daemon",
            "--port=0",
            &iface,
            "--bind-interfaces",
            "--leasefile-ro",
            &range,
            &router,
            "--pid-file=",
        ];
        args.extend_from_slice(extra);
        self.spawn_in_srv("dnsmasq", &args, "dnsmasq.log");
    }

    pub fn dhcp(&mut self) {
        self.dnsmasq(&[]);
    }

    /// DHCP that gives each (MAC, address) pair its fixed address.
    pub fn dhcp_fixed(&mut self, hosts: &[(&str, &str)]) {
        let args: Vec<String> = hosts
            .iter()
            .map(|(mac, ip)| format!("--dhcp-host={mac},{ip}"))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.dnsmasq(&args);
    }

    /// dnsmasq as an Ironic operator runs it for UEFI iPXE (Bifrost's and
    /// Metal3's set-up): firmware PXE gets iPXE's `snponly.efi` over TFTP,
    /// iPXE itself (DHCP option 175) gets `ipxe_script` over HTTP.
    pub fn pxe_dhcp(&mut self, ipxe_script: &str) {
        let script = format!("--dhcp-boot=tag:ipxe,{ipxe_script}");
        self.dnsmasq(&[
            "--enable-tftp",
            "--tftp-root=/usr/lib/ipxe",
            "--dhcp-match=set:ipxe,175",
            "--dhcp-boot=tag:!ipxe,snponly.efi",
            &script,
        ]);
    }

    /// Gives the server side fd00:77:N::1/64 (no duplicate address
    /// detection, so it is usable at once) and returns it.
    pub fn ipv6(&mut self) -> String {
        let ip6 = format!("fd00:77:{}::1", self.subnet);
        let cidr = format!("{ip6}/64");
        ok(
            "ip",
            &[
                "-n", &self.srv, "addr", "add", &cidr, "dev", &self.link, "nodad",
            ],
        );
        self.server_ip6 = Some(ip6.clone());
        ip6
    }

    /// dnsmasq for IPv6 as Metal3's ironic-image runs it: router
    /// advertisements with a router lifetime of 0 (`ra-param=IFACE,0,0`:
    /// the prefix is on-link, nobody is a default router) and either a
    /// stateful DHCPv6 range (`stateful`) or `ra-only` (SLAAC). DNS on,
    /// answering `images.test` with the server's IPv6 address.
    pub fn dhcp6(&mut self, stateful: bool) {
        let ip6 = self.server_ip6.clone().expect("Net::ipv6 first");
        let n = self.subnet;
        let range = if stateful {
            format!("fd00:77:{n}::100,fd00:77:{n}::1ff,64,1h")
        } else {
            format!("fd00:77:{n}::,ra-only,64,1h")
        };
        self.spawn_in_srv(
            "dnsmasq",
            &[
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
                &format!("--interface={}", self.link),
                // Its link-local address (what the advertisements name as
                // DNS server) comes up after dnsmasq: listen as it does.
                "--bind-dynamic",
                "--leasefile-ro",
                "--enable-ra",
                &format!("--ra-param={},0,0", self.link),
                &format!("--dhcp-range={range}"),
                &format!("--host-record=images.test,{ip6}"),
                "--log-dhcp",
                "--pid-file=",
            ],
            "dnsmasq6.log",
        );
    }

    /// nginx serving `root` on port 8080 (Range, ETag, sendfile: the real
    /// thing), and on 8090 without Range (`max_ranges 0`: every request
    /// gets the whole file).
    pub fn nginx(&mut self, root: &Path) -> String {
        self.nginx_with(root, None)
    }

    /// nginx serving `root` over HTTPS on port 8443 with `cert`.
    pub fn nginx_tls(&mut self, root: &Path, cert: &super::tls::ServerCert) -> String {
        self.nginx_with(root, Some(cert))
    }

    fn nginx_with(&mut self, root: &Path, tls: Option<&super::tls::ServerCert>) -> String {
        let prefix = self.dir.join("nginx");
        std::fs::create_dir_all(&prefix).unwrap();
        let conf = prefix.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off; master_process off; worker_processes 1; pid {p}/nginx.pid; error_log {p}/error.log;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{ access_log off; sendfile on; server {{ listen {ip}:{port}{ssl}; {ip6} root {root}; {certs} }}\n\
                 server {{ listen {ip}:8090; root {root}; max_ranges 0; }} }}\n",
                p = prefix.display(),
                ip = self.server_ip,
                root = root.display(),
                port = if tls.is_some() { 8443 } else { 8080 },
                ip6 = self
                    .server_ip6
                    .as_ref()
                    .map(|a| format!("listen [{a}]:8080;"))
                    .unwrap_or_default(),
                ssl = if tls.is_some() { " ssl" } else { "" },
                certs = tls
                    .map(|t| format!(
                        "ssl_certificate {}; ssl_certificate_key {}; ssl_protocols TLSv1.2 TLSv1.3;",
                        t.cert.display(),
                        t.key.display()
                    ))
                    .unwrap_or_default(),
            ),
        )
        .unwrap();
        let (c, p) = (conf.display().to_string(), prefix.display().to_string());
        self.spawn_in_srv("nginx", &["-c", &c, "-p", &p], "nginx.log");
        match tls {
            Some(_) => {
                self.wait_for_port(8443);
                format!("https://{}:8443", self.server_ip)
            }
            None => {
                self.wait_for_port(8080);
                format!("http://{}:8080", self.server_ip)
            }
        }
    }

    /// The fault server on `port` serving `file` with extra flags.
    pub fn fault(&mut self, port: u16, file: &Path, flags: &[&str]) -> String {
        let script = super::repo().join("tests/fixtures/fault_server.py");
        let mut args = vec![
            script.to_str().unwrap().to_string(),
            "--bind".into(),
            self.server_ip.clone(),
            "--port".into(),
            port.to_string(),
            "--file".into(),
            file.display().to_string(),
        ];
        args.extend(flags.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.spawn_in_srv("python3", &refs, &format!("fault-{port}.log"));
        self.wait_for_port(port);
        format!("http://{}:{port}", self.server_ip)
    }

    /// tinyproxy (Debian's) on port 8888 of the server side, wanting
    /// `user:password` (BasicAuth) and tunnelling to 8443; its log (every
    /// request line) is `tinyproxy.log`. Returns the proxy's URL with the
    /// credentials, as Ironic's image_https_proxy would carry them.
    pub fn tinyproxy(&mut self, user: &str, password: &str) -> String {
        let conf = self.dir.join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "Port 8888\nListen {ip}\nTimeout 60\nLogFile \"{log}\"\nLogLevel Info\nMaxClients 20\n\
                 Allow {net}.0/24\nConnectPort 8443\nBasicAuth {user} {password}\n",
                ip = self.server_ip,
                net = self.server_ip.rsplit_once('.').unwrap().0,
                log = self.dir.join("tinyproxy.log").display(),
            ),
        )
        .unwrap();
        self.spawn_in_srv(
            "tinyproxy",
            &["-d", "-c", conf.to_str().unwrap()],
            "tinyproxy.out",
        );
        self.wait_for_port(8888);
        format!("http://{user}:{password}@{}:8888", self.server_ip)
    }

    /// tests/fixtures/registry.py: a registry on port 8081 that wants
    /// `Bearer TOKEN` (and `Basic USER:PASS` under /basic/) and redirects
    /// blobs to its store on 8082, which refuses any Authorization. Its
    /// request log is `registry.log`; returns the registry's base URL.
    pub fn registry(&mut self, dir: &Path, token: &str, basic: &str) -> String {
        let script = super::repo().join("tests/fixtures/registry.py");
        let args = [
            script.to_str().unwrap(),
            "--bind",
            &self.server_ip.clone(),
            "--registry-port",
            "8081",
            "--store-port",
            "8082",
            "--dir",
            dir.to_str().unwrap(),
            "--token",
            token,
            "--basic",
            basic,
        ];
        self.spawn_in_srv("python3", &args, "registry.log");
        self.wait_for_port(8081);
        self.wait_for_port(8082);
        format!("http://{}:8081", self.server_ip)
    }

    /// Starts rivet in the client namespace in the background (killed on drop).
    pub fn spawn_rivet(&mut self, args: &[&str], log: &str) {
        let logfile = std::fs::File::create(self.dir.join(log)).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.cli, env!("CARGO_BIN_EXE_rivet")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(logfile)
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    /// Starts rivet in the server namespace in the background (killed on drop).
    pub fn spawn_rivet_in_srv(&mut self, args: &[&str], log: &str) {
        let mut all = vec![env!("CARGO_BIN_EXE_rivet")];
        all.extend_from_slice(args);
        self.spawn_in_srv(all[0], &all[1..], log);
    }

    /// Runs a command in the server namespace; returns its output whatever the status.
    pub fn run_in_srv(&self, cmd: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.srv, cmd])
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs a command in the client namespace; its standard output.
    pub fn run_in_cli(&self, cmd: &str, args: &[&str]) -> String {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.cli, cmd])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs rivet in the client namespace.
    pub fn rivet(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.cli, env!("CARGO_BIN_EXE_rivet")])
            .args(args)
            .output()
            .unwrap()
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.srv])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.cli])
            .status();
        // The scratch files go with a passing test; a failing one keeps
        // them (logs, downloads) for inspection.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
