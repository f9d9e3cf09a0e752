//! MEM_SHARE / MEM_LEND / MEM_DONATE and MEM_APPEND (§7.2): check every
//! argument and the owner's memory first, then take LEND/DONATE memory out
//! of the owner's stage 2, sanitize, and record the parcel.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use gunyah_rm_abi::RmError;

use super::*;
use crate::plan::Plan;
use crate::platform::{Platform, Rights, Vmid};
use crate::service::Rm;
use crate::space::{page_aligned, State};

impl<P: Platform> Rm<P> {
    /// Resolve SGL entries to regions in `owner`'s memory (check only).
    ///
    /// The codes are those Gunyah's RM gives (§7.2, §12.1 "SGL validity"): an
    /// unaligned entry or one that reaches [`SGL_ADDR_LIMIT`] is
    /// ARGUMENT_INVALID; a zero-size entry, one outside the owner's memory,
    /// and entries that overlap each other (or pages already in the parcel)
    /// are MEM_INVALID, because the RM's lookup of the range fails.
    pub(super) fn resolve_sgl(
        &self,
        owner: Vmid,
        mem_type: MemType,
        sgl: &[(u64, u64)],
        existing: &[Region],
    ) -> Result<Vec<Region>, RmError> {
        let space = self.spaces.get(&owner).ok_or(RmError::MemInvalid)?;
        for &(ipa, size) in sgl {
            let below_limit = ipa.checked_add(size).is_some_and(|e| e <= SGL_ADDR_LIMIT);
            if !page_aligned(ipa) || !page_aligned(size) || !below_limit {
                return Err(RmError::ArgumentInvalid);
            }
        }
        let mut regions: Vec<Region> = Vec::with_capacity(sgl.len());
        for &(ipa, size) in sgl {
            if size == 0 {
                return Err(RmError::MemInvalid);
            }
            // Entries of one request must not overlap each other or earlier appends.
            let overlaps = |r: &Region| r.owner_ipa < ipa + size && ipa < r.owner_ipa + r.size;
            if regions.iter().chain(existing.iter()).any(overlaps) {
                return Err(RmError::MemInvalid);
            }
            // Only memory the owner owns and has not put in a parcel yet, of the parcel's
            // kind (one pass over the owner's ranges; every failure here is MEM_INVALID, and
            // the regions are dropped with it). Regions break where the memory is not
            // physically contiguous or the owner's rights change; regions of different entries
            // are never merged (`last_rights` is only set once this entry has a region).
            let mut last_rights = None;
            let owned_all = space.try_owned_pieces(ipa, size, |pipa, pa, psize, owned| {
                if owned.kind != mem_type.kind() {
                    return false;
                }
                match regions.last_mut() {
                    Some(l) if last_rights == Some(owned.rights) && l.pa + l.size == pa => {
                        l.size += psize
                    }
                    _ => regions.push(Region {
                        owner_ipa: pipa,
                        pa,
                        size: psize,
                    }),
                }
                last_rights = Some(owned.rights);
                true
            });
            if !owned_all {
                return Err(RmError::MemInvalid);
            }
        }
        Ok(regions)
    }

    /// The plan of a create or append: LEND/DONATE memory leaves the owner's stage 2.
    fn owner_plan(owner: Vmid, trans: TransType, regions: &[Region]) -> Plan {
        let mut plan = Plan::new();
        if trans != TransType::Share {
            for r in regions {
                plan.unmap(owner, r.owner_ipa, r.size);
            }
        }
        plan
    }

    /// Owner: `Owned` → `Lent(handle)` (LEND/DONATE) or `Shared(handle)` (SHARE) over
    /// `regions`, whose ranges are cut at the regions' edges.
    fn put_in_parcel(&mut self, owner: Vmid, handle: u32, trans: TransType, regions: &[Region]) {
        let Some(space) = self.spaces.get_mut(&owner) else {
            return;
        };
        for r in regions {
            space.carve_each(r.owner_ipa, r.size, |range| {
                let State::Owned(owned) = range.state else {
                    return;
                };
                let parcel = handle;
                range.state = match trans {
                    TransType::Share => State::Shared { parcel, owned },
                    _ => State::Lent { parcel, owned },
                };
            });
        }
    }

    /// MEM_SHARE / MEM_LEND / MEM_DONATE from `owner`.
    ///
    /// Gunyah's RM takes a handle number even for some creates that fail
    /// (§12.1 "the handle counter also advances on failed creates"); this RM
    /// does not: a failed request changes nothing, not even the counter
    /// (handles are opaque to clients, so nothing can depend on the gap).
    pub fn mem_create(&mut self, owner: Vmid, req: &CreateReq) -> Result<u32, RmError> {
        self.mem_create_owned(owner, req.clone())
    }

