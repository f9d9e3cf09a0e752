//! The gmem / golden / copy-on-write extension: message family 0x47 ('G').
//!
//! Requests are 0x470000xx, notifications 0x471000xx. Header, fragmentation,
//! list encoding (`u16 count, u16 reserved, entries`, 4-byte aligned) and
//! error codes are those of the rest of the protocol. All fields are
//! little-endian at naturally aligned offsets; reserved fields are written as
//! 0 and must be 0 where marked "must be 0" (the RM answers
//! `ARGUMENT_INVALID` otherwise). Addresses and sizes are in bytes and must be
//! 4 KiB aligned unless stated; a "gfn" is `ipa >> 12`. Fixed-size requests
//! must have exactly the size given (`MSG_INVALID` otherwise). These layouts
//! are stable.
//!
//! | ID | Name | Request | Reply data (after `u32 err`, on OK) |
//! |---|---|---|---|
//! | 0x47000001 | GMEM_CREATE | [`GmemCreateReq`] (16) | [`IdReply`] gmem id (4) |
//! | 0x47000002 | GMEM_BIND | [`GmemBindReq`] (32) | [`IdReply`] binding handle (4) |
//! | 0x47000003 | GMEM_UNBIND | [`GmemUnbindReq`] (24) | – |
//! | 0x47000010 | GOLDEN_SEAL | [`GoldenSealReq`] (8) | [`GoldenSealReply`] (40) |
//! | 0x47000011 | GOLDEN_MAP | [`GoldenMapReq`] (40) | – |
//! | 0x47000012 | GOLDEN_UNMAP | [`GoldenUnmapReq`] (24) | – |
//! | 0x47000013 | GOLDEN_RELEASE | [`GoldenReleaseReq`] (8) | – |
//! | 0x47000020 | VM_MEM_STATS | [`VmidReq`](crate::vm::VmidReq) (4) | [`VmMemStatsReply`] (32) |
//! | 0x470000F0 | SIM_VM_READ | [`SimVmReadReq`] (16) | `length` bytes; on MEM_INVALID: `u64 ipa` |
//! | 0x470000F1 | SIM_VM_WRITE | [`SimVmWrite`] (16 + length) | [`IdReply`] faults_served (4); on MEM_INVALID: `u64 ipa` |
//! | 0x47100001 | COW_BROKEN (notification) | [`CowBroken`] (8 + 8n) | |
//! | 0x47100002 | QUOTA_EXHAUSTED (notification) | [`QuotaExhausted`] (24) | |
//! | 0x47100003 | FAULT_UNSERVED (notification) | [`FaultUnserved`] (16) | |
//!
//! ### GMEM_CREATE request (16 bytes)
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 8 | size: pool size in bytes = the quota (page aligned, > 0) |
//! | 8 | 4 | flags (none defined yet; must be 0) |
//! | 12 | 2 | owner_vmid: VM charged for the pool (0 = the caller) |
//! | 14 | 2 | reserved (must be 0) |
//!
//! Reply: `u32 gmem_id`.
//!
//! ### GMEM_BIND request (32 bytes)
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 4 | gmem_id |
//! | 4 | 2 | vmid the range is bound into |
//! | 6 | 1 | perms: R 0x4, W 0x2, X 0x1 (as ACL rights) |
//! | 7 | 1 | flags: DEMAND_PAGED 0x1 (populate on first touch instead of now) |
//! | 8 | 8 | offset into the gmem pool |
//! | 16 | 8 | ipa (gfn << 12) in the VM |
//! | 24 | 8 | size |
//!
//! Reply: `u32` handle of the binding. Binding handles are numbered from
//! 0x47420000 up, disjoint from memparcel handles; a binding is not a
//! memparcel (MEM_* requests do not accept its handle). GMEM_UNBIND names
//! the binding by gmem id, VM and range.
//!
//! ### GMEM_UNBIND request (24 bytes)
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 4 | gmem_id |
//! | 4 | 2 | vmid |
//! | 6 | 2 | reserved (must be 0) |
//! | 8 | 8 | ipa |
//! | 16 | 8 | size |
//!
//! ### GOLDEN_SEAL request (8 bytes)
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 4 | mem_handle of the parcel to seal |
//! | 4 | 4 | flags (none defined yet; must be 0) |
//!
//! Reply (40 bytes): +0 `u32 golden_id`, +4 `u32` reserved, +8 `u8[32]`
//! SHA-256 digest of the parcel's contents in SGL order.
//!
//! ### GOLDEN_MAP request (40 bytes)
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 4 | golden_id |
//! | 4 | 2 | vmid |
//! | 6 | 2 | flags: COW 0x1 (writes make private copies), EXEC 0x2 (map executable) |
//! | 8 | 8 | offset into the golden image |
//! | 16 | 8 | ipa (gfn << 12) in the VM |
//! | 24 | 8 | size |
//! | 32 | 4 | gmem_id that pays for copies ([`NO_GMEM`] = none; required with COW) |
//! | 36 | 4 | reserved (must be 0) |
//!
//! ### GOLDEN_UNMAP request (24 bytes)
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 4 | golden_id |
//! | 4 | 2 | vmid |
//! | 6 | 2 | reserved (must be 0) |
//! | 8 | 8 | ipa |
//! | 16 | 8 | size |
//!
//! ### GOLDEN_RELEASE request (8 bytes)
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 4 | golden_id |
//! | 4 | 4 | reserved (must be 0) |
//!
//! ### VM_MEM_STATS
//! Request (4 bytes): +0 `u16 vmid` (0 = the caller), +2 `u16` reserved.
//! Reply (32 bytes), all counts in 4 KiB pages:
//!
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 8 | private_pages (gmem pages mapped into the VM) |
//! | 8 | 8 | golden_mapped_pages (golden pages mapped read-only) |
//! | 16 | 8 | cow_copied_pages (private copies made by CoW) |
//! | 24 | 8 | quota_pages (limit of the gmem paying for the VM) |
//!
//! ### SIM_VM_READ request (16 bytes, simulator only)
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 2 | vmid |
//! | 2 | 2 | reserved |
//! | 4 | 4 | length: 1..=14612 ([`SIM_MAX_READ`], so that the reply fits); otherwise ARGUMENT_INVALID |
//! | 8 | 8 | ipa (any alignment) |
//!
//! Reply: on OK `length` bytes; on MEM_INVALID `u64 ipa` of the page that
//! faulted. Other errors: VMID_INVALID, ARGUMENT_INVALID (length 0 or the
//! range wraps).
//!
//! ### SIM_VM_WRITE request (16 + length bytes, simulator only)
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 2 | vmid |
//! | 2 | 2 | reserved |
//! | 4 | 4 | length (must equal the number of bytes that follow) |
//! | 8 | 8 | ipa |
//! | 16 | length | data |
//!
//! Reply: on OK `u32 faults_served` (CoW copies and demand-paged pages made
//! by this access); on MEM_INVALID `u64 ipa` of the page that faulted (bytes
//! before it may have been written).
//!
//! ### COW_BROKEN notification (8 + 8n bytes), batched per VM
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 2 | vmid whose pages were copied |
//! | 2 | 2 | reserved |
//! | 4 | 2 | count n (≤ 512) |
//! | 6 | 2 | reserved |
//! | 8 | 8n | `u64 ipa` of each copied page |
//!
//! ### QUOTA_EXHAUSTED notification (24 bytes)
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 2 | vmid whose fault was not served |
//! | 2 | 2 | reserved |
//! | 4 | 4 | gmem_id whose quota is exhausted |
//! | 8 | 8 | ipa of the faulting page |
//! | 16 | 8 | quota_pages of that gmem |
//!
//! ### FAULT_UNSERVED notification (16 bytes)
//! Sent to the VM's manager (the VM that allocated it) for every stage-2 fault
//! of the VM that the RM does not serve. A quota fault also sends
//! QUOTA_EXHAUSTED (which names the pool) before it.
//!
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 2 | vmid whose fault was not served |
//! | 2 | 1 | why ([`fault_why`]): 1 write to a read-only golden mapping (no CoW), 2 unmapped IPA, 3 access not permitted by the mapping, 4 quota exhausted, 5 out of memory |
//! | 3 | 1 | action ([`fault_action`]): 1 synchronous external abort injected, 2 VM stopped |
//! | 4 | 4 | reserved (0) |
//! | 8 | 8 | ipa of the faulting page |

