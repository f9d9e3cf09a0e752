//! The host simulator platform: the real `gunyah-stage2` tables for every
//! VM, their table pages allocated from a simulated partition (a
//! `HostArena`), and sparse, zero-filled memory contents for HLOS RAM and
//! partition pages.

use std::ptr::NonNull;

use gunyah_stage2::host::{HostArena, SharedArena};
use gunyah_stage2::{AddressSpace, PaRange, TableMemory, TlbMaintenance};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::platform::*;
use crate::stage2_spaces::{SpaceParts, Stage2Backed, Stage2Spaces};

/// Simulated machine layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// HLOS RAM: (PA, size). Mapped 1:1 by the RM at boot.
    pub hlos_ram: (u64, u64),
    /// First PA of the RM's partition.
    pub partition_base: u64,
    /// Pages in the partition.
    pub partition_pages: u64,
    /// IPA size of every address space, in bits.
    pub ipa_bits: u8,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            hlos_ram: (0x4000_0000, 0x4000_0000),
            partition_base: 0x1_0000_0000,
            partition_pages: 16384,
            ipa_bits: 40,
        }
    }
}

impl SimConfig {
    /// A tiny machine for fuzzing and model tests: HLOS with 4 MiB of RAM at 0x40000000 and a
    /// partition of 256 pages (1 MiB) at 0x1_0000_0000. An RM on it builds in tens of
    /// microseconds, where [`SimConfig::default`] takes tens of milliseconds (most of it
    /// preparing the 64 MiB partition), and a fuzzer reaches partition exhaustion quickly.
    pub fn small() -> SimConfig {
        SimConfig {
            hlos_ram: (0x4000_0000, 0x40_0000),
            partition_base: 0x1_0000_0000,
            partition_pages: 256,
            ipa_bits: 40,
        }
    }
}

/// Why a simulated machine cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimError {
    /// The layout is invalid: which field, and why.
    Config(&'static str),
    /// The RM could not boot HLOS on it.
    Boot(PlatformError),
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimError::Config(why) => write!(f, "invalid simulated platform: {why}"),
            SimError::Boot(e) => write!(f, "cannot boot HLOS on the simulated platform: {e}"),
        }
    }
}

impl std::error::Error for SimError {}

/// Physical addresses are 40 bits (VTCR_EL2.PS of the simulated tables).
const PA_LIMIT: u64 = 1 << 40;

impl SimConfig {
    /// Whether all of `[pa, pa + len)` is simulated memory (HLOS RAM or the partition).
    pub fn holds(&self, pa: u64, len: u64) -> bool {
        let inside =
            |base: u64, size: u64| pa >= base && pa - base <= size && len <= size - (pa - base);
        inside(self.hlos_ram.0, self.hlos_ram.1)
            || inside(self.partition_base, self.partition_pages * PAGE_SIZE)
    }

    /// Check the layout: IPA size 32..=40 bits, page-aligned non-empty HLOS
    /// RAM inside the IPA space, a 64 KiB-aligned partition of 1..=2^22
    /// pages, nothing beyond 40-bit PAs and no overlap.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |why| Err(SimError::Config(why));
        if !(32..=40).contains(&self.ipa_bits) {
            return bad("ipa_bits must be 32..=40");
        }
        let (rb, rs) = self.hlos_ram;
        if rs == 0 || !rb.is_multiple_of(PAGE_SIZE) || !rs.is_multiple_of(PAGE_SIZE) {
            return bad("hlos_ram must be page aligned and not empty");
        }
        let Some(re) = rb.checked_add(rs).filter(|e| *e <= 1u64 << self.ipa_bits) else {
            return bad("hlos_ram must fit the IPA space (it is mapped 1:1)");
        };
        if !self.partition_base.is_multiple_of(16 * PAGE_SIZE) {
            return bad("partition_base must be 64 KiB aligned");
        }
        if self.partition_pages == 0 || self.partition_pages > 1 << 22 {
            return bad("partition_pages must be 1..=4194304");
        }
        let pe = self.partition_base + self.partition_pages * PAGE_SIZE;
        if pe > PA_LIMIT {
            return bad("the partition must lie below 2^40");
        }
        if rb < pe && self.partition_base < re {
            return bad("hlos_ram and the partition overlap");
        }
        Ok(())
    }
}

