//! MEM_NOTIFY (§3.4, §3.7) with its tag rules and the READY auto-accept,
//! and MEM_QCOM_LOOKUP_SGL (§3.6).

use gunyah_rm_abi::RmError;

use super::*;
use crate::platform::{Platform, Vmid};
use crate::service::Rm;
use alloc::vec::Vec;
use gunyah_rm_abi::mem::{self as wire, MemOwnerNotif, MemRecall, MemShared};
use gunyah_rm_abi::MsgId;

impl<P: Platform> Rm<P> {
    /// MEM_NOTIFY from `caller`.
    pub fn mem_notify(
        &mut self,
        caller: Vmid,
        handle: u32,
        flags: u8,
        tag: u32,
        vmids: &[Vmid],
    ) -> Result<(), RmError> {
        let p = self.parcels.get(handle).ok_or(RmError::HandleInvalid)?;
        if !matches!(
            flags,
            NOTIFY_SHARED | NOTIFY_RELEASED | NOTIFY_ACCEPTED | NOTIFY_RECALL
        ) {
            return Err(RmError::ArgumentInvalid);
        }
        if p.tag.is_some_and(|t| t != tag) {
            return Err(RmError::ArgumentInvalid);
        }
        match flags {
            NOTIFY_SHARED | NOTIFY_RECALL => {
                if caller != p.owner {
                    return Err(RmError::Denied);
                }
                if vmids.is_empty() || vmids.len() > p.acl.len() {
                    return Err(RmError::ArgumentInvalid);
                }
                for v in vmids {
                    if !self.vms.exists(*v) {
                        return Err(RmError::VmidInvalid);
                    }
                    if p.acl_of(*v).is_none() {
                        return Err(RmError::ArgumentInvalid);
                    }
                }
                if flags == NOTIFY_SHARED && p.state == ParcelState::Init {
                    return Err(RmError::Denied);
                }
                // Gunyah's RM stops answering when MEM_SHARED names a VM that
                // has not started (§12); here that VM must be READY (the RM
                // accepts for it) or have an RPC link, else VM_STATE.
                let reachable = |v: &Vmid| {
                    self.vms.get(*v).is_some_and(|vm| {
                        vm.state == crate::vm::VmState::Ready || vm.has_rpc_link()
                    })
                };
                if flags == NOTIFY_SHARED && !vmids.iter().all(reachable) {
                    return Err(RmError::VmState);
                }
            }
            _ => {
                // Any VM in the ACL, a SHARE's owner too: it never accepted
                // its own parcel, so ACCEPTED → MEM_RELEASED and RELEASED
                // → OK with MEM_RELEASED to itself (§12.1).
                if p.acl_of(caller).is_none() {
                    return Err(RmError::HandleInvalid);
                }
                if !vmids.is_empty() {
                    return Err(RmError::ArgumentInvalid);
                }
                let accepted = p.accepted.contains_key(&caller);
                if flags == NOTIFY_ACCEPTED && !accepted {
                    return Err(RmError::MemReleased);
                }
                if flags == NOTIFY_RELEASED && accepted {
                    return Err(RmError::MemInuse);
                }
            }
        }
        // --- commit ---
        let owner = p.owner;
        if let Some(p) = self.parcels.parcels.get_mut(&handle) {
            p.tag = Some(tag);
        }
        match flags {
            NOTIFY_SHARED => {
                for &v in vmids {
                    self.notify_shared_to(handle, v);
                }
            }
            NOTIFY_RECALL => {
                for &v in vmids {
                    self.notify_with(v, MsgId::MEM_RECALL, &MemRecall::new(handle, tag));
                }
            }
            NOTIFY_ACCEPTED => self.notify_owner(MsgId::MEM_ACCEPTED, owner, handle, caller, tag),
            _ => self.notify_owner(MsgId::MEM_RELEASED, owner, handle, caller, tag),
        }
        Ok(())
    }

    /// MEM_ACCEPTED / MEM_RELEASED to the owner.
    pub(crate) fn notify_owner(
        &mut self,
        id: MsgId,
        owner: Vmid,
        handle: u32,
        vmid: Vmid,
        tag: u32,
    ) {
        self.notify_with(owner, id, &MemOwnerNotif::new(handle, vmid, tag));
    }

    /// MEM_SHARED to `to`, or the auto-accept for a VM still in READY.
    pub(super) fn notify_shared_to(&mut self, handle: u32, to: Vmid) {
        let p = match self.parcels.get(handle) {
            Some(p) => p.clone(),
            None => return,
        };
        let tag = p.tag.unwrap_or(0);
        if self
            .vms
            .get(to)
            .is_some_and(|v| v.state == crate::vm::VmState::Ready)
        {
            let r = self.auto_accept(to, handle, false, None);
            let id = if r.is_ok() {
                MsgId::MEM_ACCEPTED
            } else {
                MsgId::MEM_RELEASED
            };
            self.notify_owner(id, p.owner, handle, to, tag);
            return;
        }
        let acl: Vec<wire::AclEntry> = p
            .acl
            .iter()
            .map(|a| wire::AclEntry::new(a.vmid, a.rights.0))
            .collect();
        // The region list is truncated to 512 entries, as the RM does (§3.7).
        let sizes: Vec<zerocopy::little_endian::U64> = p
            .regions
            .iter()
            .take(gunyah_rm_abi::MAX_LIST_ENTRIES)
            .map(|r| r.size.into())
            .collect();
        let attrs: Vec<wire::AttrEntry> = p
            .attrs
            .iter()
            .map(|a| wire::AttrEntry::new(a.attr, a.vmid))
            .collect();
        let shared = MemShared {
            handle,
            mem_type: p.mem_type as u8,
            trans_type: p.trans as u8,
            flags: p.sanitize_create as u8,
            owner_vmid: p.owner,
            label: p.label,
            mem_info_tag: tag,
            acl: &acl,
            region_sizes: &sizes,
            attrs: &attrs,
        };
        self.notify_with(to, MsgId::MEM_SHARED, &shared);
    }

    /// MEM_QCOM_LOOKUP_SGL from `caller`.
    pub fn mem_lookup_sgl(
        &mut self,
        caller: Vmid,
        mem_type: u8,
        label: u32,
        acl: &[AclEntry],
        sgl: &[(u64, u64)],
        attrs: &[AttrEntry],
    ) -> Result<u32, RmError> {
        let found = self.parcels.parcels.values().find(|p| {
            p.owner == caller
                && p.state == ParcelState::Sharing
                && p.mem_type as u8 == mem_type
                && p.acl == acl
                && p.attrs == attrs
                && p.regions.len() == sgl.len()
                && p.regions
                    .iter()
                    .zip(sgl)
                    .all(|(r, s)| r.owner_ipa == s.0 && r.size == s.1)
        });
        let h = found.map(|p| p.handle).ok_or(RmError::LookupFailed)?;
        if let Some(p) = self.parcels.parcels.get_mut(&h) {
            if p.label == 0 {
                p.label = label;
            }
        }
        Ok(h)
    }
}
