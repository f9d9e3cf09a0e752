//! MEM_RELEASE and MEM_RECLAIM (§7.3), and the bulk releases of VM
//! teardown.

use alloc::vec::Vec;

use gunyah_rm_abi::RmError;

use super::*;
use crate::plan::Plan;
use crate::platform::{Platform, Tag, Vmid};
use crate::service::Rm;
use crate::space::State;

impl<P: Platform> Rm<P> {
    /// Undo `vmid`'s acceptance of parcel `handle` (check done by caller).
    ///
    /// Acceptor: `Borrowed(handle)` → free (unmapped if the accept was DONE: whole mappings,
    /// so no table is needed). Parcel: back to SHARING when nobody has it accepted.
    pub(super) fn drop_acceptance(&mut self, handle: u32, vmid: Vmid) {
        let p = match self.parcels.parcels.get_mut(&handle) {
            Some(p) => p,
            None => return,
        };
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
        let r = self.plat.apply(&plan);
        debug_assert!(r.is_ok(), "unmapping whole accepted ranges failed: {r:?}");
        if let Some(space) = self.spaces.get_mut(&vmid) {
            for &ipa in &acc.ipas[..mapped] {
                space.remove(ipa);
            }
        }
    }

    /// MEM_RELEASE from `caller`.
    pub fn mem_release(&mut self, caller: Vmid, handle: u32, flags: u8) -> Result<(), RmError> {
        let p = self.parcels.get(handle).ok_or(RmError::HandleInvalid)?;
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
        self.drop_acceptance(handle, caller);
        if sanitize {
            if let Some(p) = self.parcels.parcels.get_mut(&handle) {
                p.sanitize_reclaim = true;
            }
        }
        Ok(())
    }

    /// MEM_RECLAIM from `caller`.
    pub fn mem_reclaim(&mut self, caller: Vmid, handle: u32, flags: u8) -> Result<(), RmError> {
        let p = self.parcels.get(handle).ok_or(RmError::HandleInvalid)?;
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
        // Owner: `Lent(handle)` → `Owned` (mapped back) / `Shared(handle)` → `Owned`.
        let ranges: Vec<(u64, u64, State)> = self
            .spaces
            .get(&caller)
            .map(|s| {
                regions
                    .iter()
                    .flat_map(|r| s.overlapping(r.owner_ipa, r.size))
                    .map(|rg| (rg.ipa, rg.size, rg.state))
                    .collect()
            })
            .unwrap_or_default();
        let mut plan = Plan::new();
        for &(ipa, size, st) in &ranges {
            if let State::Lent { owned, .. } = st {
                plan.map(
                    caller,
                    ipa,
                    owned.pa,
                    size,
                    owned.rights,
                    owned.kind,
                    Tag::None,
                );
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
            for (ipa, _, st) in ranges {
                if let State::Lent { owned, .. } | State::Shared { owned, .. } = st {
                    space.set(ipa, State::Owned(owned));
                }
            }
            for r in regions {
                space.coalesce(r.owner_ipa);
            }
        }
        self.parcels.remove(handle);
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
