//! The isolation checker's part for gmem, golden images and CoW copies
//! (called by [`Rm::check_isolation`]):
//! * what the extension records say each VM's tables map (bindings, golden
//!   mappings, private pages), and which PAs each VM may map;
//! * no golden PA is writable in any VM;
//! * every golden page's share count equals the number of VMs whose tables
//!   map it;
//! * every private page is mapped in exactly one VM (its own, at its IPA),
//!   charged to exactly one pool, which that VM owns; every charged page is
//!   recorded.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::vec::Vec;

use crate::checker::{Run, Violation};
use crate::memext::PrivateKind;
use crate::platform::{MemKind, Platform, Vmid, PAGE_SIZE};
use crate::service::Rm;

impl<P: Platform> Rm<P> {
    /// Runs the extension records say `vmid`'s tables hold.
    pub(crate) fn ext_expected_runs(&self, vmid: Vmid) -> Vec<Run> {
        let mut v: Vec<Run> = Vec::new();
        for b in self.ext.bindings.values().filter(|b| b.vmid == vmid) {
            if let Some(g) = self.ext.gmems.get(&b.gmem) {
                for (o, pa) in g.pages.range(b.offset..b.offset + b.size) {
                    v.push((
                        b.ipa + (o - b.offset),
                        *pa,
                        PAGE_SIZE,
                        b.rights,
                        MemKind::Normal,
                    ));
                }
            }
        }
        for m in self.golden_mappings(vmid) {
            let Some(g) = self.ext.goldens.get(&m.golden) else {
                continue;
            };
            let mut a = m.ipa;
            while a < m.ipa + m.size {
                if !self.ext.private.contains_key(&(vmid, a)) {
                    if let Some(pa) = g.pa_of(m.offset + (a - m.ipa)) {
                        v.push((a, pa, PAGE_SIZE, m.golden_rights(), MemKind::Normal));
                    }
                }
                a += PAGE_SIZE;
            }
        }
        for ((_, ipa), p) in self.ext.private.range((vmid, 0)..=(vmid, u64::MAX)) {
            v.push((*ipa, p.pa, PAGE_SIZE, p.rights, MemKind::Normal));
        }
        v
    }

    /// PA intervals `(lo, hi, vmid)` the extension lets each VM map.
    pub(crate) fn ext_mappable(&self) -> Vec<(u64, u64, Vmid)> {
        let mut out = Vec::new();
        for &vmid in self.vms.vms.keys() {
            for (ipa, pa, size, _, _) in self.ext_expected_runs(vmid) {
                let _ = ipa;
                out.push((pa, pa + size, vmid));
            }
        }
        out
    }

