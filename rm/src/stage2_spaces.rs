//! [`AddressSpaces`] over real `gunyah-stage2` tables, written once for every
//! platform that keeps its VMs' stage 2 in software tables (the host
//! simulator, the QEMU EL2 board).
//!
//! A platform holds a [`Stage2Spaces`] (one `gunyah_stage2::AddressSpace`
//! per VMID plus the platform's IPA size, the largest a VM's can be, and the PA range) and
//! implements [`Stage2Backed`] to say where it is; it then gets
//! [`AddressSpaces`] for free. What differs between platforms is only where
//! table pages come from and how TLBs are maintained: a [`SpaceParts`].
//!
//! Each VM's tables sit behind their own lock ([`crate::sync::Mutex`]): through `&mut` (the
//! RM's requests, under the RM's exclusive lock) they are reached without locking; through `&`
//! every query locks that VM's tables only, and [`SharedAddressSpaces`] lets the concurrent
//! fault path ([`crate::concurrent`]) replace a page of one VM while vCPUs of other VMs fault in
//! theirs.

use crate::vmid_map::{VmidMap, FLAT_VMIDS};
use alloc::vec::Vec;

use gunyah_stage2::{
    Access, AddressSpace, Attrs, Entry, FaultStatus, MapFlags, MemAttr, PaRange, S2Ap,
    Stage2Config, SwBits, TableMemory, TableReserve, TlbMaintenance, Update,
};

use crate::plan::{Plan, S2Op};
use crate::platform::{
    AddressSpaces, Leaf, MemKind, PlatformError, Prepared, Rights, SharedAddressSpaces, Site, Tag,
    Vmid, Walked, PAGE_SIZE,
};
use crate::sync::{Mutex, MutexGuard};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Fewest spare split tables a VM that splits gets at a refill: a 1 GiB block splits into two.
pub const SPARE_MIN: usize = 2;
/// Most spare split tables a VM gets at a refill (256 KiB): a refill makes up for the tables the
/// VM's splits took since the last one, up to this.
pub const SPARE_MAX: usize = 64;
/// The smallest IPA space a VM can be given (a VM config's `ipa-bits`): the tables' smallest.
pub const MIN_VM_IPA_BITS: u8 = gunyah_stage2::geometry::MIN_IPA_BITS;

/// How a platform makes the pieces of a new VM's stage 2.
pub trait SpaceParts {
    /// Where the VM's table pages come from.
    type Mem: TableMemory;
    /// How the VM's TLB entries are invalidated.
    type Tlb: TlbMaintenance;
    /// Table memory and TLB maintenance for `vmid`'s new address space;
    /// `None` if there is no memory for them.
    fn parts(&mut self, vmid: Vmid) -> Option<(Self::Mem, Self::Tlb)>;
}

/// One VM's stage 2, as a [`Stage2Spaces`] over `P` holds it.
pub type Space<P> = AddressSpace<<P as SpaceParts>::Mem, <P as SpaceParts>::Tlb>;

/// Every VM's stage-2 address space, by VMID.
pub struct Stage2Spaces<P: SpaceParts> {
    parts: P,
    /// Each VM's lock and tables in a slot that starts a cache line (`VmidMap`), not padded
    /// further: two VMs' lock words never share a line. `spin`'s mutex keeps its lock word ahead
    /// of the data, and `AddressSpace` puts the walk's fields first, so they start near it.
    spaces: VmidMap<Mutex<Space<P>>>,
    ipa_bits: u8,
    parange: PaRange,
    /// Tables a prepared plan set aside, per VM, until it is committed or abandoned.
    prepared: Vec<(Vmid, TableReserve)>,
    /// Which VMs' splits took a table since the last refill, a bit per VMID below
    /// [`FLAT_VMIDS`] (set by the fault paths, which may hold only `&self`): a refill visits
    /// those VMs only, none when no split happened.
    split: [AtomicU64; FLAT_VMIDS / 64],
    /// Whether a VM of a VMID from [`FLAT_VMIDS`] up split (no RM path makes one): the refill
    /// then looks at every such VM.
    split_high: AtomicBool,
}

