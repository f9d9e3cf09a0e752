//! The RM's platform on this board: one real `gunyah-stage2` address space per VM (loaded
//! into VTTBR_EL2 when its vCPU runs, TLB maintenance with `HwTlb`), table pages and RM pages
//! from the partition's page allocator, and byte access to real RAM (EL2 is identity-mapped).
//!
//! It is a `gunyah_rm::platform::ConcurrentPlatform`: each VM's tables sit behind their own
//! lock in [`Stage2Spaces`] (so `SharedAddressSpaces` comes with [`Stage2Backed`]), and the
//! partition's allocator is a leaf spin lock (`PARTITION`: nothing is taken under it), so the
//! RM's concurrent fault path (`gunyah_rm::concurrent`) copies pages for vCPUs of different
//! VMs on different CPUs at once. The copy itself runs outside every lock.

use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use gunyah_rm::platform::{PartitionUsage, PhysMem, SharedPhysMem, Vmid, PAGE_SIZE};
use gunyah_rm::stage2_spaces::{SpaceParts, Stage2Backed, Stage2Spaces};
use gunyah_stage2::tlb::HwTlb;
use gunyah_stage2::{PaRange, TableMemory};

use crate::layout::{HLOS_RAM, MAX_CPUS, PARTITION_BASE, RAM_END};
use crate::percpu::this_cpu;

/// Pages in the partition (to the end of RAM).
pub const PARTITION_PAGES: usize = ((RAM_END - PARTITION_BASE) / PAGE_SIZE) as usize;

/// The partition's pages: a first-fit bitmap allocator.
struct PageAlloc {
    used: Vec<u64>,
    in_use: usize,
    /// No free single page below this index.
    low: usize,
}

static PARTITION: crate::percpu::Lock<Option<PageAlloc>> = crate::percpu::Lock::new(None);

impl PageAlloc {
    fn is_used(&self, i: usize) -> bool {
        self.used[i / 64] & (1 << (i % 64)) != 0
    }
    fn set(&mut self, i: usize, on: bool) {
        if on {
            self.used[i / 64] |= 1 << (i % 64);
        } else {
            self.used[i / 64] &= !(1 << (i % 64));
        }
    }
    /// `count` free pages starting at a multiple of `count` pages.
    fn alloc(&mut self, count: usize) -> Option<u64> {
        let count = count.max(1);
        if count == 1 {
            let i = (self.low..PARTITION_PAGES).find(|&k| !self.is_used(k))?;
            self.set(i, true);
            self.in_use += 1;
            self.low = i + 1;
            return Some(PARTITION_BASE + i as u64 * PAGE_SIZE);
        }
        let mut i = 0;
        while i + count <= PARTITION_PAGES {
            if (i..i + count).all(|k| !self.is_used(k)) {
                (i..i + count).for_each(|k| self.set(k, true));
                self.in_use += count;
                return Some(PARTITION_BASE + i as u64 * PAGE_SIZE);
            }
            i += count;
        }
        None
    }
    fn free(&mut self, pa: u64, count: usize) {
        let Some(first) = page_index(pa) else { return };
        self.low = self.low.min(first);
        for k in first..(first + count).min(PARTITION_PAGES) {
            if self.is_used(k) {
                self.set(k, false);
                self.in_use -= 1;
            }
        }
    }
}

fn page_index(pa: u64) -> Option<usize> {
    let off = pa.checked_sub(PARTITION_BASE)?;
    let i = (off / PAGE_SIZE) as usize;
    (off % PAGE_SIZE == 0 && i < PARTITION_PAGES).then_some(i)
}

fn with_partition<R>(f: impl FnOnce(&mut PageAlloc) -> R) -> R {
    let mut g = PARTITION.lock();
    let p = g.get_or_insert_with(|| PageAlloc {
        used: vec![0; PARTITION_PAGES.div_ceil(64)],
        in_use: 0,
        low: 0,
    });
    f(p)
}

/// Whether `[pa, pa+len)` is RAM this platform gives the RM byte access to (HLOS RAM or the
/// partition; never EL2's heap or stack).
fn is_memory(pa: u64, len: u64) -> bool {
    let Some(end) = pa.checked_add(len) else {
        return false;
    };
    let part_end = PARTITION_BASE + PARTITION_PAGES as u64 * PAGE_SIZE;
    (pa >= HLOS_RAM.0 && end <= HLOS_RAM.0 + HLOS_RAM.1)
        || (pa >= PARTITION_BASE && end <= part_end)
}

