//! The isolation checker: walks every VM's real stage-2 tables (through the
//! platform's leaf visitor) and the RM's records, and reports every
//! violation it finds.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::memparcel::{ParcelState, TransType};
use crate::platform::{Leaf, MemKind, Platform, Rights, Vmid};
use crate::service::Rm;

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
    /// A golden page's share count differs from the number of VMs mapping it.
    ShareCount {
        /// The image.
        golden: u32,
        /// Page index in the image.
        page: u64,
        /// The recorded count.
        recorded: u64,
        /// VMs whose tables map it.
        actual: u64,
    },
    /// A private (CoW or demand-zero) page is not owned by exactly one VM
    /// and charged to exactly that VM's pool.
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

/// A contiguous mapping run: (ipa, pa, size, rights, kind).
pub(crate) type Run = (u64, u64, u64, Rights, MemKind);

fn push_run(v: &mut Vec<Run>, r: Run) {
    if let Some(l) = v.last_mut() {
        if l.0 + l.2 == r.0 && l.1 + l.2 == r.1 && l.3 == r.3 && l.4 == r.4 {
            l.2 += r.2;
            return;
        }
    }
    v.push(r);
}

fn normalise(mut v: Vec<Run>) -> Vec<Run> {
    v.sort();
    let mut out = Vec::with_capacity(v.len());
    for r in v {
        push_run(&mut out, r);
    }
    out
}

/// Subtract the sorted, disjoint intervals `holes` (ipa, size) from `r`.
fn subtract(r: Run, holes: &[(u64, u64)], out: &mut Vec<Run>) {
    let (mut ipa, end) = (r.0, r.0 + r.2);
    for &(h, hs) in holes {
        let he = h + hs;
        if he <= ipa || h >= end {
            continue;
        }
        if h > ipa {
            out.push((ipa, r.1 + (ipa - r.0), h - ipa, r.3, r.4));
        }
        ipa = ipa.max(he);
    }
    if ipa < end {
        out.push((ipa, r.1 + (ipa - r.0), end - ipa, r.3, r.4));
    }
}

impl<P: Platform> Rm<P> {
    /// What the records say `vmid`'s stage 2 maps.
    fn expected_runs(&self, vmid: Vmid) -> Vec<Run> {
        let mut v = Vec::new();
        let mut holes: Vec<(u64, u64)> = Vec::new();
        for p in self.parcels.parcels.values() {
            if p.owner == vmid && p.trans != TransType::Share {
                holes.extend(p.regions.iter().map(|r| (r.owner_ipa, r.size)));
            }
            if let Some(acc) = p.accepted.get(&vmid) {
                if acc.mapped {
                    let rights = p.acl_of(vmid).map_or(Rights(0), |a| a.rights);
                    for (i, r) in p.regions.iter().enumerate() {
                        v.push((p.acceptor_ipa(acc, i), r.pa, r.size, rights, p.kind()));
                    }
                }
            }
        }
        holes.sort();
        if let Some(m) = self.mem.get(&vmid) {
            for o in m.owned.values() {
                subtract((o.ipa, o.pa, o.size, o.rights, o.kind), &holes, &mut v);
            }
        }
        v.extend(self.ext_expected_runs(vmid));
        normalise(v)
    }

    fn actual_runs(&self, vmid: Vmid) -> Vec<Run> {
        let mut v = Vec::new();
        self.plat.for_each_leaf(vmid, &mut |l: &Leaf| {
            v.push((l.ipa, l.pa, l.size, l.rights, l.kind))
        });
        normalise(v)
    }

