//! VM_GET_STATE, VM_SET_STATUS and VM_GET_HYP_RESOURCES.

use alloc::vec::Vec;

use gunyah_rm_abi::RmError;

use crate::platform::{Platform, Vmid};
use crate::service::Rm;
use crate::vm::*;
use gunyah_rm_abi::vm::{HypResourceEntry, HypResources, VmSetStatusReq, VmStateReply, VmidReq};

impl<P: Platform> Rm<P> {
    /// VM_GET_STATE (vmid 0 = the caller).
    ///
    /// Who may: the VM itself and its manager. Any other VM is answered as
    /// for a VMID that does not exist (NORESOURCE, what Gunyah's RM answers
    /// for a deallocated VMID), so the state of VMs that are not the
    /// caller's does not leak, nor whether they exist.
    pub(crate) fn vm_get_state(&mut self, caller: Vmid, req: &VmidReq) -> Result<Vec<u8>, RmError> {
        let mut vmid = req.vmid.get();
        if vmid == 0 {
            vmid = caller;
        }
        let vm = self
            .vms
            .get(vmid)
            .filter(|v| v.owner == caller || vmid == caller)
            .ok_or(RmError::NoResource)?;
        let reply = VmStateReply {
            vm_status: vm.state as u8,
            os_status: vm.os_status,
            app_status: vm.app_status.into(),
        };
        Ok(zerocopy::IntoBytes::as_bytes(&reply).to_vec())
    }

    /// VM_SET_STATUS from a secondary VM.
    pub(crate) fn vm_set_status(
        &mut self,
        caller: Vmid,
        req: &VmSetStatusReq,
    ) -> Result<Vec<u8>, RmError> {
        // The vm_status byte is not used by the RM (§5.3).
        let (os, app) = (req.os_status, req.app_status.get());
        if caller == VMID_HLOS {
            return Err(RmError::Denied);
        }
        let vm = self.vms.get_mut(caller).ok_or(RmError::VmidInvalid)?;
        vm.os_status = os;
        vm.app_status = app;
        self.send_vm_status(caller);
        Ok(Vec::new())
    }

    /// VM_GET_HYP_RESOURCES (vmid 0 = the caller).
    pub(crate) fn vm_get_hyp_resources(
        &mut self,
        caller: Vmid,
        req: &VmidReq,
    ) -> Result<Vec<u8>, RmError> {
        let mut vmid = req.vmid.get();
        if vmid == 0 {
            vmid = caller;
        }
        let vm = match self.vms.get(vmid) {
            Some(vm) if vm.owner == caller || vmid == caller => vm,
            _ => return Err(RmError::VmidInvalid),
        };
        let entries: Vec<HypResourceEntry> = vm
            .resources
            .iter()
            .map(|e| HypResourceEntry {
                ty: e.rtype,
                reserved: 0,
                partner_vmid: e.partner.into(),
                resource_handle: e.handle.into(),
                resource_label: e.label.into(),
                cap_id: e.cap_id.into(),
                virq_handle: e.virq_handle.into(),
                virq: e.virq.into(),
                base: e.base.into(),
                size: e.size.into(),
            })
            .collect();
        crate::dispatch::encode_vec(&HypResources { entries: &entries }).ok_or(RmError::NoResource)
    }
}
