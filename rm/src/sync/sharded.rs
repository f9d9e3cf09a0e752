//! [`RwLock`]: a reader-writer lock whose readers write no cache line that readers of another
//! shard write.
//!
//! Each fault takes the RM-wide lock for reading (`crate::concurrent`). With one reader count,
//! as `spin`'s lock has, every fault on every CPU writes that one line twice (take and
//! release), so two vCPUs faulting in two VMs bounce it between their cores on every fault.
//! Here the readers count in [`SHARDS`] counters, each on a cache line of its own, and a reader
//! picks its counter by a key (the faulting VM): faults in VMs of different shards share no
//! written line. The price is on the writer (a request), which sets its flag and then waits
//! for every shard to drain: a few more loads on a path that is rare and far more expensive.
//!
//! The protocol (a Dekker handshake: each side's store and its load of the other side's
//! location are `SeqCst`):
//! * reader: wait while the writer flag is set; increment its shard; if the flag is still
//!   clear it holds the lock, else it decrements and starts again (a writer waiting or holding
//!   goes first: faults arriving back to back never starve a request);
//! * writer: set the flag (compare-exchange: one writer at a time), then wait until every
//!   shard is zero. A reader that incremented before the flag was set is waited for; one that
//!   incremented after sees the flag and backs out. They cannot miss each other: each stores,
//!   then loads the other's location, all in the one order of `SeqCst` operations.
//!
//! A thread must not take the read side twice (the second would wait for a writer that waits
//! for the first).

use super::CachePadded;
use core::cell::UnsafeCell;
use core::sync::atomic::Ordering::{Relaxed, Release, SeqCst};
use core::sync::atomic::{AtomicBool, AtomicUsize};

/// One wait in a spin loop (`super::imp`'s `Relax`: spin at EL2, yield on the host).
fn relax() {
    <super::imp::Relax as spin::relax::RelaxStrategy>::relax();
}

/// Reader shards. Eight lines (1 KiB) per lock; the RM has one such lock.
pub const SHARDS: usize = 8;

/// A reader-writer lock with sharded reader counts that lets a waiting writer in first.
pub struct RwLock<T> {
    readers: [CachePadded<AtomicUsize>; SHARDS],
    /// A writer holds the lock or waits for the readers to leave.
    writer: CachePadded<AtomicBool>,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&T` to readers on several threads at once (so `T: Sync`) and
// `&mut T` to one writer at a time, which may be on any thread (so `T: Send`), exactly as
// `std::sync::RwLock`.
unsafe impl<T: Send + Sync> Sync for RwLock<T> {}
// SAFETY: moving the lock moves the value; no guard can exist across the move.
unsafe impl<T: Send> Send for RwLock<T> {}

impl<T: core::fmt::Debug> core::fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RwLock").finish_non_exhaustive()
    }
}

/// The guard of a [`RwLock`] held for reading in one shard.
pub struct ReadGuard<'a, T> {
    readers: &'a AtomicUsize,
    value: &'a UnsafeCell<T>,
}

/// The guard of a [`RwLock`] held for writing.
pub struct WriteGuard<'a, T> {
    writer: &'a AtomicBool,
    value: &'a UnsafeCell<T>,
}

impl<T> RwLock<T> {
    /// A new, unlocked lock holding `v`.
    pub const fn new(v: T) -> Self {
        RwLock {
            readers: [const { CachePadded(AtomicUsize::new(0)) }; SHARDS],
            writer: CachePadded(AtomicBool::new(false)),
            value: UnsafeCell::new(v),
        }
    }

    /// Shared access, counted in the shard of `key` (readers with keys in different shards
    /// write no common cache line). Waits while a writer holds the lock or waits for it.
    pub fn read(&self, key: usize) -> ReadGuard<'_, T> {
        let readers = &*self.readers[key % SHARDS];
        loop {
            while self.writer.load(Relaxed) {
                relax();
            }
            // SeqCst store then SeqCst load, as the writer does on its side: in the single
            // order of SeqCst operations one of the two loads comes after the other's store.
            // (On x86 the increment is a locked instruction, a full barrier: no extra fence.)
            readers.fetch_add(1, SeqCst);
            if !self.writer.load(SeqCst) {
                return ReadGuard {
                    readers,
                    value: &self.value,
                };
            }
            readers.fetch_sub(1, Release);
        }
    }

    /// Exclusive access: waits for another writer, then for every reader to leave.
    pub fn write(&self) -> WriteGuard<'_, T> {
        while self
            .writer
            .compare_exchange_weak(false, true, SeqCst, Relaxed)
            .is_err()
        {
            relax();
        }
        for readers in &self.readers {
            // SeqCst: pairs with a reader's increment (above); as an acquire it pairs with a
            // leaving reader's Release, so its reads happen before our writes.
            while readers.load(SeqCst) != 0 {
                relax();
            }
        }
        WriteGuard {
            writer: &self.writer,
            value: &self.value,
        }
    }

    /// The value.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T> core::ops::Deref for ReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard's shard count is non-zero and the writer flag was clear after it
        // was raised, so no writer holds the lock until the guard is dropped: only shared
        // references to the value exist meanwhile.
        unsafe { &*self.value.get() }
    }
}

impl<T> Drop for ReadGuard<'_, T> {
    fn drop(&mut self) {
        self.readers.fetch_sub(1, Release);
    }
}

impl<T> core::ops::Deref for WriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the writer flag is ours and every shard was zero after we set it, so no other
        // reference to the value exists until the guard is dropped.
        unsafe { &*self.value.get() }
    }
}

impl<T> core::ops::DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`; `&mut self` makes this the only reference through the guard.
        unsafe { &mut *self.value.get() }
    }
}

impl<T> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        self.writer.store(false, Release);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::sync::Arc;
    use std::vec::Vec;

    #[test]
    fn write_excludes_readers_of_every_shard() {
        let lock = Arc::new(RwLock::new((0u64, 0u64)));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        if (i + t) % 3 == 0 {
                            let mut g = lock.write();
                            g.0 += 1;
                            g.1 += 1;
                        } else {
                            let g = lock.read(t as usize + i as usize);
                            // A reader never sees a writer's half-done update.
                            assert_eq!(g.0, g.1);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let expected: u64 = (0..4u64)
            .map(|t| (0..20_000u64).filter(|i| (i + t) % 3 == 0).count() as u64)
            .sum();
        assert_eq!(
            Arc::try_unwrap(lock).unwrap().into_inner(),
            (expected, expected)
        );
    }

    #[test]
    fn a_waiting_writer_holds_back_new_readers() {
        let lock = Arc::new(RwLock::new(0u32));
        let first = lock.read(0);
        let writer = {
            let lock = lock.clone();
            std::thread::spawn(move || *lock.write() += 1)
        };
        while !lock.writer.load(SeqCst) {
            std::thread::yield_now();
        }
        // The writer waits for `first`; a new reader of any shard waits for the writer.
        let late = {
            let lock = lock.clone();
            std::thread::spawn(move || *lock.read(5))
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!late.is_finished(), "a reader overtook the waiting writer");
        drop(first);
        writer.join().unwrap();
        assert_eq!(late.join().unwrap(), 1, "the reader ran before the writer");
    }
}