use zerocopy::little_endian::{U16, U32, U64};

use crate::wire::{
    fixed_payload, list_len, wire_struct, DecodeError, Encode, EncodeError, Reader, Writer,
};

/// FAULT_UNSERVED `why` values.
pub mod fault_why {
    crate::names::named_values! { u8;
        /// A write to a golden mapping without copy-on-write.
        NO_COW = 1,
        /// The IPA is in no mapping of the VM.
        UNMAPPED = 2,
        /// The mapping does not permit the access (e.g. a write to a read-only
        /// binding, an instruction fetch from a non-executable golden mapping).
        NOT_PERMITTED = 3,
        /// The paying pool's (or the mapping's) copy quota is used up.
        QUOTA_EXHAUSTED = 4,
        /// The partition has no free page.
        NO_MEMORY = 5,
    }
}

/// FAULT_UNSERVED `action` values.
pub mod fault_action {
    crate::names::named_values! { u8;
        /// A synchronous external abort was injected into the vCPU.
        ABORT_INJECTED = 1,
        /// The VM was stopped (EXITED).
        VM_STOPPED = 2,
    }
}

/// GMEM_BIND flags.
pub mod bind_flags {
    /// Populate on first touch (translation fault) instead of at bind.
    pub const DEMAND_PAGED: u8 = 0x1;
}

