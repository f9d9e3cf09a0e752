//! Memparcel payloads (spec §3): requests, replies and notifications of the
//! 0x51 family. Offsets are in each type's documentation.

use zerocopy::little_endian::{U16, U32, U64};

use crate::wire::{
    fixed_payload, list_len, wire_struct, DecodeError, Encode, EncodeError, Reader, Writer,
};

/// Memory rights / permissions (ACL entry byte 2).
pub mod rights {
    /// Execute.
    pub const X: u8 = 0x1;
    /// Write.
    pub const W: u8 = 0x2;
    /// Read.
    pub const R: u8 = 0x4;
    /// Read + execute.
    pub const RX: u8 = 0x5;
    /// Read + write.
    pub const RW: u8 = 0x6;
    /// Read + write + execute.
    pub const RWX: u8 = 0x7;

    /// The letters of `v` (`RW`, `RX`, ..., `NONE` for 0), or `None` if it
    /// has bits other than R, W and X.
    pub fn name(v: u8) -> Option<&'static str> {
        const NAMES: [&str; 8] = ["NONE", "X", "W", "WX", "R", "RX", "RW", "RWX"];
        NAMES.get(v as usize).copied()
    }
}

/// `mem_type` values.
pub mod mem_type {
    crate::names::named_values! { u8;
        /// Normal memory.
        NORMAL = 0,
        /// I/O memory.
        IO = 1,
    }
}

/// `trans_type` values.
pub mod trans_type {
    crate::names::named_values! { u8;
        /// MEM_DONATE.
        DONATE = 0,
        /// MEM_LEND.
        LEND = 1,
        /// MEM_SHARE.
        SHARE = 2,
    }
}

/// Memory attributes (attr entry).
pub mod mem_attr {
    crate::names::named_values! { u16;
        /// Normal.
        NORMAL = 0,
        /// Device.
        DEVICE = 1,
        /// Uncached.
        UNCACHED = 2,
        /// Cached.
        CACHED = 3,
    }
}

/// Flags of MEM_SHARE / MEM_LEND / MEM_DONATE.
pub mod create_flags {
    /// Zero the memory at create.
    pub const SANITIZE: u8 = 0x1;
    /// More SGL entries follow with MEM_APPEND.
    pub const APPEND: u8 = 0x2;
}

/// Flags of MEM_APPEND.
pub mod append_flags {
    /// Last append (LNX "END").
    pub const DONE: u8 = 0x1;
}

/// Flags of MEM_ACCEPT.
pub mod accept_flags {
    /// The parcel must have been sanitized at create.
    pub const VALIDATE_SANITIZED: u8 = 0x01;
    /// The ACL and attrs must match the request's, in order.
    pub const VALIDATE_ACL_ATTR: u8 = 0x02;
    /// The label must match.
    pub const VALIDATE_LABEL: u8 = 0x04;
    /// Map for `map_vmid` instead of the caller (RM: DENIED).
    pub const MAP_OTHER: u8 = 0x08;
    /// Map the whole parcel at one contiguous IPA range.
    pub const MAP_CONTIGUOUS: u8 = 0x10;
    /// Zero the memory on accept.
    pub const SANITIZE: u8 = 0x20;
    /// Complete the accept (map).
    pub const DONE: u8 = 0x80;
}

/// MEM_ACCEPT reply flags.
pub mod accept_reply_flags {
    /// More IPAs remain to be allocated: call MEM_ACCEPT again.
    pub const INCOMPLETE: u8 = 0x1;
}

/// MEM_RELEASE / MEM_RECLAIM flags.
pub mod release_flags {
    /// Zero the memory.
    pub const SANITIZE: u8 = 0x1;
}

/// MEM_NOTIFY flags (exactly one must be set).
pub mod notify_flags {
    /// Owner → recipients: shared.
    pub const SHARED: u8 = 0x1;
    /// Acceptor → owner: released.
    pub const RELEASED: u8 = 0x2;
    /// Acceptor → owner: accepted.
    pub const ACCEPTED: u8 = 0x4;
    /// Owner → listed VMs: recall.
    pub const RECALL: u8 = 0x8;
}

