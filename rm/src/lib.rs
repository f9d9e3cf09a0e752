//! The gunyah-rm Resource Manager.
//!
//! `no_std` + `alloc`; the `std` feature adds the host simulator and tools.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod config;
