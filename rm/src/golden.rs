//! Golden images: GOLDEN_SEAL, GOLDEN_MAP, GOLDEN_UNMAP, GOLDEN_RELEASE and
//! VM_MEM_STATS.
//!
//! Sealing takes pages away from everyone who could write them (a parcel's
//! owner, or a template VM's bindings and copies) and hands them to the
//! golden registry, which never maps them writable again. A golden mapping
//! maps part of an image read-only into a VM (with 2 MiB / 1 GiB blocks
//! where IPA and PA alignment allow), with a CoW policy and the pool that
//! pays for copies; [`crate::cow`] serves the write faults.

use alloc::vec::Vec;

use gunyah_rm_abi::RmError;
use sha2::{Digest, Sha256};

use crate::config::FaultAction;
use crate::gmem::runs;
use crate::memext::{Golden, GoldenMapping, GoldenRegion, Home, PrivateKind, PrivatePage};
use crate::memory::{page_aligned, OwnedRange};
use crate::memparcel::{MemType, ParcelState, TransType};
use crate::plan::Plan;
use crate::platform::{MemKind, Platform, Tag, Vmid, PAGE_SIZE};
use crate::service::Rm;
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

/// VM_MEM_STATS figures, in 4 KiB pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemStats {
    /// Pool pages mapped into the VM (bindings and demand-zero pages).
    pub private_pages: u64,
    /// Golden pages mapped read-only (not copied).
    pub golden_mapped_pages: u64,
    /// Private copies made by CoW.
    pub cow_copied_pages: u64,
    /// Quota of the pools charged to the VM.
    pub quota_pages: u64,
    /// Pages charged to those pools.
    pub quota_used_pages: u64,
}

/// Where a page of a template range comes from at seal.
enum Source {
    /// A populated page of pool `gmem` at pool offset `offset`.
    Pool { gmem: u32, offset: u64, pa: u64 },
    /// A private page (CoW copy or demand-zero).
    Private { pa: u64 },
    /// A fresh page: zeroed (`copy_from` None) or a copy of a golden page.
    Fresh { copy_from: Option<u64> },
}

impl<P: Platform> Rm<P> {
    /// A golden image, by id.
    pub fn golden(&self, id: u32) -> Option<&Golden> {
        self.ext.goldens.get(&id)
    }

    /// `vmid`'s golden mappings, in IPA order.
    pub fn golden_mappings(&self, vmid: Vmid) -> impl Iterator<Item = &GoldenMapping> {
        self.ext
            .maps
            .range((vmid, 0)..=(vmid, u64::MAX))
            .map(|(_, m)| m)
    }

    /// Make `vmid` protected: it accepts a golden mapping only of an image
    /// whose SHA-256 digest is in `digests` (from its config). An empty
    /// list refuses every golden mapping.
    pub fn set_vm_protected(&mut self, vmid: Vmid, digests: Vec<[u8; 32]>) -> Result<(), RmError> {
        if !self.vms.exists(vmid) {
            return Err(RmError::VmidInvalid);
        }
        self.ext.protected.insert(vmid, digests);
        Ok(())
    }

    fn digest_of(&self, regions: &[GoldenRegion]) -> [u8; 32] {
        let mut h = Sha256::new();
        let mut buf = [0u8; PAGE_SIZE as usize];
        for r in regions {
            let mut off = 0;
            while off < r.size {
                self.plat.read(r.pa + off, &mut buf);
                h.update(buf);
                off += PAGE_SIZE;
            }
        }
        h.finalize().into()
    }

    fn insert_golden(
        &mut self,
        owner: Vmid,
        regions: Vec<GoldenRegion>,
        home: Vec<Home>,
    ) -> Result<(u32, [u8; 32]), RmError> {
        let id = self.ext.alloc_golden_id().ok_or(RmError::NoResource)?;
        let digest = self.digest_of(&regions);
        let size = regions.iter().map(|r| r.size).sum();
        self.ext.goldens.insert(
            id,
            Golden {
                id,
                owner,
                digest,
                size,
                regions,
                home,
                cover: Default::default(),
                copied: Default::default(),
            },
        );
        self.ext.next_golden = id.wrapping_add(1);
        Ok((id, digest))
    }

