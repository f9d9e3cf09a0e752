//! The memparcel database and its transitions (spec §7.2–§7.4).
//!
//! Every transition is split in two: a check that looks at the expected
//! state of every party (owner, acceptors, the caller) and computes what
//! will change without changing anything, then a commit that applies it.
//! A request that fails its check changes nothing. Platform calls made
//! during a commit are undone if a later one fails.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use gunyah_rm_abi::RmError;

use crate::ids;
use crate::memory::{page_aligned, Origin, OwnedRange};
use crate::platform::{MemKind, Platform, Rights, Vmid, PAGE_SIZE};
use crate::service::Rm;
use crate::wire::Writer;

/// Invalid memparcel handle.
pub const INVALID_HANDLE: u32 = 0xFFFF_FFFF;
/// 2 MiB.
pub const SIZE_2M: u64 = 0x20_0000;

/// Create flag: zero the memory at create.
pub const CREATE_SANITIZE: u8 = 0x1;
/// Create flag: more SGL entries follow in MEM_APPEND.
pub const CREATE_APPEND: u8 = 0x2;
/// MEM_APPEND flag: last append.
pub const APPEND_DONE: u8 = 0x1;
/// Accept flags.
pub const ACCEPT_VALIDATE_SANITIZED: u8 = 0x01;
/// Accept: compare the ACL and attrs.
pub const ACCEPT_VALIDATE_ACL_ATTR: u8 = 0x02;
/// Accept: compare the label.
pub const ACCEPT_VALIDATE_LABEL: u8 = 0x04;
/// Accept: map for another VM (refused).
pub const ACCEPT_MAP_OTHER: u8 = 0x08;
/// Accept: one contiguous IPA range.
pub const ACCEPT_MAP_CONTIGUOUS: u8 = 0x10;
/// Accept: sanitize on reclaim.
pub const ACCEPT_SANITIZE: u8 = 0x20;
/// Accept: last accept call, map now.
pub const ACCEPT_DONE: u8 = 0x80;
/// Release/reclaim flag: sanitize.
pub const RELEASE_SANITIZE: u8 = 0x1;
/// Notify flags.
pub const NOTIFY_SHARED: u8 = 0x1;
/// Notify: the acceptor released.
pub const NOTIFY_RELEASED: u8 = 0x2;
/// Notify: the acceptor accepted.
pub const NOTIFY_ACCEPTED: u8 = 0x4;
/// Notify: the owner asks for it back.
pub const NOTIFY_RECALL: u8 = 0x8;