/// One flat block of simulated memory (HLOS RAM or the partition), indexed
/// by physical address: page `i` of the range is bytes `i * 4096..` of the
/// block. The block is reserved zeroed and untouched (the host backs a page
/// only when it is first written), so the simulator costs only what it
/// touches; `backed` says which pages have been written since, so reads of
/// the rest return zeros without touching them either.
///
/// The partition's block is the partition allocator's own (`HostArena`, where
/// the stage-2 tables live), so a partition page has one host page whether it
/// serves as a table or holds data: a page freed as a table and handed out as
/// a copy (or back) costs no new host page fault.
struct Region {
    base: u64,
    len: u64,
    mem: NonNull<u8>,
    /// One bit per page: written as data at least once (host memory behind it).
    /// Atomic, so that the fault path marks its copy without the arena's lock.
    backed: Box<[AtomicU64]>,
    /// For the partition, one bit per page: handed out as a data page (not a
    /// table, not free). Only those pages are read or written here; `None`
    /// (HLOS RAM): every page is data.
    data: Option<Box<[AtomicU64]>>,
    /// The allocator owning the block, when the region borrows it (kept alive
    /// here); `None`: the region allocated its block and frees it.
    owner: Option<SharedArena>,
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("base", &self.base)
            .field("len", &self.len)
            .finish()
    }
}

/// Host alignment of a region's block. At most the allocator's natural
/// alignment, so `alloc_zeroed` takes the `calloc` path, whose large blocks
/// come from fresh anonymous mappings (zero without a memset; a page-aligned
/// layout would make the allocator memset the whole block and back it).
const REGION_ALIGN: usize = 16;

impl Region {
    fn new(base: u64, len: u64) -> Region {
        let layout = Self::layout(len);
        // SAFETY: the layout has non-zero size (`len` ≥ one page, checked by `validate`).
        let mem = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })
            .unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        Region {
            base,
            len,
            mem,
            backed: Self::bitmap(len),
            data: None,
            owner: None,
        }
    }

    /// The partition: the block of the allocator `arena` (which must cover `[base, base + len)`).
    fn borrowed(base: u64, len: u64, arena: &SharedArena) -> Option<Region> {
        let mem = {
            let a = arena.lock();
            if a.base_pa() != base || (a.capacity() as u64) * PAGE_SIZE != len {
                return None;
            }
            NonNull::new(a.page_ptr(base)?)?
        };
        Some(Region {
            base,
            len,
            mem,
            backed: Self::bitmap(len),
            data: Some(Self::bitmap(len)),
            owner: Some(arena.clone()),
        })
    }

    /// One clear bit per page of a region of `len` bytes.
    fn bitmap(len: u64) -> Box<[AtomicU64]> {
        (0..(len / PAGE_SIZE).div_ceil(64))
            .map(|_| AtomicU64::new(0))
            .collect()
    }

    /// The bitmap word and bit of `page` (inside the region).
    fn bit(&self, page: u64) -> (usize, u64) {
        let i = (page - self.base) / PAGE_SIZE;
        ((i / 64) as usize, 1 << (i % 64))
    }

    fn layout(len: u64) -> std::alloc::Layout {
        match std::alloc::Layout::from_size_align(len as usize, REGION_ALIGN) {
            Ok(l) => l,
            // `validate` bounds every region below 2^40 bytes.
            Err(e) => panic!("simulated memory of {len:#x} bytes: {e}"),
        }
    }

    fn contains(&self, pa: u64, len: u64) -> bool {
        pa >= self.base && pa - self.base <= self.len && len <= self.len - (pa - self.base)
    }

    // The bits are ordered by what hands the page around (the partition's lock, the RM's
    // locks); their own accesses need only be atomic, hence `Relaxed`.
    fn is_backed(&self, page: u64) -> bool {
        let (w, b) = self.bit(page);
        self.backed[w].load(Ordering::Relaxed) & b != 0 && self.is_data(page)
    }

    fn is_data(&self, page: u64) -> bool {
        let (w, b) = self.bit(page);
        self.data
            .as_ref()
            .is_none_or(|d| d[w].load(Ordering::Relaxed) & b != 0)
    }

    /// Mark the page a data page (`on`), or not: then its contents are gone
    /// (it reads as zeros when it is handed out as data again).
    /// Returns whether it held contents that are now gone.
    fn set_data(&self, page: u64, on: bool) -> bool {
        let (w, b) = self.bit(page);
        let Some(d) = self.data.as_ref() else {
            return false;
        };
        if on {
            d[w].fetch_or(b, Ordering::Relaxed);
            return false;
        }
        let was_data = d[w].fetch_and(!b, Ordering::Relaxed) & b != 0;
        let was_backed = self.backed[w].fetch_and(!b, Ordering::Relaxed) & b != 0;
        was_data && was_backed
    }

    /// Mark the page backed; true if it was not.
    fn back(&self, page: u64) -> bool {
        let (w, b) = self.bit(page);
        self.backed[w].fetch_or(b, Ordering::Relaxed) & b == 0
    }

    /// Host pointer to `pa` (inside the region).
    fn ptr(&self, pa: u64) -> *mut u8 {
        debug_assert!(self.contains(pa, 1));
        // SAFETY: `pa - base < len`, so the offset is inside the block.
        unsafe { self.mem.as_ptr().add((pa - self.base) as usize) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if self.owner.is_some() {
            return;
        }
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.mem.as_ptr(), Self::layout(self.len)) }
    }
}

