//! Root device hints as Ironic defines them (`device_hints.py` of
//! ironic-python-agent 13, oslo.utils' `specs_matcher`): `name`, `size`
//! (GiB), `model`, `vendor`, `serial`, `wwn`, `wwn_with_extension`,
//! `wwn_vendor_extension`, `hctl`, `by_path`, `tran` and `rotational`,
//! every one of them to be matched, each with the operators Ironic takes:
//! `s==`, `s!=`, `s<`, `s<=`, `s>`, `s>=`, `<in>`, `<or>` for strings (case
//! folded, URL-quoted as Ironic normalises them); `==`, `!=`, `<`, `<=`, `>`,
//! `>=` and the odd `=` (meaning ≥) for sizes; a Boolean for `rotational`.

use crate::linux::inventory::Disk;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Str,
    Int,
    Bool,
}

fn hint_type(name: &str) -> Option<Type> {
    Some(match name {
        "size" => Type::Int,
        "rotational" => Type::Bool,
        "model"
        | "wwn"
        | "serial"
        | "vendor"
        | "wwn_with_extension"
        | "wwn_vendor_extension"
        | "name"
        | "hctl"
        | "by_path"
        | "tran" => Type::Str,
        _ => return None,
    })
}

/// Operators, longest first so `s<=` is not read as `s<`.
const OPERATORS: [&str; 16] = [
    "<all-in>", "<in>", "<or>", "s==", "s!=", "s<=", "s>=", "s<", "s>", "==", "!=", "<=", ">=",
    "<", ">", "=",
];

/// One hint: its name, operator and values (normalised).
#[derive(Debug, Clone, PartialEq)]
struct Hint {
    name: String,
    op: &'static str,
    values: Vec<String>,
    flag: bool,
}

/// Parsed hints: every one must match.
#[derive(Debug, Clone, PartialEq)]
pub struct Hints(Vec<Hint>);

/// Percent-encoding as Python's `urllib.parse.quote` (safe: `/`).
fn quote(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn split(expression: &str) -> (&'static str, Vec<String>) {
    let e = expression.trim();
    for op in OPERATORS {
        if let Some(rest) = e.strip_prefix(op) {
            let values: Vec<String> = match op {
                "<or>" => rest
                    .split("<or>")
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .collect(),
                "<all-in>" => rest.split_whitespace().map(str::to_string).collect(),
                _ => vec![rest.trim().to_string()],
            };
            return (op, values);
        }
    }
    ("", vec![e.to_string()])
}

fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().and_then(|n| match n {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
            "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

impl Hints {
    /// Checks hints as Ironic's `parse_root_device_hints` does; the error
    /// names the hint and what is wrong. `Ok(None)`: no hints.
    pub fn parse(hints: &Value) -> Result<Option<Hints>, String> {
        let Some(map) = hints.as_object().filter(|m| !m.is_empty()) else {
            return match hints {
                Value::Null => Ok(None),
                Value::Object(_) => Ok(None),
                other => Err(format!("root device hints must be an object, not {other}")),
            };
        };
        let invalid: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| hint_type(k).is_none())
            .collect();
        if !invalid.is_empty() {
            return Err(format!(
                "The hints \"{}\" are invalid. Valid hints are: \"size, model, wwn, serial, vendor, \
                 wwn_with_extension, wwn_vendor_extension, name, rotational, hctl, by_path, tran\"",
                invalid.join(", ")
            ));
        }
        let mut out = Vec::new();
        for (name, value) in map {
            let kind = hint_type(name).expect("checked");
            let hint = match kind {
                Type::Bool => Hint {
                    name: name.clone(),
                    op: "",
                    values: Vec::new(),
                    flag: boolean(value).ok_or_else(|| {
                        format!("Root device hint \"{name}\" is not a Boolean value. Current value: {value}")
                    })?,
                },
                Type::Str => {
                    let text = value.as_str().ok_or_else(|| {
                        format!("Root device hint \"{name}\" is not a string value. Hint expression: {value}")
                    })?;
                    let mut text = text.trim().to_lowercase();
                    if text.is_empty() {
                        return Err(format!("Root device hint {name} expression is empty"));
                    }
                    // A name without /dev/ means the device node.
                    if name == "name" && !text.starts_with("/dev/") && split(&text).0.is_empty() {
                        text = format!("/dev/{text}");
                    }
                    let (op, values) = split(&text);
                    Hint {
                        name: name.clone(),
                        op: if op.is_empty() { "s==" } else { op },
                        values: values.iter().map(|v| quote(v)).collect(),
                        flag: false,
                    }
                }
                Type::Int => {
                    let text = match value {
                        Value::String(s) => s.trim().to_lowercase(),
                        Value::Number(n) => n.to_string(),
                        other => return Err(format!("Root device hint \"{name}\" is not an integer value. Current value: {other}")),
                    };
                    let (op, values) = split(&text);
                    for v in &values {
                        match v.parse::<i64>() {
                            Ok(n) if n > 0 => {}
                            Ok(_) => return Err(format!("Root device hint \"{name}\" should be a positive integer. Current value: {value}")),
                            Err(_) => return Err(format!("Root device hint \"{name}\" is not an integer value. Current value: {value}")),
                        }
                    }
                    Hint {
                        name: name.clone(),
                        op: if op.is_empty() { "==" } else { op },
                        values,
                        flag: false,
                    }
                }
            };
            out.push(hint);
        }
        Ok(Some(Hints(out)))
    }

    /// Whether `disk` satisfies every hint.
    pub fn matches(&self, disk: &Disk) -> bool {
        self.0.iter().all(|h| h.matches(disk))
    }

    /// The first disk (in name order) that matches.
    pub fn choose<'a>(&self, disks: &'a [Disk]) -> Option<&'a Disk> {
        disks.iter().find(|d| self.matches(d))
    }
}

