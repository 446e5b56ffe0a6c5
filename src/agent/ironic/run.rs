//! Ironic mode on the machine: network, lookup, then one loop that serves
//! the agent API and heartbeats — and keeps doing both while a job (an
//! image write, a wipe) runs, because jobs reach the network through
//! [`Servicing`], which services the agent whenever the job waits on it.

use super::api::{Api, Host, Served};
use super::conductor::{self, IronicApi};
use super::heartbeat::Schedule;
use super::inspection::{self, Facts};
use super::params::Params;
use super::token::AgentToken;
use crate::agent::session;
use crate::cmdline::{Cmdline, EndAction};
use crate::linux::packet::LinuxStack;
use crate::linux::{inventory, sys};
use crate::net::listener::Listener;
use crate::net::{ConnId, NetError, NetErrorKind, Transport};
use std::collections::BTreeMap;
use std::path::Path;

/// The machine's side of the API: sync and logs (with rivet's own
/// addresses, which only the stack knows).
struct Machine {
    network: String,
}

impl Host for Machine {
    fn sync(&mut self) -> Result<(), String> {
        sys::sync();
        Ok(())
    }
    fn system_logs(&mut self) -> Result<String, String> {
        Ok(super::logs::pack(&self.network))
    }
}

/// xorshift64: jitter for backoff and heartbeats, not secrets.
fn next_random(state: &mut u64) -> u32 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 32) as u32
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    sys::random(&mut b);
    u64::from_le_bytes(b)
}

pub(super) struct Agent {
    pub(super) api: Api,
    listener: Listener,
    schedule: Schedule,
    ironic: IronicApi,
    node_uuid: String,
    callback_url: String,
    token: Option<AgentToken>,
    /// The certificate's PEM, sent as `agent_verify_ca` (auto-TLS only).
    verify_ca: Option<String>,
    rng: u64,
    accepted: u32,
}

impl Agent {
    /// Answers what the API has received and heartbeats when due.
    fn service(&mut self, stack: &mut LinuxStack) {
        let mut machine = Machine {
            network: stack.describe_addresses(),
        };
        stack.serve(
            &mut self.listener,
            &mut Served {
                api: &mut self.api,
                host: &mut machine,
            },
        );
        if !self.schedule.due(stack.now_ms()) {
            return;
        }
        let r = self.ironic.heartbeat(
            stack,
            &self.node_uuid,
            &self.callback_url,
            self.token.as_ref().map(AgentToken::expose),
            self.verify_ca.as_deref(),
        );
        match &r {
            Ok(()) if self.accepted == 0 => log::info!(
                "heartbeat accepted by {} (callback_url {})",
                self.ironic.url,
                self.callback_url
            ),
            Ok(()) => log::debug!("heartbeat accepted"),
            Err(e) => log::warn!("{e}"),
        }
        self.accepted += r.is_ok() as u32;
        let r2 = next_random(&mut self.rng);
        self.schedule.sent(stack.now_ms(), r.is_ok(), r2);
    }
}

/// rivet's stack for a job, with the agent serviced at least every
/// `SERVICE_MS` while the job waits on the network: commands get answers
/// (busy, RUNNING) and heartbeats go out during a long image stream.
pub(super) struct Servicing<'a> {
    pub(super) stack: &'a mut LinuxStack,
    pub(super) agent: &'a mut Agent,
    pub(super) last_ms: u64,
}

const SERVICE_MS: u64 = 20;
/// Blocking waits are cut into slices this long, servicing in between.
const SLICE_MS: u64 = 200;

impl Servicing<'_> {
    fn tick(&mut self) {
        let now = self.stack.now_ms();
        if now >= self.last_ms + SERVICE_MS {
            self.agent.service(self.stack);
            self.last_ms = self.stack.now_ms();
        }
    }
}

impl super::jobs::JobHost for Servicing<'_> {
    fn api(&self) -> &Api {
        &self.agent.api
    }
    fn show_progress(&mut self, progress: serde_json::Value) {
        self.agent.api.set_progress(progress);
    }
}

