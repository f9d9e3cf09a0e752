//! MEM_ACCEPT (§3.5, §7.3): validation flags, RM- or caller-chosen IPAs,
//! contiguous mapping, INCOMPLETE replies, mapping on DONE, and the
//! completion of a donation; plus the RM's own accepts (§7.4).

use alloc::vec::Vec;

use gunyah_rm_abi::RmError;

use super::create::addr_valid;
use super::*;
use crate::plan::Plan;
use crate::platform::{Platform, Rights, Tag, Vmid, PAGE_SIZE};
use crate::service::Rm;
use crate::space::{Origin, Owned, State};

impl<P: Platform> Rm<P> {
    /// MEM_ACCEPT from `caller`.
    pub fn mem_accept(&mut self, caller: Vmid, req: &AcceptReq) -> Result<AcceptReply, RmError> {
        self.accept_as(caller, req, false)
    }

    /// An accept by `caller`, or by the RM on its behalf (`by_rm`: VM_START
    /// takes parcels still open for MEM_APPEND too, §12.1).
    fn accept_as(
        &mut self,
        caller: Vmid,
        req: &AcceptReq,
        by_rm: bool,
    ) -> Result<AcceptReply, RmError> {
        // The acceptor's own IPA space (a VM config's `ipa-bits`), not the platform's.
        let limit = self.plat.vm_ipa_limit(caller);
        let hi = self.cfg.ipa_alloc_end.min(limit);
        let base = self.cfg.ipa_alloc_base;
        // --- check ---
        // One look-up of the parcel for the whole request (checks, plan, record): with many
        // parcels live each B-tree search costs a few hundred instructions.
        let p = self
            .parcels
            .parcels
            .get_mut(&req.handle)
            .ok_or(RmError::HandleInvalid)?;
        if req.mem_type != p.mem_type as u8 || req.trans_type != p.trans as u8 {
            return Err(RmError::ArgumentInvalid);
        }
        let f = req.flags;
        if f & ACCEPT_VALIDATE_SANITIZED != 0 && !p.sanitize_create {
            return Err(RmError::ValidateFailed);
        }
        if f & ACCEPT_VALIDATE_LABEL != 0 && req.label != p.label {
            return Err(RmError::ValidateFailed);
        }
        if f & ACCEPT_VALIDATE_ACL_ATTR != 0
            && (req.acl.len() != p.acl.len()
                || req.attrs.len() != p.attrs.len()
                || req.acl.iter().zip(&p.acl).any(|(a, b)| a != b)
                || req.attrs.iter().zip(&p.attrs).any(|(a, b)| a != b))
        {
            return Err(RmError::ValidateFailed);
        }
        if f & ACCEPT_MAP_OTHER != 0 {
            return Err(RmError::Denied);
        }
        if req.map_vmid != 0 {
            return Err(RmError::ArgumentInvalid);
        }
        let acl = p.acl_of(caller).ok_or(RmError::VmidInvalid)?;
        let prev = p.accepted.get(&caller);
        if caller == p.owner || prev.is_some_and(|a| a.mapped) {
            return Err(RmError::Denied);
        }
        // The open RM does not check INIT here; accepting a parcel whose SGL
        // can still grow would leave its IPA list short, so refuse it. The
        // RM's own accept at VM_START takes it as it is, as Gunyah's does,
        // and the parcel is final from then on (MEM_APPEND → DENIED).
        if p.state == ParcelState::Init && !by_rm {
            return Err(RmError::Denied);
        }
        let mut contiguous = false;
        if f & ACCEPT_MAP_CONTIGUOUS != 0 {
            if p.mem_type != MemType::Normal
                || prev.is_some_and(|a| !a.contiguous && !a.ipas.is_empty())
            {
                return Err(RmError::ArgumentInvalid);
            }
            contiguous = true;
        }
        if let Some(a) = prev {
            if !a.ipas.is_empty() {
                contiguous = a.contiguous;
            }
        }
        if f & ACCEPT_SANITIZE != 0 && (p.mem_type == MemType::Io || !acl.rights.writable()) {
            return Err(RmError::ArgumentInvalid);
        }
        let num_mappings = p.num_mappings(contiguous);
        let done_before = prev.map_or(0, |a| a.ipas.len());
        let mut num_alloc = (num_mappings - done_before).min(gunyah_rm_abi::MAX_LIST_ENTRIES);
        let incomplete = req.sgl.is_empty() && done_before + num_alloc < num_mappings;
        if !req.sgl.is_empty() {
            if req.sgl.len() > num_alloc {
                return Err(RmError::ArgumentInvalid);
            }
            num_alloc = req.sgl.len();
        }
        // Sizes of the mappings this call allocates: the whole parcel once if contiguous, else
        // the regions from the first not yet allocated.
        let sizes_len = if contiguous {
            usize::from(num_alloc == 1)
        } else {
            num_alloc
        };
        let total = if contiguous { p.total_size() } else { 0 };
        let size_of = |j: usize| {
            if contiguous {
                total
            } else {
                p.regions[done_before + j].size
            }
        };
        let done = f & ACCEPT_DONE != 0;
        // IPAs are reserved in the acceptor's space (as `Borrowed` ranges) as they are chosen,
        // so later choices of this call avoid them; if anything fails they are dropped again
        // (the records are only ours; the tables have not changed).
        let handle = req.handle;
        let space = self.spaces.get_mut(&caller).ok_or(RmError::VmidInvalid)?;
        let cursor_before = space.cursor();
        let mut new_ipas = Vec::with_capacity(sizes_len);
        let mut failed = None;
        for j in 0..sizes_len {
            let size = size_of(j);
            let r = if let Some(&(ipa, sz)) = req.sgl.get(j) {
                if !addr_valid(ipa, sz, limit) || sz != size {
                    Err(RmError::ArgumentInvalid)
                } else if !space.is_free(ipa, size) {
                    Err(RmError::NoResource)
                } else {
                    Ok(ipa)
                }
            } else {
                let align = if size >= SIZE_2M { SIZE_2M } else { PAGE_SIZE };
                space
                    .alloc(size, align, base, hi)
                    .ok_or(RmError::NoResource)
            };
            match r {
                Ok(ipa) => {
                    space.insert(ipa, size, State::Borrowed { parcel: handle });
                    new_ipas.push(ipa);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if failed.is_none() && done && done_before + new_ipas.len() != num_mappings {
            failed = Some(RmError::ArgumentInvalid);
        }
        if let Some(e) = failed {
            for ipa in &new_ipas {
                space.remove(*ipa);
            }
            space.set_cursor(cursor_before);
            return Err(e);
        }
        let trans = p.trans;
        let kind = p.kind();
        // --- commit ---
        let mut acc = prev.cloned().unwrap_or(Acceptance {
            contiguous,
            ipas: Vec::new(),
            mapped: false,
        });
        acc.contiguous = contiguous;
        let entries: Vec<(u64, u64)> = new_ipas
            .iter()
            .enumerate()
            .map(|(j, &ipa)| (ipa, size_of(j)))
            .collect();
        // `acc.ipas` is the earlier IPAs (`done_before` of them) followed by this call's.
        if acc.ipas.is_empty() {
            acc.ipas = new_ipas;
        } else {
            acc.ipas.extend_from_slice(&new_ipas);
        }
        if done {
            let mut plan = Plan::new();
            for (i, r) in p.regions.iter().enumerate() {
                let ipa = p.acceptor_ipa(&acc, i);
                plan.map(caller, ipa, r.pa, r.size, acl.rights, kind, Tag::None);
            }
            if self.plat.apply(&plan).is_err() {
                for ipa in &acc.ipas[done_before..] {
                    space.remove(*ipa);
                }
                space.set_cursor(cursor_before);
                return Err(RmError::MapFailed);
            }
            acc.mapped = true;
        }
        if f & ACCEPT_SANITIZE != 0 {
            p.sanitize_reclaim = true;
        }
        p.state = ParcelState::Shared;
        p.accepted.insert(caller, acc);
        if done && trans == TransType::Donate {
            self.complete_donation(req.handle, caller);
        }
        Ok(AcceptReply {
            entries,
            incomplete,
        })
    }

    /// A DONE accept of a donated parcel: ownership moves to `to`.
    ///
    /// Owner: `Lent(handle)` → gone. Acceptor: `Borrowed(handle)` → `Owned`. The parcel is
    /// deleted. Provenance travels with the pages: partition pages stay partition pages,
    /// donated pages keep their first donor, and the donor's own (boot) memory records the
    /// donor to return it to.
    pub(super) fn complete_donation(&mut self, handle: u32, to: Vmid) {
        let p = match self.parcels.remove(handle) {
            Some(p) => p,
            None => return,
        };
        let Some(acc) = p.accepted.get(&to).cloned() else {
            // Only called right after `to`'s acceptance was recorded.
            self.parcels.insert(p);
            return;
        };
        let rights = p.acl_of(to).map_or(Rights::RWX, |a| a.rights);
        // The acceptor's reserved ranges become its own memory, piece by piece as the owner
        // had it.
        if let Some(space) = self.spaces.get_mut(&to) {
            for ipa in &acc.ipas {
                space.remove(*ipa);
            }
        }
        for (i, r) in p.regions.iter().enumerate() {
            let pieces: Vec<(u64, u64, Owned)> = self
                .spaces
                .get(&p.owner)
                .map(|s| {
                    s.overlapping(r.owner_ipa, r.size)
                        .filter_map(|rg| match rg.state {
                            State::Lent { owned, .. } => Some((rg.ipa, rg.size, owned)),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            if let Some(space) = self.spaces.get_mut(&p.owner) {
                for (ipa, _, _) in &pieces {
                    space.remove(*ipa);
                }
            }
            let at = p.acceptor_ipa(&acc, i);
            if let Some(space) = self.spaces.get_mut(&to) {
                for (ipa, size, owned) in pieces {
                    let origin = match owned.origin {
                        Origin::Boot => Origin::Donated {
                            from: p.owner,
                            ipa,
                            rights: owned.rights,
                        },
                        other => other,
                    };
                    let new = Owned {
                        pa: owned.pa,
                        rights,
                        kind: p.kind(),
                        origin,
                    };
                    space.insert(at + (ipa - r.owner_ipa), size, State::Owned(new));
                }
            }
        }
    }

    /// Accept `handle` on `vmid`'s behalf (VM_START and READY auto-accept):
    /// its own ACL entry, DONE, contiguous, at `ipa` or where the RM chooses.
    pub(crate) fn auto_accept(
        &mut self,
        vmid: Vmid,
        handle: u32,
        sanitize: bool,
        ipa: Option<u64>,
    ) -> Result<AcceptReply, RmError> {
        let p = self.parcels.get(handle).ok_or(RmError::HandleInvalid)?;
        let acl = p.acl_of(vmid).ok_or(RmError::VmidInvalid)?;
        let mut flags = ACCEPT_DONE;
        if p.mem_type == MemType::Normal {
            flags |= ACCEPT_MAP_CONTIGUOUS;
        }
        if sanitize {
            flags |= ACCEPT_SANITIZE;
        }
        let req = AcceptReq {
            handle,
            mem_type: p.mem_type as u8,
            trans_type: p.trans as u8,
            flags,
            label: 0,
            acl: alloc::vec![acl],
            sgl: ipa
                .map(|i| alloc::vec![(i, p.total_size())])
                .unwrap_or_default(),
            map_vmid: 0,
            attrs: Vec::new(),
        };
        self.accept_as(vmid, &req, true)
    }
}