/// `MEMPARCEL_INVALID_HANDLE`.
pub const INVALID_HANDLE: u32 = 0xFFFF_FFFF;
/// Most memparcels one owner VM may have (`MAX_MEMPARCEL_PER_VM`).
pub const MAX_MEMPARCELS_PER_VM: usize = 64;

wire_struct! {
    /// ACL entry (4 bytes): +0 u16 vmid, +2 u8 rights, +3 u8 reserved.
    pub struct AclEntry {
        /// VMID.
        pub vmid: U16,
        /// Rights ([`rights`]).
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::rights"))]
        pub rights: u8,
        /// Reserved.
        pub reserved: u8,
    }
}

impl AclEntry {
    /// An ACL entry.
    pub fn new(vmid: u16, rights: u8) -> Self {
        AclEntry {
            vmid: U16::new(vmid),
            rights,
            reserved: 0,
        }
    }
}

wire_struct! {
    /// SGL / memory entry (16 bytes): +0 u64 ipa_base, +8 u64 size.
    pub struct SglEntry {
        /// Base IPA (the owner's IPA for create, the acceptor's for accept).
        pub ipa: U64,
        /// Size in bytes.
        pub size: U64,
    }
}

impl SglEntry {
    /// An SGL entry.
    pub fn new(ipa: u64, size: u64) -> Self {
        SglEntry {
            ipa: U64::new(ipa),
            size: U64::new(size),
        }
    }
}

wire_struct! {
    /// Attribute entry (4 bytes): +0 u16 attr, +2 u16 vmid.
    pub struct AttrEntry {
        /// Attribute ([`mem_attr`]).
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::mem_attr"))]
        pub attr: U16,
        /// VMID it applies to.
        pub vmid: U16,
    }
}

impl AttrEntry {
    /// An attribute entry.
    pub fn new(attr: u16, vmid: u16) -> Self {
        AttrEntry {
            attr: U16::new(attr),
            vmid: U16::new(vmid),
        }
    }
}

wire_struct! {
    /// VMID entry (4 bytes): +0 u16 vmid, +2 u16 reserved.
    pub struct VmidEntry {
        /// VMID.
        pub vmid: U16,
        /// Reserved.
        pub reserved: U16,
    }
}

impl VmidEntry {
    /// A VMID entry.
    pub fn new(vmid: u16) -> Self {
        VmidEntry {
            vmid: U16::new(vmid),
            reserved: U16::new(0),
        }
    }
}

wire_struct! {
    /// MEM_RELEASE / MEM_RECLAIM request (8 bytes): +0 u32 mem_handle,
    /// +4 u8 flags ([`release_flags`]), +5 3 reserved.
    pub struct MemReleaseReq {
        /// Memparcel handle.
        #[cfg_attr(feature = "serde", serde(rename = "mem_handle"))]
        pub handle: U32,
        /// Flags.
        pub flags: u8,
        /// Reserved.
        pub reserved: [u8; 3],
    }
}

impl MemReleaseReq {
    /// A release/reclaim request.
    pub fn new(handle: u32, flags: u8) -> Self {
        MemReleaseReq {
            handle: U32::new(handle),
            flags,
            reserved: [0; 3],
        }
    }
}

wire_struct! {
    /// Reply data carrying a memparcel handle (create, lookup): +0 u32 handle.
    pub struct MemHandleReply {
        /// Memparcel handle.
        #[cfg_attr(feature = "serde", serde(rename = "mem_handle"))]
        pub handle: U32,
    }
}

impl MemHandleReply {
    /// A handle reply.
    pub fn new(handle: u32) -> Self {
        MemHandleReply {
            handle: U32::new(handle),
        }
    }
}

wire_struct! {
    /// MEM_RELEASED / MEM_ACCEPTED notification (12 bytes): +0 u32
    /// mem_handle, +4 u16 vmid (acceptor/releaser), +6 u16 reserved, +8 u32
    /// mem_info_tag.
    pub struct MemOwnerNotif {
        /// Memparcel handle.
        #[cfg_attr(feature = "serde", serde(rename = "mem_handle"))]
        pub handle: U32,
        /// The VM that accepted/released.
        pub vmid: U16,
        /// Reserved.
        pub reserved: U16,
        /// Tag from MEM_NOTIFY.
        pub mem_info_tag: U32,
    }
}

