//! The deploy and clean steps rivet offers the conductor, in the shape of
//! `get_deploy_steps` / `get_clean_steps` results. Only steps rivet runs
//! are listed: the conductor then never asks for one it cannot do.

use serde_json::{json, Value};

/// The hardware manager name and version the conductor stores and sends
/// back with each step (a different agent version → VersionMismatch).
pub fn versions() -> Value {
    json!({"rivet_hardware_manager": crate::VERSION})
}

/// `{"<kind>": {"RivetHardwareManager": [...]}, "hardware_manager_version": …}`.
pub fn list(kind: &str) -> Value {
    let steps = if kind == "service_steps" {
        // Servicing an active node (Ironic 2023.2+): what ironic-python-agent
        // offers there that rivet does (its RAID steps are not here yet, bootc
        // is refused): burn-in but of disks (that would destroy the node's
        // data), re-imaging and inject_files.
        let mut s = burnin(&["burnin_cpu", "burnin_memory", "burnin_network"]);
        s.push(json!({"step": "write_image", "priority": 0, "interface": "deploy", "reboot_requested": false}));
        s.push(inject_files());
        s
    } else if kind == "clean_steps" {
        let mut s = vec![
            // Same priority as ironic-python-agent's: runs in automated cleaning.
            json!({"step": "erase_devices_metadata", "priority": 99, "interface": "deploy",
                   "reboot_requested": false, "abortable": true}),
            // ironic-python-agent's priorities: erase_devices runs in a
            // stock automated cleaning after the metadata wipe; express
            // only when an operator asks for it.
            json!({"step": "erase_devices", "priority": 10, "interface": "deploy",
                   "reboot_requested": false, "abortable": true}),
            json!({"step": "erase_devices_express", "priority": 0, "interface": "deploy",
                   "reboot_requested": false, "abortable": true}),
            // ironic-python-agent's: a previous tenant's crash records go.
            json!({"step": "erase_pstore", "priority": 0, "interface": "deploy",
                   "reboot_requested": false, "abortable": true}),
            clean_uefi_nvram(),
        ];
        s.extend(burnin(&[
            "burnin_cpu",
            "burnin_memory",
            "burnin_disk",
            "burnin_network",
        ]));
        s
    } else {
        vec![
            json!({"step": "erase_devices_metadata", "priority": 0, "interface": "deploy", "reboot_requested": false}),
            json!({"step": "erase_devices", "priority": 0, "interface": "deploy", "reboot_requested": false}),
            // Proxied by the conductor's out-of-band step of the same name.
            json!({"step": "write_image", "priority": 0, "interface": "deploy", "reboot_requested": false}),
            clean_uefi_nvram(),
            inject_files(),
        ]
    };
    json!({kind: {"RivetHardwareManager": steps}, "hardware_manager_version": versions()})
}

/// Burn-in steps as ironic-python-agent lists them (priority 0: run only
/// when asked). Its `burnin_gpu` is not offered: rivet has no GPU stack.
fn burnin(names: &[&str]) -> Vec<Value> {
    names
        .iter()
        .map(|n| {
            json!({"step": n, "priority": 0, "interface": "deploy",
                        "reboot_requested": false, "abortable": true})
        })
        .collect()
}

/// ironic-python-agent's `inject_files` (deploy and service; priority 0,
/// its `ipa-inject-files-priority` default) with its argsinfo.
fn inject_files() -> Value {
    json!({"step": "inject_files", "priority": 0, "interface": "deploy", "reboot_requested": false,
           "argsinfo": {"files": {"required": false, "description":
               "Files to inject, a list of file structures with keys: 'path' (path to the file), \
                'partition' (partition specifier), 'content' (base64 encoded string), 'mode' (new \
                file mode) and 'dirmode' (mode for the leaf directory, if created). Merged with the \
                values from node.properties[inject_files]."},
               "verify_ca": {"required": false, "description":
               "Whether to verify TLS certificates. Global agent options are used by default."}}})
}

/// ironic-python-agent's `clean_uefi_nvram` (clean and deploy, priority 0)
/// with its argsinfo.
fn clean_uefi_nvram() -> Value {
    json!({"step": "clean_uefi_nvram", "priority": 0, "interface": "deploy",
           "reboot_requested": false, "abortable": true,
           "argsinfo": {"match_patterns": {"required": false, "description":
               "Json blob contains a list of regex patterns where any UEFI NVRAM entry matching that \
                pattern will be deleted. Default value is '[\"^HD\\(\", \"shim.*\\.efi\", \"grub.*\\.efi\"]'"}}})
}

/// The patterns `clean_uefi_nvram` uses when none are given.
pub const DEFAULT_NVRAM_PATTERNS: [&str; 3] = [r"^HD\(", r"shim.*\.efi", r"grub.*\.efi"];
