//! Plans: the stage-2 changes one request makes, as data.
//!
//! A request's transition function checks the state of every party, then builds one [`Plan`]
//! of every stage-2 change it makes, in any VMs. The platform prepares the whole plan (checks it
//! against the tables, allocates every table page) and then commits it without failure
//! ([`crate::platform::AddressSpaces::prepare`] / `commit`), as Hafnium's
//! `mm_vm_identity_prepare` / `commit` do; only then do the RM's records change. So no request
//! is ever left half-applied, and no request has an undo loop.
//!
//! The pieces of one plan touch disjoint ranges of each VM; maps and protects are applied
//! before unmaps.

use alloc::vec::Vec;

use crate::platform::{MemKind, Rights, Tag, Vmid};

/// One stage-2 change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum S2Op {
    /// Map `[ipa, ipa+size)` of `vmid` to `[pa, pa+size)` (nothing there may be mapped).
    Map {
        /// The VM.
        vmid: Vmid,
        /// First IPA.
        ipa: u64,
        /// First PA.
        pa: u64,
        /// Bytes.
        size: u64,
        /// Rights.
        rights: Rights,
        /// Memory type.
        kind: MemKind,
        /// What the mapping is.
        tag: Tag,
    },
    /// Unmap `[ipa, ipa+size)` of `vmid` (every page of it must be mapped).
    Unmap {
        /// The VM.
        vmid: Vmid,
        /// First IPA.
        ipa: u64,
        /// Bytes.
        size: u64,
    },
    /// Change the rights of the mapped range `[ipa, ipa+size)` of `vmid` (kind and tag kept).
    Protect {
        /// The VM.
        vmid: Vmid,
        /// First IPA.
        ipa: u64,
        /// Bytes.
        size: u64,
        /// New rights.
        rights: Rights,
    },
}

impl S2Op {
    /// The VM it changes.
    pub fn vmid(&self) -> Vmid {
        match *self {
            S2Op::Map { vmid, .. } | S2Op::Unmap { vmid, .. } | S2Op::Protect { vmid, .. } => vmid,
        }
    }
}

/// The stage-2 changes of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    ops: Vec<S2Op>,
}

impl Plan {
    /// An empty plan.
    pub fn new() -> Plan {
        Plan::default()
    }
    /// Add a map.
    #[allow(clippy::too_many_arguments)]
    pub fn map(
        &mut self,
        vmid: Vmid,
        ipa: u64,
        pa: u64,
        size: u64,
        rights: Rights,
        kind: MemKind,
        tag: Tag,
    ) -> &mut Plan {
        self.ops.push(S2Op::Map {
            vmid,
            ipa,
            pa,
            size,
            rights,
            kind,
            tag,
        });
        self
    }
    /// Add an unmap.
    pub fn unmap(&mut self, vmid: Vmid, ipa: u64, size: u64) -> &mut Plan {
        self.ops.push(S2Op::Unmap { vmid, ipa, size });
        self
    }
    /// Add a change of rights.
    pub fn protect(&mut self, vmid: Vmid, ipa: u64, size: u64, rights: Rights) -> &mut Plan {
        self.ops.push(S2Op::Protect {
            vmid,
            ipa,
            size,
            rights,
        });
        self
    }
    /// Every change, in the order they were added.
    pub fn ops(&self) -> &[S2Op] {
        &self.ops
    }
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    /// The VMs it changes, each once, in first-use order.
    pub fn vmids(&self) -> Vec<Vmid> {
        let mut v: Vec<Vmid> = Vec::new();
        for op in &self.ops {
            if !v.contains(&op.vmid()) {
                v.push(op.vmid());
            }
        }
        v
    }
}
