//! Software RAID's holder layout against the real agent's own commands:
//! for several disk sizes, boot modes and logical disks, ironic-python-agent's
//! parted calls (raid_utils: `mklabel`, `sgdisk -F` for the msdos start,
//! `mkpart primary START END` with its GiB/MiB/`-1` arguments) run on a
//! sparse file, and `parted -m unit s print` is compared with
//! `rivet::raid::holder_spans` sector for sector; and the host's mdadm reads
//! rivet's 1.0 members (the mirrored ESP's metadata). Files and loop
//! devices only; a second.

mod common;
use common::disk::{ok, sparse};
use common::scratch;
use rivet::plan::{BootMode, Label};
use rivet::raid::{holder_spans, Size, Span};

const GIB: u64 = 1 << 30;

/// The partitions parted made, as `[start, end)` in sectors.
fn parted_spans(disk: &std::path::Path) -> Vec<Span> {
    ok(
        "parted",
        &["-m", disk.to_str().unwrap(), "unit", "s", "print"],
    )
    .lines()
    .skip(2)
    .map(|l| {
        let f: Vec<u64> = l
            .split(':')
            .skip(1)
            .take(2)
            .map(|v| v.trim_end_matches('s').parse().unwrap())
            .collect();
        Span {
            start: f[0],
            end: f[1] + 1,
        }
    })
    .collect()
}

/// What ironic-python-agent runs for one holder (create_raid_partition_tables,
/// calculate_raid_start, calc_raid_partition_sectors, then parted mkpart).
fn real_agent(disk: &std::path::Path, boot: BootMode, label: Label, sizes: &[Size]) {
    let path = disk.to_str().unwrap();
    ok("parted", &[path, "-s", "--", "mklabel", label.name()]);
    let start = match (boot, label) {
        (BootMode::Uefi, _) => "551MiB".to_string(),
        (BootMode::Bios, Label::Gpt) => "8MiB".to_string(),
        (BootMode::Bios, Label::Msdos) => {
            let first = ok("sgdisk", &["-F", path]);
            format!("{}s", first.lines().last().unwrap().trim())
        }
    };
    let mut start_str = start;
    let mut end_gib: Option<u64> = None;
    for size in sizes {
        let end_str = match (size, end_gib) {
            (Size::Max, _) => "-1".to_string(),
            (Size::Gib(n), None) => {
                end_gib = Some(*n);
                format!("{n}GiB")
            }
            (Size::Gib(n), Some(e)) => {
                end_gib = Some(e + n);
                format!("{}GiB", e + n)
            }
        };
        ok(
            "parted",
            &[
                path, "-s", "-a", "optimal", "--", "mkpart", "primary", &start_str, &end_str,
            ],
        );
        start_str = format!("{}GiB", end_gib.unwrap_or(0));
    }
}

