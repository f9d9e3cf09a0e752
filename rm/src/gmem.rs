//! gmem pools: GMEM_CREATE, GMEM_BIND, GMEM_UNBIND.
//!
//! A pool ([`crate::space::Pool`]) is a quota of pages charged to one VM. A binding maps a
//! pool range at a gfn range of that VM, populated at bind (eager) or page by page on first
//! touch (demand paging, see [`crate::cow`]). Pool pages are only ever mapped in the pool's VM,
//! never in HLOS; a pool cannot belong to HLOS.
//!
//! * [`Rm::gmem_create`] — a new pool charged to a VM, by its manager.
//! * [`Rm::gmem_bind`] — the pool's VM: free → `Bound(pool, offset, demand)`; pool: offsets
//!   bound, eager pages charged.
//! * [`Rm::gmem_unbind`] — the pool's VM: `Bound` → free; its pages are zeroed and given back,
//!   uncharged.

use alloc::vec::Vec;

use gunyah_rm_abi::RmError;

use crate::plan::Plan;
use crate::platform::{MemKind, Platform, Rights, Tag, Vmid, PAGE_SIZE};
use crate::service::Rm;
use crate::space::{page_aligned, Binding, Pool, State, MAX_RANGES_PER_VM};
use crate::vm::VMID_HLOS;

/// Most pools charged to one VM (bounds the RM's records, as
/// `MAX_MEMPARCEL_PER_VM` does for parcels).
pub const MAX_GMEM_PER_VM: usize = 64;

/// A GMEM_BIND request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindParams {
    /// The pool.
    pub gmem: u32,
    /// The VM (must be the pool's owner).
    pub vmid: Vmid,
    /// Stage-2 rights (must include read).
    pub rights: Rights,
    /// Populate on first touch instead of now.
    pub demand: bool,
    /// Pool offset.
    pub offset: u64,
    /// First IPA.
    pub ipa: u64,
    /// Bytes.
    pub size: u64,
}

/// Pages in a 2 MiB block: eager bindings allocate runs of this many.
const BLOCK_PAGES: u64 = 512;

/// Group pages `(ipa, pa)` sorted by IPA into runs contiguous in both.
pub(crate) fn runs(pages: &[(u64, u64)]) -> Vec<(u64, u64, u64)> {
    let mut out: Vec<(u64, u64, u64)> = Vec::new();
    for &(ipa, pa) in pages {
        match out.last_mut() {
            Some(l) if l.0 + l.2 == ipa && l.1 + l.2 == pa => l.2 += PAGE_SIZE,
            _ => out.push((ipa, pa, PAGE_SIZE)),
        }
    }
    out
}

impl<P: Platform> Rm<P> {
    /// Whether `caller` may manage `vmid`'s memory: it is the VM itself or
    /// the VM's owner.
    pub(crate) fn may_manage(&self, caller: Vmid, vmid: Vmid) -> bool {
        self.vms
            .get(vmid)
            .is_some_and(|v| v.owner == caller || vmid == caller)
    }

    /// Whether `[ipa, ipa+size)` is a page-aligned, non-empty range inside `vmid`'s IPA space.
    pub(crate) fn ipa_range_ok(&self, vmid: Vmid, ipa: u64, size: u64) -> bool {
        page_aligned(ipa)
            && page_aligned(size)
            && size != 0
            && ipa
                .checked_add(size)
                .is_some_and(|e| e <= self.plat.vm_ipa_limit(vmid))
    }

    /// A gmem pool, by id.
    pub fn gmem(&self, id: u32) -> Option<&Pool> {
        let owner = self.pool_owner.get(&id)?;
        self.spaces.get(owner)?.pools.get(&id)
    }

    /// The binding GMEM_BIND returned `handle` for: (VM, first IPA, bytes, binding).
    pub fn gmem_binding(&self, handle: u32) -> Option<(Vmid, u64, u64, Binding)> {
        let &(vmid, ipa) = self.bindings.get(&handle)?;
        let r = self.spaces.get(&vmid)?.at(ipa)?;
        match r.state {
            State::Bound(b) if b.handle == handle => Some((vmid, r.ipa, r.size, b)),
            _ => None,
        }
    }