/// GOLDEN_MAP flags.
pub mod map_flags {
    /// Writes make a private copy (copy-on-write) instead of aborting.
    pub const COW: u16 = 0x1;
    /// Map executable.
    pub const EXEC: u16 = 0x2;
}

/// "No gmem" in GOLDEN_MAP's gmem_id.
pub const NO_GMEM: u32 = 0xFFFF_FFFF;
/// Size of a SHA-256 digest.
pub const DIGEST_SIZE: usize = 32;
/// Largest SIM_VM_READ length whose reply fits in one logical message.
pub const SIM_MAX_READ: u32 = (crate::header::MAX_MESSAGE_PAYLOAD - 4) as u32;

wire_struct! {
    /// GMEM_CREATE request (16 bytes); see the module table.
    pub struct GmemCreateReq {
        /// +0 pool size (quota) in bytes.
        pub size: U64,
        /// +8 flags (must be 0).
        pub flags: U32,
        /// +12 owner VMID (0 = caller).
        pub owner_vmid: U16,
        /// +14 reserved.
        pub reserved: U16,
    }
}

impl GmemCreateReq {
    /// A GMEM_CREATE request.
    pub fn new(size: u64, flags: u32, owner_vmid: u16) -> Self {
        GmemCreateReq {
            size: U64::new(size),
            flags: U32::new(flags),
            owner_vmid: U16::new(owner_vmid),
            reserved: U16::new(0),
        }
    }
}

wire_struct! {
    /// A `u32` reply: gmem id (GMEM_CREATE), binding handle (GMEM_BIND),
    /// faults_served (SIM_VM_WRITE).
    pub struct IdReply {
        /// +0 value.
        pub id: U32,
    }
}

impl IdReply {
    /// A reply word.
    pub fn new(id: u32) -> Self {
        IdReply { id: U32::new(id) }
    }
}

wire_struct! {
    /// GMEM_BIND request (32 bytes).
    pub struct GmemBindReq {
        /// +0 gmem id.
        pub gmem_id: U32,
        /// +4 VMID.
        pub vmid: U16,
        /// +6 permissions (R 4, W 2, X 1).
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::rights"))]
        pub perms: u8,
        /// +7 flags ([`bind_flags`]).
        pub flags: u8,
        /// +8 offset into the pool.
        pub offset: U64,
        /// +16 IPA in the VM.
        pub ipa: U64,
        /// +24 size.
        pub size: U64,
    }
}