impl Transport for Servicing<'_> {
    fn now_ms(&mut self) -> u64 {
        self.stack.now_ms()
    }
    fn sleep_ms(&mut self, ms: u64) {
        let deadline = self.stack.now_ms() + ms;
        loop {
            self.tick();
            let now = self.stack.now_ms();
            if now >= deadline {
                return;
            }
            self.stack.sleep_ms((deadline - now).min(SLICE_MS));
        }
    }
    fn connect(&mut self, host: &str, port: u16, timeout_ms: u64) -> Result<ConnId, NetError> {
        self.tick();
        self.stack.connect(host, port, timeout_ms)
    }
    fn send(&mut self, conn: ConnId, data: &[u8], timeout_ms: u64) -> Result<(), NetError> {
        self.tick();
        self.stack.send(conn, data, timeout_ms)
    }
    fn recv(&mut self, conn: ConnId, buf: &mut [u8], timeout_ms: u64) -> Result<usize, NetError> {
        let deadline = self.stack.now_ms() + timeout_ms;
        loop {
            self.tick();
            let left = deadline.saturating_sub(self.stack.now_ms());
            match self.stack.recv(conn, buf, left.min(SLICE_MS)) {
                Err(e) if e.kind == NetErrorKind::Timeout && left > SLICE_MS => continue,
                Err(e) if e.kind == NetErrorKind::Timeout => {
                    return Err(NetError::new(
                        NetErrorKind::Timeout,
                        format!("no data for {timeout_ms} ms"),
                    ))
                }
                other => return other,
            }
        }
    }
    fn close(&mut self, conn: ConnId) {
        self.stack.close(conn)
    }
    fn accept(&mut self, port: u16, timeout_ms: u64) -> Result<ConnId, NetError> {
        let deadline = self.stack.now_ms() + timeout_ms;
        loop {
            self.tick();
            let left = deadline.saturating_sub(self.stack.now_ms());
            match self.stack.accept(port, left.min(SLICE_MS)) {
                Err(e) if e.kind == NetErrorKind::Timeout && left > SLICE_MS => continue,
                other => return other,
            }
        }
    }
    fn finish(&mut self, conn: ConnId, timeout_ms: u64) -> Result<(), NetError> {
        self.tick();
        self.stack.finish(conn, timeout_ms)
    }
    fn start_tls(&mut self, conn: ConnId, host: &str, timeout_ms: u64) -> Result<(), NetError> {
        self.tick();
        self.stack.start_tls(conn, host, timeout_ms)
    }
}

/// Sends what is queued (the answer to power_off) before the machine goes.
/// Every network interface but loopback down (`ip link set … down`), as
/// ironic-python-agent's lockdown does.
fn lock_down_links() {
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "lo" {
            continue;
        }
        if let Err(err) = sys::set_link(&name, false) {
            log::warn!("lockdown: could not take {name} down: {err}");
        }
    }
}

fn drain(agent: &mut Agent, stack: &mut LinuxStack, ms: u64) {
    let deadline = stack.now_ms() + ms;
    while stack.now_ms() < deadline {
        agent.service(stack);
        stack.idle(20);
    }
}

/// Runs Ironic mode if the command line asks for it (`ipa-api-url=`).
/// Returns the end action: a power command's, or the command line's after
/// a fatal error.
pub fn run(cmdline: &Cmdline) -> Option<EndAction> {
    let params = Params::from_cmdline(cmdline)?;
    if params.debug {
        log::set_max_level(log::LevelFilter::Debug);
    }
    for w in &params.warnings {
        log::warn!("command line: {w}");
    }
    // Arrays made before this boot (raid.create_configuration, then a
    // reboot), as the real agent's udev rules assemble them: the kernel
    // itself autodetects only 0.90 members. As PID 1 only: on a host the
    // disks are not rivet's.
    let assembled = match std::process::id() {
        1 => crate::linux::md::assemble_all(),
        _ => Vec::new(),
    };
    if !assembled.is_empty() {
        log::info!("software RAID: assembled {}", assembled.join(", "));
    }
    match serve(cmdline, &params) {
        Ok(end) => Some(end),
        Err(e) => {
            log::error!("Ironic mode stopped: {e}");
            Some(cmdline.after)
        }
    }
}

/// Other NICs with carrier get an address from rivet's stack on each, for
/// the inventory's `ipv4_address` / `ipv6_address`
/// (`ipa-inspection-dhcp-all-interfaces`).
fn lease_other_nics(boot_nic: &str, addresses: &mut Addresses) {
    for nic in inventory::nics(Path::new("/sys")) {
        if nic.name == boot_nic || nic.carrier == Some(false) {
            continue;
        }
        address_on(&nic.name, None, &nic.name, addresses);
    }
}