    /// [`Rm::mem_create`] of a request the caller gives away: its ACL and attribute lists
    /// become the parcel's without a copy.
    pub(crate) fn mem_create_owned(&mut self, owner: Vmid, req: CreateReq) -> Result<u32, RmError> {
        // --- check ---
        let mem_type = MemType::from_u8(req.mem_type).ok_or(RmError::ArgumentInvalid)?;
        if req.flags & !(CREATE_SANITIZE | CREATE_APPEND) != 0 {
            return Err(RmError::ArgumentInvalid);
        }
        if req.flags & CREATE_SANITIZE != 0 && mem_type == MemType::Io {
            return Err(RmError::ArgumentInvalid);
        }
        if req.acl.is_empty() || req.sgl.is_empty() {
            return Err(RmError::ArgumentInvalid);
        }
        if req.trans == TransType::Donate && req.acl.len() != 1 {
            return Err(RmError::ArgumentInvalid);
        }
        let owner_in_acl = req.acl.iter().any(|a| a.vmid == owner);
        match req.trans {
            TransType::Share if !owner_in_acl => return Err(RmError::ArgumentInvalid),
            TransType::Lend | TransType::Donate if owner_in_acl => {
                return Err(RmError::ArgumentInvalid)
            }
            _ => {}
        }
        if req.trans == TransType::Donate {
            let max = if mem_type == MemType::Io {
                Rights::RW
            } else {
                Rights::RWX
            };
            if req.acl[0].rights != max {
                return Err(RmError::Denied);
            }
        }
        for (i, a) in req.acl.iter().enumerate() {
            if req.acl[..i].iter().any(|b| b.vmid == a.vmid) {
                return Err(RmError::ArgumentInvalid);
            }
            if !self.vms.exists(a.vmid) {
                return Err(RmError::VmidInvalid);
            }
            if !rights_valid(a.rights, mem_type) {
                return Err(RmError::ArgumentInvalid);
            }
        }
        for (i, at) in req.attrs.iter().enumerate() {
            // Two attrs for one VM: ARGUMENT_INVALID (§12.1); a VM not in
            // the ACL: VMID_INVALID (§7.2).
            if req.attrs[..i].iter().any(|b| b.vmid == at.vmid) {
                return Err(RmError::ArgumentInvalid);
            }
            if !owner_in_acl_or(&req, at.vmid) {
                return Err(RmError::VmidInvalid);
            }
            if at.attr > 3 {
                return Err(RmError::ArgumentInvalid);
            }
            if (mem_type == MemType::Io) != (at.attr == ATTR_DEVICE) {
                return Err(RmError::ArgumentInvalid);
            }
            let default = if mem_type == MemType::Io {
                ATTR_DEVICE
            } else {
                ATTR_NORMAL
            };
            if req.trans == TransType::Donate && at.attr != default {
                return Err(RmError::ArgumentInvalid);
            }
        }
        let sanitize = req.flags & CREATE_SANITIZE != 0;
        let regions = self.resolve_sgl(owner, mem_type, &req.sgl, &[])?;
        if self.parcels.owned_by(owner) >= self.cfg.max_parcels_per_vm {
            return Err(RmError::Denied);
        }
        let handle = self.parcels.alloc_handle().ok_or(RmError::NoResource)?;
        let plan = Self::owner_plan(owner, req.trans, &regions);
        let prepared = self.plat.prepare(&plan).map_err(map_err)?;
        // --- commit ---
        self.plat.commit(&plan, prepared);
        if sanitize {
            for r in &regions {
                self.plat.zero(r.pa, r.size);
            }
        }
        self.put_in_parcel(owner, handle, req.trans, &regions);
        let state = if req.flags & CREATE_APPEND != 0 {
            ParcelState::Init
        } else {
            ParcelState::Sharing
        };
        self.parcels.insert(Parcel {
            handle,
            owner,
            mem_type,
            trans: req.trans,
            label: req.label,
            acl: req.acl,
            attrs: req.attrs,
            regions,
            state,
            sanitize_create: sanitize,
            sanitize_reclaim: false,
            tag: None,
            accepted: BTreeMap::new(),
        });
        self.parcels.next_handle = handle.wrapping_add(1);
        Ok(handle)
    }

    /// MEM_APPEND from `caller`.
    pub fn mem_append(
        &mut self,
        caller: Vmid,
        handle: u32,
        flags: u8,
        sgl: &[(u64, u64)],
    ) -> Result<(), RmError> {
        let p = self.parcels.get(handle).ok_or(RmError::HandleInvalid)?;
        if p.owner != caller || p.state != ParcelState::Init {
            return Err(RmError::Denied);
        }
        if flags & !APPEND_DONE != 0 {
            return Err(RmError::ArgumentInvalid);
        }
        // No entries: ARGUMENT_INVALID, as an empty SGL on create (§12.1).
        if sgl.is_empty() {
            return Err(RmError::ArgumentInvalid);
        }
        let (trans, mem_type, sanitize) = (p.trans, p.mem_type, p.sanitize_create);
        let new = self.resolve_sgl(caller, mem_type, sgl, &p.regions)?;
        let plan = Self::owner_plan(caller, trans, &new);
        self.plat.apply(&plan).map_err(map_err)?;
        // --- commit ---
        if sanitize {
            for r in &new {
                self.plat.zero(r.pa, r.size);
            }
        }
        self.put_in_parcel(caller, handle, trans, &new);
        let p = self
            .parcels
            .parcels
            .get_mut(&handle)
            .ok_or(RmError::HandleInvalid)?;
        p.regions.extend(new);
        if flags & APPEND_DONE != 0 {
            p.state = ParcelState::Sharing;
        }
        Ok(())
    }
}

/// Whether `[ipa, ipa+size)` is a non-empty, page-aligned range below `limit` (the IPA limit).
pub(super) fn addr_valid(ipa: u64, size: u64, limit: u64) -> bool {
    page_aligned(ipa)
        && page_aligned(size)
        && size != 0
        && ipa.checked_add(size).is_some_and(|e| e <= limit)
}

fn owner_in_acl_or(req: &CreateReq, vmid: Vmid) -> bool {
    req.acl.iter().any(|a| a.vmid == vmid)
}

/// The RM error for a plan the platform could not prepare.
fn map_err(e: crate::platform::PlatformError) -> RmError {
    if e == crate::platform::PlatformError::NoMemory {
        RmError::NoMem
    } else {
        RmError::MemInvalid
    }
}