impl GmemBindReq {
    /// A GMEM_BIND request.
    pub fn new(
        gmem_id: u32,
        vmid: u16,
        perms: u8,
        flags: u8,
        offset: u64,
        ipa: u64,
        size: u64,
    ) -> Self {
        GmemBindReq {
            gmem_id: U32::new(gmem_id),
            vmid: U16::new(vmid),
            perms,
            flags,
            offset: U64::new(offset),
            ipa: U64::new(ipa),
            size: U64::new(size),
        }
    }
}

wire_struct! {
    /// GMEM_UNBIND request (24 bytes).
    pub struct GmemUnbindReq {
        /// +0 gmem id.
        pub gmem_id: U32,
        /// +4 VMID.
        pub vmid: U16,
        /// +6 reserved.
        pub reserved: U16,
        /// +8 IPA.
        pub ipa: U64,
        /// +16 size.
        pub size: U64,
    }
}

impl GmemUnbindReq {
    /// A GMEM_UNBIND request.
    pub fn new(gmem_id: u32, vmid: u16, ipa: u64, size: u64) -> Self {
        GmemUnbindReq {
            gmem_id: U32::new(gmem_id),
            vmid: U16::new(vmid),
            reserved: U16::new(0),
            ipa: U64::new(ipa),
            size: U64::new(size),
        }
    }
}

wire_struct! {
    /// GOLDEN_SEAL request (8 bytes).
    pub struct GoldenSealReq {
        /// +0 memparcel handle.
        pub mem_handle: U32,
        /// +4 flags (must be 0).
        pub flags: U32,
    }
}

impl GoldenSealReq {
    /// A GOLDEN_SEAL request.
    pub fn new(mem_handle: u32) -> Self {
        GoldenSealReq {
            mem_handle: U32::new(mem_handle),
            flags: U32::new(0),
        }
    }
}

wire_struct! {
    /// GOLDEN_SEAL reply data (40 bytes).
    pub struct GoldenSealReply {
        /// +0 golden id.
        pub golden_id: U32,
        /// +4 reserved.
        pub reserved: U32,
        /// +8 SHA-256 digest of the contents.
        pub digest: [u8; 32],
    }
}

impl GoldenSealReply {
    /// A GOLDEN_SEAL reply.
    pub fn new(golden_id: u32, digest: [u8; DIGEST_SIZE]) -> Self {
        GoldenSealReply {
            golden_id: U32::new(golden_id),
            reserved: U32::new(0),
            digest,
        }
    }
}

wire_struct! {
    /// GOLDEN_MAP request (40 bytes).
    pub struct GoldenMapReq {
        /// +0 golden id.
        pub golden_id: U32,
        /// +4 VMID.
        pub vmid: U16,
        /// +6 flags ([`map_flags`]).
        pub flags: U16,
        /// +8 offset into the golden image.
        pub offset: U64,
        /// +16 IPA in the VM.
        pub ipa: U64,
        /// +24 size.
        pub size: U64,
        /// +32 gmem paying for copies ([`NO_GMEM`] = none).
        pub gmem_id: U32,
        /// +36 reserved.
        pub reserved: U32,
    }
}

impl GoldenMapReq {
    /// A GOLDEN_MAP request.
    pub fn new(
        golden_id: u32,
        vmid: u16,
        flags: u16,
        offset: u64,
        ipa: u64,
        size: u64,
        gmem_id: u32,
    ) -> Self {
        GoldenMapReq {
            golden_id: U32::new(golden_id),
            vmid: U16::new(vmid),
            flags: U16::new(flags),
            offset: U64::new(offset),
            ipa: U64::new(ipa),
            size: U64::new(size),
            gmem_id: U32::new(gmem_id),
            reserved: U32::new(0),
        }
    }
}

wire_struct! {
    /// GOLDEN_UNMAP request (24 bytes).
    pub struct GoldenUnmapReq {
        /// +0 golden id.
        pub golden_id: U32,
        /// +4 VMID.
        pub vmid: U16,
        /// +6 reserved.
        pub reserved: U16,
        /// +8 IPA.
        pub ipa: U64,
        /// +16 size.
        pub size: U64,
    }
}