impl MemOwnerNotif {
    /// A MEM_RELEASED / MEM_ACCEPTED payload.
    pub fn new(handle: u32, vmid: u16, mem_info_tag: u32) -> Self {
        MemOwnerNotif {
            handle: U32::new(handle),
            vmid: U16::new(vmid),
            reserved: U16::new(0),
            mem_info_tag: U32::new(mem_info_tag),
        }
    }
}

wire_struct! {
    /// MEM_RECALL notification (8 bytes): +0 u32 mem_handle, +4 u32
    /// mem_info_tag.
    pub struct MemRecall {
        /// Memparcel handle.
        #[cfg_attr(feature = "serde", serde(rename = "mem_handle"))]
        pub handle: U32,
        /// Tag from MEM_NOTIFY.
        pub mem_info_tag: U32,
    }
}

impl MemRecall {
    /// A MEM_RECALL payload.
    pub fn new(handle: u32, mem_info_tag: u32) -> Self {
        MemRecall {
            handle: U32::new(handle),
            mem_info_tag: U32::new(mem_info_tag),
        }
    }
}

fixed_payload!(MemReleaseReq, MemHandleReply, MemOwnerNotif, MemRecall);

/// MEM_SHARE / MEM_LEND / MEM_DONATE request (§3.1). At least 20 bytes.
///
/// | Offset | Size | Field |
/// |---|---|---|
/// | 0 | 1 | mem_type |
/// | 1 | 1 | reserved |
/// | 2 | 1 | flags ([`create_flags`]) |
/// | 3 | 1 | reserved |
/// | 4 | 4 | label |
/// | 8 | 4+4n | ACL list |
/// | 12+4n | 4+16m | SGL list |
/// | 16+4n+16m | 4+4k | attr list (may be omitted) |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MemCreate<'a> {
    /// [`mem_type`].
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::mem_type"))]
    pub mem_type: u8,
    /// [`create_flags`].
    pub flags: u8,
    /// Label.
    pub label: u32,
    /// ACL.
    pub acl: &'a [AclEntry],
    /// SGL (owner IPAs).
    pub sgl: &'a [SglEntry],
    /// Attributes (empty if the list was omitted).
    pub attrs: &'a [AttrEntry],
}

impl<'a> MemCreate<'a> {
    /// RM's minimum size (`sizeof(memparcel_create_req_t)`).
    pub const MIN_SIZE: usize = 20;

    /// A request for normal memory with no flags, label or attributes: what most callers send.
    pub fn normal(acl: &'a [AclEntry], sgl: &'a [SglEntry]) -> Self {
        MemCreate {
            mem_type: mem_type::NORMAL,
            flags: 0,
            label: 0,
            acl,
            sgl,
            attrs: &[],
        }
    }

    /// Decode untrusted bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.require_len(Self::MIN_SIZE, "create request shorter than 20 bytes")?;
        let mem_type = r.read::<u8>("mem_type")?;
        let _ = r.read::<u8>("reserved")?;
        let flags = r.read::<u8>("flags")?;
        let _ = r.read::<u8>("reserved")?;
        let label = r.read::<U32>("label")?.get();
        let acl = r.list("ACL list")?.entries;
        let sgl = r.list("SGL list")?.entries;
        let attrs = r.list("attr list")?.entries;
        r.finish()?;
        Ok(MemCreate {
            mem_type,
            flags,
            label,
            acl,
            sgl,
            attrs,
        })
    }
}

impl Encode for MemCreate<'_> {
    fn encoded_len(&self) -> usize {
        8 + list_len::<AclEntry>(self.acl.len())
            + list_len::<SglEntry>(self.sgl.len())
            + list_len::<AttrEntry>(self.attrs.len())
    }

    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.bytes(&[self.mem_type, 0, self.flags, 0])?;
        w.put(&U32::new(self.label))?;
        w.list(self.acl, 0)?;
        w.list(self.sgl, 0)?;
        w.list(self.attrs, 0)?;
        Ok(w.finish())
    }
}

