//! The RM's locks: [`Mutex`] and [`RwLock`], `spin` locks (the RM is `no_std`: at EL2 there is
//! no scheduler to block on), swapped for loom's under `--cfg loom` so that a loom model
//! (`rm/tests/loom_fault.rs`) explores every interleaving of the real lock protocol of
//! [`crate::concurrent`].
//!
//! Both variants have the same small API: `new`, `lock` / `read` / `write` returning a guard,
//! `get_mut` (no locking: `&mut` proves exclusive access) and `into_inner`.

#[cfg(not(loom))]
mod imp {
    /// A mutual-exclusion lock.
    #[derive(Debug, Default)]
    pub struct Mutex<T>(spin::Mutex<T>);

    /// The guard of a locked [`Mutex`].
    pub type MutexGuard<'a, T> = spin::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        /// A new, unlocked mutex holding `v`.
        pub const fn new(v: T) -> Self {
            Mutex(spin::Mutex::new(v))
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

    /// A reader-writer lock.
    #[derive(Debug, Default)]
    pub struct RwLock<T>(spin::RwLock<T>);

    /// The guard of a [`RwLock`] held for reading.
    pub type ReadGuard<'a, T> = spin::RwLockReadGuard<'a, T>;
    /// The guard of a [`RwLock`] held for writing.
    pub type WriteGuard<'a, T> = spin::RwLockWriteGuard<'a, T>;

    impl<T> RwLock<T> {
        /// A new, unlocked lock holding `v`.
        pub const fn new(v: T) -> Self {
            RwLock(spin::RwLock::new(v))
        }
        /// Shared access (spin while a writer holds it).
        pub fn read(&self) -> ReadGuard<'_, T> {
            self.0.read()
        }
        /// Exclusive access (spin while anyone holds it).
        pub fn write(&self) -> WriteGuard<'_, T> {
            self.0.write()
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
