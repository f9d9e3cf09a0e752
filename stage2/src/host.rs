//! Host-side simulation (feature `host`): a simulated physical arena for table pages, a TLB that
//! records every invalidation, and a trace that orders descriptor writes against invalidations
//! so tests can check break-before-make.

extern crate alloc;

use crate::memory::TableMemory;
use crate::tlb::{vttbr_vmid, TlbMaintenance};
use crate::PAGE_SIZE;
use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

/// Global sequence counter shared by every traced event, so events from an arena and a TLB
/// recorder can be merged into one order.
static SEQ: AtomicU64 = AtomicU64::new(0);

fn next_seq() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// One traced event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    /// A descriptor write (only recorded while the arena's tracing is on).
    Write {
        /// Table page written.
        table_pa: u64,
        /// Descriptor index.
        index: usize,
        /// Previous value.
        old: u64,
        /// New value.
        new: u64,
    },
    /// A page returned to the arena (only recorded while tracing is on).
    Free {
        /// The page.
        pa: u64,
    },
    /// `invalidate_ipas` for a VMID.
    TlbiIpas {
        /// VMID.
        vmid: u16,
        /// The IPAs.
        ipas: Vec<u64>,
    },
    /// `invalidate_vmid`.
    TlbiVmid {
        /// VMID.
        vmid: u16,
    },
}

/// An event with its global sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Traced {
    /// Position in the global order.
    pub seq: u64,
    /// The event.
    pub event: TraceEvent,
}

/// A simulated physical memory arena of 4 KiB pages starting at `base_pa`.
///
/// Backs translation tables on the host (and may back simulated guest pages too). Counts pages
/// in use, can fail the N-th allocation, and can trace descriptor writes.
pub struct HostArena {
    base: u64,
    pages: usize,
    /// First page of the block (page aligned, inside `block`).
    mem: NonNull<u8>,
    /// The allocation itself (freed on drop).
    block: NonNull<u8>,
    allocated: Vec<bool>,
    /// Free pages known to hold only zeros (freed with
    /// [`TableMemory::free_zeroed_table`]; any allocation clears the flag): `alloc_pages` does
    /// not zero them again.
    zeroed: Vec<bool>,
    free_list: Vec<usize>,
    /// Runs of pages freed together by `free_root` (first page, count), for the next
    /// `alloc_root` of that count; their pages are on `free_list` too, and whichever list
    /// hands a page out first wins (both check `allocated`).
    free_runs: Vec<(usize, usize)>,
    bump: usize,
    in_use: usize,
    alloc_calls: u64,
    fail_at: Option<u64>,
    trace: Option<Vec<Traced>>,
}

// SAFETY: the arena exclusively owns its memory block; the raw pointer is not shared with other
// threads except through `&mut`/`&` borrows of the arena itself.
unsafe impl Send for HostArena {}

impl HostArena {
    /// An arena of `pages` zeroed pages at physical address `base_pa`.
    ///
    /// # Panics
    /// If `base_pa` is not 64 KiB aligned (so concatenated roots can be aligned), `pages` is 0,
    /// or the host cannot allocate the memory.
    pub fn new(base_pa: u64, pages: usize) -> HostArena {
        assert!(
            base_pa.is_multiple_of(16 * PAGE_SIZE),
            "arena base must be 64 KiB aligned"
        );
        assert!(pages > 0, "arena needs at least one page");
        let layout = Self::layout(pages);
        // SAFETY: the layout has non-zero size.
        let block = NonNull::new(unsafe { alloc_zeroed(layout) }).expect("host allocation failed");
        let skew = block.as_ptr().align_offset(PAGE_SIZE as usize);
        // SAFETY: the block has a page of slack, so the first aligned byte and `pages` pages
        // after it lie inside it.
        let mem = unsafe { NonNull::new_unchecked(block.as_ptr().add(skew)) };
        HostArena {
            base: base_pa,
            pages,
            mem,
            block,
            allocated: vec![false; pages],
            zeroed: vec![false; pages],
            free_list: Vec::new(),
            free_runs: Vec::new(),
            bump: 0,
            in_use: 0,
            alloc_calls: 0,
            fail_at: None,
            trace: None,
        }
    }