/// MEM_APPEND request (§3.2). At least 12 bytes.
///
/// | Offset | Size | Field |
/// |---|---|---|
/// | 0 | 4 | mem_handle |
/// | 4 | 1 | flags ([`append_flags`]) |
/// | 5 | 3 | reserved |
/// | 8 | 4+16m | SGL list |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MemAppend<'a> {
    /// Memparcel handle.
    #[cfg_attr(feature = "serde", serde(rename = "mem_handle"))]
    pub handle: u32,
    /// Flags.
    pub flags: u8,
    /// SGL entries to add.
    pub sgl: &'a [SglEntry],
}

impl<'a> MemAppend<'a> {
    /// RM's minimum size.
    pub const MIN_SIZE: usize = 12;

    /// Decode untrusted bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.require_len(Self::MIN_SIZE, "append request shorter than 12 bytes")?;
        let handle = r.read::<U32>("mem_handle")?.get();
        let flags = r.read::<u8>("flags")?;
        let _ = r.bytes(3, "reserved")?;
        let sgl = r.list("SGL list")?.entries;
        r.finish()?;
        Ok(MemAppend { handle, flags, sgl })
    }
}

impl Encode for MemAppend<'_> {
    fn encoded_len(&self) -> usize {
        8 + list_len::<SglEntry>(self.sgl.len())
    }

    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.put(&U32::new(self.handle))?;
        w.bytes(&[self.flags, 0, 0, 0])?;
        w.list(self.sgl, 0)?;
        Ok(w.finish())
    }
}

/// MEM_NOTIFY request (§3.4). At least 12 bytes; the VMID list (for SHARED
/// and RECALL) may be omitted.
///
/// | Offset | Size | Field |
/// |---|---|---|
/// | 0 | 4 | mem_handle |
/// | 4 | 1 | flags ([`notify_flags`], exactly one) |
/// | 5 | 3 | reserved |
/// | 8 | 4 | mem_info_tag |
/// | 12 | 4+4v | VMID list |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MemNotify<'a> {
    /// Memparcel handle.
    #[cfg_attr(feature = "serde", serde(rename = "mem_handle"))]
    pub handle: u32,
    /// Flags.
    pub flags: u8,
    /// Tag passed on in the notifications.
    pub mem_info_tag: u32,
    /// VMIDs to notify (SHARED, RECALL).
    pub vmids: &'a [VmidEntry],
}

impl<'a> MemNotify<'a> {
    /// Minimum size.
    pub const MIN_SIZE: usize = 12;

    /// Decode untrusted bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.require_len(Self::MIN_SIZE, "notify request shorter than 12 bytes")?;
        let handle = r.read::<U32>("mem_handle")?.get();
        let flags = r.read::<u8>("flags")?;
        let _ = r.bytes(3, "reserved")?;
        let mem_info_tag = r.read::<U32>("mem_info_tag")?.get();
        let vmids = r.list("VMID list")?.entries;
        r.finish()?;
        Ok(MemNotify {
            handle,
            flags,
            mem_info_tag,
            vmids,
        })
    }
}

impl Encode for MemNotify<'_> {
    fn encoded_len(&self) -> usize {
        12 + list_len::<VmidEntry>(self.vmids.len())
    }

    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.put(&U32::new(self.handle))?;
        w.bytes(&[self.flags, 0, 0, 0])?;
        w.put(&U32::new(self.mem_info_tag))?;
        w.list(self.vmids, 0)?;
        Ok(w.finish())
    }
}