    /// Check every invariant; an empty list means the system is sound.
    pub fn check_isolation(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        // 1. Tables agree with records, VM by VM.
        let mut actual: BTreeMap<Vmid, Vec<Run>> = BTreeMap::new();
        for &vmid in self.vms.vms.keys() {
            let a = self.actual_runs(vmid);
            let e = self.expected_runs(vmid);
            if a != e {
                let i = a
                    .iter()
                    .zip(&e)
                    .position(|(x, y)| x != y)
                    .unwrap_or(a.len().min(e.len()));
                out.push(Violation::TablesDisagree {
                    vmid,
                    detail: format!(
                        "run {i}: tables {:x?}, records {:x?} ({} vs {} runs)",
                        a.get(i),
                        e.get(i),
                        a.len(),
                        e.len()
                    ),
                });
            }
            actual.insert(vmid, a);
        }
        // 2. Physical ownership: each PA owned by at most one VM.
        let mut owned: Vec<(u64, u64, Vmid)> = Vec::new();
        for (&vmid, m) in &self.mem {
            owned.extend(m.owned.values().map(|o| (o.pa, o.pa + o.size, vmid)));
        }
        owned.sort();
        for w in owned.windows(2) {
            if w[1].0 < w[0].1 {
                out.push(Violation::OwnedTwice { pa: w[1].0 });
            }
        }
        // Accepted PA ranges per VM, and Share parcels' parties.
        let mut accepted: Vec<(u64, u64, Vmid)> = Vec::new();
        let mut shared_parties: Vec<(u64, u64, Vec<Vmid>)> = Vec::new();
        for p in self.parcels.parcels.values() {
            for (&v, acc) in &p.accepted {
                if acc.mapped {
                    accepted.extend(p.regions.iter().map(|r| (r.pa, r.pa + r.size, v)));
                }
            }
            if p.trans == TransType::Share {
                let mut parties: Vec<Vmid> = p.accepted.keys().copied().collect();
                parties.push(p.owner);
                shared_parties.extend(
                    p.regions
                        .iter()
                        .map(|r| (r.pa, r.pa + r.size, parties.clone())),
                );
            }
            // 4. Record consistency.
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
            for r in &p.regions {
                if self.parcels.owner_index.get(&(p.owner, r.owner_ipa))
                    != Some(&(r.owner_ipa + r.size, p.handle))
                {
                    out.push(Violation::BadRecord {
                        detail: format!(
                            "parcel {} region {:#x} not indexed",
                            p.handle, r.owner_ipa
                        ),
                    });
                }
            }
            for (&v, acc) in &p.accepted {
                let reserved = self.mem.get(&v).is_some_and(|m| {
                    (0..acc.ipas.len()).all(|i| {
                        let size = if acc.contiguous {
                            p.total_size()
                        } else {
                            p.regions[i].size
                        };
                        m.is_reserved(acc.ipas[i], size)
                    })
                });
                if !reserved {
                    out.push(Violation::BadRecord {
                        detail: format!("parcel {}: IPAs of VM {v:#x} not reserved", p.handle),
                    });
                }
            }
            // 3. Lent / donated pages are not mapped in their owner.
            if p.trans != TransType::Share {
                if let Some(runs) = actual.get(&p.owner) {
                    for r in &p.regions {
                        if runs.iter().any(|a| a.1 < r.pa + r.size && r.pa < a.1 + a.2) {
                            out.push(Violation::LentStillMapped {
                                handle: p.handle,
                                pa: r.pa,
                            });
                        }
                    }
                }
            }
        }
        // PAs the extension lets VMs map (bindings, golden mappings, copies).
        accepted.extend(self.ext_mappable());
        // Per VM, the PA intervals it owns or accepted, merged and sorted.
        let mut rights_by_vm: BTreeMap<Vmid, Vec<(u64, u64)>> = BTreeMap::new();
        for &(lo, hi, v) in owned.iter().chain(accepted.iter()) {
            rights_by_vm.entry(v).or_default().push((lo, hi));
        }
        for iv in rights_by_vm.values_mut() {
            iv.sort();
            let mut merged: Vec<(u64, u64)> = Vec::with_capacity(iv.len());
            for &(lo, hi) in iv.iter() {
                match merged.last_mut() {
                    Some(l) if lo <= l.1 => l.1 = l.1.max(hi),
                    _ => merged.push((lo, hi)),
                }
            }
            *iv = merged;
        }
        let covered = |vmid: Vmid, lo: u64, hi: u64| -> bool {
            let Some(iv) = rights_by_vm.get(&vmid) else {
                return false;
            };
            // The merged interval starting at or before `lo` must reach `hi`.
            let i = iv.partition_point(|x| x.0 <= lo);
            i > 0 && iv[i - 1].1 >= hi
        };
        // Every mapped PA is owned or accepted by the VM mapping it.
        let mut writers: Vec<(u64, u64, Vmid)> = Vec::new();
        for (&vmid, runs) in &actual {
            for r in runs {
                let (lo, hi) = (r.1, r.1 + r.2);
                if !covered(vmid, lo, hi) {
                    out.push(Violation::NotOwnedNorAccepted { vmid, pa: lo });
                }
                if r.3.writable() {
                    writers.push((lo, hi, vmid));
                }
            }
        }
        // A PA writable by two VMs only inside a Share parcel naming both.
        writers.sort();
        for i in 0..writers.len() {
            let (lo, hi, v) = writers[i];
            for &(lo2, hi2, v2) in writers[i + 1..].iter().take_while(|w| w.0 < hi) {
                if v2 == v || hi2 <= lo {
                    continue;
                }
                let (a, b) = (lo.max(lo2), hi.min(hi2));
                // The overlap must be covered by Share parcels naming both.
                let mut iv: Vec<(u64, u64)> = shared_parties
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
                let ok = cur >= b;
                if !ok {
                    out.push(Violation::WritableByTwo {
                        pa: a,
                        vms: (v, v2),
                    });
                }
            }
        }
        // Index and counters agree with the parcels; owned IPAs are reserved.
        let regions: usize = self.parcels.parcels.values().map(|p| p.regions.len()).sum();
        if regions != self.parcels.owner_index.len() {
            out.push(Violation::BadRecord {
                detail: format!(
                    "{} regions but {} index entries",
                    regions,
                    self.parcels.owner_index.len()
                ),
            });
        }
        for (&vmid, &n) in &self.parcels.counts {
            let real = self
                .parcels
                .parcels
                .values()
                .filter(|p| p.owner == vmid)
                .count();
            if real != n {
                out.push(Violation::BadRecord {
                    detail: format!("VM {vmid:#x} parcel count {n}, real {real}"),
                });
            }
        }
        for (&vmid, m) in &self.mem {
            if let Some(o) = m.owned.values().find(|o| !m.is_reserved(o.ipa, o.size)) {
                out.push(Violation::BadRecord {
                    detail: format!("VM {vmid:#x}: owned IPA {:#x} not reserved", o.ipa),
                });
            }
        }
        // 5. Partition pages: in use == tables + RM-held pages.
        let u = self.plat.partition_usage();
        let accounted = u.tables + self.rm_pages.len() as u64 + self.ext.partition_pages_held();
        if u.total - u.free != accounted {
            out.push(Violation::PagesLost {
                in_use: u.total - u.free,
                accounted,
            });
        }
        // 6. Golden pages, share counts, private pages.
        out.extend(self.ext_violations(&actual));
        out
    }
}
