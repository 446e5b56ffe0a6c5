//! Orchestration: what rivet does with a plan once it has a network and
//! disks. `standalone` is the kernel-command-line mode (rivet.plan=URL,
//! rivet.callback=URL); the host CLI shares `references` and `disks`.

pub mod disks;
pub mod ironic;
pub mod partition_boot;
pub mod references;
pub mod standalone;
