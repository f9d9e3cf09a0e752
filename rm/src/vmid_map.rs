//! [`VmidMap`]: per-VM records indexed by VMID, for the fault path.
//!
//! Every VMID the RM hands out is below 256 (HLOS 3, static VMIDs 4–63, dynamic ones from
//! 0x80, the RM's own 0xFF: [`crate::vm`]), so a VM's record sits in a flat slot at its VMID: a
//! lookup is an index, not a walk of tree nodes (a `BTreeMap` by VMID cost a stage-2 CoW fault
//! of 64 VMs ~12 dependent L1 misses over its lookups, docs/PERFORMANCE.md "Many VMs: where the
//! misses go"). A VMID of 256 or more (no RM path makes one, but the type allows it) goes to a
//! `BTreeMap` beside the slots, so memory stays bounded whatever the key. Iteration is in
//! VMID order, like the `BTreeMap` it replaces, and so is `Debug` (a map).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::fmt;
use core::ops::RangeFrom;

use crate::platform::Vmid;

/// VMIDs below this have a flat slot.
pub const FLAT_VMIDS: usize = 256;

/// One VMID's slot, starting on a cache line of its own: a record laid out with its hot fields
/// first (as [`crate::vm::Vm`] is) is read in one line, and no record shares its first line
/// with the end of its neighbour's (which another CPU may be writing).
#[derive(Clone)]
#[repr(align(64))]
pub struct Slot<T>(Option<(Vmid, T)>);

/// Records of type `T` by VMID (see the module docs).
#[derive(Clone)]
pub struct VmidMap<T> {
    /// Slot `v` holds VMID `v`'s record (with its key, for iterators that lend `&Vmid`); grown
    /// up to the highest VMID below [`FLAT_VMIDS`] inserted.
    flat: Vec<Slot<T>>,
    /// Records of VMIDs from [`FLAT_VMIDS`] up.
    rest: BTreeMap<Vmid, T>,
    len: usize,
}

impl<T> Default for VmidMap<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> VmidMap<T> {
    /// An empty map (allocates nothing).
    pub const fn new() -> Self {
        VmidMap {
            flat: Vec::new(),
            rest: BTreeMap::new(),
            len: 0,
        }
    }

    /// `vmid`'s record.
    #[inline]
    pub fn get(&self, vmid: &Vmid) -> Option<&T> {
        let v = usize::from(*vmid);
        if v < FLAT_VMIDS {
            self.flat.get(v)?.0.as_ref().map(|(_, t)| t)
        } else {
            self.rest.get(vmid)
        }
    }

    /// `vmid`'s record, mutably.
    #[inline]
    pub fn get_mut(&mut self, vmid: &Vmid) -> Option<&mut T> {
        let v = usize::from(*vmid);
        if v < FLAT_VMIDS {
            self.flat.get_mut(v)?.0.as_mut().map(|(_, t)| t)
        } else {
            self.rest.get_mut(vmid)
        }
    }

    /// Whether `vmid` has a record.
    pub fn contains_key(&self, vmid: &Vmid) -> bool {
        self.get(vmid).is_some()
    }

