//! The kernel command line as rivet reads it: `rivet.*` keys, `BOOTIF=`,
//! `ip=`, `console=`. Keys rivet does not know are ignored; known keys with
//! malformed values are reported as warnings and left at their defaults.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// What PID 1 does when its work is done or has failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndAction {
    #[default]
    Poweroff,
    Reboot,
    Halt,
    /// Keep running (for debugging on the console); never exits.
    Stay,
}

impl EndAction {
    pub fn parse(s: &str) -> Option<EndAction> {
        Some(match s {
            "poweroff" => EndAction::Poweroff,
            "reboot" => EndAction::Reboot,
            "halt" => EndAction::Halt,
            "stay" => EndAction::Stay,
            _ => return None,
        })
    }
}

impl fmt::Display for EndAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndAction::Poweroff => "poweroff",
            EndAction::Reboot => "reboot",
            EndAction::Halt => "halt",
            EndAction::Stay => "stay",
        })
    }
}

/// A MAC address, printed the Linux way (`52:54:00:12:34:56`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Accepts `aa:bb:cc:dd:ee:ff`, `aa-bb-…`, and PXE's `01-aa-bb-…`
    /// (hardware type 1 = Ethernet, as pxelinux's `ipappend 2` writes it).
    pub fn parse(s: &str) -> Option<Mac> {
        let s = s.trim();
        let parts: Vec<&str> = s.split([':', '-']).collect();
        let parts = match parts.len() {
            6 => &parts[..],
            7 if parts[0] == "01" => &parts[1..],
            _ => return None,
        };
        let mut mac = [0u8; 6];
        for (byte, part) in mac.iter_mut().zip(parts) {
            if part.len() != 2 {
                return None;
            }
            *byte = u8::from_str_radix(part, 16).ok()?;
        }
        Some(Mac(mac))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

pub type Ipv4 = [u8; 4];

fn parse_ipv4(s: &str) -> Option<Ipv4> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for byte in out.iter_mut() {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *byte = part.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// The kernel's `ip=` parameter (Documentation/admin-guide/nfs/nfsroot.rst),
/// with dracut's IPv6 forms: addresses in brackets, a prefix length in the
/// netmask field (`ip=[fd00::5]::[fd00::1]:64::eth0:none`), and `dhcp6` /
/// `auto6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpConfig {
    /// `ip=dhcp` (also `on`, `any`, `both`, `bootp`, `dhcp6`, `auto6`, or
    /// autoconf in the long form): DHCPv4 and IPv6 autoconfiguration both.
    Dhcp { device: Option<String> },
    /// `ip=off` / `none`.
    Off,
    /// `ip=<client>:<server>:<gw>:<netmask>:<hostname>:<device>:off[:<dns0>:<dns1>]`.
    Static {
        address: core::net::IpAddr,
        gateway: Option<core::net::IpAddr>,
        /// From the netmask (IPv4) or the prefix length given there.
        prefix: Option<u8>,
        hostname: Option<String>,
        device: Option<String>,
        dns: Vec<core::net::IpAddr>,
    },
}

const AUTOCONF: [&str; 8] = [
    "dhcp", "on", "any", "both", "bootp", "rarp", "dhcp6", "auto6",
];

/// `s` split at colons outside brackets, brackets dropped.
fn ip_fields(s: &str) -> Option<Vec<&str>> {
    let mut fields = Vec::new();
    let mut rest = s;
    loop {
        let (field, after) = match rest.strip_prefix('[') {
            Some(inner) => {
                let close = inner.find(']')?;
                let after = &inner[close + 1..];
                if !(after.is_empty() || after.starts_with(':')) {
                    return None;
                }
                (&inner[..close], after)
            }
            None => match rest.find(':') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            },
        };
        fields.push(field);
        match after.strip_prefix(':') {
            Some(next) => rest = next,
            None => return Some(fields),
        }
    }
}

