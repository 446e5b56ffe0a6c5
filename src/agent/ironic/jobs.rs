//! What each command's job does once the API has accepted it: write the
//! image, wipe or erase disks, install the boot loader, power off. The run
//! loop (run.rs) hands jobs here through a [`JobHost`] (its servicing
//! transport), so the conductor still gets answers and heartbeats while one
//! runs; the ways they fail are named in errors.rs.

use super::api::Api;
use super::api::{Job, RaidOp, StepKind, Work, WrittenImage};
use super::bootloader;
use super::errors::{from_failure, IpaError, RestError};
use super::node;
use crate::agent::session::{self, firmware_boot_mode};
use crate::cmdline::EndAction;
use crate::linux::blockdev::Disk;
use crate::linux::inventory;
use crate::net::Transport;
use crate::plan::{BootMode, ImageType, Plan};
use serde_json::{json, Value};
use std::path::Path;

/// What a job needs of the loop running it (run.rs's `Servicing`): a
/// transport that keeps the agent API answered and the heartbeats going
/// whenever the job waits on it, and the API, which the job reads and
/// shows progress on.
pub(super) trait JobHost: Transport + Send {
    fn api(&self) -> &Api;
    /// Shows progress as the running command's result.
    fn show_progress(&mut self, progress: Value);
}

impl<T: JobHost> super::burnin::Host for T {
    fn show(&mut self, progress: Value) {
        self.show_progress(progress)
    }
}

/// Writes the image; returns the command result and what it leaves for
/// get_partition_uuids and install_bootloader.
fn write_image(
    t: &mut impl JobHost,
    plan: Plan,
    step: Option<&Value>,
    node_json: &Value,
    kind: StepKind,
) -> Result<(Value, WrittenImage), RestError> {
    let hints = node::root_device_hints(node_json).map_err(|e| IpaError::DeviceNotFound.with(e))?;
    let boot_mode = plan
        .boot_mode
        .or_else(|| node::boot_mode(node_json))
        .unwrap_or_else(firmware_boot_mode);
    let id = plan.id.clone().unwrap_or_default();
    let declared_uefi = plan.boot_mode == Some(BootMode::Uefi);
    let (root_volume, excluded) = super::raid::root_volume_choice();
    let target = match &root_volume {
        Some(md) => {
            log::info!("Using root volume, {md}, from target raid config.");
            if hints.is_some() {
                log::warn!(
                    "Both root device hints and a root volume from the target RAID \
                     configuration are defined. The RAID root volume will be used."
                );
            }
            session::Target::Hint(Some(md))
        }
        None => {
            if !excluded.is_empty() {
                log::info!(
                    "Excluding {} from possible root devices (is_root_volume false)",
                    excluded.join(", ")
                );
            }
            session::Target::Hints(hints.as_ref(), &excluded)
        }
    };
    let checks = t.api().config().image_checks.clone();
    let written = session::write_plan(t, plan, target, boot_mode, checks).map_err(from_failure)?;
    let o = &written.outcome;
    let uuids = crate::deploy::result::partition_uuids(o);
    log::info!("partition uuids: {uuids}");
    let leaves = WrittenImage {
        partition_uuids: uuids,
        disk: written.disk.clone(),
    };
    let mut msg = format!(
        "image ({id}) written to device {} root_uuid={}",
        written.disk, o.root_uuid
    );
    if let (true, ImageType::Partition, Some(esp)) =
        (declared_uefi, o.image_type, o.efi_uuid.as_deref())
    {
        msg += &format!(" efi_system_partition_uuid={esp}");
    }
    let result = match step {
        Some(step) => {
            let key = kind.key();
            json!({format!("{key}_result"): {"result": format!("prepare_image: {msg}")}, format!("{key}_step"): step})
        }
        None => Value::String(msg),
    };
    Ok((result, leaves))
}

/// Ironic's `erase_devices_metadata` on every disk of the machine.
fn erase_all() -> Result<(), String> {
    let mut failed = Vec::new();
    for d in inventory::disks(Path::new("/sys")) {
        let path = format!("/dev/{}", d.name);
        // As the real agent: an array's holders are left to
        // raid.delete_configuration (the array itself is erased here).
        if super::erase::raid_member(&d.name) {
            log::info!("Skipping erasure of RAID member device {path}");
            continue;
        }
        log::info!("erasing metadata on {path} ({} bytes)", d.size_bytes);
        let r = Disk::open(&path, 512).and_then(|mut disk| {
            crate::deploy::erase_metadata(&mut disk).map_err(|e| e.to_string())
        });
        if let Err(e) = r {
            log::error!("{path}: {e}");
            failed.push(format!("\"{path}\": {e}"));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "Failed to erase the metadata on the device(s): {}",
            failed.join("; ")
        ))
    }
}

/// What a job ends with: the command's result, what an image write leaves
/// for later commands (run.rs keeps it in the API), the end action asked.
pub(super) struct JobDone {
    pub result: Result<Value, RestError>,
    pub image: Option<WrittenImage>,
    pub end: Option<EndAction>,
}

impl JobDone {
    fn result(result: Result<Value, RestError>) -> JobDone {
        JobDone {
            result,
            image: None,
            end: None,
        }
    }
}

