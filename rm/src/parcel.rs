//! Memparcel records (spec §7.2): what a parcel is — its owner, ACL, attributes, regions and
//! acceptances — and the database of them. Part of the model: a parcel is a record about the
//! ranges of its owner and acceptors ([`crate::space`]); the transitions that create, accept,
//! release and reclaim parcels are in [`crate::memparcel`].

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::platform::{MemKind, Rights, Vmid};

// The wire constants (spec §3), under the names the RM's rules use; defined once, in the abi crate.
pub use gunyah_rm_abi::mem::accept_flags::{
    DONE as ACCEPT_DONE, MAP_CONTIGUOUS as ACCEPT_MAP_CONTIGUOUS, MAP_OTHER as ACCEPT_MAP_OTHER,
    SANITIZE as ACCEPT_SANITIZE, VALIDATE_ACL_ATTR as ACCEPT_VALIDATE_ACL_ATTR,
    VALIDATE_LABEL as ACCEPT_VALIDATE_LABEL, VALIDATE_SANITIZED as ACCEPT_VALIDATE_SANITIZED,
};
pub use gunyah_rm_abi::mem::append_flags::DONE as APPEND_DONE;
pub use gunyah_rm_abi::mem::create_flags::{APPEND as CREATE_APPEND, SANITIZE as CREATE_SANITIZE};
pub use gunyah_rm_abi::mem::mem_attr::{DEVICE as ATTR_DEVICE, NORMAL as ATTR_NORMAL};
pub use gunyah_rm_abi::mem::notify_flags::{
    ACCEPTED as NOTIFY_ACCEPTED, RECALL as NOTIFY_RECALL, RELEASED as NOTIFY_RELEASED,
    SHARED as NOTIFY_SHARED,
};
pub use gunyah_rm_abi::mem::release_flags::SANITIZE as RELEASE_SANITIZE;
pub use gunyah_rm_abi::mem::INVALID_HANDLE;

/// 2 MiB.
pub const SIZE_2M: u64 = 0x20_0000;

/// An SGL entry of a create or append must end at or below this address
/// (2^44, the limit Gunyah's RM applies: a base at or above it is
/// ARGUMENT_INVALID, §12.1); below it, memory the owner does not have is
/// MEM_INVALID.
pub const SGL_ADDR_LIMIT: u64 = 1 << 44;

/// Transaction type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransType {
    /// 0: ownership moves to the acceptor.
    Donate = 0,
    /// 1: the owner loses access while lent.
    Lend = 1,
    /// 2: the owner keeps access.
    Share = 2,
}

impl TransType {
    /// From the wire value.
    pub fn from_u8(v: u8) -> Option<TransType> {
        match v {
            0 => Some(TransType::Donate),
            1 => Some(TransType::Lend),
            2 => Some(TransType::Share),
            _ => None,
        }
    }
}

/// Memory type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemType {
    /// 0: normal memory.
    Normal = 0,
    /// 1: IO memory.
    Io = 1,
}

impl MemType {
    /// From the wire value.
    pub fn from_u8(v: u8) -> Option<MemType> {
        match v {
            0 => Some(MemType::Normal),
            1 => Some(MemType::Io),
            _ => None,
        }
    }
    pub(crate) fn kind(self) -> MemKind {
        match self {
            MemType::Normal => MemKind::Normal,
            MemType::Io => MemKind::Device,
        }
    }
}

/// Parcel-level state (§7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParcelState {
    /// Created with APPEND; SGL not final.
    Init,
    /// Final; nobody has it accepted.
    Sharing,
    /// At least one VM has accepted it (even partially).
    Shared,
}

/// An ACL entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AclEntry {
    /// The VM.
    pub vmid: Vmid,
    /// Its rights.
    pub rights: Rights,
}

/// An attribute entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttrEntry {
    /// Attribute value.
    pub attr: u16,
    /// The VM it applies to.
    pub vmid: Vmid,
}

/// One physically contiguous region of a parcel (what the owner had there is in its range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Where the owner maps it.
    pub owner_ipa: u64,
    /// Physical address.
    pub pa: u64,
    /// Bytes.
    pub size: u64,
}

/// One acceptor's progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acceptance {
    /// One IPA range for the whole parcel.
    pub contiguous: bool,
    /// IPAs allocated so far: one per region, or a single base if contiguous.
    pub ipas: Vec<u64>,
    /// Mapped (a DONE accept completed).
    pub mapped: bool,
}

/// A memparcel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parcel {
    /// Handle.
    pub handle: u32,
    /// Owner VM.
    pub owner: Vmid,
    /// Memory type.
    pub mem_type: MemType,
    /// Transaction type.
    pub trans: TransType,
    /// Label.
    pub label: u32,
    /// ACL in request order.
    pub acl: Vec<AclEntry>,
    /// Attributes as given.
    pub attrs: Vec<AttrEntry>,
    /// Regions in order.
    pub regions: Vec<Region>,
    /// State.
    pub state: ParcelState,
    /// Sanitized at create.
    pub sanitize_create: bool,
    /// Zero at reclaim.
    pub sanitize_reclaim: bool,
    /// mem_info_tag from the first MEM_NOTIFY.
    pub tag: Option<u32>,
    /// Acceptors.
    pub accepted: BTreeMap<Vmid, Acceptance>,
}