    /// GOLDEN_SEAL of a parcel: its owner gives the parcel's memory to the
    /// golden registry. The parcel must be final and accepted by nobody
    /// (MEM_INUSE otherwise); a SHARE parcel's owner loses its mapping. The
    /// parcel is consumed. Returns the golden id and the SHA-256 digest of
    /// the contents in SGL order.
    pub fn golden_seal(
        &mut self,
        caller: Vmid,
        handle: u32,
        flags: u32,
    ) -> Result<(u32, [u8; 32]), RmError> {
        let p = self.parcels.get(handle).ok_or(RmError::HandleInvalid)?;
        if p.owner != caller {
            return Err(RmError::Denied);
        }
        if flags != 0 || p.mem_type != MemType::Normal {
            return Err(RmError::ArgumentInvalid);
        }
        match p.state {
            ParcelState::Init => return Err(RmError::Denied),
            ParcelState::Shared => return Err(RmError::MemInuse),
            ParcelState::Sharing => {}
        }
        let owner = p.owner;
        let (trans, regions_p) = (p.trans, p.regions.clone());
        let m = self.mem.get(&owner).ok_or(RmError::MemInvalid)?;
        // Home records: the owner's owned pieces (with their origin).
        let mut home = Vec::new();
        for r in &regions_p {
            let end = r.owner_ipa + r.size;
            for o in m.owned.range(..end).map(|(_, o)| o) {
                let (lo, hi) = (o.ipa.max(r.owner_ipa), (o.ipa + o.size).min(end));
                if lo < hi {
                    home.push(Home::Owned {
                        vmid: owner,
                        range: OwnedRange {
                            ipa: lo,
                            pa: o.pa + (lo - o.ipa),
                            size: hi - lo,
                            ..*o
                        },
                    });
                }
            }
        }
        let covered: u64 = home
            .iter()
            .map(|h| match h {
                Home::Owned { range, .. } => range.size,
                Home::Partition { size, .. } => *size,
            })
            .sum();
        if covered != regions_p.iter().map(|r| r.size).sum::<u64>() {
            return Err(RmError::MemInvalid);
        }
        let id_ok = self.ext.alloc_golden_id().is_some();
        if !id_ok {
            return Err(RmError::NoResource);
        }
        // --- commit ---
        if trans == TransType::Share {
            // Revoke the owner's (writable) mapping.
            let mut plan = Plan::new();
            for r in &regions_p {
                plan.unmap(owner, r.owner_ipa, r.size);
            }
            self.plat.apply(&plan).map_err(|_| RmError::MapFailed)?;
        }
        let mut regions = Vec::new();
        let mut off = 0;
        for r in &regions_p {
            regions.push(GoldenRegion {
                offset: off,
                pa: r.pa,
                size: r.size,
            });
            off += r.size;
            self.parcels.owner_index.remove(&(owner, r.owner_ipa));
            if let Some(m) = self.mem.get_mut(&owner) {
                m.remove_owned(r.owner_ipa, r.size);
            }
        }
        self.parcels.parcels.remove(&handle);
        if let Some(c) = self.parcels.counts.get_mut(&owner) {
            *c -= 1;
            if *c == 0 {
                self.parcels.counts.remove(&owner);
            }
        }
        self.insert_golden(owner, merge_regions(regions), home)
    }

