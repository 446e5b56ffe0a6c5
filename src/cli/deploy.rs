//! `rivet deploy`: the deploy engine on a host, onto exactly the file or
//! block device named with --disk.

use super::args::Args;
use rivet::deploy::{result, Request};
use rivet::io::ImageSource;
use rivet::linux::{blockdev::Disk, source::FileImage};
use rivet::plan::{BootMode, Plan};
use std::io::Read;

const HELP: &str = "\
rivet deploy - write an image onto a disk as ironic-python-agent would

USAGE:
    rivet deploy --disk PATH --plan PLAN.json [OPTIONS]

OPTIONS:
    --disk PATH         The target: a block device or a regular file (nothing else is touched)
    --plan FILE         Ironic's image_info as JSON (urls, image_type, root_mb, checksum, ...)
    --image FILE        Read the image from FILE instead of the plan's urls (the checksum still applies)
    --buffer SIZE       Streaming buffer, e.g. 4M, 256K [default: 1M]
    --boot-mode MODE    bios or uefi, when the plan does not say [default: uefi, Ironic's default]
    --sector-size N     Sector size to assume for a regular file: 512 or 4096 [default: 512]
{NET}
Progress goes to stderr; the result JSON (Ironic's \"root uuid\", \"efi system
partition uuid\", \"partitions\", and rivet's figures) to stdout.
";

/// `4M`, `256K`, `1048576`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let n: usize = digits.parse().map_err(|_| format!("'{s}' is not a size"))?;
    let mult = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        _ => return Err(format!("'{s}': unknown unit (use K or M)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// A local file to read the image from: --image, or a file:// URL.
fn local_image(plan: &Plan, image: Option<&str>) -> Option<Result<FileImage, String>> {
    if let Some(path) = image {
        return Some(FileImage::open(path));
    }
    plan.urls
        .iter()
        .find_map(|u| u.strip_prefix("file://"))
        .map(FileImage::open)
}

/// Largest plan file read: a 64 MiB config drive inline as base64, and room.
const MAX_PLAN_BYTES: u64 = 96 << 20;

pub fn run(argv: Vec<String>) -> Result<(), String> {
    let mut opts = vec![
        "disk",
        "plan",
        "image",
        "buffer",
        "boot-mode",
        "sector-size",
    ];
    opts.extend_from_slice(super::net::OPTIONS);
    let args = Args::parse(argv, &opts, super::net::SWITCHES)?;
    if args.help {
        print!("{}", HELP.replace("{NET}", super::net::HELP));
        return Ok(());
    }
    let disk_path = args.required("disk")?;
    let plan_path = args.required("plan")?;
    // image_info is a few KiB (a config drive inline, up to Ironic's 64
    // MiB, base64): more is not a plan (`--plan /dev/zero` read forever).
    let mut text = Vec::new();
    std::io::Read::take(
        std::fs::File::open(plan_path).map_err(|e| format!("{plan_path}: {e}"))?,
        MAX_PLAN_BYTES + 1,
    )
    .read_to_end(&mut text)
    .map_err(|e| format!("{plan_path}: {e}"))?;
    if text.len() as u64 > MAX_PLAN_BYTES {
        return Err(format!(
            "{plan_path}: more than {} MiB: not an image_info plan",
            MAX_PLAN_BYTES >> 20
        ));
    }
    let mut plan = Plan::from_json(&text).map_err(|e| format!("{plan_path}: {e}"))?;
    let buffer_size = args
        .get("buffer")
        .map(parse_size)
        .transpose()?
        .unwrap_or(rivet::deploy::DEFAULT_BUFFER);
    let boot_mode = match (plan.boot_mode, args.get("boot-mode")) {
        (Some(m), _) => m,
        (None, Some("bios")) => BootMode::Bios,
        (None, Some("uefi") | None) => BootMode::Uefi,
        (None, Some(other)) => return Err(format!("--boot-mode '{other}': bios or uefi")),
    };
    let sector = args
        .get("sector-size")
        .map(|s| s.parse::<u32>())
        .transpose()
        .map_err(|_| "--sector-size: 512 or 4096")?;
    let local = local_image(&plan, args.get("image")).transpose()?;
    if local.is_none() && plan.urls.is_empty() {
        return Err("the plan has no urls; pass --image FILE".into());
    }
    if local.is_none() && args.get("iface").is_none() && args.get("network-data").is_none() {
        return Err(format!(
            "{}: pass --iface NAME to download it with rivet's network stack, or --image FILE",
            plan.urls[0]
        ));
    }
    let mut stack = super::net::stack(&args)?;
    let configdrive = rivet::agent::references::resolve(
        &mut plan,
        stack
            .as_mut()
            .map(|s| s as &mut (dyn rivet::net::Transport + Send)),
    )?;
    // Everything that can be checked without the disk has been: now open it.
    let disk = Disk::open(disk_path, sector.unwrap_or(512))?;
    let request = Request {
        plan: &plan,
        boot_mode,
        configdrive,
        disk_path: disk_path.to_string(),
        buffer_size,
        image_checks: Default::default(),
    };
    match (local, stack.as_mut()) {
        (Some(mut image), _) => run_deploy(disk, &mut image, &request),
        // Through a trait object: the client's one copy (see write_plan).
        (None, Some(stack)) => rivet::agent::session::from_first_url(
            stack as &mut (dyn rivet::net::Transport + Send),
            &plan,
            |image, _| run_deploy(disk, image, &request),
        )
        .map_err(|last| format!("no image URL worked: {last}"))?,
        (None, None) => Err("no image source".into()),
    }
}

fn run_deploy<S: ImageSource + Send>(
    mut disk: Disk,
    image: &mut S,
    request: &Request,
) -> Result<(), String>
where
    S::Error: std::fmt::Display,
{
    let outcome = rivet::agent::session::execute(&mut disk, image, request)
        .map_err(|e| format!("deploy failed ({} step): {e}", e.step()))?;
    print!(
        "{}",
        result::render(&result::to_json(&outcome, &request.disk_path))
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("256K"), Ok(256 << 10));
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("4G").is_err());
        assert!(parse_size("M").is_err());
    }
}
