//! The page HLOS shares with each clone VM (MEM_SHARE; the clone accepts it itself with
//! MEM_ACCEPT): the clone's results, then a done word written last.
//!
//! Layout (u64 words): 0 done (0 running, 1 finished), 1 status (0 = every check passed,
//! else the number of the failed check), 2..8 results, 8 ready (a racer's vCPUs are up),
//! 9 go (HLOS starts the racers).

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{fence, Ordering};

/// A mailbox page at a VA of ours.
#[derive(Clone, Copy)]
pub struct Mailbox(u64);

impl Mailbox {
    /// The mailbox mapped at `va`.
    pub fn at(va: u64) -> Self {
        Mailbox(va)
    }

    fn word(&self, i: u64) -> *mut u64 {
        (self.0 + i * 8) as *mut u64
    }

    /// Clear it (HLOS, before sharing it).
    pub fn clear(&self) {
        for i in 0..16 {
            // SAFETY: the mailbox page is mapped read/write for us.
            unsafe { write_volatile(self.word(i), 0) };
        }
    }

    /// Publish `status` and `results`, then the done word.
    pub fn finish(&self, status: u64, results: [u64; 6]) {
        for (i, r) in results.iter().enumerate() {
            // SAFETY: as in `clear`.
            unsafe { write_volatile(self.word(2 + i as u64), *r) };
        }
        // SAFETY: as in `clear`.
        unsafe { write_volatile(self.word(1), status) };
        fence(Ordering::Release);
        // SAFETY: as in `clear`.
        unsafe { write_volatile(self.word(0), 1) };
    }

    /// Set word `i` (ready, go).
    pub fn set(&self, i: u64, v: u64) {
        fence(Ordering::Release);
        // SAFETY: as in `clear`.
        unsafe { write_volatile(self.word(i), v) };
    }

    /// Word `i`.
    pub fn get(&self, i: u64) -> u64 {
        // SAFETY: as in `clear`.
        let v = unsafe { read_volatile(self.word(i)) };
        fence(Ordering::Acquire);
        v
    }

    /// `Some((status, results))` once the clone has finished.
    pub fn poll(&self) -> Option<(u64, [u64; 6])> {
        // SAFETY: as in `clear`.
        if unsafe { read_volatile(self.word(0)) } == 0 {
            return None;
        }
        fence(Ordering::Acquire);
        let mut r = [0u64; 6];
        for (i, w) in r.iter_mut().enumerate() {
            // SAFETY: as in `clear`.
            *w = unsafe { read_volatile(self.word(2 + i as u64)) };
        }
        // SAFETY: as in `clear`.
        Some((unsafe { read_volatile(self.word(1)) }, r))
    }
}
