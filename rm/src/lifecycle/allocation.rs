//! VM_ALLOC_VMID and VM_DEALLOC_VMID, and giving back everything a VM holds.

use alloc::vec::Vec;

use gunyah_rm_abi::RmError;

use super::never_configured;
use crate::memory::{Origin, OwnedRange, VmMem};
use crate::platform::{Platform, Tag, Vmid};
use crate::service::Rm;
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
        self.mem.insert(vmid, VmMem::default());
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
        self.teardown_memory(vmid);
        self.ext_teardown_vm(vmid, true);
        let _ = self.plat.destroy_space(vmid);
        self.mem.remove(&vmid);
        self.vms.vms.remove(&vmid);
        self.close_link(vmid);
        Ok(Vec::new())
    }

    /// Give back everything `vmid` holds: accepted parcels, owned parcels and
    /// owned memory (donated memory to its donor, partition pages to the
    /// partition).
    pub(super) fn teardown_memory(&mut self, vmid: Vmid) {
        self.release_all_accepted(vmid);
        self.revoke_owned_parcels(vmid);
        let owned: Vec<OwnedRange> = self
            .mem
            .get(&vmid)
            .map(|m| m.owned.values().copied().collect())
            .unwrap_or_default();
        for r in owned {
            let _ = self.plat.unmap(vmid, r.ipa, r.size);
            if let Some(m) = self.mem.get_mut(&vmid) {
                m.remove_owned(r.ipa, r.size);
            }
            match r.origin {
                Origin::Partition => {
                    let mut pa = r.pa;
                    while pa < r.pa + r.size {
                        self.free_partition_page(pa);
                        pa += crate::platform::PAGE_SIZE;
                    }
                }
                Origin::Donated { from, ipa, rights } => {
                    self.plat.zero(r.pa, r.size);
                    let home = if self.vms.exists(from) {
                        from
                    } else {
                        VMID_HLOS
                    };
                    let hi = self.cfg.ipa_alloc_end.min(self.plat.ipa_limit());
                    let base = self.cfg.ipa_alloc_base;
                    let Some(m) = self.mem.get_mut(&home) else {
                        continue;
                    };
                    let at = if home == from && m.ipa_free(ipa, r.size) {
                        Some(ipa)
                    } else {
                        m.alloc_ipa(r.size, crate::platform::PAGE_SIZE, base, hi)
                    };
                    if let Some(at) = at {
                        if self
                            .plat
                            .map(home, at, r.pa, r.size, rights, r.kind, Tag::None)
                            .is_ok()
                        {
                            if let Some(m) = self.mem.get_mut(&home) {
                                m.add_owned(OwnedRange {
                                    ipa: at,
                                    origin: Origin::Boot,
                                    rights,
                                    ..r
                                });
                            }
                        }
                    }
                }
                Origin::Boot => {}
            }
        }
    }
}
