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

/// A VM's gmem pools by id, as a map: a vector sorted by id (a VM has a few, at most
/// [`crate::gmem::MAX_GMEM_PER_VM`]), so the fault path's lookup reads the pool where the
/// vector starts rather than a tree node's keys and then its values. `Debug` prints it as the
/// `BTreeMap` it replaces did.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PoolMap {
    by_id: Vec<(u32, Pool)>,
}

impl core::fmt::Debug for PoolMap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl PoolMap {
    #[inline]
    fn find(&self, id: u32) -> Result<usize, usize> {
        // The common case, one pool, without the search's loop.
        match self.by_id.first() {
            Some((k, _)) if *k == id => Ok(0),
            _ => self.by_id.binary_search_by_key(&id, |(k, _)| *k),
        }
    }

    /// Pool `id`.
    #[inline]
    pub fn get(&self, id: &u32) -> Option<&Pool> {
        let i = self.find(*id).ok()?;
        self.by_id.get(i).map(|(_, p)| p)
    }

    /// Pool `id`, mutably.
    #[inline]
    pub fn get_mut(&mut self, id: &u32) -> Option<&mut Pool> {
        let i = self.find(*id).ok()?;
        self.by_id.get_mut(i).map(|(_, p)| p)
    }

    /// Whether pool `id` is here.
    pub fn contains_key(&self, id: &u32) -> bool {
        self.find(*id).is_ok()
    }

    /// Put `pool` in as `id`; the one it replaces, if any.
    pub fn insert(&mut self, id: u32, pool: Pool) -> Option<Pool> {
        match self.find(id) {
            Ok(i) => Some(core::mem::replace(&mut self.by_id[i].1, pool)),
            Err(i) => {
                self.by_id.insert(i, (id, pool));
                None
            }
        }
    }

    /// Take pool `id` out.
    pub fn remove(&mut self, id: &u32) -> Option<Pool> {
        let i = self.find(*id).ok()?;
        Some(self.by_id.remove(i).1)
    }

    /// How many pools.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The pools with their ids, by id.
    pub fn iter(&self) -> impl Iterator<Item = (&u32, &Pool)> + '_ {
        self.by_id.iter().map(|(k, p)| (k, p))
    }

    /// The ids, in order.
    pub fn keys(&self) -> impl Iterator<Item = &u32> + '_ {
        self.by_id.iter().map(|(k, _)| k)
    }

    /// The pools, by id.
    pub fn values(&self) -> impl Iterator<Item = &Pool> + '_ {
        self.by_id.iter().map(|(_, p)| p)
    }

    /// The ids, in order, consuming the map.
    pub fn into_keys(self) -> impl Iterator<Item = u32> {
        self.by_id.into_iter().map(|(k, _)| k)
    }
}

impl<'a> IntoIterator for &'a PoolMap {
    type Item = (&'a u32, &'a Pool);
    type IntoIter = core::iter::Map<core::slice::Iter<'a, (u32, Pool)>, PoolEntryFn<'a>>;
    fn into_iter(self) -> Self::IntoIter {
        self.by_id.iter().map(pool_entry as PoolEntryFn<'a>)
    }
}

/// [`PoolMap`]'s iterator's item of an entry.
pub type PoolEntryFn<'a> = fn(&'a (u32, Pool)) -> (&'a u32, &'a Pool);

fn pool_entry(e: &(u32, Pool)) -> (&u32, &Pool) {
    (&e.0, &e.1)
}

/// One VM's memory: its IPA ranges, its pools, its unsent COW_BROKEN IPAs.
///
/// The golden range the VM's copies last went to is held in the record itself (`hot`), with its
/// copy count, so a fault in it finds its range without the range tree's nodes (a dependent
/// chain of cache lines; docs/PERFORMANCE.md "Many VMs: where the misses go"). The tree's entry
/// for that range lags behind by the copies counted since; every reader sees the hot copy
/// instead, and every change of the ranges writes the count back first. `Debug` and `PartialEq`
/// see the ranges as they are, whether a range is hot or not.
#[derive(Clone, Default)]
pub struct VmSpace {
    ranges: BTreeMap<u64, Range>,
    /// The golden range of the last copy, its `copies` up to date (the tree's entry may lag).
    hot: Option<Range>,
    /// Where the next RM-chosen IPA search starts (next fit keeps allocation flat as the
    /// space fills).
    cursor: u64,
    /// The pools charged to this VM, by id.
    pub pools: PoolMap,
    /// IPAs copied since the last COW_BROKEN, kept as the wire's little-endian entries: the
    /// batch is COW_BROKEN's IPA list as it is, encoded without a copy.
    pub pending_cow: Vec<zerocopy::little_endian::U64>,
}

