//! A partition image: the layout Ironic's agent makes (ESP, BIOS boot,
//! ephemeral, swap, config drive, root last), the table written, swap and
//! ephemeral filesystems made, the image streamed into the root partition,
//! its filesystem probed for the root uuid.

use super::*;

#[allow(clippy::too_many_arguments)]
pub(super) fn partition_image(
    dev: &mut dyn BlockDevice,
    image: &mut image::Image<'_, '_>,
    format: format::Format,
    env: &mut dyn Env,
    req: &Request,
    digest: &(HashAlgo, String),
    buf: &mut AlignedBuf,
    phases: &mut Phases,
) -> Result<Outcome, Error> {
    let plan = req.plan;
    let label = plan.label(req.boot_mode);
    let configdrive_mb = req
        .configdrive
        .as_ref()
        .map(|c| c.len().div_ceil(MIB))
        .unwrap_or(0);
    let lreq = layout::Request {
        boot_mode: req.boot_mode,
        label,
        root_mb: plan.root_mb,
        swap_mb: plan.swap_mb,
        ephemeral_mb: plan.ephemeral_mb,
        configdrive_mb,
    };
    let ss = dev.logical_block();
    let layout: Layout = layout::plan(&lreq, dev.size(), ss).map_err(Error::Layout)?;
    let root = *layout.root();
    if let Some(size) = format.disk_bytes(image.size()) {
        if size > root.len() {
            return Err(Error::Refused(format!(
                "image {} is {size} bytes ({}), larger than the {} MiB root partition",
                image.describe(),
                format.name(),
                root.size_mib
            )));
        }
    }
    let esp_fs = Mkfs::Vfat { label: "efi-part" };
    let eph_fs = match plan.ephemeral_format {
        Some(EphemeralFormat::Vfat) => Mkfs::Vfat {
            label: "ephemeral0",
        },
        Some(kind) => Mkfs::Ext {
            kind,
            label: "ephemeral0",
        },
        None => Mkfs::Ext {
            kind: EphemeralFormat::Ext4,
            label: "ephemeral0",
        },
    };
    if layout.get(Role::Esp).is_some() && !env.can_mkfs(esp_fs) {
        return Err(Error::Refused(
            "this build cannot format the EFI system partition".into(),
        ));
    }
    if let (Some(eph), false) = (layout.get(Role::Ephemeral), plan.preserve_ephemeral) {
        if let Mkfs::Ext { kind, .. } = eph_fs {
            crate::fs::mkext::Geometry::new(ext_kind(kind), eph.len()).map_err(|e| {
                Error::Refused(format!(
                    "the {} MiB ephemeral partition cannot hold {}: {e}",
                    eph.size_mib,
                    kind.name()
                ))
            })?;
        }
        if !env.can_mkfs(eph_fs) {
            return Err(Error::Refused(format!(
                "ephemeral_format {} is not supported by this build (use vfat)",
                plan.ephemeral_format.map(|f| f.name()).unwrap_or("ext4")
            )));
        }
    }
    for p in &layout.parts {
        log::info!(
            "partition {} {}: {} MiB at {} MiB",
            p.number,
            p.role.ironic_name(),
            p.size_mib,
            p.start_mib
        );
    }

    let ready = format.prepare(image, root.len())?;
    phases.mark(env, "checks");
    // Until here nothing was written.
    let existing = table::read_existing(dev)?;
    let (disk_id, partuuids) = if plan.preserve_ephemeral {
        let existing = existing.ok_or_else(|| {
            Error::Refused("preserve_ephemeral: the disk has no partition table to preserve".into())
        })?;
        table::matches(&existing, &layout).map_err(|why| {
            Error::Refused(format!(
                "preserve_ephemeral: the table on the disk differs: {why}"
            ))
        })?;
        log::info!("preserve_ephemeral: keeping the partition table and the ephemeral partition");
        let uuids = existing.parts.iter().map(|p| p.partuuid.clone()).collect();
        (existing.disk_id, uuids)
    } else {
        buf.as_mut_slice().fill(0);
        let new: Vec<(u64, u64)> = layout.parts.iter().map(|p| (p.offset(), p.len())).collect();
        table::wipe(dev, buf.as_slice(), existing.as_ref(), &new)?;
        let written = table::write_layout(dev, env, &layout)?;
        log::info!(
            "{} table written ({} partitions)",
            label.name(),
            layout.parts.len()
        );
        (written.disk_id, written.partuuids)
    };
    if plan.preserve_ephemeral {
        // Only root's signature area is cleared: the ephemeral stays untouched.
        buf.as_mut_slice().fill(0);
        let span = (image::HOLD_BACK as u64).min(root.len());
        write_through(
            dev,
            buf.as_mut_slice(),
            root.offset(),
            &vec![0u8; span as usize],
        )?;
    }
    phases.mark(env, "tables");
    log::info!(
        "streaming {} into partition {} at byte {}",
        image.describe(),
        root.number,
        root.offset()
    );
    let mut streamed = format::stream(
        ready,
        dev,
        env,
        image,
        root.offset(),
        root.len(),
        buf.as_mut_slice(),
        digest.0,
        &mut |_, _| Ok(()),
    )?;
    verify(digest, &streamed, &image.describe())?;
    phases.mark(env, "stream");
    // After the image: a downloaded config drive comes again through the
    // image's connection, free now; still before the held MiB, so a
    // failure leaves nothing bootable.
    if let (Some(cd), Some(part)) = (&req.configdrive, layout.get(Role::ConfigDrive)) {
        write_configdrive(dev, buf.as_mut_slice(), part.offset(), cd, image)?;
        log::info!("config drive written ({} bytes)", cd.len());
        phases.mark(env, "config drive");
    }

    if let Some(p) = layout.get(Role::Swap) {
        let uuid = table::random_guid(env);
        let page = swap::header(p.len(), uuid, "swap1").map_err(|e| Error::Filesystem {
            partition: "swap",
            message: format!("{e}"),
        })?;
        write_through(dev, buf.as_mut_slice(), p.offset(), &page)?;
        phases.mark(env, "mkswap");
    }
    if let Some(p) = layout.get(Role::Esp) {
        env.mkfs(dev, p.offset(), p.len(), esp_fs)
            .map_err(|message| Error::Filesystem {
                partition: "efi system",
                message,
            })?;
    }
    if let (Some(p), false) = (layout.get(Role::Ephemeral), plan.preserve_ephemeral) {
        env.mkfs(dev, p.offset(), p.len(), eph_fs)
            .map_err(|message| Error::Filesystem {
                partition: "ephemeral",
                message,
            })?;
    }
    phases.mark(env, "mkfs");
    let held = core::mem::take(&mut streamed.held);
    write_through(dev, buf.as_mut_slice(), root.offset(), &held)?;
    phases.mark(env, "first MiB");

    let mut partitions = Vec::new();
    for (p, partuuid) in layout.parts.iter().zip(partuuids) {
        let filesystem = probe_at(dev, p.offset(), p.len())?;
        partitions.push(PartitionReport {
            role: p.role,
            number: p.number,
            path: layout::partition_path(&req.disk_path, p.number),
            partuuid,
            filesystem,
        });
    }
    let root_report = partitions.iter().find(|p| p.role == Role::Root).cloned();
    let root_filesystem = root_report.as_ref().and_then(|r| r.filesystem.clone());
    let root_uuid = match (&root_filesystem, &root_report) {
        (Some(fs), _) => fs.uuid.clone(),
        (None, Some(r)) => {
            log::warn!(
                "the root partition holds no filesystem rivet recognises (ext2/3/4, xfs, btrfs, vfat); \
                 reporting its PARTUUID {} as root uuid, as ironic-python-agent does",
                r.partuuid
            );
            r.partuuid.clone()
        }
        (None, None) => String::new(),
    };
    let efi_uuid = partitions
        .iter()
        .find(|p| p.role == Role::Esp)
        .and_then(|p| p.filesystem.as_ref().map(|f| f.uuid.clone()));
    Ok(Outcome {
        image_type: ImageType::Partition,
        boot_mode: req.boot_mode,
        label: Some(label),
        root_uuid,
        root_filesystem,
        efi_uuid,
        partitions,
        disk_id,
        image_bytes: streamed.bytes,
        checksum_algo: digest.0,
        checksum: streamed.digest,
        image_ms: streamed.elapsed_ms,
        total_ms: 0,
        phases: Phases::default(),
    })
}

/// The formatter's name for an ext `ephemeral_format`.
pub fn ext_kind(format: EphemeralFormat) -> crate::fs::mkext::Kind {
    match format {
        EphemeralFormat::Ext2 => crate::fs::mkext::Kind::Ext2,
        EphemeralFormat::Ext3 => crate::fs::mkext::Kind::Ext3,
        _ => crate::fs::mkext::Kind::Ext4,
    }
}
