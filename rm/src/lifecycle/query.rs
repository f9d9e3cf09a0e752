//! VM_GET_STATE, VM_SET_STATUS and VM_GET_HYP_RESOURCES.

use alloc::vec::Vec;

use gunyah_rm_abi::RmError;

use super::HOST_TYPE;
use crate::platform::{Platform, Vmid};
use crate::service::Rm;
use crate::vm::*;
use gunyah_rm_abi::vm::{
    HypResourceEntry, HypResources, VmPeers, VmSetStatusReq, VmStateReply, VmidReq, Word,
};

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
        // A template launched from its config is sealed when it reports OS RUN, before its
        // owner hears of the status.
        self.seal_config_template(caller, os);
        self.send_vm_status(caller);
        Ok(Vec::new())
    }

    /// VM_GET_HYP_RESOURCES, answered as Gunyah's RM does (§12.1): VMID 0,
    /// a VM that does not exist, or one that is neither the caller nor
    /// managed by it → ARGUMENT_INVALID; LOAD or RESET → NORESOURCE;
    /// otherwise `u32 count` and the VM's resources for its manager (none
    /// before VM_INIT and for HLOS; one VIRTUAL_CPU per vCPU from READY on).
    /// The VM's own RM message queues are its resources, not its manager's:
    /// they are not listed, as on Gunyah's RM.
    pub(crate) fn vm_get_hyp_resources(
        &mut self,
        caller: Vmid,
        req: &VmidReq,
    ) -> Result<Vec<u8>, RmError> {
        let vmid = req.vmid.get();
        let vm = match self.vms.get(vmid) {
            Some(vm) if vmid != 0 && (vm.owner == caller || vmid == caller) => vm,
            _ => return Err(RmError::ArgumentInvalid),
        };
        if matches!(vm.state, VmState::Load | VmState::Reset) {
            return Err(RmError::NoResource);
        }
        let entries: Vec<HypResourceEntry> = vm
            .resources
            .iter()
            .filter(|e| e.rtype == super::RES_VIRTUAL_CPU)
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
        crate::reply::encode_vec(&HypResources { entries: &entries }).ok_or(RmError::NoResource)
    }

    /// VM_GET_OWNER: the caller's owner (HLOS's is the RM, 0xFF, §12.1).
    pub(crate) fn vm_get_owner(&mut self, caller: Vmid) -> Result<Vec<u8>, RmError> {
        let vm = self.vms.get(caller).ok_or(RmError::VmidInvalid)?;
        let owner = if vm.owner == caller {
            VMID_RM
        } else {
            vm.owner
        };
        Ok(zerocopy::IntoBytes::as_bytes(&Word::new(owner.into())).to_vec())
    }

    /// VM_GET_PEERS: `u32 count` and one `u32` per peer of the caller: its
    /// owner (unless that is the RM) and the VMs it allocated (§12.1: HLOS's
    /// peers are the VMs it allocated), in VMID order.
    pub(crate) fn vm_get_peers(&mut self, caller: Vmid) -> Result<Vec<u8>, RmError> {
        let vm = self.vms.get(caller).ok_or(RmError::VmidInvalid)?;
        let mut peers: Vec<zerocopy::little_endian::U32> = Vec::new();
        if vm.owner != caller {
            peers.push(zerocopy::little_endian::U32::new(vm.owner.into()));
        }
        peers.extend(
            self.vms
                .vms
                .values()
                .filter(|v| v.owner == caller && v.vmid != caller)
                .map(|v| zerocopy::little_endian::U32::new(v.vmid.into())),
        );
        crate::reply::encode_vec(&VmPeers { vmids: &peers }).ok_or(RmError::NoResource)
    }

    /// VM_HOST_GET_TYPE: what Gunyah's RM on QEMU answers (§12.1).
    pub(crate) fn vm_host_get_type(&mut self) -> Result<Vec<u8>, RmError> {
        Ok(zerocopy::IntoBytes::as_bytes(&Word::new(HOST_TYPE)).to_vec())
    }
}