/// The simulated physical memory: HLOS RAM and the partition, each a flat
/// block indexed by physical address (see [`Region`]). A simulated page copy
/// is two index computations and a 4 KiB memcpy.
#[derive(Debug)]
pub struct Arena {
    regions: [Region; 2],
    /// Pages with host memory behind them (written at least once).
    backed_pages: AtomicU64,
}

// SAFETY: the bitmaps and counter are atomics; the blocks' bytes are only
// accessed through the arena's `unsafe` methods, whose callers promise that
// nothing else accesses those bytes meanwhile ([`ArenaGuard`] holds the
// arena's access lock; the fault path copies into a page fresh from the
// allocator that no one else holds). The HLOS block is the arena's own. The partition block
// is shared with the partition allocator, whose table memory
// (`PartitionTables`, `SimMmu`) writes and reads table pages without this
// lock: the arena touches only partition pages marked data (handed out by
// `alloc_page`, `alloc_contiguous` or `alloc_page_copy` and not freed since),
// which the allocator never hands out as tables until `free_page` has
// cleared the mark, so the two never access the same bytes.
unsafe impl Send for Arena {}
// SAFETY: as for `Send`: `&Arena` gives no byte access without an `unsafe` promise.
unsafe impl Sync for Arena {}

impl Arena {
    fn new(cfg: &SimConfig, partition: &SharedArena) -> Arena {
        let (pb, pl) = (cfg.partition_base, cfg.partition_pages * PAGE_SIZE);
        Arena {
            regions: [
                Region::new(cfg.hlos_ram.0, cfg.hlos_ram.1),
                Region::borrowed(pb, pl, partition).unwrap_or_else(|| Region::new(pb, pl)),
            ],
            backed_pages: AtomicU64::new(0),
        }
    }

    /// The region holding all of `[pa, pa + len)`.
    fn region(&self, pa: u64, len: u64) -> Option<usize> {
        self.regions.iter().position(|r| r.contains(pa, len))
    }

    fn is_memory(&self, pa: u64, len: u64) -> bool {
        self.region(pa, len).is_some()
    }

    /// Copy one whole page (both page aligned, both memory): a memcpy when
    /// the source was ever written, else the destination reads as zeros.
    ///
    /// # Safety
    /// Nothing else may access `dst` while this runs, nor write `src`.
    unsafe fn copy_page(&self, dst: u64, src: u64) {
        let (Some(d), Some(s)) = (self.region(dst, PAGE_SIZE), self.region(src, PAGE_SIZE)) else {
            return;
        };
        let (d, s) = (&self.regions[d], &self.regions[s]);
        if dst == src || !d.is_data(dst) {
            return;
        }
        if s.is_backed(src) {
            if d.back(dst) {
                self.backed_pages.fetch_add(1, Ordering::Relaxed);
            }
            // SAFETY: whole distinct pages inside their blocks (checked above), so they do
            // not overlap; no other access to them (the caller's promise).
            unsafe { std::ptr::copy_nonoverlapping(s.ptr(src), d.ptr(dst), PAGE_SIZE as usize) }
        } else if d.is_backed(dst) {
            // SAFETY: a whole page inside its block; no other access (the caller's promise).
            unsafe { std::ptr::write_bytes(d.ptr(dst), 0, PAGE_SIZE as usize) }
        }
    }

