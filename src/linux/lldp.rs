//! Listening for LLDP on every NIC during inspection (`ipa-collect-lldp`),
//! bounded by the real agent's timeout: the first frame per interface.

use super::sys;
use crate::wire::lldp;
use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

pub type Tlvs = Vec<(u8, Vec<u8>)>;

/// The TLVs of the first LLDP frame each of `nics` receives within
/// `timeout` (links are brought up; NICs that cannot listen are logged).
pub fn listen(nics: &[String], timeout: Duration) -> BTreeMap<String, Tlvs> {
    let mut sockets: Vec<(String, OwnedFd)> = Vec::new();
    for nic in nics {
        if let Err(e) = sys::set_link_up(nic) {
            log::warn!("LLDP: {nic}: bringing the link up: {e}");
        }
        match sys::multicast_packet_socket(nic, lldp::ETHERTYPE, lldp::NEAREST_BRIDGE) {
            Ok(fd) => sockets.push((nic.clone(), fd)),
            Err(e) => log::warn!("LLDP: {nic}: no socket: {e}"),
        }
    }
    let mut found = BTreeMap::new();
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 9216];
    while found.len() < sockets.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut fds: Vec<rustix::event::PollFd> = sockets
            .iter()
            .map(|(_, fd)| rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN))
            .collect();
        let wait = rustix::time::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        if rustix::event::poll(&mut fds, Some(&wait)).is_err() {
            continue;
        }
        drop(fds);
        for (nic, fd) in &sockets {
            while let Ok((n, _)) =
                rustix::net::recv(fd.as_fd(), &mut buf, rustix::net::RecvFlags::DONTWAIT)
            {
                if found.contains_key(nic) {
                    continue;
                }
                if let Some(tlvs) = lldp::tlvs(&buf[..n.min(buf.len())]) {
                    log::info!("LLDP: {nic}: {} TLVs", tlvs.len());
                    found.insert(nic.clone(), tlvs);
                }
            }
        }
    }
    if found.len() < sockets.len() {
        log::info!(
            "LLDP: frames on {} of {} interfaces within {} s",
            found.len(),
            sockets.len(),
            timeout.as_secs()
        );
    }
    found
}