    /// Give `vmid` the record `t`; the one it had, if any.
    pub fn insert(&mut self, vmid: Vmid, t: T) -> Option<T> {
        let v = usize::from(vmid);
        let old = if v < FLAT_VMIDS {
            if self.flat.len() <= v {
                self.flat.resize_with(v + 1, || Slot(None));
            }
            self.flat[v].0.replace((vmid, t)).map(|(_, t)| t)
        } else {
            self.rest.insert(vmid, t)
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Take `vmid`'s record out.
    pub fn remove(&mut self, vmid: &Vmid) -> Option<T> {
        let v = usize::from(*vmid);
        let old = if v < FLAT_VMIDS {
            self.flat.get_mut(v)?.0.take().map(|(_, t)| t)
        } else {
            self.rest.remove(vmid)
        };
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// How many VMs have a record.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no VM has a record.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every record with its VMID, in VMID order.
    pub fn iter(&self) -> Iter<'_, T> {
        self.flat
            .iter()
            .filter_map(slot as SlotFn<'_, T>)
            .chain(self.rest.iter())
    }

    /// Every record with its VMID, mutably, in VMID order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&Vmid, &mut T)> + '_ {
        self.flat
            .iter_mut()
            .filter_map(|s| s.0.as_mut().map(|(v, t)| (&*v, t)))
            .chain(self.rest.iter_mut())
    }

    /// The records of VMIDs from `r.start` up, in VMID order.
    pub fn range(&self, r: RangeFrom<Vmid>) -> impl Iterator<Item = (&Vmid, &T)> + '_ {
        let from = usize::from(r.start);
        self.flat
            .get(from..)
            .unwrap_or(&[])
            .iter()
            .filter_map(|s| s.0.as_ref().map(|(v, t)| (v, t)))
            .chain(self.rest.range(r))
    }

    /// The VMIDs with a record, in order.
    pub fn keys(&self) -> impl Iterator<Item = &Vmid> + '_ {
        self.iter().map(|(v, _)| v)
    }

    /// The records, in VMID order.
    pub fn values(&self) -> impl Iterator<Item = &T> + '_ {
        self.iter().map(|(_, t)| t)
    }

    /// The records, mutably, in VMID order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> + '_ {
        self.iter_mut().map(|(_, t)| t)
    }
}

impl<T: fmt::Debug> fmt::Debug for VmidMap<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<T: PartialEq> PartialEq for VmidMap<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T: Eq> Eq for VmidMap<T> {}

impl<'a, T> IntoIterator for &'a VmidMap<T> {
    type Item = (&'a Vmid, &'a T);
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

/// A filled slot's key and record.
type SlotFn<'a, T> = fn(&'a Slot<T>) -> Option<(&'a Vmid, &'a T)>;

fn slot<T>(s: &Slot<T>) -> Option<(&Vmid, &T)> {
    s.0.as_ref().map(|(v, t)| (v, t))
}

/// [`VmidMap::iter`]'s iterator.
pub type Iter<'a, T> = core::iter::Chain<
    core::iter::FilterMap<core::slice::Iter<'a, Slot<T>>, SlotFn<'a, T>>,
    alloc::collections::btree_map::Iter<'a, Vmid, T>,
>;

/// A set of VMIDs, a bit per VMID below [`FLAT_VMIDS`] (one `BTreeSet` for the rest): which
/// VMs have work for the next drain (pending COW_BROKEN IPAs), marked on the fault path in O(1)
/// and taken in VMID order, so a drain visits those VMs only, not a slot per VMID up to the
/// highest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmidSet {
    flat: [u64; FLAT_VMIDS / 64],
    rest: BTreeSet<Vmid>,
}

impl VmidSet {
    /// An empty set (allocates nothing).
    pub const fn new() -> Self {
        VmidSet {
            flat: [0; FLAT_VMIDS / 64],
            rest: BTreeSet::new(),
        }
    }

    /// Add `vmid`.
    #[inline]
    pub fn insert(&mut self, vmid: Vmid) {
        let v = usize::from(vmid);
        if v < FLAT_VMIDS {
            self.flat[v / 64] |= 1 << (v % 64);
        } else {
            self.rest.insert(vmid);
        }
    }

    /// Take `vmid` out.
    #[inline]
    pub fn remove(&mut self, vmid: Vmid) {
        let v = usize::from(vmid);
        if v < FLAT_VMIDS {
            self.flat[v / 64] &= !(1 << (v % 64));
        } else {
            self.rest.remove(&vmid);
        }
    }