    /// Mark `count` partition pages from `pa` as data pages (handed out) or
    /// not (freed: their contents are dropped).
    fn set_data(&self, pa: u64, count: u64, on: bool) {
        let Some(r) = self.region(pa, count * PAGE_SIZE) else {
            return;
        };
        for k in 0..count {
            if self.regions[r].set_data(pa + k * PAGE_SIZE, on) {
                self.backed_pages.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Copy memory at `pa` into `buf`; false if any byte is not memory.
    ///
    /// # Safety
    /// Nothing may write those bytes meanwhile.
    unsafe fn read(&self, pa: u64, buf: &mut [u8]) -> bool {
        let Some(r) = self.region(pa, buf.len() as u64) else {
            return false;
        };
        let r = &self.regions[r];
        let mut done = 0;
        while done < buf.len() {
            let a = pa + done as u64;
            let (page, off) = (a & !(PAGE_SIZE - 1), a % PAGE_SIZE);
            let n = (PAGE_SIZE - off).min((buf.len() - done) as u64) as usize;
            if r.is_backed(page) {
                // SAFETY: `[a, a + n)` lies inside the region (checked above); `buf` is a
                // distinct Rust allocation; no writer (the caller's promise).
                unsafe { std::ptr::copy_nonoverlapping(r.ptr(a), buf[done..].as_mut_ptr(), n) };
            } else {
                buf[done..done + n].fill(0);
            }
            done += n;
        }
        true
    }

    /// Copy `data` to memory at `pa`; false (nothing written) if any byte is not memory.
    ///
    /// # Safety
    /// Nothing else may access those bytes meanwhile.
    unsafe fn write(&self, pa: u64, data: &[u8]) -> bool {
        let Some(r) = self.region(pa, data.len() as u64) else {
            return false;
        };
        let end = pa + data.len() as u64;
        let first = pa & !(PAGE_SIZE - 1);
        // A partition page that is not a data page (a table, or free) is not written.
        if (first..end)
            .step_by(PAGE_SIZE as usize)
            .any(|p| !self.regions[r].is_data(p))
        {
            return false;
        }
        let mut page = first;
        while page < end {
            // The block is zero where never written, so backing a page needs no fill.
            if self.regions[r].back(page) {
                self.backed_pages.fetch_add(1, Ordering::Relaxed);
            }
            page += PAGE_SIZE;
        }
        // SAFETY: `[pa, end)` lies inside the region (checked above); `data` is a distinct Rust
        // allocation; no other access (the caller's promise).
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.regions[r].ptr(pa), data.len())
        };
        true
    }

    /// Zero `[pa, pa + len)`; false (nothing zeroed) if any byte is not memory.
    ///
    /// # Safety
    /// Nothing else may access those bytes meanwhile.
    unsafe fn zero(&self, pa: u64, len: u64) -> bool {
        let Some(r) = self.region(pa, len) else {
            return false;
        };
        let r = &self.regions[r];
        // Only pages ever written hold anything; the rest already read as zeros.
        let end = pa + len;
        let mut a = pa;
        while a < end {
            let page = a & !(PAGE_SIZE - 1);
            let n = (page + PAGE_SIZE).min(end) - a;
            if r.is_backed(page) {
                // SAFETY: `[a, a + n)` lies inside the region; no other access (the caller's
                // promise).
                unsafe { std::ptr::write_bytes(r.ptr(a), 0, n as usize) };
            }
            a += n;
        }
        true
    }

    /// The host address of simulated memory at `pa`, for benchmarks that evict a page from
    /// the CPU caches before timing an access to it. Reads and writes go through the arena.
    pub fn host_ptr(&self, pa: u64) -> Option<*const u8> {
        let r = self.region(pa, 1)?;
        Some(self.regions[r].ptr(pa).cast_const())
    }

    /// Pages holding data now: every page of HLOS RAM ever written and every
    /// partition data page written since it was handed out. What the
    /// simulated memory costs the host, besides table pages (a freed page
    /// keeps its host page for reuse; it is counted again when written again).
    pub fn backed_pages(&self) -> u64 {
        self.backed_pages.load(Ordering::Relaxed)
    }
}

/// A shared handle on the arena. Simulated accesses read and write it one at a time, under
/// [`lock`](Self::lock); the concurrent fault path marks and fills a page fresh from the
/// allocator without that lock (the bitmaps are atomic), so vCPUs of different VMs do not
/// queue on it.
#[derive(Clone, Debug)]
pub struct ArenaHandle(Arc<ArenaShared>);

#[derive(Debug)]
struct ArenaShared {
    arena: Arena,
    /// Held by every [`ArenaGuard`]: its byte accesses exclude each other.
    access: Mutex<()>,
}

impl ArenaHandle {
    fn new(arena: Arena) -> ArenaHandle {
        ArenaHandle(Arc::new(ArenaShared {
            arena,
            access: Mutex::new(()),
        }))
    }

