//! The isolation checker: walks every VM's real stage-2 tables (through the
//! platform's leaf visitor) and the RM's records, and reports every
//! violation it finds.
//!
//! Per VM, each leaf must be what the range it lies in says: owned and shared
//! memory mapped where the owner has it with the owner's rights, lent memory
//! not mapped, a borrowed parcel where the acceptance put it with the ACL's
//! rights, bound and demand-zero pages from the VM's pools, a golden range's
//! pages either the image's own page (read-only, tagged golden) or the VM's
//! copy (tagged copy). Across VMs: no page writable by two VMs unless a
//! SHARE parcel names both, no golden page writable anywhere, every pool page
//! mapped once and counted by its pool, and every partition page accounted
//! for.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::parcel::{ParcelState, TransType};
use crate::platform::{Leaf, MemKind, Platform, Rights, Tag, Vmid, PAGE_SIZE};
use crate::service::Rm;
use crate::space::{Range, State};

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A VM's tables differ from what the records say it maps.
    TablesDisagree {
        /// The VM.
        vmid: Vmid,
        /// First difference.
        detail: String,
    },
    /// A PA is writable by two VMs without a shared parcel allowing it.
    WritableByTwo {
        /// The PA.
        pa: u64,
        /// The VMs.
        vms: (Vmid, Vmid),
    },
    /// A PA is mapped in a VM that neither owns it nor accepted it.
    NotOwnedNorAccepted {
        /// The VM.
        vmid: Vmid,
        /// The PA.
        pa: u64,
    },
    /// A PA is recorded as owned by two VMs.
    OwnedTwice {
        /// The PA.
        pa: u64,
    },
    /// A lent or donated page is still mapped in its owner.
    LentStillMapped {
        /// The parcel.
        handle: u32,
        /// The PA.
        pa: u64,
    },
    /// A record is internally inconsistent.
    BadRecord {
        /// What is wrong.
        detail: String,
    },
    /// A golden page is writable in a VM.
    GoldenWritable {
        /// The VM.
        vmid: Vmid,
        /// The PA.
        pa: u64,
    },
    /// A private (CoW, demand-zero or bound) page is not mapped in exactly one
    /// VM and charged to exactly that VM's pool.
    CopyOwnership {
        /// The page.
        pa: u64,
        /// What is wrong.
        detail: String,
    },
    /// Partition pages are neither free nor accounted for.
    PagesLost {
        /// total - free.
        in_use: u64,
        /// Pages accounted for (tables + RM records).
        accounted: u64,
    },
}

/// What one VM's walk found, for the cross-VM checks.
#[derive(Default)]
struct Seen {
    /// (pa, end, vmid) of every writable mapping.
    writers: Vec<(u64, u64, Vmid)>,
    /// (pa, vmid) of every pool page mapped (bound, copy, zero).
    pool_pages: Vec<(u64, Vmid)>,
    /// Pool pages seen per (vmid, pool).
    per_pool: BTreeMap<(Vmid, u32), u64>,
    /// Every mapping as (pa, end, vmid, writable) for the golden check.
    all: Vec<(u64, u64, Vmid, bool)>,
}

fn disagree(vmid: Vmid, detail: String) -> Violation {
    Violation::TablesDisagree { vmid, detail }
}

impl<P: Platform> Rm<P> {
    /// Check every invariant; an empty list means the system is sound.
    pub fn check_isolation(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        let mut seen = Seen::default();
        for &vmid in self.vms.vms.keys() {
            self.check_vm(vmid, &mut seen, &mut out);
        }
        self.check_writers(&mut seen, &mut out);
        self.check_golden_pages(&seen, &mut out);
        self.check_pools(&mut seen, &mut out);
        self.check_parcels(&mut out);
        self.check_owned(&mut out);
        // Partition pages: in use == tables + RM-held pages + pool pages + golden pages made
        // from the partition.
        let u = self.plat.partition_usage();
        let pools: u64 = self
            .spaces
            .values()
            .flat_map(|s| s.pools.values())
            .map(|p| p.used_pages)
            .sum();
        let goldens: u64 = self.goldens.values().map(|g| g.partition_pages()).sum();
        let accounted = u.tables + self.rm_pages.len() as u64 + pools + goldens;
        if u.total - u.free != accounted {
            out.push(Violation::PagesLost {
                in_use: u.total - u.free,
                accounted,
            });
        }
        out
    }