impl<P: SpaceParts> Stage2Spaces<P> {
    /// No address spaces yet; each one made later has an `ipa_bits`-bit IPA
    /// space (until [`AddressSpaces::set_ipa_bits`] gives it a smaller one) and output
    /// addresses of `parange`, with pieces from `parts`.
    pub fn new(parts: P, ipa_bits: u8, parange: PaRange) -> Self {
        Stage2Spaces {
            parts,
            spaces: VmidMap::new(),
            ipa_bits,
            parange,
            prepared: Vec::new(),
            split: [const { AtomicU64::new(0) }; FLAT_VMIDS / 64],
            split_high: AtomicBool::new(false),
        }
    }

    /// `vmid`'s address space, locked (only that VM's tables).
    pub fn get(&self, vmid: Vmid) -> Option<MutexGuard<'_, Space<P>>> {
        self.spaces.get(&vmid).map(|s| s.lock())
    }

    /// `vmid`'s address space, mutably (no lock: `&mut self` is exclusive).
    pub fn get_mut(&mut self, vmid: Vmid) -> Option<&mut Space<P>> {
        self.spaces.get_mut(&vmid).map(|s| s.get_mut())
    }

    /// The VMIDs that have an address space, in order.
    pub fn vmids(&self) -> impl Iterator<Item = Vmid> + '_ {
        self.spaces.keys().copied()
    }

    /// Table pages held by all address spaces: in use, and spare for splits.
    pub fn table_pages(&self) -> usize {
        self.spaces
            .values()
            .map(|s| {
                let s = s.lock();
                s.table_pages() + s.spare_tables()
            })
            .sum()
    }

    /// Spare split tables held by all address spaces (counted in
    /// [`table_pages`](Self::table_pages) too).
    pub fn spare_tables(&self) -> usize {
        self.spaces.values().map(|s| s.lock().spare_tables()).sum()
    }

    /// Note that `s` took split tables since its last refill, if it did. Relaxed: the refill
    /// reads the flag with `&mut self` (the RM's exclusive lock), whose taking orders it after
    /// every fault that held the shared side.
    fn note_split(&self, vmid: Vmid, s: &Space<P>) {
        if s.split_since_refill() != 0 {
            let v = usize::from(vmid);
            if v < FLAT_VMIDS {
                self.split[v / 64].fetch_or(1 << (v % 64), Ordering::Relaxed);
            } else {
                self.split_high.store(true, Ordering::Relaxed);
            }
        }
    }

    /// [`Stage2Spaces::note_split`] through `&mut` (no atomic read-modify-write).
    fn note_split_mut(
        split: &mut [AtomicU64; FLAT_VMIDS / 64],
        split_high: &mut AtomicBool,
        vmid: Vmid,
    ) {
        let v = usize::from(vmid);
        if v < FLAT_VMIDS {
            *split[v / 64].get_mut() |= 1 << (v % 64);
        } else {
            *split_high.get_mut() = true;
        }
    }

    /// Make up the spare split tables of every VM whose splits took some since the last
    /// refill: as many as they took, at least [`SPARE_MIN`], at most [`SPARE_MAX`]. Visits
    /// only the VMs marked as having split (none when no split happened). A VM that did not
    /// split keeps what it has.
    pub fn refill_spare_tables(&mut self) {
        fn refill<M: TableMemory, T: TlbMaintenance>(s: &mut AddressSpace<M, T>) {
            let used = s.split_since_refill();
            if used != 0 {
                s.refill_spare(used.clamp(SPARE_MIN, SPARE_MAX));
            }
        }
        for (i, w) in self.split.iter_mut().enumerate() {
            let mut bits = core::mem::replace(w.get_mut(), 0);
            while bits != 0 {
                let v = i * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                // Below FLAT_VMIDS (256): fits a Vmid.
                if let Some(s) = self.spaces.get_mut(&(v as Vmid)) {
                    refill(s.get_mut());
                }
            }
        }
        if core::mem::replace(self.split_high.get_mut(), false) {
            for (_, s) in self
                .spaces
                .iter_mut()
                .filter(|(v, _)| usize::from(**v) >= FLAT_VMIDS)
            {
                refill(s.get_mut());
            }
        }
    }

    /// Give every spare split table back; how many.
    pub fn release_spare_tables(&mut self) -> usize {
        self.spaces
            .values_mut()
            .map(|s| s.get_mut().release_spare())
            .sum()
    }

    fn space(&mut self, vmid: Vmid) -> Result<&mut Space<P>, PlatformError> {
        self.get_mut(vmid).ok_or(PlatformError::NoSuchSpace)
    }

    /// Give back the tables of a prepared plan that will not be committed.
    fn release_prepared(&mut self) {
        for (vmid, r) in self.prepared.drain(..) {
            if let Some(space) = self.spaces.get_mut(&vmid).map(|s| s.get_mut()) {
                space.release_tables(r);
            }
        }
    }

    /// Whether every page of `[ipa, ipa+size)` is mapped in `vmid`'s space.
    fn covered(&self, vmid: Vmid, ipa: u64, size: u64) -> Result<(), PlatformError> {
        let s = self.get(vmid).ok_or(PlatformError::NoSuchSpace)?;
        let end = ipa.checked_add(size).ok_or(PlatformError::BadAddress)?;
        let mut cur = ipa;
        while cur < end {
            let l = s.query(cur).ok_or(PlatformError::NotMapped)?;
            cur = l.ipa + l.size();
        }
        Ok(())
    }
}

