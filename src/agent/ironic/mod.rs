//! Ironic mode: rivet speaks ironic-python-agent's protocol, so a stock
//! Ironic conductor deploys (and cleans) through it. On the command line:
//! `ipa-api-url=` and/or `ipa-inspection-callback-url=`. Flow: network →
//! inspection when asked → lookup (node, token, heartbeat timeout) → agent
//! API on port 9999 + heartbeats → commands from the conductor, in every
//! state Ironic allows (fast track: inspection, cleaning and deploy in one
//! boot).
//!
//! - `params`: the `ipa-*` kernel parameters rivet honours;
//! - `conductor`: lookup and heartbeat against the Ironic API;
//! - `inspection`: the inventory and its POST to continue_inspection;
//! - `heartbeat`: when to heartbeat;
//! - `commands`, `steps`, `api`: the agent API (routes, records);
//! - `errors`: ironic-python-agent's error classes, written once;
//! - `token`: the agent token (constant-time, never printed);
//! - `jobs`: what an accepted command does (write the image, erase…);
//! - `bootloader`: image.install_bootloader (UEFI boot entries);
//! - `burnin`: the burn-in steps' knobs, workers and figures;
//! - `inject`: the inject_files step (files into the deployed ext4);
//! - `logs`: log.collect_system_logs (the node's logs and state as a tar);
//! - `run`: the Linux side — the loop serving the API while jobs run.

pub mod api;
pub mod bootloader;
pub mod burnin;
pub mod commands;
pub mod conductor;
pub mod erase;
pub mod errors;
pub mod heartbeat;
pub mod inject;
pub mod inspection;
mod jobs;
mod logs;
pub mod node;
pub mod params;
mod raid;
pub mod raid_boot;
pub mod run;
pub mod steps;
pub mod token;
pub mod vlans;

#[cfg(test)]
mod tests;
