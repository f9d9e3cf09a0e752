//! VM lifecycle requests (§5): allocation, image configuration, init,
//! start, stop, reset (asynchronous stages), exit and the VM queries.
//!
//! Each handler checks the request and the VM's state first; a failure
//! before the point where Gunyah's RM moves the VM to INIT_FAILED changes
//! nothing. State changes are announced with VM_STATUS before the reply.

use alloc::vec::Vec;

use gunyah_rm_abi::RmError;

use crate::ids;
use crate::memory::{Origin, OwnedRange, VmMem};
use crate::memparcel::{ParcelState, TransType};
use crate::platform::{Platform, Rights, Vmid};
use crate::service::Rm;
use crate::vm::*;
use crate::wire::{Reader, Writer};

/// Hyp resource type: message queue send end.
pub const RES_MSG_QUEUE_SEND: u8 = 2;
/// Hyp resource type: message queue receive end.
pub const RES_MSG_QUEUE_RECV: u8 = 3;
/// Hyp resource type: vCPU.
pub const RES_VIRTUAL_CPU: u8 = 4;
/// exit_type of a forced VM_STOP.
pub const EXIT_VM_STOP_FORCED: u16 = 7;
/// Address layout range: image.
pub const LAYOUT_IMAGE: u32 = 0;
/// Address layout range: firmware.
pub const LAYOUT_FIRMWARE: u32 = 1;

fn exact(buf: &[u8], n: usize) -> Result<Reader<'_>, RmError> {
    if buf.len() != n {
        return Err(RmError::MsgInvalid);
    }
    Ok(Reader::new(buf))
}

impl<P: Platform> Rm<P> {
    /// `vmid` must exist and be owned by `caller` (else VMID_INVALID).
    fn owned_vm(&self, caller: Vmid, vmid: Vmid) -> Result<&Vm, RmError> {
        match self.vms.get(vmid) {
            Some(vm) if vm.owner == caller && vmid != caller => Ok(vm),
            _ => Err(RmError::VmidInvalid),
        }
    }

    fn require_transition(&self, vm: &Vm, to: VmState) -> Result<(), RmError> {
        if transition_valid(vm.state, to, vm.flags) {
            Ok(())
        } else {
            Err(RmError::VmState)
        }
    }

    /// VM_ALLOC_VMID.
    pub(crate) fn vm_alloc(&mut self, caller: Vmid, buf: &[u8]) -> Result<Vec<u8>, RmError> {
        let mut r = exact(buf, 4)?;
        let want = r.u16()?;
        if caller != VMID_HLOS {
            return Err(RmError::Denied);
        }
        let vmid = if want == 0 {
            self.vms.free_dynamic().ok_or(RmError::NoResource)?
        } else {
            if want >= STATIC_VMID_LIMIT || want == VMID_HYP || self.vms.exists(want) {
                return Err(RmError::VmidInvalid);
            }
            want
        };
        self.plat.create_space(vmid).map_err(|_| RmError::NoMem)?;
        self.vms
            .vms
            .insert(vmid, Vm::new(vmid, caller, VmState::Load));
        self.mem.insert(vmid, VmMem::default());
        self.send_vm_status(vmid);
        let mut w = Writer::new();
        if want == 0 {
            w.u32(vmid as u32);
        }
        Ok(w.finish())
    }

    /// VM_DEALLOC_VMID.
    pub(crate) fn vm_dealloc(&mut self, caller: Vmid, buf: &[u8]) -> Result<Vec<u8>, RmError> {
        let mut r = exact(buf, 4)?;
        let vmid = r.u16()?;
        let vm = self.owned_vm(caller, vmid)?;
        if !matches!(vm.state, VmState::Load | VmState::Reset) {
            return Err(RmError::VmState);
        }
        self.teardown_memory(vmid);
        let _ = self.plat.destroy_space(vmid);
        self.mem.remove(&vmid);
        self.vms.vms.remove(&vmid);
        self.rx.remove(&vmid);
        self.out.forget(vmid);
        Ok(Vec::new())
    }