    /// Seal ranges of a template VM's memory into a golden image (config
    /// `golden { role = "template"; seal-ranges }`). Each page must lie in
    /// one of the VM's gmem bindings or golden mappings (a clone may be the
    /// template of further clones). Pool pages and private copies move into
    /// the image (their pools are uncharged); unpopulated pages become zero
    /// pages and still-shared golden pages are copied, so the new image
    /// owns every page. The ranges leave the VM (bindings and mappings are
    /// cut around them); map the image back with [`Rm::golden_map`] to keep
    /// reading it. The image is the ranges' concatenation in order.
    pub fn golden_seal_vm(
        &mut self,
        caller: Vmid,
        vmid: Vmid,
        ranges: &[(u64, u64)],
    ) -> Result<(u32, [u8; 32]), RmError> {
        if !self.vms.exists(vmid) {
            return Err(RmError::VmidInvalid);
        }
        if !self.may_manage(caller, vmid) {
            return Err(RmError::VmidInvalid);
        }
        if vmid == VMID_HLOS || self.ext.protected.contains_key(&vmid) {
            return Err(RmError::Denied);
        }
        if ranges.is_empty() {
            return Err(RmError::ArgumentInvalid);
        }
        for (i, &(ipa, size)) in ranges.iter().enumerate() {
            if !self.ipa_range_ok(ipa, size) {
                return Err(RmError::ArgumentInvalid);
            }
            if ranges[..i]
                .iter()
                .any(|&(b, s)| b < ipa + size && ipa < b + s)
            {
                return Err(RmError::ArgumentInvalid);
            }
        }
        // --- check: where every page comes from ---
        let mut plan: Vec<(u64, Source)> = Vec::new();
        for &(ipa, size) in ranges {
            let mut a = ipa;
            while a < ipa + size {
                let src = if let Some(b) = self.ext.binding_at(vmid, a) {
                    let offset = b.offset + (a - b.ipa);
                    match self
                        .ext
                        .gmems
                        .get(&b.gmem)
                        .and_then(|g| g.pages.get(&offset))
                    {
                        Some(&pa) => Source::Pool {
                            gmem: b.gmem,
                            offset,
                            pa,
                        },
                        None => Source::Fresh { copy_from: None },
                    }
                } else if let Some(m) = self.ext.mapping_at(vmid, a) {
                    match self.ext.private.get(&(vmid, a)) {
                        Some(p) => Source::Private { pa: p.pa },
                        None => {
                            let g = self.ext.goldens.get(&m.golden).ok_or(RmError::MemInvalid)?;
                            let pa = g.pa_of(m.offset + (a - m.ipa)).ok_or(RmError::MemInvalid)?;
                            Source::Fresh {
                                copy_from: Some(pa),
                            }
                        }
                    }
                } else if let Some(p) = self.ext.private.get(&(vmid, a)) {
                    Source::Private { pa: p.pa }
                } else {
                    return Err(RmError::MemInvalid);
                };
                plan.push((a, src));
                a += PAGE_SIZE;
            }
        }
        if self.ext.alloc_golden_id().is_none() {
            return Err(RmError::NoResource);
        }
        let fresh = plan
            .iter()
            .filter(|(_, s)| matches!(s, Source::Fresh { .. }))
            .count();
        let mut new_pages = Vec::with_capacity(fresh);
        for _ in 0..fresh {
            match self.plat.alloc_page() {
                Some(pa) => new_pages.push(pa),
                None => {
                    self.free_pages(new_pages.into_iter());
                    return Err(RmError::NoMem);
                }
            }
        }
        // Cut bindings and mappings at the range edges (same meaning, more records).
        for &(ipa, size) in ranges {
            for at in [ipa, ipa + size] {
                let b = self.ext.binding_at(vmid, at).map(|b| b.handle);
                if let Some(h) = b {
                    if self.split_binding(h, at).is_err() {
                        self.free_pages(new_pages.into_iter());
                        return Err(RmError::NoResource);
                    }
                }
                self.split_mapping(vmid, at);
            }
        }
        // --- commit ---
        let mut pages: Vec<u64> = Vec::with_capacity(plan.len());
        let mut fresh_iter = new_pages.into_iter();
        for (a, src) in &plan {
            let pa = match *src {
                Source::Pool { gmem, offset, pa } => {
                    if let Some(g) = self.ext.gmems.get_mut(&gmem) {
                        g.pages.remove(&offset);
                    }
                    pa
                }
                Source::Private { pa } => {
                    self.forget_private(vmid, *a);
                    pa
                }
                Source::Fresh { copy_from } => {
                    let pa = fresh_iter.next().unwrap_or(0);
                    match copy_from {
                        Some(src) => self.plat.copy(pa, src, PAGE_SIZE),
                        None => self.plat.zero(pa, PAGE_SIZE),
                    };
                    pa
                }
            };
            pages.push(pa);
        }
        for &(ipa, size) in ranges {
            self.unmap_present(vmid, ipa, size);
            // Records wholly inside the range go.
            let hs: Vec<u32> = self
                .ext
                .binding_index
                .range((vmid, ipa)..(vmid, ipa + size))
                .map(|(_, h)| *h)
                .collect();
            for h in hs {
                // Its pages in the range were taken above.
                self.drop_binding(h);
            }
            let ms: Vec<u64> = self
                .ext
                .maps
                .range((vmid, ipa)..(vmid, ipa + size))
                .map(|(k, _)| k.1)
                .collect();
            for m in ms {
                self.drop_mapping(vmid, m);
            }
        }
        let mut regions = Vec::new();
        for (i, &pa) in pages.iter().enumerate() {
            regions.push(GoldenRegion {
                offset: i as u64 * PAGE_SIZE,
                pa,
                size: PAGE_SIZE,
            });
        }
        let regions = merge_regions(regions);
        let home = regions
            .iter()
            .map(|r| Home::Partition {
                pa: r.pa,
                size: r.size,
            })
            .collect();
        // The image belongs to the VM that sealed it (the template's manager),
        // not to the template: the template cannot map it elsewhere.
        self.insert_golden(caller, regions, home)
    }

