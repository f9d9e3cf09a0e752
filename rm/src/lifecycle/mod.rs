//! VM lifecycle requests (§5): allocation, image configuration, init,
//! start, stop, reset (asynchronous stages), exit and the VM queries.
//!
//! Each handler checks the request and the VM's state first; a failure
//! before the point where Gunyah's RM moves the VM to INIT_FAILED changes
//! nothing. State changes are announced with VM_STATUS before the reply.

mod allocation;
mod boot;
mod exit;
mod query;
mod setup;

pub(crate) use query::Lookup;
pub use query::SIGN_AUTH_NONE;

use gunyah_rm_abi::RmError;

use crate::platform::{Platform, Vmid};
use crate::service::Rm;
use crate::vm::*;

/// Hyp resource type: message queue send end.
pub const RES_MSG_QUEUE_SEND: u8 = 2;
/// Hyp resource type: message queue receive end.
pub const RES_MSG_QUEUE_RECV: u8 = 3;
/// Hyp resource type: vCPU.
pub const RES_VIRTUAL_CPU: u8 = 4;
/// exit_type of a forced VM_STOP.
pub const EXIT_VM_STOP_FORCED: u16 = 7;
/// What VM_HOST_GET_TYPE answers (Gunyah's RM on QEMU, §12.1).
pub const HOST_TYPE: u32 = 0x0100_0164;
/// The hypervisor error VM_SET_TIME_BASE carries when it cannot set the
/// time base (30, DENIED: what Gunyah's RM answers on QEMU, §12.1).
pub const HYP_ERROR_DENIED: u32 = 30;
/// Most vCPUs the RM creates for one VM (keeps VM_GET_HYP_RESOURCES within
/// one message).
pub const MAX_VCPUS: u32 = 256;
/// Address layout range: image.
pub const LAYOUT_IMAGE: u32 = 0;
/// Address layout range: firmware.
pub const LAYOUT_FIRMWARE: u32 = 1;

/// Whether `vm` failed at VM_CONFIG_IMAGE (INIT_FAILED with no image):
/// nothing was built for it, so it is deallocated rather than reset.
pub(crate) fn never_configured(vm: &Vm) -> bool {
    vm.state == VmState::InitFailed && vm.image.is_none()
}

impl<P: Platform> Rm<P> {
    /// `vmid` must exist and be owned by `caller` (else VMID_INVALID).
    pub(super) fn owned_vm(&self, caller: Vmid, vmid: Vmid) -> Result<&Vm, RmError> {
        match self.vms.get(vmid) {
            Some(vm) if vm.owner == caller && vmid != caller => Ok(vm),
            _ => Err(RmError::VmidInvalid),
        }
    }

    pub(super) fn require_transition(&self, vm: &Vm, to: VmState) -> Result<(), RmError> {
        if transition_valid(vm.state, to, vm.flags) {
            Ok(())
        } else {
            Err(RmError::VmState)
        }
    }

    /// Whether `[base, base+size)` is a page-aligned, non-empty range inside `vmid`'s IPA space.
    pub(super) fn range_ok(&self, vmid: Vmid, base: u64, size: u64) -> bool {
        self.ipa_range_ok(vmid, base, size)
    }
}