#[test]
fn holder_partitions_fall_where_the_real_agents_parted_puts_them() {
    let dir = scratch("raid-layout");
    let cases: &[(u64, BootMode, Label, &[Size])] = &[
        (
            20 * GIB,
            BootMode::Uefi,
            Label::Gpt,
            &[Size::Gib(10), Size::Max],
        ),
        (
            20 * GIB + 51_200,
            BootMode::Uefi,
            Label::Gpt,
            &[Size::Gib(10), Size::Gib(5)],
        ),
        (
            3 * GIB,
            BootMode::Uefi,
            Label::Gpt,
            &[Size::Gib(1), Size::Max],
        ),
        (
            20 * GIB,
            BootMode::Bios,
            Label::Gpt,
            &[Size::Gib(5), Size::Gib(5)],
        ),
        (
            20 * GIB + 1_536_000,
            BootMode::Bios,
            Label::Gpt,
            &[Size::Max],
        ),
        (
            20 * GIB + 51_200,
            BootMode::Bios,
            Label::Msdos,
            &[Size::Max],
        ),
        (
            100 * GIB + 512_000,
            BootMode::Bios,
            Label::Msdos,
            &[Size::Gib(10), Size::Max],
        ),
        (
            2 * GIB,
            BootMode::Bios,
            Label::Msdos,
            &[Size::Gib(1), Size::Max],
        ),
    ];
    for (i, &(bytes, boot, label, sizes)) in cases.iter().enumerate() {
        let disk = dir.join(format!("holder-{i}.img"));
        sparse(&disk, bytes);
        real_agent(&disk, boot, label, sizes);
        let theirs = parted_spans(&disk);
        let ours = holder_spans(bytes / 512, boot, label, sizes).unwrap();
        eprintln!("{bytes} B, {boot:?}, {label:?}, {sizes:?}: {ours:?}");
        assert_eq!(
            ours, theirs,
            "case {i}: {bytes} B, {boot:?}, {label:?}, {sizes:?}"
        );
        std::fs::remove_file(&disk).unwrap();
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The mirrored ESP's metadata (1.0: superblock at the end, data from
/// sector 0, so firmware reads plain FAT): rivet's members on loop devices,
/// as the host's mdadm reads them.
#[test]
fn mdadm_reads_rivets_1_0_members() {
    use rivet::io::BlockDevice;
    use rivet::raid::members::{component_sectors, write_member};
    use rivet::wire::md::{Array, Level, Version, IN_SYNC};
    let dir = scratch("raid-1-0");
    let sectors = (550u64 << 20) / 512;
    let mut array = Array {
        version: Version::V1_0,
        set_uuid: *b"rivet-esp-mirror",
        name: "esp".into(),
        level: Level::Raid1,
        members: 2,
        component_sectors: 0,
        time: 1_765_000_000,
        resync_offset: IN_SYNC,
    };
    array.component_sectors = component_sectors(&array, &[sectors, sectors], 0).unwrap();
    for slot in 0..2u32 {
        let file = dir.join(format!("esp{slot}.img"));
        sparse(&file, sectors * 512);
        let mut dev = rivet::linux::blockdev::Disk::open(file.to_str().unwrap(), 512).unwrap();
        write_member(&mut dev, 0, sectors, &array, slot, [slot as u8 + 1; 16], 0).unwrap();
        dev.flush().unwrap();
        drop(dev);
        let lo = common::disk::Loop::attach(&file, 512, false);
        let out = ok("mdadm", &["--examine", &lo.dev]);
        let field = |name: &str| {
            out.lines()
                .find_map(|l| l.split_once(" : ").filter(|(k, _)| k.trim() == name))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_else(|| panic!("no {name} in\n{out}"))
        };
        assert_eq!(field("Version"), "1.0", "{out}");
        assert_eq!(field("Raid Level"), "raid1");
        assert_eq!(field("Name"), "esp");
        // Data from sector 0 (mdadm prints no Data Offset then).
        assert!(
            field("Unused Space").starts_with("before=0 sectors"),
            "{out}"
        );
        assert_eq!(
            field("Super Offset"),
            format!("{} sectors", (sectors - 16) & !7)
        );
        assert_eq!(field("State"), "clean");
        assert!(field("Checksum").ends_with("- correct"), "{out}");
        assert_eq!(field("Device Role"), format!("Active device {slot}"));
        assert_eq!(field("Array UUID"), "72697665:742d6573:702d6d69:72726f72");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The mirrored ESP's partition on each holder, where the real agent's
/// `sgdisk -F` (first sector of the largest free block) and `sgdisk -n
/// 0:<that>s:+550MiB -t 0:ef00 -c 0:uefi-holder-<n>` put it: rivet's
/// holder table, then rivet's `add_esp` on one copy and the real agent's
/// sgdisk calls on another, compared with `sgdisk -i`.
#[test]
fn holder_esp_falls_where_the_real_agents_sgdisk_puts_it() {
    use rivet::deploy::testing::ScriptedEnv;
    use rivet::io::BlockDevice;
    use rivet::raid::esp::HolderTable;
    use rivet::raid::members::write_table;
    let dir = scratch("raid-esp");
    let cases: &[(u64, &[Size])] = &[
        (4 * GIB, &[Size::Max]),
        (20 * GIB, &[Size::Gib(10), Size::Gib(5)]),
        (8 * GIB, &[Size::Gib(1)]),
    ];
    for (i, &(bytes, sizes)) in cases.iter().enumerate() {
        let ours = dir.join(format!("ours-{i}.img"));
        let theirs = dir.join(format!("theirs-{i}.img"));
        sparse(&ours, bytes);
        let spans = holder_spans(bytes / 512, BootMode::Uefi, Label::Gpt, sizes).unwrap();
        let mut env = ScriptedEnv::default();
        {
            let mut dev = rivet::linux::blockdev::Disk::open(ours.to_str().unwrap(), 512).unwrap();
            write_table(&mut dev, &mut env, BootMode::Uefi, Label::Gpt, &spans).unwrap();
            dev.flush().unwrap();
        }
        ok(
            "cp",
            &[
                "--sparse=always",
                ours.to_str().unwrap(),
                theirs.to_str().unwrap(),
            ],
        );
        let t = theirs.to_str().unwrap();
        let first = ok("sgdisk", &["-F", t]);
        let first = first.lines().last().unwrap().trim();
        ok(
            "sgdisk",
            &[
                "-n",
                &format!("0:{first}s:+550MiB"),
                "-t",
                "0:ef00",
                "-c",
                &format!("0:uefi-holder-{i}"),
                t,
            ],
        );
        let number = {
            let mut dev = rivet::linux::blockdev::Disk::open(ours.to_str().unwrap(), 512).unwrap();
            let mut table = HolderTable::read(&mut dev).unwrap();
            let n = table.add_esp(&mut dev, &mut env, i).unwrap();
            dev.flush().unwrap();
            n
        };
        let fields = |disk: &std::path::Path| -> Vec<String> {
            ok(
                "sgdisk",
                &["-i", &number.to_string(), disk.to_str().unwrap()],
            )
            .lines()
            .filter(|l| {
                [
                    "Partition GUID code",
                    "First sector",
                    "Last sector",
                    "Partition name",
                ]
                .iter()
                .any(|k| l.starts_with(k))
            })
            .map(str::to_string)
            .collect()
        };
        let (a, b) = (fields(&ours), fields(&theirs));
        eprintln!("{bytes} B, {sizes:?}: partition {number}: {a:?}");
        assert_eq!(a.len(), 4, "{a:?}");
        assert_eq!(a, b, "case {i}: {bytes} B, {sizes:?}");
        assert!(ok("sgdisk", &["-v", ours.to_str().unwrap()]).contains("No problems found"));
        for f in [&ours, &theirs] {
            std::fs::remove_file(f).unwrap();
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}