    /// One VM's leaves against its ranges.
    fn check_vm(&self, vmid: Vmid, seen: &mut Seen, out: &mut Vec<Violation>) {
        let Some(space) = self.spaces.get(&vmid) else {
            out.push(Violation::BadRecord {
                detail: format!("VM {vmid:#x} has no space record"),
            });
            return;
        };
        let mut leaves = Vec::new();
        self.plat.for_each_leaf(vmid, &mut |l| leaves.push(*l));
        // Bytes mapped per range start, to find ranges that should be mapped but are not.
        let mut mapped: BTreeMap<u64, u64> = BTreeMap::new();
        for l in &leaves {
            let end = l.ipa + l.size;
            seen.all
                .push((l.pa, l.pa + l.size, vmid, l.rights.writable()));
            if l.rights.writable() {
                seen.writers.push((l.pa, l.pa + l.size, vmid));
            }
            let inside: Vec<&Range> = space.overlapping(l.ipa, l.size).collect();
            let covered = inside.first().is_some_and(|r| r.ipa <= l.ipa)
                && inside.windows(2).all(|w| w[0].end() == w[1].ipa)
                && inside.last().is_some_and(|r| r.end() >= end);
            if !covered {
                out.push(disagree(
                    vmid,
                    format!(
                        "leaf {:#x}+{:#x} -> {:#x} is outside the VM's ranges",
                        l.ipa, l.size, l.pa
                    ),
                ));
                out.push(Violation::NotOwnedNorAccepted { vmid, pa: l.pa });
                continue;
            }
            for r in inside {
                let (lo, hi) = (l.ipa.max(r.ipa), end.min(r.end()));
                *mapped.entry(r.ipa).or_insert(0) += hi - lo;
                let pa = l.pa + (lo - l.ipa);
                self.check_leaf(vmid, r, l, lo, hi, pa, seen, out);
            }
        }
        // Ranges that must be fully mapped.
        for r in space.ranges() {
            let must = match r.state {
                State::Owned(_) | State::Shared { .. } | State::Golden(_) | State::Zero { .. } => {
                    true
                }
                State::Bound(b) => !b.demand,
                State::Borrowed { parcel } => self
                    .parcels
                    .get(parcel)
                    .and_then(|p| p.accepted.get(&vmid))
                    .is_some_and(|a| a.mapped),
                State::Lent { .. } => false,
            };
            let got = mapped.get(&r.ipa).copied().unwrap_or(0);
            if must && got != r.size {
                out.push(disagree(
                    vmid,
                    format!(
                        "range {:#x}+{:#x} ({:?}) has {got:#x} bytes mapped",
                        r.ipa, r.size, r.state
                    ),
                ));
            }
        }
    }