    /// The extension's invariants over the real tables (`actual`: every
    /// VM's leaf runs).
    pub(crate) fn ext_violations(&self, actual: &BTreeMap<Vmid, Vec<Run>>) -> Vec<Violation> {
        let mut out = Vec::new();
        // Golden regions by PA: (lo, hi, golden id, image offset of lo).
        let mut golden_pa: Vec<(u64, u64, u32, u64)> = Vec::new();
        for g in self.ext.goldens.values() {
            for r in &g.regions {
                golden_pa.push((r.pa, r.pa + r.size, g.id, r.offset));
            }
        }
        golden_pa.sort();
        let golden_at = |pa: u64| -> Option<(u32, u64)> {
            let i = golden_pa.partition_point(|x| x.1 <= pa);
            golden_pa
                .get(i)
                .filter(|x| x.0 <= pa)
                .map(|x| (x.2, x.3 + (pa - x.0)))
        };
        // Mappers of each golden page, and of each private page.
        let mut golden_mappers: BTreeMap<(u32, u64), u64> = BTreeMap::new();
        let mut private_mappers: BTreeMap<u64, Vec<(Vmid, u64)>> = BTreeMap::new();
        let private_pas: BTreeMap<u64, (Vmid, u64)> = self
            .ext
            .private
            .iter()
            .map(|((v, ipa), p)| (p.pa, (*v, *ipa)))
            .collect();
        for (&vmid, runs) in actual {
            for &(ipa, pa, size, rights, _) in runs {
                // Only pages inside golden regions or private pages matter.
                let lo_i = golden_pa.partition_point(|x| x.1 <= pa);
                let touches_golden = golden_pa.get(lo_i).is_some_and(|x| x.0 < pa + size);
                let touches_private = private_pas.range(pa..pa + size).next().is_some();
                if !touches_golden && !touches_private {
                    continue;
                }
                let mut off = 0;
                while off < size {
                    let p = pa + off;
                    if let Some((gid, goff)) = golden_at(p) {
                        if rights.writable() {
                            out.push(Violation::GoldenWritable { vmid, pa: p });
                        }
                        *golden_mappers.entry((gid, goff / PAGE_SIZE)).or_insert(0) += 1;
                    }
                    if private_pas.contains_key(&p) {
                        private_mappers
                            .entry(p)
                            .or_default()
                            .push((vmid, ipa + off));
                    }
                    off += PAGE_SIZE;
                }
            }
        }
        // Share counts.
        for g in self.ext.goldens.values() {
            for page in 0..g.size / PAGE_SIZE {
                let recorded = g.share_count(page);
                let actual = golden_mappers.get(&(g.id, page)).copied().unwrap_or(0);
                if recorded != actual {
                    out.push(Violation::ShareCount {
                        golden: g.id,
                        page,
                        recorded,
                        actual,
                    });
                }
            }
        }
        // Private pages: one VM, one pool (owned by that VM), recorded once.
        let mut charged: BTreeMap<u64, u32> = BTreeMap::new();
        for g in self.ext.gmems.values() {
            for &pa in g.anon.iter().chain(g.pages.values()) {
                if charged.insert(pa, g.id).is_some() {
                    out.push(Violation::CopyOwnership {
                        pa,
                        detail: format!("page charged to two pools ({} and another)", g.id),
                    });
                }
            }
        }
        for ((vmid, ipa), p) in &self.ext.private {
            let mappers = private_mappers.get(&p.pa).cloned().unwrap_or_default();
            if mappers != [(*vmid, *ipa)] {
                out.push(Violation::CopyOwnership {
                    pa: p.pa,
                    detail: format!(
                        "private page of VM {vmid:#x} at {ipa:#x} is mapped by {mappers:x?}"
                    ),
                });
            }
            let pool_ok = self
                .ext
                .gmems
                .get(&p.gmem)
                .is_some_and(|g| g.owner == *vmid && g.anon.contains(&p.pa));
            if !pool_ok {
                out.push(Violation::CopyOwnership {
                    pa: p.pa,
                    detail: format!("private page not charged to its VM's pool {}", p.gmem),
                });
            }
            if golden_at(p.pa).is_some() {
                out.push(Violation::CopyOwnership {
                    pa: p.pa,
                    detail: "private page is also a golden page".into(),
                });
            }
            if let PrivateKind::Cow { golden, .. } = p.kind {
                if self
                    .ext
                    .mapping_at(*vmid, *ipa)
                    .is_none_or(|m| m.golden != golden)
                {
                    out.push(Violation::CopyOwnership {
                        pa: p.pa,
                        detail: "CoW copy outside a mapping of its image".into(),
                    });
                }
            }
        }
        let recorded = self.ext.private.len();
        let anon: usize = self.ext.gmems.values().map(|g| g.anon.len()).sum();
        if recorded != anon {
            out.push(Violation::CopyOwnership {
                pa: 0,
                detail: format!("{anon} anonymous pool pages but {recorded} private records"),
            });
        }
        // Mapping copy counts agree with the private records.
        for m in self.ext.maps.values() {
            let n = self
                .ext
                .private
                .range((m.vmid, m.ipa)..(m.vmid, m.ipa + m.size))
                .count() as u64;
            if n != m.copies {
                out.push(Violation::BadRecord {
                    detail: format!(
                        "mapping of VM {:#x} at {:#x} counts {} copies, records {}",
                        m.vmid, m.ipa, m.copies, n
                    ),
                });
            }
        }
        out
    }
}
