//! MEM_RELEASE and MEM_RECLAIM (§7.3), and the bulk releases of VM
//! teardown.

use alloc::collections::btree_map::Entry;
use alloc::vec::Vec;

use gunyah_rm_abi::RmError;

use super::*;
use crate::plan::Plan;
use crate::platform::{Platform, Tag, Vmid};
use crate::service::Rm;
use crate::space::{State, VmSpace};

impl<P: Platform> Rm<P> {
    /// Undo `vmid`'s acceptance of parcel `handle` (check done by caller).
    ///
    /// Acceptor: `Borrowed(handle)` → free (unmapped if the accept was DONE: whole mappings,
    /// so no table is needed). Parcel: back to SHARING when nobody has it accepted.
    pub(super) fn drop_acceptance(&mut self, handle: u32, vmid: Vmid) {
        if let Some(p) = self.parcels.parcels.get_mut(&handle) {
            Self::unmap_acceptance(&mut self.plat, &mut self.spaces, p, vmid);
        }
    }

    /// [`Rm::drop_acceptance`] of the parcel `p` (already looked up), with the pieces of the RM
    /// it changes.
    fn unmap_acceptance(
        plat: &mut P,
        spaces: &mut crate::vmid_map::VmidMap<VmSpace>,
        p: &mut Parcel,
        vmid: Vmid,
    ) {
        let acc = match p.accepted.remove(&vmid) {
            Some(a) => a,
            None => return,
        };
        if p.accepted.is_empty() {
            p.state = ParcelState::Sharing;
        }
        let mapped = acc.ipas.len().min(p.num_mappings(acc.contiguous));
        let mut plan = Plan::new();
        if acc.mapped {
            for (i, &ipa) in acc.ipas[..mapped].iter().enumerate() {
                let size = if acc.contiguous {
                    p.total_size()
                } else {
                    p.regions[i].size
                };
                plan.unmap(vmid, ipa, size);
            }
        }
        let r = plat.apply(&plan);
        debug_assert!(r.is_ok(), "unmapping whole accepted ranges failed: {r:?}");
        if let Some(space) = spaces.get_mut(&vmid) {
            for &ipa in &acc.ipas[..mapped] {
                space.remove(ipa);
            }
        }
    }

    /// MEM_RELEASE from `caller`.
    pub fn mem_release(&mut self, caller: Vmid, handle: u32, flags: u8) -> Result<(), RmError> {
        // One look-up of the parcel for the checks and the release.
        let p = self
            .parcels
            .parcels
            .get_mut(&handle)
            .ok_or(RmError::HandleInvalid)?;
        if flags & !RELEASE_SANITIZE != 0 {
            return Err(RmError::ArgumentInvalid);
        }
        let acl = p.acl_of(caller).ok_or(RmError::HandleInvalid)?;
        if caller == p.owner {
            return Err(RmError::Denied);
        }
        if !p.accepted.contains_key(&caller) {
            return Err(RmError::MemReleased);
        }
        let sanitize = flags & RELEASE_SANITIZE != 0;
        if sanitize && (p.mem_type != MemType::Normal || !acl.rights.writable()) {
            return Err(RmError::ArgumentInvalid);
        }
        Self::unmap_acceptance(&mut self.plat, &mut self.spaces, p, caller);
        if sanitize {
            p.sanitize_reclaim = true;
        }
        Ok(())
    }

    /// MEM_RECLAIM from `caller`.
    pub fn mem_reclaim(&mut self, caller: Vmid, handle: u32, flags: u8) -> Result<(), RmError> {
        // One look-up of the parcel: checked through the entry, removed through it at the end.
        let Entry::Occupied(entry) = self.parcels.parcels.entry(handle) else {
            return Err(RmError::HandleInvalid);
        };
        let p = entry.get();
        if p.owner != caller {
            return Err(RmError::Denied);
        }
        if flags & !RELEASE_SANITIZE != 0 {
            return Err(RmError::ArgumentInvalid);
        }
        if p.state == ParcelState::Shared {
            return Err(RmError::MemInuse);
        }
        if flags & RELEASE_SANITIZE != 0 && p.mem_type == MemType::Io {
            return Err(RmError::ArgumentInvalid);
        }
        let zero = p.sanitize_reclaim || flags & RELEASE_SANITIZE != 0;
        // The parcel's regions, borrowed (the parcel is only removed at the end).
        let regions = &p.regions;
        // Owner: `Lent(handle)` → `Owned` (mapped back) / `Shared(handle)` → `Owned`. The
        // ranges are read here for the plan and changed after the commit (nothing in between
        // changes them), with no list of them.
        let mut plan = Plan::new();
        if let Some(s) = self.spaces.get(&caller) {
            for rg in regions
                .iter()
                .flat_map(|r| s.overlapping(r.owner_ipa, r.size))
            {
                if let State::Lent { owned, .. } = rg.state {
                    plan.map(
                        caller,
                        rg.ipa,
                        owned.pa,
                        rg.size,
                        owned.rights,
                        owned.kind,
                        Tag::None,
                    );
                }
            }
        }
        // Prepared first, so a failure changes nothing (not even the zeroing).
        let prepared = self.plat.prepare(&plan).map_err(|_| RmError::MapFailed)?;
        if zero {
            for r in regions {
                self.plat.zero(r.pa, r.size);
            }
        }
        self.plat.commit(&plan, prepared);
        if let Some(space) = self.spaces.get_mut(&caller) {
            for r in regions {
                space.overlapping_each_mut(r.owner_ipa, r.size, |rg| {
                    if let State::Lent { owned, .. } | State::Shared { owned, .. } = rg.state {
                        rg.state = State::Owned(owned);
                    }
                });
            }
            for r in regions {
                space.coalesce(r.owner_ipa);
            }
        }
        let p = entry.remove();
        ParcelDb::uncount(&mut self.parcels.counts, p.owner);
        Ok(())
    }

    /// Release every parcel `vmid` has accepted (VM reset), telling owners.
    pub(crate) fn release_all_accepted(&mut self, vmid: Vmid) {
        let hs: Vec<(u32, Vmid, u32)> = self
            .parcels
            .parcels
            .values()
            .filter(|p| p.accepted.contains_key(&vmid))
            .map(|p| (p.handle, p.owner, p.tag.unwrap_or(0)))
            .collect();
        for (h, owner, tag) in hs {
            self.drop_acceptance(h, vmid);
            self.notify_owner(gunyah_rm_abi::MsgId::MEM_RELEASED, owner, h, vmid, tag);
        }
    }

    /// Delete every parcel `vmid` owns (it is going away): acceptors lose
    /// their mappings and the memory returns to its place.
    pub(crate) fn revoke_owned_parcels(&mut self, vmid: Vmid) {
        let hs: Vec<u32> = self
            .parcels
            .parcels
            .values()
            .filter(|p| p.owner == vmid)
            .map(|p| p.handle)
            .collect();
        for h in hs {
            let acceptors: Vec<Vmid> = self
                .parcels
                .get(h)
                .map(|p| p.accepted.keys().copied().collect())
                .unwrap_or_default();
            for a in acceptors {
                self.drop_acceptance(h, a);
            }
            let _ = self.mem_reclaim(vmid, h, 0);
        }
    }
}
