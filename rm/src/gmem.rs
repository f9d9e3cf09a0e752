//! gmem pools: GMEM_CREATE, GMEM_BIND, GMEM_UNBIND.
//!
//! A pool is a quota of pages charged to one VM. A binding maps a pool
//! range at a gfn range of that VM, populated at bind (eager) or page by
//! page on first touch (demand paging, see [`crate::cow`]). Pool pages are
//! only ever mapped in the pool's VM, never in HLOS; a pool cannot belong to
//! HLOS.

use alloc::vec::Vec;

use gunyah_rm_abi::RmError;

use crate::memext::{Binding, Gmem, MAX_GMEM_PER_VM, MAX_RANGES_PER_VM};
use crate::memory::page_aligned;
use crate::plan::Plan;
use crate::platform::{MemKind, Platform, Rights, Tag, Vmid, PAGE_SIZE};
use crate::service::Rm;
use crate::vm::VMID_HLOS;

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

    pub(crate) fn ipa_range_ok(&self, ipa: u64, size: u64) -> bool {
        page_aligned(ipa)
            && page_aligned(size)
            && size != 0
            && ipa
                .checked_add(size)
                .is_some_and(|e| e <= self.plat.ipa_limit())
    }

    /// A gmem pool, by id.
    pub fn gmem(&self, id: u32) -> Option<&Gmem> {
        self.ext.gmems.get(&id)
    }

    /// A binding, by the handle GMEM_BIND returned.
    pub fn gmem_binding(&self, handle: u32) -> Option<&Binding> {
        self.ext.bindings.get(&handle)
    }

    /// GMEM_CREATE: a pool of `size` bytes (= its quota) charged to `owner`
    /// (0 = the caller). The caller must be `owner`'s owner (a VM cannot set
    /// its own quota); HLOS may not own a pool (its pages would be mapped in
    /// the host). At most [`MAX_GMEM_PER_VM`] pools per VM (NORESOURCE).
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
        if self.ext.gmems.values().filter(|g| g.owner == owner).count() >= MAX_GMEM_PER_VM {
            return Err(RmError::NoResource);
        }
        let id = self.ext.alloc_gmem_id().ok_or(RmError::NoResource)?;
        self.ext.gmems.insert(
            id,
            Gmem {
                id,
                owner,
                quota_pages: size / PAGE_SIZE,
                ..Gmem::default()
            },
        );
        self.ext.next_gmem = id.wrapping_add(1);
        Ok(id)
    }

    /// GMEM_BIND: bind `gmem[offset, offset+size)` at `[ipa, ipa+size)` of
    /// the pool's VM. Eager bindings are populated (zeroed pages, charged
    /// to the pool) and mapped now, all or nothing. Returns the binding's
    /// handle.
    pub fn gmem_bind(&mut self, caller: Vmid, b: BindParams) -> Result<u32, RmError> {
        let g = self.ext.gmems.get(&b.gmem).ok_or(RmError::HandleInvalid)?;
        if !self.vms.exists(b.vmid) {
            return Err(RmError::VmidInvalid);
        }
        if !self.may_manage(caller, g.owner) {
            return Err(RmError::Denied);
        }
        if b.vmid != g.owner {
            return Err(RmError::Denied);
        }
        if !matches!(b.rights.0, 4..=7) || !self.ipa_range_ok(b.ipa, b.size) {
            return Err(RmError::ArgumentInvalid);
        }
        let pool_bytes = g.quota_pages * PAGE_SIZE;
        if !page_aligned(b.offset) || b.offset.checked_add(b.size).is_none_or(|e| e > pool_bytes) {
            return Err(RmError::ArgumentInvalid);
        }
        let overlap = self.ext.bindings.values().any(|o| {
            o.gmem == b.gmem && o.offset < b.offset + b.size && b.offset < o.offset + o.size
        });
        if overlap {
            return Err(RmError::MemInuse);
        }
        let m = self.mem.get(&b.vmid).ok_or(RmError::VmidInvalid)?;
        if !m.ipa_free(b.ipa, b.size) {
            return Err(RmError::MemInvalid);
        }
        if self.ext.ranges_of(b.vmid) >= MAX_RANGES_PER_VM {
            return Err(RmError::NoResource);
        }
        let npages = b.size / PAGE_SIZE;
        if !b.demand && !g.has_room(npages) {
            return Err(RmError::NoMem);
        }
        let handle = self.ext.alloc_binding_handle().ok_or(RmError::NoResource)?;
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
        let g = self
            .ext
            .gmems
            .get_mut(&b.gmem)
            .ok_or(RmError::HandleInvalid)?;
        for &(ipa, pa) in &pages {
            g.pages.insert(b.offset + (ipa - b.ipa), pa);
        }
        if let Some(m) = self.mem.get_mut(&b.vmid) {
            m.reserve(b.ipa, b.size);
        }
        self.ext.bindings.insert(
            handle,
            Binding {
                handle,
                gmem: b.gmem,
                vmid: b.vmid,
                ipa: b.ipa,
                size: b.size,
                offset: b.offset,
                rights: b.rights,
                demand: b.demand,
            },
        );
        self.ext.binding_index.insert((b.vmid, b.ipa), handle);
        self.ext.next_binding = handle.wrapping_add(1);
        Ok(handle)
    }

    /// GMEM_UNBIND: remove the binding of `gmem` at exactly `[ipa, ipa+size)`
    /// of `vmid`. Its pages are unmapped, zeroed and returned (uncharged).
    pub fn gmem_unbind(
        &mut self,
        caller: Vmid,
        gmem: u32,
        vmid: Vmid,
        ipa: u64,
        size: u64,
    ) -> Result<(), RmError> {
        let g = self.ext.gmems.get(&gmem).ok_or(RmError::HandleInvalid)?;
        if !self.vms.exists(vmid) {
            return Err(RmError::VmidInvalid);
        }
        if !self.may_manage(caller, g.owner) {
            return Err(RmError::Denied);
        }
        let h = *self
            .ext
            .binding_index
            .get(&(vmid, ipa))
            .ok_or(RmError::MemInvalid)?;
        let b = *self.ext.bindings.get(&h).ok_or(RmError::MemInvalid)?;
        if b.gmem != gmem || b.size != size {
            return Err(RmError::MemInvalid);
        }
        self.drop_binding(h);
        Ok(())
    }

    /// Remove binding `h`: unmap its populated pages, zero them and give
    /// them back to the partition (uncharging the pool), free its IPAs.
    pub(crate) fn drop_binding(&mut self, h: u32) {
        let Some(b) = self.ext.bindings.remove(&h) else {
            return;
        };
        self.ext.binding_index.remove(&(b.vmid, b.ipa));
        let mut pages: Vec<(u64, u64)> = Vec::new();
        if let Some(g) = self.ext.gmems.get_mut(&b.gmem) {
            let offs: Vec<u64> = g
                .pages
                .range(b.offset..b.offset + b.size)
                .map(|(o, _)| *o)
                .collect();
            for o in offs {
                if let Some(pa) = g.pages.remove(&o) {
                    pages.push((b.ipa + (o - b.offset), pa));
                }
            }
        }
        for (ipa, _, size) in runs(&pages) {
            let _ = self.plat.unmap(b.vmid, ipa, size);
        }
        self.free_pages(pages.iter().map(|p| p.1));
        if let Some(m) = self.mem.get_mut(&b.vmid) {
            m.unreserve(b.ipa, b.size);
        }
    }

    /// Zero pages and give them back to the partition.
    pub(crate) fn free_pages(&mut self, pas: impl Iterator<Item = u64>) {
        for pa in pas {
            self.plat.zero(pa, PAGE_SIZE);
            self.plat.free_page(pa);
        }
    }

    /// Split binding `h` so that a binding starts at `at` (inside it).
    /// The first part keeps the handle; returns the second part's handle.
    pub(crate) fn split_binding(&mut self, h: u32, at: u64) -> Result<u32, RmError> {
        let b = *self.ext.bindings.get(&h).ok_or(RmError::HandleInvalid)?;
        if at <= b.ipa || at >= b.ipa + b.size {
            return Ok(h);
        }
        let nh = self.ext.alloc_binding_handle().ok_or(RmError::NoResource)?;
        let first = at - b.ipa;
        let tail = Binding {
            handle: nh,
            ipa: at,
            size: b.size - first,
            offset: b.offset + first,
            ..b
        };
        if let Some(x) = self.ext.bindings.get_mut(&h) {
            x.size = first;
        }
        self.ext.bindings.insert(nh, tail);
        self.ext.binding_index.insert((b.vmid, at), nh);
        self.ext.next_binding = nh.wrapping_add(1);
        Ok(nh)
    }
}
