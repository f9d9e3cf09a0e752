//! The gunyah-rm Resource Manager.
//!
//! `no_std` + `alloc`; the `std` feature adds the host simulator and tools.
//!
//! Transport-facing API: [`Rm::packet_from`] feeds one message-queue message
//! from a VM, [`Rm::drain_outgoing`] yields `(to_vmid, packet)` pairs,
//! [`Rm::vm_exists`] tells a transport whether a VMID may connect.
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]

extern crate alloc;

pub mod checker;
pub mod config;
pub mod dispatch;
pub mod ids;
pub mod lifecycle;
pub mod memory;
pub mod memparcel;
pub mod platform;
pub mod rpc;
pub mod service;
#[cfg(feature = "std")]
pub mod sim;
pub mod snapshot;
pub mod vm;
pub mod wire;

pub use platform::{AddressSpaces, Leaf, MemKind, PhysMem, Platform, PlatformError, Rights, Vmid};
pub use service::{Rm, RmConfig};