/// MEM_ACCEPT request (§3.5). At least 24 bytes.
///
/// | Offset | Size | Field |
/// |---|---|---|
/// | 0 | 4 | mem_handle |
/// | 4 | 1 | mem_type |
/// | 5 | 1 | trans_type |
/// | 6 | 1 | flags ([`accept_flags`]) |
/// | 7 | 1 | reserved |
/// | 8 | 4 | label |
/// | 12 | 4+4n | ACL list |
/// | 16+4n | 2 | SGL count m |
/// | 18+4n | 2 | **map_vmid** |
/// | 20+4n | 16m | SGL entries (acceptor IPAs; m = 0 lets the RM choose) |
/// | 20+4n+16m | 4+4k | attr list |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MemAccept<'a> {
    /// Memparcel handle.
    #[cfg_attr(feature = "serde", serde(rename = "mem_handle"))]
    pub handle: u32,
    /// Must equal the parcel's.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::mem_type"))]
    pub mem_type: u8,
    /// Must equal the parcel's.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::trans_type"))]
    pub trans_type: u8,
    /// Flags.
    pub flags: u8,
    /// Label (checked with VALIDATE_LABEL).
    pub label: u32,
    /// ACL (checked with VALIDATE_ACL_ATTR).
    pub acl: &'a [AclEntry],
    /// Second half-word of the SGL list header.
    pub map_vmid: u16,
    /// Requested IPAs.
    pub sgl: &'a [SglEntry],
    /// Attributes (checked with VALIDATE_ACL_ATTR).
    pub attrs: &'a [AttrEntry],
}

impl<'a> MemAccept<'a> {
    /// RM's minimum size (`sizeof(memparcel_accept_req_t)`).
    pub const MIN_SIZE: usize = 24;

    /// Decode untrusted bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.require_len(Self::MIN_SIZE, "accept request shorter than 24 bytes")?;
        let handle = r.read::<U32>("mem_handle")?.get();
        let mem_type = r.read::<u8>("mem_type")?;
        let trans_type = r.read::<u8>("trans_type")?;
        let flags = r.read::<u8>("flags")?;
        let _ = r.read::<u8>("reserved")?;
        let label = r.read::<U32>("label")?.get();
        let acl = r.list("ACL list")?.entries;
        let sgl = r.list::<SglEntry>("SGL list")?;
        let attrs = r.list("attr list")?.entries;
        r.finish()?;
        Ok(MemAccept {
            handle,
            mem_type,
            trans_type,
            flags,
            label,
            acl,
            map_vmid: sgl.aux,
            sgl: sgl.entries,
            attrs,
        })
    }
}

impl Encode for MemAccept<'_> {
    fn encoded_len(&self) -> usize {
        12 + list_len::<AclEntry>(self.acl.len())
            + list_len::<SglEntry>(self.sgl.len())
            + list_len::<AttrEntry>(self.attrs.len())
    }

    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.put(&U32::new(self.handle))?;
        w.bytes(&[self.mem_type, self.trans_type, self.flags, 0])?;
        w.put(&U32::new(self.label))?;
        w.list(self.acl, 0)?;
        w.list(self.sgl, self.map_vmid)?;
        w.list(self.attrs, 0)?;
        Ok(w.finish())
    }
}

/// MEM_QCOM_LOOKUP_SGL request (§3.6). Lists as in [`MemCreate`]; at least
/// 20 bytes (the RM's fixed part, assumed equal to create's).
///
/// | Offset | Size | Field |
/// |---|---|---|
/// | 0 | 1 | mem_type |
/// | 1 | 3 | reserved |
/// | 4 | 4 | label |
/// | 8 | … | ACL list, SGL list, optional attr list |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MemLookupSgl<'a> {
    /// [`mem_type`].
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::mem_type"))]
    pub mem_type: u8,
    /// Label.
    pub label: u32,
    /// ACL.
    pub acl: &'a [AclEntry],
    /// SGL.
    pub sgl: &'a [SglEntry],
    /// Attributes.
    pub attrs: &'a [AttrEntry],
}

impl<'a> MemLookupSgl<'a> {
    /// Minimum size.
    pub const MIN_SIZE: usize = 20;

    /// Decode untrusted bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.require_len(Self::MIN_SIZE, "lookup request shorter than 20 bytes")?;
        let mem_type = r.read::<u8>("mem_type")?;
        let _ = r.bytes(3, "reserved")?;
        let label = r.read::<U32>("label")?.get();
        let acl = r.list("ACL list")?.entries;
        let sgl = r.list("SGL list")?.entries;
        let attrs = r.list("attr list")?.entries;
        r.finish()?;
        Ok(MemLookupSgl {
            mem_type,
            label,
            acl,
            sgl,
            attrs,
        })
    }
}