/// A platform whose VMs' stage 2 lives in a [`Stage2Spaces`]; it implements
/// [`AddressSpaces`] through it.
pub trait Stage2Backed {
    /// How the platform makes a new VM's table memory and TLB maintenance.
    type Parts: SpaceParts;
    /// Whether [`AddressSpaces::simulate_access`] answers by walking the
    /// tables in software: only the host simulator, where guest accesses
    /// are simulated; a platform with real guests answers `None`.
    const SIMULATES_ACCESS: bool = false;
    /// The address spaces.
    fn stage2(&self) -> &Stage2Spaces<Self::Parts>;
    /// The address spaces, mutably.
    fn stage2_mut(&mut self) -> &mut Stage2Spaces<Self::Parts>;
}

impl<P: SpaceParts> Stage2Backed for Stage2Spaces<P> {
    type Parts = P;
    fn stage2(&self) -> &Stage2Spaces<P> {
        self
    }
    fn stage2_mut(&mut self) -> &mut Stage2Spaces<P> {
        self
    }
}

/// The software bits that hold `tag`.
pub fn sw_of(tag: Tag) -> SwBits {
    SwBits::new(tag as u8).unwrap_or(SwBits::NONE)
}

/// Descriptor attributes for `rights` on memory of `kind`, tagged `tag`.
pub fn tagged_attrs(rights: Rights, kind: MemKind, tag: Tag) -> Attrs {
    attrs_of(rights, kind).with_sw(sw_of(tag))
}

/// Descriptor attributes for `rights` on memory of `kind`.
pub fn attrs_of(rights: Rights, kind: MemKind) -> Attrs {
    let s2ap = match (rights.readable(), rights.writable()) {
        (true, true) => S2Ap::ReadWrite,
        (true, false) => S2Ap::ReadOnly,
        (false, true) => S2Ap::WriteOnly,
        (false, false) => S2Ap::None,
    };
    let base = match kind {
        MemKind::Normal => Attrs::normal(s2ap),
        MemKind::Device => Attrs::device_rw().with_s2ap(s2ap),
    };
    base.with_xn(!rights.executable())
}

