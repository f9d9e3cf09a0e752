//! Leaving RUNNING: VM_STOP (forced or not), VM_EXIT from the guest, and
//! VM_RESET with its asynchronous stages.

use alloc::vec::Vec;

use gunyah_rm_abi::RmError;

use super::*;
use crate::platform::{Platform, Vmid};
use crate::service::Rm;
use crate::vm::*;
use gunyah_rm_abi::vm::{VmExitReq, VmExited, VmStopReq, VmidReq};
use gunyah_rm_abi::MsgId;

impl<P: Platform> Rm<P> {
    /// VM_STOP: the VM's manager (VMID_INVALID), in RUNNING or PAUSED
    /// (VM_STATE, forced or not). FORCE moves it to EXITED (VM_STATUS, then
    /// VM_EXITED type 7 to its owner; the stop_reason is ignored). Without
    /// FORCE Gunyah's RM dies on a VM whose vCPUs it schedules itself (§12,
    /// §12.1); this RM schedules every vCPU itself, so it refuses: DENIED.
    pub(crate) fn vm_stop(&mut self, caller: Vmid, req: &VmStopReq) -> Result<Vec<u8>, RmError> {
        let (vmid, flags) = (req.vmid.get(), req.flags);
        let vm = self.owned_vm(caller, vmid)?;
        self.require_transition(vm, VmState::Exited)?;
        if flags & 1 == 0 {
            return Err(RmError::Denied);
        }
        self.exit_vm(vmid, EXIT_VM_STOP_FORCED, 0);
        Ok(Vec::new())
    }

    /// Move a VM to EXITED and tell its owner (VM_STATUS then VM_EXITED).
    pub(crate) fn exit_vm(&mut self, vmid: Vmid, exit_type: u16, reason: u32) {
        if let Some(vm) = self.vms.get_mut(vmid) {
            vm.exit = Some(ExitInfo { exit_type, reason });
        }
        self.set_state(vmid, VmState::Exited);
        let owner = self.vms.get(vmid).map_or(VMID_HLOS, |v| v.owner);
        let reason = reason.to_le_bytes();
        let exited = VmExited {
            vmid,
            exit_type,
            reason: &reason,
        };
        self.notify_with(owner, MsgId::VM_EXITED, &exited);
    }

    /// VM_EXIT from the guest itself.
    pub(crate) fn vm_exit(&mut self, caller: Vmid, req: &VmExitReq) -> Result<Vec<u8>, RmError> {
        let (flags, code) = (req.exit_flags.get(), req.exit_code);
        let vm = self.vms.get(caller).ok_or(RmError::VmidInvalid)?;
        if caller == VMID_HLOS {
            return Err(RmError::Denied);
        }
        if code == 2 || code > 4 {
            return Err(RmError::ArgumentInvalid);
        }
        self.require_transition(vm, VmState::Exited)?;
        self.exit_vm(caller, 0, flags as u32 | ((code as u32) << 16));
        Ok(Vec::new())
    }

    /// VM_RESET: RESETTING now, the stages run after the reply. From EXITED,
    /// READY or INIT_FAILED; LOAD and RESET are VM_STATE, and so is a VM
    /// whose VM_CONFIG_IMAGE failed (Gunyah's RM dies there, §12.1; it holds
    /// nothing: deallocate it).
    pub(crate) fn vm_reset(&mut self, caller: Vmid, req: &VmidReq) -> Result<Vec<u8>, RmError> {
        let vmid = req.vmid.get();
        let vm = self.owned_vm(caller, vmid)?;
        if vm.flags.no_reset {
            return Err(RmError::Denied);
        }
        if never_configured(vm) {
            return Err(RmError::VmState);
        }
        self.require_transition(vm, VmState::Resetting)?;
        if let Some(vm) = self.vms.get_mut(vmid) {
            vm.reset = Some(ResetStage::DestroyVdevices);
        }
        self.set_state(vmid, VmState::Resetting);
        self.deferred.push_back(vmid);
        Ok(Vec::new())
    }

    /// Run pending asynchronous work (reset stages) to completion.
    pub fn run_deferred(&mut self) {
        while let Some(vmid) = self.deferred.pop_front() {
            while let Some(stage) = self.vms.get(vmid).and_then(|v| v.reset) {
                let next = match stage {
                    ResetStage::DestroyVdevices => {
                        if let Some(vm) = self.vms.get_mut(vmid) {
                            vm.resources.clear();
                        }
                        Some(ResetStage::ReleaseMemparcels)
                    }
                    ResetStage::ReleaseMemparcels => {
                        self.release_all_accepted(vmid);
                        Some(ResetStage::ReleaseIrqs)
                    }
                    ResetStage::ReleaseIrqs => Some(ResetStage::DestroyVm),
                    ResetStage::DestroyVm => {
                        self.teardown_memory(vmid, false);
                        // What VM_INIT applied from the VM's config goes too (`launch::apply`).
                        self.release_config_at_reset(vmid);
                        // Fresh tables: the old ones' pages go back to the partition.
                        let _ = self.plat.destroy_space(vmid);
                        let _ = self.plat.create_space(vmid);
                        Some(ResetStage::CleanupVm)
                    }
                    ResetStage::CleanupVm => {
                        if let Some(vm) = self.vms.get_mut(vmid) {
                            let keep = Vm::new(vmid, vm.owner, vm.state);
                            *vm = Vm {
                                flags: vm.flags,
                                ..keep
                            };
                        }
                        None
                    }
                };
                if let Some(vm) = self.vms.get_mut(vmid) {
                    vm.reset = next;
                }
            }
            self.set_state(vmid, VmState::Reset);
        }
    }
}