/// Stage-2 table pages from the partition, zeroed, used identity-mapped.
pub struct PartitionTables;

// SAFETY: pages come from the partition allocator (exclusively owned until freed), are
// zeroed before use (except where the caller asked for a page it fills whole) and aligned to `count` pages for roots; EL2 runs identity-mapped so
// `table_ptr` is the page itself.
unsafe impl TableMemory for PartitionTables {
    fn alloc_table(&mut self) -> Option<u64> {
        self.alloc_root(1)
    }
    fn alloc_table_unzeroed(&mut self) -> Option<u64> {
        with_partition(|p| p.alloc(1))
    }
    fn alloc_root(&mut self, count: usize) -> Option<u64> {
        let pa = with_partition(|p| p.alloc(count))?;
        // SAFETY: the pages were just allocated to us and lie in identity-mapped RAM.
        unsafe { core::ptr::write_bytes(pa as *mut u8, 0, count * PAGE_SIZE as usize) };
        Some(pa)
    }
    fn free_table(&mut self, pa: u64) {
        with_partition(|p| p.free(pa, 1));
    }
    fn free_root(&mut self, pa: u64, count: usize) {
        with_partition(|p| p.free(pa, count));
    }
    fn table_ptr(&self, pa: u64) -> *mut u64 {
        pa as *mut u64
    }
    fn fill_table(&mut self, table_pa: u64, first: u64, step: u64) {
        // SAFETY: `table_pa` is a table page the caller allocated from us (trait contract):
        // identity-mapped, page aligned, 512 entries, not yet reachable by a walker.
        unsafe { fill_table(table_pa, first, step) }
    }
}

/// Write `first + i * step` to entry `i` of the 512 of the table page at `table` (a block
/// split): four running values, 16 entries a round with store pairs, 27 instructions per 16
/// entries (864 a table); the trait's default loop took ~2.4 k EL2 instructions. Plain stores:
/// the release store that links the table orders them.
///
/// # Safety
/// `table` must be a page-aligned table page of RAM identity-mapped at EL2 that no walker can
/// reach yet.
#[cfg(target_arch = "aarch64")]
unsafe fn fill_table(table: u64, first: u64, step: u64) {
    // SAFETY: the caller's contract: the loop writes exactly the 4096 bytes of the page.
    unsafe {
        core::arch::asm!(
            "2:",
            "stp {a}, {b}, [{t}]",
            "stp {c}, {d}, [{t}, #16]",
            "add {a}, {a}, {s4}",
            "add {b}, {b}, {s4}",
            "add {c}, {c}, {s4}",
            "add {d}, {d}, {s4}",
            "stp {a}, {b}, [{t}, #32]",
            "stp {c}, {d}, [{t}, #48]",
            "add {a}, {a}, {s4}",
            "add {b}, {b}, {s4}",
            "add {c}, {c}, {s4}",
            "add {d}, {d}, {s4}",
            "stp {a}, {b}, [{t}, #64]",
            "stp {c}, {d}, [{t}, #80]",
            "add {a}, {a}, {s4}",
            "add {b}, {b}, {s4}",
            "add {c}, {c}, {s4}",
            "add {d}, {d}, {s4}",
            "stp {a}, {b}, [{t}, #96]",
            "stp {c}, {d}, [{t}, #112]",
            "add {a}, {a}, {s4}",
            "add {b}, {b}, {s4}",
            "add {c}, {c}, {s4}",
            "add {d}, {d}, {s4}",
            "add {t}, {t}, #128",
            "subs {n}, {n}, #1",
            "b.ne 2b",
            t = inout(reg) table => _,
            n = inout(reg) 4096u64 / 128 => _,
            a = inout(reg) first => _,
            b = inout(reg) first.wrapping_add(step) => _,
            c = inout(reg) first.wrapping_add(step.wrapping_mul(2)) => _,
            d = inout(reg) first.wrapping_add(step.wrapping_mul(3)) => _,
            s4 = in(reg) step.wrapping_mul(4),
            options(nostack),
        );
    }
}

/// The same on a host build of the board: the plain loop.
///
/// # Safety
/// As the aarch64 one.
#[cfg(not(target_arch = "aarch64"))]
unsafe fn fill_table(table: u64, first: u64, step: u64) {
    for i in 0..512u64 {
        // SAFETY: the caller's contract; `i` < 512.
        unsafe {
            (table as *mut u64)
                .add(i as usize)
                .write(first.wrapping_add(i * step))
        };
    }
}

