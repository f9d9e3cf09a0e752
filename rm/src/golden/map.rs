//! Mapping golden images into VMs (GOLDEN_MAP, GOLDEN_UNMAP) and destroying them
//! (GOLDEN_RELEASE).
//!
//! * [`Rm::golden_map`] — target VM: free → `Golden(image, cow, pool)`; its golden pages are
//!   mapped read-only (with 2 MiB / 1 GiB blocks where IPA and PA alignment allow) and tagged
//!   golden, so the write fault finds them from the leaf alone. Image: mapping count + 1.
//! * [`Rm::golden_unmap`] — target VM: `Golden` → free; its copies go back to its pool and the
//!   partition. Image: mapping count − 1.
//! * [`Rm::golden_release`] — image (mapped by nobody) → gone; its pages go home.
//!
//! Who may: only the image's owner (the VM that sealed it), and only into itself or a VM it
//! manages. An unknown image is HANDLE_INVALID, someone else's image DENIED, a target VM that
//! is not the caller's VMID_INVALID.

use alloc::vec::Vec;

use gunyah_rm_abi::RmError;

use super::Home;
use crate::config::FaultAction;
use crate::plan::Plan;
use crate::platform::{MemKind, Platform, Tag, Vmid, PAGE_SIZE};
use crate::service::Rm;
use crate::space::{page_aligned, GoldenMap, State};
use crate::vm::VMID_HLOS;

/// A GOLDEN_MAP request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapParams {
    /// The image.
    pub golden: u32,
    /// The VM.
    pub vmid: Vmid,
    /// Image offset.
    pub offset: u64,
    /// First IPA.
    pub ipa: u64,
    /// Bytes.
    pub size: u64,
    /// Writes make private copies (needs `gmem`).
    pub cow: bool,
    /// Map executable.
    pub exec: bool,
    /// The pool that pays for copies (owned by `vmid`).
    pub gmem: Option<u32>,
    /// Most copies this mapping may make (config `quota-pages`); `None` =
    /// only the pool's quota limits it.
    pub cow_quota: Option<u64>,
    /// What an unserved write does.
    pub fault_action: FaultAction,
    /// The image must have this SHA-256 digest (config `digest`), else
    /// the mapping is refused with VALIDATE_FAILED.
    pub digest: Option<[u8; 32]>,
}

impl MapParams {
    /// The mapping a launch plan asks for (`ResolvedMapping` of a clone's
    /// `golden` node) of image `golden` into `vmid`; `pool` pays for copies
    /// (the VM's gmem; ignored for read-only mappings).
    pub fn from_config(
        golden: u32,
        vmid: Vmid,
        m: &crate::config::ResolvedMapping,
        pool: Option<u32>,
    ) -> Self {
        let (cow, cow_quota) = match m.mode {
            crate::config::GoldenMode::CopyOnWrite { quota_pages } => {
                (true, Some(quota_pages as u64))
            }
            crate::config::GoldenMode::ReadOnly => (false, None),
        };
        MapParams {
            golden,
            vmid,
            offset: m.offset,
            ipa: m.ipa,
            size: m.size,
            cow,
            exec: m.executable,
            gmem: if cow { pool } else { None },
            cow_quota,
            fault_action: m.fault_action,
            digest: m.digest,
        }
    }

    /// A copy-on-write mapping paid by `gmem`, aborting unserved writes.
    pub fn cow(golden: u32, vmid: Vmid, offset: u64, ipa: u64, size: u64, gmem: u32) -> Self {
        MapParams {
            golden,
            vmid,
            offset,
            ipa,
            size,
            cow: true,
            exec: false,
            gmem: Some(gmem),
            cow_quota: None,
            fault_action: FaultAction::InjectAbort,
            digest: None,
        }
    }
    /// A read-only mapping (writes are never served).
    pub fn read_only(golden: u32, vmid: Vmid, offset: u64, ipa: u64, size: u64) -> Self {
        MapParams {
            cow: false,
            gmem: None,
            ..Self::cow(golden, vmid, offset, ipa, size, 0)
        }
    }
}