    /// `pages` pages and one of slack, aligned only as the allocator aligns by itself: with a
    /// page-aligned layout the system allocator zeroes the whole block with a memset (and so
    /// backs all of it with host memory), while this takes the `calloc` path, whose large
    /// blocks are fresh zero mappings. A table arena then costs the host only the pages used.
    fn layout(pages: usize) -> Layout {
        Layout::from_size_align((pages + 1) * PAGE_SIZE as usize, 16).expect("arena too large")
    }

    /// First physical address of the arena.
    pub fn base_pa(&self) -> u64 {
        self.base
    }
    /// Number of pages in the arena.
    pub fn capacity(&self) -> usize {
        self.pages
    }
    /// Pages currently allocated.
    pub fn pages_in_use(&self) -> usize {
        self.in_use
    }
    /// Allocation calls made so far (successful or not).
    pub fn allocation_calls(&self) -> u64 {
        self.alloc_calls
    }
    /// Make the `n`-th allocation call from now fail (`1` = the next one). One-shot.
    pub fn fail_nth_allocation(&mut self, n: u64) {
        self.fail_at = Some(self.alloc_calls + n);
    }
    /// Cancel a pending injected failure.
    pub fn clear_failure(&mut self) {
        self.fail_at = None;
    }
    /// Start recording descriptor writes and page frees.
    pub fn enable_trace(&mut self) {
        self.trace.get_or_insert_with(Vec::new);
    }
    /// Take the recorded writes (tracing stays on).
    pub fn take_trace(&mut self) -> Vec<Traced> {
        self.trace.as_mut().map(core::mem::take).unwrap_or_default()
    }
    /// Whether `pa` lies in the arena.
    pub fn contains(&self, pa: u64) -> bool {
        pa >= self.base && (pa - self.base) / PAGE_SIZE < self.pages as u64
    }
    /// Whether the page holding `pa` is allocated.
    pub fn is_allocated(&self, pa: u64) -> bool {
        self.contains(pa) && self.allocated[((pa - self.base) / PAGE_SIZE) as usize]
    }
    /// Whether the page holding `pa` is free and known to hold only zeros (freed with
    /// [`HostArena::free_zeroed_page`], not allocated since): the next `alloc_pages` that takes
    /// it does not zero it.
    pub fn is_known_zero(&self, pa: u64) -> bool {
        self.contains(pa) && self.zeroed[((pa - self.base) / PAGE_SIZE) as usize]
    }

    /// Allocate `count` (a power of two) zeroed contiguous pages aligned to `count` pages.
    /// A page freed as all zeros ([`TableMemory::free_zeroed_table`]) and not allocated since
    /// is not zeroed again.
    pub fn alloc_pages(&mut self, count: usize) -> Option<u64> {
        let first = self.alloc_run(count)?;
        for i in first..first + count {
            if !core::mem::take(&mut self.zeroed[i]) {
                // SAFETY: page `i` lies inside the arena block and was just allocated.
                unsafe {
                    core::ptr::write_bytes(
                        self.mem.as_ptr().add(i * PAGE_SIZE as usize),
                        0,
                        PAGE_SIZE as usize,
                    )
                };
            }
        }
        Some(self.base + first as u64 * PAGE_SIZE)
    }

    /// As [`HostArena::alloc_pages`], but the pages' bytes in the arena block are left as
    /// they are: for callers that keep page contents elsewhere (a simulator's data pages), so
    /// the allocation neither writes 4 KiB per page nor touches fresh host memory.
    pub fn alloc_pages_unzeroed(&mut self, count: usize) -> Option<u64> {
        let first = self.alloc_run(count)?;
        // The caller may write the pages: they are no longer known to be zero.
        self.zeroed[first..first + count].fill(false);
        Some(self.base + first as u64 * PAGE_SIZE)
    }

    /// Mark a free aligned run of `count` pages allocated; its first index. Counts the call
    /// and injects failures.
    fn alloc_run(&mut self, count: usize) -> Option<usize> {
        self.alloc_calls += 1;
        if self.fail_at == Some(self.alloc_calls) {
            self.fail_at = None;
            return None;
        }
        if count == 0 || !count.is_power_of_two() {
            return None;
        }
        let first = self.find(count)?;
        for i in first..first + count {
            self.allocated[i] = true;
        }
        self.in_use += count;
        Some(first)
    }

