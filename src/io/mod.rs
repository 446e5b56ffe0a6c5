//! The contracts, ground floor: what a disk is to rivet ([`BlockDevice`])
//! and what an image is ([`ImageSource`]), with the doubles tests use in
//! their place (a sparse in-memory disk, one that fails on cue, an image
//! held in memory). Everything above speaks these traits: the filesystem
//! code and the deploy engine take a `BlockDevice`, the HTTP client is an
//! `ImageSource`, and `linux/` implements both for real files and disks.

pub mod device;
pub mod source;

pub use device::{BlockDevice, FailingDisk, IoError, MemDisk};
pub use source::{ImageSource, SliceImage};