/// The memory kind descriptor attributes `a` give.
pub fn kind_of(a: &Attrs) -> MemKind {
    match a.mem {
        MemAttr::DeviceNGnRnE | MemAttr::DeviceNGnRE => MemKind::Device,
        _ => MemKind::Normal,
    }
}

/// A table leaf as the RM sees it.
pub fn leaf_of(l: &gunyah_stage2::Leaf) -> Leaf {
    let a = l.attrs;
    let mut r = 0;
    if a.s2ap.readable() {
        r |= Rights::R.0;
    }
    if a.s2ap.writable() {
        r |= Rights::W.0;
    }
    if !a.xn {
        r |= Rights::X.0;
    }
    Leaf {
        ipa: l.ipa,
        pa: l.pa,
        size: l.size(),
        rights: Rights(r),
        kind: kind_of(&a),
        tag: Tag::from_bits(a.sw.bits()),
    }
}

/// The attribute change of a [`S2Op::Protect`]: new access and execute rights, the memory kind
/// and software bits kept.
fn reprotect(rights: Rights) -> impl Fn(Attrs) -> Attrs {
    move |a: Attrs| {
        let n = attrs_of(rights, kind_of(&a));
        a.with_s2ap(n.s2ap).with_xn(n.xn)
    }
}

/// The table update of one op of a plan; a protect's attribute change is the next of `fns`.
fn update_of<'a, F: Fn(Attrs) -> Attrs>(
    op: &S2Op,
    fns: &mut core::slice::Iter<'a, F>,
) -> Option<Update<'a>> {
    match *op {
        S2Op::Map {
            ipa,
            pa,
            size,
            rights,
            kind,
            tag,
            ..
        } => Some(Update::Map {
            ipa,
            size,
            pa,
            attrs: tagged_attrs(rights, kind, tag),
            flags: MapFlags::BLOCKS,
        }),
        S2Op::Unmap { ipa, size, .. } => Some(Update::Unmap { ipa, size }),
        S2Op::Protect { ipa, size, .. } => fns.next().map(|f| Update::Modify {
            ipa,
            size,
            f: f as &dyn Fn(Attrs) -> Attrs,
        }),
    }
}