    /// Index of the first page of a free, aligned run of `count` pages.
    fn find(&mut self, count: usize) -> Option<usize> {
        let base_idx = (self.base / PAGE_SIZE) as usize;
        let aligned = |i: usize| (base_idx + i).is_multiple_of(count);
        if count == 1 {
            while let Some(i) = self.free_list.pop() {
                if !self.allocated[i] {
                    return Some(i);
                }
            }
        } else {
            // A run of this size freed whole (concatenated root tables of a VM torn down):
            // without this, every new root took fresh pages from the bump pointer (fresh host
            // memory, a first-touch fault per page) and, once that reached the top, a scan of
            // the whole arena.
            let mut k = self.free_runs.len();
            while k > 0 {
                k -= 1;
                let (i, c) = self.free_runs[k];
                if self.allocated[i..i + c].iter().any(|&a| a) {
                    // Some page went out singly since: forget the run.
                    self.free_runs.swap_remove(k);
                } else if c == count {
                    self.free_runs.swap_remove(k);
                    return Some(i);
                }
            }
        }
        // Bump allocation, giving skipped pages to the free list. The next aligned index by
        // arithmetic (`count` is a power of two): the loop it replaces was vectorised into
        // ~150 instructions of setup for every single-page allocation.
        let skew = (base_idx + self.bump) & (count - 1);
        let b = if skew == 0 {
            self.bump
        } else {
            self.bump + (count - skew)
        };
        if b + count <= self.pages {
            for i in self.bump..b {
                self.free_list.push(i);
            }
            self.bump = b + count;
            return Some(b);
        }
        // Arena exhausted at the top: scan for a free aligned run.
        (0..self.pages.saturating_sub(count - 1))
            .filter(|&i| aligned(i))
            .find(|&i| self.allocated[i..i + count].iter().all(|a| !a))
    }

    /// Free `count` pages at `pa`.
    ///
    /// # Panics
    /// If a page is outside the arena or not allocated (a double free is a bug in the caller).
    pub fn free_pages(&mut self, pa: u64, count: usize) {
        for k in 0..count as u64 {
            let p = pa + k * PAGE_SIZE;
            assert!(
                self.is_allocated(p),
                "freeing page {p:#x} that is not allocated"
            );
            let i = ((p - self.base) / PAGE_SIZE) as usize;
            self.allocated[i] = false;
            self.zeroed[i] = false;
            self.free_list.push(i);
            self.in_use -= 1;
            if let Some(t) = self.trace.as_mut() {
                t.push(Traced {
                    seq: next_seq(),
                    event: TraceEvent::Free { pa: p },
                });
            }
        }
    }

    /// Free the page at `pa`, which holds only zeros: the next [`HostArena::alloc_pages`] that
    /// takes it does not zero it again (unless another allocation took it in between).
    ///
    /// # Panics
    /// As [`HostArena::free_pages`]; in debug builds also if the page is not all zeros.
    pub fn free_zeroed_page(&mut self, pa: u64) {
        debug_assert!(
            self.page_ptr(pa).is_some_and(|p| {
                // SAFETY: `p` is the arena's page holding `pa`, 4 KiB inside the block.
                let b = unsafe { core::slice::from_raw_parts(p, PAGE_SIZE as usize) };
                b.iter().all(|&x| x == 0)
            }),
            "page {pa:#x} freed as zeroed holds data"
        );
        self.free_pages(pa, 1);
        self.zeroed[((pa - self.base) / PAGE_SIZE) as usize] = true;
    }

    /// Host pointer to the page holding `pa`, if it is in the arena.
    pub fn page_ptr(&self, pa: u64) -> Option<*mut u8> {
        self.contains(pa).then(|| {
            let off = (pa & !(PAGE_SIZE - 1)) - self.base;
            // SAFETY: `off` is inside the arena block.
            unsafe { self.mem.as_ptr().add(off as usize) }
        })
    }
}

impl Drop for HostArena {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with the same layout.
        unsafe { dealloc(self.block.as_ptr(), Self::layout(self.pages)) }
    }
}

