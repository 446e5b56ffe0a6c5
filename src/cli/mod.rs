//! The host command line: one subcommand per user task.

pub mod args;
pub mod deploy;
pub mod erase;
pub mod fetch;
pub mod inspect;
pub mod install_bootloader;
pub mod mkinitramfs;
pub mod net;
pub mod serve;

pub const USAGE: &str = "\
rivet - a tiny deploy agent for bare metal

As PID 1 (the /init of rivet's initramfs) it brings up disks and NICs and
deploys an image. On a host it is this command-line tool:

USAGE:
    rivet <COMMAND> [OPTIONS]

COMMANDS:
    deploy        Write an image onto a disk or file as ironic-python-agent would
    erase         Erase one disk as cleaning's erase_devices does (secure erase or overwrite)
    fetch         Download a URL with rivet's own TCP/IP over a raw NIC
    inspect       Show a disk's partition table and filesystems as JSON
    install-bootloader  Put a partition image's UEFI boot loader (shim, grub) on the disk's ESP
    mkinitramfs   Build rivet's initramfs from an extracted kernel package
    serve         Answer HTTP (the agent API's status routes) with rivet's own TCP/IP
    version       Print rivet's version
    help          Print this help (also: rivet COMMAND --help)

Run 'rivet COMMAND --help' for a command's options.
";

pub fn run(argv: Vec<String>) -> Result<(), String> {
    let mut it = argv.into_iter();
    match it.next().as_deref() {
        None | Some("help" | "--help" | "-h") => {
            print!("{USAGE}");
            Ok(())
        }
        Some("version" | "--version" | "-V") => {
            println!("rivet {}", rivet::VERSION);
            Ok(())
        }
        Some("deploy") => deploy::run(it.collect()),
        Some("erase") => erase::run(it.collect()),
        Some("fetch") => fetch::run(it.collect()),
        Some("inspect") => inspect::run(it.collect()),
        Some("install-bootloader") => install_bootloader::run(it.collect()),
        Some("mkinitramfs") => mkinitramfs::run(it.collect()),
        Some("serve") => serve::run(it.collect()),
        Some(other) => Err(format!("unknown command '{other}'; run 'rivet --help'")),
    }
}