impl GoldenUnmapReq {
    /// A GOLDEN_UNMAP request.
    pub fn new(golden_id: u32, vmid: u16, ipa: u64, size: u64) -> Self {
        GoldenUnmapReq {
            golden_id: U32::new(golden_id),
            vmid: U16::new(vmid),
            reserved: U16::new(0),
            ipa: U64::new(ipa),
            size: U64::new(size),
        }
    }
}

wire_struct! {
    /// GOLDEN_RELEASE request (8 bytes).
    pub struct GoldenReleaseReq {
        /// +0 golden id.
        pub golden_id: U32,
        /// +4 reserved.
        pub reserved: U32,
    }
}

impl GoldenReleaseReq {
    /// A GOLDEN_RELEASE request.
    pub fn new(golden_id: u32) -> Self {
        GoldenReleaseReq {
            golden_id: U32::new(golden_id),
            reserved: U32::new(0),
        }
    }
}

wire_struct! {
    /// VM_MEM_STATS reply data (32 bytes, counts in 4 KiB pages).
    pub struct VmMemStatsReply {
        /// +0 private gmem pages mapped.
        pub private_pages: U64,
        /// +8 golden pages mapped read-only.
        pub golden_mapped_pages: U64,
        /// +16 CoW copies.
        pub cow_copied_pages: U64,
        /// +24 quota.
        pub quota_pages: U64,
    }
}

impl VmMemStatsReply {
    /// A VM_MEM_STATS reply.
    pub fn new(private: u64, golden_mapped: u64, cow_copied: u64, quota: u64) -> Self {
        VmMemStatsReply {
            private_pages: U64::new(private),
            golden_mapped_pages: U64::new(golden_mapped),
            cow_copied_pages: U64::new(cow_copied),
            quota_pages: U64::new(quota),
        }
    }
}

wire_struct! {
    /// QUOTA_EXHAUSTED notification (24 bytes).
    pub struct QuotaExhausted {
        /// +0 VMID.
        pub vmid: U16,
        /// +2 reserved.
        pub reserved: U16,
        /// +4 gmem id.
        pub gmem_id: U32,
        /// +8 faulting IPA.
        pub ipa: U64,
        /// +16 quota in pages.
        pub quota_pages: U64,
    }
}

impl QuotaExhausted {
    /// A QUOTA_EXHAUSTED payload.
    pub fn new(vmid: u16, gmem_id: u32, ipa: u64, quota_pages: u64) -> Self {
        QuotaExhausted {
            vmid: U16::new(vmid),
            reserved: U16::new(0),
            gmem_id: U32::new(gmem_id),
            ipa: U64::new(ipa),
            quota_pages: U64::new(quota_pages),
        }
    }
}

wire_struct! {
    /// FAULT_UNSERVED notification (16 bytes).
    pub struct FaultUnserved {
        /// +0 VMID.
        pub vmid: U16,
        /// +2 why ([`fault_why`]).
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::fault_why"))]
        pub why: u8,
        /// +3 action ([`fault_action`]).
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::fault_action"))]
        pub action: u8,
        /// +4 reserved.
        pub reserved: U32,
        /// +8 faulting IPA (page).
        pub ipa: U64,
    }
}

impl FaultUnserved {
    /// A FAULT_UNSERVED payload.
    pub fn new(vmid: u16, why: u8, action: u8, ipa: u64) -> Self {
        FaultUnserved {
            vmid: U16::new(vmid),
            why,
            action,
            reserved: U32::new(0),
            ipa: U64::new(ipa),
        }
    }
}

wire_struct! {
    /// SIM_VM_READ request (16 bytes).
    pub struct SimVmReadReq {
        /// +0 VMID.
        pub vmid: U16,
        /// +2 reserved.
        pub reserved: U16,
        /// +4 length.
        pub length: U32,
        /// +8 IPA.
        pub ipa: U64,
    }
}

impl SimVmReadReq {
    /// A SIM_VM_READ request.
    pub fn new(vmid: u16, length: u32, ipa: u64) -> Self {
        SimVmReadReq {
            vmid: U16::new(vmid),
            reserved: U16::new(0),
            length: U32::new(length),
            ipa: U64::new(ipa),
        }
    }
}