impl IpConfig {
    pub fn parse(s: &str) -> Result<IpConfig, String> {
        if AUTOCONF.contains(&s) {
            return Ok(IpConfig::Dhcp { device: None });
        }
        if s == "off" || s == "none" {
            return Ok(IpConfig::Off);
        }
        let f = ip_fields(s)
            .filter(|f| (2..=10).contains(&f.len()))
            .ok_or_else(|| {
                format!("'{s}' is neither dhcp/off nor client:server:gw:netmask:host:dev:autoconf")
            })?;
        // dracut's `ip=<interface>:<autoconf>` (`ip=eth0:dhcp6`).
        if let [device, how] = f[..] {
            if AUTOCONF.contains(&how)
                && !device.is_empty()
                && device.parse::<core::net::IpAddr>().is_err()
            {
                return Ok(IpConfig::Dhcp {
                    device: Some(device.to_string()),
                });
            }
        }
        let field = |i: usize| f.get(i).copied().filter(|v| !v.is_empty());
        let ip = |i: usize, what: &str| -> Result<Option<core::net::IpAddr>, String> {
            field(i)
                .map(|v| {
                    v.parse::<core::net::IpAddr>()
                        .map_err(|_| format!("{what} '{v}' is not an IP address"))
                })
                .transpose()
        };
        let device = field(5).map(ToString::to_string);
        match field(6).unwrap_or("off") {
            "off" | "none" => {}
            a if AUTOCONF.contains(&a) => return Ok(IpConfig::Dhcp { device }),
            other => return Err(format!("autoconf '{other}' is not off, none, dhcp or on")),
        }
        let address = ip(0, "client address")?.ok_or("a static ip= needs a client address")?;
        let prefix = match field(3) {
            None => None,
            Some(n) if n.bytes().all(|b| b.is_ascii_digit()) => Some(
                n.parse::<u8>()
                    .ok()
                    .filter(|p| *p <= if address.is_ipv6() { 128 } else { 32 })
                    .ok_or_else(|| format!("prefix length '{n}' is out of range"))?,
            ),
            Some(m) => match parse_ipv4(m).map(u32::from_be_bytes) {
                Some(mask) if mask.leading_ones() == mask.count_ones() => {
                    Some(mask.count_ones() as u8)
                }
                _ => return Err(format!("netmask '{m}' is not a netmask")),
            },
        };
        let gateway = ip(2, "gateway")?;
        let dns: Vec<_> = [ip(7, "dns0")?, ip(8, "dns1")?]
            .into_iter()
            .flatten()
            .collect();
        if gateway
            .iter()
            .chain(&dns)
            .any(|a| a.is_ipv6() != address.is_ipv6())
        {
            return Err(format!(
                "'{s}': the gateway and DNS servers must be of the address's family"
            ));
        }
        Ok(IpConfig::Static {
            address,
            gateway,
            prefix,
            hostname: field(4).map(ToString::to_string),
            device,
            dns,
        })
    }
}

/// The `rivet.*` keys rivet knows; any other `rivet.` key is reported.
pub const RIVET_KEYS: &[&str] = &[
    "rivet.after",
    "rivet.wait",
    "rivet.plan",
    "rivet.callback",
    "rivet.disk",
    "rivet.iface",
    "rivet.loglevel",
    "rivet.insecure",
    "rivet.debug",
    "rivet.vlan",
    "rivet.network_data",
];

/// The tagged VLAN to provision on: `rivet.vlan=ID` or `rivet.vlan=NIC.ID`,
/// or dracut's `vlan=NAME:NIC` (NAME `eth0.100`, `vlan100`, `vlan0100`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vlan {
    /// The NIC the VLAN runs on; None: the boot NIC.
    pub nic: Option<String>,
    pub id: u16,
}

impl Vlan {
    fn id(digits: &str) -> Option<u16> {
        digits
            .parse::<u16>()
            .ok()
            .filter(|id| (1..=4094).contains(id))
    }

    /// `rivet.vlan=`'s value.
    pub fn parse_rivet(value: &str) -> Option<Vlan> {
        match value.rsplit_once('.') {
            Some((nic, id)) if !nic.is_empty() => Some(Vlan {
                nic: Some(nic.to_string()),
                id: Vlan::id(id)?,
            }),
            _ => Some(Vlan {
                nic: None,
                id: Vlan::id(value)?,
            }),
        }
    }

    /// dracut's `vlan=NAME:NIC`: the id is what follows NAME's last dot
    /// (`eth0.100`) or its `vlan` prefix (`vlan100`, `vlan0100`).
    pub fn parse_dracut(value: &str) -> Option<Vlan> {
        let (name, nic) = value.split_once(':')?;
        let digits = match name.rsplit_once('.') {
            Some((_, id)) => id,
            None => name.strip_prefix("vlan")?,
        };
        Some(Vlan {
            nic: Some(nic.to_string()).filter(|n| !n.is_empty()),
            id: Vlan::id(digits)?,
        })
    }
}

