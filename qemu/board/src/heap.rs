//! EL2's global allocator: `buddy_system_allocator`'s spin-locked buddy heap over the heap
//! region (`layout::HEAP`), given to it once at boot before anything allocates.

use buddy_system_allocator::LockedHeap;

use crate::layout::HEAP;

#[global_allocator]
static HEAP_ALLOC: LockedHeap<32> = LockedHeap::empty();

/// Hand the heap region to the allocator (the boot CPU, once, before the first allocation).
pub fn init() {
    // SAFETY: the heap region is RAM that nothing else uses (layout.rs: above the board image
    // and its stacks, below the partition), identity-mapped at EL2; this runs once.
    unsafe { HEAP_ALLOC.lock().init(HEAP.0 as usize, HEAP.1 as usize) };
}

/// Bytes of the heap handed out right now.
pub fn used() -> u64 {
    HEAP_ALLOC.lock().stats_alloc_actual() as u64
}
