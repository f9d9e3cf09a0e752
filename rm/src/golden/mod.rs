//! Golden images: immutable pages many VMs map read-only, copied per VM on a write.
//!
//! [`seal`] makes an image (GOLDEN_SEAL of a parcel, or a template VM's memory); [`map`] maps
//! part of one into a VM (GOLDEN_MAP / GOLDEN_UNMAP) and destroys images (GOLDEN_RELEASE); the
//! write fault that makes a copy is [`crate::cow`]. An image is a record about physical pages;
//! which VMs map it, and where a VM has its own copy instead, is in those VMs' ranges
//! ([`crate::space::State::Golden`]) and leaves.

pub mod map;
pub mod seal;

use alloc::vec::Vec;

use crate::config::FaultAction;
use crate::platform::{Platform, Tag, Vmid, PAGE_SIZE};
use crate::service::Rm;
use crate::space::{GoldenMap, State};

pub use map::MapParams;

/// Where a golden image's pages go when it is released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Home {
    /// Back to a VM's owned memory (a sealed parcel's owner): mapped again at `ipa` (or where
    /// the RM chooses, if that is taken) with the owner's rights.
    Owned {
        /// The VM that owned the memory.
        vmid: Vmid,
        /// Where it mapped it.
        ipa: u64,
        /// Bytes.
        size: u64,
        /// What it owned there.
        owned: crate::space::Owned,
    },
    /// Back to the partition (pages that came from a pool or were made at seal).
    Partition {
        /// First PA.
        pa: u64,
        /// Bytes (the pages are not necessarily one allocation, only contiguous).
        size: u64,
    },
}

/// One physically contiguous piece of a golden image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoldenRegion {
    /// Offset in the image.
    pub offset: u64,
    /// PA.
    pub pa: u64,
    /// Bytes.
    pub size: u64,
}

/// A golden image: immutable pages, their owner, and how many mappings use them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Golden {
    /// Its id.
    pub id: u32,
    /// The VM that sealed it: the only one that may map, unmap or release it (into itself or a
    /// VM it manages).
    pub owner: Vmid,
    /// SHA-256 of the contents in image order.
    pub digest: [u8; 32],
    /// Bytes.
    pub size: u64,
    /// The pages, in image order.
    pub regions: Vec<GoldenRegion>,
    /// Where the pages go at release.
    pub home: Vec<Home>,
    /// Golden ranges (in any VM) that map part of it.
    pub mappings: u64,
}

impl Golden {
    /// The PA of image offset `off` (page aligned, `< size`).
    pub fn pa_of(&self, off: u64) -> Option<u64> {
        let i = self.regions.partition_point(|r| r.offset + r.size <= off);
        let r = self.regions.get(i)?;
        (off >= r.offset).then(|| r.pa + (off - r.offset))
    }

    /// Whether any VM maps part of the image.
    pub fn mapped(&self) -> bool {
        self.mappings > 0
    }

    /// Pages of the image that live in the partition (held by the RM).
    pub fn partition_pages(&self) -> u64 {
        self.home
            .iter()
            .map(|h| match h {
                Home::Partition { size, .. } => size / PAGE_SIZE,
                Home::Owned { .. } => 0,
            })
            .sum()
    }
}

/// One golden mapping as a VM's range holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappingView {
    /// The VM.
    pub vmid: Vmid,
    /// First IPA.
    pub ipa: u64,
    /// Bytes.
    pub size: u64,
    /// The mapping.
    pub map: GoldenMap,
}

