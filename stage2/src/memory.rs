//! Table memory: where translation table pages come from.

use core::sync::atomic::{AtomicU64, Ordering};

/// Supplier of 4 KiB translation-table pages, addressed by physical address.
///
/// On hardware this is a page allocator over memory the hypervisor owns; on the host it is a
/// simulated physical arena (`host::HostArena`, feature `host`).
///
/// # Example: an identity-mapped pool (as at EL2, where PA == VA)
///
/// ```
/// use core::cell::UnsafeCell;
/// use gunyah_stage2::{host::RecordingTlb, AddressSpace, Attrs, MapFlags, PaRange, Stage2Config};
/// use gunyah_stage2::{TableMemory, PAGE_SIZE};
///
/// #[repr(C, align(4096))]
/// struct Page(UnsafeCell<[u64; 512]>);
///
/// struct Pool<const N: usize> {
///     pages: [Page; N],
///     used: [bool; N],
/// }
///
/// // SAFETY: pages are zeroed on allocation, handed out once until freed, 4 KiB aligned, and
/// // the "PA" is the page's address, which `table_ptr` turns back into a pointer.
/// unsafe impl<const N: usize> TableMemory for Pool<N> {
///     fn alloc_table(&mut self) -> Option<u64> {
///         let i = self.used.iter().position(|u| !u)?;
///         self.used[i] = true;
///         let p = self.pages[i].0.get();
///         // SAFETY: the page is ours and not referenced elsewhere.
///         unsafe { p.write([0; 512]) };
///         Some(p as u64)
///     }
///     fn free_table(&mut self, pa: u64) {
///         let base = self.pages.as_ptr() as u64;
///         self.used[((pa - base) / PAGE_SIZE) as usize] = false;
///     }
///     fn table_ptr(&self, pa: u64) -> *mut u64 {
///         pa as *mut u64
///     }
/// }
///
/// let pool: Box<Pool<8>> = Box::new(Pool {
///     pages: core::array::from_fn(|_| Page(UnsafeCell::new([0; 512]))),
///     used: [false; 8],
/// });
/// // 39-bit IPA: a single level-1 root table, so the default `alloc_root` (one page) suffices.
/// let cfg = Stage2Config::new(39, PaRange::Bits40, 1);
/// let mut vm = AddressSpace::new(pool, RecordingTlb::new(), cfg).unwrap();
/// vm.map(0x8000_0000, 0x1000, 0x4000_0000, Attrs::normal_rw(), MapFlags::PAGES).unwrap();
/// assert_eq!(vm.table_pages(), 3);
/// # // `Box<Pool>` implements `TableMemory` through the blanket impl for `Box<M>`.
/// ```
///
/// # Safety
///
/// Implementations guarantee that:
/// * a PA returned by [`alloc_table`](Self::alloc_table) / [`alloc_root`](Self::alloc_root)
///   names zeroed, page-aligned memory used by nothing else until it is freed, and that
///   `alloc_root(n)` returns `n` physically contiguous pages aligned to `n * 4 KiB`;
/// * [`table_ptr`](Self::table_ptr) of such a PA returns a pointer valid for reads and writes of
///   512 naturally aligned `u64`s for as long as the page stays allocated;
/// * the PA is what the MMU must see in a descriptor for that page.
pub unsafe trait TableMemory {
    /// Allocate one zeroed 4 KiB table page; `None` when out of memory.
    fn alloc_table(&mut self) -> Option<u64>;

    /// Allocate one table page whose contents do not matter: every one of its 512 entries will
    /// be written ([`fill_table`](Self::fill_table), a block split) before any walker can see
    /// it, so zeroing it first would only write 4 KiB twice. Freed with
    /// [`free_table`](Self::free_table). The default allocates a zeroed page.
    fn alloc_table_unzeroed(&mut self) -> Option<u64> {
        self.alloc_table()
    }

    /// Return a page obtained from [`alloc_table`](Self::alloc_table). The stage-2 code calls this
    /// only after the page is unreachable from the tables and the TLBs have been invalidated.
    fn free_table(&mut self, pa: u64);

    /// As [`free_table`](Self::free_table), for a page whose 512 entries are all zero: an unmap
    /// left the table empty ([`table_is_zero`](Self::table_is_zero) said so, with nothing
    /// pending to write into it) and unlinked it. An implementation may hand the page out
    /// again from [`alloc_table`](Self::alloc_table) without zeroing it, as long as nothing
    /// else wrote it in between (an allocation for another use clears that knowledge). Mapping
    /// and unmapping a page in a region of its own otherwise zeroes two table pages each time.
    /// The default forgets the hint and calls `free_table`.
    fn free_zeroed_table(&mut self, pa: u64) {
        self.free_table(pa)
    }