    /// Lock the arena for reading and writing it.
    pub fn lock(&self) -> ArenaGuard<'_> {
        ArenaGuard {
            arena: &self.0.arena,
            _access: self.0.access.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// The arena without its lock: only for bookkeeping (atomic) and for pages no one else
    /// holds.
    fn unlocked(&self) -> &Arena {
        &self.0.arena
    }
}

/// The arena, locked for reading and writing its bytes.
pub struct ArenaGuard<'a> {
    arena: &'a Arena,
    _access: MutexGuard<'a, ()>,
}

// SAFETY (for each byte access below): the guard holds the arena's access lock, which every
// other byte access holds too, except the fault path's, which touches only a page fresh from
// the allocator that is mapped nowhere and that no one else holds yet.
impl ArenaGuard<'_> {
    /// Copy memory at `pa` into `buf`; false if any byte is not memory.
    pub fn read(&self, pa: u64, buf: &mut [u8]) -> bool {
        // SAFETY: see above.
        unsafe { self.arena.read(pa, buf) }
    }

    /// Copy `data` to memory at `pa`; false (nothing written) if any byte is not memory.
    pub fn write(&self, pa: u64, data: &[u8]) -> bool {
        // SAFETY: see above.
        unsafe { self.arena.write(pa, data) }
    }

    fn zero(&self, pa: u64, len: u64) -> bool {
        // SAFETY: see above.
        unsafe { self.arena.zero(pa, len) }
    }

    fn copy_page(&self, dst: u64, src: u64) {
        // SAFETY: see above.
        unsafe { self.arena.copy_page(dst, src) }
    }

    /// See [`Arena::host_ptr`].
    pub fn host_ptr(&self, pa: u64) -> Option<*const u8> {
        self.arena.host_ptr(pa)
    }

    /// See [`Arena::backed_pages`].
    pub fn backed_pages(&self) -> u64 {
        self.arena.backed_pages()
    }
}

impl std::ops::Deref for ArenaGuard<'_> {
    type Target = Arena;
    fn deref(&self) -> &Arena {
        self.arena
    }
}

/// TLB maintenance for simulated address spaces: counts invalidations.
#[derive(Debug, Default, Clone, Copy)]
pub struct SimTlb {
    /// Per-IPA invalidations issued.
    pub ipa_invalidations: u64,
    /// Whole-VMID invalidations issued.
    pub vmid_invalidations: u64,
}

impl TlbMaintenance for SimTlb {
    fn invalidate_ipas(&mut self, _vttbr: u64, ipas: &[u64]) {
        self.ipa_invalidations += ipas.len() as u64;
    }
    fn invalidate_vmid(&mut self, _vttbr: u64) {
        self.vmid_invalidations += 1;
    }
}

/// One VM's real stage-2 tables, with table pages from the partition.
pub type SimSpace = AddressSpace<PartitionTables, SimTlb>;

/// Table memory for the simulated VMs: table pages are allocated from the
/// shared partition arena under its lock, while descriptor reads and writes
/// go straight to the arena's memory block (locking per descriptor access
/// cost more than the table walks themselves).
#[derive(Clone)]
pub struct PartitionTables {
    arena: SharedArena,
    base_pa: u64,
    base_ptr: *mut u8,
    len: u64,
}

// SAFETY: `base_ptr` points into the arena's memory block, which is a
// separate heap allocation owned by the `HostArena` behind `arena`'s `Arc`;
// it never moves and lives as long as any clone of `arena` (this struct holds
// one). Each table page is used by exactly one address space, whose
// operations take `&mut self`, so sending or sharing the pointer across
// threads creates no aliasing beyond what the page ownership already rules out.
unsafe impl Send for PartitionTables {}
// SAFETY: as for `Send`; `&PartitionTables` only computes addresses.
unsafe impl Sync for PartitionTables {}

impl PartitionTables {
    fn new(arena: SharedArena) -> Option<PartitionTables> {
        let (base_pa, len, base_ptr) = {
            let a = arena.lock();
            (
                a.base_pa(),
                a.capacity() as u64 * PAGE_SIZE,
                a.page_ptr(a.base_pa())?,
            )
        };
        Some(PartitionTables {
            arena,
            base_pa,
            base_ptr,
            len,
        })
    }
}

