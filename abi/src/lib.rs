//! Gunyah Resource Manager RPC wire format.
//!
//! `no_std`, no allocation, no `unsafe`: every type here can be used by the
//! RM at EL2 as well as by host tools.
//!
//! # Transport
//! * [`header`]: the 8-byte RPC header ([`RpcHeader`], [`MsgType`]) and its
//!   validation (§1.2).
//! * [`fragment`]: one logical message → ≤ 240-byte message-queue messages
//!   ([`Fragmenter`]); a reply's first fragment starts with the error code;
//!   more than 62 continuations is an error.
//! * [`reassemble`]: packets → logical messages with the RM's receive rules
//!   (§1.4) in a fixed 14616-byte buffer ([`Reassembler`]); every dropped
//!   packet comes with a [`DropReason`].
//!
//! # Identifiers
//! [`MsgId`] (every ID of §2 plus the 0x47 extension, unknown IDs kept),
//! [`RmError`] (§4), [`vmid`] constants, [`VmState`], [`OsState`],
//! [`ExitType`] (§5).
//!
//! # Payloads
//! * [`wire`]: the list codec of §1.6 ([`wire::Reader`], [`wire::Writer`]),
//!   [`DecodeError`] (RM error code + byte offset + what), [`Encode`].
//! * [`mem`]: memparcel requests, replies and notifications (§3).
//! * [`vm`]: VM management, IRQ and console payloads (§5, §8).
//! * [`vm_id`]: VM identity: VM_GET_ID and VM_LOOKUP_NAME / URI / GUID (§9).
//! * [`ext`]: the gmem / golden / CoW extension, family 0x47, **with the
//!   offset table of every message**.
//! * [`Request`], [`Reply`] / [`ReplyData`], [`Notification`]: decode any
//!   payload by message ID (`decode` → `Result<_, RmError>`,
//!   `decode_detailed` → `Result<_, DecodeError>`); encode with [`Encode`].
//!
//! With the `serde` feature every payload type and the message enums
//! implement `serde::Serialize` (still `no_std`, no alloc); [`ser`] says
//! what the serialization looks like.
//!
//! Decoding never panics on untrusted bytes. Short payloads, overrunning or
//! truncated lists, and trailing bytes are `MSG_INVALID`; a list with more
//! than 512 entries is `NORESOURCE`. Fixed-size messages must have exactly
//! their size. Encoders write into the caller's `&mut [u8]`.
//!
//! ```
//! use gunyah_rm_abi::mem::{rights, AclEntry, MemCreate, SglEntry};
//! use gunyah_rm_abi::{Encode, Fragmenter, MsgId, Reassembler, Received, Request};
//!
//! // A client lends one page to VM 0x80 ...
//! let acl = [AclEntry::new(0x80, rights::RWX)];
//! let sgl = [SglEntry::new(0x4000_0000, 0x1000)];
//! let req = Request::MemLend(MemCreate { mem_type: 0, flags: 0, label: 0, acl: &acl, sgl: &sgl, attrs: &[] });
//! let mut buf = [0u8; 256];
//! let n = req.encode(&mut buf).unwrap();
//! // ... the RM reassembles the packets and decodes the request.
//! let mut rx = Reassembler::new();
//! for packet in Fragmenter::request(1, req.msg_id(), &buf[..n]).unwrap() {
//!     if let Received::Complete(m) = rx.push(&packet).received {
//!         assert_eq!(Request::decode(m.msg_id, m.payload).unwrap(), req);
//!     }
//! }
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod error;
pub mod ext;
pub mod fragment;
pub mod header;
pub mod mem;
pub mod msg_id;
mod names;
pub mod notification;
pub mod reassemble;
pub mod reply;
pub mod request;
#[cfg(feature = "serde")]
pub mod ser;
pub mod vm;
pub mod vm_id;
pub mod vm_state;
pub mod vmid;
pub mod wire;

pub use error::RmError;
pub use fragment::{FragmentError, Fragmenter, Packet};
pub use header::{HeaderError, MsgType, RpcHeader};
pub use msg_id::MsgId;
pub use notification::Notification;
pub use reassemble::{DropReason, Message, Outcome, Pending, Reassembler, Received};
pub use reply::{Reply, ReplyData};
pub use request::Request;
pub use vm_state::{ExitType, OsState, VmState};
pub use wire::{DecodeError, Encode, EncodeError, MAX_LIST_ENTRIES};