// SAFETY: pages come from the arena block, are zeroed, aligned as requested, exclusively handed
// out until freed, and `table_ptr` points into the block.
unsafe impl TableMemory for HostArena {
    fn alloc_table(&mut self) -> Option<u64> {
        self.alloc_pages(1)
    }
    fn alloc_table_unzeroed(&mut self) -> Option<u64> {
        self.alloc_pages_unzeroed(1)
    }
    fn free_table(&mut self, pa: u64) {
        self.free_pages(pa, 1)
    }
    fn free_zeroed_table(&mut self, pa: u64) {
        self.free_zeroed_page(pa)
    }
    fn table_ptr(&self, pa: u64) -> *mut u64 {
        assert!(
            self.is_allocated(pa),
            "table access to unallocated page {pa:#x}"
        );
        self.page_ptr(pa)
            .map_or(core::ptr::null_mut(), |p| p.cast())
    }
    fn alloc_root(&mut self, count: usize) -> Option<u64> {
        self.alloc_pages(count)
    }
    fn free_root(&mut self, pa: u64, count: usize) {
        self.free_pages(pa, count);
        if count > 1 {
            self.free_runs
                .push((((pa - self.base) / PAGE_SIZE) as usize, count));
        }
    }
    fn fill_table(&mut self, table_pa: u64, first: u64, step: u64) {
        if self.trace.is_some() {
            for i in 0..crate::ENTRIES_PER_TABLE {
                self.write_entry(table_pa, i, first.wrapping_add(i as u64 * step));
            }
            return;
        }
        let ptr = self.table_ptr(table_pa);
        // SAFETY: allocated table page (checked by `table_ptr`), 512 aligned entries; the
        // table is not linked yet, so no walker races with these stores.
        unsafe { crate::memory::fill_sequence(ptr, first, step) };
    }
    fn write_entry(&mut self, table_pa: u64, index: usize, value: u64) {
        let ptr = self.table_ptr(table_pa);
        assert!(index < crate::ENTRIES_PER_TABLE);
        // SAFETY: allocated table page (checked above), index in bounds, single 64-bit store.
        let slot = unsafe { AtomicU64::from_ptr(ptr.add(index)) };
        match self.trace.as_mut() {
            None => slot.store(value, Ordering::Release),
            Some(t) => {
                let old = slot.swap(value, Ordering::AcqRel);
                t.push(Traced {
                    seq: next_seq(),
                    event: TraceEvent::Write {
                        table_pa,
                        index,
                        old,
                        new: value,
                    },
                });
            }
        }
    }
}

/// A [`HostArena`] shared by several address spaces (one per VM) behind a lock. A spin lock
/// (the critical sections are a few loads and stores) whose waiters yield: on the host a
/// holder can be preempted, and a waiter spinning through that would burn its timeslice.
#[derive(Clone)]
pub struct SharedArena(Arc<spin::mutex::Mutex<HostArena, spin::relax::Yield>>);

impl SharedArena {
    /// Share `arena`.
    pub fn new(arena: HostArena) -> SharedArena {
        SharedArena(Arc::new(spin::mutex::Mutex::new(arena)))
    }
    /// Lock the arena (e.g. to allocate simulated guest pages or read counters).
    pub fn lock(&self) -> spin::mutex::MutexGuard<'_, HostArena> {
        self.0.lock()
    }
}

// SAFETY: delegates to `HostArena`; arena memory never moves, so a pointer obtained under the
// lock stays valid while the page is allocated.
unsafe impl TableMemory for SharedArena {
    fn alloc_table(&mut self) -> Option<u64> {
        self.0.lock().alloc_table()
    }
    fn alloc_table_unzeroed(&mut self) -> Option<u64> {
        self.0.lock().alloc_table_unzeroed()
    }
    fn free_table(&mut self, pa: u64) {
        self.0.lock().free_table(pa)
    }
    fn free_zeroed_table(&mut self, pa: u64) {
        self.0.lock().free_zeroed_table(pa)
    }
    fn table_ptr(&self, pa: u64) -> *mut u64 {
        self.0.lock().table_ptr(pa)
    }
    fn alloc_root(&mut self, count: usize) -> Option<u64> {
        self.0.lock().alloc_root(count)
    }
    fn free_root(&mut self, pa: u64, count: usize) {
        self.0.lock().free_root(pa, count)
    }
    fn write_entry(&mut self, table_pa: u64, index: usize, value: u64) {
        self.0.lock().write_entry(table_pa, index, value)
    }
    fn fill_table(&mut self, table_pa: u64, first: u64, step: u64) {
        self.0.lock().fill_table(table_pa, first, step)
    }
    fn table_is_zero(&self, table_pa: u64) -> bool {
        self.0.lock().table_is_zero(table_pa)
    }
}

