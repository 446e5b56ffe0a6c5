//! Orchestration: what rivet does with a plan once it has a network and
//! disks. `session` is one deploy, for every entry point; `standalone` is
//! the kernel-command-line mode (rivet.plan=URL, rivet.callback=URL),
//! `ironic` the agent a conductor drives; the host CLI shares `session`,
//! `references` and `target` (the disk choice).

pub mod ironic;
pub mod partition_boot;
pub mod references;
pub mod session;
pub mod standalone;
pub mod target;

/// PID 1's mode for this command line: Ironic mode when it names an Ironic
/// API or an inspection callback, else standalone; the end action.
pub fn run(cmdline: &crate::cmdline::Cmdline) -> crate::cmdline::EndAction {
    ironic::run::run(cmdline)
        .or_else(|| standalone::run(cmdline))
        .unwrap_or(cmdline.after)
}
