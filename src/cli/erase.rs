//! `rivet erase`: what cleaning's erase_devices does to one disk, on the
//! exact path given (on a host rivet never picks disks itself).

use super::args::Args;
use rivet::linux::erase::{erase_disk, Knobs};

const HELP: &str = "\
rivet erase - erase one disk as Ironic's erase_devices clean step does

USAGE:
    rivet erase --disk PATH [--iterations N] [--no-zeroize] [--no-secure-erase]
                [--continue-if-secure-erase-failed]

NVMe namespaces get Format NVM (cryptographic erase where the controller
has it), ATA disks SECURITY ERASE UNIT where supported and not frozen;
otherwise N random passes (default 1) and a pass of zeros, through one
O_DIRECT buffer, then a sample is read back.
";

pub fn run(argv: Vec<String>) -> Result<(), String> {
    let args = Args::parse(
        argv,
        &["disk", "iterations"],
        &[
            "no-zeroize",
            "no-secure-erase",
            "continue-if-secure-erase-failed",
        ],
    )?;
    if args.help {
        print!("{HELP}");
        return Ok(());
    }
    let path = args.required("disk")?;
    let secure = args.get("no-secure-erase").is_none();
    let knobs = Knobs {
        iterations: args
            .get("iterations")
            .map(|n| {
                n.parse()
                    .map_err(|_| format!("--iterations '{n}': a number"))
            })
            .transpose()?
            .unwrap_or(1),
        zeroize: args.get("no-zeroize").is_none(),
        nvme_secure_erase: secure,
        ata_secure_erase: secure,
        continue_if_secure_erase_failed: args.get("continue-if-secure-erase-failed").is_some(),
    };
    let started = std::time::Instant::now();
    let report = |p: &rivet::deploy::erase::Progress| log::info!("{path}: {p}");
    let how = erase_disk(path, &knobs, &report)?;
    let secs = started.elapsed().as_secs_f64();
    log::info!(
        "{path}: erased in {} s ({how})",
        rivet::stream::Fixed(secs, 2)
    );
    Ok(())
}
