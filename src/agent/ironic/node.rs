//! What the node record the conductor sends says about the target disk and
//! the boot mode, read the way ironic-python-agent reads it.

use crate::agent::target::hints::Hints;
use crate::plan::BootMode;
use serde_json::Value;

/// Root device hints (`instance_info.root_device`, else
/// `properties.root_device`), checked as Ironic checks them: every hint
/// and operator Ironic takes; a bad one is an error before any write.
pub fn root_device_hints(node: &Value) -> Result<Option<Hints>, String> {
    let hints = node["instance_info"]
        .get("root_device")
        .filter(|h| h.as_object().is_some_and(|o| !o.is_empty()))
        .or_else(|| node["properties"].get("root_device"))
        .unwrap_or(&Value::Null);
    Hints::parse(hints)
}

/// A capability (`instance_info.capabilities` over `properties.capabilities`;
/// each a string `k:v,k:v` or an object), as Ironic's parse_capabilities.
pub fn capability(node: &Value, name: &str) -> Option<String> {
    let read = |caps: &Value| -> Option<String> {
        match caps {
            Value::String(s) => s.split(',').find_map(|kv| {
                let (k, v) = kv.split_once(':')?;
                (k.trim() == name).then(|| v.trim().to_string())
            }),
            Value::Object(o) => o.get(name).and_then(Value::as_str).map(str::to_string),
            _ => None,
        }
    };
    read(&node["instance_info"]["capabilities"])
        .or_else(|| read(&node["properties"]["capabilities"]))
}

/// `instance_info.deploy_boot_mode`, then the `boot_mode` capability,
/// then `driver_internal_info.deploy_boot_mode`.
pub fn boot_mode(node: &Value) -> Option<BootMode> {
    let parse = |s: &str| match s {
        "uefi" => Some(BootMode::Uefi),
        "bios" => Some(BootMode::Bios),
        _ => None,
    };
    node["instance_info"]["deploy_boot_mode"]
        .as_str()
        .and_then(parse)
        .or_else(|| capability(node, "boot_mode").and_then(|s| parse(&s)))
        .or_else(|| {
            node["driver_internal_info"]["deploy_boot_mode"]
                .as_str()
                .and_then(parse)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hints_come_from_instance_info_else_properties_and_bad_ones_are_refused() {
        assert_eq!(root_device_hints(&json!({})), Ok(None));
        let h = root_device_hints(
            &json!({"instance_info": {"root_device": {"name": "/dev/vdb"}},
            "properties": {"root_device": {"size": 5}}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            h,
            Hints::parse(&json!({"name": "/dev/vdb"})).unwrap().unwrap()
        );
        let h = root_device_hints(&json!({"instance_info": {"root_device": {}},
            "properties": {"root_device": {"size": ">= 10"}}}))
        .unwrap()
        .unwrap();
        assert_eq!(h, Hints::parse(&json!({"size": ">= 10"})).unwrap().unwrap());
        let err = root_device_hints(&json!({"properties": {"root_device": {"colour": "red"}}}))
            .unwrap_err();
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn capabilities_come_from_instance_info_else_properties_as_text_or_object() {
        let node = json!({"instance_info": {"capabilities": {"disk_label": "gpt"}},
                          "properties": {"capabilities": "boot_mode:uefi, disk_label:msdos"}});
        assert_eq!(capability(&node, "disk_label").as_deref(), Some("gpt"));
        assert_eq!(capability(&node, "boot_mode").as_deref(), Some("uefi"));
        assert_eq!(capability(&node, "raid_level"), None);
    }

    #[test]
    fn boot_mode_sources_in_ironics_order() {
        assert_eq!(boot_mode(&json!({})), None);
        assert_eq!(
            boot_mode(&json!({"properties": {"capabilities": "disk_label:gpt,boot_mode:uefi"}})),
            Some(BootMode::Uefi)
        );
        assert_eq!(
            boot_mode(&json!({"instance_info": {"deploy_boot_mode": "bios"},
                                     "properties": {"capabilities": "boot_mode:uefi"}})),
            Some(BootMode::Bios)
        );
        assert_eq!(
            boot_mode(&json!({"driver_internal_info": {"deploy_boot_mode": "uefi"}})),
            Some(BootMode::Uefi)
        );
    }
}
