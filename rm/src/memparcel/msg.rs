//! Decoding memparcel requests (§3) into typed requests and encoding replies.

use alloc::vec::Vec;

use gunyah_rm_abi::RmError;

use super::{AcceptReply, AcceptReq, AclEntry, AttrEntry, CreateReq, TransType};
use crate::platform::{Rights, Vmid};
use crate::wire::{le16, le64, Reader, Writer};

fn acl_list(r: &mut Reader<'_>) -> Result<(u16, Vec<AclEntry>), RmError> {
    let (half, e) = r.list(4)?;
    Ok((
        half,
        e.iter()
            .map(|b| AclEntry {
                vmid: le16(b, 0),
                rights: Rights(b[2]),
            })
            .collect(),
    ))
}

fn sgl_list(r: &mut Reader<'_>) -> Result<(u16, Vec<(u64, u64)>), RmError> {
    let (half, e) = r.list(16)?;
    Ok((half, e.iter().map(|b| (le64(b, 0), le64(b, 8))).collect()))
}

fn attr_list(r: &mut Reader<'_>) -> Result<Vec<AttrEntry>, RmError> {
    let (_, e) = r.list(4)?;
    Ok(e.iter()
        .map(|b| AttrEntry {
            attr: le16(b, 0),
            vmid: le16(b, 2),
        })
        .collect())
}

/// MEM_SHARE / MEM_LEND / MEM_DONATE (§3.1).
pub fn parse_create(trans: TransType, buf: &[u8]) -> Result<CreateReq, RmError> {
    if buf.len() < 20 {
        return Err(RmError::MsgInvalid);
    }
    let mut r = Reader::new(buf);
    let mem_type = r.u8()?;
    r.u8()?;
    let flags = r.u8()?;
    r.u8()?;
    let label = r.u32()?;
    let (_, acl) = acl_list(&mut r)?;
    let (_, sgl) = sgl_list(&mut r)?;
    let attrs = attr_list(&mut r)?;
    r.finish()?;
    Ok(CreateReq {
        trans,
        mem_type,
        flags,
        label,
        acl,
        sgl,
        attrs,
    })
}

/// A decoded MEM_APPEND: (handle, flags, sgl).
pub type AppendReq = (u32, u8, Vec<(u64, u64)>);

/// MEM_APPEND (§3.2).
pub fn parse_append(buf: &[u8]) -> Result<AppendReq, RmError> {
    if buf.len() < 12 {
        return Err(RmError::MsgInvalid);
    }
    let mut r = Reader::new(buf);
    let handle = r.u32()?;
    let flags = r.u8()?;
    r.bytes(3)?;
    let (_, sgl) = sgl_list(&mut r)?;
    r.finish()?;
    Ok((handle, flags, sgl))
}

/// MEM_RELEASE / MEM_RECLAIM (§3.3): (handle, flags). Exactly 8 bytes.
pub fn parse_handle_flags(buf: &[u8]) -> Result<(u32, u8), RmError> {
    if buf.len() != 8 {
        return Err(RmError::MsgInvalid);
    }
    let mut r = Reader::new(buf);
    Ok((r.u32()?, r.u8()?))
}

/// MEM_NOTIFY (§3.4): (handle, flags, tag, vmids).
pub fn parse_notify(buf: &[u8]) -> Result<(u32, u8, u32, Vec<Vmid>), RmError> {
    if buf.len() < 12 {
        return Err(RmError::MsgInvalid);
    }
    let mut r = Reader::new(buf);
    let handle = r.u32()?;
    let flags = r.u8()?;
    r.bytes(3)?;
    let tag = r.u32()?;
    let (_, v) = r.list(4)?;
    r.finish()?;
    Ok((handle, flags, tag, v.iter().map(|b| le16(b, 0)).collect()))
}

/// MEM_ACCEPT (§3.5).
pub fn parse_accept(buf: &[u8]) -> Result<AcceptReq, RmError> {
    if buf.len() < 24 {
        return Err(RmError::MsgInvalid);
    }
    let mut r = Reader::new(buf);
    let handle = r.u32()?;
    let mem_type = r.u8()?;
    let trans_type = r.u8()?;
    let flags = r.u8()?;
    r.u8()?;
    let label = r.u32()?;
    let (_, acl) = acl_list(&mut r)?;
    let (map_vmid, sgl) = sgl_list(&mut r)?;
    let attrs = attr_list(&mut r)?;
    r.finish()?;
    Ok(AcceptReq {
        handle,
        mem_type,
        trans_type,
        flags,
        label,
        acl,
        sgl,
        map_vmid,
        attrs,
    })
}

/// A lookup request (§3.6).
pub struct LookupReq {
    /// mem_type.
    pub mem_type: u8,
    /// Label.
    pub label: u32,
    /// ACL.
    pub acl: Vec<AclEntry>,
    /// SGL.
    pub sgl: Vec<(u64, u64)>,
    /// Attrs.
    pub attrs: Vec<AttrEntry>,
}

/// MEM_QCOM_LOOKUP_SGL (§3.6).
pub fn parse_lookup(buf: &[u8]) -> Result<LookupReq, RmError> {
    if buf.len() < 16 {
        return Err(RmError::MsgInvalid);
    }
    let mut r = Reader::new(buf);
    let mem_type = r.u8()?;
    r.bytes(3)?;
    let label = r.u32()?;
    let (_, acl) = acl_list(&mut r)?;
    let (_, sgl) = sgl_list(&mut r)?;
    let attrs = attr_list(&mut r)?;
    r.finish()?;
    Ok(LookupReq {
        mem_type,
        label,
        acl,
        sgl,
        attrs,
    })
}

/// The data of a MEM_ACCEPT reply when the RM chose the IPAs.
pub fn encode_accept_reply(rep: &AcceptReply) -> Vec<u8> {
    let mut w = Writer::new();
    w.u16(rep.entries.len() as u16)
        .u8(rep.incomplete as u8)
        .u8(0);
    for &(ipa, size) in &rep.entries {
        w.u64(ipa).u64(size);
    }
    w.finish()
}
