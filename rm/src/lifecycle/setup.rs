//! Configuration before start: VM_SET_DEMAND_PAGING, VM_SET_ADDRESS_LAYOUT,
//! VM_SET_BOOT_CONTEXT and VM_SET_FIRMWARE_MEM.

use alloc::vec::Vec;

use gunyah_rm_abi::RmError;

use super::*;
use crate::platform::{Platform, PlatformError, Vmid};
use crate::service::Rm;
use crate::vm::*;
use gunyah_rm_abi::vm::{
    VmSetAddressLayoutReq, VmSetBootContextReq, VmSetDemandPaging, VmSetFirmwareMemReq,
    VmSetTimeBaseReq,
};

impl<P: Platform> Rm<P> {
    /// A VM config's `ipa-bits` ([`crate::launch::apply::prepare`], the first step of a
    /// launch from a config, before anything is mapped): `vmid`'s IPA space becomes
    /// `1 << ipa_bits` bytes, so a VM that needs less than the platform's gets fewer root table
    /// pages. `caller` must own the VM (VMID_INVALID), in LOAD, AUTH or INIT (VM_STATE);
    /// `ipa_bits` must be `32..=` the platform's (ARGUMENT_INVALID), and so must cover the VM's
    /// VM_SET_ADDRESS_LAYOUT and demand-paging ranges (ARGUMENT_INVALID). A VM that holds memory
    /// in its IPA space already keeps its size (MEM_INUSE): its tables are not rebuilt. The
    /// current size is a no-op. All or nothing. Returns the previous size in bits.
    pub fn vm_set_ipa_bits(
        &mut self,
        caller: Vmid,
        vmid: Vmid,
        ipa_bits: u8,
    ) -> Result<u8, RmError> {
        let vm = self.owned_vm(caller, vmid)?;
        if !matches!(vm.state, VmState::Load | VmState::Auth | VmState::Init) {
            return Err(RmError::VmState);
        }
        let old = self.plat.vm_ipa_limit(vmid).trailing_zeros() as u8;
        if ipa_bits == old {
            return Ok(old);
        }
        let platform = self.plat.ipa_limit().trailing_zeros() as u8;
        let limit = 1u64 << ipa_bits.min(63);
        let fits = |r: &Option<(u64, u64)>| r.is_none_or(|(b, s)| b.saturating_add(s) <= limit);
        if !(crate::stage2_spaces::MIN_VM_IPA_BITS..=platform).contains(&ipa_bits)
            || !vm.layout.iter().all(fits)
            || !vm.demand_paging.iter().map(|&r| Some(r)).all(|r| fits(&r))
        {
            return Err(RmError::ArgumentInvalid);
        }
        if self.spaces.get(&vmid).is_some_and(|s| !s.is_empty()) {
            return Err(RmError::MemInuse);
        }
        self.plat
            .set_ipa_bits(vmid, ipa_bits)
            .map_err(|e| match e {
                PlatformError::AlreadyMapped => RmError::MemInuse,
                PlatformError::BadAddress => RmError::ArgumentInvalid,
                PlatformError::NoSuchSpace => RmError::VmidInvalid,
                _ => RmError::NoMem,
            })?;
        Ok(old)
    }

    /// VM_SET_DEMAND_PAGING (before VM_INIT).
    pub(crate) fn vm_set_demand_paging(
        &mut self,
        caller: Vmid,
        req: &VmSetDemandPaging<'_>,
    ) -> Result<Vec<u8>, RmError> {
        let vmid = req.vmid;
        if req.ranges.len() > gunyah_rm_abi::MAX_LIST_ENTRIES {
            return Err(RmError::NoResource);
        }
        let vm = self.owned_vm(caller, vmid)?;
        if !matches!(vm.state, VmState::Load | VmState::Auth | VmState::Init) {
            return Err(RmError::VmState);
        }
        let mut ranges = vm.demand_paging.clone();
        for range in req.ranges {
            let (base, size) = (range.ipa.get(), range.size.get());
            if !self.range_ok(vmid, base, size)
                || ranges.iter().any(|&(b, s)| base < b + s && b < base + size)
            {
                return Err(RmError::ArgumentInvalid);
            }
            ranges.push((base, size));
        }
        if let Some(vm) = self.vms.get_mut(vmid) {
            vm.demand_paging = ranges;
        }
        Ok(Vec::new())
    }

