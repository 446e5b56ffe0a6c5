//! What the node record the conductor sends says about the target disk and
//! the boot mode, read the way ironic-python-agent reads it.

use crate::plan::BootMode;
use serde_json::Value;

/// Root device hints (`instance_info.root_device`, else
/// `properties.root_device`) as a `rivet.disk`-style hint. rivet matches one
/// of name, serial, wwn or by_path; other hints are refused rather than
/// ignored, so a deploy never lands on a disk the operator did not mean.
pub fn disk_hint(node: &Value) -> Result<Option<String>, String> {
    let hints = node["instance_info"]
        .get("root_device")
        .filter(|h| h.as_object().is_some_and(|o| !o.is_empty()))
        .or_else(|| node["properties"].get("root_device"))
        .and_then(Value::as_object);
    let Some(hints) = hints.filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    };
    let unsupported: Vec<&str> = hints
        .keys()
        .map(String::as_str)
        .filter(|k| !matches!(*k, "name" | "serial" | "wwn" | "by_path"))
        .collect();
    if !unsupported.is_empty() || hints.len() > 1 {
        return Err(format!(
            "root device hints {} are not supported by rivet (it matches exactly one of name, serial, wwn, by_path)",
            Value::Object(hints.clone())
        ));
    }
    let (key, value) = hints.iter().next().expect("one hint");
    let value = text(value);
    Ok(Some(match key.as_str() {
        "name" => value,
        "by_path" => format!("by-path={}", value.trim_start_matches("/dev/disk/by-path/")),
        other => format!("{other}={value}"),
    }))
}

/// `instance_info.deploy_boot_mode`, then the `boot_mode` capability
/// (instance_info over properties; a string `k:v,k:v` or an object), then
/// `driver_internal_info.deploy_boot_mode`.
pub fn boot_mode(node: &Value) -> Option<BootMode> {
    let parse = |s: &str| match s {
        "uefi" => Some(BootMode::Uefi),
        "bios" => Some(BootMode::Bios),
        _ => None,
    };
    let capability = |caps: &Value| -> Option<String> {
        match caps {
            Value::String(s) => s.split(',').find_map(|kv| {
                let (k, v) = kv.split_once(':')?;
                (k.trim() == "boot_mode").then(|| v.trim().to_string())
            }),
            Value::Object(o) => o
                .get("boot_mode")
                .and_then(Value::as_str)
                .map(str::to_string),
            _ => None,
        }
    };
    node["instance_info"]["deploy_boot_mode"]
        .as_str()
        .and_then(parse)
        .or_else(|| capability(&node["instance_info"]["capabilities"]).and_then(|s| parse(&s)))
        .or_else(|| capability(&node["properties"]["capabilities"]).and_then(|s| parse(&s)))
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
    fn hints_map_to_rivet_disk_hints_and_unknown_ones_are_refused() {
        assert_eq!(disk_hint(&json!({})), Ok(None));
        assert_eq!(
            disk_hint(&json!({"instance_info": {"root_device": {"name": "/dev/vdb"}}})),
            Ok(Some("/dev/vdb".into()))
        );
        assert_eq!(
            disk_hint(
                &json!({"instance_info": {}, "properties": {"root_device": {"serial": "s-2"}}})
            ),
            Ok(Some("serial=s-2".into()))
        );
        assert_eq!(
            disk_hint(
                &json!({"properties": {"root_device": {"by_path": "/dev/disk/by-path/pci-0000:00:05.0"}}})
            ),
            Ok(Some("by-path=pci-0000:00:05.0".into()))
        );
        let err =
            disk_hint(&json!({"properties": {"root_device": {"size": ">= 10"}}})).unwrap_err();
        assert!(err.contains("size"), "{err}");
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
