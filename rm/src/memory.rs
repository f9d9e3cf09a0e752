//! Per-VM memory records: the memory each VM owns (and where it maps it),
//! and which IPA ranges of each VM are in use by any record.
//!
//! These records are what the isolation checker compares the stage-2 tables
//! against; the tables are never the only record of ownership.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::platform::{MemKind, Rights, Vmid, PAGE_SIZE};

/// Where an owned range came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Platform memory the VM was booted with (HLOS RAM).
    Boot,
    /// Pages the RM allocated from the partition.
    Partition,
    /// Donated by another VM (returned to it when this VM is torn down).
    Donated {
        /// The donor.
        from: Vmid,
        /// Where the donor mapped it.
        ipa: u64,
        /// The donor's rights.
        rights: Rights,
    },
}

/// Memory a VM owns, mapped in its stage 2 at `ipa` unless lent out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnedRange {
    /// IPA in the owner's space.
    pub ipa: u64,
    /// Physical address.
    pub pa: u64,
    /// Bytes.
    pub size: u64,
    /// The owner's rights.
    pub rights: Rights,
    /// Memory type.
    pub kind: MemKind,
    /// Provenance.
    pub origin: Origin,
}

/// One VM's memory records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmMem {
    /// Owned ranges by IPA.
    pub owned: BTreeMap<u64, OwnedRange>,
    /// IPA ranges in use by any record: start → end (exclusive).
    pub ipa_used: BTreeMap<u64, u64>,
    /// Where the next RM-chosen IPA search starts (next fit keeps
    /// allocation cost flat as the space fills).
    pub cursor: u64,
}

/// A piece of owned memory found by [`VmMem::lookup`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    /// IPA.
    pub ipa: u64,
    /// PA.
    pub pa: u64,
    /// Bytes.
    pub size: u64,
    /// The owner's rights.
    pub rights: Rights,
    /// Memory type.
    pub kind: MemKind,
}

impl VmMem {
    /// The owned pieces covering `[ipa, ipa+size)` exactly, or `None` if any
    /// byte of it is not owned.
    pub fn lookup(&self, ipa: u64, size: u64) -> Option<Vec<Piece>> {
        let end = ipa.checked_add(size)?;
        let mut out = Vec::new();
        let mut cur = ipa;
        while cur < end {
            let (_, r) = self.owned.range(..=cur).next_back()?;
            if cur >= r.ipa + r.size {
                return None;
            }
            let piece_end = end.min(r.ipa + r.size);
            out.push(Piece {
                ipa: cur,
                pa: r.pa + (cur - r.ipa),
                size: piece_end - cur,
                rights: r.rights,
                kind: r.kind,
            });
            cur = piece_end;
        }
        Some(out)
    }

    /// Whether no record uses any byte of `[ipa, ipa+size)`.
    pub fn ipa_free(&self, ipa: u64, size: u64) -> bool {
        let end = match ipa.checked_add(size) {
            Some(e) => e,
            None => return false,
        };
        if let Some((_, e)) = self.ipa_used.range(..ipa.saturating_add(1)).next_back() {
            if *e > ipa {
                return false;
            }
        }
        self.ipa_used.range(ipa..end).next().is_none()
    }

    /// Whether every byte of `[ipa, ipa+size)` is in a reserved range.
    pub fn is_reserved(&self, ipa: u64, size: u64) -> bool {
        let Some(end) = ipa.checked_add(size) else {
            return false;
        };
        let mut cur = ipa;
        while cur < end {
            match self.ipa_used.range(..=cur).next_back() {
                Some((_, &e)) if e > cur => cur = e,
                _ => return false,
            }
        }
        true
    }

    /// Mark `[ipa, ipa+size)` used. The caller checked [`VmMem::ipa_free`].
    pub fn reserve(&mut self, ipa: u64, size: u64) {
        self.ipa_used.insert(ipa, ipa + size);
    }

    /// Mark `[ipa, ipa+size)` unused, splitting ranges as needed.
    pub fn unreserve(&mut self, ipa: u64, size: u64) {
        let end = ipa + size;
        let hits: Vec<(u64, u64)> = self
            .ipa_used
            .range(..end)
            .filter(|(_, e)| **e > ipa)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in hits {
            self.ipa_used.remove(&s);
            if s < ipa {
                self.ipa_used.insert(s, ipa);
            }
            if e > end {
                self.ipa_used.insert(end, e);
            }
        }
    }

