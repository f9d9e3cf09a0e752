//! The harness of gunyah-rm's fuzz targets (`fuzz_targets/`), kept in a library so that each
//! target is one line and the same code builds seeds and replays inputs.
//!
//! Targets (each module documents its input format and what it checks besides "no panic"):
//! * `abi_decode` ([`abi`]): the reassembler, every request/reply/notification decoder and the
//!   list codec of `gunyah_rm_abi`.
//! * `rm_dispatch` ([`dispatch`]): the RM fed as HLOS and several VMs at once, with guest reads
//!   and writes, the isolation checker every few operations and after every input.
//! * `vm_config` ([`config`]): device-tree blobs into the VM-config loader and into a VM.
//! * `serve_transport` ([`transport`]): the `gunyah-rm serve` transport's connection and packet
//!   handling over the real RM, with fake sockets.
//!
//! Run them with `cargo xtask fuzz` (docs/FUZZING.md).

pub mod abi;
pub mod catalogue;
pub mod config;
pub mod dispatch;
pub mod input;
pub mod seeds;
pub mod transport;