/// A boolean kernel parameter's value as ironic-python-agent reads them.
pub fn truthy(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

/// Default bound on waiting for disks and NICs to appear, in seconds.
pub const DEFAULT_WAIT_SECS: u32 = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmdline {
    pub after: EndAction,
    pub wait_secs: u32,
    pub bootif: Option<Mac>,
    pub ip: Option<IpConfig>,
    pub consoles: Vec<String>,
    pub vlan: Option<Vlan>,
    /// Every `rivet.*` key as given (later values win), for later stages.
    pub rivet: BTreeMap<String, String>,
    /// ironic-python-agent's keys (`ipa-api-url=`, `ipa-insecure=`, …) as
    /// given; Ironic mode interprets them.
    pub ipa: BTreeMap<String, String>,
    /// Malformed or unknown keys, one readable line each.
    pub warnings: Vec<String>,
}

impl Default for Cmdline {
    fn default() -> Self {
        Cmdline {
            after: EndAction::default(),
            wait_secs: DEFAULT_WAIT_SECS,
            bootif: None,
            ip: None,
            consoles: Vec::new(),
            vlan: None,
            rivet: BTreeMap::new(),
            ipa: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }
}

/// Splits the command line the way the kernel's `next_arg` does: on
/// whitespace, with double quotes grouping (`key="a b"` → `key=a b`).
pub fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut started = false;
    for c in line.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                started = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if started {
                    out.push(core::mem::take(&mut cur));
                    started = false;
                }
            }
            c => {
                cur.push(c);
                started = true;
            }
        }
    }
    if started {
        out.push(cur);
    }
    out
}

impl Cmdline {
    pub fn parse(line: &str) -> Cmdline {
        let mut cmd = Cmdline::default();
        for token in tokens(line) {
            let Some((key, value)) = token.split_once('=') else {
                if token.starts_with("rivet.") {
                    cmd.warnings
                        .push(format!("'{token}' has no value (expected {token}=…)"));
                }
                continue;
            };
            match key {
                "BOOTIF" => match Mac::parse(value) {
                    Some(mac) => cmd.bootif = Some(mac),
                    None => cmd.warnings.push(format!(
                        "BOOTIF='{value}' is not a MAC address (expected 01-aa-bb-cc-dd-ee-ff)"
                    )),
                },
                "ip" => match IpConfig::parse(value) {
                    Ok(ip) => cmd.ip = Some(ip),
                    Err(why) => cmd.warnings.push(format!("ip=: {why}")),
                },
                "console" => cmd.consoles.push(value.to_string()),
                "rivet.vlan" | "vlan" => {
                    let parsed = if key == "vlan" {
                        Vlan::parse_dracut(value)
                    } else {
                        Vlan::parse_rivet(value)
                    };
                    match parsed {
                        Some(v) => cmd.vlan = Some(v),
                        None => cmd.warnings.push(format!(
                            "{key}='{value}' is not a VLAN (rivet.vlan=ID or NIC.ID, vlan=NAME.ID:NIC; ids 1-4094)"
                        )),
                    }
                }
                "rivet.after" => match EndAction::parse(value) {
                    Some(a) => cmd.after = a,
                    None => cmd.warnings.push(format!(
                        "rivet.after='{value}' is not poweroff, reboot, halt or stay; using {}",
                        cmd.after
                    )),
                },
                "rivet.wait" => match value.parse::<u32>() {
                    Ok(s) if s <= 3600 => cmd.wait_secs = s,
                    _ => cmd.warnings.push(format!(
                        "rivet.wait='{value}' is not a number of seconds (0-3600); using {}",
                        cmd.wait_secs
                    )),
                },
                k if k.starts_with("rivet.") && !RIVET_KEYS.contains(&k) => {
                    cmd.warnings.push(format!("unknown key '{k}' ignored"));
                }
                _ => {}
            }
            if key.starts_with("ipa-") {
                cmd.ipa.insert(key.to_string(), value.to_string());
            }
            if key.starts_with("rivet.") && RIVET_KEYS.contains(&key) {
                cmd.rivet.insert(key.to_string(), value.to_string());
            }
        }
        cmd
    }
}