    /// Remove the private page of `vmid` at `ipa` from the records (its
    /// pool is uncharged, its golden page's share count goes back up); the
    /// caller owns the page afterwards.
    pub(crate) fn forget_private(&mut self, vmid: Vmid, ipa: u64) -> Option<PrivatePage> {
        let p = self.ext.private.remove(&(vmid, ipa))?;
        if let Some(g) = self.ext.gmems.get_mut(&p.gmem) {
            g.anon.remove(&p.pa);
        }
        match p.kind {
            PrivateKind::Cow { golden, page } => {
                if let Some(g) = self.ext.goldens.get_mut(&golden) {
                    if let Some(c) = g.copied.get_mut(&page) {
                        *c -= 1;
                        if *c == 0 {
                            g.copied.remove(&page);
                        }
                    }
                }
                if let Some(m) = self.ext.maps.range_mut((vmid, 0)..=(vmid, ipa)).next_back() {
                    if m.1.contains(ipa) {
                        m.1.copies = m.1.copies.saturating_sub(1);
                    }
                }
            }
            PrivateKind::DemandZero => {
                if let Some(m) = self.mem.get_mut(&vmid) {
                    m.unreserve(ipa, PAGE_SIZE);
                }
            }
        }
        Some(p)
    }

    /// Unmap whatever is mapped in `[ipa, ipa+size)` of `vmid`.
    pub(crate) fn unmap_present(&mut self, vmid: Vmid, ipa: u64, size: u64) {
        let end = ipa + size;
        let mut cur = ipa;
        let mut spans: Vec<(u64, u64)> = Vec::new();
        while cur < end {
            match self.plat.query(vmid, cur) {
                Some(l) => {
                    let hi = (l.ipa + l.size).min(end);
                    match spans.last_mut() {
                        Some(s) if s.0 + s.1 == cur => s.1 += hi - cur,
                        _ => spans.push((cur, hi - cur)),
                    }
                    cur = hi;
                }
                None => cur += PAGE_SIZE,
            }
        }
        for (a, s) in spans {
            let _ = self.plat.unmap(vmid, a, s);
        }
    }

    /// Split `vmid`'s golden mapping covering `at` so that one starts at `at`.
    pub(crate) fn split_mapping(&mut self, vmid: Vmid, at: u64) {
        let Some(m) = self.ext.mapping_at(vmid, at).copied() else {
            return;
        };
        if at == m.ipa {
            return;
        }
        let tail_copies = self
            .ext
            .private
            .range((vmid, at)..(vmid, m.ipa + m.size))
            .count() as u64;
        let first = at - m.ipa;
        let first_copies = m.copies - tail_copies;
        // A per-mapping copy quota is shared out so the parts together allow
        // exactly what the whole did: each keeps its copies, and the unused
        // headroom is split in proportion to size.
        let quotas = m.cow_quota.map(|q| {
            let headroom = q.saturating_sub(m.copies);
            let tail_room = (headroom as u128 * (m.size - first) as u128 / m.size as u128) as u64;
            (first_copies + headroom - tail_room, tail_copies + tail_room)
        });
        let tail = GoldenMapping {
            ipa: at,
            size: m.size - first,
            offset: m.offset + first,
            copies: tail_copies,
            cow_quota: quotas.map(|q| q.1),
            ..m
        };
        if let Some(x) = self.ext.maps.get_mut(&(vmid, m.ipa)) {
            x.size = first;
            x.copies = first_copies;
            x.cow_quota = quotas.map(|q| q.0);
        }
        self.ext.maps.insert((vmid, at), tail);
    }

