//! `rivet mkinitramfs`: pick modules for a hardware class from an extracted
//! kernel package, close over their dependencies, and write the initramfs.

use super::args::Args;
use rivet::initramfs::{self, Carried};
use rivet::linux::inventory::human_bytes;
use rivet::linux::kernel_tree::KernelTree;
use rivet::modules::{self, normalize};
use std::collections::BTreeMap;

const HELP: &str = "\
rivet mkinitramfs - build rivet's initramfs

USAGE:
    rivet mkinitramfs --kernel DIR --out FILE [OPTIONS]

OPTIONS:
    --kernel DIR      Root of an extracted kernel package (holds lib/modules/<version>)
    --out FILE        Where to write the gzip-compressed cpio archive
    --kver VERSION    Kernel version under DIR/lib/modules (needed if there are several)
    --class NAME      Hardware class: virtio or default [default: default]
    --modules a,b,c   More modules to carry (repeatable)
    --init BIN        Binary to carry as /init [default: this rivet]
";

/// The classes in initramfs/classes, compiled in.
const CLASSES: &[(&str, &str)] = &[
    (
        "virtio",
        include_str!("../../initramfs/classes/virtio.modules"),
    ),
    (
        "default",
        include_str!("../../initramfs/classes/default.modules"),
    ),
];

/// Module names of a class, following `include` lines.
pub fn class_modules(name: &str) -> Result<Vec<String>, String> {
    fn walk(name: &str, depth: usize, out: &mut Vec<String>) -> Result<(), String> {
        let Some((_, text)) = CLASSES.iter().find(|(n, _)| *n == name) else {
            let known: Vec<&str> = CLASSES.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown class '{name}' (known: {})",
                known.join(", ")
            ));
        };
        if depth > 8 {
            return Err(format!("class '{name}': include nesting too deep"));
        }
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            match line.split_whitespace().collect::<Vec<_>>()[..] {
                [] => {}
                ["include", other] => walk(other, depth + 1, out)?,
                [module] => out.push(normalize(module)),
                _ => return Err(format!("class '{name}': cannot read line '{line}'")),
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(name, 0, &mut out)?;
    out.dedup();
    Ok(out)
}

pub fn run(argv: Vec<String>) -> Result<(), String> {
    let args = Args::parse(
        argv,
        &["kernel", "out", "kver", "class", "modules", "init"],
        &[],
    )?;
    if args.help {
        print!("{HELP}");
        return Ok(());
    }
    let kernel_dir = args.required("kernel")?;
    let out = args.required("out")?;
    let tree = KernelTree::open(kernel_dir.as_ref(), args.get("kver"))?;
    let class = args.get("class").unwrap_or("default");

    let mut wanted = class_modules(class)?;
    for list in args.all("modules") {
        wanted.extend(list.split(',').filter(|m| !m.is_empty()).map(normalize));
    }
    let (builtin, roots): (Vec<String>, Vec<String>) =
        wanted.into_iter().partition(|m| tree.is_builtin(m));

    // Read each module once; the resolver asks for dependencies by name.
    let mut read: BTreeMap<String, (rivet::wire::modinfo::ModInfo, Vec<u8>)> = BTreeMap::new();
    let mut read_error: Option<String> = None;
    let root_refs: Vec<&str> = roots.iter().map(String::as_str).collect();
    let order = modules::resolve(&root_refs, |name| {
        if !read.contains_key(name) {
            match tree.read(name) {
                Ok(found) => {
                    read.insert(name.to_string(), found);
                }
                Err(e) => {
                    read_error.get_or_insert(e);
                    return None;
                }
            }
        }
        Some(read[name].0.depends.iter().map(|d| normalize(d)).collect())
    });
    if let Some(e) = read_error {
        return Err(e);
    }
    let order = order.map_err(|e| e.to_string())?;

    let init = match args.get("init") {
        Some(path) => std::fs::read(path).map_err(|e| format!("--init {path}: {e}"))?,
        None => {
            let exe = std::env::current_exe()
                .map_err(|e| format!("cannot find rivet's own binary: {e}"))?;
            std::fs::read(&exe).map_err(|e| format!("{}: {e}", exe.display()))?
        }
    };
    let carried: Vec<Carried> = order
        .iter()
        .map(|name| Carried {
            name: name.clone(),
            info: read[name].0.clone(),
            bytes: &read[name].1,
        })
        .collect();
    let archive = initramfs::archive(&init, &carried).map_err(|e| e.to_string())?;
    let gz = rivet::wire::gzip::compress(&archive, initramfs::GZIP_LEVEL);
    std::fs::write(out, &gz).map_err(|e| format!("{out}: {e}"))?;

    eprintln!(
        "kernel {} ({}), class {class}",
        tree.version,
        tree.root.display()
    );
    eprintln!("  /init  {:>10}", human_bytes(init.len() as u64));
    let mut modules_total = 0;
    for c in &carried {
        modules_total += c.bytes.len();
        eprintln!(
            "  {:<22} {:>10}  ({} aliases)",
            c.name,
            human_bytes(c.bytes.len() as u64),
            c.info.aliases.len()
        );
    }
    if !builtin.is_empty() {
        eprintln!(
            "  built into the kernel, not carried: {}",
            builtin.join(", ")
        );
    }
    eprintln!(
        "{out}: {} modules ({}), cpio {}, gzip {} ({} bytes)",
        carried.len(),
        human_bytes(modules_total as u64),
        human_bytes(archive.len() as u64),
        human_bytes(gz.len() as u64),
        gz.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_resolve_includes() {
        let virtio = class_modules("virtio").unwrap();
        assert!(virtio.contains(&"virtio_blk".to_string()));
        let default = class_modules("default").unwrap();
        for m in [
            "virtio_net",
            "ahci",
            "nvme",
            "e1000e",
            "igb",
            "ixgbe",
            "i40e",
        ] {
            assert!(default.contains(&m.to_string()), "{m} missing from default");
        }
        assert!(class_modules("toaster")
            .unwrap_err()
            .contains("unknown class 'toaster'"));
    }
}
