//! The memparcel database and its transitions (spec §7.2–§7.4).
//!
//! A parcel is a record about ranges: which of its owner's ranges it holds
//! (the owner's [`crate::space::State::Lent`] / `Shared` ranges name it), and
//! where each acceptor maps it (their `Borrowed` ranges). Every transition
//! checks the expected state of every party (owner, acceptors, the caller)
//! without changing anything, builds one plan of stage-2 changes, has the
//! platform prepare it, and only then commits records and tables; a request
//! that fails changes nothing.

mod accept;
mod create;
pub mod msg;
mod notify;
mod release;

pub use crate::parcel::*;