wire_struct! {
    /// The `u64 ipa` a SIM_VM_READ/WRITE reply carries after MEM_INVALID.
    pub struct FaultIpa {
        /// +0 IPA of the page that faulted.
        pub ipa: U64,
    }
}

impl FaultIpa {
    /// A fault-IPA reply.
    pub fn new(ipa: u64) -> Self {
        FaultIpa { ipa: U64::new(ipa) }
    }
}

/// `ARGUMENT_INVALID` unless the reserved field at `offset` of message `what` is 0.
fn reserved(value: u64, offset: usize, what: &'static str) -> Result<(), DecodeError> {
    if value == 0 {
        Ok(())
    } else {
        Err(DecodeError::argument(offset, what).because("reserved field is not 0"))
    }
}

/// `ARGUMENT_INVALID` if `flags` (at `offset` of message `what`) has a bit `known` lacks.
fn flags_known(
    flags: u64,
    known: u64,
    offset: usize,
    what: &'static str,
) -> Result<(), DecodeError> {
    if flags & !known == 0 {
        Ok(())
    } else {
        Err(DecodeError::argument(offset, what).because("unknown flag"))
    }
}

fn check_gmem_create(q: &GmemCreateReq) -> Result<(), DecodeError> {
    reserved(q.reserved.get().into(), 14, "GmemCreateReq")
}

fn check_gmem_bind(q: &GmemBindReq) -> Result<(), DecodeError> {
    flags_known(
        q.flags.into(),
        bind_flags::DEMAND_PAGED.into(),
        7,
        "GmemBindReq",
    )
}

fn check_gmem_unbind(q: &GmemUnbindReq) -> Result<(), DecodeError> {
    reserved(q.reserved.get().into(), 6, "GmemUnbindReq")
}

fn check_golden_map(q: &GoldenMapReq) -> Result<(), DecodeError> {
    flags_known(
        q.flags.get().into(),
        (map_flags::COW | map_flags::EXEC).into(),
        6,
        "GoldenMapReq",
    )?;
    reserved(q.reserved.get().into(), 36, "GoldenMapReq")
}

fn check_golden_unmap(q: &GoldenUnmapReq) -> Result<(), DecodeError> {
    reserved(q.reserved.get().into(), 6, "GoldenUnmapReq")
}

fn check_golden_release(q: &GoldenReleaseReq) -> Result<(), DecodeError> {
    reserved(q.reserved.get().into(), 4, "GoldenReleaseReq")
}

fn check_sim_read(q: &SimVmReadReq) -> Result<(), DecodeError> {
    reserved(q.reserved.get().into(), 2, "SimVmReadReq")
}

fixed_payload!(
    GmemCreateReq: check_gmem_create,
    IdReply,
    GmemBindReq: check_gmem_bind,
    GmemUnbindReq: check_gmem_unbind,
    GoldenSealReq,
    GoldenSealReply,
    GoldenMapReq: check_golden_map,
    GoldenUnmapReq: check_golden_unmap,
    GoldenReleaseReq: check_golden_release,
    VmMemStatsReply,
    QuotaExhausted,
    FaultUnserved,
    SimVmReadReq: check_sim_read,
    FaultIpa,
);

/// SIM_VM_WRITE request: +0 u16 vmid, +2 u16 reserved, +4 u32 length, +8
/// u64 ipa, +16 `length` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SimVmWrite<'a> {
    /// VMID.
    pub vmid: u16,
    /// IPA.
    pub ipa: u64,
    /// The bytes to write.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::wire"))]
    pub data: &'a [u8],
}

impl<'a> SimVmWrite<'a> {
    /// Decode untrusted bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let vmid = r.read::<U16>("vmid")?.get();
        reserved(r.read::<U16>("reserved")?.get().into(), 2, "SimVmWrite")?;
        let len = r.read::<U32>("length")?.get() as usize;
        let ipa = r.read::<U64>("ipa")?.get();
        let data = r.bytes(len, "data (length)")?;
        r.finish()?;
        Ok(SimVmWrite { vmid, ipa, data })
    }
}