    /// Whether `vmid` is in the set.
    pub fn contains(&self, vmid: Vmid) -> bool {
        let v = usize::from(vmid);
        if v < FLAT_VMIDS {
            self.flat[v / 64] & (1 << (v % 64)) != 0
        } else {
            self.rest.contains(&vmid)
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.flat.iter().all(|&w| w == 0) && self.rest.is_empty()
    }

    /// Take the lowest VMID out of the set.
    pub fn pop_first(&mut self) -> Option<Vmid> {
        for (i, w) in self.flat.iter_mut().enumerate() {
            if *w != 0 {
                let b = w.trailing_zeros() as usize;
                *w &= *w - 1;
                // Below FLAT_VMIDS (256): fits a Vmid.
                return Some((i * 64 + b) as Vmid);
            }
        }
        self.rest.pop_first()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_map_in_vmid_order() {
        let mut m = VmidMap::new();
        let mut b = BTreeMap::new();
        for (k, v) in [
            (0x80u16, 1),
            (3, 2),
            (0xFF, 3),
            (0x1234, 4),
            (0xFFFF, 5),
            (3, 6),
        ] {
            assert_eq!(m.insert(k, v), b.insert(k, v));
            assert_eq!(m.len(), b.len());
        }
        assert!(m.iter().eq(b.iter()));
        assert!(m.range(0x81..).eq(b.range(0x81..)));
        assert!(m.range(0x300..).eq(b.range(0x300..)));
        assert_eq!(format!("{m:?}"), format!("{b:?}"));
        for k in [3u16, 4, 0x1234, 0x1235, 0xFFFF, 0xFFFF] {
            assert_eq!(m.get(&k), b.get(&k));
            assert_eq!(m.remove(&k), b.remove(&k));
            assert_eq!(m.len(), b.len());
            assert_eq!(m.contains_key(&k), b.contains_key(&k));
        }
        for v in m.values_mut() {
            *v += 10;
        }
        assert_eq!(m.get(&0x80), Some(&11));
        assert!(m.keys().copied().eq([0x80u16, 0xFF]));
        assert!(!m.is_empty());
    }

    /// Every slot starts a cache line, so no record shares a line with its neighbour's.
    #[test]
    fn slots_are_whole_lines() {
        assert_eq!(align_of::<Slot<u8>>(), 64);
        assert_eq!(size_of::<Slot<[u8; 100]>>() % 64, 0);
        let mut m = VmidMap::new();
        for v in 0..10u16 {
            m.insert(v, [v as u8; 70]);
        }
        // A slot of 72 bytes takes two lines, and its record starts its first line (after the
        // key at most).
        for (_, r) in m.iter() {
            assert!(r.as_ptr() as usize % 64 <= 8, "{:p}", r.as_ptr());
        }
        let lines: Vec<usize> = m.values().map(|r| r.as_ptr() as usize / 64).collect();
        assert!(lines.windows(2).all(|w| w[1] - w[0] == 2), "{lines:?}");
    }

    #[test]
    fn high_vmids_do_not_grow_the_slots() {
        let mut m = VmidMap::new();
        m.insert(0xFFFF, ());
        assert!(m.flat.is_empty());
        m.insert(5, ());
        assert_eq!(m.flat.len(), 6);
    }

    #[test]
    fn vmid_set_pops_in_order_once() {
        let mut s = VmidSet::new();
        assert!(s.is_empty());
        for v in [0x80u16, 3, 0xFF, 0x1234, 0x80, 0xFFFF, 0x40, 0] {
            s.insert(v);
        }
        assert!(s.contains(0x80) && s.contains(0x1234) && !s.contains(4));
        s.remove(0x40);
        s.remove(0x1234);
        s.remove(7);
        let mut got = Vec::new();
        while let Some(v) = s.pop_first() {
            got.push(v);
        }
        assert_eq!(got, [0, 3, 0x80, 0xFF, 0xFFFF]);
        assert!(s.is_empty());
        assert_eq!(s.pop_first(), None);
    }
}