    /// A free IPA range of `size` aligned to `align` within `[lo, hi)`:
    /// the first fit at or after the cursor, else the first fit from `lo`.
    pub fn alloc_ipa(&self, size: u64, align: u64, lo: u64, hi: u64) -> Option<u64> {
        let start = if self.cursor > lo && self.cursor < hi {
            self.cursor
        } else {
            lo
        };
        self.first_fit(size, align, start, hi)
            .or_else(|| self.first_fit(size, align, lo, hi))
    }

    fn first_fit(&self, size: u64, align: u64, from: u64, hi: u64) -> Option<u64> {
        let up = |a: u64| a.checked_add(align - 1).map(|v| v & !(align - 1));
        let mut cand = up(from)?;
        loop {
            // A range starting at or before `cand` may cover it.
            if let Some((_, &e)) = self.ipa_used.range(..=cand).next_back() {
                if e > cand {
                    cand = up(e)?;
                    continue;
                }
            }
            let end = cand.checked_add(size)?;
            if end > hi {
                return None;
            }
            match self.ipa_used.range(cand..end).next() {
                Some((_, &e)) => cand = up(e)?,
                None => return Some(cand),
            }
        }
    }

    /// Add an owned range and reserve its IPAs.
    pub fn add_owned(&mut self, r: OwnedRange) {
        self.reserve(r.ipa, r.size);
        self.owned.insert(r.ipa, r);
    }

    /// Remove `[ipa, ipa+size)` from the owned ranges (splitting them) and
    /// unreserve it. The caller checked [`VmMem::lookup`].
    pub fn remove_owned(&mut self, ipa: u64, size: u64) {
        let end = ipa + size;
        let hits: Vec<OwnedRange> = self
            .owned
            .range(..end)
            .filter(|(_, r)| r.ipa + r.size > ipa)
            .map(|(_, r)| *r)
            .collect();
        for r in hits {
            self.owned.remove(&r.ipa);
            if r.ipa < ipa {
                let mut a = r;
                a.size = ipa - r.ipa;
                self.owned.insert(a.ipa, a);
            }
            let r_end = r.ipa + r.size;
            if r_end > end {
                let mut b = r;
                b.ipa = end;
                b.pa = r.pa + (end - r.ipa);
                b.size = r_end - end;
                self.owned.insert(b.ipa, b);
            }
        }
        self.unreserve(ipa, size);
    }
}

/// Whether `a` is page aligned.
pub const fn page_aligned(a: u64) -> bool {
    a.is_multiple_of(PAGE_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(ipa: u64, pa: u64, size: u64) -> OwnedRange {
        OwnedRange {
            ipa,
            pa,
            size,
            rights: Rights::RWX,
            kind: MemKind::Normal,
            origin: Origin::Boot,
        }
    }

    #[test]
    fn lookup_split_and_alloc() {
        let mut m = VmMem::default();
        m.add_owned(r(0x1000, 0x9000, 0x3000));
        m.add_owned(r(0x4000, 0x20000, 0x1000));
        let p = m.lookup(0x2000, 0x3000).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].pa, p[0].size), (0xA000, 0x2000));
        assert_eq!((p[1].pa, p[1].size), (0x20000, 0x1000));
        assert!(m.lookup(0x4000, 0x2000).is_none());
        assert!(!m.ipa_free(0x3000, 0x1000));
        assert!(m.ipa_free(0x5000, 0x1000));
        assert!(m.is_reserved(0x1000, 0x4000));
        assert!(!m.is_reserved(0x1000, 0x5000));
        m.remove_owned(0x2000, 0x1000);
        assert!(!m.is_reserved(0x1000, 0x3000));
        assert!(m.lookup(0x2000, 0x1000).is_none());
        assert_eq!(m.lookup(0x3000, 0x1000).unwrap()[0].pa, 0xB000);
        assert!(m.ipa_free(0x2000, 0x1000));
        assert_eq!(m.alloc_ipa(0x1000, 0x1000, 0x1000, 0x10000), Some(0x2000));
        assert_eq!(m.alloc_ipa(0x2000, 0x1000, 0x1000, 0x10000), Some(0x5000));
        assert_eq!(m.alloc_ipa(0x2000, 0x4000, 0x0, 0x10000), Some(0x8000));
        assert_eq!(m.alloc_ipa(0x2000, 0x1000, 0x1000, 0x6000), None);
        // Next fit from the cursor, wrapping to the bottom when the top is full.
        m.cursor = 0x9000;
        assert_eq!(m.alloc_ipa(0x1000, 0x1000, 0x1000, 0x10000), Some(0x9000));
        m.cursor = 0xF000;
        assert_eq!(m.alloc_ipa(0x2000, 0x1000, 0x1000, 0x10000), Some(0x5000));
    }
}