/// Where a new VM's stage 2 gets its pieces: table pages from the partition, hardware TLB
/// maintenance.
pub struct HwParts;

impl SpaceParts for HwParts {
    type Mem = PartitionTables;
    type Tlb = HwTlb;
    fn parts(&mut self, _vmid: Vmid) -> Option<(PartitionTables, HwTlb)> {
        // SAFETY: we run at EL2 and only this platform changes VTTBR_EL2 outside a vCPU
        // switch, which happens with no address-space operation in progress.
        let tlb = unsafe { HwTlb::new() };
        Some((PartitionTables, tlb))
    }
}

/// The board platform.
pub struct QemuPlatform {
    spaces: Stage2Spaces<HwParts>,
}

/// IPA size of every address space.
const IPA_BITS: u8 = 40;

impl QemuPlatform {
    /// The platform; `parange` is the CPU's (ID_AA64MMFR0_EL1.PARange).
    pub fn new(parange: PaRange) -> Self {
        QemuPlatform {
            spaces: Stage2Spaces::new(HwParts, IPA_BITS, parange),
        }
    }

    /// `(VTCR_EL2, VTTBR_EL2)` that run `vmid`'s vCPU on its stage 2.
    pub fn stage2_regs(&self, vmid: Vmid) -> Option<(u64, u64)> {
        self.spaces.get(vmid).map(|s| (s.vtcr(), s.vttbr()))
    }
}

// Guests run for real on this board, so `simulate_access` answers `None` (the default).
impl Stage2Backed for QemuPlatform {
    type Parts = HwParts;
    fn stage2(&self) -> &Stage2Spaces<HwParts> {
        &self.spaces
    }
    fn stage2_mut(&mut self) -> &mut Stage2Spaces<HwParts> {
        &mut self.spaces
    }
}

impl PhysMem for QemuPlatform {
    fn alloc_page(&mut self) -> Option<u64> {
        with_partition(|p| p.alloc(1))
    }
    fn free_page(&mut self, pa: u64) {
        with_partition(|p| p.free(pa, 1));
    }
    fn alloc_contiguous(&mut self, count: u64) -> Option<u64> {
        let n = usize::try_from(count)
            .ok()
            .filter(|n| n.is_power_of_two())?;
        // The allocator aligns runs to `count` pages from the partition base;
        // hand out only runs aligned in PA (what a block mapping needs).
        let pa = with_partition(|p| p.alloc(n))?;
        if pa.is_multiple_of(count * PAGE_SIZE) {
            Some(pa)
        } else {
            with_partition(|p| p.free(pa, n));
            None
        }
    }
    fn alloc_page_copy(&mut self, src: u64) -> Option<u64> {
        alloc_copy(src)
    }
    fn read(&self, pa: u64, buf: &mut [u8]) -> bool {
        if !is_memory(pa, buf.len() as u64) {
            return false;
        }
        // SAFETY: the range is RAM (checked above), identity-mapped at EL2, and `buf` is ours.
        unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, buf.as_mut_ptr(), buf.len()) };
        true
    }
    fn write(&mut self, pa: u64, data: &[u8]) -> bool {
        if !is_memory(pa, data.len() as u64) {
            return false;
        }
        // SAFETY: as in `read`; the RM owns the page records that decide who writes where.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), pa as *mut u8, data.len()) };
        true
    }
    fn zero(&mut self, pa: u64, len: u64) -> bool {
        if !is_memory(pa, len) {
            return false;
        }
        // SAFETY: as in `write`.
        unsafe { core::ptr::write_bytes(pa as *mut u8, 0, len as usize) };
        true
    }
    fn copy(&mut self, dst: u64, src: u64, len: u64) -> bool {
        if !is_memory(src, len) || !is_memory(dst, len) {
            return false;
        }
        // SAFETY: both ranges are RAM (checked above); `copy` allows overlap.
        unsafe { core::ptr::copy(src as *const u8, dst as *mut u8, len as usize) };
        true
    }
    fn partition_usage(&self) -> PartitionUsage {
        let in_use = with_partition(|p| p.in_use) as u64;
        PartitionUsage {
            total: PARTITION_PAGES as u64,
            free: PARTITION_PAGES as u64 - in_use,
            tables: self.spaces.table_pages() as u64,
        }
    }
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);

/// Per CPU: pages the RM's concurrent fault path (`SharedPhysMem`) allocated on it, less those
/// it gave back unmapped. Only the exclusive path allocates through `PhysMem`, so a fault
/// that moved this CPU's figure was served on the concurrent path (`rmcore` counts them).
static SHARED_PAGES: [AtomicU64; MAX_CPUS] = [ZERO; MAX_CPUS];