    /// GOLDEN_MAP: map `golden[offset, offset+size)` read-only at
    /// `[ipa, ipa+size)` of `vmid`, with blocks where alignment allows.
    ///
    /// Who may: only the image's owner (the VM that sealed it), and only into
    /// itself or a VM it manages. An unknown image is HANDLE_INVALID, someone
    /// else's image DENIED, a target VM that is not the caller's VMID_INVALID.
    pub fn golden_map(&mut self, caller: Vmid, p: MapParams) -> Result<(), RmError> {
        let g = self
            .ext
            .goldens
            .get(&p.golden)
            .ok_or(RmError::HandleInvalid)?;
        if g.owner != caller {
            return Err(RmError::Denied);
        }
        if !self.vms.exists(p.vmid) || !self.may_manage(caller, p.vmid) {
            return Err(RmError::VmidInvalid);
        }
        if !self.ipa_range_ok(p.ipa, p.size)
            || !page_aligned(p.offset)
            || p.offset.checked_add(p.size).is_none_or(|e| e > g.size)
            || p.cow_quota == Some(0)
        {
            return Err(RmError::ArgumentInvalid);
        }
        if p.cow {
            let gm = p.gmem.ok_or(RmError::ArgumentInvalid)?;
            let pool = self.ext.gmems.get(&gm).ok_or(RmError::HandleInvalid)?;
            if pool.owner != p.vmid {
                return Err(RmError::Denied);
            }
        }
        if p.digest.is_some_and(|d| d != g.digest) {
            return Err(RmError::ValidateFailed);
        }
        if let Some(allowed) = self.ext.protected.get(&p.vmid) {
            if !allowed.contains(&g.digest) {
                return Err(RmError::Denied);
            }
        }
        let m = self.mem.get(&p.vmid).ok_or(RmError::VmidInvalid)?;
        if !m.ipa_free(p.ipa, p.size) {
            return Err(RmError::MemInvalid);
        }
        if self.ext.ranges_of(p.vmid) >= crate::memext::MAX_RANGES_PER_VM {
            return Err(RmError::NoResource);
        }
        // Pieces: (ipa, pa, size) per golden region overlapping the range.
        let mut pieces: Vec<(u64, u64, u64)> = Vec::new();
        let end = p.offset + p.size;
        for r in &g.regions {
            let (lo, hi) = (r.offset.max(p.offset), (r.offset + r.size).min(end));
            if lo < hi {
                pieces.push((p.ipa + (lo - p.offset), r.pa + (lo - r.offset), hi - lo));
            }
        }
        let rec = GoldenMapping {
            golden: p.golden,
            vmid: p.vmid,
            ipa: p.ipa,
            size: p.size,
            offset: p.offset,
            cow: p.cow,
            exec: p.exec,
            gmem: if p.cow { p.gmem } else { None },
            cow_quota: p.cow_quota,
            copies: 0,
            fault_action: p.fault_action,
        };
        // --- commit: golden pages read-only, tagged so the fault path knows them ---
        let rights = rec.golden_rights();
        let mut plan = Plan::new();
        for &(ipa, pa, size) in &pieces {
            plan.map(p.vmid, ipa, pa, size, rights, MemKind::Normal, Tag::Golden);
        }
        self.plat.apply(&plan).map_err(|_| RmError::MapFailed)?;
        if let Some(m) = self.mem.get_mut(&p.vmid) {
            m.reserve(p.ipa, p.size);
        }
        if let Some(g) = self.ext.goldens.get_mut(&p.golden) {
            g.add_cover(p.offset / PAGE_SIZE, p.size / PAGE_SIZE, 1);
        }
        self.ext.maps.insert((p.vmid, p.ipa), rec);
        Ok(())
    }

