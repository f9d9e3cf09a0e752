//! VM_ALLOC_VMID and VM_DEALLOC_VMID, and giving back everything a VM holds.

use alloc::vec::Vec;

use gunyah_rm_abi::RmError;

use super::never_configured;
use crate::plan::Plan;
use crate::platform::{Platform, Vmid, PAGE_SIZE};
use crate::service::Rm;
use crate::space::{Origin, Owned, State, VmSpace};
use crate::vm::*;
use gunyah_rm_abi::vm::{VmidReq, Word};

impl<P: Platform> Rm<P> {
    /// VM_ALLOC_VMID: only HLOS (DENIED). VMID 0 takes the lowest free
    /// dynamic VMID (the reply carries it); a static VMID must be free and in
    /// `STATIC_VMID_FIRST..=STATIC_VMID_LAST`, and the reply carries no data.
    /// A taken or out-of-range static VMID, or no free dynamic one, is
    /// NORESOURCE (§12.1). The new VM starts in LOAD without a VM_STATUS
    /// (Gunyah's RM creates it in that state; it is not a state change).
    pub(crate) fn vm_alloc(&mut self, caller: Vmid, req: &VmidReq) -> Result<Vec<u8>, RmError> {
        let want = req.vmid.get();
        if caller != VMID_HLOS {
            return Err(RmError::Denied);
        }
        let vmid = if want == 0 {
            self.vms.free_dynamic().ok_or(RmError::NoResource)?
        } else {
            if !(STATIC_VMID_FIRST..=STATIC_VMID_LAST).contains(&want) || self.vms.exists(want) {
                return Err(RmError::NoResource);
            }
            want
        };
        self.plat.create_space(vmid).map_err(|_| RmError::NoMem)?;
        self.vms
            .vms
            .insert(vmid, Vm::new(vmid, caller, VmState::Load));
        self.spaces.insert(vmid, VmSpace::default());
        if want == 0 {
            return Ok(zerocopy::IntoBytes::as_bytes(&Word::new(vmid as u32)).to_vec());
        }
        Ok(Vec::new())
    }

    /// VM_DEALLOC_VMID: the VM's manager (VMID_INVALID), in LOAD or RESET
    /// (VM_STATE), or in INIT_FAILED when VM_CONFIG_IMAGE failed: such a VM
    /// holds nothing and cannot be reset (Gunyah's RM dies on that VM_RESET,
    /// §12.1; this RM refuses it), so deallocating it is the way out.
    pub(crate) fn vm_dealloc(&mut self, caller: Vmid, req: &VmidReq) -> Result<Vec<u8>, RmError> {
        let vmid = req.vmid.get();
        let vm = self.owned_vm(caller, vmid)?;
        if !matches!(vm.state, VmState::Load | VmState::Reset) && !never_configured(vm) {
            return Err(RmError::VmState);
        }
        self.teardown_memory(vmid, true);
        let _ = self.plat.destroy_space(vmid);
        self.spaces.remove(&vmid);
        self.vms.vms.remove(&vmid);
        self.close_link(vmid);
        self.release_config_images(vmid);
        Ok(Vec::new())
    }

    /// Give back everything `vmid` holds: accepted parcels, owned parcels, its
    /// golden mappings (copies back to its pools), its bindings and demand-zero
    /// pages (back to the partition), and owned memory (donated memory to its
    /// donor, partition pages to the partition). With `dealloc`, its pools go
    /// too. Every range of the VM ends up free and unmapped.
    pub(super) fn teardown_memory(&mut self, vmid: Vmid, dealloc: bool) {
        self.release_all_accepted(vmid);
        self.revoke_owned_parcels(vmid);
        let ranges: Vec<(u64, u64, State)> = self
            .spaces
            .get(&vmid)
            .map(|s| s.ranges().map(|r| (r.ipa, r.size, r.state)).collect())
            .unwrap_or_default();
        for (ipa, size, state) in ranges {
            match state {
                State::Golden(_) => {
                    let _ = self.unmap_golden_range(vmid, ipa, size);
                }
                State::Bound(_) => {
                    let _ = self.drop_bound(vmid, ipa);
                }
                State::Zero { pool } => {
                    let pages = self.unmap_all(vmid, ipa, size);
                    self.charge(vmid, pool, -(pages.len() as i64));
                    self.free_pages(pages.into_iter());
                    self.forget_range(vmid, ipa);
                }
                State::Owned(o) => {
                    self.unmap_all(vmid, ipa, size);
                    self.forget_range(vmid, ipa);
                    self.return_owned(vmid, size, o);
                }
                // Parcels were released and revoked above.
                State::Lent { .. } | State::Shared { .. } | State::Borrowed { .. } => {
                    self.forget_range(vmid, ipa);
                }
            }
        }
        if let Some(space) = self.spaces.get_mut(&vmid) {
            space.pending_cow.clear();
            space.set_cursor(0);
            if dealloc {
                for id in core::mem::take(&mut space.pools).into_keys() {
                    self.pool_owner.remove(&id);
                }
            }
        }
        if dealloc {
            self.protected.remove(&vmid);
        }
    }

    /// Unmap whatever `vmid`'s tables map in `[ipa, ipa+size)`; returns the PAs of the pages
    /// that were mapped.
    pub(crate) fn unmap_all(&mut self, vmid: Vmid, ipa: u64, size: u64) -> Vec<u64> {
        let end = ipa + size;
        let mut pages = Vec::new();
        self.plat.for_each_leaf_in(vmid, ipa, size, &mut |l| {
            let (lo, hi) = (l.ipa.max(ipa), (l.ipa + l.size).min(end));
            pages.extend(
                (lo..hi)
                    .step_by(PAGE_SIZE as usize)
                    .map(|a| l.pa + (a - l.ipa)),
            );
        });
        let mut plan = Plan::new();
        for (a, s) in self.mapped_spans(vmid, ipa, size) {
            plan.unmap(vmid, a, s);
        }
        let r = self.plat.apply(&plan);
        debug_assert!(r.is_ok(), "teardown unmap failed: {r:?}");
        pages
    }

    /// Owned memory of a VM that is going away goes back where it came from:
    /// partition pages to the partition, donated memory to its donor (mapped
    /// where the donor had it, if free; HLOS if the donor is gone too).
    fn return_owned(&mut self, vmid: Vmid, size: u64, o: Owned) {
        match o.origin {
            Origin::Partition => {
                for i in 0..size / PAGE_SIZE {
                    self.free_partition_page(o.pa + i * PAGE_SIZE);
                }
            }
            Origin::Donated { from, ipa, rights } => {
                self.plat.zero(o.pa, size);
                let back = Owned {
                    pa: o.pa,
                    rights,
                    kind: o.kind,
                    origin: Origin::Boot,
                };
                let _ = vmid;
                self.return_home(from, ipa, size, back);
            }
            Origin::Boot => {}
        }
    }
}