impl<P: Platform> Rm<P> {
    /// GOLDEN_MAP: map `golden[offset, offset+size)` read-only at `[ipa, ipa+size)` of `vmid`.
    ///
    /// Target: free → `Golden`. Image: +1 mapping. Who may: see the module docs. A
    /// protected VM takes only images its config names (DENIED); `digest` must match
    /// (VALIDATE_FAILED); a copy-on-write mapping needs a pool of the target VM.
    pub fn golden_map(&mut self, caller: Vmid, p: MapParams) -> Result<(), RmError> {
        // --- check ---
        let g = self.goldens.get(&p.golden).ok_or(RmError::HandleInvalid)?;
        if g.owner != caller {
            return Err(RmError::Denied);
        }
        if !self.vms.exists(p.vmid) || !self.may_manage(caller, p.vmid) {
            return Err(RmError::VmidInvalid);
        }
        if !self.ipa_range_ok(p.vmid, p.ipa, p.size)
            || !page_aligned(p.offset)
            || p.offset.checked_add(p.size).is_none_or(|e| e > g.size)
            || p.cow_quota == Some(0)
        {
            return Err(RmError::ArgumentInvalid);
        }
        let space = self.spaces.get(&p.vmid).ok_or(RmError::VmidInvalid)?;
        if p.cow {
            let gm = p.gmem.ok_or(RmError::ArgumentInvalid)?;
            if !space.pools.contains_key(&gm) {
                return Err(if self.pool_owner.contains_key(&gm) {
                    RmError::Denied
                } else {
                    RmError::HandleInvalid
                });
            }
        }
        if p.digest.is_some_and(|d| d != g.digest) {
            return Err(RmError::ValidateFailed);
        }
        if let Some(allowed) = self.protected.get(&p.vmid) {
            if !allowed.contains(&g.digest) {
                return Err(RmError::Denied);
            }
        }
        if !space.is_free(p.ipa, p.size) {
            return Err(RmError::MemInvalid);
        }
        if space.len() >= crate::space::MAX_RANGES_PER_VM {
            return Err(RmError::NoResource);
        }
        // Golden pages read-only, tagged so the fault path knows them.
        let map = GoldenMap {
            golden: p.golden,
            offset: p.offset,
            cow: p.cow,
            exec: p.exec,
            pool: if p.cow { p.gmem } else { None },
            cow_quota: p.cow_quota,
            copies: 0,
            fault_action: p.fault_action,
        };
        let mut plan = Plan::new();
        let end = p.offset + p.size;
        for r in &g.regions {
            let (lo, hi) = (r.offset.max(p.offset), (r.offset + r.size).min(end));
            if lo < hi {
                let ipa = p.ipa + (lo - p.offset);
                let pa = r.pa + (lo - r.offset);
                let rights = map.golden_rights();
                plan.map(
                    p.vmid,
                    ipa,
                    pa,
                    hi - lo,
                    rights,
                    MemKind::Normal,
                    Tag::Golden,
                );
            }
        }
        self.plat.apply(&plan).map_err(|_| RmError::MapFailed)?;
        // --- commit ---
        if let Some(space) = self.spaces.get_mut(&p.vmid) {
            space.insert(p.ipa, p.size, State::Golden(map));
        }
        if let Some(g) = self.goldens.get_mut(&p.golden) {
            g.mappings += 1;
        }
        Ok(())
    }

    /// GOLDEN_UNMAP: remove `vmid`'s mappings of `golden` in exactly `[ipa, ipa+size)`, which
    /// golden ranges of that image must cover (parts of a mapping may be unmapped).
    ///
    /// Target: `Golden` → free; its copies in the range go back to its pool. Who may: as
    /// GOLDEN_MAP.
    pub fn golden_unmap(
        &mut self,
        caller: Vmid,
        golden: u32,
        vmid: Vmid,
        ipa: u64,
        size: u64,
    ) -> Result<(), RmError> {
        // --- check ---
        let g = self.goldens.get(&golden).ok_or(RmError::HandleInvalid)?;
        if g.owner != caller {
            return Err(RmError::Denied);
        }
        if !self.vms.exists(vmid) || !self.may_manage(caller, vmid) {
            return Err(RmError::VmidInvalid);
        }
        if !self.ipa_range_ok(vmid, ipa, size) {
            return Err(RmError::ArgumentInvalid);
        }
        let space = self.spaces.get(&vmid).ok_or(RmError::VmidInvalid)?;
        let of_image =
            |r: &crate::space::Range| matches!(r.state, State::Golden(m) if m.golden == golden);
        if !space.covered_by(ipa, size, of_image) {
            return Err(RmError::MemInvalid);
        }
        // --- commit (freeing copies and unmapping never needs new tables for whole ranges;
        // the edges of a partial unmap may split a block) ---
        self.unmap_golden_range(vmid, ipa, size)
    }

