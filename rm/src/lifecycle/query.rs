//! VM_GET_STATE, VM_SET_STATUS and VM_GET_HYP_RESOURCES.

use alloc::vec::Vec;

use gunyah_rm_abi::RmError;

use super::*;
use crate::platform::{Platform, Vmid};
use crate::service::Rm;
use crate::vm::*;
use crate::wire::Writer;

impl<P: Platform> Rm<P> {
    /// VM_GET_STATE (vmid 0 = the caller).
    pub(crate) fn vm_get_state(&mut self, caller: Vmid, buf: &[u8]) -> Result<Vec<u8>, RmError> {
        let mut r = exact(buf, 4)?;
        let mut vmid = r.u16()?;
        if vmid == 0 {
            vmid = caller;
        }
        let vm = self.vms.get(vmid).ok_or(RmError::NoResource)?;
        let mut w = Writer::new();
        w.u8(vm.state as u8).u8(vm.os_status).u16(vm.app_status);
        Ok(w.finish())
    }

    /// VM_SET_STATUS from a secondary VM.
    pub(crate) fn vm_set_status(&mut self, caller: Vmid, buf: &[u8]) -> Result<Vec<u8>, RmError> {
        let mut r = exact(buf, 4)?;
        let _vm_status = r.u8()?;
        let os = r.u8()?;
        let app = r.u16()?;
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
        buf: &[u8],
    ) -> Result<Vec<u8>, RmError> {
        let mut r = exact(buf, 4)?;
        let mut vmid = r.u16()?;
        if vmid == 0 {
            vmid = caller;
        }
        let vm = match self.vms.get(vmid) {
            Some(vm) if vm.owner == caller || vmid == caller => vm,
            _ => return Err(RmError::VmidInvalid),
        };
        let mut w = Writer::new();
        w.u32(vm.resources.len() as u32);
        for e in &vm.resources {
            w.u8(e.rtype)
                .u8(0)
                .u16(e.partner)
                .u32(e.handle)
                .u32(e.label)
                .u64(e.cap_id);
            w.u32(e.virq_handle).u32(e.virq).u64(e.base).u64(e.size);
        }
        Ok(w.finish())
    }
}