    /// Pointer to the 512 descriptors of the allocated table page at `pa`.
    fn table_ptr(&self, pa: u64) -> *mut u64;

    /// Allocate `count` (1, 2, 4, 8 or 16) zeroed, physically contiguous pages aligned to
    /// `count * 4 KiB` for concatenated root tables. The default supports only `count == 1`.
    fn alloc_root(&mut self, count: usize) -> Option<u64> {
        if count == 1 {
            self.alloc_table()
        } else {
            None
        }
    }

    /// Free pages obtained from [`alloc_root`](Self::alloc_root). The default frees page by page.
    fn free_root(&mut self, pa: u64, count: usize) {
        for i in 0..count as u64 {
            self.free_table(pa + i * crate::PAGE_SIZE);
        }
    }

    /// Keep the first `to` of the `from` pages of a root obtained from
    /// [`alloc_root`](Self::alloc_root) at `pa` (`to` < `from`, both powers of two) and free
    /// the rest, which hold only zeros (an empty address space given a smaller IPA size in
    /// place). The default frees them page by page with
    /// [`free_zeroed_table`](Self::free_zeroed_table).
    fn shrink_root(&mut self, pa: u64, from: usize, to: usize) {
        for i in to..from {
            self.free_zeroed_table(pa + i as u64 * crate::PAGE_SIZE);
        }
    }

    /// Read descriptor `index` (0..512) of the table page at `table_pa` with one 64-bit load.
    fn read_entry(&self, table_pa: u64, index: usize) -> u64 {
        debug_assert!(index < crate::ENTRIES_PER_TABLE);
        // SAFETY: `table_pa` is an allocated table page (trait contract), so the pointer is valid
        // and 8-byte aligned for 512 entries; `index < 512`. Access is atomic so a concurrent
        // hardware or software walker never races with a non-atomic access.
        unsafe { AtomicU64::from_ptr(self.table_ptr(table_pa).add(index)).load(Ordering::Acquire) }
    }

    /// Whether all 512 descriptors of the table page at `table_pa` are zero (an unmap frees a
    /// table that it left empty). Called by the writer of the tables, with `&mut` access to
    /// them in [`Committer`](crate::update), so nothing writes the page while it is read. The
    /// default takes the table's pointer once and reads the entries as plain memory, 128 bytes
    /// at a time (vector loads where the target has them), stopping at the first group holding
    /// a descriptor: one [`read_entry`](Self::read_entry) per entry (each resolving the table's
    /// address again) was most of the time of unmapping a page in a table of its own on the
    /// host.
    fn table_is_zero(&self, table_pa: u64) -> bool {
        // SAFETY: `table_pa` is an allocated table page (trait contract), so the pointer is
        // valid and aligned for 512 `u64`s. Only the tables' writer calls this, and it holds
        // them exclusively, so no store races with these loads (walkers only read; the stage-2
        // configuration does not let hardware update descriptors).
        let t: &[u64; crate::ENTRIES_PER_TABLE] = unsafe { &*self.table_ptr(table_pa).cast() };
        // Fixed-size groups of 16 (128 bytes): the OR of a group is straight-line vector code
        // with one test and branch per group, where a slice iterator kept a loop per group.
        let (groups, _) = t.as_chunks::<16>();
        groups
            .iter()
            .all(|g| g.iter().fold(0, |acc, &d| acc | d) == 0)
    }

    /// Fill all 512 descriptors of a table page that no walker can see yet (a block being
    /// split) with the sequence `first + i * step`: a split block's leaves differ only in their
    /// output address, which sits in the middle of the descriptor and never carries out of it
    /// inside one block. The default takes the table's pointer once and writes plain stores
    /// (the release store that later links the table orders them); implementations that
    /// override [`write_entry`](Self::write_entry) to observe writes override this too.
    fn fill_table(&mut self, table_pa: u64, first: u64, step: u64) {
        // SAFETY: `table_pa` is an allocated table page (trait contract), so the pointer is
        // valid for 512 entries; no walker can reach the table yet, so nothing races with
        // these stores.
        unsafe { fill_sequence(self.table_ptr(table_pa), first, step) }
    }

    /// Write descriptor `index` of the table page at `table_pa` with one 64-bit store (release:
    /// earlier writes to a new next-level table are visible before the descriptor that links it).
    /// Implementations that override this (e.g. to trace) must keep the single store.
    fn write_entry(&mut self, table_pa: u64, index: usize, value: u64) {
        debug_assert!(index < crate::ENTRIES_PER_TABLE);
        // SAFETY: as in `read_entry`; the single atomic store cannot tear.
        unsafe {
            AtomicU64::from_ptr(self.table_ptr(table_pa).add(index)).store(value, Ordering::Release)
        }
    }
}