/// Memory attribute values.
pub const ATTR_NORMAL: u16 = 0;
/// Device attribute.
pub const ATTR_DEVICE: u16 = 1;

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
    fn kind(self) -> MemKind {
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

/// One physically contiguous region of a parcel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Where the owner maps it.
    pub owner_ipa: u64,
    /// Physical address.
    pub pa: u64,
    /// Bytes.
    pub size: u64,
    /// The owner's rights (restored at reclaim).
    pub owner_rights: Rights,
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
    fn num_mappings(&self, contiguous: bool) -> usize {
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
    /// Owner IPA ranges in a parcel: (owner, ipa) → (end, handle).
    pub owner_index: BTreeMap<(Vmid, u64), (u64, u32)>,
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
    fn insert(&mut self, p: Parcel) {
        *self.counts.entry(p.owner).or_insert(0) += 1;
        self.parcels.insert(p.handle, p);
    }
    fn remove(&mut self, h: u32) -> Option<Parcel> {
        let p = self.parcels.remove(&h)?;
        if let Some(c) = self.counts.get_mut(&p.owner) {
            *c -= 1;
            if *c == 0 {
                self.counts.remove(&p.owner);
            }
        }
        Some(p)
    }
    /// Whether any byte of the owner's `[ipa, ipa+size)` is in a parcel.
    fn owner_range_busy(&self, owner: Vmid, ipa: u64, size: u64) -> bool {
        // Entries are disjoint, so only the last one starting before `end`
        // can reach into the range.
        let end = ipa + size;
        self.owner_index
            .range((owner, 0)..(owner, end))
            .next_back()
            .is_some_and(|(_, (e, _))| *e > ipa)
    }
    fn alloc_handle(&self) -> Option<u32> {
        let mut h = self.next_handle;
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

fn rights_valid(r: Rights, mem_type: MemType) -> bool {
    matches!(r.0, 4..=7) && !(mem_type == MemType::Io && r.executable())
}

impl<P: Platform> Rm<P> {
    fn addr_valid(&self, ipa: u64, size: u64) -> bool {
        page_aligned(ipa)
            && page_aligned(size)
            && size != 0
            && ipa
                .checked_add(size)
                .is_some_and(|e| e <= self.plat.ipa_limit())
    }

    /// Resolve SGL entries to regions in `owner`'s memory (check only).
    fn resolve_sgl(
        &self,
        owner: Vmid,
        mem_type: MemType,
        sgl: &[(u64, u64)],
        existing: &[Region],
    ) -> Result<Vec<Region>, RmError> {
        let vm_mem = self.mem.get(&owner).ok_or(RmError::MemInvalid)?;
        for &(ipa, size) in sgl {
            if !self.addr_valid(ipa, size) {
                return Err(RmError::ArgumentInvalid);
            }
        }
        let mut regions: Vec<Region> = Vec::new();
        for &(ipa, size) in sgl {
            let pieces = vm_mem.lookup(ipa, size).ok_or(RmError::MemInvalid)?;
            if self.parcels.owner_range_busy(owner, ipa, size) {
                return Err(RmError::MemInvalid);
            }
            // Entries of one request must not overlap each other or earlier appends.
            let overlaps = |r: &Region| r.owner_ipa < ipa + size && ipa < r.owner_ipa + r.size;
            if regions.iter().chain(existing.iter()).any(overlaps) {
                return Err(RmError::MemInvalid);
            }
            let mut entry_regions: Vec<Region> = Vec::new();
            for p in pieces {
                if p.kind != mem_type.kind() {
                    return Err(RmError::MemInvalid);
                }
                match entry_regions.last_mut() {
                    Some(l) if l.pa + l.size == p.pa && l.owner_rights == p.rights => {
                        l.size += p.size
                    }
                    _ => entry_regions.push(Region {
                        owner_ipa: p.ipa,
                        pa: p.pa,
                        size: p.size,
                        owner_rights: p.rights,
                    }),
                }
            }
            regions.extend(entry_regions);
        }
        Ok(regions)
    }

    /// Take `regions` out of the owner's stage 2 (LEND/DONATE), undoing on failure.
    fn unmap_owner(
        &mut self,
        owner: Vmid,
        kind: MemKind,
        regions: &[Region],
    ) -> Result<(), RmError> {
        for (i, r) in regions.iter().enumerate() {
            if let Err(e) = self.plat.unmap(owner, r.owner_ipa, r.size) {
                for u in &regions[..i] {
                    let _ = self
                        .plat
                        .map(owner, u.owner_ipa, u.pa, u.size, u.owner_rights, kind);
                }
                return Err(if e == crate::platform::PlatformError::NoMemory {
                    RmError::NoMem
                } else {
                    RmError::MemInvalid
                });
            }
        }
        Ok(())
    }

    fn index_regions(&mut self, owner: Vmid, handle: u32, regions: &[Region]) {
        for r in regions {
            self.parcels
                .owner_index
                .insert((owner, r.owner_ipa), (r.owner_ipa + r.size, handle));
        }
    }

    /// MEM_SHARE / MEM_LEND / MEM_DONATE from `owner`.
    pub fn mem_create(&mut self, owner: Vmid, req: &CreateReq) -> Result<u32, RmError> {
        // --- check ---
        let mem_type = MemType::from_u8(req.mem_type).ok_or(RmError::ArgumentInvalid)?;
        if req.flags & !(CREATE_SANITIZE | CREATE_APPEND) != 0 {
            return Err(RmError::ArgumentInvalid);
        }
        if req.acl.is_empty() || req.sgl.is_empty() {
            return Err(RmError::ArgumentInvalid);
        }
        let owner_in_acl = req.acl.iter().any(|a| a.vmid == owner);
        match req.trans {
            TransType::Share if !owner_in_acl => return Err(RmError::ArgumentInvalid),
            TransType::Lend | TransType::Donate if owner_in_acl => {
                return Err(RmError::ArgumentInvalid)
            }
            _ => {}
        }
        if req.trans == TransType::Donate {
            if req.acl.len() != 1 {
                return Err(RmError::ArgumentInvalid);
            }
            let max = if mem_type == MemType::Io {
                Rights::RW
            } else {
                Rights::RWX
            };
            if req.acl[0].rights != max {
                return Err(RmError::Denied);
            }
        }
        for (i, a) in req.acl.iter().enumerate() {
            if req.acl[..i].iter().any(|b| b.vmid == a.vmid) {
                return Err(RmError::ArgumentInvalid);
            }
            if !self.vms.exists(a.vmid) {
                return Err(RmError::VmidInvalid);
            }
            if !rights_valid(a.rights, mem_type) {
                return Err(RmError::ArgumentInvalid);
            }
        }
        for (i, at) in req.attrs.iter().enumerate() {
            if req.attrs[..i].iter().any(|b| b.vmid == at.vmid) || !owner_in_acl_or(req, at.vmid) {
                return Err(RmError::VmidInvalid);
            }
            if at.attr > 3 {
                return Err(RmError::ArgumentInvalid);
            }
            if (mem_type == MemType::Io) != (at.attr == ATTR_DEVICE) {
                return Err(RmError::ArgumentInvalid);
            }
            let default = if mem_type == MemType::Io {
                ATTR_DEVICE
            } else {
                ATTR_NORMAL
            };
            if req.trans == TransType::Donate && at.attr != default {
                return Err(RmError::ArgumentInvalid);
            }
        }
        let sanitize = req.flags & CREATE_SANITIZE != 0;
        if sanitize && mem_type == MemType::Io {
            return Err(RmError::ArgumentInvalid);
        }
        let regions = self.resolve_sgl(owner, mem_type, &req.sgl, &[])?;
        if self.parcels.owned_by(owner) >= self.cfg.max_parcels_per_vm {
            return Err(RmError::Denied);
        }
        let handle = self.parcels.alloc_handle().ok_or(RmError::NoResource)?;
        // --- commit ---
        if req.trans != TransType::Share {
            self.unmap_owner(owner, mem_type.kind(), &regions)?;
        }
        if sanitize {
            for r in &regions {
                self.plat.zero(r.pa, r.size);
            }
        }
        self.index_regions(owner, handle, &regions);
        let state = if req.flags & CREATE_APPEND != 0 {
            ParcelState::Init
        } else {
            ParcelState::Sharing
        };
        self.parcels.insert(Parcel {
            handle,
            owner,
            mem_type,
            trans: req.trans,
            label: req.label,
            acl: req.acl.clone(),
            attrs: req.attrs.clone(),
            regions,
            state,
            sanitize_create: sanitize,
            sanitize_reclaim: false,
            tag: None,
            accepted: BTreeMap::new(),
        });
        self.parcels.next_handle = handle.wrapping_add(1);
        Ok(handle)
    }

    /// MEM_APPEND from `caller`.
    pub fn mem_append(
        &mut self,
        caller: Vmid,
        handle: u32,
        flags: u8,
        sgl: &[(u64, u64)],
    ) -> Result<(), RmError> {
        let p = self.parcels.get(handle).ok_or(RmError::HandleInvalid)?;
        if p.owner != caller || p.state != ParcelState::Init {
            return Err(RmError::Denied);
        }
        if flags & !APPEND_DONE != 0 {
            return Err(RmError::ArgumentInvalid);
        }
        let (trans, mem_type, sanitize) = (p.trans, p.mem_type, p.sanitize_create);
        let new = self.resolve_sgl(caller, mem_type, sgl, &p.regions)?;
        if trans != TransType::Share {
            self.unmap_owner(caller, mem_type.kind(), &new)?;
        }
        if sanitize {
            for r in &new {
                self.plat.zero(r.pa, r.size);
            }
        }
        self.index_regions(caller, handle, &new);
        let p = self
            .parcels
            .parcels
            .get_mut(&handle)
            .ok_or(RmError::HandleInvalid)?;
        p.regions.extend(new);
        if flags & APPEND_DONE != 0 {
            p.state = ParcelState::Sharing;
        }
        Ok(())
    }

    /// MEM_ACCEPT from `caller`.
    pub fn mem_accept(&mut self, caller: Vmid, req: &AcceptReq) -> Result<AcceptReply, RmError> {
        // --- check ---
        let p = self.parcels.get(req.handle).ok_or(RmError::HandleInvalid)?;
        if req.mem_type != p.mem_type as u8 || req.trans_type != p.trans as u8 {
            return Err(RmError::ArgumentInvalid);
        }
        let f = req.flags;
        if f & ACCEPT_VALIDATE_SANITIZED != 0 && !p.sanitize_create {
            return Err(RmError::ValidateFailed);
        }
        if f & ACCEPT_VALIDATE_LABEL != 0 && req.label != p.label {
            return Err(RmError::ValidateFailed);
        }
        if f & ACCEPT_VALIDATE_ACL_ATTR != 0
            && (req.acl.len() != p.acl.len()
                || req.attrs.len() != p.attrs.len()
                || req.acl.iter().zip(&p.acl).any(|(a, b)| a != b)
                || req.attrs.iter().zip(&p.attrs).any(|(a, b)| a != b))
        {
            return Err(RmError::ValidateFailed);
        }
        if f & ACCEPT_MAP_OTHER != 0 {
            return Err(RmError::Denied);
        }
        if req.map_vmid != 0 {
            return Err(RmError::ArgumentInvalid);
        }
        let acl = p.acl_of(caller).ok_or(RmError::VmidInvalid)?;
        let prev = p.accepted.get(&caller);
        if caller == p.owner || prev.is_some_and(|a| a.mapped) {
            return Err(RmError::Denied);
        }
        // The open RM does not check INIT here; accepting a parcel whose SGL
        // can still grow would leave its IPA list short, so refuse it.
        if p.state == ParcelState::Init {
            return Err(RmError::Denied);
        }
        let mut contiguous = false;
        if f & ACCEPT_MAP_CONTIGUOUS != 0 {
            if p.mem_type != MemType::Normal
                || prev.is_some_and(|a| !a.contiguous && !a.ipas.is_empty())
            {
                return Err(RmError::ArgumentInvalid);
            }
            contiguous = true;
        }
        if let Some(a) = prev {
            if !a.ipas.is_empty() {
                contiguous = a.contiguous;
            }
        }
        if f & ACCEPT_SANITIZE != 0 && (p.mem_type == MemType::Io || !acl.rights.writable()) {
            return Err(RmError::ArgumentInvalid);
        }
        let num_mappings = p.num_mappings(contiguous);
        let done_before = prev.map_or(0, |a| a.ipas.len());
        let mut num_alloc = (num_mappings - done_before).min(crate::wire::MAX_LIST_ENTRIES);
        let incomplete = req.sgl.is_empty() && done_before + num_alloc < num_mappings;
        if !req.sgl.is_empty() {
            if req.sgl.len() > num_alloc {
                return Err(RmError::ArgumentInvalid);
            }
            num_alloc = req.sgl.len();
        }
        // Sizes of the mappings this call allocates.
        let sizes: Vec<u64> = if contiguous {
            if num_alloc == 1 {
                alloc::vec![p.total_size()]
            } else {
                Vec::new()
            }
        } else {
            p.regions[done_before..done_before + num_alloc]
                .iter()
                .map(|r| r.size)
                .collect()
        };
        let hi = self.cfg.ipa_alloc_end.min(self.plat.ipa_limit());
        let base = self.cfg.ipa_alloc_base;
        let addr_ok: Vec<bool> = req
            .sgl
            .iter()
            .map(|&(i, s)| self.addr_valid(i, s))
            .collect();
        let done = f & ACCEPT_DONE != 0;
        // IPAs are reserved in the acceptor's records as they are chosen and
        // released again if anything fails (the records are only ours).
        let m = self.mem.get_mut(&caller).ok_or(RmError::VmidInvalid)?;
        let cursor_before = m.cursor;
        let mut new_ipas = Vec::with_capacity(sizes.len());
        let mut failed = None;
        for (j, &size) in sizes.iter().enumerate() {
            let r = if let Some(&(ipa, sz)) = req.sgl.get(j) {
                if !addr_ok[j] || sz != size {
                    Err(RmError::ArgumentInvalid)
                } else if !m.ipa_free(ipa, size) {
                    Err(RmError::NoResource)
                } else {
                    Ok(ipa)
                }
            } else {
                let align = if size >= SIZE_2M { SIZE_2M } else { PAGE_SIZE };
                let r = m
                    .alloc_ipa(size, align, base, hi)
                    .ok_or(RmError::NoResource);
                if let Ok(ipa) = r {
                    m.cursor = ipa + size;
                }
                r
            };
            match r {
                Ok(ipa) => {
                    m.reserve(ipa, size);
                    new_ipas.push(ipa);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if failed.is_none() && done && done_before + new_ipas.len() != num_mappings {
            failed = Some(RmError::ArgumentInvalid);
        }
        if let Some(e) = failed {
            for (ipa, size) in new_ipas.iter().zip(&sizes) {
                m.unreserve(*ipa, *size);
            }
            m.cursor = cursor_before;
            return Err(e);
        }
        let trans = p.trans;
        let kind = p.kind();
        // --- commit ---
        let mut acc = prev.cloned().unwrap_or(Acceptance {
            contiguous,
            ipas: Vec::new(),
            mapped: false,
        });
        acc.contiguous = contiguous;
        acc.ipas.extend_from_slice(&new_ipas);
        if done {
            let p = self.parcels.get(req.handle).ok_or(RmError::HandleInvalid)?;
            let mut maps: Vec<(u64, u64, u64)> = Vec::new();
            for (i, r) in p.regions.iter().enumerate() {
                maps.push((p.acceptor_ipa(&acc, i), r.pa, r.size));
            }
            for (k, &(ipa, pa, size)) in maps.iter().enumerate() {
                if self
                    .plat
                    .map(caller, ipa, pa, size, acl.rights, kind)
                    .is_err()
                {
                    for &(u, _, s) in &maps[..k] {
                        let _ = self.plat.unmap(caller, u, s);
                    }
                    if let Some(m) = self.mem.get_mut(&caller) {
                        for (ipa, size) in new_ipas.iter().zip(&sizes) {
                            m.unreserve(*ipa, *size);
                        }
                        m.cursor = cursor_before;
                    }
                    return Err(RmError::MapFailed);
                }
            }
            acc.mapped = true;
        }
        let entries: Vec<(u64, u64)> = new_ipas
            .iter()
            .copied()
            .zip(sizes.iter().copied())
            .collect();
        let p = self
            .parcels
            .parcels
            .get_mut(&req.handle)
            .ok_or(RmError::HandleInvalid)?;
        if f & ACCEPT_SANITIZE != 0 {
            p.sanitize_reclaim = true;
        }
        p.state = ParcelState::Shared;
        p.accepted.insert(caller, acc);
        if done && trans == TransType::Donate {
            self.complete_donation(req.handle, caller);
        }
        Ok(AcceptReply {
            entries,
            incomplete,
        })
    }

    /// A DONE accept of a donated parcel: ownership moves to `to`.
    fn complete_donation(&mut self, handle: u32, to: Vmid) {
        let p = match self.parcels.remove(handle) {
            Some(p) => p,
            None => return,
        };
        let acc = &p.accepted[&to];
        let rights = p.acl_of(to).map_or(Rights::RWX, |a| a.rights);
        for (i, r) in p.regions.iter().enumerate() {
            self.parcels.owner_index.remove(&(p.owner, r.owner_ipa));
            if let Some(m) = self.mem.get_mut(&p.owner) {
                m.remove_owned(r.owner_ipa, r.size);
            }
            let ipa = p.acceptor_ipa(acc, i);
            if let Some(m) = self.mem.get_mut(&to) {
                m.unreserve(ipa, r.size);
                m.add_owned(OwnedRange {
                    ipa,
                    pa: r.pa,
                    size: r.size,
                    rights,
                    kind: p.kind(),
                    origin: Origin::Donated {
                        from: p.owner,
                        ipa: r.owner_ipa,
                        rights: r.owner_rights,
                    },
                });
            }
        }
    }

    /// Undo `vmid`'s acceptance of parcel `handle` (check done by caller).
    fn drop_acceptance(&mut self, handle: u32, vmid: Vmid) {
        let p = match self.parcels.parcels.get_mut(&handle) {
            Some(p) => p,
            None => return,
        };
        let acc = match p.accepted.remove(&vmid) {
            Some(a) => a,
            None => return,
        };
        let mut ranges = Vec::new();
        for i in 0..acc.ipas.len().min(p.num_mappings(acc.contiguous)) {
            let size = if acc.contiguous {
                p.total_size()
            } else {
                p.regions[i].size
            };
            ranges.push((acc.ipas[i], size));
        }
        if p.accepted.is_empty() {
            p.state = ParcelState::Sharing;
        }
        for (ipa, size) in ranges {
            if acc.mapped {
                let _ = self.plat.unmap(vmid, ipa, size);
            }
            if let Some(m) = self.mem.get_mut(&vmid) {
                m.unreserve(ipa, size);
            }
        }
    }

    /// MEM_RELEASE from `caller`.
    pub fn mem_release(&mut self, caller: Vmid, handle: u32, flags: u8) -> Result<(), RmError> {
        let p = self.parcels.get(handle).ok_or(RmError::HandleInvalid)?;
        if flags & !RELEASE_SANITIZE != 0 {
            return Err(RmError::ArgumentInvalid);
        }
        let acl = p.acl_of(caller).ok_or(RmError::HandleInvalid)?;
        if caller == p.owner {
            return Err(RmError::Denied);
        }
        if !p.accepted.contains_key(&caller) {
            return Err(RmError::MemReleased);
        }
        let sanitize = flags & RELEASE_SANITIZE != 0;
        if sanitize && (p.mem_type != MemType::Normal || !acl.rights.writable()) {
            return Err(RmError::ArgumentInvalid);
        }
        self.drop_acceptance(handle, caller);
        if sanitize {
            if let Some(p) = self.parcels.parcels.get_mut(&handle) {
                p.sanitize_reclaim = true;
            }
        }
        Ok(())
    }

    /// MEM_RECLAIM from `caller`.
    pub fn mem_reclaim(&mut self, caller: Vmid, handle: u32, flags: u8) -> Result<(), RmError> {
        let p = self.parcels.get(handle).ok_or(RmError::HandleInvalid)?;
        if p.owner != caller {
            return Err(RmError::Denied);
        }
        if flags & !RELEASE_SANITIZE != 0 {
            return Err(RmError::ArgumentInvalid);
        }
        if p.state == ParcelState::Shared {
            return Err(RmError::MemInuse);
        }
        if flags & RELEASE_SANITIZE != 0 && p.mem_type == MemType::Io {
            return Err(RmError::ArgumentInvalid);
        }
        let zero = p.sanitize_reclaim || flags & RELEASE_SANITIZE != 0;
        let (trans, kind, regions) = (p.trans, p.kind(), p.regions.clone());
        if zero {
            for r in &regions {
                self.plat.zero(r.pa, r.size);
            }
        }
        if trans != TransType::Share {
            for (i, r) in regions.iter().enumerate() {
                if self
                    .plat
                    .map(caller, r.owner_ipa, r.pa, r.size, r.owner_rights, kind)
                    .is_err()
                {
                    for u in &regions[..i] {
                        let _ = self.plat.unmap(caller, u.owner_ipa, u.size);
                    }
                    return Err(RmError::MapFailed);
                }
            }
        }
        for r in &regions {
            self.parcels.owner_index.remove(&(caller, r.owner_ipa));
        }
        self.parcels.remove(handle);
        Ok(())
    }

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
                if p.acl_of(caller).is_none() || caller == p.owner {
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
                    let mut w = Writer::new();
                    w.u32(handle).u32(tag);
                    self.notify(v, ids::NOTIF_MEM_RECALL, w.finish());
                }
            }
            NOTIFY_ACCEPTED => {
                self.notify_owner(ids::NOTIF_MEM_ACCEPTED, owner, handle, caller, tag)
            }
            _ => self.notify_owner(ids::NOTIF_MEM_RELEASED, owner, handle, caller, tag),
        }
        Ok(())
    }

    /// MEM_ACCEPTED / MEM_RELEASED to the owner.
    pub(crate) fn notify_owner(&mut self, id: u32, owner: Vmid, handle: u32, vmid: Vmid, tag: u32) {
        let mut w = Writer::new();
        w.u32(handle).u16(vmid).u16(0).u32(tag);
        self.notify(owner, id, w.finish());
    }

    /// MEM_SHARED to `to`, or the auto-accept for a VM still in READY.
    fn notify_shared_to(&mut self, handle: u32, to: Vmid) {
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
                ids::NOTIF_MEM_ACCEPTED
            } else {
                ids::NOTIF_MEM_RELEASED
            };
            self.notify_owner(id, p.owner, handle, to, tag);
            return;
        }
        let mut w = Writer::new();
        w.u32(handle)
            .u8(p.mem_type as u8)
            .u8(p.trans as u8)
            .u8(p.sanitize_create as u8)
            .u8(0);
        w.u16(p.owner).u16(0).u32(p.label).u32(tag);
        w.u16(p.acl.len() as u16).u16(0);
        for a in &p.acl {
            w.u16(a.vmid).u8(a.rights.0).u8(0);
        }
        let n = p.regions.len().min(crate::wire::MAX_LIST_ENTRIES);
        w.u16(n as u16).u16(0);
        for r in &p.regions[..n] {
            w.u64(r.size);
        }
        w.u16(p.attrs.len() as u16).u16(0);
        for a in &p.attrs {
            w.u16(a.attr).u16(a.vmid);
        }
        self.notify(to, ids::NOTIF_MEM_SHARED, w.finish());
    }

    /// Accept `handle` on `vmid`'s behalf (VM_START and READY auto-accept):
    /// its own ACL entry, DONE, contiguous, at `ipa` or where the RM chooses.
    pub(crate) fn auto_accept(
        &mut self,
        vmid: Vmid,
        handle: u32,
        sanitize: bool,
        ipa: Option<u64>,
    ) -> Result<AcceptReply, RmError> {
        let p = self.parcels.get(handle).ok_or(RmError::HandleInvalid)?;
        let acl = p.acl_of(vmid).ok_or(RmError::VmidInvalid)?;
        let mut flags = ACCEPT_DONE;
        if p.mem_type == MemType::Normal {
            flags |= ACCEPT_MAP_CONTIGUOUS;
        }
        if sanitize {
            flags |= ACCEPT_SANITIZE;
        }
        let req = AcceptReq {
            handle,
            mem_type: p.mem_type as u8,
            trans_type: p.trans as u8,
            flags,
            label: 0,
            acl: alloc::vec![acl],
            sgl: ipa
                .map(|i| alloc::vec![(i, p.total_size())])
                .unwrap_or_default(),
            map_vmid: 0,
            attrs: Vec::new(),
        };
        self.mem_accept(vmid, &req)
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

    /// Release every parcel `vmid` has accepted (VM reset), telling owners.
    pub(crate) fn release_all_accepted(&mut self, vmid: Vmid) {
        let hs: Vec<(u32, Vmid, u32)> = self
            .parcels
            .parcels
            .values()
            .filter(|p| p.accepted.contains_key(&vmid))
            .map(|p| (p.handle, p.owner, p.tag.unwrap_or(0)))
            .collect();
        for (h, owner, tag) in hs {
            self.drop_acceptance(h, vmid);
            self.notify_owner(ids::NOTIF_MEM_RELEASED, owner, h, vmid, tag);
        }
    }

    /// Delete every parcel `vmid` owns (it is going away): acceptors lose
    /// their mappings and the memory returns to its place.
    pub(crate) fn revoke_owned_parcels(&mut self, vmid: Vmid) {
        let hs: Vec<u32> = self
            .parcels
            .parcels
            .values()
            .filter(|p| p.owner == vmid)
            .map(|p| p.handle)
            .collect();
        for h in hs {
            let acceptors: Vec<Vmid> = self
                .parcels
                .get(h)
                .map(|p| p.accepted.keys().copied().collect())
                .unwrap_or_default();
            for a in acceptors {
                self.drop_acceptance(h, a);
            }
            let _ = self.mem_reclaim(vmid, h, 0);
        }
    }
}

fn owner_in_acl_or(req: &CreateReq, vmid: Vmid) -> bool {
    req.acl.iter().any(|a| a.vmid == vmid)
}