/// A TLB that records every invalidation (with a global sequence number) instead of doing it.
#[derive(Default, Debug)]
pub struct RecordingTlb {
    events: Vec<Traced>,
    syncs: usize,
}

impl RecordingTlb {
    /// An empty recorder.
    pub fn new() -> RecordingTlb {
        RecordingTlb::default()
    }
    /// Every invalidation so far, in order.
    pub fn events(&self) -> &[Traced] {
        &self.events
    }
    /// Take the recorded events.
    pub fn take(&mut self) -> Vec<Traced> {
        core::mem::take(&mut self.events)
    }
    /// All IPAs invalidated one by one so far, in order.
    pub fn invalidated_ipas(&self) -> Vec<u64> {
        self.events
            .iter()
            .flat_map(|t| match &t.event {
                TraceEvent::TlbiIpas { ipas, .. } => ipas.clone(),
                _ => Vec::new(),
            })
            .collect()
    }
    /// Number of `sync_writes` calls so far (one per operation that wrote descriptors).
    pub fn write_syncs(&self) -> usize {
        self.syncs
    }
    /// Number of whole-VMID invalidations so far.
    pub fn vmid_invalidations(&self) -> usize {
        self.events
            .iter()
            .filter(|t| matches!(t.event, TraceEvent::TlbiVmid { .. }))
            .count()
    }
}

impl TlbMaintenance for RecordingTlb {
    fn invalidate_ipas(&mut self, vttbr: u64, ipas: &[u64]) {
        self.events.push(Traced {
            seq: next_seq(),
            event: TraceEvent::TlbiIpas {
                vmid: vttbr_vmid(vttbr),
                ipas: ipas.to_vec(),
            },
        });
    }
    fn sync_writes(&mut self, _vttbr: u64) {
        self.syncs += 1;
    }
    fn invalidate_vmid(&mut self, vttbr: u64) {
        self.events.push(Traced {
            seq: next_seq(),
            event: TraceEvent::TlbiVmid {
                vmid: vttbr_vmid(vttbr),
            },
        });
    }
}

