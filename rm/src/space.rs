//! One state per page range: each VM's IPA space as the RM records it.
//!
//! Every IPA range a VM can address is in exactly one [`Range`] of its [`VmSpace`], with one
//! [`State`]: memory it owns (mapped, or lent / shared out through a parcel), memory it borrowed
//! from another VM's parcel, a gmem binding, a golden mapping, or demand-zero pages. A memparcel,
//! a gmem binding and a golden mapping are records *about* ranges (which parcel, which pool,
//! which image); the state of a page is here and nowhere else. Within a range, what each page
//! maps is in the stage-2 tables, and the leaf's tag ([`crate::platform::Tag`]) says whether a
//! page of a golden range is the golden page or the VM's copy, so no per-page record exists.
//!
//! The per-VM pieces the fault path needs (the ranges, the VM's gmem pools, the COW_BROKEN
//! batch) live together here, so a fault touches one VM's state only.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::config::FaultAction;
use crate::platform::{MemKind, Rights, Vmid, PAGE_SIZE};

/// First handle of gmem bindings. Binding handles live in their own range
/// so they never collide with memparcel handles (which count up from 0).
pub const BINDING_HANDLE_BASE: u32 = 0x4742_0000;
/// Most ranges (of any kind) in one VM's space.
pub const MAX_RANGES_PER_VM: usize = 1024;

/// Where owned memory came from (and where it goes when its owner goes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Platform memory the VM was booted with (HLOS RAM).
    Boot,
    /// Pages the RM allocated from the partition.
    Partition,
    /// Donated by another VM (returned to it when this VM is torn down).
    Donated {
        /// The donor.
        from: Vmid,
        /// Where the donor mapped it.
        ipa: u64,
        /// The donor's rights.
        rights: Rights,
    },
}

/// Memory a VM owns: physically contiguous from `pa`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owned {
    /// PA of the range's first byte.
    pub pa: u64,
    /// The owner's rights.
    pub rights: Rights,
    /// Memory type.
    pub kind: MemKind,
    /// Provenance.
    pub origin: Origin,
}

/// A gmem binding: the range is backed by pool pages (populated now, or on first touch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The handle GMEM_BIND returned (a split binding's tail gets a new one).
    pub handle: u32,
    /// The pool (owned by this VM).
    pub pool: u32,
    /// Pool offset of the range's first page.
    pub offset: u64,
    /// Stage-2 rights of the pages.
    pub rights: Rights,
    /// Populated on first touch rather than at bind.
    pub demand: bool,
}

/// A golden mapping: the range shows `golden[offset..]` read-only; where the VM wrote, the
/// leaf maps its own copy instead (tagged `Copy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoldenMap {
    /// The image.
    pub golden: u32,
    /// Image offset of the range's first page.
    pub offset: u64,
    /// Writes make private copies.
    pub cow: bool,
    /// Mapped executable.
    pub exec: bool,
    /// The pool (of this VM) that pays for copies.
    pub pool: Option<u32>,
    /// Most copies this mapping may make (besides the pool's quota).
    pub cow_quota: Option<u64>,
    /// Copies it holds (pages of the range whose leaf is a copy).
    pub copies: u64,
    /// What an unserved write does.
    pub fault_action: FaultAction,
}

impl GoldenMap {
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

/// What a range of a VM's IPA space is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// The VM owns the memory and maps it with `owned.rights`.
    Owned(Owned),
    /// Owned, and lent or donated through `parcel`: not mapped in the owner.
    Lent {
        /// The parcel.
        parcel: u32,
        /// What the owner had (restored at reclaim).
        owned: Owned,
    },
    /// Owned, and shared through `parcel`: still mapped in the owner.
    Shared {
        /// The parcel.
        parcel: u32,
        /// What the owner has.
        owned: Owned,
    },
    /// Another VM's parcel accepted here (mapped once the accept is DONE; until then the IPAs
    /// are only reserved). The parcel's acceptance record says which regions.
    Borrowed {
        /// The parcel.
        parcel: u32,
    },
    /// A gmem binding.
    Bound(Binding),
    /// A golden mapping.
    Golden(GoldenMap),
    /// Demand-zero pages of a VM_SET_DEMAND_PAGING range, made on first touch.
    Zero {
        /// The pool charged.
        pool: u32,
    },
}

impl State {
    /// The state of the part of a range in `self` that starts `off` bytes in.
    fn tail(&self, off: u64) -> State {
        let mut s = *self;
        match &mut s {
            State::Owned(o) | State::Lent { owned: o, .. } | State::Shared { owned: o, .. } => {
                o.pa += off;
                if let Origin::Donated { ipa, .. } = &mut o.origin {
                    *ipa += off;
                }
            }
            State::Bound(b) => b.offset += off,
            State::Golden(g) => g.offset += off,
            State::Borrowed { .. } | State::Zero { .. } => {}
        }
        s
    }
}