/// A step's job ended: its result as the conductor reads it,
/// `{"<flow>_result": result, "<flow>_step": step}`.
fn step_done(kind: StepKind, step: &Value, outcome: Result<Value, RestError>) -> JobDone {
    let key = kind.key();
    JobDone::result(
        outcome.map(|r| json!({format!("{key}_result"): r, format!("{key}_step"): step})),
    )
}

/// Runs a job. The API is only read here (the node, the lookup's
/// configuration, the last image) and shown progress; what the job
/// changes comes back in [`JobDone`].
pub(super) fn run_job(t: &mut impl JobHost, job: &Job) -> JobDone {
    match &job.work {
        Work::WriteImage {
            plan,
            step,
            node,
            kind,
        } => match write_image(t, (**plan).clone(), step.as_ref(), node, *kind) {
            Ok((result, written)) => JobDone {
                result: Ok(result),
                image: Some(written),
                end: None,
            },
            Err(e) => JobDone::result(Err(e)),
        },
        Work::EraseMetadata { step, kind } => step_done(
            *kind,
            step,
            erase_all()
                .map(|_| Value::Null)
                .map_err(|e| IpaError::BlockDeviceErase.with(e)),
        ),
        Work::EraseDevices {
            step,
            kind,
            express,
        } => {
            let node = t.api().node().clone();
            let outcome = super::erase::erase_devices(&node, *express, &mut |progress| {
                t.show_progress(progress.clone());
                t.sleep_ms(200);
            });
            step_done(
                *kind,
                step,
                outcome.map_err(|e| IpaError::BlockDeviceErase.with(e)),
            )
        }
        Work::ErasePstore { step, kind } => step_done(
            *kind,
            step,
            crate::linux::pstore::erase()
                .map(|_| Value::Null)
                .map_err(RestError::execution),
        ),
        Work::CleanUefiNvram {
            patterns,
            step,
            kind,
        } => step_done(
            *kind,
            step,
            clean_nvram(patterns)
                .map(|_| Value::Null)
                .map_err(RestError::execution),
        ),
        Work::Burnin { burnin, step, kind } => step_done(
            *kind,
            step,
            super::burnin::run(t, burnin).map_err(RestError::execution),
        ),
        Work::InjectFiles { files, step, kind } => {
            let outcome = root_disk(t.api()).and_then(|disk| super::inject::run(t, &disk, files));
            step_done(
                *kind,
                step,
                outcome
                    .map(|_| Value::Null)
                    .map_err(|e| IpaError::CommandExecution.with(e)),
            )
        }
        Work::Raid { op, step, kind } => {
            let node = t.api().node();
            let outcome = match op {
                RaidOp::Create(config) => super::raid::create(node, config),
                RaidOp::Delete => super::raid::delete(node).map(|_| Value::Null),
                RaidOp::Apply(config, delete) => super::raid::apply(node, config, *delete),
            };
            step_done(
                *kind,
                step,
                outcome.map_err(|e| IpaError::SoftwareRaid.with(e)),
            )
        }
        Work::InstallBootloader { params } => {
            let api = t.api();
            let (uuids, disk) = api.written_image();
            let uuids = uuids.cloned().unwrap_or(Value::Null);
            let disk = disk.map(str::to_string);
            let bios_asked = api.config().bios_bootloader_install;
            JobDone::result(bootloader::install(
                disk.as_deref(),
                &uuids,
                params,
                bios_asked,
            ))
        }
        Work::PowerOff => JobDone {
            result: Ok(Value::Null),
            image: None,
            end: Some(EndAction::Poweroff),
        },
        Work::Reboot => JobDone {
            result: Ok(Value::Null),
            image: None,
            end: Some(EndAction::Reboot),
        },
        // The serving loop locks the node down and stays up.
        Work::Lockdown => JobDone {
            result: Ok(Value::Null),
            image: None,
            end: Some(EndAction::Stay),
        },
    }
}

/// The disk the image went to in this boot, else the one the node's root
/// device hints choose (the real agent's get_os_install_device).
fn root_disk(api: &Api) -> Result<String, String> {
    if let Some(disk) = api.written_image().1 {
        return Ok(disk.to_string());
    }
    let disks = inventory::disks(Path::new("/sys"));
    let chosen = match node::root_device_hints(api.node())? {
        Some(h) => h
            .choose(&disks)
            .ok_or_else(|| "no disk matches the root device hints".to_string())?,
        None => crate::agent::target::choose(None, &disks)?,
    };
    Ok(format!("/dev/{}", chosen.name))
}

/// Removes the boot entries the patterns match, from the machine's NVRAM.
fn clean_nvram(patterns: &[crate::boot::pattern::Pattern]) -> Result<(), String> {
    use crate::linux::efivars::{self, Efivarfs};
    if !efivars::booted_uefi() {
        return Err(
            "clean_uefi_nvram: this machine did not boot by UEFI: it has no boot entries \
                    to clean"
                .into(),
        );
    }
    let mut nvram = Efivarfs::open(std::path::Path::new(efivars::MOUNT_POINT))?;
    let removed = crate::boot::uefi::clean_entries(&mut nvram, patterns)?;
    for (number, label, path) in &removed {
        log::info!("clean_uefi_nvram: removed Boot{number:04X} \"{label}\" {path}");
    }
    log::info!("clean_uefi_nvram: {} entries removed", removed.len());
    Ok(())
}