// SAFETY: allocation and freeing are delegated to the `HostArena`, which
// hands out zeroed, aligned, exclusively owned pages; `table_ptr` returns the
// address of that page inside the arena block (valid while the page stays
// allocated, see the `Send` justification), which is what `page_ptr` returns.
unsafe impl TableMemory for PartitionTables {
    fn alloc_table(&mut self) -> Option<u64> {
        self.arena.lock().alloc_table()
    }
    fn alloc_table_unzeroed(&mut self) -> Option<u64> {
        self.arena.lock().alloc_table_unzeroed()
    }
    fn free_table(&mut self, pa: u64) {
        self.arena.lock().free_table(pa)
    }
    fn free_zeroed_table(&mut self, pa: u64) {
        self.arena.lock().free_zeroed_table(pa)
    }
    #[inline]
    fn table_ptr(&self, pa: u64) -> *mut u64 {
        let off = pa.wrapping_sub(self.base_pa);
        assert!(off < self.len, "table page {pa:#x} outside the partition");
        // SAFETY: `off` is inside the arena block (checked above).
        unsafe { self.base_ptr.add((off & !(PAGE_SIZE - 1)) as usize).cast() }
    }
    fn alloc_root(&mut self, count: usize) -> Option<u64> {
        self.arena.lock().alloc_root(count)
    }
    fn free_root(&mut self, pa: u64, count: usize) {
        self.arena.lock().free_root(pa, count)
    }
}

/// Where a new simulated VM's stage 2 gets its pieces: table pages from the
/// partition arena, a counting TLB.
pub struct SimParts(SharedArena);

impl SpaceParts for SimParts {
    type Mem = PartitionTables;
    type Tlb = SimTlb;
    fn parts(&mut self, _vmid: Vmid) -> Option<(PartitionTables, SimTlb)> {
        Some((PartitionTables::new(self.0.clone())?, SimTlb::default()))
    }
}

/// The simulator platform: real `gunyah-stage2` tables whose pages come
/// from the partition arena, and sparse simulated memory contents.
pub struct SimPlatform {
    cfg: SimConfig,
    arena: ArenaHandle,
    partition: SharedArena,
    spaces: Stage2Spaces<SimParts>,
}

impl std::fmt::Debug for SimPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimPlatform")
            .field("cfg", &self.cfg)
            .field("vms", &self.spaces.vmids().collect::<Vec<_>>())
            .finish()
    }
}

impl SimPlatform {
    /// A simulated machine, or why `cfg` does not describe one.
    pub fn new(cfg: SimConfig) -> Result<SimPlatform, SimError> {
        cfg.validate()?;
        let partition = SharedArena::new(HostArena::new(
            cfg.partition_base,
            cfg.partition_pages as usize,
        ));
        let parts = SimParts(partition.clone());
        Ok(SimPlatform {
            arena: ArenaHandle::new(Arena::new(&cfg, &partition)),
            partition,
            spaces: Stage2Spaces::new(parts, cfg.ipa_bits, PaRange::Bits40),
            cfg,
        })
    }

    /// The memory contents.
    pub fn arena(&self) -> &ArenaHandle {
        &self.arena
    }

    /// The partition's page allocator (table pages and RM pages).
    pub fn partition(&self) -> &SharedArena {
        &self.partition
    }

    /// A VM's real stage-2 tables (locked while the guard lives).
    pub fn space(&self, vmid: Vmid) -> Option<crate::sync::MutexGuard<'_, SimSpace>> {
        self.spaces.get(vmid)
    }

    /// A VM's real stage-2 tables, mutably (the fault path of issue 5 uses this).
    pub fn space_mut(&mut self, vmid: Vmid) -> Option<&mut SimSpace> {
        self.spaces.get_mut(vmid)
    }
}

impl Stage2Backed for SimPlatform {
    type Parts = SimParts;
    // Guest accesses are simulated here (SIM_VM_READ/WRITE, `Rm::vm_read`,
    // `Rm::vm_write`), through the real tables.
    const SIMULATES_ACCESS: bool = true;
    fn stage2(&self) -> &Stage2Spaces<SimParts> {
        &self.spaces
    }
    fn stage2_mut(&mut self) -> &mut Stage2Spaces<SimParts> {
        &mut self.spaces
    }
}

