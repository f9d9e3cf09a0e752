//! The gunyah-rm Resource Manager.
//!
//! `no_std` + `alloc`; the `std` feature adds the host simulator and tools.
//!
//! The RM speaks Gunyah's RM RPC ([`rpc`], [`router`]), keeps the VM table
//! and its state machine ([`vm`], [`lifecycle`]), one state for every IPA
//! range of every VM ([`space`]) with parcels as records about those ranges
//! ([`parcel`]; their transitions in [`memparcel`]), and changes stage 2 only
//! through plans ([`plan`]) the platform prepares and commits ([`platform`]).
//! A transition module depends on that model, never on a sibling transition
//! (`tests/module_deps.rs`); [`router`] maps each request to its transition
//! and keeps the outcome typed ([`reply`]) until [`rpc`] frames it. [`checker`]
//! compares the real tables with those records; [`snapshot`] dumps all
//! state. [`sim`] (feature `std`) is the host platform over the real
//! `gunyah-stage2` tables.
//!
//! gmem, golden images and copy-on-write (DESIGN.md "Memory model"):
//! [`gmem`] pools bound into VMs ([`Rm::gmem_create`], [`Rm::gmem_bind`]),
//! [`golden`] images sealed from a parcel or a template VM
//! ([`Rm::golden_seal`], [`Rm::golden_seal_vm`]) and mapped read-only with a
//! CoW policy ([`Rm::golden_map`]), and the stage-2 fault path in [`cow`]
//! ([`Rm::handle_fault`]: CoW copy, demand paging, abort or stop);
//! [`concurrent::ConcurrentRm`] serves faults of many vCPUs at once (the RM-wide lock for
//! reading plus a per-VM lock, locks from [`sync`]).
//! [`sim_access`] lets the simulator touch guest memory through the real
//! tables and that fault path ([`Rm::vm_read`], [`Rm::vm_write`], the
//! SIM_VM_READ/WRITE requests); [`sim_mmu`] (feature `std`) is a vCPU's
//! lock-free table walker for multi-threaded tests and benchmarks.
//!
//! Transport-facing API: [`Rm::packet_from`] feeds one message-queue message
//! from a VM, [`Rm::drain_outgoing`] yields `(to_vmid, packet)` pairs in the
//! order the RM produced them, [`Rm::link`] tells a transport whether a VM's
//! RM message queues exist (and which link they are), [`Rm::client_disconnected`]
//! drops a partial message.
//! [`serve_transport`] (feature `std`) is the socket transport of `gunyah-rm serve` built on it.
//!
//! ```
//! # #[cfg(feature = "std")] {
//! let mut rm = gunyah_rm::sim::default_rm();
//! // VM_GET_VMID (0x56000024) from HLOS (VMID 3): api 0x21, request, seq 1.
//! rm.packet_from(3, &[0x21, 0x01, 0x01, 0x00, 0x24, 0x00, 0x00, 0x56]);
//! // The reply echoes seq and msg_id: OK (0), then VMID 3.
//! let reply = vec![0x21, 0x02, 0x01, 0x00, 0x24, 0x00, 0x00, 0x56, 0, 0, 0, 0, 3, 0, 0, 0];
//! assert_eq!(rm.drain_outgoing(), vec![(3, reply)]);
//! # }
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]
// Raw memory only in the simulator's table memory and its vCPU walker, and the cell of the
// RM-wide lock (`sync`); each `unsafe` there has a SAFETY comment. The RM itself is safe code.
#![deny(unsafe_code)]

extern crate alloc;

pub mod checker;
pub mod concurrent;
pub mod config;
pub mod cow;
pub mod gmem;
pub mod golden;
pub mod launch;
pub mod lifecycle;
pub mod memparcel;
pub mod parcel;
pub mod plan;
pub mod platform;
mod ranges;
pub mod reply;
pub mod router;
pub mod rpc;
#[cfg(feature = "std")]
pub mod serve_transport;
pub mod service;
#[cfg(feature = "std")]
#[allow(unsafe_code)]
pub mod sim;
pub mod sim_access;
#[cfg(feature = "std")]
#[allow(unsafe_code)]
pub mod sim_mmu;
pub mod snapshot;
pub mod space;
pub mod stage2_spaces;
#[allow(unsafe_code)]
pub mod sync;
pub mod vm;
pub mod vmid_map;

pub use plan::{Plan, S2Op};
pub use platform::{
    AddressSpaces, Leaf, MemKind, PhysMem, Platform, PlatformError, Prepared, Rights, Site, Tag,
    Vmid, Walked,
};
pub use service::{Rm, RmConfig, VmEvent};
