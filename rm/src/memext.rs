//! Records of the gmem / golden / copy-on-write extension (DESIGN.md
//! "Memory model"): gmem pools and their bindings, golden images and their
//! mappings, and every VM's private pages made by faults.
//!
//! The operations live in [`crate::gmem`], [`crate::golden`],
//! [`crate::cow`] and [`crate::sim_access`]; this module only holds the
//! state they share, so that the isolation checker and the state dump can
//! see all of it in one place.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use crate::config::FaultAction;
use crate::memory::OwnedRange;
use crate::platform::{Rights, Vmid, PAGE_SIZE};

/// First handle of gmem bindings. Binding handles live in their own range
/// so they never collide with memparcel handles (which count up from 0).
pub const BINDING_HANDLE_BASE: u32 = 0x4742_0000;
/// Most IPAs in one COW_BROKEN notification.
pub const COW_BATCH: usize = 512;
/// Most pools charged to one VM (bounds the RM's records, as
/// `MAX_MEMPARCEL_PER_VM` does for parcels).
pub const MAX_GMEM_PER_VM: usize = 64;
/// Most bindings plus golden mappings in one VM.
pub const MAX_RANGES_PER_VM: usize = 1024;

/// A gmem instance: a page pool charged to one VM, with a quota.
///
/// Its "file" pages (`pages`, by pool offset) back bindings; its anonymous
/// pages (`anon`) are CoW copies and demand-zero pages of
/// VM_SET_DEMAND_PAGING ranges. Both count against the quota.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gmem {
    /// Its id.
    pub id: u32,
    /// The VM charged for it (the only VM its pages are ever mapped in).
    pub owner: Vmid,
    /// Quota (and pool size) in pages.
    pub quota_pages: u64,
    /// Populated pool pages: pool offset → PA.
    pub pages: BTreeMap<u64, u64>,
    /// Anonymous pages charged to the pool (CoW copies, demand-zero pages).
    pub anon: BTreeSet<u64>,
}

impl Gmem {
    /// Pages charged to the pool.
    pub fn used_pages(&self) -> u64 {
        (self.pages.len() + self.anon.len()) as u64
    }
    /// Whether `n` more pages fit in the quota.
    pub fn has_room(&self, n: u64) -> bool {
        self.used_pages()
            .checked_add(n)
            .is_some_and(|u| u <= self.quota_pages)
    }
}

/// A binding: `[ipa, ipa+size)` of `vmid` → `gmem[offset, offset+size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The handle GMEM_BIND returned.
    pub handle: u32,
    /// The pool.
    pub gmem: u32,
    /// The VM (always the pool's owner).
    pub vmid: Vmid,
    /// First IPA.
    pub ipa: u64,
    /// Bytes.
    pub size: u64,
    /// Pool offset of `ipa`.
    pub offset: u64,
    /// Stage-2 rights of the pages.
    pub rights: Rights,
    /// Populated on first touch rather than at bind.
    pub demand: bool,
}

impl Binding {
    /// Whether the binding covers `ipa`.
    pub fn contains(&self, ipa: u64) -> bool {
        ipa >= self.ipa && ipa - self.ipa < self.size
    }
}

/// Where a golden image's pages go when it is released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Home {
    /// Back to a VM's owned memory (a sealed parcel's owner).
    Owned {
        /// The VM that owned the memory.
        vmid: Vmid,
        /// Its owned-range record (IPA, PA, size, rights, origin).
        range: OwnedRange,
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

/// A golden image: immutable pages with per-page share counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Golden {
    /// Its id.
    pub id: u32,
    /// The VM that sealed it (may release it).
    pub owner: Vmid,
    /// SHA-256 of the contents in image order.
    pub digest: [u8; 32],
    /// Bytes.
    pub size: u64,
    /// The pages, in image order.
    pub regions: Vec<GoldenRegion>,
    /// Where the pages go at release.
    pub home: Vec<Home>,
    /// Mappings covering each page, as a difference map: page index → change
    /// of the count at that index (the count at page `p` is the sum of the
    /// entries at or below `p`). Mapping a clone costs O(log n), not O(pages).
    pub cover: BTreeMap<u64, i64>,
    /// Pages some mapping has privately copied: page index → number of copies.
    pub copied: BTreeMap<u64, u64>,
}

impl Golden {
    /// The PA of image offset `off` (page aligned, `< size`).
    pub fn pa_of(&self, off: u64) -> Option<u64> {
        let i = self.regions.partition_point(|r| r.offset + r.size <= off);
        let r = self.regions.get(i)?;
        (off >= r.offset).then(|| r.pa + (off - r.offset))
    }

    /// Share count of page `page` (image offset / 4 KiB): how many VMs map
    /// the golden page itself (mappings covering it minus private copies).
    pub fn share_count(&self, page: u64) -> u64 {
        let cover: i64 = self.cover.range(..=page).map(|(_, d)| *d).sum();
        let copied = self.copied.get(&page).copied().unwrap_or(0) as i64;
        (cover - copied).max(0) as u64
    }

    /// Number of mappings of any part of the image.
    pub fn mapped(&self) -> bool {
        self.cover.values().any(|d| *d != 0)
    }

