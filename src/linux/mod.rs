//! Linux glue: everything that touches syscalls, files under /sys and /proc,
//! or the console. The `unsafe` code and ioctls live in [`sys`] alone.

pub mod blockdev;
pub mod channel;
pub mod coldplug;
pub mod config2;
pub mod efivars;
pub mod env;
pub mod erase;
pub mod fat;
pub mod hardware;
pub mod host_devices;
pub mod inventory;
pub mod kernel_tree;
pub mod lldp;
pub mod logger;
pub mod md;
pub mod packet;
pub mod pid1;
pub mod pstore;
pub mod readahead;
pub mod source;
pub mod sys;
pub mod tls;