    /// GMEM_CREATE: a pool of `size` bytes (= its quota) charged to `owner`
    /// (0 = the caller).
    ///
    /// Who may: `owner`'s manager (a VM cannot set its own quota: DENIED); HLOS may not own a
    /// pool (its pages would be mapped in the host: DENIED). At most [`MAX_GMEM_PER_VM`] pools
    /// per VM (NORESOURCE).
    pub fn gmem_create(
        &mut self,
        caller: Vmid,
        size: u64,
        flags: u32,
        owner: Vmid,
    ) -> Result<u32, RmError> {
        let owner = if owner == 0 { caller } else { owner };
        if flags != 0 || size == 0 || !page_aligned(size) {
            return Err(RmError::ArgumentInvalid);
        }
        if !self.vms.exists(owner) {
            return Err(RmError::VmidInvalid);
        }
        if owner == VMID_HLOS || owner == caller {
            return Err(RmError::Denied);
        }
        if !self.may_manage(caller, owner) {
            return Err(RmError::VmidInvalid);
        }
        let space = self.spaces.get(&owner).ok_or(RmError::VmidInvalid)?;
        if space.pools.len() >= MAX_GMEM_PER_VM {
            return Err(RmError::NoResource);
        }
        let id = crate::service::free_id(&self.pool_owner, self.next_pool, 0)
            .ok_or(RmError::NoResource)?;
        self.pool_owner.insert(id, owner);
        if let Some(space) = self.spaces.get_mut(&owner) {
            space.pools.insert(
                id,
                Pool {
                    id,
                    owner,
                    quota_pages: size / PAGE_SIZE,
                    ..Pool::default()
                },
            );
        }
        self.next_pool = id.wrapping_add(1);
        Ok(id)
    }

    /// GMEM_BIND: bind `gmem[offset, offset+size)` at `[ipa, ipa+size)` of
    /// the pool's VM. Eager bindings are populated (zeroed pages, charged
    /// to the pool) and mapped now, all or nothing. Returns the binding's
    /// handle.
    ///
    /// Pool's VM: free → `Bound`. Who may: the pool's VM or its manager (DENIED otherwise), and
    /// only into the pool's VM (DENIED).
    pub fn gmem_bind(&mut self, caller: Vmid, b: BindParams) -> Result<u32, RmError> {
        // --- check ---
        let g = self.gmem(b.gmem).ok_or(RmError::HandleInvalid)?.clone();
        if !self.vms.exists(b.vmid) {
            return Err(RmError::VmidInvalid);
        }
        if !self.may_manage(caller, g.owner) || b.vmid != g.owner {
            return Err(RmError::Denied);
        }
        if !matches!(b.rights.0, 4..=7) || !self.ipa_range_ok(b.vmid, b.ipa, b.size) {
            return Err(RmError::ArgumentInvalid);
        }
        let pool_bytes = g.quota_pages * PAGE_SIZE;
        if !page_aligned(b.offset) || b.offset.checked_add(b.size).is_none_or(|e| e > pool_bytes) {
            return Err(RmError::ArgumentInvalid);
        }
        if g.bound_overlaps(b.offset, b.size) {
            return Err(RmError::MemInuse);
        }
        let space = self.spaces.get(&b.vmid).ok_or(RmError::VmidInvalid)?;
        if !space.is_free(b.ipa, b.size) {
            return Err(RmError::MemInvalid);
        }
        if space.len() >= MAX_RANGES_PER_VM {
            return Err(RmError::NoResource);
        }
        let npages = b.size / PAGE_SIZE;
        if !b.demand && !g.has_room(npages) {
            return Err(RmError::NoMem);
        }
        // --- allocate the pages, then prepare and commit one plan ---
        let mut pages: Vec<(u64, u64)> = Vec::new();
        if !b.demand {
            let mut i = 0;
            while i < npages {
                let ipa = b.ipa + i * PAGE_SIZE;
                // A 2 MiB-aligned, 2 MiB-sized piece gets one aligned run of
                // pages, so it (and a golden image sealed from it) can be
                // mapped with a block; otherwise, or when the platform has no
                // such run, page by page.
                if ipa.is_multiple_of(BLOCK_PAGES * PAGE_SIZE) && npages - i >= BLOCK_PAGES {
                    if let Some(pa) = self.plat.alloc_contiguous(BLOCK_PAGES) {
                        self.plat.zero(pa, BLOCK_PAGES * PAGE_SIZE);
                        pages.extend(
                            (0..BLOCK_PAGES).map(|k| (ipa + k * PAGE_SIZE, pa + k * PAGE_SIZE)),
                        );
                        i += BLOCK_PAGES;
                        continue;
                    }
                }
                match self.plat.alloc_page() {
                    Some(pa) => {
                        self.plat.zero(pa, PAGE_SIZE);
                        pages.push((ipa, pa));
                        i += 1;
                    }
                    None => {
                        self.free_pages(pages.iter().map(|p| p.1));
                        return Err(RmError::NoMem);
                    }
                }
            }
            let mut plan = Plan::new();
            for (ipa, pa, size) in runs(&pages) {
                plan.map(b.vmid, ipa, pa, size, b.rights, MemKind::Normal, Tag::None);
            }
            if self.plat.apply(&plan).is_err() {
                self.free_pages(pages.iter().map(|p| p.1));
                return Err(RmError::NoMem);
            }
        }
        // --- commit ---
        let handle = self.alloc_binding_handle();
        let binding = Binding {
            handle,
            pool: b.gmem,
            offset: b.offset,
            rights: b.rights,
            demand: b.demand,
        };
        if let Some(space) = self.spaces.get_mut(&b.vmid) {
            space.insert(b.ipa, b.size, State::Bound(binding));
            if let Some(p) = space.pools.get_mut(&b.gmem) {
                p.bound.insert(b.offset, b.size);
                p.used_pages += pages.len() as u64;
            }
        }
        self.bindings.insert(handle, (b.vmid, b.ipa));
        Ok(handle)
    }