    /// GOLDEN_UNMAP: remove `vmid`'s mappings of `golden` in exactly
    /// `[ipa, ipa+size)` (which they must cover; parts of a mapping may be
    /// unmapped). Private copies in the range go back to their pool.
    pub fn golden_unmap(
        &mut self,
        caller: Vmid,
        golden: u32,
        vmid: Vmid,
        ipa: u64,
        size: u64,
    ) -> Result<(), RmError> {
        // Who may: as GOLDEN_MAP (the image's owner, for itself or a VM it
        // manages).
        let g = self
            .ext
            .goldens
            .get(&golden)
            .ok_or(RmError::HandleInvalid)?;
        if g.owner != caller {
            return Err(RmError::Denied);
        }
        if !self.vms.exists(vmid) || !self.may_manage(caller, vmid) {
            return Err(RmError::VmidInvalid);
        }
        if !self.ipa_range_ok(ipa, size) {
            return Err(RmError::ArgumentInvalid);
        }
        // The range must be covered by mappings of this image.
        let end = ipa + size;
        let mut cur = ipa;
        while cur < end {
            match self.ext.mapping_at(vmid, cur) {
                Some(m) if m.golden == golden => cur = m.ipa + m.size,
                _ => return Err(RmError::MemInvalid),
            }
        }
        // --- commit ---
        self.split_mapping(vmid, ipa);
        self.split_mapping(vmid, end);
        let ms: Vec<u64> = self
            .ext
            .maps
            .range((vmid, ipa)..(vmid, end))
            .map(|(k, _)| k.1)
            .collect();
        for m in ms {
            let Some(rec) = self.ext.maps.get(&(vmid, m)).copied() else {
                continue;
            };
            let _ = self.plat.unmap(vmid, rec.ipa, rec.size);
            self.drop_mapping(vmid, m);
        }
        Ok(())
    }

    /// Remove the mapping record starting at `ipa` (its stage-2 entries are
    /// already gone): free its private copies, drop its share counts, free
    /// its IPAs.
    pub(crate) fn drop_mapping(&mut self, vmid: Vmid, ipa: u64) {
        let Some(m) = self.ext.maps.get(&(vmid, ipa)).copied() else {
            return;
        };
        let copies: Vec<u64> = self
            .ext
            .private
            .range((vmid, m.ipa)..(vmid, m.ipa + m.size))
            .map(|(k, _)| k.1)
            .collect();
        for a in copies {
            if let Some(p) = self.forget_private(vmid, a) {
                self.free_pages(core::iter::once(p.pa));
            }
        }
        self.ext.maps.remove(&(vmid, ipa));
        if let Some(g) = self.ext.goldens.get_mut(&m.golden) {
            g.add_cover(m.offset / PAGE_SIZE, m.size / PAGE_SIZE, -1);
        }
        if let Some(mm) = self.mem.get_mut(&vmid) {
            mm.unreserve(m.ipa, m.size);
        }
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
        let g = self
            .ext
            .goldens
            .get(&golden)
            .ok_or(RmError::HandleInvalid)?;
        let allowed = g.owner == caller || (!self.vms.exists(g.owner) && caller == VMID_HLOS);
        if !allowed {
            return Err(RmError::Denied);
        }
        if g.mapped() {
            return Err(RmError::MemInuse);
        }
        let g = match self.ext.goldens.remove(&golden) {
            Some(g) => g,
            None => return Err(RmError::HandleInvalid),
        };
        for h in g.home {
            match h {
                Home::Partition { pa, size } => {
                    self.free_pages((0..size / PAGE_SIZE).map(|i| pa + i * PAGE_SIZE));
                }
                Home::Owned { vmid, range } => self.return_home(vmid, range),
            }
        }
        Ok(())
    }

    /// Give owned memory back to `vmid` (or HLOS if it is gone).
    fn return_home(&mut self, vmid: Vmid, r: OwnedRange) {
        let home = if self.vms.exists(vmid) {
            vmid
        } else {
            VMID_HLOS
        };
        let hi = self.cfg.ipa_alloc_end.min(self.plat.ipa_limit());
        let base = self.cfg.ipa_alloc_base;
        let Some(m) = self.mem.get_mut(&home) else {
            return;
        };
        let at = if home == vmid && m.ipa_free(r.ipa, r.size) {
            Some(r.ipa)
        } else {
            m.alloc_ipa(r.size, PAGE_SIZE, base, hi)
        };
        if let Some(at) = at {
            if self
                .plat
                .map(home, at, r.pa, r.size, r.rights, r.kind, Tag::None)
                .is_ok()
            {
                if let Some(m) = self.mem.get_mut(&home) {
                    m.add_owned(OwnedRange { ipa: at, ..r });
                }
            }
        }
    }

