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

/// Ops a plan holds without allocating: most requests change one or two ranges.
const INLINE_OPS: usize = 2;

/// A plan's ops: inline while they fit, else on the heap.
#[derive(Clone, Debug)]
enum Ops {
    Few(heapless::Vec<S2Op, INLINE_OPS>),
    Many(Vec<S2Op>),
}

impl Default for Ops {
    fn default() -> Ops {
        Ops::Few(heapless::Vec::new())
    }
}

/// The stage-2 changes of one request.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    ops: Ops,
}

impl PartialEq for Plan {
    fn eq(&self, other: &Plan) -> bool {
        self.ops() == other.ops()
    }
}

impl Eq for Plan {}

impl Plan {
    /// An empty plan.
    pub fn new() -> Plan {
        Plan::default()
    }
    fn push(&mut self, op: S2Op) {
        match &mut self.ops {
            Ops::Many(v) => v.push(op),
            Ops::Few(v) => {
                if let Err(op) = v.push(op) {
                    let mut m = Vec::with_capacity(4 * INLINE_OPS);
                    m.extend_from_slice(v);
                    m.push(op);
                    self.ops = Ops::Many(m);
                }
            }
        }
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
        self.push(S2Op::Map {
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
        self.push(S2Op::Unmap { vmid, ipa, size });
        self
    }
    /// Add a change of rights.
    pub fn protect(&mut self, vmid: Vmid, ipa: u64, size: u64, rights: Rights) -> &mut Plan {
        self.push(S2Op::Protect {
            vmid,
            ipa,
            size,
            rights,
        });
        self
    }
    /// Every change, in the order they were added.
    pub fn ops(&self) -> &[S2Op] {
        match &self.ops {
            Ops::Few(v) => v,
            Ops::Many(v) => v,
        }
    }
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.ops().is_empty()
    }
    /// The VMs it changes, each once, in first-use order (no allocation: a plan has a few ops).
    pub fn vmids(&self) -> impl Iterator<Item = Vmid> + '_ {
        let ops = self.ops();
        ops.iter()
            .enumerate()
            .filter(|&(i, op)| ops[..i].iter().all(|o| o.vmid() != op.vmid()))
            .map(|(_, op)| op.vmid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_keep_their_order_past_the_inline_ones() {
        let mut a = Plan::new();
        let mut b = Plan::new();
        for i in 0..5u64 {
            a.unmap(3, i << 12, 0x1000);
            b.unmap(3, i << 12, 0x1000);
            assert_eq!(a.ops().len() as u64, i + 1);
            assert_eq!(a, b);
        }
        a.map(
            4,
            0x9000,
            0x1000,
            0x1000,
            Rights::RW,
            MemKind::Normal,
            Tag::None,
        );
        let ipas: Vec<u64> = a
            .ops()
            .iter()
            .map(|o| match *o {
                S2Op::Unmap { ipa, .. } | S2Op::Map { ipa, .. } | S2Op::Protect { ipa, .. } => ipa,
            })
            .collect();
        assert_eq!(ipas, [0, 0x1000, 0x2000, 0x3000, 0x4000, 0x9000]);
        assert_eq!(a.vmids().collect::<Vec<_>>(), [3, 4]);
        assert_ne!(a, b);
        assert!(!a.is_empty() && Plan::new().is_empty());
    }
}
