//! The gunyah-rm message-based test catalogue.
//!
//! Cases are data ([`Case`]): RPC requests and raw packets sent as named VMs, and every
//! reply, notification and memory effect each must produce, written from the spec sheet
//! (`rm-rpc-abi.md`) and DESIGN.md, never read back from the RM. They run on any
//! [`Target`]: the host runner drives the simulator in-process (feature `host`,
//! binary `catalogue-host`); the QEMU runner drives the board through its hypercalls from
//! an HLOS payload that links this crate (`no_std` + `alloc`).
//!
//! * [`case`]: the case model and the builder the cases are written with.
//! * [`tmpl`]: values and byte templates with variables (what differs between targets is
//!   captured from replies: handles, golden ids, VMIDs, IPAs the RM picks).
//! * [`target`]: what a runner needs from the system under test.
//! * [`run`]: the runner (one line per case, then `N passed, M failed`), with a generic
//!   clean-up after every case so one boot runs them all.
//! * [`cases`]: the catalogue itself ([`catalogue`]).
//! * [`wire`]: the RM RPC packet format, written again from the spec.
//! * [`dtb`]: the small DT targets stage with a VM's image.
//!
//! `tests/README.md` says how to write a case and run both runners.
#![cfg_attr(not(feature = "host"), no_std)]

extern crate alloc;

pub mod case;
pub mod cases;
pub mod dsl;
pub mod dtb;
pub mod ids;
pub mod run;
pub mod target;
pub mod tmpl;
pub mod wire;

#[cfg(feature = "host")]
pub mod host;

pub use case::{case, Case, Need, Step, Tag, Want};
pub use cases::catalogue;
pub use run::{run_all, run_case, Outcome, Select, Summary};
pub use target::{Access, Image, Params, Sender, Target, TargetError};
pub use tmpl::{at, Tmpl, Val, Var};

/// Bytes of HLOS RAM a target gives the cases ([`Params::scratch`]).
pub const SCRATCH_SIZE: u64 = 64 << 20;
/// Bytes of IPA space free in every VM the cases create ([`Params::guest_window`]).
pub const GUEST_WINDOW_SIZE: u64 = 256 << 20;
/// Room for one staged VM image ([`Target::stage_image`]).
pub const IMAGE_ROOM: u64 = 2 << 20;
