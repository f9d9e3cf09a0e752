//! From the abi crate's decoded memparcel payloads (§3) to the RM's records.
//!
//! Decoding (sizes, lists, the 512-entry limit) is the abi crate's; this
//! only copies the borrowed wire entries into owned request types.

use alloc::vec::Vec;

use gunyah_rm_abi::mem as wire;

use super::{AcceptReq, AclEntry, AttrEntry, CreateReq, TransType};
use crate::platform::Rights;

/// ACL entries.
pub fn acl(e: &[wire::AclEntry]) -> Vec<AclEntry> {
    e.iter()
        .map(|a| AclEntry {
            vmid: a.vmid.get(),
            rights: Rights(a.rights),
        })
        .collect()
}

/// SGL entries as (IPA, size).
pub fn sgl(e: &[wire::SglEntry]) -> Vec<(u64, u64)> {
    e.iter().map(|s| (s.ipa.get(), s.size.get())).collect()
}

/// Attribute entries.
pub fn attrs(e: &[wire::AttrEntry]) -> Vec<AttrEntry> {
    e.iter()
        .map(|a| AttrEntry {
            attr: a.attr.get(),
            vmid: a.vmid.get(),
        })
        .collect()
}

/// MEM_SHARE / MEM_LEND / MEM_DONATE (§3.1).
pub fn create_req(trans: TransType, c: &wire::MemCreate<'_>) -> CreateReq {
    CreateReq {
        trans,
        mem_type: c.mem_type,
        flags: c.flags,
        label: c.label,
        acl: acl(c.acl),
        sgl: sgl(c.sgl),
        attrs: attrs(c.attrs),
    }
}

/// MEM_ACCEPT (§3.5).
pub fn accept_req(a: &wire::MemAccept<'_>) -> AcceptReq {
    AcceptReq {
        handle: a.handle,
        mem_type: a.mem_type,
        trans_type: a.trans_type,
        flags: a.flags,
        label: a.label,
        acl: acl(a.acl),
        sgl: sgl(a.sgl),
        map_vmid: a.map_vmid,
        attrs: attrs(a.attrs),
    }
}