/// Merge traces (arena writes and TLB events) into one sequence order.
pub fn merge_traces(a: Vec<Traced>, b: Vec<Traced>) -> Vec<Traced> {
    let mut all = a;
    all.extend(b);
    all.sort_by_key(|t| t.seq);
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TableMemory;

    #[test]
    fn a_freed_root_run_is_reused_before_fresh_pages() {
        let mut a = HostArena::new(0x4000_0000, 64);
        let r = a.alloc_root(2).unwrap();
        let t = a.alloc_table().unwrap();
        a.free_table(t);
        a.free_root(r, 2);
        // The same two pages again (they are zeroed), not the next aligned pair of the bump.
        let r2 = a.alloc_root(2).unwrap();
        assert_eq!(r2, r);
        assert!(a.table_is_zero(r2) && a.table_is_zero(r2 + PAGE_SIZE));
        // Single pages come from the free list, skipping the pages the root took back.
        let t2 = a.alloc_table().unwrap();
        assert_eq!(t2, t);
        a.free_root(r2, 2);
        // A run one of whose pages went out singly is not handed out as a run.
        let p = a.alloc_table().unwrap();
        assert!(p == r2 || p == r2 + PAGE_SIZE);
        let r3 = a.alloc_root(2).unwrap();
        assert!(r3 != r2);
        assert!(!a.is_allocated(r2) || !a.is_allocated(r2 + PAGE_SIZE));
        assert_eq!(a.pages_in_use(), 4);
    }

    /// The bump pointer hands out runs aligned to their size, the pages it skips go to the free
    /// list (single pages take them first), and an arena too small for an aligned run says so.
    #[test]
    fn bump_runs_are_aligned_and_skipped_pages_are_not_lost() {
        let base = 0x4000_0000;
        let mut a = HostArena::new(base, 16);
        assert_eq!(a.alloc_pages_unzeroed(1), Some(base));
        // Pages 1..4 skipped for a 4-page run at index 4; page 8 for the 8-aligned run next.
        assert_eq!(a.alloc_root(4), Some(base + 4 * PAGE_SIZE));
        assert_eq!(a.alloc_root(8), Some(base + 8 * PAGE_SIZE));
        let mut singles: alloc::vec::Vec<u64> =
            (0..3).map(|_| a.alloc_pages_unzeroed(1).unwrap()).collect();
        singles.sort();
        assert_eq!(
            singles,
            [1, 2, 3].map(|i| base + i * PAGE_SIZE),
            "the skipped pages"
        );
        assert_eq!(a.pages_in_use(), 16);
        assert_eq!(a.alloc_pages_unzeroed(1), None, "every page is in use");
        // With 4 pages taken, no 8-aligned run of 8 is left in 8 pages.
        let mut b = HostArena::new(base, 8);
        assert_eq!(b.alloc_root(4), Some(base));
        assert!(b.alloc_root(8).is_none(), "no 8-aligned run of 8 fits");
        assert_eq!(b.alloc_root(4), Some(base + 4 * PAGE_SIZE));
    }

    #[test]
    fn table_is_zero_sees_any_one_descriptor() {
        let mut a = HostArena::new(0x4000_0000, 4);
        let t = a.alloc_table().unwrap();
        assert!(a.table_is_zero(t));
        for i in [0, 1, 7, 8, 255, 504, 511] {
            a.write_entry(t, i, 1 << 63);
            assert!(!a.table_is_zero(t), "entry {i}");
            a.write_entry(t, i, 0);
            assert!(a.table_is_zero(t), "entry {i} cleared");
        }
        // Through the shared arena and a box, the same.
        let mut s: alloc::boxed::Box<dyn TableMemory> = alloc::boxed::Box::new(SharedArena::new(a));
        let t = s.alloc_table().unwrap();
        s.write_entry(t, 300, 3);
        assert!(!s.table_is_zero(t));
    }

    /// A page freed as zeroed comes back from `alloc_table` without a memset, and only until
    /// another allocation takes it: a page used for anything else in between (written, freed
    /// the ordinary way) is zeroed again, so no descriptor or data leaks into a new table.
    #[test]
    fn a_zeroed_free_skips_zeroing_only_until_another_use() {
        let mut a = HostArena::new(0x4000_0000, 4);
        let t = a.alloc_table().unwrap();
        a.free_zeroed_table(t);
        assert!(a.is_known_zero(t) && !a.is_allocated(t));
        // The skip is real: bytes written behind the arena's back (never done outside this
        // test: a free page is nobody's) are not cleared by the next allocation.
        let p = a.page_ptr(t).unwrap();
        // SAFETY: `p` is the arena's page at `t`, inside its block; nothing else uses it.
        unsafe { p.add(8).write(0x5A) };
        assert_eq!(a.alloc_table(), Some(t), "the free list is LIFO");
        assert!(!a.is_known_zero(t));
        assert_eq!(a.read_entry(t, 1), 0x5A);
        a.write_entry(t, 1, 0);
        // Given to another use (a data page, written), then freed: zeroed on the next
        // allocation as a table.
        a.free_zeroed_table(t);
        assert_eq!(a.alloc_pages_unzeroed(1), Some(t));
        assert!(!a.is_known_zero(t));
        // SAFETY: as above; the page is allocated to this test.
        unsafe { core::ptr::write_bytes(p, 0xA5, PAGE_SIZE as usize) };
        a.free_pages(t, 1);
        assert!(!a.is_known_zero(t));
        assert_eq!(a.alloc_table(), Some(t));
        assert!(a.table_is_zero(t));
        // A table with a descriptor freed the ordinary way: zeroed when allocated again.
        a.write_entry(t, 511, 3);
        a.free_table(t);
        assert!(!a.is_known_zero(t));
        assert_eq!(a.alloc_table(), Some(t));
        assert!(a.table_is_zero(t));
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "freed as zeroed holds data")]
    fn a_zeroed_free_of_a_page_with_data_is_caught_in_debug_builds() {
        let mut a = HostArena::new(0x4000_0000, 4);
        let t = a.alloc_table().unwrap();
        a.write_entry(t, 100, 3);
        a.free_zeroed_table(t);
    }
}