fn string_fact(disk: &Disk, name: &str) -> Option<String> {
    match name {
        "name" => Some(format!("/dev/{}", disk.name)),
        "model" => disk.model.clone(),
        "vendor" => disk.extra.vendor.clone(),
        "serial" => disk.serial.clone(),
        "wwn" | "wwn_with_extension" => disk.wwn.clone(),
        "wwn_vendor_extension" => None,
        "hctl" => disk.extra.hctl.clone(),
        "by_path" => disk.extra.by_path.clone(),
        "tran" => disk.extra.tran.clone(),
        _ => None,
    }
}

impl Hint {
    fn matches(&self, disk: &Disk) -> bool {
        match hint_type(&self.name) {
            Some(Type::Bool) => disk.extra.rotational == Some(self.flag),
            Some(Type::Int) => {
                let gib = disk.size_bytes as f64 / (1u64 << 30) as f64;
                let n = |v: &String| crate::cmdline::decimal(v).unwrap_or(f64::NAN);
                let v0 = self.values.first().map(n).unwrap_or(f64::NAN);
                match self.op {
                    "==" => gib == v0,
                    "!=" => gib != v0,
                    "<" => gib < v0,
                    "<=" => gib <= v0,
                    ">" => gib > v0,
                    ">=" | "=" => gib >= v0,
                    "<or>" => self.values.iter().any(|v| gib == n(v)),
                    _ => false,
                }
            }
            Some(Type::Str) => {
                // A missing value never matches (Ironic skips the device).
                let Some(fact) = string_fact(disk, &self.name).filter(|f| !f.trim().is_empty())
                else {
                    return false;
                };
                let x = quote(&fact.trim().to_lowercase());
                let y = self.values.first().cloned().unwrap_or_default();
                match self.op {
                    "s==" => x == y,
                    "s!=" => x != y,
                    "s<" => x < y,
                    "s<=" => x <= y,
                    "s>" => x > y,
                    "s>=" => x >= y,
                    "<in>" => x.contains(&y),
                    "<all-in>" => self.values.iter().all(|v| x.contains(v.as_str())),
                    "<or>" => self.values.contains(&x),
                    // Numeric operators on a string hint: compare numbers
                    // when both are numbers, as float() would.
                    op => match (crate::cmdline::decimal(&x), crate::cmdline::decimal(&y)) {
                        (Some(a), Some(b)) => match op {
                            "==" => a == b,
                            "!=" => a != b,
                            "<" => a < b,
                            "<=" => a <= b,
                            ">" => a > b,
                            ">=" | "=" => a >= b,
                            _ => false,
                        },
                        _ => false,
                    },
                }
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::inventory::DiskExtra;
    use serde_json::json;

    fn disk(name: &str, gib: u64, serial: &str, model: &str, rotational: bool) -> Disk {
        Disk {
            name: name.into(),
            size_bytes: gib << 30,
            logical_block: 512,
            physical_block: 512,
            model: Some(model.into()),
            serial: Some(serial.into()),
            wwn: Some(format!("0x5000c500{serial}")),
            pci: None,
            extra: DiskExtra {
                rotational: Some(rotational),
                vendor: Some("ATA".into()),
                hctl: Some("1:0:0:0".into()),
                tran: Some("sata".into()),
                by_path: Some(format!("/dev/disk/by-path/pci-0000:00:1f.2-ata-{gib}")),
            },
        }
    }

    fn disks() -> Vec<Disk> {
        vec![
            disk("sda", 10, "AAA111", "Samsung SSD 860", false),
            disk("sdb", 20, "BBB222", "ST2000DM008 Disk", true),
            disk("vda", 40, "virt-3", "", true),
        ]
    }

    fn pick(hints: Value) -> Option<String> {
        let h = Hints::parse(&hints).unwrap().expect("hints");
        h.choose(&disks()).map(|d| d.name.clone())
    }

    #[test]
    fn every_hint_with_its_default_operator() {
        assert_eq!(pick(json!({"name": "/dev/sdb"})).as_deref(), Some("sdb"));
        assert_eq!(pick(json!({"name": "sdb"})).as_deref(), Some("sdb"));
        assert_eq!(pick(json!({"size": 20})).as_deref(), Some("sdb"));
        assert_eq!(pick(json!({"size": "40"})).as_deref(), Some("vda"));
        assert_eq!(
            pick(json!({"serial": "bbb222"})).as_deref(),
            Some("sdb"),
            "case folded"
        );
        assert_eq!(
            pick(json!({"model": "Samsung SSD 860"})).as_deref(),
            Some("sda"),
            "spaces quoted alike"
        );
        assert_eq!(
            pick(json!({"wwn": "0x5000c500virt-3"})).as_deref(),
            Some("vda")
        );
        assert_eq!(pick(json!({"rotational": false})).as_deref(), Some("sda"));
        assert_eq!(
            pick(json!({"rotational": "yes", "size": 40})).as_deref(),
            Some("vda")
        );
        assert_eq!(
            pick(json!({"by_path": "/dev/disk/by-path/pci-0000:00:1f.2-ata-20"})).as_deref(),
            Some("sdb")
        );
        assert_eq!(
            pick(json!({"hctl": "1:0:0:0", "tran": "sata", "vendor": "ata"})).as_deref(),
            Some("sda")
        );
        assert_eq!(pick(json!({"serial": "nope"})), None);
        assert_eq!(
            pick(json!({"wwn_vendor_extension": "0x1"})),
            None,
            "no disk has one"
        );
    }

    #[test]
    fn operators_as_ironic_reads_them() {
        assert_eq!(pick(json!({"size": ">= 15"})).as_deref(), Some("sdb"));
        assert_eq!(pick(json!({"size": "> 20"})).as_deref(), Some("vda"));
        assert_eq!(pick(json!({"size": "<= 10"})).as_deref(), Some("sda"));
        assert_eq!(pick(json!({"size": "!= 10"})).as_deref(), Some("sdb"));
        assert_eq!(
            pick(json!({"size": "= 30"})).as_deref(),
            Some("vda"),
            "'=' means at least"
        );
        assert_eq!(
            pick(json!({"size": "<or> 40 <or> 50"})).as_deref(),
            Some("vda")
        );
        assert_eq!(
            pick(json!({"model": "<in> st2000"})).as_deref(),
            Some("sdb")
        );
        assert_eq!(
            pick(json!({"serial": "<or> zzz <or> virt-3"})).as_deref(),
            Some("vda")
        );
        assert_eq!(
            pick(json!({"serial": "s!= aaa111"})).as_deref(),
            Some("sdb")
        );
        assert_eq!(pick(json!({"serial": "s> b"})).as_deref(), Some("sdb"));
        assert_eq!(
            pick(json!({"model": "<all-in> samsung 860"})).as_deref(),
            Some("sda")
        );
        assert_eq!(
            pick(json!({"name": "s== /dev/vda"})).as_deref(),
            Some("vda")
        );
    }

    #[test]
    fn bad_hints_are_refused_with_ironics_words() {
        let err = |v: Value| Hints::parse(&v).unwrap_err();
        assert!(err(json!({"colour": "red"})).contains("The hints \"colour\" are invalid"));
        assert!(err(json!({"size": "big"})).contains("is not an integer"));
        assert!(err(json!({"size": 0})).contains("positive integer"));
        assert!(err(json!({"size": ">= -3"})).contains("positive integer"));
        assert!(err(json!({"rotational": "maybe"})).contains("is not a Boolean"));
        assert!(err(json!({"serial": 42})).contains("is not a string"));
        assert!(err(json!({"model": "  "})).contains("is empty"));
        assert!(err(json!("sda")).contains("must be an object"));
        assert_eq!(Hints::parse(&json!({})).unwrap(), None);
        assert_eq!(Hints::parse(&Value::Null).unwrap(), None);
    }
}