/// Addresses from rivet's stack on `nic` (tagged `vlan`), recorded as
/// `name`'s. As the real agent (`inspector.wait_for_dhcp`) it waits for
/// IPv4, here up to 15 s; an IPv6 address that came meanwhile is reported
/// too.
fn address_on(nic: &str, vlan: Option<u16>, name: &str, addresses: &mut Addresses) {
    let opened = crate::linux::packet::open_stack(
        nic,
        &[],
        vlan,
        crate::net::stack::Addressing::Dhcp,
        crate::linux::tls::Verify::Insecure,
    );
    match opened {
        Ok(mut s) => {
            let waited = s.wait_for(Some(false), 15_000);
            if s.lease.is_some() || s.lease6.is_some() {
                log::info!("inspection: {name} has {}", s.describe_addresses());
                addresses.record(name, &s);
            }
            if let Err(e) = waited {
                log::warn!("inspection: {name}: {e}");
            }
        }
        Err(e) => log::warn!("inspection: {name}: {e}"),
    }
}

/// The addresses rivet's stacks hold, by interface and family.
#[derive(Default)]
struct Addresses {
    ipv4: BTreeMap<String, String>,
    ipv6: BTreeMap<String, String>,
}

impl Addresses {
    fn record<D: smoltcp::phy::Device + crate::net::stack::Link, W: crate::net::stack::Wait>(
        &mut self,
        nic: &str,
        stack: &crate::net::stack::Stack<D, W>,
    ) {
        for (lease, map) in [
            (&stack.lease, &mut self.ipv4),
            (&stack.lease6, &mut self.ipv6),
        ] {
            if let Some(l) = lease {
                map.insert(nic.to_string(), l.address.address().to_string());
            }
        }
    }
}

/// What inspection reports about this machine.
fn facts(
    cmdline: &Cmdline,
    addresses: Addresses,
    lldp: BTreeMap<String, Vec<(u8, Vec<u8>)>>,
) -> Facts {
    use crate::linux::hardware;
    let (sys_dir, proc_dir) = (Path::new("/sys"), Path::new("/proc"));
    let (memory_total, memory_physical_mb) = hardware::memory(proc_dir, sys_dir);
    Facts {
        nics: inventory::nics(sys_dir),
        disks: inventory::disks(sys_dir),
        cpu: hardware::cpu(proc_dir),
        memory_total,
        memory_physical_mb,
        vendor: hardware::system_vendor(sys_dir),
        uefi: crate::linux::efivars::booted_uefi(),
        pxe_mac: cmdline.bootif.map(|m| m.to_string()),
        hostname: hardware::hostname(),
        ipv4: addresses.ipv4,
        ipv6: addresses.ipv6,
        lldp,
        vlans: Vec::new(),
    }
}

