//! Sealing: pages leave everyone who could write them and become an immutable golden image.
//!
//! * [`Rm::golden_seal`] (GOLDEN_SEAL of a parcel) — owner: `Lent(p)` or `Shared(p)` → gone
//!   (the pages belong to the image; at release they go home to the owner); the parcel, which
//!   nobody may have accepted, is consumed.
//! * [`Rm::golden_seal_vm`] (a template VM's memory, config `seal-ranges`) — template:
//!   `Bound` / `Golden` / `Zero` → gone (pool pages, copies and zero pages move into the image,
//!   uncharged; untouched golden pages are copied, unpopulated pages become zero pages).

use alloc::vec::Vec;

use gunyah_rm_abi::RmError;
use sha2::{Digest, Sha256};

use super::{merge_regions, Golden, GoldenRegion, Home};
use crate::parcel::{MemType, ParcelState, TransType};
use crate::plan::Plan;
use crate::platform::{Platform, Tag, Vmid, PAGE_SIZE};
use crate::service::Rm;
use crate::space::State;
use crate::vm::VMID_HLOS;

/// Where a page of a template range comes from at seal.
enum Source {
    /// A page the template's tables map from one of its pools (bound page, copy, zero page):
    /// it moves into the image.
    Pool { pool: u32, pa: u64 },
    /// A fresh page: zeroed (`copy_from` None) or a copy of a golden page.
    Fresh { copy_from: Option<u64> },
}

impl<P: Platform> Rm<P> {
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

    pub(crate) fn alloc_golden_id(&self) -> Option<u32> {
        crate::service::free_id(&self.goldens, self.next_golden, 0)
    }

    fn insert_golden(
        &mut self,
        owner: Vmid,
        regions: Vec<GoldenRegion>,
        home: Vec<Home>,
    ) -> Result<(u32, [u8; 32]), RmError> {
        let id = self.alloc_golden_id().ok_or(RmError::NoResource)?;
        let digest = self.digest_of(&regions);
        let size = regions.iter().map(|r| r.size).sum();
        self.goldens.insert(
            id,
            Golden {
                id,
                owner,
                digest,
                size,
                regions,
                home,
                mappings: 0,
            },
        );
        self.next_golden = id.wrapping_add(1);
        Ok((id, digest))
    }

    /// GOLDEN_SEAL of a parcel: its owner gives the parcel's memory to the golden registry.
    ///
    /// Owner: `Lent(p)` / `Shared(p)` → gone (a SHARE's owner loses its mapping). Parcel: final
    /// and accepted by nobody (DENIED while still open for MEM_APPEND, MEM_INUSE once
    /// accepted) → consumed. Only the parcel's owner may seal it (DENIED); the image belongs to
    /// it. Returns the golden id and the SHA-256 digest of the contents in SGL order.
    pub fn golden_seal(
        &mut self,
        caller: Vmid,
        handle: u32,
        flags: u32,
    ) -> Result<(u32, [u8; 32]), RmError> {
        // --- check ---
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
        let space = self.spaces.get(&owner).ok_or(RmError::MemInvalid)?;
        // Home records: the owner's ranges that hold the parcel, with what it owned there.
        let mut home = Vec::new();
        for r in &regions_p {
            for rg in space.overlapping(r.owner_ipa, r.size) {
                let owned = match rg.state {
                    State::Lent { parcel, owned } | State::Shared { parcel, owned }
                        if parcel == handle =>
                    {
                        owned
                    }
                    _ => return Err(RmError::MemInvalid),
                };
                home.push(Home::Owned {
                    vmid: owner,
                    ipa: rg.ipa,
                    size: rg.size,
                    owned,
                });
            }
        }
        if self.alloc_golden_id().is_none() {
            return Err(RmError::NoResource);
        }
        let mut plan = Plan::new();
        if trans == TransType::Share {
            // Revoke the owner's (writable) mapping.
            for r in &regions_p {
                plan.unmap(owner, r.owner_ipa, r.size);
            }
        }
        self.plat.apply(&plan).map_err(|_| RmError::MapFailed)?;
        // --- commit ---
        let mut regions = Vec::new();
        let mut off = 0;
        for r in &regions_p {
            regions.push(GoldenRegion {
                offset: off,
                pa: r.pa,
                size: r.size,
            });
            off += r.size;
        }
        if let Some(space) = self.spaces.get_mut(&owner) {
            for h in &home {
                if let Home::Owned { ipa, .. } = h {
                    space.remove(*ipa);
                }
            }
        }
        self.parcels.remove(handle);
        self.insert_golden(owner, merge_regions(regions), home)
    }