/// One range of a VM's IPA space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// First IPA.
    pub ipa: u64,
    /// Bytes (page multiple, > 0).
    pub size: u64,
    /// What it is.
    pub state: State,
}

impl Range {
    /// One past the last IPA.
    pub fn end(&self) -> u64 {
        self.ipa + self.size
    }
    /// Whether it covers `ipa`.
    pub fn contains(&self, ipa: u64) -> bool {
        ipa >= self.ipa && ipa - self.ipa < self.size
    }
}

/// A gmem pool: pages charged to one VM (its owner), with a quota. Its pages are never mapped
/// in any other VM. Which pages it has is in the tables (the leaves of the owner's bound,
/// golden-copy and demand-zero ranges); the pool keeps the count and which offsets are bound.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pool {
    /// Its id.
    pub id: u32,
    /// The VM charged.
    pub owner: Vmid,
    /// Quota (and pool size) in pages.
    pub quota_pages: u64,
    /// Pages charged: populated bound pages, CoW copies, demand-zero pages.
    pub used_pages: u64,
    /// Bound pool offsets: offset → bytes.
    pub bound: BTreeMap<u64, u64>,
}

impl Pool {
    /// Pages charged to the pool.
    pub fn used_pages(&self) -> u64 {
        self.used_pages
    }
    /// Whether `n` more pages fit in the quota.
    pub fn has_room(&self, n: u64) -> bool {
        self.used_pages
            .checked_add(n)
            .is_some_and(|u| u <= self.quota_pages)
    }
    /// Whether any of `[offset, offset+size)` is bound.
    pub fn bound_overlaps(&self, offset: u64, size: u64) -> bool {
        let end = offset.saturating_add(size);
        self.bound
            .range(..end)
            .next_back()
            .is_some_and(|(o, s)| o + s > offset)
    }
}

/// One VM's memory: its IPA ranges, its pools, its unsent COW_BROKEN IPAs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmSpace {
    ranges: BTreeMap<u64, Range>,
    /// Where the next RM-chosen IPA search starts (next fit keeps allocation flat as the
    /// space fills).
    cursor: u64,
    /// The pools charged to this VM, by id.
    pub pools: BTreeMap<u32, Pool>,
    /// IPAs copied since the last COW_BROKEN.
    pub pending_cow: Vec<u64>,
}

impl VmSpace {
    /// The range covering `ipa`.
    pub fn at(&self, ipa: u64) -> Option<&Range> {
        let (_, r) = self.ranges.range(..=ipa).next_back()?;
        r.contains(ipa).then_some(r)
    }

    /// The range covering `ipa`, mutably.
    pub fn at_mut(&mut self, ipa: u64) -> Option<&mut Range> {
        let (_, r) = self.ranges.range_mut(..=ipa).next_back()?;
        r.contains(ipa).then_some(r)
    }

    /// Every range, in IPA order.
    pub fn ranges(&self) -> impl Iterator<Item = &Range> {
        self.ranges.values()
    }

    /// The number of ranges.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether the space holds no range.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The ranges overlapping `[ipa, ipa+size)`, in order.
    pub fn overlapping(&self, ipa: u64, size: u64) -> impl Iterator<Item = &Range> {
        let (first, end) = self.overlap_keys(ipa, size);
        self.ranges.range(first..end).map(|(_, r)| r)
    }

    /// `f` on each range overlapping `[ipa, ipa+size)`, mutably, in order (no split: a range
    /// reaching outside stays whole; the caller keeps the space's invariants).
    pub fn overlapping_each_mut(&mut self, ipa: u64, size: u64, mut f: impl FnMut(&mut Range)) {
        let (first, end) = self.overlap_keys(ipa, size);
        for (_, r) in self.ranges.range_mut(first..end) {
            f(r);
        }
    }

    /// The key range `first..end` of the ranges overlapping `[ipa, ipa+size)`: a range that
    /// starts below `ipa` overlaps only if it reaches past it.
    fn overlap_keys(&self, ipa: u64, size: u64) -> (u64, u64) {
        let end = ipa.saturating_add(size);
        let first = self
            .ranges
            .range(..=ipa)
            .next_back()
            .filter(|(_, r)| r.end() > ipa)
            .map(|(k, _)| *k)
            .unwrap_or(ipa);
        (first, end)
    }

    /// Whether no range uses any byte of `[ipa, ipa+size)`.
    pub fn is_free(&self, ipa: u64, size: u64) -> bool {
        ipa.checked_add(size).is_some() && self.overlapping(ipa, size).next().is_none()
    }