impl Encode for SimVmWrite<'_> {
    fn encoded_len(&self) -> usize {
        16 + self.data.len()
    }

    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.put(&U16::new(self.vmid))?;
        w.put(&U16::new(0))?;
        w.put(&U32::new(self.data.len() as u32))?;
        w.put(&U64::new(self.ipa))?;
        w.bytes(self.data)?;
        Ok(w.finish())
    }
}

/// COW_BROKEN notification: +0 u16 vmid, +2 u16 reserved, +4 list of
/// `u64 ipa` (u16 count ≤ 512, u16 reserved, entries at +8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CowBroken<'a> {
    /// VMID whose pages were copied.
    pub vmid: u16,
    /// IPAs of the copied pages.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::wire"))]
    pub ipas: &'a [U64],
}

impl<'a> CowBroken<'a> {
    /// Most IPAs in one notification.
    pub const MAX_IPAS: usize = crate::wire::MAX_LIST_ENTRIES;

    /// Decode untrusted bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.require_len(8, "COW_BROKEN shorter than 8 bytes")?;
        let vmid = r.read::<U16>("vmid")?.get();
        let _ = r.read::<U16>("reserved")?;
        let ipas = r.list("IPA list")?.entries;
        r.finish()?;
        Ok(CowBroken { vmid, ipas })
    }
}