impl Parcel {
    /// Total bytes.
    pub fn total_size(&self) -> u64 {
        self.regions.iter().map(|r| r.size).sum()
    }
    /// The ACL entry of `vmid`.
    pub fn acl_of(&self, vmid: Vmid) -> Option<AclEntry> {
        self.acl.iter().copied().find(|a| a.vmid == vmid)
    }
    /// Number of mappings an acceptor needs.
    pub(crate) fn num_mappings(&self, contiguous: bool) -> usize {
        if contiguous {
            1
        } else {
            self.regions.len()
        }
    }
    /// The acceptor IPA of region `i`.
    pub fn acceptor_ipa(&self, acc: &Acceptance, i: usize) -> u64 {
        if acc.contiguous {
            acc.ipas[0] + self.regions[..i].iter().map(|r| r.size).sum::<u64>()
        } else {
            acc.ipas[i]
        }
    }
    /// The mapping kind for this parcel.
    pub fn kind(&self) -> MemKind {
        self.mem_type.kind()
    }
}

/// All parcels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParcelDb {
    /// Parcels by handle.
    pub parcels: BTreeMap<u32, Parcel>,
    /// Next handle to try.
    pub next_handle: u32,
    /// Live parcels per owner.
    pub counts: BTreeMap<Vmid, usize>,
}

impl ParcelDb {
    /// Look up a parcel.
    pub fn get(&self, h: u32) -> Option<&Parcel> {
        self.parcels.get(&h)
    }
    /// Live parcels owned by `vmid`.
    pub fn owned_by(&self, vmid: Vmid) -> usize {
        self.counts.get(&vmid).copied().unwrap_or(0)
    }
    pub(crate) fn insert(&mut self, p: Parcel) {
        *self.counts.entry(p.owner).or_insert(0) += 1;
        self.parcels.insert(p.handle, p);
    }
    pub(crate) fn remove(&mut self, h: u32) -> Option<Parcel> {
        let p = self.parcels.remove(&h)?;
        Self::uncount(&mut self.counts, p.owner);
        Some(p)
    }
    /// Count one parcel of `owner` less in `counts` (a parcel was taken out of `parcels`
    /// through an entry, which borrows the map, so this takes the counts alone).
    pub(crate) fn uncount(counts: &mut BTreeMap<Vmid, usize>, owner: Vmid) {
        if let Some(c) = counts.get_mut(&owner) {
            *c -= 1;
            if *c == 0 {
                counts.remove(&owner);
            }
        }
    }
    pub(crate) fn alloc_handle(&self) -> Option<u32> {
        let mut h = self.next_handle;
        // Above every live handle (the usual case: handles count up), so free: the last key is
        // found down the right edge of the tree, without the search of `contains_key`.
        if h != INVALID_HANDLE && self.parcels.last_key_value().is_none_or(|(&k, _)| k < h) {
            return Some(h);
        }
        for _ in 0..=self.parcels.len() + 1 {
            if h != INVALID_HANDLE && !self.parcels.contains_key(&h) {
                return Some(h);
            }
            h = h.wrapping_add(1);
        }
        None
    }
}

/// A create request (MEM_SHARE / MEM_LEND / MEM_DONATE).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateReq {
    /// Transaction type (from the message ID).
    pub trans: TransType,
    /// mem_type byte.
    pub mem_type: u8,
    /// flags byte.
    pub flags: u8,
    /// Label.
    pub label: u32,
    /// ACL.
    pub acl: Vec<AclEntry>,
    /// SGL: (owner IPA, size).
    pub sgl: Vec<(u64, u64)>,
    /// Attributes.
    pub attrs: Vec<AttrEntry>,
}

/// An accept request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptReq {
    /// Handle.
    pub handle: u32,
    /// mem_type byte.
    pub mem_type: u8,
    /// trans_type byte.
    pub trans_type: u8,
    /// flags.
    pub flags: u8,
    /// Label to validate.
    pub label: u32,
    /// ACL to validate.
    pub acl: Vec<AclEntry>,
    /// Requested IPAs (empty: the RM chooses).
    pub sgl: Vec<(u64, u64)>,
    /// map_vmid half-word.
    pub map_vmid: Vmid,
    /// Attrs to validate.
    pub attrs: Vec<AttrEntry>,
}

/// What an accept produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptReply {
    /// IPAs allocated by this call: (ipa, size).
    pub entries: Vec<(u64, u64)>,
    /// More mappings remain to be allocated.
    pub incomplete: bool,
}

pub(crate) fn rights_valid(r: Rights, mem_type: MemType) -> bool {
    matches!(r.0, 4..=7) && !(mem_type == MemType::Io && r.executable())
}
