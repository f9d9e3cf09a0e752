//! Gunyah Resource Manager RPC wire format.
//!
//! `no_std`, no allocation: every type here can be used by the RM at EL2.
#![no_std]
#![forbid(unsafe_code)]

pub mod error;

pub use error::RmError;