    pub(crate) fn add_cover(&mut self, first_page: u64, pages: u64, delta: i64) {
        for (k, d) in [(first_page, delta), (first_page + pages, -delta)] {
            let e = self.cover.entry(k).or_insert(0);
            *e += d;
            if *e == 0 {
                self.cover.remove(&k);
            }
        }
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

/// A golden mapping: `golden[offset, offset+size)` at `[ipa, ipa+size)` of `vmid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoldenMapping {
    /// The image.
    pub golden: u32,
    /// The VM.
    pub vmid: Vmid,
    /// First IPA.
    pub ipa: u64,
    /// Bytes.
    pub size: u64,
    /// Image offset of `ipa`.
    pub offset: u64,
    /// Writes make private copies.
    pub cow: bool,
    /// Mapped executable.
    pub exec: bool,
    /// The pool that pays for copies.
    pub gmem: Option<u32>,
    /// Most copies this mapping may make (besides the pool's quota).
    pub cow_quota: Option<u64>,
    /// Copies this mapping holds.
    pub copies: u64,
    /// What an unserved write does.
    pub fault_action: FaultAction,
}

impl GoldenMapping {
    /// Whether the mapping covers `ipa`.
    pub fn contains(&self, ipa: u64) -> bool {
        ipa >= self.ipa && ipa - self.ipa < self.size
    }
    /// Stage-2 rights of the golden pages.
    pub fn golden_rights(&self) -> Rights {
        if self.exec {
            Rights::RX
        } else {
            Rights::R
        }
    }
    /// Stage-2 rights of a private copy.
    pub fn copy_rights(&self) -> Rights {
        if self.exec {
            Rights::RWX
        } else {
            Rights::RW
        }
    }
}

/// Why a private page exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrivateKind {
    /// A copy-on-write copy of golden page `page` of image `golden`.
    Cow {
        /// The image.
        golden: u32,
        /// Page index in the image.
        page: u64,
    },
    /// A demand-zero page of a VM_SET_DEMAND_PAGING range.
    DemandZero,
}

/// A private page a fault made for one VM, charged to one pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrivatePage {
    /// PA.
    pub pa: u64,
    /// The pool charged.
    pub gmem: u32,
    /// Why it exists.
    pub kind: PrivateKind,
    /// Its stage-2 rights.
    pub rights: Rights,
}

/// Counters of the fault path (for stats and the simulator's reports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounters {
    /// CoW copies made.
    pub cow_copies: u64,
    /// Pages populated on demand.
    pub demand_pages: u64,
    /// Faults found already served (another vCPU, break-before-make race).
    pub retries: u64,
    /// Faults not served.
    pub unserved: u64,
}

/// All extension state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemExt {
    /// Pools by id.
    pub gmems: BTreeMap<u32, Gmem>,
    /// Next pool id to try.
    pub next_gmem: u32,
    /// Bindings by handle.
    pub bindings: BTreeMap<u32, Binding>,
    /// Bindings by (VM, first IPA) → handle.
    pub binding_index: BTreeMap<(Vmid, u64), u32>,
    /// Next binding handle to try.
    pub next_binding: u32,
    /// Golden images by id.
    pub goldens: BTreeMap<u32, Golden>,
    /// Next golden id to try.
    pub next_golden: u32,
    /// Golden mappings by (VM, first IPA).
    pub maps: BTreeMap<(Vmid, u64), GoldenMapping>,
    /// Private pages by (VM, IPA).
    pub private: BTreeMap<(Vmid, u64), PrivatePage>,
    /// Protected VMs → the golden digests their config accepts.
    pub protected: BTreeMap<Vmid, Vec<[u8; 32]>>,
    /// COW_BROKEN IPAs not yet sent, per VM.
    pub pending_cow: BTreeMap<Vmid, Vec<u64>>,
    /// Fault-path counters.
    pub counters: FaultCounters,
}

impl MemExt {
    /// The binding of `vmid` covering `ipa`.
    pub fn binding_at(&self, vmid: Vmid, ipa: u64) -> Option<&Binding> {
        let (_, h) = self
            .binding_index
            .range((vmid, 0)..=(vmid, ipa))
            .next_back()?;
        self.bindings.get(h).filter(|b| b.contains(ipa))
    }

    /// The golden mapping of `vmid` covering `ipa`.
    pub fn mapping_at(&self, vmid: Vmid, ipa: u64) -> Option<&GoldenMapping> {
        let (_, m) = self.maps.range((vmid, 0)..=(vmid, ipa)).next_back()?;
        m.contains(ipa).then_some(m)
    }

    /// Bindings plus golden mappings of `vmid`.
    pub fn ranges_of(&self, vmid: Vmid) -> usize {
        self.binding_index
            .range((vmid, 0)..=(vmid, u64::MAX))
            .count()
            + self.maps.range((vmid, 0)..=(vmid, u64::MAX)).count()
    }

    /// Partition pages the extension holds: pool pages and golden pages
    /// that came from the partition.
    pub fn partition_pages_held(&self) -> u64 {
        let pools: u64 = self.gmems.values().map(|g| g.used_pages()).sum();
        let goldens: u64 = self.goldens.values().map(|g| g.partition_pages()).sum();
        pools + goldens
    }

    pub(crate) fn alloc_gmem_id(&self) -> Option<u32> {
        free_id(&self.gmems, self.next_gmem, 0)
    }
    pub(crate) fn alloc_golden_id(&self) -> Option<u32> {
        free_id(&self.goldens, self.next_golden, 0)
    }
    pub(crate) fn alloc_binding_handle(&self) -> Option<u32> {
        free_id(
            &self.bindings,
            self.next_binding.max(BINDING_HANDLE_BASE),
            BINDING_HANDLE_BASE,
        )
    }
}

/// The first id at or after `next` (wrapping to `base`) not in `map`, never `u32::MAX`.
fn free_id<V>(map: &BTreeMap<u32, V>, next: u32, base: u32) -> Option<u32> {
    let mut id = next;
    for _ in 0..=map.len() + 1 {
        if id != u32::MAX && !map.contains_key(&id) {
            return Some(id);
        }
        id = if id == u32::MAX - 1 { base } else { id + 1 };
    }
    None
}