impl MappingView {
    /// The image.
    pub fn golden(&self) -> u32 {
        self.map.golden
    }
    /// Copies it holds.
    pub fn copies(&self) -> u64 {
        self.map.copies
    }
    /// Its own copy limit.
    pub fn cow_quota(&self) -> Option<u64> {
        self.map.cow_quota
    }
    /// What an unserved write does.
    pub fn fault_action(&self) -> FaultAction {
        self.map.fault_action
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

impl<P: Platform> Rm<P> {
    /// A golden image, by id.
    pub fn golden(&self, id: u32) -> Option<&Golden> {
        self.goldens.get(&id)
    }

    /// `vmid`'s golden mappings, in IPA order.
    pub fn golden_mappings(&self, vmid: Vmid) -> impl Iterator<Item = MappingView> + '_ {
        self.spaces
            .get(&vmid)
            .into_iter()
            .flat_map(|s| s.ranges())
            .filter_map(move |r| match r.state {
                State::Golden(map) => Some(MappingView {
                    vmid,
                    ipa: r.ipa,
                    size: r.size,
                    map,
                }),
                _ => None,
            })
    }

    /// How many VMs map golden page `page` (image offset / 4 KiB) of image `id` itself, not a
    /// copy of it: counted from the leaves of every golden range over that page.
    pub fn golden_share_count(&self, id: u32, page: u64) -> u64 {
        let off = page * PAGE_SIZE;
        let mut n = 0;
        for (&vmid, space) in &self.spaces {
            for r in space.ranges() {
                let State::Golden(m) = r.state else {
                    continue;
                };
                if m.golden != id || off < m.offset || off - m.offset >= r.size {
                    continue;
                }
                let ipa = r.ipa + (off - m.offset);
                if self
                    .plat
                    .query(vmid, ipa)
                    .is_some_and(|l| l.tag == Tag::Golden)
                {
                    n += 1;
                }
            }
        }
        n
    }

    /// Make `vmid` protected: it accepts a golden mapping only of an image
    /// whose SHA-256 digest is in `digests` (from its config). An empty
    /// list refuses every golden mapping.
    pub fn set_vm_protected(
        &mut self,
        vmid: Vmid,
        digests: Vec<[u8; 32]>,
    ) -> Result<(), gunyah_rm_abi::RmError> {
        if !self.vms.exists(vmid) {
            return Err(gunyah_rm_abi::RmError::VmidInvalid);
        }
        self.protected.insert(vmid, digests);
        Ok(())
    }

    /// VM_MEM_STATS figures of `vmid` (no permission check).
    pub fn mem_stats(&self, vmid: Vmid) -> Option<MemStats> {
        let space = self.spaces.get(&vmid)?;
        let mut s = MemStats::default();
        for r in space.ranges() {
            match r.state {
                State::Bound(_) => {
                    s.private_pages += self.mapped_bytes(vmid, r.ipa, r.size) / PAGE_SIZE
                }
                State::Zero { .. } => s.private_pages += r.size / PAGE_SIZE,
                State::Golden(m) => {
                    s.cow_copied_pages += m.copies;
                    s.golden_mapped_pages += r.size / PAGE_SIZE - m.copies;
                }
                _ => {}
            }
        }
        for p in space.pools.values() {
            s.quota_pages += p.quota_pages;
            s.quota_used_pages += p.used_pages;
        }
        Some(s)
    }

    /// VM_MEM_STATS from `caller` (`vmid` 0 = the caller; the caller must
    /// be the VM or its owner).
    pub fn vm_mem_stats(
        &self,
        caller: Vmid,
        vmid: Vmid,
    ) -> Result<MemStats, gunyah_rm_abi::RmError> {
        let vmid = if vmid == 0 { caller } else { vmid };
        if !self.may_manage(caller, vmid) {
            return Err(gunyah_rm_abi::RmError::VmidInvalid);
        }
        self.mem_stats(vmid)
            .ok_or(gunyah_rm_abi::RmError::VmidInvalid)
    }
}

impl<P: Platform> Rm<P> {
    /// Bytes of `[ipa, ipa+size)` that `vmid`'s tables map.
    pub(crate) fn mapped_bytes(&self, vmid: Vmid, ipa: u64, size: u64) -> u64 {
        let end = ipa + size;
        let mut n = 0;
        self.plat.for_each_leaf_in(vmid, ipa, size, &mut |l| {
            n += (l.ipa + l.size).min(end) - l.ipa.max(ipa);
        });
        n
    }
}

/// Merge image-order regions that are physically contiguous.
pub(crate) fn merge_regions(v: Vec<GoldenRegion>) -> Vec<GoldenRegion> {
    let mut out: Vec<GoldenRegion> = Vec::new();
    for r in v {
        match out.last_mut() {
            Some(l) if l.offset + l.size == r.offset && l.pa + l.size == r.pa => l.size += r.size,
            _ => out.push(r),
        }
    }
    out
}