impl Encode for MemLookupSgl<'_> {
    fn encoded_len(&self) -> usize {
        8 + list_len::<AclEntry>(self.acl.len())
            + list_len::<SglEntry>(self.sgl.len())
            + list_len::<AttrEntry>(self.attrs.len())
    }

    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.bytes(&[self.mem_type, 0, 0, 0])?;
        w.put(&U32::new(self.label))?;
        w.list(self.acl, 0)?;
        w.list(self.sgl, 0)?;
        w.list(self.attrs, 0)?;
        Ok(w.finish())
    }
}

/// MEM_ACCEPT reply data when the request had no SGL entries (§3.5).
///
/// | Offset (after err) | Size | Field |
/// |---|---|---|
/// | 0 | 2 | sgl_count |
/// | 2 | 1 | flags ([`accept_reply_flags`]) |
/// | 3 | 1 | reserved |
/// | 4 | 16·n | SGL entries (acceptor IPAs) |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MemAcceptReply<'a> {
    /// Reply flags.
    pub flags: u8,
    /// Where each region was (or will be) mapped.
    pub sgl: &'a [SglEntry],
}

impl<'a> MemAcceptReply<'a> {
    /// Decode untrusted bytes (the reply data after the error code).
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.require_len(4, "accept reply shorter than 4 bytes")?;
        let list = r.list::<SglEntry>("SGL list")?;
        r.finish()?;
        Ok(MemAcceptReply {
            flags: list.aux as u8,
            sgl: list.entries,
        })
    }
}

impl Encode for MemAcceptReply<'_> {
    fn encoded_len(&self) -> usize {
        list_len::<SglEntry>(self.sgl.len())
    }

    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.list(self.sgl, self.flags as u16)?;
        Ok(w.finish())
    }
}

/// MEM_SHARED notification (§3.7).
///
/// | Offset | Size | Field |
/// |---|---|---|
/// | 0 | 4 | mem_handle |
/// | 4 | 1 | mem_type |
/// | 5 | 1 | trans_type |
/// | 6 | 1 | flags (1 = sanitized at create) |
/// | 7 | 1 | reserved |
/// | 8 | 2 | owner_vmid |
/// | 10 | 2 | reserved |
/// | 12 | 4 | label |
/// | 16 | 4 | mem_info_tag |
/// | 20 | 4+4n | ACL list |
/// | 24+4n | 4+8r | region sizes (u64 each, no addresses) |
/// | … | 4+4k | attr list |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MemShared<'a> {
    /// Memparcel handle.
    #[cfg_attr(feature = "serde", serde(rename = "mem_handle"))]
    pub handle: u32,
    /// [`mem_type`].
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::mem_type"))]
    pub mem_type: u8,
    /// [`trans_type`].
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::trans_type"))]
    pub trans_type: u8,
    /// 1 if sanitized at create.
    pub flags: u8,
    /// Owner.
    pub owner_vmid: u16,
    /// Label.
    pub label: u32,
    /// Tag from MEM_NOTIFY.
    pub mem_info_tag: u32,
    /// ACL.
    pub acl: &'a [AclEntry],
    /// Region sizes.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::wire"))]
    pub region_sizes: &'a [U64],
    /// Attributes.
    pub attrs: &'a [AttrEntry],
}

impl<'a> MemShared<'a> {
    /// Size of the fixed part.
    pub const FIXED_SIZE: usize = 20;

    /// Decode untrusted bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.require_len(Self::FIXED_SIZE, "MEM_SHARED shorter than 20 bytes")?;
        let handle = r.read::<U32>("mem_handle")?.get();
        let mem_type = r.read::<u8>("mem_type")?;
        let trans_type = r.read::<u8>("trans_type")?;
        let flags = r.read::<u8>("flags")?;
        let _ = r.read::<u8>("reserved")?;
        let owner_vmid = r.read::<U16>("owner_vmid")?.get();
        let _ = r.read::<U16>("reserved")?;
        let label = r.read::<U32>("label")?.get();
        let mem_info_tag = r.read::<U32>("mem_info_tag")?.get();
        let acl = r.list("ACL list")?.entries;
        let region_sizes = r.list("region size list")?.entries;
        let attrs = r.list("attr list")?.entries;
        r.finish()?;
        Ok(MemShared {
            handle,
            mem_type,
            trans_type,
            flags,
            owner_vmid,
            label,
            mem_info_tag,
            acl,
            region_sizes,
            attrs,
        })
    }
}