    /// VM_SET_ADDRESS_LAYOUT (before VM_INIT).
    pub(crate) fn vm_set_address_layout(
        &mut self,
        caller: Vmid,
        req: &VmSetAddressLayoutReq,
    ) -> Result<Vec<u8>, RmError> {
        let (vmid, id) = (req.vmid.get(), req.range_id.get());
        let (base, size) = (req.base.get(), req.size.get());
        let vm = self.owned_vm(caller, vmid)?;
        if !matches!(vm.state, VmState::Load | VmState::Auth | VmState::Init) {
            return Err(RmError::VmState);
        }
        if !matches!(id, LAYOUT_IMAGE | LAYOUT_FIRMWARE) || !self.range_ok(vmid, base, size) {
            return Err(RmError::ArgumentInvalid);
        }
        if let Some(vm) = self.vms.get_mut(vmid) {
            vm.layout[id as usize] = Some((base, size));
        }
        Ok(Vec::new())
    }

    /// VM_SET_BOOT_CONTEXT (INIT or READY).
    pub(crate) fn vm_set_boot_context(
        &mut self,
        caller: Vmid,
        req: &VmSetBootContextReq,
    ) -> Result<Vec<u8>, RmError> {
        let (vmid, set, index) = (req.vmid.get(), req.reg_set, req.reg_index);
        let value = req.value.get();
        let vm = self.owned_vm(caller, vmid)?;
        if !matches!(vm.state, VmState::Init | VmState::Ready) {
            return Err(RmError::VmState);
        }
        let ok = match set {
            0 => index <= 31,
            1 => index == 0,
            2 => index <= 2,
            _ => false,
        };
        if !ok {
            return Err(RmError::ArgumentInvalid);
        }
        if let Some(vm) = self.vms.get_mut(vmid) {
            vm.boot_context.insert(BootReg { set, index }, value);
        }
        Ok(Vec::new())
    }

    /// VM_SET_FIRMWARE_MEM (INIT). The decoder checks the size and the
    /// reserved half-word (MSG_INVALID). A VM that does not exist, or that
    /// the caller does not manage, is NORESOURCE (§12.1); then LOAD or any
    /// state but INIT → VM_STATE. The reply of a failure carries a
    /// hypervisor error word ([`crate::router`]).
    pub(crate) fn vm_set_firmware_mem(
        &mut self,
        caller: Vmid,
        req: &VmSetFirmwareMemReq,
    ) -> Result<Vec<u8>, RmError> {
        let (vmid, handle) = (req.vmid.get(), req.mem_handle.get());
        let (offset, size) = (req.fw_offset.get(), req.fw_size.get());
        let vm = match self.vms.get(vmid) {
            Some(vm) if vm.owner == caller && vmid != caller => vm,
            _ => return Err(RmError::NoResource),
        };
        if vm.state != VmState::Init {
            return Err(RmError::VmState);
        }
        let total = match self.parcels.get(handle) {
            Some(p) if p.owner == caller => p.total_size(),
            _ => return Err(RmError::MemInvalid),
        };
        if offset.checked_add(size).is_none_or(|e| e > total) {
            return Err(RmError::ArgumentInvalid);
        }
        if let Some(vm) = self.vms.get_mut(vmid) {
            vm.firmware = Some(FirmwareConfig {
                mem_handle: handle,
                offset,
                size,
            });
        }
        Ok(Vec::new())
    }

    /// VM_SET_TIME_BASE (vmid 0 = the caller), answered as Gunyah's RM on
    /// QEMU does (§12.1): a VM that does not exist, or that is neither the
    /// caller nor managed by it → NORESOURCE; in INIT or READY the time base
    /// cannot be set on this platform → ARGUMENT_INVALID (with hypervisor
    /// error 30, [`crate::router`]); in any other state → VM_STATE.
    pub(crate) fn vm_set_time_base(
        &mut self,
        caller: Vmid,
        req: &VmSetTimeBaseReq,
    ) -> Result<Vec<u8>, RmError> {
        let mut vmid = req.vmid.get();
        if vmid == 0 {
            vmid = caller;
        }
        let vm = match self.vms.get(vmid) {
            Some(vm) if vm.owner == caller || vmid == caller => vm,
            _ => return Err(RmError::NoResource),
        };
        match vm.state {
            VmState::Init | VmState::Ready => Err(RmError::ArgumentInvalid),
            _ => Err(RmError::VmState),
        }
    }
}
