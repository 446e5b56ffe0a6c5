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
    let text = match kind {
        "service_steps" => SERVICE,
        "clean_steps" => CLEAN,
        _ => DEPLOY,
    };
    // The lists are JSON text put together at compile time (checked by
    // the unit tests): data in /init instead of the code json! expands to.
    let steps: Value = serde_json::from_str(text).unwrap_or_default();
    json!({kind: {"RivetHardwareManager": steps}, "hardware_manager_version": versions()})
}

/// A step as ironic-python-agent lists it: priority, interface, no reboot,
/// abortable unless said otherwise.
macro_rules! step {
    ($name:literal, $priority:literal) => {
        step!($name, $priority, "deploy", r#","abortable":true"#)
    };
    ($name:literal, $priority:literal, $interface:literal, $more:expr) => {
        concat!(
            r#"{"step":""#,
            $name,
            r#"","priority":"#,
            $priority,
            r#","interface":""#,
            $interface,
            r#"","reboot_requested":false"#,
            $more,
            "}"
        )
    };
}

/// ironic-python-agent's `inject_files` (deploy and service; priority 0,
/// its `ipa-inject-files-priority` default) with its argsinfo.
macro_rules! inject_files {
    () => {
        step!(
            "inject_files",
            0,
            "deploy",
            r#","argsinfo":{"files":{"required":false,"description":"Files to inject, a list of file structures with keys: 'path' (path to the file), 'partition' (partition specifier), 'content' (base64 encoded string), 'mode' (new file mode) and 'dirmode' (mode for the leaf directory, if created). Merged with the values from node.properties[inject_files]."},"verify_ca":{"required":false,"description":"Whether to verify TLS certificates. Global agent options are used by default."}}"#
        )
    };
}

/// ironic-python-agent's `clean_uefi_nvram` (clean and deploy, priority 0)
/// with its argsinfo.
macro_rules! clean_uefi_nvram {
    () => {
        step!(
            "clean_uefi_nvram",
            0,
            "deploy",
            r#","abortable":true,"argsinfo":{"match_patterns":{"required":false,"description":"Json blob contains a list of regex patterns where any UEFI NVRAM entry matching that pattern will be deleted. Default value is '[\"^HD\\(\", \"shim.*\\.efi\", \"grub.*\\.efi\"]'"}}"#
        )
    };
}

/// ironic-python-agent's `apply_configuration` (deploy and service, RAID
/// interface) with its argsinfo.
macro_rules! apply_configuration {
    () => {
        step!(
            "apply_configuration",
            0,
            "raid",
            r#","argsinfo":{"raid_config":{"description":"The RAID configuration to apply.","required":true},"delete_existing":{"required":false,"description":"Setting this to 'True' indicates to delete existing RAID configuration prior to creating the new configuration. Default value is 'True'."}}"#
        )
    };
}

/// write_image, proxied by the conductor's out-of-band step of that name.
macro_rules! write_image {
    () => {
        step!("write_image", 0, "deploy", "")
    };
}

/// Servicing an active node (Ironic 2023.2+): what ironic-python-agent
/// offers there that rivet does (bootc is refused): burn-in but of disks
/// (that would destroy the node's data; its burnin_gpu is not offered:
/// rivet has no GPU stack), re-imaging, inject_files, apply_configuration.
const SERVICE: &str = concat!(
    "[",
    step!("burnin_cpu", 0),
    ",",
    step!("burnin_memory", 0),
    ",",
    step!("burnin_network", 0),
    ",",
    write_image!(),
    ",",
    inject_files!(),
    ",",
    apply_configuration!(),
    "]"
);

/// Cleaning: ironic-python-agent's priorities — erase_devices_metadata (99)
/// runs in automated cleaning, erase_devices (10) after it in a stock
/// configuration, the rest only when asked (the RAID steps at priority 0:
/// Ironic's [deploy]delete/create_configuration_priority raise them).
const CLEAN: &str = concat!(
    "[",
    step!("erase_devices_metadata", 99),
    ",",
    step!("erase_devices", 10),
    ",",
    step!("erase_devices_express", 0),
    ",",
    // A previous tenant's crash records go.
    step!("erase_pstore", 0),
    ",",
    clean_uefi_nvram!(),
    ",",
    step!("delete_configuration", 0, "raid", r#","abortable":true"#),
    ",",
    step!("create_configuration", 0, "raid", r#","abortable":true"#),
    ",",
    step!("burnin_cpu", 0),
    ",",
    step!("burnin_memory", 0),
    ",",
    step!("burnin_disk", 0),
    ",",
    step!("burnin_network", 0),
    "]"
);

/// Deploying: all priority 0, run when a deploy template asks.
const DEPLOY: &str = concat!(
    "[",
    step!("erase_devices_metadata", 0, "deploy", ""),
    ",",
    step!("erase_devices", 0, "deploy", ""),
    ",",
    write_image!(),
    ",",
    clean_uefi_nvram!(),
    ",",
    inject_files!(),
    ",",
    apply_configuration!(),
    "]"
);

/// The patterns `clean_uefi_nvram` uses when none are given.
pub const DEFAULT_NVRAM_PATTERNS: [&str; 3] = [r"^HD\(", r"shim.*\.efi", r"grub.*\.efi"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_is_json_with_the_keys_the_conductor_reads() {
        for (kind, n) in [
            ("clean_steps", 11),
            ("deploy_steps", 6),
            ("service_steps", 6),
        ] {
            let steps = list(kind)[kind]["RivetHardwareManager"].clone();
            let steps = steps
                .as_array()
                .unwrap_or_else(|| panic!("{kind} is not JSON"));
            assert_eq!(steps.len(), n, "{kind}");
            for s in steps {
                assert!(s["step"].is_string() && s["priority"].is_u64(), "{s}");
                assert!(
                    s["interface"] == "deploy" || s["interface"] == "raid",
                    "{s}"
                );
                assert_eq!(s["reboot_requested"], false, "{s}");
            }
        }
        let clean = list("clean_steps");
        let nvram = &clean["clean_steps"]["RivetHardwareManager"][4];
        assert_eq!(nvram["step"], "clean_uefi_nvram");
        assert!(nvram["argsinfo"]["match_patterns"]["description"]
            .as_str()
            .unwrap()
            .ends_with(r#"'["^HD\(", "shim.*\.efi", "grub.*\.efi"]'"#));
    }
}