    /// The part `[lo, hi)` of leaf `l` (mapping `pa` at `lo`) inside range `r` of `vmid`.
    #[allow(clippy::too_many_arguments)]
    fn check_leaf(
        &self,
        vmid: Vmid,
        r: &Range,
        l: &Leaf,
        lo: u64,
        hi: u64,
        pa: u64,
        seen: &mut Seen,
        out: &mut Vec<Violation>,
    ) {
        let bad = |what: &str| {
            disagree(
                vmid,
                format!(
                    "{lo:#x}+{:#x} -> {pa:#x} {:?} {:?} {:?}: {what} ({:?})",
                    hi - lo,
                    l.rights,
                    l.kind,
                    l.tag,
                    r.state
                ),
            )
        };
        let expect = |want_pa: u64, rights: Rights, kind: MemKind, tag: Tag| {
            pa == want_pa && l.rights == rights && l.kind == kind && l.tag == tag
        };
        match r.state {
            State::Owned(o) | State::Shared { owned: o, .. } => {
                if !expect(o.pa + (lo - r.ipa), o.rights, o.kind, Tag::None) {
                    out.push(bad("not the owner's mapping"));
                }
            }
            State::Lent { parcel, .. } => {
                out.push(bad("lent memory mapped in its owner"));
                out.push(Violation::LentStillMapped { handle: parcel, pa });
            }
            State::Borrowed { parcel } => {
                let want = self.parcels.get(parcel).and_then(|p| {
                    let acc = p.accepted.get(&vmid).filter(|a| a.mapped)?;
                    let rights = p.acl_of(vmid)?.rights;
                    (0..p.regions.len())
                        .map(|i| (p.acceptor_ipa(acc, i), p.regions[i]))
                        .find(|(ipa, reg)| *ipa <= lo && lo < ipa + reg.size)
                        .map(|(ipa, reg)| (reg.pa + (lo - ipa), rights, p.kind()))
                });
                match want {
                    Some((want_pa, rights, kind)) if expect(want_pa, rights, kind, Tag::None) => {}
                    _ => {
                        out.push(bad("not the accepted parcel's mapping"));
                        out.push(Violation::NotOwnedNorAccepted { vmid, pa });
                    }
                }
            }
            State::Bound(b) => {
                if l.rights != b.rights || l.kind != MemKind::Normal || l.tag != Tag::None {
                    out.push(bad("not a bound page"));
                }
                self.pool_page(vmid, b.pool, pa, hi - lo, seen);
            }
            State::Golden(m) => {
                let off = m.offset + (lo - r.ipa);
                let golden_pa = self.goldens.get(&m.golden).and_then(|g| g.pa_of(off));
                match l.tag {
                    Tag::Golden => {
                        if Some(pa) != golden_pa || l.rights != m.golden_rights() {
                            out.push(bad("not the golden page, read-only"));
                        }
                    }
                    Tag::Copy if hi - lo == PAGE_SIZE && l.rights == m.copy_rights() => {
                        self.pool_page(vmid, m.pool.unwrap_or(u32::MAX), pa, PAGE_SIZE, seen);
                    }
                    _ => out.push(bad("neither the golden page nor a copy")),
                }
            }
            State::Zero { pool } => {
                if l.tag != Tag::Zero || l.rights != Rights::RWX || hi - lo != PAGE_SIZE {
                    out.push(bad("not a demand-zero page"));
                }
                self.pool_page(vmid, pool, pa, PAGE_SIZE, seen);
            }
        }
    }

    fn pool_page(&self, vmid: Vmid, pool: u32, pa: u64, size: u64, seen: &mut Seen) {
        for i in 0..size / PAGE_SIZE {
            seen.pool_pages.push((pa + i * PAGE_SIZE, vmid));
        }
        *seen.per_pool.entry((vmid, pool)).or_insert(0) += size / PAGE_SIZE;
    }

    /// A PA writable by two VMs only inside a SHARE parcel naming both.
    fn check_writers(&self, seen: &mut Seen, out: &mut Vec<Violation>) {
        let mut shared: Vec<(u64, u64, Vec<Vmid>)> = Vec::new();
        for p in self.parcels.parcels.values() {
            if p.trans == TransType::Share {
                let mut parties: Vec<Vmid> = p.accepted.keys().copied().collect();
                parties.push(p.owner);
                shared.extend(
                    p.regions
                        .iter()
                        .map(|r| (r.pa, r.pa + r.size, parties.clone())),
                );
            }
        }
        let w = &mut seen.writers;
        w.sort();
        for i in 0..w.len() {
            let (lo, hi, v) = w[i];
            for &(lo2, hi2, v2) in w[i + 1..].iter().take_while(|x| x.0 < hi) {
                if v2 == v || hi2 <= lo {
                    continue;
                }
                let (a, b) = (lo.max(lo2), hi.min(hi2));
                let mut iv: Vec<(u64, u64)> = shared
                    .iter()
                    .filter(|(s, e, parties)| {
                        *s < b && a < *e && parties.contains(&v) && parties.contains(&v2)
                    })
                    .map(|(s, e, _)| (*s, *e))
                    .collect();
                iv.sort();
                let mut cur = a;
                for (s, e) in iv {
                    if s > cur {
                        break;
                    }
                    cur = cur.max(e);
                }
                if cur < b {
                    out.push(Violation::WritableByTwo {
                        pa: a,
                        vms: (v, v2),
                    });
                }
            }
        }
    }

