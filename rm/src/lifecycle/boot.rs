//! From LOAD to RUNNING: VM_CONFIG_IMAGE, VM_AUTH_IMAGE, VM_INIT and VM_START
//! with the RM's accepts of the image, firmware and private parcels (§7.4).

use alloc::vec::Vec;

use gunyah_rm_abi::RmError;

use super::*;
use crate::parcel::{ParcelState, TransType};
use crate::platform::{Platform, Rights, Vmid};
use crate::service::Rm;
use crate::vm::*;
use gunyah_rm_abi::vm::{VmAuthImage, VmConfigImageReq, VmInitReq, VmidReq};

impl<P: Platform> Rm<P> {
    /// VM_CONFIG_IMAGE: HLOS only (DENIED), for a VM it manages
    /// (VMID_INVALID), in LOAD or RESET (VM_STATE). Past those checks every
    /// failure moves the VM to INIT_FAILED, with VM_STATUS before the reply
    /// (§12, §12.1): an unknown auth type or an image or DT range beyond the
    /// parcel (or wrapping) → ARGUMENT_INVALID; a parcel not lent to the VM
    /// by the caller → MEM_INVALID.
    pub(crate) fn vm_config_image(
        &mut self,
        caller: Vmid,
        req: &VmConfigImageReq,
    ) -> Result<Vec<u8>, RmError> {
        let (vmid, auth, handle) = (req.vmid.get(), req.auth_mech.get(), req.mem_handle.get());
        let (image_offset, image_size) = (req.image_offset.get(), req.image_size.get());
        let (dtb_offset, dtb_size) = (req.dtb_offset.get(), req.dtb_size.get());
        if caller != VMID_HLOS {
            return Err(RmError::Denied);
        }
        let vm = self.owned_vm(caller, vmid)?;
        if !matches!(vm.state, VmState::Load | VmState::Reset) {
            return Err(RmError::VmState);
        }
        let auth = match auth {
            0 => Some(AuthMech::None),
            1 => Some(AuthMech::Platform),
            2 => Some(AuthMech::Android),
            _ => None,
        };
        let lent = self.parcels.get(handle).filter(|p| {
            p.owner == caller && p.trans == TransType::Lend && p.acl_of(vmid).is_some()
        });
        let within =
            |total: u64, off: u64, size: u64| off.checked_add(size).is_some_and(|e| e <= total);
        let checked = match (auth, lent) {
            (None, _) => Err(RmError::ArgumentInvalid),
            (_, None) => Err(RmError::MemInvalid),
            (Some(a), Some(p)) => {
                let total = p.total_size();
                if within(total, dtb_offset, dtb_size) && within(total, image_offset, image_size) {
                    Ok(a)
                } else {
                    Err(RmError::ArgumentInvalid)
                }
            }
        };
        let auth = match checked {
            Ok(a) => a,
            Err(e) => {
                self.set_state(vmid, VmState::InitFailed);
                return Err(e);
            }
        };
        let target = if auth == AuthMech::Platform {
            VmState::Auth
        } else {
            VmState::Init
        };
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
    pub(crate) fn vm_auth_image(
        &mut self,
        caller: Vmid,
        req: &VmAuthImage<'_>,
    ) -> Result<Vec<u8>, RmError> {
        let vmid = req.vmid;
        let vm = self.owned_vm(caller, vmid)?;
        if vm.state != VmState::Auth {
            return Err(RmError::VmState);
        }
        if vm.image.map(|i| i.auth) != Some(AuthMech::Platform) {
            return Err(RmError::ArgumentInvalid);
        }
        if req
            .params
            .iter()
            .any(|p| p.ty.get() != gunyah_rm_abi::vm::auth_param::PAS_ID)
        {
            return Err(RmError::ArgumentInvalid);
        }
        self.set_state(vmid, VmState::Init);
        Ok(Vec::new())
    }

    /// Read the VM's DT out of its image parcel, if it is there.
    pub(super) fn read_dt(&self, vmid: Vmid) -> Option<Vec<u8>> {
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

    /// VM_INIT (its reserved half-word is checked by the decoder: MSG_INVALID).
    /// Creates the VM's vCPUs, the resources VM_GET_HYP_RESOURCES lists.
    pub(crate) fn vm_init(&mut self, caller: Vmid, req: &VmInitReq) -> Result<Vec<u8>, RmError> {
        let vmid = req.vmid.get();
        if caller != VMID_HLOS {
            return Err(RmError::Denied);
        }
        let vm = self.owned_vm(caller, vmid)?;
        if vm.state != VmState::Init {
            return Err(RmError::VmState);
        }
        // A DT that carries the VM's config (as a Gunyah VMM hands it over) is applied
        // now (`Rm::init_from_config`): vCPU count, gmem, golden mappings, protection. Otherwise
        // the vCPU count comes from the DT's /cpus when it can be read now; the DT is
        // validated for real at VM_START. The guest's DT is untrusted: checked once
        // (`checked_fdt`) before the fdt crate walks it (a blob without /cpus made `Fdt::cpus`
        // panic); the config and the CPU count are read from that one checked view.
        let dt = self.read_dt(vmid);
        let fdt = dt
            .as_deref()
            .and_then(|d| crate::config::checked_fdt(d).ok());
        let config = match (dt.as_deref(), &fdt) {
            (Some(d), Some(f)) => match crate::config::vm_config_in_fdt(d, f) {
                Err(_) => {
                    // A config node that is not a valid config.
                    self.set_state(vmid, VmState::InitFailed);
                    return Err(RmError::ArgumentInvalid);
                }
                Ok(c) => c,
            },
            _ => None,
        };
        let vcpus = match &config {
            Some(c) => c.vcpus.count.max(1),
            None => fdt
                .as_ref()
                .map(|f| crate::config::cpu_count(f) as u32)
                .filter(|&n| n > 0)
                .unwrap_or(vm.vcpus.max(1)),
        };
        if vcpus > MAX_VCPUS {
            // More vCPUs than the RM will create: initialisation fails.
            self.set_state(vmid, VmState::InitFailed);
            return Err(RmError::NoResource);
        }
        if let Some(c) = &config {
            if let Err(e) = self.init_from_config(vmid, c) {
                self.set_state(vmid, VmState::InitFailed);
                return Err(e);
            }
        }
        // The VM's RM-RPC message queues (a platform gives them to the VM
        // itself, e.g. in its DT) and one VIRTUAL_CPU per vCPU.
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
    pub(crate) fn vm_start(&mut self, caller: Vmid, req: &VmidReq) -> Result<Vec<u8>, RmError> {
        let vmid = req.vmid.get();
        let vm = self.owned_vm(caller, vmid)?;
        if vm.state != VmState::Ready {
            return Err(RmError::VmState);
        }
        let vm = vm.clone();
        let mut accepted: Vec<u32> = Vec::new();
        let result = self.start_accepts(&vm, &mut accepted);
        let result = result.and_then(|_| {
            let dt = self.read_dt(vmid).ok_or(RmError::NoResource)?;
            crate::config::checked_fdt(&dt)
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

    pub(super) fn start_accepts(
        &mut self,
        vm: &Vm,
        accepted: &mut Vec<u32>,
    ) -> Result<(), RmError> {
        let vmid = vm.vmid;
        let img = vm.image.ok_or(RmError::NoResource)?;
        {
            let p = self
                .parcels
                .get(img.mem_handle)
                .ok_or(RmError::NoResource)?;
            let own = [crate::parcel::AclEntry {
                vmid,
                rights: Rights::RWX,
            }];
            if p.trans != TransType::Lend || p.acl != own || !p.attrs.is_empty() {
                return Err(RmError::ValidateFailed);
            }
        }
        let at = vm.layout[LAYOUT_IMAGE as usize].map(|l| l.0);
        self.auto_accept(vmid, img.mem_handle, true, at)?;
        accepted.push(img.mem_handle);
        if let Some(fw) = vm.firmware {
            // Accepted as LEND (§7.4): a shared or donated firmware parcel fails.
            let lent = self.parcels.get(fw.mem_handle).map(|p| p.trans);
            if lent != Some(TransType::Lend) {
                return Err(RmError::ArgumentInvalid);
            }
            let at = vm.layout[LAYOUT_FIRMWARE as usize].map(|l| l.0);
            self.auto_accept(vmid, fw.mem_handle, true, at)?;
            accepted.push(fw.mem_handle);
        }
        // Every other parcel lent to the VM so far, private memory first,
        // then the rest at addresses the RM picks, parcels still open for
        // MEM_APPEND included (§12.1 "VM_START and parcels already lent").
        let private = self.private_parcels(vmid, false);
        let rest: Vec<u32> = self
            .parcels
            .parcels
            .values()
            .filter(|p| {
                p.trans == TransType::Lend
                    && p.acl_of(vmid).is_some()
                    && !p.accepted.contains_key(&vmid)
                    && !private.contains(&p.handle)
                    && !accepted.contains(&p.handle)
            })
            .map(|p| p.handle)
            .collect();
        for h in private.into_iter().chain(rest) {
            self.auto_accept(vmid, h, false, None)?;
            accepted.push(h);
        }
        Ok(())
    }

    /// Parcels exclusive to `vmid` with RWX, NORMAL, label 0, default attrs,
    /// not yet accepted (donations or the rest).
    pub(super) fn private_parcels(&self, vmid: Vmid, donations: bool) -> Vec<u32> {
        let own = [crate::parcel::AclEntry {
            vmid,
            rights: Rights::RWX,
        }];
        self.parcels
            .parcels
            .values()
            .filter(|p| {
                p.acl == own
                    && p.mem_type == crate::parcel::MemType::Normal
                    && p.label == 0
                    && p.attrs.iter().all(|a| a.attr == crate::parcel::ATTR_NORMAL)
                    && (p.state == ParcelState::Sharing
                        || (p.state == ParcelState::Init && !donations))
                    && (p.trans == TransType::Donate) == donations
            })
            .map(|p| p.handle)
            .collect()
    }
}
