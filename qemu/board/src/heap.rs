//! EL2's global allocator: power-of-two size classes (16 B .. 4 KiB) with free lists, carved
//! from a bump region; larger blocks come from the bump region and are never reused (the RM
//! makes few of them). One spin lock; EL2 handlers never nest.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::null_mut;

use crate::layout::HEAP;

const CLASSES: usize = 9; // 16 << 0 ..= 16 << 8 (4096)

struct State {
    next: u64,
    end: u64,
    free: [u64; CLASSES],
}

/// The allocator.
pub struct Heap(spin::Mutex<State>);

#[global_allocator]
static HEAP_ALLOC: Heap = Heap(spin::Mutex::new(State {
    next: HEAP.0,
    end: HEAP.0 + HEAP.1,
    free: [0; CLASSES],
}));

fn class_of(layout: &Layout) -> Option<usize> {
    let size = layout.size().max(layout.align()).max(16);
    let c = size.next_power_of_two().trailing_zeros() as usize - 4;
    (c < CLASSES).then_some(c)
}

impl State {
    fn bump(&mut self, size: u64, align: u64) -> *mut u8 {
        let start = (self.next + align - 1) & !(align - 1);
        match start.checked_add(size) {
            Some(end) if end <= self.end => {
                self.next = end;
                start as *mut u8
            }
            _ => null_mut(),
        }
    }
}

// SAFETY: blocks come from the heap region, which nothing else uses; a block is handed out
// once until freed; class blocks are aligned to their (power-of-two) size, which is at least
// the requested size and alignment.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut s = self.0.lock();
        match class_of(&layout) {
            Some(c) => {
                let head = s.free[c];
                if head != 0 {
                    // SAFETY: a freed block of this class holds the next free block's address.
                    s.free[c] = unsafe { core::ptr::read(head as *const u64) };
                    head as *mut u8
                } else {
                    let size = 16u64 << c;
                    s.bump(size, size)
                }
            }
            None => s.bump(layout.size() as u64, layout.align() as u64),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(c) = class_of(&layout) {
            let mut s = self.0.lock();
            // SAFETY: the block is ours again (caller contract) and at least 16 bytes.
            unsafe { core::ptr::write(ptr as *mut u64, s.free[c]) };
            s.free[c] = ptr as u64;
        }
    }
}

/// Bytes of the heap region used so far (bump high-water mark).
pub fn used() -> u64 {
    HEAP_ALLOC.0.lock().next - HEAP.0
}
