//! A simulated vCPU's MMU for host tests and benchmarks: walks a VM's real
//! stage-2 tables in the simulator's table memory with single atomic
//! descriptor loads, without the RM's lock, exactly as hardware walks them
//! while the RM edits them. A walk that lands on an entry the RM is
//! replacing (break-before-make) sees it invalid and raises a translation
//! fault, which the fault path answers with "retry".

use core::sync::atomic::{AtomicU64, Ordering};

use gunyah_stage2::geometry::level_shift;
use gunyah_stage2::host::SharedArena;
use gunyah_stage2::{block_size, Access, Attrs, Descriptor, FaultKind, FaultStatus, Geometry};

use crate::platform::Vmid;
use crate::sim::SimPlatform;

/// Output-address bits of a descriptor (47:12).
const OA_MASK: u64 = 0x0000_FFFF_FFFF_F000;

/// One VM's stage-2 translation as a vCPU sees it.
#[derive(Clone)]
pub struct SimMmu {
    tables: SharedArena,
    root: u64,
    geometry: Geometry,
}

impl SimMmu {
    /// The MMU of `vmid` (its tables must outlive the walks: do not destroy
    /// the VM while vCPU threads run).
    pub fn for_vm(p: &SimPlatform, vmid: Vmid) -> Option<SimMmu> {
        let s = p.space(vmid)?;
        Some(SimMmu {
            tables: p.partition().clone(),
            root: s.root_pa(),
            geometry: *s.geometry(),
        })
    }

    fn load(&self, table_pa: u64, index: usize) -> u64 {
        let ptr = self.tables.lock().page_ptr(table_pa);
        match ptr {
            // SAFETY: `page_ptr` points at a 4 KiB, page-aligned page inside the arena block,
            // which lives as long as `self.tables` (we hold a clone of the Arc) and never moves;
            // `index < 512` so the 8-byte aligned slot is in the page. The RM writes
            // descriptors with single atomic stores, so an atomic load never tears.
            Some(p) => {
                unsafe { AtomicU64::from_ptr(p.cast::<u64>().add(index)) }.load(Ordering::Acquire)
            }
            None => 0,
        }
    }

    /// What the MMU does for `access` to `ipa`: the PA, or the stage-2
    /// fault it raises.
    pub fn translate(&self, ipa: u64, access: Access) -> Result<u64, FaultStatus> {
        let start = self.geometry.start_level();
        if ipa >= self.geometry.ipa_limit() {
            // The input-size check faults at level 0 (as `AddressSpace::simulate_access`).
            return Err(FaultStatus::new(FaultKind::Translation, Some(0)));
        }
        let mut level = start;
        // The (possibly concatenated) root: index across its pages.
        let idx = (ipa >> level_shift(level)) as usize;
        let mut d = self.load(self.root + (idx / 512) as u64 * 4096, idx % 512);
        loop {
            let kind = d & 3;
            if level < 3 && kind == 3 {
                level += 1;
                let idx = ((ipa >> level_shift(level)) & 511) as usize;
                d = self.load(d & OA_MASK, idx);
                continue;
            }
            let leaf = match level {
                3 => kind == 3,
                1 | 2 => kind == 1,
                _ => false,
            };
            if !leaf {
                return Err(FaultStatus::new(FaultKind::Translation, Some(level)));
            }
            let attrs = Attrs::from_descriptor(Descriptor::new(d));
            if !attrs.af {
                return Err(FaultStatus::new(FaultKind::AccessFlag, Some(level)));
            }
            let ok = match access {
                Access::Read => attrs.s2ap.readable(),
                Access::Write => attrs.s2ap.writable(),
                Access::Execute => !attrs.xn,
            };
            if !ok {
                return Err(FaultStatus::new(FaultKind::Permission, Some(level)));
            }
            let size = block_size(level);
            return Ok((d & OA_MASK & !(size - 1)) + (ipa & (size - 1)));
        }
    }
}