impl PhysMem for SimPlatform {
    // Data pages take only their place in the partition allocator: their
    // contents live in the sparse `Arena`, so the partition block's bytes are
    // not zeroed (that memset and its host page faults were a third of a CoW
    // fault's cost). Tables still get zeroed pages (`alloc_table`).
    fn alloc_page(&mut self) -> Option<u64> {
        let pa = self.partition.lock().alloc_pages_unzeroed(1)?;
        let a = self.arena.lock();
        a.set_data(pa, 1, true);
        a.zero(pa, PAGE_SIZE);
        Some(pa)
    }
    fn alloc_contiguous(&mut self, count: u64) -> Option<u64> {
        let n = usize::try_from(count).ok()?;
        let pa = self.partition.lock().alloc_pages_unzeroed(n)?;
        let a = self.arena.lock();
        a.set_data(pa, count, true);
        a.zero(pa, count * PAGE_SIZE);
        Some(pa)
    }
    fn alloc_page_copy(&mut self, src: u64) -> Option<u64> {
        self.alloc_page_copy_shared(src)
    }
    fn free_page(&mut self, pa: u64) {
        self.free_page_shared(pa)
    }
    fn read(&self, pa: u64, buf: &mut [u8]) -> bool {
        self.arena.lock().read(pa, buf)
    }
    fn write(&mut self, pa: u64, data: &[u8]) -> bool {
        self.arena.lock().write(pa, data)
    }
    fn zero(&mut self, pa: u64, len: u64) -> bool {
        self.arena.lock().zero(pa, len)
    }
    fn copy(&mut self, dst: u64, src: u64, len: u64) -> bool {
        let a = self.arena.lock();
        if !a.is_memory(src, len) || !a.is_memory(dst, len) {
            return false;
        }
        if len == PAGE_SIZE && src.is_multiple_of(PAGE_SIZE) && dst.is_multiple_of(PAGE_SIZE) {
            // One whole page (the copy-on-write case): no bounce buffer.
            a.copy_page(dst, src);
            return true;
        }
        let mut buf = vec![0u8; len as usize];
        a.read(src, &mut buf) && a.write(dst, &buf)
    }
    fn partition_usage(&self) -> PartitionUsage {
        let p = self.partition.lock();
        PartitionUsage {
            total: p.capacity() as u64,
            free: (p.capacity() - p.pages_in_use()) as u64,
            tables: self.spaces.table_pages() as u64,
        }
    }
}

// The partition and the arena take their own locks, so the fault path allocates through
// `&self` (the concurrent fault path, `crate::concurrent`); `PhysMem`'s `alloc_page_copy` and
// `free_page` are these.
impl SharedPhysMem for SimPlatform {
    fn alloc_page_copy_shared(&self, src: u64) -> Option<u64> {
        if !src.is_multiple_of(PAGE_SIZE) || !self.cfg.holds(src, PAGE_SIZE) {
            return None;
        }
        let pa = self.partition.lock().alloc_pages_unzeroed(1)?;
        // The copy overwrites the whole page (or zeroes it when the source
        // reads as zeros), so stale contents are never visible. Neither the
        // bookkeeping (atomic bits) nor the copy takes the arena's lock, so vCPUs
        // of different VMs copy at the same time.
        let a = self.arena.unlocked();
        a.set_data(pa, 1, true);
        // SAFETY: `pa` was just allocated to this fault and is mapped nowhere yet, so
        // nothing else accesses it; `src` is a golden page (the only caller is the CoW
        // fault), which nothing writes while it is mapped, and the fault holds the RM
        // lock for reading, which keeps the image from being released meanwhile.
        unsafe { a.copy_page(pa, src) };
        Some(pa)
    }
    fn alloc_zeroed_page_shared(&self) -> Option<u64> {
        let pa = self.partition.lock().alloc_pages_unzeroed(1)?;
        let a = self.arena.unlocked();
        a.set_data(pa, 1, true);
        // SAFETY: `pa` was just allocated to this fault and is mapped nowhere yet.
        unsafe { a.zero(pa, PAGE_SIZE) };
        Some(pa)
    }
    fn free_page_shared(&self, pa: u64) {
        let mut p = self.partition.lock();
        let freed = p.is_allocated(pa);
        // Unmarked first, so the arena never touches a page the allocator may
        // hand out as a table next.
        let a = self.arena.lock();
        if freed {
            a.set_data(pa, 1, false);
            p.free_pages(pa, 1);
        } else {
            a.zero(pa, PAGE_SIZE);
        }
    }
}

/// An RM on the default simulated platform (HLOS with 1 GiB at 0x40000000).
pub fn default_rm() -> crate::Rm<SimPlatform> {
    match sim_rm(SimConfig::default(), crate::RmConfig::default()) {
        Ok(rm) => rm,
        // The default layout is a constant that a unit test boots.
        Err(e) => panic!("{e}"),
    }
}

/// An RM on the [`SimConfig::small`] platform (HLOS with 4 MiB at 0x40000000, 256 partition
/// pages), cheap enough to build once per fuzz input or proptest case.
pub fn small_rm() -> crate::Rm<SimPlatform> {
    match sim_rm(SimConfig::small(), crate::RmConfig::default()) {
        Ok(rm) => rm,
        // A constant layout that a unit test boots.
        Err(e) => panic!("{e}"),
    }
}