/// Inspection: the inventory POSTed as ironic-python-agent posts it. The
/// answer's lookup payload when Ironic gives one (API ≥ 1.84). A failure is
/// logged and the lookup goes on, as the real agent does.
fn inspect(
    cmdline: &Cmdline,
    params: &Params,
    stack: &mut LinuxStack,
    boot_nic: &str,
    apis: &mut [IronicApi],
) -> Option<conductor::Lookup> {
    let collectors = inspection::collectors(params.inspection_collectors.as_deref());
    log::info!(
        "inspection is enabled with collectors {}",
        collectors.join(", ")
    );
    // The real agent waits for the boot NIC's IPv4 (inspector.wait_for_dhcp);
    // where IPv6 came first and Ironic is not reached over IPv6, DHCPv4
    // gets a moment too.
    let over_v6 = params
        .inspection_urls
        .first()
        .and_then(|u| crate::net::url::Url::parse(u).ok())
        .is_some_and(|u| u.host.contains(':'));
    if stack.lease.is_none() && !over_v6 {
        if let Err(e) = stack.wait_for(Some(false), 15_000) {
            log::warn!("inspection: {boot_nic}: {e}");
        }
    }
    let mut addresses = Addresses::default();
    addresses.record(boot_nic, stack);
    if params.dhcp_all_interfaces {
        lease_other_nics(boot_nic, &mut addresses);
    }
    let nics = inventory::nics(Path::new("/sys"));
    let lldp = if params.collect_lldp {
        let names: Vec<String> = nics.iter().map(|n| n.name.clone()).collect();
        crate::linux::lldp::listen(
            &names,
            std::time::Duration::from_secs(params.lldp_timeout_s),
        )
    } else {
        BTreeMap::new()
    };
    let mut warnings = Vec::new();
    let vlans = super::vlans::choose(
        &params.enable_vlan_interfaces,
        &nics,
        &lldp,
        params.collect_lldp,
        &mut warnings,
    );
    for w in warnings {
        log::warn!("inspection: {w}");
    }
    for v in &vlans {
        log::info!("inspection: VLAN interface {}", v.name);
        if params.dhcp_all_interfaces {
            address_on(&v.parent, Some(v.id), &v.name, &mut addresses);
        }
    }
    let mut facts = facts(cmdline, addresses, lldp);
    facts.vlans = vlans;
    let network = stack.describe_addresses();
    let logs = collectors
        .iter()
        .any(|c| c == "logs")
        .then(|| super::logs::pack(&network));
    let body = inspection::body(&facts, &collectors, logs, params.collect_lldp, Vec::new());
    // Ironic's own endpoint answers with the lookup from 1.84 on; an
    // inspector elsewhere gets no version header, as from the real agent.
    let version = match apis.first_mut() {
        Some(api)
            if params
                .inspection_urls
                .iter()
                .all(|u| u.starts_with(&api.url)) =>
        {
            api.ensure_version(stack);
            (api.api_version() >= inspection::LOOKUP_IN_ANSWER)
                .then_some(inspection::LOOKUP_IN_ANSWER)
        }
        _ => None,
    };
    let data = serde_json::to_vec(&body).expect("JSON");
    match inspection::post(
        stack,
        &params.inspection_urls,
        &data,
        version,
        params.global_request_id.as_deref(),
    ) {
        Ok(answer) => match inspection::read_answer(&answer) {
            inspection::Answer::Lookup(found) => {
                log::info!(
                    "inspection finished: node {} (lookup in the answer)",
                    found.node_uuid
                );
                Some(*found)
            }
            inspection::Answer::Uuid(uuid) => {
                log::info!("inspection finished: node {uuid}");
                None
            }
            inspection::Answer::Nothing => {
                log::info!("inspection finished");
                None
            }
        },
        Err(e) => {
            log::error!("Failed to perform inspection: {e}. Processing with lookup");
            None
        }
    }
}

