//! Gunyah Resource Manager RPC wire format.
//!
//! `no_std`, no allocation: every type here can be used by the RM at EL2.
//!
//! * [`header`]: the 8-byte RPC header ([`RpcHeader`], [`MsgType`]).
//! * [`fragment`]: one logical message → ≤ 240-byte packets ([`Fragmenter`]).
//! * [`reassemble`]: packets → logical messages with the RM's receive rules
//!   ([`Reassembler`]).
//! * [`msg_id`]: every message ID ([`MsgId`]), [`error`]: RM error codes
//!   ([`RmError`]), [`vmid`]: well-known VMIDs, [`vm_state`]: VM/OS states and
//!   exit types.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod error;
pub mod fragment;
pub mod header;
pub mod msg_id;
pub mod reassemble;
pub mod vm_state;
pub mod vmid;

pub use error::RmError;
pub use fragment::{FragmentError, Fragmenter, Packet};
pub use header::{HeaderError, MsgType, RpcHeader};
pub use msg_id::MsgId;
pub use reassemble::{DropReason, Message, Outcome, Pending, Reassembler, Received};
pub use vm_state::{ExitType, OsState, VmState};