    /// GMEM_UNBIND: remove the binding of `gmem` at exactly `[ipa, ipa+size)`
    /// of `vmid`. Its pages are unmapped, zeroed and returned (uncharged).
    ///
    /// `vmid`: `Bound` → free. Who may: the pool's VM or its manager (DENIED otherwise).
    pub fn gmem_unbind(
        &mut self,
        caller: Vmid,
        gmem: u32,
        vmid: Vmid,
        ipa: u64,
        size: u64,
    ) -> Result<(), RmError> {
        let g = self.gmem(gmem).ok_or(RmError::HandleInvalid)?;
        if !self.vms.exists(vmid) {
            return Err(RmError::VmidInvalid);
        }
        if !self.may_manage(caller, g.owner) {
            return Err(RmError::Denied);
        }
        let r = self
            .spaces
            .get(&vmid)
            .and_then(|s| s.at(ipa))
            .copied()
            .ok_or(RmError::MemInvalid)?;
        match r.state {
            State::Bound(b) if r.ipa == ipa && r.size == size && b.pool == gmem => {}
            _ => return Err(RmError::MemInvalid),
        }
        self.drop_bound(vmid, ipa)
    }

    /// Unmap the bound range starting at `ipa` of `vmid`, give its pages back (zeroed,
    /// uncharged) and forget it.
    pub(crate) fn drop_bound(&mut self, vmid: Vmid, ipa: u64) -> Result<(), RmError> {
        let Some(r) = self.spaces.get(&vmid).and_then(|s| s.at(ipa)).copied() else {
            return Ok(());
        };
        let State::Bound(b) = r.state else {
            return Ok(());
        };
        let mut pages: Vec<u64> = Vec::new();
        let end = r.end();
        self.plat.for_each_leaf_in(vmid, r.ipa, r.size, &mut |l| {
            let (lo, hi) = (l.ipa.max(r.ipa), (l.ipa + l.size).min(end));
            pages.extend(
                (lo..hi)
                    .step_by(PAGE_SIZE as usize)
                    .map(|a| l.pa + (a - l.ipa)),
            );
        });
        let mut plan = Plan::new();
        for (a, s) in self.mapped_spans(vmid, r.ipa, r.size) {
            plan.unmap(vmid, a, s);
        }
        self.plat.apply(&plan).map_err(|_| RmError::NoMem)?;
        self.charge(vmid, b.pool, -(pages.len() as i64));
        self.free_pages(pages.into_iter());
        self.forget_range(vmid, ipa);
        Ok(())
    }
}
