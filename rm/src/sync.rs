//! The RM's locks: [`Mutex`], a `spin` lock (the RM is `no_std`: at EL2 there is no scheduler
//! to block on), and [`RwLock`], the RM-wide lock with a reader count per shard
//! (`sync/sharded.rs`). Under `--cfg loom` both are loom's, so that a loom model
//! (`rm/tests/loom_fault.rs`) explores every interleaving of the lock protocol of
//! [`crate::concurrent`] with a reader-writer lock of the same semantics. The sharded lock's
//! own protocol is not in a loom model: its waits spin on atomics, which loom explores without
//! end (a model of it exceeded loom's branch limit even with a preemption bound of three); its
//! tests run it on threads (`sync/sharded.rs`).
//!
//! Both variants have the same small API: `new`, `lock` / `read` / `write` returning a guard,
//! `into_inner`, and `get_mut` on the mutex (no locking: `&mut` proves exclusive access).

#[cfg(not(loom))]
mod imp {
    /// How a waiter waits. At EL2 a lock holder is never preempted, so it spins. On the host
    /// (the simulator, `serve`, the benches) a vCPU thread can be preempted while it holds a
    /// lock, and a spinning waiter would then burn its whole timeslice: it yields instead.
    #[cfg(feature = "std")]
    pub(super) type Relax = spin::relax::Yield;
    #[cfg(not(feature = "std"))]
    pub(super) type Relax = spin::relax::Spin;

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

    /// The RM-wide reader-writer lock in the fault model (`rm/tests/loom_fault.rs`): loom's,
    /// with the sharded lock's semantics (readers share, a writer excludes everyone). The
    /// sharded lock's spinning waits would make the model's space too large to explore.
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
        /// Shared access (the shard key only matters to the sharded lock).
        pub fn read(&self, _key: usize) -> ReadGuard<'_, T> {
            self.0.read().unwrap_or_else(|e| e.into_inner())
        }
        /// Exclusive access.
        pub fn write(&self) -> WriteGuard<'_, T> {
            self.0.write().unwrap_or_else(|e| e.into_inner())
        }
        /// The value.
        pub fn into_inner(self) -> T {
            self.0.into_inner().unwrap_or_else(|e| e.into_inner())
        }
    }
}

pub use imp::{Mutex, MutexGuard};

#[cfg(not(loom))]
mod sharded;
#[cfg(loom)]
pub use imp::{ReadGuard, RwLock, WriteGuard};
#[cfg(not(loom))]
pub use sharded::{ReadGuard, RwLock, WriteGuard, SHARDS};

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