/// This CPU's figure of [`SHARED_PAGES`].
pub fn shared_pages_here() -> u64 {
    SHARED_PAGES[this_cpu()].load(Relaxed)
}

fn count_shared(up: bool) {
    let c = &SHARED_PAGES[this_cpu()];
    if up {
        c.fetch_add(1, Relaxed);
    } else {
        c.fetch_sub(1, Relaxed);
    }
}

/// A partition page holding a copy of the page at `src` (the copy-on-write allocation): the
/// allocator's lock for the bitmap only, the copy outside it.
fn alloc_copy(src: u64) -> Option<u64> {
    if !src.is_multiple_of(PAGE_SIZE) || !is_memory(src, PAGE_SIZE) {
        return None;
    }
    let pa = with_partition(|p| p.alloc(1))?;
    // SAFETY: `src` is a page of RAM (checked above) and `pa` a partition page just allocated
    // to us (mapped nowhere yet), both identity-mapped at EL2 and page aligned; they differ.
    // `src` is a golden page, which nothing writes meanwhile (`SharedPhysMem`'s contract).
    unsafe { copy_page(pa, src) };
    Some(pa)
}

// The partition's lock is a leaf held only for the bitmap; the copy and the zeroing run
// outside it, on a page no one else holds yet.
impl SharedPhysMem for QemuPlatform {
    fn alloc_page_copy_shared(&self, src: u64) -> Option<u64> {
        let pa = alloc_copy(src)?;
        count_shared(true);
        Some(pa)
    }
    fn alloc_zeroed_page_shared(&self) -> Option<u64> {
        let pa = with_partition(|p| p.alloc(1))?;
        // SAFETY: `pa` is a partition page just allocated to us and mapped nowhere yet,
        // identity-mapped RAM at EL2.
        unsafe { core::ptr::write_bytes(pa as *mut u8, 0, PAGE_SIZE as usize) };
        count_shared(true);
        Some(pa)
    }
    fn free_page_shared(&self, pa: u64) {
        with_partition(|p| p.free(pa, 1));
        count_shared(false);
    }
}

/// Copy the 4 KiB page at `src` to `dst` (the copy-on-write copy): 64 bytes a round with
/// general-register load/store pairs, 10 instructions per 64 bytes (640 a page). The generic
/// `memmove` behind `core::ptr::copy` took 2.1 k EL2 instructions for it, as many as the
/// guest's whole copy. FP/SIMD registers are not used: they hold the trapped guest's state.
///
/// # Safety
/// `src` and `dst` must be page-aligned, non-overlapping pages of RAM identity-mapped at EL2,
/// `dst` owned by the caller.
#[cfg(target_arch = "aarch64")]
unsafe fn copy_page(dst: u64, src: u64) {
    // SAFETY: the caller's contract: both pages are mapped RAM, 4096 bytes from their starts;
    // the loop reads and writes exactly those bytes.
    unsafe {
        core::arch::asm!(
            "2:",
            "ldp {a}, {b}, [{s}, #16]",
            "ldp {c}, {d}, [{s}, #32]",
            "ldp {e}, {f}, [{s}, #48]",
            "ldp {g}, {h}, [{s}], #64",
            "stp {a}, {b}, [{t}, #16]",
            "stp {c}, {d}, [{t}, #32]",
            "stp {e}, {f}, [{t}, #48]",
            "stp {g}, {h}, [{t}], #64",
            "subs {n}, {n}, #1",
            "b.ne 2b",
            s = inout(reg) src => _,
            t = inout(reg) dst => _,
            n = inout(reg) PAGE_SIZE / 64 => _,
            a = out(reg) _, b = out(reg) _, c = out(reg) _, d = out(reg) _,
            e = out(reg) _, f = out(reg) _, g = out(reg) _, h = out(reg) _,
            options(nostack),
        );
    }
}

/// The same on a host build of the board (its unit tests and clippy): a plain copy.
///
/// # Safety
/// As the aarch64 one.
#[cfg(not(target_arch = "aarch64"))]
unsafe fn copy_page(dst: u64, src: u64) {
    // SAFETY: the caller's contract.
    unsafe { core::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, PAGE_SIZE as usize) };
}

/// [`crate::percpu::Lock::most_overtaken`] of the partition allocator's lock, for the board's summary.
pub fn lock_most_overtaken() -> u64 {
    PARTITION.most_overtaken()
}
