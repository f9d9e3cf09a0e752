//! The RM's locks: [`Mutex`] and [`RwLock`], `spin` locks (the RM is `no_std`: at EL2 there is
//! no scheduler to block on), swapped for loom's under `--cfg loom` so that a loom model
//! (`rm/tests/loom_fault.rs`) explores every interleaving of the real lock protocol of
//! [`crate::concurrent`].
//!
//! Both variants have the same small API: `new`, `lock` / `read` / `write` returning a guard,
//! `get_mut` (no locking: `&mut` proves exclusive access) and `into_inner`.

#[cfg(not(loom))]
mod imp {
    use spin::relax::RelaxStrategy;

    /// How a waiter waits. At EL2 a lock holder is never preempted, so it spins. On the host
    /// (the simulator, `serve`, the benches) a vCPU thread can be preempted while it holds a
    /// lock, and a spinning waiter would then burn its whole timeslice: it yields instead.
    #[cfg(feature = "std")]
    type Relax = spin::relax::Yield;
    #[cfg(not(feature = "std"))]
    type Relax = spin::relax::Spin;

    /// A mutual-exclusion lock.
    #[derive(Debug, Default)]
    pub struct Mutex<T>(spin::mutex::Mutex<T, Relax>);

    /// The guard of a locked [`Mutex`].
    pub type MutexGuard<'a, T> = spin::mutex::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        /// A new, unlocked mutex holding `v`.
        pub const fn new(v: T) -> Self {
            Mutex(spin::mutex::Mutex::new(v))
        }
        /// Lock it (spin until it is free).
        pub fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }
        /// The value, through exclusive access to the lock.
        pub fn get_mut(&mut self) -> &mut T {
            self.0.get_mut()
        }
        /// The value.
        pub fn into_inner(self) -> T {
            self.0.into_inner()
        }
    }

    use core::sync::atomic::{AtomicUsize, Ordering};

    /// A reader-writer lock that lets a waiting writer in first: readers arriving while a
    /// writer waits hold back until it has had its turn. `spin`'s own lock admits readers
    /// whenever no writer *holds* it, so a writer (a request, a COW_BROKEN flush) could spin
    /// for as long as vCPUs keep faulting back to back. A thread must not take the read side
    /// twice (it would wait for a writer that waits for it).
    #[derive(Debug, Default)]
    pub struct RwLock<T> {
        lock: spin::rwlock::RwLock<T, Relax>,
        /// Writers waiting for (or holding) the lock.
        writers: AtomicUsize,
    }

    /// The guard of a [`RwLock`] held for reading.
    pub type ReadGuard<'a, T> = spin::rwlock::RwLockReadGuard<'a, T>;

    /// The guard of a [`RwLock`] held for writing.
    pub struct WriteGuard<'a, T> {
        guard: spin::rwlock::RwLockWriteGuard<'a, T, Relax>,
        writers: &'a AtomicUsize,
    }

    impl<T> core::ops::Deref for WriteGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.guard
        }
    }

    impl<T> core::ops::DerefMut for WriteGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            &mut self.guard
        }
    }

    impl<T> Drop for WriteGuard<'_, T> {
        fn drop(&mut self) {
            self.writers.fetch_sub(1, Ordering::Release);
        }
    }

    impl<T> RwLock<T> {
        /// A new, unlocked lock holding `v`.
        pub const fn new(v: T) -> Self {
            RwLock {
                lock: spin::rwlock::RwLock::new(v),
                writers: AtomicUsize::new(0),
            }
        }
        /// Shared access (spin while a writer holds it or waits for it).
        pub fn read(&self) -> ReadGuard<'_, T> {
            loop {
                while self.writers.load(Ordering::Acquire) != 0 {
                    Relax::relax();
                }
                if let Some(g) = self.lock.try_read() {
                    return g;
                }
                Relax::relax();
            }
        }
        /// Exclusive access (spin while anyone holds it).
        pub fn write(&self) -> WriteGuard<'_, T> {
            self.writers.fetch_add(1, Ordering::Acquire);
            WriteGuard {
                guard: self.lock.write(),
                writers: &self.writers,
            }
        }
        /// The value, through exclusive access to the lock.
        pub fn get_mut(&mut self) -> &mut T {
            self.lock.get_mut()
        }
        /// The value.
        pub fn into_inner(self) -> T {
            self.lock.into_inner()
        }
    }
}

#[cfg(loom)]
mod imp {
    extern crate std;

    /// A mutual-exclusion lock (loom's, under `--cfg loom`).
    #[derive(Debug, Default)]
    pub struct Mutex<T>(loom::sync::Mutex<T>);

    /// The guard of a locked [`Mutex`].
    pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        /// A new, unlocked mutex holding `v`.
        pub fn new(v: T) -> Self {
            Mutex(loom::sync::Mutex::new(v))
        }
        /// Lock it.
        pub fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
        /// The value, through exclusive access to the lock.
        pub fn get_mut(&mut self) -> &mut T {
            self.0.get_mut().unwrap_or_else(|e| e.into_inner())
        }
        /// The value.
        pub fn into_inner(self) -> T {
            self.0.into_inner().unwrap_or_else(|e| e.into_inner())
        }
    }

    /// A reader-writer lock (loom's, under `--cfg loom`).
    #[derive(Debug)]
    pub struct RwLock<T>(loom::sync::RwLock<T>);

    /// The guard of a [`RwLock`] held for reading.
    pub type ReadGuard<'a, T> = loom::sync::RwLockReadGuard<'a, T>;
    /// The guard of a [`RwLock`] held for writing.
    pub type WriteGuard<'a, T> = loom::sync::RwLockWriteGuard<'a, T>;

    impl<T> RwLock<T> {
        /// A new, unlocked lock holding `v`.
        pub fn new(v: T) -> Self {
            RwLock(loom::sync::RwLock::new(v))
        }
        /// Shared access.
        pub fn read(&self) -> ReadGuard<'_, T> {
            self.0.read().unwrap_or_else(|e| e.into_inner())
        }
        /// Exclusive access.
        pub fn write(&self) -> WriteGuard<'_, T> {
            self.0.write().unwrap_or_else(|e| e.into_inner())
        }
        /// The value, through exclusive access to the lock.
        pub fn get_mut(&mut self) -> &mut T {
            self.0.get_mut().unwrap_or_else(|e| e.into_inner())
        }
        /// The value.
        pub fn into_inner(self) -> T {
            self.0.into_inner().unwrap_or_else(|e| e.into_inner())
        }
    }
}

pub use imp::{Mutex, MutexGuard, ReadGuard, RwLock, WriteGuard};

/// `T` on cache lines of its own. The per-VM locks (a VM's stage-2 tables, its fault ledger)
/// sit side by side in their maps and are written by whichever CPU faults in that VM: without
/// this, two CPUs faulting in two VMs would bounce one line between them. 128 bytes, as the
/// adjacent-line prefetchers of x86 and Arm cores pull lines in pairs.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct CachePadded<T>(pub T);

impl<T> core::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> core::ops::DerefMut for CachePadded<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}
