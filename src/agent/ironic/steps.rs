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
    let steps = if kind == "clean_steps" {
        // Same priority as ironic-python-agent's: runs in automated cleaning.
        json!([
            {"step": "erase_devices_metadata", "priority": 99, "interface": "deploy",
             "reboot_requested": false, "abortable": true},
            // ironic-python-agent's priorities: erase_devices runs in a
            // stock automated cleaning after the metadata wipe; express
            // only when an operator asks for it.
            {"step": "erase_devices", "priority": 10, "interface": "deploy",
             "reboot_requested": false, "abortable": true},
            {"step": "erase_devices_express", "priority": 0, "interface": "deploy",
             "reboot_requested": false, "abortable": true},
        ])
    } else {
        json!([
            {"step": "erase_devices_metadata", "priority": 0, "interface": "deploy", "reboot_requested": false},
            {"step": "erase_devices", "priority": 0, "interface": "deploy", "reboot_requested": false},
            // Proxied by the conductor's out-of-band step of the same name.
            {"step": "write_image", "priority": 0, "interface": "deploy", "reboot_requested": false},
        ])
    };
    json!({kind: {"RivetHardwareManager": steps}, "hardware_manager_version": versions()})
}