impl core::fmt::Debug for VmSpace {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        /// The ranges as a map, the hot one as it is now.
        struct Ranges<'a>(&'a VmSpace);
        impl core::fmt::Debug for Ranges<'_> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                let s = self.0;
                f.debug_map()
                    .entries(s.ranges.iter().map(|(k, r)| (k, s.current(r))))
                    .finish()
            }
        }
        f.debug_struct("VmSpace")
            .field("ranges", &Ranges(self))
            .field("cursor", &self.cursor)
            .field("pools", &self.pools)
            .field("pending_cow", &self.pending_cow)
            .finish()
    }
}

impl PartialEq for VmSpace {
    fn eq(&self, other: &Self) -> bool {
        self.cursor == other.cursor
            && self.pools == other.pools
            && self.pending_cow == other.pending_cow
            && self.ranges.keys().eq(other.ranges.keys())
            && self.ranges().eq(other.ranges())
    }
}

impl Eq for VmSpace {}

impl VmSpace {
    /// `r` (an entry of the tree) as it is now: the hot copy if `r` is the hot range.
    #[inline]
    fn current<'a>(&'a self, r: &'a Range) -> &'a Range {
        match &self.hot {
            Some(h) if h.ipa == r.ipa => h,
            _ => r,
        }
    }

    /// Write the hot range's copy count back to the tree and forget it: before any change of
    /// the ranges.
    #[inline]
    fn cool(&mut self) {
        if let Some(h) = self.hot.take() {
            if let Some(r) = self.ranges.get_mut(&h.ipa) {
                *r = h;
            }
        }
    }

    /// The range covering `ipa`.
    #[inline]
    pub fn at(&self, ipa: u64) -> Option<&Range> {
        if let Some(h) = &self.hot {
            if h.contains(ipa) {
                return Some(h);
            }
        }
        // Not the hot range's entry (it does not cover `ipa`, as the hot copy does not).
        let (_, r) = self.ranges.range(..=ipa).next_back()?;
        r.contains(ipa).then_some(r)
    }

    /// The range covering `ipa`, mutably.
    pub fn at_mut(&mut self, ipa: u64) -> Option<&mut Range> {
        self.cool();
        let (_, r) = self.ranges.range_mut(..=ipa).next_back()?;
        r.contains(ipa).then_some(r)
    }

    /// Count one more copy in the golden range starting at `range` (the fault path), and make
    /// it the hot range: the next faults in it find it without the tree. Nothing if no golden
    /// range starts there.
    #[inline]
    pub fn count_copy(&mut self, range: u64) {
        if let Some(Range {
            ipa,
            state: State::Golden(g),
            ..
        }) = &mut self.hot
        {
            if *ipa == range {
                g.copies += 1;
                return;
            }
        }
        self.count_copy_cold(range);
    }

    /// [`VmSpace::count_copy`] of a range that is not the hot one: it becomes the hot one.
    #[cold]
    #[inline(never)]
    fn count_copy_cold(&mut self, range: u64) {
        self.cool();
        if let Some(r) = self.ranges.get(&range) {
            if let State::Golden(mut g) = r.state {
                g.copies += 1;
                self.hot = Some(Range {
                    state: State::Golden(g),
                    ..*r
                });
            }
        }
    }

    /// Every range, in IPA order.
    pub fn ranges(&self) -> impl Iterator<Item = &Range> {
        self.ranges.values().map(|r| self.current(r))
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
        self.ranges.range(first..end).map(|(_, r)| self.current(r))
    }

    /// `f` on each range overlapping `[ipa, ipa+size)`, mutably, in order (no split: a range
    /// reaching outside stays whole; the caller keeps the space's invariants).
    pub fn overlapping_each_mut(&mut self, ipa: u64, size: u64, mut f: impl FnMut(&mut Range)) {
        self.cool();
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
        self.cool();
        self.ranges.insert(ipa, Range { ipa, size, state });
    }

    /// Remove the range starting at `ipa`.
    pub fn remove(&mut self, ipa: u64) -> Option<Range> {
        self.cool();
        self.ranges.remove(&ipa)
    }

    /// Split the range covering `at` (if any) so that one starts at `at`.
    pub fn split_at(&mut self, at: u64) {
        self.cool();
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
        self.cool();
        for (_, r) in self.ranges.range_mut(ipa..ipa + size) {
            f(r);
        }
    }

    /// Set the state of the range starting at `ipa`.
    pub fn set(&mut self, ipa: u64, state: State) {
        self.cool();
        if let Some(r) = self.ranges.get_mut(&ipa) {
            r.state = state;
        }
    }

