//! VM_GET_STATE, VM_SET_STATUS, VM_GET_HYP_RESOURCES, and the VM identity queries VM_GET_ID
//! and VM_LOOKUP_NAME / URI / GUID.

use alloc::vec::Vec;

use gunyah_rm_abi::RmError;

use super::HOST_TYPE;
use crate::platform::{Platform, Vmid};
use crate::service::Rm;
use crate::vm::*;
use gunyah_rm_abi::mem::VmidEntry;
use gunyah_rm_abi::vm::{
    HypResourceEntry, HypResources, VmPeers, VmSetStatusReq, VmStateReply, VmidReq, Word,
};
use gunyah_rm_abi::vm_id::{vm_id_type, VmIdEntry, VmIdList, VmLookupReply, VM_GUID_LEN};

/// The signing authority VM_GET_ID reports: what Gunyah's RM on QEMU answers for an image
/// that was not authenticated (`platform_get_sign_authority_string(VM_SIGN_INIT)`, "N/A";
/// `VM_SIGN_INIT` is 0, the `signer_info` of every VM on that platform). This RM
/// authenticates no image either.
pub const SIGN_AUTH_NONE: &[u8] = b"N/A";

/// What a VM_LOOKUP_* request looks for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Lookup<'a> {
    /// VM_LOOKUP_NAME: an `image-name`.
    Name(&'a [u8]),
    /// VM_LOOKUP_URI: a `vm-uri`.
    Uri(&'a [u8]),
    /// VM_LOOKUP_GUID: a `vm-guid`.
    Guid(&'a [u8; 16]),
}

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

    /// Whether `caller` may ask about `vm`'s identity: Gunyah's `is_vm_query_allowed`
    /// (`src/vm_mgnt/vm_mgnt.c`): the VM itself, its manager (owner), or one of its peers. A
    /// VM's peers are its owner and the VMs it allocated (`vm_register_peers` at allocation;
    /// what VM_GET_PEERS lists), so a VM HLOS manages may ask about HLOS too, which is what
    /// Qualcomm's driver in a guest does to find its peers. Two VMs of the same manager are not
    /// peers: to each other they do not exist.
    fn may_query_identity(&self, vm: &Vm, caller: Vmid) -> bool {
        caller == vm.vmid
            || caller == vm.owner
            || self
                .vms
                .get(caller)
                .is_some_and(|c| c.owner == vm.vmid && c.vmid != vm.vmid)
    }

    /// VM_GET_ID (vmid 0 = the caller), answered as Gunyah's RM does
    /// (`vm_mgnt_handle_get_id`, `src/vm_mgnt/vm_mgnt.c`; layout in `gunyah_rm_abi::vm_id`):
    /// `u32 n_entries`, then the GUID (16 bytes, zero when the VM has none), the NAME and the
    /// URI when the VM has them, and the signing authority ([`SIGN_AUTH_NONE`]).
    ///
    /// Refusals: a VMID that does not exist, or a VM the caller may not ask about
    /// ([`Self::may_query_identity`]) → NORESOURCE, as Gunyah's RM answers both; a VM that is
    /// not READY, RUNNING or PAUSED → VM_STATE. Gunyah's RM checks the state before the
    /// caller, which tells any VM the state of a VM it may not see; here the caller is
    /// checked first. The payload size (exactly 4 bytes, else MSG_INVALID) is the decoder's.
    pub(crate) fn vm_get_id(&mut self, caller: Vmid, req: &VmidReq) -> Result<Vec<u8>, RmError> {
        let vmid = match req.vmid.get() {
            0 => caller,
            v => v,
        };
        let vm = self
            .vms
            .get(vmid)
            .filter(|v| self.may_query_identity(v, caller))
            .ok_or(RmError::NoResource)?;
        if !matches!(
            vm.state,
            VmState::Ready | VmState::Running | VmState::Paused
        ) {
            return Err(RmError::VmState);
        }
        let id = &vm.identity;
        let guid = id.guid.unwrap_or([0; VM_GUID_LEN]);
        let mut entries: [VmIdEntry<'_>; 4] = [VmIdEntry::new(vm_id_type::GUID, &guid); 4];
        let mut n = 1;
        for (ty, bytes) in [
            (vm_id_type::NAME, id.name.as_bytes()),
            (vm_id_type::URI, id.uri.as_bytes()),
            (vm_id_type::SIGN_AUTH, SIGN_AUTH_NONE),
        ] {
            if !bytes.is_empty() {
                entries[n] = VmIdEntry::new(ty, bytes);
                n += 1;
            }
        }
        crate::reply::encode_vec(&VmIdList {
            entries: &entries[..n],
        })
        .ok_or(RmError::NoResource)
    }

    /// VM_LOOKUP_NAME / VM_LOOKUP_URI / VM_LOOKUP_GUID, answered as Gunyah's RM does
    /// (`vm_mgnt_lookup_by_id`): `u32 count` and `{u16 vmid, u16 0}` for every VM the caller
    /// may ask about ([`Self::may_query_identity`]) whose name, URI or GUID is the one asked
    /// for, in VMID order; none found is OK with count 0. The request checks (size, padding,
    /// the 79-byte limit) are the decoder's.
    ///
    /// Where this differs from Gunyah's RM: an empty name or URI, or the all-zero GUID,
    /// matches no VM. Gunyah's RM compares them with the empty name/URI and the zero GUID of
    /// every VM that has none, so those lookups list the caller's unnamed peers.
    pub(crate) fn vm_lookup(&mut self, caller: Vmid, what: Lookup<'_>) -> Result<Vec<u8>, RmError> {
        let matches = |id: &crate::vm::VmIdentity| match what {
            Lookup::Name(n) => !n.is_empty() && id.name.as_bytes() == n,
            Lookup::Uri(u) => !u.is_empty() && id.uri.as_bytes() == u,
            Lookup::Guid(g) => id.guid.as_ref() == Some(g),
        };
        let vmids: Vec<VmidEntry> = self
            .vms
            .vms
            .values()
            .filter(|v| matches(&v.identity) && self.may_query_identity(v, caller))
            .map(|v| VmidEntry::new(v.vmid))
            .collect();
        crate::reply::encode_vec(&VmLookupReply { vmids: &vmids }).ok_or(RmError::NoResource)
    }

    /// Record `vmid`'s identity (from its config: [`crate::launch::apply::prepare`]).
    pub(crate) fn set_vm_identity(&mut self, vmid: Vmid, identity: crate::vm::VmIdentity) {
        if let Some(vm) = self.vms.get_mut(vmid) {
            vm.identity = identity;
        }
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