    /// Give back everything `vmid` holds: accepted parcels, owned parcels and
    /// owned memory (donated memory to its donor, partition pages to the
    /// partition).
    fn teardown_memory(&mut self, vmid: Vmid) {
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
                            .map(home, at, r.pa, r.size, rights, r.kind)
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

    /// VM_CONFIG_IMAGE.
    pub(crate) fn vm_config_image(&mut self, caller: Vmid, buf: &[u8]) -> Result<Vec<u8>, RmError> {
        let mut r = exact(buf, 40)?;
        let vmid = r.u16()?;
        let auth = r.u16()?;
        let handle = r.u32()?;
        let (image_offset, image_size, dtb_offset, dtb_size) =
            (r.u64()?, r.u64()?, r.u64()?, r.u64()?);
        if caller != VMID_HLOS {
            return Err(RmError::Denied);
        }
        let vm = self.owned_vm(caller, vmid)?;
        let auth = match auth {
            0 => AuthMech::None,
            1 => AuthMech::Platform,
            2 => AuthMech::Android,
            _ => return Err(RmError::ArgumentInvalid),
        };
        let target = if auth == AuthMech::Platform {
            VmState::Auth
        } else {
            VmState::Init
        };
        self.require_transition(vm, target)?;
        // Past the argument checks: a bad parcel fails the VM.
        let total = match self.parcels.get(handle) {
            Some(p) if p.owner == caller => p.total_size(),
            _ => {
                self.set_state(vmid, VmState::InitFailed);
                return Err(RmError::MemInvalid);
            }
        };
        let within = |off: u64, size: u64| off.checked_add(size).is_some_and(|e| e <= total);
        if !within(dtb_offset, dtb_size) || !within(image_offset, image_size) {
            return Err(RmError::ArgumentInvalid);
        }
        if let Some(vm) = self.vms.get_mut(vmid) {
            vm.image = Some(ImageConfig {
                auth,
                mem_handle: handle,
                image_offset,
                image_size,
                dtb_offset,
                dtb_size,
            });
        }
        self.set_state(vmid, target);
        Ok(Vec::new())
    }

    /// VM_AUTH_IMAGE.
    pub(crate) fn vm_auth_image(&mut self, caller: Vmid, buf: &[u8]) -> Result<Vec<u8>, RmError> {
        if buf.len() < 4 {
            return Err(RmError::MsgInvalid);
        }
        let mut r = Reader::new(buf);
        let vmid = r.u16()?;
        let n = r.u16()? as usize;
        if buf.len() != 4 + 8 * n {
            return Err(RmError::MsgInvalid);
        }
        let vm = self.owned_vm(caller, vmid)?;
        if vm.state != VmState::Auth {
            return Err(RmError::VmState);
        }
        if vm.image.map(|i| i.auth) != Some(AuthMech::Platform) {
            return Err(RmError::ArgumentInvalid);
        }
        for _ in 0..n {
            let (ty, _value) = (r.u32()?, r.u32()?);
            if ty != 0 {
                return Err(RmError::ArgumentInvalid);
            }
        }
        self.set_state(vmid, VmState::Init);
        Ok(Vec::new())
    }

    /// Read the VM's DT out of its image parcel, if it is there.
    fn read_dt(&self, vmid: Vmid) -> Option<Vec<u8>> {
        let img = self.vms.get(vmid)?.image?;
        let p = self.parcels.get(img.mem_handle)?;
        let len = usize::try_from(img.dtb_size)
            .ok()
            .filter(|l| *l <= 16 << 20)?;
        let mut out = alloc::vec![0u8; len];
        let mut off = img.dtb_offset;
        let mut done = 0usize;
        for reg in &p.regions {
            if done == len {
                break;
            }
            if off >= reg.size {
                off -= reg.size;
                continue;
            }
            let n = ((reg.size - off) as usize).min(len - done);
            if !self.plat.read(reg.pa + off, &mut out[done..done + n]) {
                return None;
            }
            done += n;
            off = 0;
        }
        (done == len).then_some(out)
    }

    /// VM_INIT.
    pub(crate) fn vm_init(&mut self, caller: Vmid, buf: &[u8]) -> Result<Vec<u8>, RmError> {
        let mut r = exact(buf, 4)?;
        let vmid = r.u16()?;
        if r.u16()? != 0 {
            return Err(RmError::ArgumentInvalid);
        }
        if caller != VMID_HLOS {
            return Err(RmError::Denied);
        }
        let vm = self.owned_vm(caller, vmid)?;
        if vm.state != VmState::Init {
            return Err(RmError::VmState);
        }
        // vCPU count from the DT's /cpus when it can be read now; the DT is
        // validated for real at VM_START.
        let vcpus = self
            .read_dt(vmid)
            .and_then(|dt| {
                let fdt = fdt::Fdt::new(&dt).ok()?;
                let n = fdt.cpus().count() as u32;
                (n > 0).then_some(n)
            })
            .unwrap_or(vm.vcpus.max(1));
        let mut res = Vec::new();
        for (rtype, virq) in [(RES_MSG_QUEUE_SEND, 0x40u32), (RES_MSG_QUEUE_RECV, 0x41)] {
            res.push(HypResource {
                rtype,
                partner: VMID_RM,
                handle: res.len() as u32,
                label: 0,
                cap_id: self.new_cap(),
                virq_handle: 0,
                virq,
                base: 0,
                size: 0,
            });
        }
        for i in 0..vcpus {
            res.push(HypResource {
                rtype: RES_VIRTUAL_CPU,
                partner: vmid,
                handle: res.len() as u32,
                label: i,
                cap_id: self.new_cap(),
                virq_handle: 0,
                virq: 0,
                base: 0,
                size: 0,
            });
        }
        if let Some(vm) = self.vms.get_mut(vmid) {
            vm.vcpus = vcpus;
            vm.resources = res;
        }
        self.set_state(vmid, VmState::Ready);
        Ok(Vec::new())
    }

    /// VM_START: accept the image, firmware and private parcels on the VM's
    /// behalf (§7.4), check its DT, then RUNNING; any failure → NORESOURCE
    /// and INIT_FAILED with the accepts undone.
    pub(crate) fn vm_start(&mut self, caller: Vmid, buf: &[u8]) -> Result<Vec<u8>, RmError> {
        let mut r = exact(buf, 4)?;
        let vmid = r.u16()?;
        let vm = self.owned_vm(caller, vmid)?;
        if vm.state != VmState::Ready {
            return Err(RmError::VmState);
        }
        let vm = vm.clone();
        let mut accepted: Vec<u32> = Vec::new();
        let result = self.start_accepts(&vm, &mut accepted);
        let result = result.and_then(|_| {
            let dt = self.read_dt(vmid).ok_or(RmError::NoResource)?;
            fdt::Fdt::new(&dt)
                .map(|_| ())
                .map_err(|_| RmError::NoResource)
        });
        if result.is_err() {
            for h in accepted {
                let _ = self.mem_release(vmid, h, 0);
            }
            self.set_state(vmid, VmState::InitFailed);
            return Err(RmError::NoResource);
        }
        // Private donated parcels last: a completed donation cannot be undone.
        let donations: Vec<u32> = self.private_parcels(vmid, true);
        for h in donations {
            let _ = self.auto_accept(vmid, h, false, None);
        }
        self.set_state(vmid, VmState::Running);
        Ok(Vec::new())
    }

    fn start_accepts(&mut self, vm: &Vm, accepted: &mut Vec<u32>) -> Result<(), RmError> {
        let vmid = vm.vmid;
        let img = vm.image.ok_or(RmError::NoResource)?;
        {
            let p = self
                .parcels
                .get(img.mem_handle)
                .ok_or(RmError::NoResource)?;
            let own = [crate::memparcel::AclEntry {
                vmid,
                rights: Rights::RWX,
            }];
            if p.trans != TransType::Lend || p.acl != own || !p.attrs.is_empty() {
                return Err(RmError::ValidateFailed);
            }
        }
        let at = vm.layout.get(&LAYOUT_IMAGE).map(|l| l.0);
        self.auto_accept(vmid, img.mem_handle, true, at)?;
        accepted.push(img.mem_handle);
        if let Some(fw) = vm.firmware {
            // Accepted as LEND (§7.4): a shared or donated firmware parcel fails.
            let lent = self.parcels.get(fw.mem_handle).map(|p| p.trans);
            if lent != Some(TransType::Lend) {
                return Err(RmError::ArgumentInvalid);
            }
            let at = vm.layout.get(&LAYOUT_FIRMWARE).map(|l| l.0);
            self.auto_accept(vmid, fw.mem_handle, true, at)?;
            accepted.push(fw.mem_handle);
        }
        for h in self.private_parcels(vmid, false) {
            self.auto_accept(vmid, h, false, None)?;
            accepted.push(h);
        }
        Ok(())
    }

    /// Parcels exclusive to `vmid` with RWX, NORMAL, label 0, default attrs,
    /// not yet accepted (donations or the rest).
    fn private_parcels(&self, vmid: Vmid, donations: bool) -> Vec<u32> {
        let own = [crate::memparcel::AclEntry {
            vmid,
            rights: Rights::RWX,
        }];
        self.parcels
            .parcels
            .values()
            .filter(|p| {
                p.acl == own
                    && p.mem_type == crate::memparcel::MemType::Normal
                    && p.label == 0
                    && p.attrs
                        .iter()
                        .all(|a| a.attr == crate::memparcel::ATTR_NORMAL)
                    && p.state == ParcelState::Sharing
                    && (p.trans == TransType::Donate) == donations
            })
            .map(|p| p.handle)
            .collect()
    }

    /// VM_STOP.
    pub(crate) fn vm_stop(&mut self, caller: Vmid, buf: &[u8]) -> Result<Vec<u8>, RmError> {
        let mut r = exact(buf, 8)?;
        let vmid = r.u16()?;
        let flags = r.u8()?;
        r.u8()?;
        let reason = r.u32()?;
        let vm = self.owned_vm(caller, vmid)?;
        self.require_transition(vm, VmState::Exited)?;
        if flags & 1 != 0 {
            self.exit_vm(vmid, EXIT_VM_STOP_FORCED, 0);
        } else {
            let mut w = Writer::new();
            w.u32(reason);
            self.notify(vmid, ids::NOTIF_VM_SHUTDOWN, w.finish());
        }
        Ok(Vec::new())
    }

    /// Move a VM to EXITED and tell its owner (VM_STATUS then VM_EXITED).
    fn exit_vm(&mut self, vmid: Vmid, exit_type: u16, reason: u32) {
        if let Some(vm) = self.vms.get_mut(vmid) {
            vm.exit = Some(ExitInfo { exit_type, reason });
        }
        self.set_state(vmid, VmState::Exited);
        let owner = self.vms.get(vmid).map_or(VMID_HLOS, |v| v.owner);
        let mut w = Writer::new();
        w.u16(vmid).u16(exit_type).u32(4).u32(reason);
        self.notify(owner, ids::NOTIF_VM_EXITED, w.finish());
    }

    /// VM_EXIT from the guest itself.
    pub(crate) fn vm_exit(&mut self, caller: Vmid, buf: &[u8]) -> Result<Vec<u8>, RmError> {
        let mut r = exact(buf, 4)?;
        let flags = r.u16()?;
        let code = r.u8()?;
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

    /// VM_RESET: RESETTING now, the stages run after the reply.
    pub(crate) fn vm_reset(&mut self, caller: Vmid, buf: &[u8]) -> Result<Vec<u8>, RmError> {
        let mut r = exact(buf, 4)?;
        let vmid = r.u16()?;
        let vm = self.owned_vm(caller, vmid)?;
        if vm.flags.no_reset {
            return Err(RmError::Denied);
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
                        self.teardown_memory(vmid);
                        // Fresh tables: the old ones' pages go back to the partition.
                        let _ = self.plat.destroy_space(vmid);
                        let _ = self.plat.create_space(vmid);
                        if let Some(m) = self.mem.get_mut(&vmid) {
                            *m = VmMem::default();
                        }
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

    fn range_ok(&self, base: u64, size: u64) -> bool {
        crate::memory::page_aligned(base)
            && crate::memory::page_aligned(size)
            && size != 0
            && base
                .checked_add(size)
                .is_some_and(|e| e <= self.plat.ipa_limit())
    }

    /// VM_SET_DEMAND_PAGING (before VM_INIT).
    pub(crate) fn vm_set_demand_paging(
        &mut self,
        caller: Vmid,
        buf: &[u8],
    ) -> Result<Vec<u8>, RmError> {
        if buf.len() < 8 {
            return Err(RmError::MsgInvalid);
        }
        let mut r = Reader::new(buf);
        let vmid = r.u16()?;
        r.u16()?;
        let n = r.u32()? as usize;
        if n > crate::wire::MAX_LIST_ENTRIES {
            return Err(RmError::NoResource);
        }
        if buf.len() != 8 + 16 * n {
            return Err(RmError::MsgInvalid);
        }
        let vm = self.owned_vm(caller, vmid)?;
        if !matches!(vm.state, VmState::Load | VmState::Auth | VmState::Init) {
            return Err(RmError::VmState);
        }
        let mut ranges = vm.demand_paging.clone();
        for _ in 0..n {
            let (base, size) = (r.u64()?, r.u64()?);
            if !self.range_ok(base, size)
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
        buf: &[u8],
    ) -> Result<Vec<u8>, RmError> {
        let mut r = exact(buf, 24)?;
        let vmid = r.u16()?;
        r.u16()?;
        let id = r.u32()?;
        let (base, size) = (r.u64()?, r.u64()?);
        let vm = self.owned_vm(caller, vmid)?;
        if !matches!(vm.state, VmState::Load | VmState::Auth | VmState::Init) {
            return Err(RmError::VmState);
        }
        if !matches!(id, LAYOUT_IMAGE | LAYOUT_FIRMWARE) || !self.range_ok(base, size) {
            return Err(RmError::ArgumentInvalid);
        }
        if let Some(vm) = self.vms.get_mut(vmid) {
            vm.layout.insert(id, (base, size));
        }
        Ok(Vec::new())
    }

    /// VM_SET_BOOT_CONTEXT (INIT or READY).
    pub(crate) fn vm_set_boot_context(
        &mut self,
        caller: Vmid,
        buf: &[u8],
    ) -> Result<Vec<u8>, RmError> {
        let mut r = exact(buf, 16)?;
        let vmid = r.u16()?;
        let set = r.u8()?;
        let index = r.u8()?;
        r.u32()?;
        let value = r.u64()?;
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

    /// VM_SET_FIRMWARE_MEM (INIT).
    pub(crate) fn vm_set_firmware_mem(
        &mut self,
        caller: Vmid,
        buf: &[u8],
    ) -> Result<Vec<u8>, RmError> {
        let mut r = exact(buf, 24)?;
        let vmid = r.u16()?;
        let res0 = r.u16()?;
        let handle = r.u32()?;
        let (offset, size) = (r.u64()?, r.u64()?);
        if res0 != 0 {
            return Err(RmError::ArgumentInvalid);
        }
        let vm = self.owned_vm(caller, vmid)?;
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
}