    /// VM_MEM_STATS figures of `vmid` (no permission check).
    pub fn mem_stats(&self, vmid: Vmid) -> Option<MemStats> {
        if !self.vms.exists(vmid) {
            return None;
        }
        let mut s = MemStats::default();
        for b in self.ext.bindings.values().filter(|b| b.vmid == vmid) {
            if let Some(g) = self.ext.gmems.get(&b.gmem) {
                s.private_pages += g.pages.range(b.offset..b.offset + b.size).count() as u64;
            }
        }
        for (_, p) in self.ext.private.range((vmid, 0)..=(vmid, u64::MAX)) {
            match p.kind {
                PrivateKind::DemandZero => s.private_pages += 1,
                PrivateKind::Cow { .. } => s.cow_copied_pages += 1,
            }
        }
        for m in self.golden_mappings(vmid) {
            s.golden_mapped_pages += m.size / PAGE_SIZE - m.copies;
        }
        for g in self.ext.gmems.values().filter(|g| g.owner == vmid) {
            s.quota_pages += g.quota_pages;
            s.quota_used_pages += g.used_pages();
        }
        Some(s)
    }

    /// VM_MEM_STATS from `caller` (`vmid` 0 = the caller; the caller must
    /// be the VM or its owner).
    pub fn vm_mem_stats(&self, caller: Vmid, vmid: Vmid) -> Result<MemStats, RmError> {
        let vmid = if vmid == 0 { caller } else { vmid };
        if !self.may_manage(caller, vmid) {
            return Err(RmError::VmidInvalid);
        }
        self.mem_stats(vmid).ok_or(RmError::VmidInvalid)
    }

    /// Drop everything the extension holds for `vmid` (VM reset or
    /// deallocation): its private pages go back to their pools (and the
    /// pools give them back to the partition), its golden mappings and
    /// their share counts go, its bindings are unbound. With `dealloc`, its
    /// pools are destroyed as well. Stage-2 entries are removed too, so this
    /// may run before or after the address space is destroyed.
    pub(crate) fn ext_teardown_vm(&mut self, vmid: Vmid, dealloc: bool) {
        let maps: Vec<u64> = self.golden_mappings(vmid).map(|m| m.ipa).collect();
        for ipa in maps {
            if let Some(m) = self.ext.maps.get(&(vmid, ipa)).copied() {
                self.unmap_present(vmid, m.ipa, m.size);
            }
            self.drop_mapping(vmid, ipa);
        }
        let privs: Vec<u64> = self
            .ext
            .private
            .range((vmid, 0)..=(vmid, u64::MAX))
            .map(|(k, _)| k.1)
            .collect();
        for a in privs {
            let _ = self.plat.unmap(vmid, a, PAGE_SIZE);
            if let Some(p) = self.forget_private(vmid, a) {
                self.free_pages(core::iter::once(p.pa));
            }
        }
        let hs: Vec<u32> = self
            .ext
            .binding_index
            .range((vmid, 0)..=(vmid, u64::MAX))
            .map(|(_, h)| *h)
            .collect();
        for h in hs {
            self.drop_binding(h);
        }
        self.ext.pending_cow.remove(&vmid);
        if dealloc {
            let pools: Vec<u32> = self
                .ext
                .gmems
                .values()
                .filter(|g| g.owner == vmid)
                .map(|g| g.id)
                .collect();
            for id in pools {
                if let Some(g) = self.ext.gmems.remove(&id) {
                    // Nothing should be left; return anything that is.
                    let pas: Vec<u64> = g.pages.values().chain(g.anon.iter()).copied().collect();
                    self.free_pages(pas.into_iter());
                }
            }
            self.ext.protected.remove(&vmid);
        }
    }
}

/// Merge image-order regions that are physically contiguous.
fn merge_regions(v: Vec<GoldenRegion>) -> Vec<GoldenRegion> {
    let pages: Vec<(u64, u64)> = v.iter().map(|r| (r.offset, r.pa)).collect();
    // Regions may be larger than a page; expand only when needed.
    if v.iter().all(|r| r.size == PAGE_SIZE) {
        return runs(&pages)
            .into_iter()
            .map(|(offset, pa, size)| GoldenRegion { offset, pa, size })
            .collect();
    }
    let mut out: Vec<GoldenRegion> = Vec::new();
    for r in v {
        match out.last_mut() {
            Some(l) if l.offset + l.size == r.offset && l.pa + l.size == r.pa => l.size += r.size,
            _ => out.push(r),
        }
    }
    out
}
