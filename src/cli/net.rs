//! Options shared by subcommands that use rivet's own network stack.

use super::args::Args;
use rivet::linux::packet::{open_stack, LinuxStack};
use rivet::linux::tls::{Verify, CA_BUNDLE};
use rivet::net::stack::Addressing;
use smoltcp::wire::{IpAddress, IpCidr};

pub const OPTIONS: &[&str] = &[
    "iface",
    "vlan",
    "ip",
    "gw",
    "dns",
    "ca-bundle",
    "network-data",
];
pub const SWITCHES: &[&str] = &["insecure"];

pub const HELP: &str = "\
    \x20   --iface NAME        Use rivet's own TCP/IP on NAME (AF_PACKET; DHCPv4 and IPv6
                        autoconfiguration unless --ip). NAME's kernel IPv6 is turned
                        off: rivet answers for its MAC
    --vlan ID           Speak on 802.1Q VLAN ID of --iface (frames tagged by rivet)
    --ip CIDR           Static address, e.g. 10.0.0.5/24 or fd00::5/64 (default: DHCPv4 and
                        IPv6 autoconfiguration: router advertisements, SLAAC, DHCPv6)
    --gw IP             Default gateway with --ip
    --dns IP            DNS server with --ip (repeatable)
    --network-data FILE OpenStack network_data.json (a config-2 medium's): the NIC by MAC
                        (among --iface if given), VLAN, bond (active-backup), static
                        IPv4/IPv6 or autoconfiguration, gateway, DNS
    --ca-bundle FILE    CA certificates for https URLs [default: /etc/ssl/certs/ca-certificates.crt]
    --insecure          Do not verify https servers' certificates (says so loudly)
";

fn ip(s: &str, what: &str) -> Result<IpAddress, String> {
    s.parse::<std::net::IpAddr>()
        .map(IpAddress::from)
        .map_err(|_| format!("{what} '{s}' is not an IP address"))
}

/// How https servers are checked: --ca-bundle, --insecure, or the system bundle.
fn verify(args: &Args) -> Result<Verify, String> {
    match (args.get("insecure"), args.get("ca-bundle")) {
        (Some(_), Some(_)) => Err("--insecure and --ca-bundle exclude each other".into()),
        (Some(_), None) => Ok(Verify::Insecure),
        (None, bundle) => Ok(Verify::Bundle(bundle.unwrap_or(CA_BUNDLE).to_string())),
    }
}

/// The stack network_data.json describes for one of this host's NICs.
fn from_network_data(args: &Args, file: &str) -> Result<LinuxStack, String> {
    let json = std::fs::read(file).map_err(|e| format!("--network-data {file}: {e}"))?;
    let mut nics = rivet::linux::inventory::netdata_nics(std::path::Path::new("/sys"));
    if let Some(only) = args.get("iface") {
        nics.retain(|n| n.name == only);
    }
    let c = rivet::netdata::choose(&json, &nics, None).map_err(|e| format!("{file}: {e}"))?;
    let addressing = Addressing::from_network_data(&c.addressing);
    log::info!(
        "{file}: network '{}' on {}{}",
        c.network,
        c.nic,
        c.vlan.map(|v| format!(" VLAN {v}")).unwrap_or_default()
    );
    if !c.standby.is_empty() {
        log::info!("{file}: bond members {} stand by", c.standby.join(", "));
    }
    let mut stack = open_stack(&c.nic, &c.standby, c.vlan, addressing, verify(args)?)?;
    let lease = stack
        .wait_for_address(30_000)
        .map_err(|e| format!("{}: {e}", c.nic))?;
    log::info!("{}: {}", c.nic, rivet::net::stack::describe_lease(&lease));
    Ok(stack)
}

/// The stack for --iface, with the address in place (waits for DHCP).
pub fn stack(args: &Args) -> Result<Option<LinuxStack>, String> {
    if let Some(file) = args.get("network-data") {
        if args.get("ip").is_some() || args.get("vlan").is_some() {
            return Err("--network-data says the address and VLAN: drop --ip and --vlan".into());
        }
        return from_network_data(args, file).map(Some);
    }
    let Some(iface) = args.get("iface") else {
        return Ok(None);
    };
    let addressing = match args.get("ip") {
        None => Addressing::Dhcp,
        Some(cidr) => {
            let (addr, prefix) = cidr
                .split_once('/')
                .ok_or_else(|| format!("--ip '{cidr}': expected ADDRESS/PREFIX"))?;
            let addr = ip(addr, "--ip")?;
            let most = if matches!(addr, IpAddress::Ipv6(_)) {
                128
            } else {
                32
            };
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= most)
                .ok_or_else(|| format!("--ip '{cidr}': bad prefix"))?;
            let gateway = args.get("gw").map(|g| ip(g, "--gw")).transpose()?;
            let dns: Vec<IpAddress> = args
                .all("dns")
                .into_iter()
                .map(|d| ip(d, "--dns"))
                .collect::<Result<_, _>>()?;
            if gateway
                .iter()
                .chain(&dns)
                .any(|a| a.version() != addr.version())
            {
                return Err(format!(
                    "--ip '{cidr}': --gw and --dns must be of its family"
                ));
            }
            Addressing::Static {
                cidr: IpCidr::new(addr, prefix),
                gateway,
                dns,
            }
        }
    };
    let vlan = match args.get("vlan") {
        Some(v) => Some(
            v.parse::<u16>()
                .ok()
                .filter(|id| (1..=4094).contains(id))
                .ok_or_else(|| format!("--vlan '{v}': a VLAN id, 1-4094"))?,
        ),
        None => None,
    };
    let mut stack = open_stack(iface, &[], vlan, addressing, verify(args)?)?;
    let lease = stack
        .wait_for_address(30_000)
        .map_err(|e| format!("{iface}: {e}"))?;
    log::info!("{iface}: {}", rivet::net::stack::describe_lease(&lease));
    Ok(Some(stack))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Args {
        let argv = line.split_whitespace().map(String::from).collect();
        Args::parse(argv, OPTIONS, SWITCHES).unwrap()
    }

    #[test]
    fn https_checking_comes_from_the_flags() {
        assert_eq!(
            verify(&parse("--iface x")).unwrap(),
            Verify::Bundle(CA_BUNDLE.into())
        );
        assert_eq!(
            verify(&parse("--ca-bundle /a.pem")).unwrap(),
            Verify::Bundle("/a.pem".into())
        );
        assert_eq!(verify(&parse("--insecure")).unwrap(), Verify::Insecure);
        assert_eq!(
            verify(&parse("--insecure --ca-bundle /a.pem")).unwrap_err(),
            "--insecure and --ca-bundle exclude each other"
        );
    }
}