    /// Whether `[ipa, ipa+size)` is covered, with no gap, by ranges each of which satisfies
    /// `ok`.
    pub fn covered_by(&self, ipa: u64, size: u64, ok: impl Fn(&Range) -> bool) -> bool {
        let Some(end) = ipa.checked_add(size) else {
            return false;
        };
        let mut cur = ipa;
        for r in self.overlapping(ipa, size) {
            if r.ipa > cur || !ok(r) {
                return false;
            }
            cur = r.end();
        }
        cur >= end
    }

    /// Add a range. The caller checked [`VmSpace::is_free`].
    pub fn insert(&mut self, ipa: u64, size: u64, state: State) {
        debug_assert!(self.is_free(ipa, size), "range {ipa:#x}+{size:#x} overlaps");
        self.ranges.insert(ipa, Range { ipa, size, state });
    }

    /// Remove the range starting at `ipa`.
    pub fn remove(&mut self, ipa: u64) -> Option<Range> {
        self.ranges.remove(&ipa)
    }

    /// Split the range covering `at` (if any) so that one starts at `at`.
    pub fn split_at(&mut self, at: u64) {
        let Some(r) = self.at(at).copied() else {
            return;
        };
        if r.ipa == at {
            return;
        }
        let first = at - r.ipa;
        if let Some(x) = self.ranges.get_mut(&r.ipa) {
            x.size = first;
        }
        self.ranges.insert(
            at,
            Range {
                ipa: at,
                size: r.size - first,
                state: r.state.tail(first),
            },
        );
    }

    /// Split ranges so that range boundaries fall at `ipa` and `ipa + size`; returns the starts
    /// of the ranges inside `[ipa, ipa+size)`.
    pub fn carve(&mut self, ipa: u64, size: u64) -> Vec<u64> {
        let mut starts = Vec::new();
        self.carve_each(ipa, size, |r| starts.push(r.ipa));
        starts
    }

    /// [`VmSpace::carve`], then `f` on each range inside `[ipa, ipa+size)` (no list).
    pub fn carve_each(&mut self, ipa: u64, size: u64, mut f: impl FnMut(&mut Range)) {
        self.split_at(ipa);
        self.split_at(ipa + size);
        for (_, r) in self.ranges.range_mut(ipa..ipa + size) {
            f(r);
        }
    }

    /// Set the state of the range starting at `ipa`.
    pub fn set(&mut self, ipa: u64, state: State) {
        if let Some(r) = self.ranges.get_mut(&ipa) {
            r.state = state;
        }
    }

    /// Merge the owned range starting at `ipa` with its neighbours where they continue it (same
    /// rights, kind and provenance, physically contiguous), so reclaimed memory does not leave
    /// the space fragmented.
    pub fn coalesce(&mut self, ipa: u64) {
        let mut start = ipa;
        if let Some(prev) = self.ranges.range(..ipa).next_back().map(|(_, r)| *r) {
            if let Some(cur) = self.ranges.get(&ipa).copied() {
                if prev.end() == ipa && continues(&prev, &cur) {
                    self.ranges.remove(&ipa);
                    if let Some(p) = self.ranges.get_mut(&prev.ipa) {
                        p.size += cur.size;
                    }
                    start = prev.ipa;
                }
            }
        }
        let Some(cur) = self.ranges.get(&start).copied() else {
            return;
        };
        if let Some(next) = self.ranges.get(&cur.end()).copied() {
            if continues(&cur, &next) {
                self.ranges.remove(&next.ipa);
                if let Some(c) = self.ranges.get_mut(&start) {
                    c.size += next.size;
                }
            }
        }
    }

    /// A free IPA range of `size` aligned to `align` within `[lo, hi)`: the first fit at or
    /// after the cursor, else the first fit from `lo`. Moves the cursor past it.
    pub fn alloc(&mut self, size: u64, align: u64, lo: u64, hi: u64) -> Option<u64> {
        let start = if self.cursor > lo && self.cursor < hi {
            self.cursor
        } else {
            lo
        };
        let at = self
            .first_fit(size, align, start, hi)
            .or_else(|| self.first_fit(size, align, lo, hi))?;
        self.cursor = at + size;
        Some(at)
    }

    /// Restore the allocation cursor (a request that allocated and then failed).
    pub fn set_cursor(&mut self, c: u64) {
        self.cursor = c;
    }