impl Encode for CowBroken<'_> {
    fn encoded_len(&self) -> usize {
        4 + list_len::<U64>(self.ipas.len())
    }

    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.put(&U16::new(self.vmid))?;
        w.put(&U16::new(0))?;
        w.list(self.ipas, 0)?;
        Ok(w.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RmError;

    /// Every extension request with a reserved field or flags: the encoding of a valid value
    /// decodes; setting any byte of the reserved field (or an unknown flag bit) gets
    /// ARGUMENT_INVALID naming that offset, before any handler runs.
    #[test]
    fn reserved_fields_and_unknown_flags_are_refused_by_the_decoders() {
        fn refused<T>(
            valid: &[u8],
            (byte, bit, field): (usize, u8, usize),
            decode: fn(&[u8]) -> Result<T, DecodeError>,
        ) {
            assert!(decode(valid).is_ok(), "the valid payload decodes");
            let mut bad = valid.to_vec();
            bad[byte] |= bit;
            let e = decode(&bad).err().expect("refused");
            assert_eq!(e.error, RmError::ArgumentInvalid, "byte {byte}: {e}");
            assert_eq!(e.offset, field, "byte {byte}: {e}");
        }
        use zerocopy::IntoBytes;
        let create = GmemCreateReq::new(4096, 0, 0);
        for b in [14, 15] {
            refused(create.as_bytes(), (b, 1, 14), GmemCreateReq::decode);
        }
        let bind = GmemBindReq::new(1, 0x80, 6, 0, 0, 0x8000_0000, 4096);
        refused(bind.as_bytes(), (7, 0x2, 7), GmemBindReq::decode);
        refused(bind.as_bytes(), (7, 0x80, 7), GmemBindReq::decode);
        let unbind = GmemUnbindReq::new(1, 0x80, 0x8000_0000, 4096);
        for b in [6, 7] {
            refused(unbind.as_bytes(), (b, 1, 6), GmemUnbindReq::decode);
        }
        let map = GoldenMapReq::new(1, 0x80, map_flags::COW, 0, 0x8000_0000, 4096, 1);
        refused(map.as_bytes(), (6, 0x4, 6), GoldenMapReq::decode);
        refused(map.as_bytes(), (7, 0x1, 6), GoldenMapReq::decode);
        for b in 36..40 {
            refused(map.as_bytes(), (b, 1, 36), GoldenMapReq::decode);
        }
        let unmap = GoldenUnmapReq::new(1, 0x80, 0x8000_0000, 4096);
        for b in [6, 7] {
            refused(unmap.as_bytes(), (b, 1, 6), GoldenUnmapReq::decode);
        }
        let release = GoldenReleaseReq::new(1);
        for b in 4..8 {
            refused(release.as_bytes(), (b, 1, 4), GoldenReleaseReq::decode);
        }
        let read = SimVmReadReq::new(3, 16, 0x4000_0000);
        for b in [2, 3] {
            refused(read.as_bytes(), (b, 1, 2), SimVmReadReq::decode);
        }
        let mut write = [0u8; 20];
        SimVmWrite {
            vmid: 3,
            ipa: 0x4000_0000,
            data: &[1, 2, 3, 4],
        }
        .encode(&mut write)
        .unwrap();
        fn sim_write(b: &[u8]) -> Result<(), DecodeError> {
            SimVmWrite::decode(b).map(|_| ())
        }
        for b in [2, 3] {
            refused(&write, (b, 1, 2), sim_write);
        }
    }

    #[test]
    fn golden_map_from_table() {
        let b: [u8; 40] = [
            7, 0, 0, 0, // golden_id 7
            0x80, 0, // vmid
            1, 0, // flags COW
            0, 0, 0x20, 0, 0, 0, 0, 0, // offset 0x200000
            0, 0, 0, 0x80, 0, 0, 0, 0, // ipa 0x80000000
            0, 0, 0x40, 0, 0, 0, 0, 0, // size 0x400000
            2, 0, 0, 0, // gmem 2
            0, 0, 0, 0,
        ];
        let m = GoldenMapReq::decode(&b).unwrap();
        assert_eq!(
            m,
            GoldenMapReq::new(
                7,
                0x80,
                map_flags::COW,
                0x20_0000,
                0x8000_0000,
                0x40_0000,
                2
            )
        );
        assert_eq!(
            GoldenMapReq::decode(&b[..39]).unwrap_err().error,
            RmError::MsgInvalid
        );
    }

    #[test]
    fn seal_reply_and_stats_from_table() {
        let mut b = [0u8; 40];
        b[0] = 3;
        b[8] = 0xE3;
        b[39] = 0x55;
        let r = GoldenSealReply::decode(&b).unwrap();
        assert_eq!(r.golden_id.get(), 3);
        assert_eq!((r.digest[0], r.digest[31]), (0xE3, 0x55));
        let mut s = [0u8; 32];
        s[0] = 1;
        s[8] = 2;
        s[16] = 3;
        s[24] = 4;
        assert_eq!(
            VmMemStatsReply::decode(&s).unwrap(),
            VmMemStatsReply::new(1, 2, 3, 4)
        );
    }

    #[test]
    fn gmem_bind_from_table() {
        let mut b = [0u8; 32];
        b[0] = 1; // gmem 1
        b[4] = 0x81; // vmid
        b[6] = 6; // RW
        b[7] = 1; // demand paged
        b[9] = 0x10; // offset 0x1000
        b[19] = 0x40; // ipa 0x40000000
        b[26] = 0x10; // size 0x100000
        let g = GmemBindReq::decode(&b).unwrap();
        assert_eq!(
            g,
            GmemBindReq::new(
                1,
                0x81,
                6,
                bind_flags::DEMAND_PAGED,
                0x1000,
                0x4000_0000,
                0x10_0000
            )
        );
    }

    #[test]
    fn cow_broken_and_sim_write_by_hand() {
        let mut b = std::vec![0x80, 0, 0, 0, 2, 0, 0, 0];
        b.extend_from_slice(&0x4000_1000u64.to_le_bytes());
        b.extend_from_slice(&0x4000_3000u64.to_le_bytes());
        let c = CowBroken::decode(&b).unwrap();
        assert_eq!(c.vmid, 0x80);
        assert_eq!(c.ipas[1].get(), 0x4000_3000);
        b.truncate(16);
        assert_eq!(CowBroken::decode(&b).unwrap_err().offset, 8);

        let mut w = std::vec![3, 0, 0, 0, 3, 0, 0, 0];
        w.extend_from_slice(&0x4000_0000u64.to_le_bytes());
        w.extend_from_slice(b"abc");
        let s = SimVmWrite::decode(&w).unwrap();
        assert_eq!((s.vmid, s.ipa, s.data), (3, 0x4000_0000, &b"abc"[..]));
        w.push(b'd');
        assert_eq!(SimVmWrite::decode(&w).unwrap_err().offset, 19);
    }
}