    /// Merge the owned range starting at `ipa` with its neighbours where they continue it (same
    /// rights, kind and provenance, physically contiguous), so reclaimed memory does not leave
    /// the space fragmented.
    pub fn coalesce(&mut self, ipa: u64) {
        self.cool();
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

    fn golden(copies: u64) -> State {
        State::Golden(GoldenMap {
            golden: 1,
            offset: 0,
            cow: true,
            exec: false,
            pool: Some(7),
            cow_quota: None,
            copies,
            fault_action: FaultAction::InjectAbort,
        })
    }

    fn copies(s: &VmSpace, ipa: u64) -> Option<u64> {
        match s.at(ipa)?.state {
            State::Golden(g) => Some(g.copies),
            _ => None,
        }
    }

    /// The hot golden range: its copies are counted without the tree, every reader sees the
    /// count, every change of the ranges writes it back first, and neither `Debug` nor `==`
    /// can tell whether a range is hot.
    #[test]
    fn the_hot_range_counts_copies_and_reads_as_the_tree_would() {
        let mut s = VmSpace::default();
        s.insert(0x10_0000, 0x20_0000, golden(0));
        s.insert(0x40_0000, 0x20_0000, golden(5));
        s.insert(0x1000, 0x1000, owned(0x9000));
        let cold = s.clone();
        s.count_copy(0x10_0000);
        s.count_copy(0x10_0000);
        assert!(s.hot.is_some());
        assert_eq!(copies(&s, 0x10_3000), Some(2));
        // The tree's entry lags; every reader sees the hot count.
        assert_eq!(s.ranges.get(&0x10_0000).map(|r| r.state), Some(golden(0)));
        let counts: Vec<_> = s
            .ranges()
            .filter_map(|r| match r.state {
                State::Golden(g) => Some(g.copies),
                _ => None,
            })
            .collect();
        assert_eq!(counts, [2, 5]);
        assert!(s
            .overlapping(0x10_0000, 0x1000)
            .all(|r| r.state == golden(2)));
        // `Debug` and `==` see the ranges, not which one is hot.
        let mut same = cold.clone();
        same.set(0x10_0000, golden(2));
        assert_eq!(s, same);
        assert_eq!(format!("{s:?}"), format!("{same:?}"));
        assert_ne!(s, cold);
        // Another range's copy: the first one's count goes back to the tree.
        s.count_copy(0x40_0000);
        assert_eq!(s.ranges.get(&0x10_0000).map(|r| r.state), Some(golden(2)));
        assert_eq!(copies(&s, 0x40_0000), Some(6));
        assert_eq!(copies(&s, 0x10_0000), Some(2));
        // A change of the ranges writes the hot count back first (here a split of the hot
        // range: both halves keep the count, as a split always did).
        s.split_at(0x50_0000);
        assert!(s.hot.is_none());
        assert_eq!(copies(&s, 0x40_0000), Some(6));
        assert_eq!(copies(&s, 0x50_0000), Some(6));
        s.count_copy(0x50_0000);
        let r = s.remove(0x50_0000).unwrap();
        assert!(matches!(r.state, State::Golden(g) if g.copies == 7 && g.offset == 0x10_0000));
        assert!(s.hot.is_none());
        // No golden range starts there: nothing counted, nothing made hot.
        s.count_copy(0x1000);
        s.count_copy(0x2000);
        assert!(s.hot.is_none());
        // at_mut sees (and keeps) the count too.
        s.count_copy(0x10_0000);
        if let Some(State::Golden(g)) = s.at_mut(0x10_0000).map(|r| &mut r.state) {
            g.copies += 10;
        }
        assert_eq!(copies(&s, 0x10_0000), Some(13));
    }

    /// The pool map behaves as the `BTreeMap` it replaced: the same answers, order and
    /// `Debug` text, whatever order the pools come and go in.
    #[test]
    fn the_pool_map_behaves_like_a_btreemap() {
        let mut m = PoolMap::default();
        let mut b = BTreeMap::new();
        let pool = |id: u32, q: u64| Pool {
            id,
            owner: 0x80,
            quota_pages: q,
            ..Pool::default()
        };
        for (id, q) in [(5u32, 1u64), (2, 2), (9, 3), (5, 4), (0, 5), (7, 6)] {
            assert_eq!(m.insert(id, pool(id, q)), b.insert(id, pool(id, q)));
            assert_eq!(m.len(), b.len());
        }
        assert!(m.iter().eq(b.iter()));
        assert!(m.keys().eq(b.keys()));
        assert!(m.values().eq(b.values()));
        assert!((&m).into_iter().eq(b.iter()));
        assert_eq!(format!("{m:?}"), format!("{b:?}"));
        for id in [2u32, 3, 9, 9, 0] {
            assert_eq!(m.get(&id), b.get(&id));
            assert_eq!(m.contains_key(&id), b.contains_key(&id));
            if let (Some(x), Some(y)) = (m.get_mut(&id), b.get_mut(&id)) {
                x.used_pages += 1;
                y.used_pages += 1;
            }
            assert_eq!(m.remove(&id), b.remove(&id));
            assert_eq!(m.len(), b.len());
        }
        assert!(m.iter().eq(b.iter()));
        assert!(!m.is_empty());
        assert!(m.clone().into_keys().eq(b.clone().into_keys()));
    }
}