    /// No golden page is writable anywhere, and every VM that maps one does so through a
    /// golden range of its image (checked per leaf).
    fn check_golden_pages(&self, seen: &Seen, out: &mut Vec<Violation>) {
        let mut golden: Vec<(u64, u64)> = self
            .goldens
            .values()
            .flat_map(|g| g.regions.iter().map(|r| (r.pa, r.pa + r.size)))
            .collect();
        golden.sort();
        for &(lo, hi, vmid, writable) in &seen.all {
            if !writable {
                continue;
            }
            let i = golden.partition_point(|g| g.1 <= lo);
            if golden.get(i).is_some_and(|g| g.0 < hi) {
                out.push(Violation::GoldenWritable {
                    vmid,
                    pa: lo.max(golden[i].0),
                });
            }
        }
    }

    /// Every pool page is mapped once, in its pool's VM, and each pool counts exactly the
    /// pages its VM maps from it.
    fn check_pools(&self, seen: &mut Seen, out: &mut Vec<Violation>) {
        seen.pool_pages.sort();
        for w in seen.pool_pages.windows(2) {
            if w[0].0 == w[1].0 {
                out.push(Violation::CopyOwnership {
                    pa: w[0].0,
                    detail: format!("mapped as a pool page by {:#x} and {:#x}", w[0].1, w[1].1),
                });
            }
        }
        for (&vmid, space) in &self.spaces {
            for (&id, p) in &space.pools {
                let mapped = seen.per_pool.get(&(vmid, id)).copied().unwrap_or(0);
                if p.used_pages != mapped
                    || p.owner != vmid
                    || self.pool_owner.get(&id) != Some(&vmid)
                {
                    out.push(Violation::BadRecord {
                        detail: format!(
                            "pool {id} of VM {vmid:#x}: {} pages charged, {mapped} mapped",
                            p.used_pages
                        ),
                    });
                }
            }
            // Every range's pool is the VM's own.
            for r in space.ranges() {
                let pool = match r.state {
                    State::Bound(b) => Some(b.pool),
                    State::Golden(m) => m.pool,
                    State::Zero { pool } => Some(pool),
                    _ => None,
                };
                if pool.is_some_and(|p| !space.pools.contains_key(&p)) {
                    out.push(Violation::BadRecord {
                        detail: format!(
                            "VM {vmid:#x} range {:#x} charges a pool it does not own",
                            r.ipa
                        ),
                    });
                }
                if let State::Golden(m) = r.state {
                    let copies = self.count_tagged(vmid, r.ipa, r.size, Tag::Copy);
                    if copies != m.copies {
                        out.push(Violation::BadRecord {
                            detail: format!(
                                "golden range {:#x} of VM {vmid:#x}: {} copies recorded, {copies} mapped",
                                r.ipa, m.copies
                            ),
                        });
                    }
                }
            }
        }
        for (&pa, &vmid) in seen.pool_pages.iter().map(|(p, v)| (p, v)) {
            let owned = self.spaces.values().any(|s| {
                s.ranges().any(|r| match r.state {
                    State::Owned(o)
                    | State::Lent { owned: o, .. }
                    | State::Shared { owned: o, .. } => o.pa <= pa && pa < o.pa + r.size,
                    _ => false,
                })
            });
            if owned {
                out.push(Violation::CopyOwnership {
                    pa,
                    detail: format!("pool page of {vmid:#x} is also a VM's own memory"),
                });
            }
        }
        let mappings: BTreeMap<u32, u64> =
            self.spaces
                .values()
                .flat_map(|s| s.ranges())
                .fold(BTreeMap::new(), |mut m, r| {
                    if let State::Golden(g) = r.state {
                        *m.entry(g.golden).or_insert(0) += 1;
                    }
                    m
                });
        for g in self.goldens.values() {
            let n = mappings.get(&g.id).copied().unwrap_or(0);
            if n != g.mappings {
                out.push(Violation::BadRecord {
                    detail: format!(
                        "golden {}: {} mappings recorded, {n} ranges",
                        g.id, g.mappings
                    ),
                });
            }
        }
    }