    /// The allocation cursor.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    fn first_fit(&self, size: u64, align: u64, from: u64, hi: u64) -> Option<u64> {
        let up = |a: u64| a.checked_add(align - 1).map(|v| v & !(align - 1));
        let mut cand = up(from)?;
        loop {
            let end = cand.checked_add(size)?;
            if end > hi {
                return None;
            }
            match self.overlapping(cand, size).last() {
                Some(r) => cand = up(r.end())?,
                None => return Some(cand),
            }
        }
    }

    /// The owned, mapped memory covering `[ipa, ipa+size)` exactly, as (ipa, pa, size, owned)
    /// pieces, or `None` if any byte of it is not owned and mapped (lent, shared, borrowed,
    /// bound, golden or unused). A list, for tests; the RM uses [`VmSpace::try_owned_pieces`].
    #[cfg(test)]
    pub fn owned_pieces(&self, ipa: u64, size: u64) -> Option<Vec<(u64, u64, u64, Owned)>> {
        let mut v = Vec::new();
        self.try_owned_pieces(ipa, size, |i, pa, s, o| {
            v.push((i, pa, s, o));
            true
        })
        .then_some(v)
    }

    /// [`VmSpace::owned_pieces`] in one pass over the ranges, without a list: `f` gets each
    /// piece (ipa, pa, size, owned) in order and returns whether to go on. Returns whether
    /// every byte is owned and mapped and `f` took every piece; when not, `f` may have seen
    /// some pieces already (the caller drops what it made of them).
    pub fn try_owned_pieces(
        &self,
        ipa: u64,
        size: u64,
        mut f: impl FnMut(u64, u64, u64, Owned) -> bool,
    ) -> bool {
        let Some(end) = ipa.checked_add(size) else {
            return false;
        };
        let mut cur = ipa;
        for r in self.overlapping(ipa, size) {
            let State::Owned(o) = r.state else {
                return false;
            };
            if r.ipa > cur {
                return false;
            }
            let (lo, hi) = (r.ipa.max(ipa), r.end().min(end));
            if !f(lo, o.pa + (lo - r.ipa), hi - lo, o) {
                return false;
            }
            cur = r.end();
        }
        cur >= end
    }
}

/// Whether owned range `b` continues owned range `a` (adjacent in IPA and PA, same rights,
/// kind and provenance).
fn continues(a: &Range, b: &Range) -> bool {
    match (a.state, b.state) {
        (State::Owned(x), State::Owned(y)) => {
            let donated_continues = match (x.origin, y.origin) {
                (
                    Origin::Donated { from, ipa, rights },
                    Origin::Donated {
                        from: f2,
                        ipa: i2,
                        rights: r2,
                    },
                ) => from == f2 && rights == r2 && ipa + a.size == i2,
                (o1, o2) => o1 == o2,
            };
            a.end() == b.ipa
                && x.pa + a.size == y.pa
                && x.rights == y.rights
                && x.kind == y.kind
                && donated_continues
        }
        _ => false,
    }
}

/// Whether `a` is page aligned.
pub const fn page_aligned(a: u64) -> bool {
    a.is_multiple_of(PAGE_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(pa: u64) -> State {
        State::Owned(Owned {
            pa,
            rights: Rights::RWX,
            kind: MemKind::Normal,
            origin: Origin::Boot,
        })
    }

    #[test]
    fn lookup_split_carve_and_alloc() {
        let mut s = VmSpace::default();
        s.insert(0x1000, 0x3000, owned(0x9000));
        s.insert(0x4000, 0x1000, owned(0x20000));
        let p = s.owned_pieces(0x2000, 0x3000).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].1, p[0].2), (0xA000, 0x2000));
        assert_eq!((p[1].1, p[1].2), (0x20000, 0x1000));
        assert!(s.owned_pieces(0x4000, 0x2000).is_none());
        assert!(!s.is_free(0x3000, 0x1000));
        assert!(s.is_free(0x5000, 0x1000));
        // Carve out the middle page: three ranges, the PA follows.
        assert_eq!(s.carve(0x2000, 0x1000), vec![0x2000]);
        assert_eq!(s.at(0x3000).map(|r| r.state), Some(owned(0xB000)));
        s.remove(0x2000);
        assert!(s.owned_pieces(0x2000, 0x1000).is_none());
        assert!(s.is_free(0x2000, 0x1000));
        assert_eq!(s.alloc(0x1000, 0x1000, 0x1000, 0x10000), Some(0x2000));
        assert_eq!(s.alloc(0x2000, 0x1000, 0x1000, 0x10000), Some(0x5000));
        s.set_cursor(0);
        assert_eq!(s.alloc(0x2000, 0x4000, 0x0, 0x10000), Some(0x8000));
        assert_eq!(s.alloc(0x2000, 0x1000, 0x1000, 0x6000), None);
        // Give the page back: the three owned pieces merge into one.
        s.insert(0x2000, 0x1000, owned(0xA000));
        s.coalesce(0x2000);
        assert_eq!(
            s.at(0x1000).map(|r| (r.ipa, r.size)),
            Some((0x1000, 0x3000))
        );
    }
}