impl Encode for MemShared<'_> {
    fn encoded_len(&self) -> usize {
        Self::FIXED_SIZE
            + list_len::<AclEntry>(self.acl.len())
            + list_len::<U64>(self.region_sizes.len())
            + list_len::<AttrEntry>(self.attrs.len())
    }

    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.put(&U32::new(self.handle))?;
        w.bytes(&[self.mem_type, self.trans_type, self.flags, 0])?;
        w.put(&U16::new(self.owner_vmid))?;
        w.put(&U16::new(0))?;
        w.put(&U32::new(self.label))?;
        w.put(&U32::new(self.mem_info_tag))?;
        w.list(self.acl, 0)?;
        w.list(self.region_sizes, 0)?;
        w.list(self.attrs, 0)?;
        Ok(w.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RmError;
    use std::vec::Vec;

    /// MEM_LEND from the §3.1 table: NORMAL, SANITIZE, label 0x11223344,
    /// ACL {vmid 0x80, RWX}, SGL {0x4000_0000, 0x20_0000}, attr header 0.
    const LEND_BYTES: [u8; 40] = [
        0x00, 0x00, 0x01, 0x00, // mem_type, res, flags, res
        0x44, 0x33, 0x22, 0x11, // label
        0x01, 0x00, 0x00, 0x00, // acl count 1
        0x80, 0x00, 0x07, 0x00, // vmid 0x80, RWX
        0x01, 0x00, 0x00, 0x00, // sgl count 1
        0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, // ipa
        0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, // size
        0x00, 0x00, 0x00, 0x00, // attr count 0
    ];

    #[test]
    fn create_from_hand_bytes() {
        let c = MemCreate::decode(&LEND_BYTES).unwrap();
        assert_eq!(c.mem_type, mem_type::NORMAL);
        assert_eq!(c.flags, create_flags::SANITIZE);
        assert_eq!(c.label, 0x1122_3344);
        assert_eq!(c.acl, &[AclEntry::new(0x80, rights::RWX)]);
        assert_eq!(c.sgl, &[SglEntry::new(0x4000_0000, 0x20_0000)]);
        assert!(c.attrs.is_empty());
        // Attr list omitted: still valid.
        let c2 = MemCreate::decode(&LEND_BYTES[..36]).unwrap();
        assert_eq!(c2.sgl, c.sgl);
        // Our encoder writes the same bytes.
        let mut out = [0u8; 64];
        let n = c.encode(&mut out).unwrap();
        assert_eq!(&out[..n], &LEND_BYTES[..]);
        assert_eq!(c.encoded_len(), 40);
    }

    #[test]
    fn create_errors() {
        // Shorter than 20 bytes.
        let e = MemCreate::decode(&LEND_BYTES[..16]).unwrap_err();
        assert_eq!((e.error, e.offset), (RmError::MsgInvalid, 16));
        // Trailing byte.
        let mut v = LEND_BYTES.to_vec();
        v.push(0);
        let e = MemCreate::decode(&v).unwrap_err();
        assert_eq!((e.error, e.offset), (RmError::MsgInvalid, 40));
        // SGL overruns: count 2 with one entry.
        let mut v = LEND_BYTES.to_vec();
        v[16] = 2;
        let e = MemCreate::decode(&v).unwrap_err();
        assert_eq!((e.error, e.offset), (RmError::MsgInvalid, 20));
        // ACL count 513 → NORESOURCE at offset 8.
        let mut v = LEND_BYTES.to_vec();
        v[8] = 0x01;
        v[9] = 0x02;
        let e = MemCreate::decode(&v).unwrap_err();
        assert_eq!((e.error, e.offset), (RmError::NoResource, 8));
        // Truncated attr header (2 bytes).
        let e = MemCreate::decode(&LEND_BYTES[..38]).unwrap_err();
        assert_eq!((e.error, e.offset), (RmError::MsgInvalid, 36));
    }

    #[test]
    fn accept_map_vmid_position() {
        // §3.5: handle 5, NORMAL, LEND, flags DONE|VALIDATE_ACL_ATTR, label 0,
        // ACL {3, RW}, SGL count 0 with map_vmid 0x0042, attr list omitted.
        let b = [
            5, 0, 0, 0, 0, 1, 0x82, 0, 0, 0, 0, 0, // fixed
            1, 0, 0, 0, 3, 0, 6, 0, // acl
            0, 0, 0x42, 0, // sgl header: count 0, map_vmid
        ];
        let a = MemAccept::decode(&b).unwrap();
        assert_eq!(a.handle, 5);
        assert_eq!(a.trans_type, trans_type::LEND);
        assert_eq!(
            a.flags,
            accept_flags::DONE | accept_flags::VALIDATE_ACL_ATTR
        );
        assert_eq!(a.acl, &[AclEntry::new(3, rights::RW)]);
        assert_eq!(a.map_vmid, 0x42);
        assert!(a.sgl.is_empty() && a.attrs.is_empty());
        // 20 bytes is below the RM minimum of 24.
        assert_eq!(
            MemAccept::decode(&b[..20]).unwrap_err().error,
            RmError::MsgInvalid
        );
    }

    #[test]
    fn accept_reply_by_hand() {
        // count 1, flags INCOMPLETE, {0x8000_0000, 0x1000}.
        let b = [
            1, 0, 1, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0,
        ];
        let r = MemAcceptReply::decode(&b).unwrap();
        assert_eq!(r.flags, accept_reply_flags::INCOMPLETE);
        assert_eq!(r.sgl, &[SglEntry::new(0x8000_0000, 0x1000)]);
    }

    #[test]
    fn notify_and_small_messages() {
        // MEM_NOTIFY SHARED handle 1, tag 0xAB, VMIDs {0x80}.
        let b = [
            1, 0, 0, 0, 1, 0, 0, 0, 0xAB, 0, 0, 0, 1, 0, 0, 0, 0x80, 0, 0, 0,
        ];
        let n = MemNotify::decode(&b).unwrap();
        assert_eq!(n.flags, notify_flags::SHARED);
        assert_eq!(n.mem_info_tag, 0xAB);
        assert_eq!(n.vmids, &[VmidEntry::new(0x80)]);
        // RELEASED without a list.
        let n = MemNotify::decode(&[1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert!(n.vmids.is_empty());
        // MEM_RELEASE handle 0x10, SANITIZE.
        let r = MemReleaseReq::decode(&[0x10, 0, 0, 0, 1, 0, 0, 0]).unwrap();
        assert_eq!((r.handle.get(), r.flags), (0x10, release_flags::SANITIZE));
        assert_eq!(
            MemReleaseReq::decode(&[0x10, 0, 0, 0, 1, 0, 0])
                .unwrap_err()
                .offset,
            7
        );
        // MEM_ACCEPTED: handle 2, vmid 0x81, tag 7.
        let a = MemOwnerNotif::decode(&[2, 0, 0, 0, 0x81, 0, 0, 0, 7, 0, 0, 0]).unwrap();
        assert_eq!(a, MemOwnerNotif::new(2, 0x81, 7));
    }

    #[test]
    fn mem_shared_by_hand() {
        let mut b: Vec<u8> = std::vec![
            9, 0, 0, 0, 0, 2, 1, 0, // handle 9, NORMAL, SHARE, sanitized
            3, 0, 0, 0, // owner 3
            0x78, 0x56, 0x34, 0x12, // label
            0xEF, 0xBE, 0, 0, // tag 0xBEEF
            2, 0, 0, 0, 3, 0, 7, 0, 0x80, 0, 4, 0, // ACL {3 RWX}, {0x80 R}
            1, 0, 0, 0, // one region
        ];
        b.extend_from_slice(&0x20_0000u64.to_le_bytes());
        let s = MemShared::decode(&b).unwrap();
        assert_eq!(s.owner_vmid, 3);
        assert_eq!(s.label, 0x1234_5678);
        assert_eq!(s.acl[1], AclEntry::new(0x80, rights::R));
        assert_eq!(s.region_sizes[0].get(), 0x20_0000);
        assert!(s.attrs.is_empty());
    }
}