/// Run `f` on `vmid`'s part of `plan` as table updates. A part of one op (most requests)
/// is passed without allocating; the attribute changes of protects live in a vector that is
/// only allocated when there are some.
fn with_updates<R>(plan: &Plan, vmid: Vmid, f: impl FnOnce(&[Update<'_>]) -> R) -> R {
    let ops = plan.ops().iter().filter(|o| o.vmid() == vmid);
    let fns: Vec<_> = ops
        .clone()
        .filter_map(|o| match *o {
            S2Op::Protect { rights, .. } => Some(reprotect(rights)),
            _ => None,
        })
        .collect();
    let mut fi = fns.iter();
    let mut it = ops.clone();
    if let (Some(op), None) = (it.next(), it.next()) {
        let u = update_of(op, &mut fi);
        return f(u.as_slice());
    }
    let updates: Vec<Update<'_>> = ops.filter_map(|o| update_of(o, &mut fi)).collect();
    f(&updates)
}

/// The platform error for a table operation's error.
pub fn perr(e: gunyah_stage2::Error) -> PlatformError {
    use gunyah_stage2::Error as E;
    match e {
        E::NoMemory => PlatformError::NoMemory,
        E::AlreadyMapped { .. } => PlatformError::AlreadyMapped,
        E::NotMapped { .. } => PlatformError::NotMapped,
        _ => PlatformError::BadAddress,
    }
}

impl<B: Stage2Backed> AddressSpaces for B {
    fn create_space(&mut self, vmid: Vmid) -> Result<(), PlatformError> {
        let s2 = self.stage2_mut();
        if s2.spaces.contains_key(&vmid) {
            return Err(PlatformError::SpaceExists);
        }
        let cfg = Stage2Config::new(s2.ipa_bits, s2.parange, vmid);
        let (mem, tlb) = s2.parts.parts(vmid).ok_or(PlatformError::NoMemory)?;
        let s = AddressSpace::new(mem, tlb, cfg).map_err(perr)?;
        s2.spaces.insert(vmid, Mutex::new(s));
        Ok(())
    }
    fn destroy_space(&mut self, vmid: Vmid) -> Result<(), PlatformError> {
        let s = self.stage2_mut().spaces.remove(&vmid);
        let _ = s.ok_or(PlatformError::NoSuchSpace)?.into_inner().destroy();
        Ok(())
    }
    fn map(
        &mut self,
        vmid: Vmid,
        ipa: u64,
        pa: u64,
        size: u64,
        rights: Rights,
        kind: MemKind,
        tag: Tag,
    ) -> Result<(), PlatformError> {
        let attrs = tagged_attrs(rights, kind, tag);
        let s = self.stage2_mut().space(vmid)?;
        s.map(ipa, size, pa, attrs, MapFlags::BLOCKS).map_err(perr)
    }
    fn unmap(&mut self, vmid: Vmid, ipa: u64, size: u64) -> Result<(), PlatformError> {
        // The tables skip holes; the seam's contract is to refuse them.
        self.stage2().covered(vmid, ipa, size)?;
        self.stage2_mut()
            .space(vmid)?
            .unmap(ipa, size)
            .map_err(perr)
    }
    fn protect(
        &mut self,
        vmid: Vmid,
        ipa: u64,
        size: u64,
        rights: Rights,
    ) -> Result<(), PlatformError> {
        // Each leaf keeps its memory kind and tag; only access and execute change.
        let s = self.stage2_mut().space(vmid)?;
        s.modify_attrs(ipa, size, &reprotect(rights)).map_err(perr)
    }
    fn prepare(&mut self, plan: &Plan) -> Result<Prepared, PlatformError> {
        let s2 = self.stage2_mut();
        debug_assert!(s2.prepared.is_empty(), "a plan is already prepared");
        for vmid in plan.vmids() {
            let reserved = match s2.get_mut(vmid) {
                None => Err(PlatformError::NoSuchSpace),
                Some(space) => with_updates(plan, vmid, |updates| {
                    space
                        .plan_batch(updates)
                        .and_then(|n| space.reserve_tables(n))
                        .map_err(perr)
                }),
            };
            match reserved {
                Ok(r) => s2.prepared.push((vmid, r)),
                Err(e) => {
                    s2.release_prepared();
                    return Err(e);
                }
            }
        }
        Ok(Prepared::new())
    }
    fn commit(&mut self, plan: &Plan, prepared: Prepared) {
        let _ = prepared;
        let s2 = self.stage2_mut();
        // Drained, not taken: the list keeps its allocation for the next plan.
        for (vmid, reserve) in s2.prepared.drain(..) {
            if let Some(space) = s2.spaces.get_mut(&vmid).map(|s| s.get_mut()) {
                with_updates(plan, vmid, |updates| space.apply_batch(reserve, updates));
            }
        }
    }
    fn abandon(&mut self, prepared: Prepared) {
        let _ = prepared;
        self.stage2_mut().release_prepared();
    }
    fn replace_page(
        &mut self,
        vmid: Vmid,
        ipa: u64,
        pa: u64,
        rights: Rights,
        kind: MemKind,
        tag: Tag,
    ) -> Result<Option<Leaf>, PlatformError> {
        let s = self.stage2_mut().space(vmid)?;
        s.replace_page(ipa, pa, tagged_attrs(rights, kind, tag))
            .map(|old| old.map(|l| leaf_of(&l)))
            .map_err(perr)
    }
    fn walk(&self, vmid: Vmid, ipa: u64) -> Option<Walked> {
        self.stage2().get(vmid)?.entry(ipa).map(walked_of)
    }
    fn walk_exclusive(&mut self, vmid: Vmid, ipa: u64) -> Option<Walked> {
        // `&mut self`: the space's lock is not taken (nobody else can hold it).
        self.stage2_mut().get_mut(vmid)?.entry(ipa).map(walked_of)
    }
    fn replace_page_at(
        &mut self,
        vmid: Vmid,
        walked: &Walked,
        ipa: u64,
        pa: u64,
        rights: Rights,
        kind: MemKind,
        tag: Tag,
    ) -> Result<(), PlatformError> {
        let s2 = self.stage2_mut();
        let s = s2.get_mut(vmid).ok_or(PlatformError::NoSuchSpace)?;
        let r = replace_walked(s, walked, ipa, pa, tagged_attrs(rights, kind, tag)).map_err(perr);
        if s.split_since_refill() != 0 {
            Stage2Spaces::<B::Parts>::note_split_mut(&mut s2.split, &mut s2.split_high, vmid);
        }
        r
    }
    fn query(&self, vmid: Vmid, ipa: u64) -> Option<Leaf> {
        self.stage2().get(vmid)?.query(ipa).map(|l| leaf_of(&l))
    }
    fn for_each_leaf(&self, vmid: Vmid, f: &mut dyn FnMut(&Leaf)) {
        if let Some(s) = self.stage2().get(vmid) {
            s.for_each_leaf(&mut |l| f(&leaf_of(l)));
        }
    }
    fn for_each_leaf_in(&self, vmid: Vmid, ipa: u64, size: u64, f: &mut dyn FnMut(&Leaf)) {
        if let Some(s) = self.stage2().get(vmid) {
            let _ = s.for_each_leaf_in(ipa, size, &mut |l| f(&leaf_of(l)));
        }
    }
    fn ipa_limit(&self) -> u64 {
        1 << self.stage2().ipa_bits
    }
    fn vm_ipa_limit(&self, vmid: Vmid) -> u64 {
        match self.stage2().get(vmid) {
            Some(s) => s.geometry().ipa_limit(),
            None => self.ipa_limit(),
        }
    }
    fn set_ipa_bits(&mut self, vmid: Vmid, ipa_bits: u8) -> Result<(), PlatformError> {
        let s2 = self.stage2_mut();
        if !(MIN_VM_IPA_BITS..=s2.ipa_bits).contains(&ipa_bits) {
            return Err(PlatformError::BadAddress);
        }
        let cfg = Stage2Config::new(ipa_bits, s2.parange, vmid);
        let old = s2.get_mut(vmid).ok_or(PlatformError::NoSuchSpace)?;
        if old.geometry().ipa_bits() == ipa_bits {
            return Ok(());
        }
        // A smaller IPA size (the shipped configs' 39 bits on a 40-bit platform) keeps the
        // root it has: no allocation, no zeroing.
        if old.reconfigure_empty(cfg).map_err(perr)? {
            return Ok(());
        }
        // Reads the root pages only: a walk of an empty 40-bit space's 1024 root entries cost
        // more than the rest of the resize.
        if !old.is_empty() {
            return Err(PlatformError::AlreadyMapped);
        }
        // The new space first: if it cannot be made, the old one stays as it was.
        let (mem, tlb) = s2.parts.parts(vmid).ok_or(PlatformError::NoMemory)?;
        let new = AddressSpace::new(mem, tlb, cfg).map_err(perr)?;
        let old = s2.spaces.insert(vmid, Mutex::new(new));
        if let Some(old) = old {
            let _ = old.into_inner().destroy();
        }
        Ok(())
    }
    fn simulate_access(
        &self,
        vmid: Vmid,
        ipa: u64,
        access: Access,
    ) -> Option<Result<u64, FaultStatus>> {
        if !B::SIMULATES_ACCESS {
            return None;
        }
        Some(self.stage2().get(vmid)?.simulate_access(ipa, access))
    }
    fn refill_split_tables(&mut self) {
        self.stage2_mut().refill_spare_tables();
    }
    fn release_split_tables(&mut self) -> usize {
        self.stage2_mut().release_spare_tables()
    }
}

impl<B: Stage2Backed + Sync> SharedAddressSpaces for B {
    fn replace_page_at_shared(
        &self,
        vmid: Vmid,
        walked: &Walked,
        ipa: u64,
        pa: u64,
        rights: Rights,
        kind: MemKind,
        tag: Tag,
    ) -> Result<(), PlatformError> {
        let s2 = self.stage2();
        let mut s = s2.get(vmid).ok_or(PlatformError::NoSuchSpace)?;
        let r = replace_walked(&mut s, walked, ipa, pa, tagged_attrs(rights, kind, tag));
        s2.note_split(vmid, &s);
        r.map_err(perr)
    }
}

/// What the RM's fault path needs of a walk: the leaf and the entry, for the replace after it.
fn walked_of(e: Entry) -> Walked {
    Walked {
        leaf: e.leaf().map(|l| leaf_of(&l)),
        site: Site(e.to_words()),
    }
}

/// Make the page at `ipa` map `pa` with `attrs`, at the entry `walked` found for it (splitting
/// a block, break-before-make); if the walk was for another page, walk again. One function for
/// the exclusive and the concurrent fault path.
fn replace_walked<M: TableMemory, T: TlbMaintenance>(
    s: &mut AddressSpace<M, T>,
    walked: &Walked,
    ipa: u64,
    pa: u64,
    attrs: Attrs,
) -> Result<(), gunyah_stage2::Error> {
    let e = Entry::from_words(walked.site.0);
    let page = ipa & !(PAGE_SIZE - 1);
    if e.ipa >> 12 != page >> 12 {
        return s.replace_page(page, pa, attrs).map(|_| ());
    }
    match s.replace_page_at(&e, pa, attrs) {
        // An invalid entry above the last level (a demand page in an empty table): map it,
        // making the tables on the way.
        Err(gunyah_stage2::Error::NotMapped { .. }) => s.replace_page(page, pa, attrs).map(|_| ()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gunyah_stage2::Error as E;

    #[test]
    fn rights_and_kind_survive_the_descriptor() {
        for r in 0..8u8 {
            for kind in [MemKind::Normal, MemKind::Device] {
                let l = gunyah_stage2::Leaf {
                    ipa: 0x8000_0000,
                    pa: 0x4000_0000,
                    level: 3,
                    attrs: attrs_of(Rights(r), kind),
                };
                let want = Leaf {
                    ipa: 0x8000_0000,
                    pa: 0x4000_0000,
                    size: 4096,
                    rights: Rights(r),
                    kind,
                    tag: Tag::None,
                };
                assert_eq!(leaf_of(&l), want, "rights {r:#x} {kind:?}");
            }
        }
        let rx = attrs_of(Rights::RX, MemKind::Normal);
        assert_eq!((rx.s2ap, rx.xn), (S2Ap::ReadOnly, false));
        let w = attrs_of(Rights::W, MemKind::Device);
        assert_eq!((w.s2ap, w.xn), (S2Ap::WriteOnly, true));
        assert_eq!(kind_of(&w), MemKind::Device);
    }

    #[test]
    fn table_errors_map_to_platform_errors() {
        assert_eq!(perr(E::NoMemory), PlatformError::NoMemory);
        assert_eq!(
            perr(E::AlreadyMapped { ipa: 0x1000 }),
            PlatformError::AlreadyMapped
        );
        assert_eq!(perr(E::NotMapped { ipa: 0x1000 }), PlatformError::NotMapped);
        assert_eq!(perr(E::ZeroSize), PlatformError::BadAddress);
        assert_eq!(perr(E::RangeOverflow), PlatformError::BadAddress);
        assert_eq!(
            perr(E::Unaligned { value: 0x800 }),
            PlatformError::BadAddress
        );
    }
}