/// A decimal number as Python's `float()` reads one (`12`, `-1.5`, `2e3`,
/// spaces around): Ironic's timeouts and root device hints are such
/// strings. Written out because core's float parser links 15 KB of tables
/// into `/init`; the result may differ from it in the last bit, which no
/// comparison of sizes or seconds notices.
pub fn decimal(s: &str) -> Option<f64> {
    let s = s.trim();
    let (negative, s) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa_text, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (whole, fraction) = mantissa_text.split_once('.').unwrap_or((mantissa_text, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let mut mantissa = 0u64;
    let mut scale = exponent.clamp(-400, 400);
    for (i, c) in whole.bytes().chain(fraction.bytes()).enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        let fractional = i >= whole.len();
        if mantissa < 1 << 59 {
            mantissa = mantissa * 10 + u64::from(c - b'0');
            scale -= i32::from(fractional);
        } else {
            // Digits past u64's precision: only their count matters.
            scale += i32::from(!fractional);
        }
    }
    // Dividing by ten is exact where multiplying by 0.1 is not (15 / 10).
    let mut value = mantissa as f64;
    for _ in 0..scale.unsigned_abs() {
        if scale < 0 {
            value /= 10.0;
        } else {
            value *= 10.0;
        }
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlans_in_rivet_and_dracut_forms() {
        let v = |line: &str| Cmdline::parse(line).vlan;
        assert_eq!(v("rivet.vlan=100"), Some(Vlan { nic: None, id: 100 }));
        assert_eq!(
            v("rivet.vlan=eth0.42"),
            Some(Vlan {
                nic: Some("eth0".into()),
                id: 42
            })
        );
        assert_eq!(
            v("vlan=eth0.100:eth0"),
            Some(Vlan {
                nic: Some("eth0".into()),
                id: 100
            })
        );
        assert_eq!(
            v("vlan=vlan0007:ens3"),
            Some(Vlan {
                nic: Some("ens3".into()),
                id: 7
            })
        );
        assert_eq!(v("rivet.vlan=4095"), None);
        assert_eq!(v("rivet.vlan=0"), None);
        let c = Cmdline::parse("rivet.vlan=eth0.x");
        assert!(
            c.vlan.is_none() && c.warnings[0].contains("not a VLAN"),
            "{:?}",
            c.warnings
        );
    }
    use alloc::vec;

    #[test]
    fn typical_ironic_pxe_line() {
        let c = Cmdline::parse(
            "BOOT_IMAGE=vmlinuz selinux=0 troubleshoot=0 text nofb vga=normal \
             ipa-api-url=http://10.0.0.1:6385 BOOTIF=01-52-54-00-12-34-56 initrd=initrd.gz \
             console=tty0 console=ttyS0,115200n8 rivet.after=reboot quiet\n",
        );
        assert_eq!(c.bootif, Some(Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56])));
        assert_eq!(c.after, EndAction::Reboot);
        assert_eq!(c.consoles, vec!["tty0", "ttyS0,115200n8"]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(
            c.rivet.get("rivet.after").map(String::as_str),
            Some("reboot")
        );
        assert_eq!(
            c.ipa.get("ipa-api-url").map(String::as_str),
            Some("http://10.0.0.1:6385")
        );
    }

    #[test]
    fn defaults_when_absent() {
        let c = Cmdline::parse("");
        assert_eq!(c.after, EndAction::Poweroff);
        assert_eq!(c.wait_secs, DEFAULT_WAIT_SECS);
        assert_eq!(c.bootif, None);
        assert_eq!(c.ip, None);
    }

    #[test]
    fn malformed_known_keys_are_reported_and_defaulted() {
        let c = Cmdline::parse("BOOTIF=zz-52 rivet.after=explode rivet.wait=-3 rivet.plan rivet.colour=red ip=1.2.3:x:y");
        assert_eq!(c.after, EndAction::Poweroff);
        assert_eq!(c.wait_secs, DEFAULT_WAIT_SECS);
        assert_eq!(c.bootif, None);
        assert_eq!(c.ip, None);
        assert_eq!(c.warnings.len(), 6, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("BOOTIF='zz-52'"));
        assert!(c.warnings[1].contains("rivet.after='explode'"));
        assert!(c.warnings.iter().any(|w| w.contains("rivet.colour")));
    }

    #[test]
    fn quotes_group_words() {
        assert_eq!(tokens(r#"a="b c" d  "e f""#), vec!["a=b c", "d", "e f"]);
        let c = Cmdline::parse(r#"rivet.plan="http://h/p lan.json""#);
        assert_eq!(c.rivet["rivet.plan"], "http://h/p lan.json");
    }

    #[test]
    fn mac_forms() {
        let want = Some(Mac([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]));
        assert_eq!(Mac::parse("01-aa-bb-cc-dd-ee-ff"), want);
        assert_eq!(Mac::parse("AA:BB:CC:DD:EE:FF"), want);
        assert_eq!(Mac::parse("aa-bb-cc-dd-ee-ff"), want);
        assert_eq!(Mac::parse("02-aa-bb-cc-dd-ee-ff"), None);
        assert_eq!(Mac::parse("aa:bb:cc:dd:ee"), None);
        assert_eq!(Mac::parse("aaa:bb:cc:dd:ee:f"), None);
        assert_eq!(
            Mac([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]).to_string(),
            "aa:bb:cc:dd:ee:ff"
        );
    }

    #[test]
    fn ip_forms() {
        assert_eq!(IpConfig::parse("dhcp"), Ok(IpConfig::Dhcp { device: None }));
        assert_eq!(IpConfig::parse("off"), Ok(IpConfig::Off));
        assert_eq!(
            IpConfig::parse("::::node1:eth1:dhcp"),
            Ok(IpConfig::Dhcp {
                device: Some("eth1".into())
            })
        );
        let ip = |s: &str| s.parse::<core::net::IpAddr>().unwrap();
        assert_eq!(
            IpConfig::parse("10.0.2.15::10.0.2.2:255.255.255.0:node1:eth0:off:10.0.2.3"),
            Ok(IpConfig::Static {
                address: ip("10.0.2.15"),
                gateway: Some(ip("10.0.2.2")),
                prefix: Some(24),
                hostname: Some("node1".into()),
                device: Some("eth0".into()),
                dns: vec![ip("10.0.2.3")],
            })
        );
        assert_eq!(
            IpConfig::parse("[fd00:1::5]::[fd00:1::1]:64::eth0:none:[fd00:1::53]"),
            Ok(IpConfig::Static {
                address: ip("fd00:1::5"),
                gateway: Some(ip("fd00:1::1")),
                prefix: Some(64),
                hostname: None,
                device: Some("eth0".into()),
                dns: vec![ip("fd00:1::53")],
            })
        );
        assert_eq!(
            IpConfig::parse("eth0:dhcp6"),
            Ok(IpConfig::Dhcp {
                device: Some("eth0".into())
            })
        );
        for auto in ["dhcp6", "auto6", "::::node1:eth1:dhcp6"] {
            assert!(
                matches!(IpConfig::parse(auto), Ok(IpConfig::Dhcp { .. })),
                "{auto}"
            );
        }
        assert!(IpConfig::parse("[fd00::5]::[10.0.2.2]:64::eth0:none").is_err());
        assert!(IpConfig::parse("[fd00::5::::eth0:none").is_err());
        assert!(IpConfig::parse("[fd00::5]x::::eth0:none").is_err());
        assert!(IpConfig::parse("[fd00::5]:::129::eth0:none").is_err());
        assert!(IpConfig::parse("10.0.2.15::10.0.2.2:255.0.255.0::eth0:off").is_err());
        assert!(IpConfig::parse("10.0.2.256::::::off").is_err());
        assert!(IpConfig::parse(":::::eth0:off").is_err());
        assert!(IpConfig::parse("10.0.2.15::::::bogus").is_err());
        assert!(IpConfig::parse("banana").is_err());
    }

    #[test]
    fn decimals_read_as_python_float_reads_them() {
        for (text, want) in [
            ("12", 12.0),
            (" 1.5 ", 1.5),
            ("-0.25", -0.25),
            ("+3", 3.0),
            ("2e3", 2000.0),
            ("2.5E-1", 0.25),
            (".5", 0.5),
            ("7.", 7.0),
            ("100", 100.0),
            ("123456789012345678901234", 123456789012345678901234.0),
        ] {
            let got = decimal(text).unwrap();
            assert!(
                (got - want).abs() <= want.abs() * 1e-15,
                "{text}: {got} != {want}"
            );
        }
        for bad in ["", ".", "-", "1.2.3", "12a", "e5", "1e", "0x10", "1 2"] {
            assert_eq!(decimal(bad), None, "{bad}");
        }
    }
}