fn serve(cmdline: &Cmdline, params: &Params) -> Result<EndAction, String> {
    if params.api_urls.is_empty() && params.inspection_urls.is_empty() {
        return Err("no usable ipa-api-url".into());
    }
    let ca = super::params::ironic_ca(params.cafile.as_deref(), Path::new("/"));
    if let Some(ca) = &ca {
        log::info!("Ironic's CA: {ca}");
    }
    let bundle = ca.as_deref().unwrap_or(crate::linux::tls::default_bundle());
    // What went wrong with the network but did not stop it is on the
    // console (and in the logs Ironic collects).
    let (mut stack, lease, boot_nic) =
        session::network_verified(cmdline, params.insecure, bundle, &mut Vec::new())?;
    let macs: Vec<String> = inventory::nics(Path::new("/sys"))
        .iter()
        .filter_map(|n| n.mac.map(|m| m.to_string()))
        .collect();
    let mut apis: Vec<IronicApi> = params
        .api_urls
        .iter()
        .map(|u| IronicApi::new(u, params.global_request_id.clone()))
        .collect();
    if let Some(v) = params.api_version {
        apis.iter_mut().for_each(|a| a.version = Some(v));
    }
    log::info!(
        "looking up this machine ({}) at {}",
        macs.join(", "),
        params.api_urls.join(", ")
    );
    let inspected = if params.inspection_urls.is_empty() {
        None
    } else {
        inspect(cmdline, params, &mut stack, &boot_nic, &mut apis)
    };
    if apis.is_empty() {
        log::info!("No ipa-api-url configured, heartbeat and lookup skipped after inspection");
        return Ok(EndAction::Stay);
    }
    let mut rng = random_u64() | 1;
    let (i, found) = match inspected {
        Some(found) => (0, found),
        None => conductor::lookup(
            &mut stack,
            &mut apis,
            &macs,
            params.lookup_timeout_s * 1000,
            params.lookup_interval_s * 1000,
            &mut || next_random(&mut rng),
        )?,
    };
    let token = conductor::choose_token(
        &found.token,
        found.token_required,
        params.agent_token.as_ref(),
    )?;
    let ironic = apis.swap_remove(i);
    // The address on the way to Ironic (its family: a dual-stack machine
    // answers an IPv6 conductor on IPv6), as the real agent picks it.
    let host = match &params.advertise_host {
        Some(h) => h.clone(),
        None => {
            let ironic_host = crate::net::url::Url::parse(&ironic.url)
                .map(|u| u.host)
                .unwrap_or_default();
            stack
                .address_towards(&ironic_host, 10_000)
                .map(|a| a.to_string())
                .unwrap_or_else(|e| {
                    log::warn!("{e}; advertising {}", lease.address.address());
                    lease.address.address().to_string()
                })
        }
    };
    let mut listener = stack.listen(params.listen_port, 16);
    // The conductor usually calls from the API's address (all-in-one
    // Ironic, Metal3, Bifrost): its connections keep their slots. Any
    // other peer earns that by sending the agent token.
    if let Some(ip) = crate::net::url::Url::parse(&ironic.url).ok().and_then(|u| {
        u.host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .ok()
    }) {
        listener.keep_for(ip.into());
    }
    let verify_ca = if params.plain_http {
        log::warn!("ipa-advertise-protocol=http: the agent API is plain HTTP (a stock conductor refuses it)");
        None
    } else if !ironic.supports_auto_tls() {
        log::warn!(
            "Ironic API {}.{} predates auto-TLS (1.68): the agent API is plain HTTP",
            ironic.api_version().0,
            ironic.api_version().1
        );
        None
    } else {
        let ip: std::net::IpAddr = host
            .parse()
            .map_err(|_| format!("ipa-advertise-host={host}: auto-TLS needs an IP address"))?;
        let started = stack.now_ms();
        let tls = crate::linux::tls::AgentTls::generate(
            ip,
            &host,
            found.tls_min_version.as_deref(),
            found.tls_cipher_suites.as_deref(),
            std::time::SystemTime::now(),
        )?;
        log::info!(
            "TLS: P-384 key and certificate for {ip} in {} ms (TLS {}+)",
            stack.now_ms() - started,
            found.tls_min_version.as_deref().unwrap_or("1.2")
        );
        listener.secure(tls.factory());
        Some(tls.pem)
    };
    let scheme = if verify_ca.is_some() { "https" } else { "http" };
    let callback_url = if host.contains(':') {
        format!("{scheme}://[{host}]:{}", params.advertise_port)
    } else {
        format!("{scheme}://{host}:{}", params.advertise_port)
    };
    log::info!(
        "node {}: heartbeat every ~{} s, agent API at {callback_url}",
        found.node_uuid,
        found.heartbeat_timeout_s * 45 / 100
    );
    let started_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut api = Api::new(token.clone(), started_at, random_u64());
    api.configure(
        found.node.clone(),
        super::api::LookupConfig {
            md5_enabled: found.md5_enabled,
            image_checks: found.image_checks.clone(),
            bios_bootloader_install: found.bios_bootloader_install,
        },
    );
    let now = stack.now_ms();
    let mut agent = Agent {
        api,
        listener,
        schedule: Schedule::new(found.heartbeat_timeout_s, now),
        ironic,
        node_uuid: found.node_uuid,
        callback_url,
        token,
        verify_ca,
        rng: random_u64() | 1,
        accepted: 0,
    };
    loop {
        agent.service(&mut stack);
        if let Some(job) = agent.api.take_job() {
            let lockdown = job.work == super::api::Work::Lockdown;
            let done = {
                let mut t = Servicing {
                    stack: &mut stack,
                    agent: &mut agent,
                    last_ms: 0,
                };
                super::jobs::run_job(&mut t, &job)
            };
            // What the image write found first: the conductor asks for it
            // as soon as it sees the command succeed.
            if let Some(written) = done.image {
                agent.api.record_image(written);
            }
            agent.api.finish(&job.id, done.result);
            agent.schedule.force();
            if let Some(end) = done.end {
                drain(&mut agent, &mut stack, 1_000);
                sys::sync();
                if lockdown {
                    // system.lockdown: the API and heartbeats end with this
                    // loop; the links go down so nothing reaches the node.
                    drop(agent);
                    drop(stack);
                    lock_down_links();
                    log::info!(
                        "locked down by the conductor: agent API closed, heartbeats stopped, \
                         every link down; staying up, never powering off"
                    );
                    return Ok(end);
                }
                log::info!("{end} requested by the conductor");
                return Ok(end);
            }
        }
        stack.idle(20);
    }
}