    /// Parcels agree with the ranges that hold them.
    fn check_parcels(&self, out: &mut Vec<Violation>) {
        let mut counts: BTreeMap<Vmid, usize> = BTreeMap::new();
        for p in self.parcels.parcels.values() {
            *counts.entry(p.owner).or_insert(0) += 1;
            if (p.state == ParcelState::Shared) == p.accepted.is_empty() {
                out.push(Violation::BadRecord {
                    detail: format!(
                        "parcel {} state {:?} with {} acceptors",
                        p.handle,
                        p.state,
                        p.accepted.len()
                    ),
                });
            }
            let space = self.spaces.get(&p.owner);
            for r in &p.regions {
                let share = p.trans == TransType::Share;
                let held = space.is_some_and(|s| {
                    s.covered_by(r.owner_ipa, r.size, |rg| {
                        let (parcel, owned, is_shared) = match rg.state {
                            State::Lent { parcel, owned } => (parcel, owned, false),
                            State::Shared { parcel, owned } => (parcel, owned, true),
                            _ => return false,
                        };
                        parcel == p.handle
                            && is_shared == share
                            && rg.ipa >= r.owner_ipa
                            && rg.end() <= r.owner_ipa + r.size
                            && owned.pa == r.pa + (rg.ipa - r.owner_ipa)
                    })
                });
                if !held {
                    out.push(Violation::BadRecord {
                        detail: format!(
                            "parcel {} region {:#x}+{:#x}: the owner's ranges do not hold it",
                            p.handle, r.owner_ipa, r.size
                        ),
                    });
                }
            }
            for (&v, acc) in &p.accepted {
                let ok = self.spaces.get(&v).is_some_and(|s| {
                    acc.ipas.iter().all(|ipa| {
                        s.at(*ipa).is_some_and(|rg| {
                            rg.ipa == *ipa && matches!(rg.state, State::Borrowed { parcel } if parcel == p.handle)
                        })
                    })
                });
                if !ok {
                    out.push(Violation::BadRecord {
                        detail: format!("parcel {}: IPAs of VM {v:#x} not reserved", p.handle),
                    });
                }
            }
        }
        for (&vmid, &n) in &self.parcels.counts {
            if counts.get(&vmid).copied().unwrap_or(0) != n {
                out.push(Violation::BadRecord {
                    detail: format!(
                        "VM {vmid:#x} parcel count {n}, real {:?}",
                        counts.get(&vmid)
                    ),
                });
            }
        }
        // Borrowed ranges name a parcel that lists them.
        for (&vmid, s) in &self.spaces {
            for r in s.ranges() {
                if let State::Borrowed { parcel } = r.state {
                    let listed = self
                        .parcels
                        .get(parcel)
                        .and_then(|p| p.accepted.get(&vmid))
                        .is_some_and(|a| a.ipas.contains(&r.ipa));
                    if !listed {
                        out.push(Violation::BadRecord {
                            detail: format!("VM {vmid:#x} range {:#x} borrows parcel {parcel}, which does not list it", r.ipa),
                        });
                    }
                }
            }
        }
    }

    /// Each PA owned by at most one VM.
    fn check_owned(&self, out: &mut Vec<Violation>) {
        let mut owned: Vec<(u64, u64)> = Vec::new();
        for s in self.spaces.values() {
            for r in s.ranges() {
                if let State::Owned(o)
                | State::Lent { owned: o, .. }
                | State::Shared { owned: o, .. } = r.state
                {
                    owned.push((o.pa, o.pa + r.size));
                }
            }
        }
        owned.sort();
        for w in owned.windows(2) {
            if w[1].0 < w[0].1 {
                out.push(Violation::OwnedTwice { pa: w[1].0 });
            }
        }
    }
}