    /// Seal ranges of a template VM's memory into a golden image (config
    /// `golden { role = "template"; seal-ranges }`).
    ///
    /// Template: `Bound` / `Golden` / `Zero` → gone. Each page must lie in one of those ranges
    /// (MEM_INVALID otherwise): pool pages (bound, copies, zero pages) move into the image and
    /// their pools are uncharged; unpopulated pages become zero pages and untouched golden
    /// pages are copied, so the new image owns every page. Ranges are cut at the seal ranges'
    /// edges. Map the image back with [`Rm::golden_map`] to keep reading it. The image is the
    /// ranges' concatenation in order and belongs to `caller`, which must manage the template
    /// (the template itself cannot map it elsewhere).
    pub fn golden_seal_vm(
        &mut self,
        caller: Vmid,
        vmid: Vmid,
        ranges: &[(u64, u64)],
    ) -> Result<(u32, [u8; 32]), RmError> {
        // --- check ---
        if !self.vms.exists(vmid) || !self.may_manage(caller, vmid) {
            return Err(RmError::VmidInvalid);
        }
        if vmid == VMID_HLOS || self.protected.contains_key(&vmid) {
            return Err(RmError::Denied);
        }
        if ranges.is_empty() {
            return Err(RmError::ArgumentInvalid);
        }
        for (i, &(ipa, size)) in ranges.iter().enumerate() {
            if !self.ipa_range_ok(vmid, ipa, size) {
                return Err(RmError::ArgumentInvalid);
            }
            if ranges[..i]
                .iter()
                .any(|&(b, s)| b < ipa + size && ipa < b + s)
            {
                return Err(RmError::ArgumentInvalid);
            }
        }
        let space = self.spaces.get(&vmid).ok_or(RmError::VmidInvalid)?;
        let sealable = |r: &crate::space::Range| {
            matches!(
                r.state,
                State::Bound(_) | State::Golden(_) | State::Zero { .. }
            )
        };
        for &(ipa, size) in ranges {
            if !space.covered_by(ipa, size, sealable) {
                return Err(RmError::MemInvalid);
            }
        }
        // Where every page comes from: the leaf and the range it is in.
        let mut plan_src: Vec<Source> = Vec::new();
        for &(ipa, size) in ranges {
            let mut a = ipa;
            while a < ipa + size {
                let state = space.at(a).map(|r| (r.ipa, r.state));
                let leaf = self.plat.query(vmid, a);
                let src = match (state, leaf) {
                    (Some((_, State::Bound(b))), Some(l)) => Source::Pool {
                        pool: b.pool,
                        pa: l.pa + (a - l.ipa),
                    },
                    (Some((_, State::Bound(_))), None) => Source::Fresh { copy_from: None },
                    (Some((_, State::Golden(m))), Some(l)) if l.tag == Tag::Copy => Source::Pool {
                        pool: m.pool.unwrap_or(u32::MAX),
                        pa: l.pa + (a - l.ipa),
                    },
                    (Some((_, State::Golden(_))), Some(l)) => Source::Fresh {
                        copy_from: Some(l.pa + (a - l.ipa)),
                    },
                    (Some((_, State::Zero { pool })), Some(l)) => Source::Pool {
                        pool,
                        pa: l.pa + (a - l.ipa),
                    },
                    _ => return Err(RmError::MemInvalid),
                };
                plan_src.push(src);
                a += PAGE_SIZE;
            }
        }
        if self.alloc_golden_id().is_none() {
            return Err(RmError::NoResource);
        }
        let fresh = plan_src
            .iter()
            .filter(|s| matches!(s, Source::Fresh { .. }))
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
        // Cut the ranges at the seal ranges' edges first, while the leaves still say which
        // copies each part holds (cutting changes no meaning, only the records' granularity).
        for &(ipa, size) in ranges {
            self.cut(vmid, ipa);
            self.cut(vmid, ipa + size);
        }
        let mut plan = Plan::new();
        for &(ipa, size) in ranges {
            // Only the mapped parts: demand-paged ranges have holes.
            for (a, s) in self.mapped_spans(vmid, ipa, size) {
                plan.unmap(vmid, a, s);
            }
        }
        if self.plat.apply(&plan).is_err() {
            self.free_pages(new_pages.into_iter());
            return Err(RmError::NoMem);
        }
        // --- commit ---
        let mut pages: Vec<u64> = Vec::with_capacity(plan_src.len());
        let mut fresh_iter = new_pages.into_iter();
        for src in &plan_src {
            let pa = match *src {
                Source::Pool { pool, pa } => {
                    self.charge(vmid, pool, -1);
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
            // Drop the ranges inside (the cuts above put their edges there).
            let starts: Vec<u64> = self
                .spaces
                .get(&vmid)
                .map(|s| s.overlapping(ipa, size).map(|r| r.ipa).collect())
                .unwrap_or_default();
            for start in starts {
                self.forget_range(vmid, start);
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
        // The image belongs to the VM that sealed it (the template's manager).
        self.insert_golden(caller, regions, home)
    }
}