/// An RM on a simulated platform; HLOS RAM (1:1) comes from `sim.hlos_ram`.
pub fn sim_rm(
    sim: SimConfig,
    mut cfg: crate::RmConfig,
) -> Result<crate::Rm<SimPlatform>, SimError> {
    cfg.hlos_ram = Some((sim.hlos_ram.0, sim.hlos_ram.0, sim.hlos_ram.1));
    let plat = SimPlatform::new(sim)?;
    crate::Rm::new(plat, cfg).map_err(SimError::Boot)
}

/// The host simulator for a plan's platform: HLOS RAM and the partition as
/// the platform config describes them (one range each, HLOS VMID 3, IPA
/// size ≤ 40 bits: what the simulator models), or what does not fit it.
pub fn sim_rm_for(p: &crate::config::PlatformConfig) -> Result<crate::Rm<SimPlatform>, String> {
    if p.hlos_vmid != crate::vm::VMID_HLOS {
        return Err(format!(
            "hlos-vmid {}: the RM knows HLOS as VMID {}",
            p.hlos_vmid,
            crate::vm::VMID_HLOS
        ));
    }
    let [hlos] = p.hlos_memory.as_slice() else {
        return Err("hlos-memory: the simulator takes exactly one range".into());
    };
    let [part] = p.partition.as_slice() else {
        return Err("partition: the simulator takes exactly one range".into());
    };
    let sim = SimConfig {
        hlos_ram: (hlos.base, hlos.size),
        partition_base: part.base,
        partition_pages: part.size / crate::platform::PAGE_SIZE,
        ipa_bits: p.ipa_bits,
    };
    sim_rm(sim, crate::RmConfig::default()).map_err(|e| format!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_small_layout_boots_with_hlos_ram_mapped() {
        let rm = small_rm();
        assert!(rm.check_isolation().is_empty());
        let usage = rm.platform().partition_usage();
        assert_eq!(usage.total, 256);
        assert!(usage.free > 0 && usage.free < usage.total);
        // HLOS RAM is owned and mapped 1:1: the last byte reads and writes, the next does not.
        let mut rm = rm;
        let last = 0x4000_0000 + 0x40_0000 - 1;
        assert_eq!(rm.vm_write(3, last, &[0xA5]), Ok(0));
        let mut b = [0u8; 1];
        assert_eq!(rm.vm_read(3, last, &mut b), Ok(0));
        assert_eq!(b, [0xA5]);
        assert!(rm.vm_read(3, last + 1, &mut b).is_err());
    }

    #[test]
    fn default_layout_boots_and_bad_layouts_are_named() {
        assert!(sim_rm(SimConfig::default(), crate::RmConfig::default()).is_ok());
        let d = SimConfig::default();
        let cases = [
            (
                SimConfig {
                    ipa_bits: 44,
                    ..d.clone()
                },
                "ipa_bits must be 32..=40",
            ),
            (
                SimConfig {
                    partition_base: 0x1_0000_1000,
                    ..d.clone()
                },
                "partition_base must be 64 KiB aligned",
            ),
            (
                SimConfig {
                    partition_pages: 0,
                    ..d.clone()
                },
                "partition_pages must be 1..=4194304",
            ),
            (
                SimConfig {
                    hlos_ram: (0x4000_0800, 0x1000),
                    ..d.clone()
                },
                "hlos_ram must be page aligned and not empty",
            ),
            (
                SimConfig {
                    hlos_ram: (0xFF_FFFF_F000, 0x2000),
                    ..d.clone()
                },
                "hlos_ram must fit the IPA space (it is mapped 1:1)",
            ),
            (
                SimConfig {
                    partition_base: 0x4000_0000,
                    ..d.clone()
                },
                "hlos_ram and the partition overlap",
            ),
            (
                SimConfig {
                    partition_base: 0xFF_FFFF_0000,
                    ..d.clone()
                },
                "the partition must lie below 2^40",
            ),
        ];
        for (cfg, why) in cases {
            assert_eq!(SimPlatform::new(cfg).err(), Some(SimError::Config(why)));
        }
        // A valid layout whose partition cannot even hold HLOS's root tables.
        let tiny = SimConfig {
            partition_pages: 1,
            ..d
        };
        assert!(matches!(
            sim_rm(tiny, crate::RmConfig::default()),
            Err(SimError::Boot(_))
        ));
    }
}