    /// Unmap the golden ranges inside `[ipa, ipa+size)` of `vmid` (cut at its edges), give
    /// their copies back, and forget them.
    pub(crate) fn unmap_golden_range(
        &mut self,
        vmid: Vmid,
        ipa: u64,
        size: u64,
    ) -> Result<(), RmError> {
        let end = ipa + size;
        // Cut first, while the leaves still say which copies each part holds (cutting changes
        // no meaning, only the records' granularity).
        self.cut(vmid, ipa);
        self.cut(vmid, end);
        let ranges: Vec<(u64, u64, Option<u32>)> = self
            .spaces
            .get(&vmid)
            .map(|s| {
                s.overlapping(ipa, size)
                    .filter_map(|r| match r.state {
                        State::Golden(m) => Some((r.ipa, r.end(), m.pool)),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut copies: Vec<(u32, u64)> = Vec::new();
        self.plat.for_each_leaf_in(vmid, ipa, size, &mut |l| {
            if l.tag == Tag::Copy && l.ipa >= ipa && l.ipa < end {
                let pool = ranges
                    .iter()
                    .find(|(s, e, _)| *s <= l.ipa && l.ipa < *e)
                    .and_then(|p| p.2);
                copies.push((pool.unwrap_or(u32::MAX), l.pa));
            }
        });
        let mut plan = Plan::new();
        for (a, s) in self.mapped_spans(vmid, ipa, size) {
            plan.unmap(vmid, a, s);
        }
        self.plat.apply(&plan).map_err(|_| RmError::NoMem)?;
        for (pool, pa) in copies {
            self.charge(vmid, pool, -1);
            self.free_pages(core::iter::once(pa));
        }
        for (s, _, _) in ranges {
            self.forget_range(vmid, s);
        }
        Ok(())
    }

    /// GOLDEN_RELEASE: destroy an image nobody maps (MEM_INUSE otherwise).
    /// Its pages go home: a sealed parcel's pages back to its owner (mapped
    /// again where they were, or where the RM chooses; HLOS if the owner is
    /// gone), pool-made pages back to the partition.
    ///
    /// Who may: the image's owner (the VM that sealed it); once that VM is
    /// gone, HLOS (so an orphaned image can still be freed). Anyone else:
    /// DENIED.
    pub fn golden_release(&mut self, caller: Vmid, golden: u32) -> Result<(), RmError> {
        let g = self.goldens.get(&golden).ok_or(RmError::HandleInvalid)?;
        let allowed = g.owner == caller || (!self.vms.exists(g.owner) && caller == VMID_HLOS);
        if !allowed {
            return Err(RmError::Denied);
        }
        if g.mapped() {
            return Err(RmError::MemInuse);
        }
        let Some(g) = self.goldens.remove(&golden) else {
            return Err(RmError::HandleInvalid);
        };
        for h in g.home {
            match h {
                Home::Partition { pa, size } => {
                    self.free_pages((0..size / PAGE_SIZE).map(|i| pa + i * PAGE_SIZE));
                }
                Home::Owned {
                    vmid,
                    ipa,
                    size,
                    owned,
                } => self.return_home(vmid, ipa, size, owned),
            }
        }
        Ok(())
    }

    /// Give owned memory back to `vmid` (or HLOS if it is gone): mapped at `ipa` if that is
    /// free, else where the RM chooses.
    pub(crate) fn return_home(
        &mut self,
        vmid: Vmid,
        ipa: u64,
        size: u64,
        owned: crate::space::Owned,
    ) {
        let home = if self.vms.exists(vmid) {
            vmid
        } else {
            VMID_HLOS
        };
        let hi = self.cfg.ipa_alloc_end.min(self.plat.vm_ipa_limit(home));
        let base = self.cfg.ipa_alloc_base;
        let Some(space) = self.spaces.get_mut(&home) else {
            return;
        };
        let at = if home == vmid && space.is_free(ipa, size) {
            Some(ipa)
        } else {
            space.alloc(size, PAGE_SIZE, base, hi)
        };
        let Some(at) = at else {
            return;
        };
        let mut plan = Plan::new();
        plan.map(
            home,
            at,
            owned.pa,
            size,
            owned.rights,
            owned.kind,
            Tag::None,
        );
        if self.plat.apply(&plan).is_ok() {
            if let Some(space) = self.spaces.get_mut(&home) {
                space.insert(at, size, State::Owned(owned));
                space.coalesce(at);
            }
        }
    }
}