/// Write `first + i * step` to the 512 entries at `t`, from running values each advanced by a
/// constant per round (one add and one store per entry, not a multiply): on x86-64 (the host)
/// eight entries a round in four SSE2 registers, 1.4 instructions per entry instead of the 3 of
/// computing `first + i * step` per entry (the compiler keeps the portable loop scalar); elsewhere
/// eight running values a round (aarch64 platforms override `fill_table` with store pairs).
///
/// # Safety
///
/// `t` is valid for writes of 512 `u64`s, 8-byte aligned, and nothing else accesses them
/// meanwhile.
pub(crate) unsafe fn fill_sequence(t: *mut u64, first: u64, step: u64) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{__m128i, _mm_add_epi64, _mm_set_epi64x, _mm_storeu_si128};
        let v = |k: u64| first.wrapping_add(k.wrapping_mul(step)) as i64;
        // SAFETY: SSE2 is part of the x86-64 baseline; these only compute on registers.
        let (mut a, mut b, mut c, mut d, inc) = unsafe {
            (
                _mm_set_epi64x(v(1), v(0)),
                _mm_set_epi64x(v(3), v(2)),
                _mm_set_epi64x(v(5), v(4)),
                _mm_set_epi64x(v(7), v(6)),
                _mm_set_epi64x(step.wrapping_mul(8) as i64, step.wrapping_mul(8) as i64),
            )
        };
        let p = t.cast::<__m128i>();
        for r in 0..crate::ENTRIES_PER_TABLE / 8 {
            // SAFETY: `r < 64`, so the four 16-byte stores at `p + 4r` are inside the 512
            // entries (caller's contract); unaligned stores need no alignment.
            unsafe {
                _mm_storeu_si128(p.add(4 * r), a);
                _mm_storeu_si128(p.add(4 * r + 1), b);
                _mm_storeu_si128(p.add(4 * r + 2), c);
                _mm_storeu_si128(p.add(4 * r + 3), d);
                a = _mm_add_epi64(a, inc);
                b = _mm_add_epi64(b, inc);
                c = _mm_add_epi64(c, inc);
                d = _mm_add_epi64(d, inc);
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let t = t.cast::<[u64; 8]>();
        let mut acc: [u64; 8] = core::array::from_fn(|k| first.wrapping_add(k as u64 * step));
        let inc = step.wrapping_mul(8);
        for r in 0..crate::ENTRIES_PER_TABLE / 8 {
            // SAFETY: `r < 64`, so the 64 bytes at `t + r` are inside the 512 entries
            // (caller); `[u64; 8]` has the alignment of `u64`.
            unsafe { t.add(r).write(acc) };
            for a in &mut acc {
                *a = a.wrapping_add(inc);
            }
        }
    }
}

#[cfg(feature = "host")]
extern crate alloc;

// SAFETY: forwards to `M`, which upholds the contract; the box only adds an indirection.
#[cfg(feature = "host")]
unsafe impl<M: TableMemory + ?Sized> TableMemory for alloc::boxed::Box<M> {
    fn alloc_table(&mut self) -> Option<u64> {
        (**self).alloc_table()
    }
    fn alloc_table_unzeroed(&mut self) -> Option<u64> {
        (**self).alloc_table_unzeroed()
    }
    fn free_table(&mut self, pa: u64) {
        (**self).free_table(pa)
    }
    fn free_zeroed_table(&mut self, pa: u64) {
        (**self).free_zeroed_table(pa)
    }
    fn table_ptr(&self, pa: u64) -> *mut u64 {
        (**self).table_ptr(pa)
    }
    fn alloc_root(&mut self, count: usize) -> Option<u64> {
        (**self).alloc_root(count)
    }
    fn free_root(&mut self, pa: u64, count: usize) {
        (**self).free_root(pa, count)
    }
    fn shrink_root(&mut self, pa: u64, from: usize, to: usize) {
        (**self).shrink_root(pa, from, to)
    }
    fn read_entry(&self, table_pa: u64, index: usize) -> u64 {
        (**self).read_entry(table_pa, index)
    }
    fn write_entry(&mut self, table_pa: u64, index: usize, value: u64) {
        (**self).write_entry(table_pa, index, value)
    }
    fn fill_table(&mut self, table_pa: u64, first: u64, step: u64) {
        (**self).fill_table(table_pa, first, step)
    }
    fn table_is_zero(&self, table_pa: u64) -> bool {
        (**self).table_is_zero(table_pa)
    }
}
