//! One VM's stage-2 address space: root table(s), VMID, and operations over IPA ranges.

use crate::descriptor::{raw, Attrs, Descriptor};
use crate::error::Error;
use crate::fault::{FaultKind, FaultStatus};
use crate::geometry::{
    block_size, level_shift, vttbr, Geometry, Stage2Config, ENTRIES_PER_TABLE, PAGE_SIZE,
};
use crate::memory::TableMemory;
use crate::tlb::TlbMaintenance;
use crate::update::{check_range, plan_table, replace_live_page, Committer, Node, Op, Reserve};

/// Which block sizes [`AddressSpace::map`] may use, and whether it may replace existing mappings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MapFlags(u8);

impl MapFlags {
    /// 4 KiB pages only, refuse to replace.
    pub const PAGES: MapFlags = MapFlags(0);
    /// Allow 2 MiB level-2 blocks where IPA, PA and range alignment allow.
    pub const BLOCK_2M: MapFlags = MapFlags(1);
    /// Allow 1 GiB level-1 blocks where IPA, PA and range alignment allow.
    pub const BLOCK_1G: MapFlags = MapFlags(2);
    /// Allow both block sizes.
    pub const BLOCKS: MapFlags = MapFlags(3);
    /// Replace existing mappings in the range (break-before-make where needed) instead of
    /// failing with [`Error::AlreadyMapped`].
    pub const REPLACE: MapFlags = MapFlags(4);

    /// Union of flags.
    pub const fn union(self, other: MapFlags) -> MapFlags {
        MapFlags(self.0 | other.0)
    }
    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: MapFlags) -> bool {
        self.0 & other.0 == other.0
    }
    pub(crate) const fn block_allowed(self, level: u8) -> bool {
        match level {
            3 => true,
            2 => self.contains(MapFlags::BLOCK_2M),
            1 => self.contains(MapFlags::BLOCK_1G),
            _ => false,
        }
    }
}

/// A valid leaf (block or page) descriptor as found by a walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// First IPA the leaf maps (aligned to its size).
    pub ipa: u64,
    /// Output (physical) address of `ipa`.
    pub pa: u64,
    /// Level of the descriptor: 1 (1 GiB block), 2 (2 MiB block) or 3 (4 KiB page).
    pub level: u8,
    /// Attributes.
    pub attrs: Attrs,
}

impl Leaf {
    /// Size of the region the leaf maps.
    pub const fn size(&self) -> u64 {
        block_size(self.level)
    }
    /// Whether the leaf maps `ipa`.
    pub const fn contains(&self, ipa: u64) -> bool {
        ipa >= self.ipa && ipa - self.ipa < self.size()
    }
    /// The PA `ipa` translates to through this leaf.
    pub const fn pa_of(&self, ipa: u64) -> Option<u64> {
        if self.contains(ipa) {
            Some(self.pa + (ipa - self.ipa))
        } else {
            None
        }
    }
}

/// One update of a batch ([`AddressSpace::plan_batch`], [`AddressSpace::apply_batch`]).
#[derive(Clone, Copy)]
pub enum Update<'a> {
    /// Map `[ipa, ipa + size)` to `[pa, pa + size)` (nothing in the range may be mapped).
    Map {
        /// First IPA.
        ipa: u64,
        /// Bytes.
        size: u64,
        /// First PA.
        pa: u64,
        /// Leaf attributes.
        attrs: Attrs,
        /// Block sizes allowed ([`MapFlags::REPLACE`] is not allowed in a batch).
        flags: MapFlags,
    },
    /// Unmap every page of `[ipa, ipa + size)`, all of which must be mapped.
    Unmap {
        /// First IPA.
        ipa: u64,
        /// Bytes.
        size: u64,
    },
    /// Replace the attributes `a` of every page of `[ipa, ipa + size)` (all mapped) by `f(a)`.
    Modify {
        /// First IPA.
        ipa: u64,
        /// Bytes.
        size: u64,
        /// The change (deterministic).
        f: &'a dyn Fn(Attrs) -> Attrs,
    },
}

impl Update<'_> {
    /// The IPA range it touches.
    pub fn range(&self) -> (u64, u64) {
        match *self {
            Update::Map { ipa, size, .. }
            | Update::Unmap { ipa, size }
            | Update::Modify { ipa, size, .. } => (ipa, size),
        }
    }
}

/// Table pages set aside for one batch by [`AddressSpace::reserve_tables`]: taken from the
/// address space's own table memory, given back by [`AddressSpace::apply_batch`] (what the
/// batch did not use) or [`AddressSpace::release_tables`].
pub struct TableReserve(Reserve);

impl TableReserve {
    /// Tables held.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
    }
}

/// The descriptor that translates one IPA, as one walk found it: the last-level entry for a
/// page, or the block or invalid entry where the walk stopped. [`AddressSpace::replace_page_at`]
/// uses it to replace a page without walking again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The IPA walked for.
    pub ipa: u64,
    table: u64,
    index: usize,
    level: u8,
    es: u64,
    desc: u64,
}

impl Entry {
    /// The entry as six words, for a caller that must carry it through an opaque type.
    pub fn to_words(&self) -> [u64; 6] {
        [
            self.ipa,
            self.table,
            self.index as u64,
            self.level as u64,
            self.es,
            self.desc,
        ]
    }
    /// An entry from [`to_words`](Self::to_words). Only words from `to_words` of this address
    /// space make sense; [`AddressSpace::replace_page_at`] refuses any that do not name the
    /// descriptor the walk saw.
    pub fn from_words(w: [u64; 6]) -> Entry {
        Entry {
            ipa: w[0],
            table: w[1],
            index: (w[2] as usize) % ENTRIES_PER_TABLE,
            level: (w[3] as u8).min(3),
            es: w[4],
            desc: w[5],
        }
    }
    /// The leaf this entry is, if it is one.
    pub fn leaf(&self) -> Option<Leaf> {
        raw::is_leaf(self.desc, self.level).then(|| Leaf {
            ipa: self.es,
            pa: raw::leaf_oa(self.desc, self.level),
            level: self.level,
            attrs: Attrs::from_descriptor(Descriptor::new(self.desc)),
        })
    }
}

/// Kind of access for [`AddressSpace::simulate_access`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Data read.
    Read,
    /// Data write.
    Write,
    /// Instruction fetch.
    Execute,
}

/// Where the tables of copy-on-write splits ([`AddressSpace::replace_page_at`]) came from,
/// counted since the address space was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SplitCounters {
    /// Tables taken from the address space's spare tables ([`AddressSpace::refill_spare`]):
    /// no allocator call on the fault path.
    pub from_spare: u64,
    /// Tables allocated from the table memory on the fault path because the spare tables had
    /// run out (the fallback).
    pub allocated: u64,
}

/// A VM's stage-2 translation tables over table memory `M`, with TLB maintenance `T`.
///
/// Every mutating operation is all-or-nothing: it first walks the tables read-only, checking
/// its arguments and counting the table pages it needs, allocates them all, and only then
/// writes descriptors. Replacing a valid descriptor by a valid one with another output address,
/// size or memory type is done break-before-make (invalid, TLB invalidate, new). Tables that
/// become empty are freed after the TLB invalidation that makes them unreachable.
///
/// Operations take `&mut self`; the RM serialises each VM's operations with a lock. The object
/// is `Send` when `M` and `T` are. Dropping it without [`destroy`](Self::destroy) leaks its table
/// pages (and its spare tables) into `M`.
///
/// # Spare tables for block splits
///
/// A copy-on-write fault inside a 2 MiB (1 GiB) block splits it, which takes one (two) table
/// pages. [`refill_spare`](Self::refill_spare), called off the fault path, sets table pages
/// aside (not zeroed: a split writes every entry before linking a table), and
/// [`replace_page_at`](Self::replace_page_at) takes them from there instead of calling the
/// table memory's allocator; when the spare tables run out it allocates as before.
/// [`destroy`](Self::destroy) and [`release_spare`](Self::release_spare) give them back.
/// [`table_pages`](Self::table_pages) counts tables in use only; the spare ones are
/// [`spare_tables`](Self::spare_tables).
///
/// `repr(C)`, the fields every walk reads (root, table memory, geometry) first and together,
/// so a fault in a VM whose record went cold misses few lines for them, not one per field the
/// compiler scattered.
#[repr(C)]
pub struct AddressSpace<M: TableMemory, T: TlbMaintenance> {
    root: u64,
    mem: M,
    geometry: Geometry,
    config: Stage2Config,
    tlb: T,
    tables: usize,
    /// Unzeroed table pages set aside for block splits.
    spare: Reserve,
    /// Split tables taken (from the spare or allocated) since the last refill.
    split_since_refill: usize,
    split_counters: SplitCounters,
}

impl<M: TableMemory, T: TlbMaintenance> AddressSpace<M, T> {
    /// Create an empty address space, allocating its (possibly concatenated) root table.
    pub fn new(mut mem: M, tlb: T, config: Stage2Config) -> Result<Self, Error> {
        let geometry = config.geometry()?;
        let n = geometry.root_tables();
        let root = mem.alloc_root(n).ok_or(Error::NoMemory)?;
        if !root.is_multiple_of(n as u64 * PAGE_SIZE) || root & !crate::descriptor::OA_MASK != 0 {
            mem.free_root(root, n);
            return Err(Error::BadTableMemory { pa: root });
        }
        Ok(AddressSpace {
            mem,
            tlb,
            config,
            geometry,
            root,
            tables: n,
            spare: Reserve::empty(),
            split_since_refill: 0,
            split_counters: SplitCounters::default(),
        })
    }

    /// Give an empty address space another configuration (an IPA size, a VM config's
    /// `ipa-bits`) in place, keeping its root where the new geometry needs no more root pages
    /// than it has: the pages it no longer needs go back to the table memory (they hold only
    /// zeros) and nothing is allocated or zeroed, where a new address space would allocate and
    /// zero a root and free the old one. `Ok(false)`, with nothing changed, if the space maps
    /// anything or the new geometry needs more root pages: make a new address space then.
    /// The VMID's TLB entries are invalidated, as when a space is destroyed.
    pub fn reconfigure_empty(&mut self, config: Stage2Config) -> Result<bool, Error> {
        if !self.is_empty() {
            return Ok(false);
        }
        let geometry = config.geometry()?;
        let (from, to) = (self.geometry.root_tables(), geometry.root_tables());
        if to > from {
            return Ok(false);
        }
        // Root pages are a power of two aligned to their size, so the first `to` of them are
        // aligned for the new root.
        debug_assert!(self.root.is_multiple_of(to as u64 * PAGE_SIZE));
        let vttbr = self.vttbr();
        self.tlb.invalidate_vmid(vttbr);
        if to < from {
            self.mem.shrink_root(self.root, from, to);
            self.tables -= from - to;
        }
        self.config = config;
        self.geometry = geometry;
        Ok(true)
    }

    /// The configuration the address space was created with.
    pub fn config(&self) -> &Stage2Config {
        &self.config
    }
    /// Start level and root-table concatenation.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }
    /// The VMID.
    pub fn vmid(&self) -> u16 {
        self.config.vmid
    }
    /// Physical address of the first root table.
    pub fn root_pa(&self) -> u64 {
        self.root
    }
    /// VTCR_EL2 value for this VM.
    pub fn vtcr(&self) -> u64 {
        // The configuration was validated in `new`.
        self.config.vtcr().unwrap_or(0)
    }
    /// VTTBR_EL2 value for this VM (root PA and VMID).
    pub fn vttbr(&self) -> u64 {
        vttbr(self.root, self.config.vmid)
    }
    /// Number of table pages in use, root tables included (not the spare tables).
    pub fn table_pages(&self) -> usize {
        self.tables
    }

    /// Whether the space maps nothing: no table below the root and every root entry invalid.
    /// Reads only the root pages (no walk).
    pub fn is_empty(&self) -> bool {
        let n = self.geometry.root_tables();
        self.tables == n && (0..n as u64).all(|t| self.mem.table_is_zero(self.root + t * PAGE_SIZE))
    }

    /// Table pages set aside for block splits (held from the table memory, not in use).
    pub fn spare_tables(&self) -> usize {
        self.spare.len()
    }

    /// Where split tables came from so far.
    pub fn split_counters(&self) -> SplitCounters {
        self.split_counters
    }

    /// Split tables taken (from the spare tables or allocated) since the last
    /// [`refill_spare`](Self::refill_spare): how many a refill should make up for.
    pub fn split_since_refill(&self) -> usize {
        self.split_since_refill
    }

    /// Set table pages aside for block splits until `target` are spare (off the fault path:
    /// the allocator is called here, not by the split). Stops early, keeping what it got, if
    /// the table memory runs out. Resets [`split_since_refill`](Self::split_since_refill).
    /// Returns the number of spare tables.
    pub fn refill_spare(&mut self, target: usize) -> usize {
        self.split_since_refill = 0;
        while self.spare.len() < target {
            match Reserve::fill_for_split(&mut self.mem, 1) {
                Ok(mut one) => {
                    self.spare.move_one_from(&mut one, &mut self.mem);
                }
                Err(_) => break,
            }
        }
        self.spare.len()
    }

    /// Give every spare table back to the table memory; returns how many.
    pub fn release_spare(&mut self) -> usize {
        let n = self.spare.len();
        self.spare.release(&mut self.mem);
        n
    }

    /// `n` tables for a split, and whether they are the whole spare (lent: the committer takes
    /// what it needs and the rest comes back, [`Committer::take_reserve`], with no list moves):
    /// the spare when it holds enough, else what it holds and the rest allocated (unzeroed),
    /// or none at all (what was taken from the spare goes back to it).
    fn split_tables(&mut self, n: usize) -> Result<(Reserve, bool), Error> {
        if n == 0 {
            return Ok((Reserve::empty(), false));
        }
        if self.spare.len() >= n {
            self.split_since_refill += n;
            self.split_counters.from_spare += n as u64;
            return Ok((core::mem::replace(&mut self.spare, Reserve::empty()), true));
        }
        if self.spare.len() == 0 {
            // None spare (a VM's first split, before any refill): allocated, as without spares.
            let r = Reserve::fill_for_split(&mut self.mem, n)?;
            self.split_since_refill += n;
            self.split_counters.allocated += n as u64;
            return Ok((r, false));
        }
        let mut r = Reserve::empty();
        while r.len() < n && r.move_one_from(&mut self.spare, &mut self.mem) {}
        let from_spare = r.len();
        if from_spare < n {
            match Reserve::fill_for_split(&mut self.mem, n - from_spare) {
                Ok(mut more) => while r.move_one_from(&mut more, &mut self.mem) {},
                Err(e) => {
                    while self.spare.move_one_from(&mut r, &mut self.mem) {}
                    return Err(e);
                }
            }
        }
        self.split_since_refill += n;
        self.split_counters.from_spare += from_spare as u64;
        self.split_counters.allocated += (n - from_spare) as u64;
        Ok((r, false))
    }

    /// The table memory.
    pub fn memory(&self) -> &M {
        &self.mem
    }
    /// The table memory, mutably (for host tests: failure injection, tracing).
    pub fn memory_mut(&mut self) -> &mut M {
        &mut self.mem
    }
    /// The TLB maintenance object.
    pub fn tlb(&self) -> &T {
        &self.tlb
    }
    /// The TLB maintenance object, mutably.
    pub fn tlb_mut(&mut self) -> &mut T {
        &mut self.tlb
    }

    fn check_ipa_range(&self, ipa: u64, size: u64) -> Result<u64, Error> {
        check_range(ipa, size, self.geometry.ipa_limit(), true)
    }

    /// Plan and commit `op` over `[s, e)`.
    fn run(&mut self, s: u64, e: u64, op: &Op<'_>) -> Result<(), Error> {
        let level = self.geometry.start_level();
        let mut needed = 0;
        let mut changed = false;
        for (t, base, cs, ce) in root_slices(self.root, &self.geometry, s, e) {
            let (n, c) = plan_table(&self.mem, Node::Real(t), level, base, cs, ce, op)?;
            needed += n;
            changed |= c;
        }
        if !changed {
            return Ok(());
        }
        let reserve = Reserve::fill(&mut self.mem, needed)?;
        let slices = root_slices(self.root, &self.geometry, s, e);
        let mut c = self.committer(reserve);
        for (t, base, cs, ce) in slices {
            // Cannot fail: the plan above found every argument error and counted every table.
            let r = c.commit_table(t, level, base, cs, ce, op, true);
            debug_assert!(r.is_ok(), "commit failed after a successful plan: {r:?}");
        }
        c.finish();
        Ok(())
    }

    /// Map `[ipa, ipa + size)` to `[pa, pa + size)` with `attrs`.
    ///
    /// Uses 2 MiB / 1 GiB blocks where `flags` permit and the IPA, PA and range are aligned for
    /// them, 4 KiB pages elsewhere. Without [`MapFlags::REPLACE`], any page already mapped makes
    /// the call fail with [`Error::AlreadyMapped`]; with it, existing mappings (including parts of
    /// blocks, which are split) are replaced break-before-make.
    pub fn map(
        &mut self,
        ipa: u64,
        size: u64,
        pa: u64,
        attrs: Attrs,
        flags: MapFlags,
    ) -> Result<(), Error> {
        let e = self.check_ipa_range(ipa, size)?;
        let pa_limit = 1u64 << self.config.pa_range.bits();
        check_range(pa, size, pa_limit, false)?;
        let op = Op::Map {
            ipa0: ipa,
            pa0: pa,
            attr_bits: attrs.to_bits(),
            flags,
        };
        self.run(ipa, e, &op)
    }

    /// Unmap every page in `[ipa, ipa + size)` (holes are fine). Blocks partly inside the range
    /// are split so the rest keeps its mapping; tables that become empty are freed.
    pub fn unmap(&mut self, ipa: u64, size: u64) -> Result<(), Error> {
        let e = self.check_ipa_range(ipa, size)?;
        self.run(ipa, e, &Op::Unmap)
    }

    /// Change permission and execute-never of every page in `[ipa, ipa + size)`, which must all
    /// be mapped ([`Error::NotMapped`] otherwise). Other attributes are kept.
    pub fn protect(
        &mut self,
        ipa: u64,
        size: u64,
        s2ap: crate::S2Ap,
        xn: bool,
    ) -> Result<(), Error> {
        self.modify_attrs(ipa, size, &|a: Attrs| a.with_s2ap(s2ap).with_xn(xn))
    }

    /// Replace the attributes `a` of every page in `[ipa, ipa + size)` by `f(a)` (`f` must be
    /// deterministic). Every page must be mapped. Blocks partly inside the range are split only
    /// if `f` changes their attributes. A memory-type or shareability change is done
    /// break-before-make; permission, AF and software-bit changes are written in place.
    pub fn modify_attrs(
        &mut self,
        ipa: u64,
        size: u64,
        f: &dyn Fn(Attrs) -> Attrs,
    ) -> Result<(), Error> {
        let e = self.check_ipa_range(ipa, size)?;
        self.run(
            ipa,
            e,
            &Op::Modify {
                f,
                skip_holes: false,
            },
        )
    }

    /// Like [`modify_attrs`](Self::modify_attrs), but pages of the range that are not mapped are
    /// skipped instead of refused (e.g. revoking write access from whatever part of a
    /// demand-paged range is populated).
    pub fn modify_mapped_attrs(
        &mut self,
        ipa: u64,
        size: u64,
        f: &dyn Fn(Attrs) -> Attrs,
    ) -> Result<(), Error> {
        let e = self.check_ipa_range(ipa, size)?;
        self.run(
            ipa,
            e,
            &Op::Modify {
                f,
                skip_holes: true,
            },
        )
    }

    /// Make the page at `ipa` map `pa` with `attrs` (the copy-on-write step), whatever it mapped
    /// before. An enclosing block is split (the rest of it keeps its mapping); the old descriptor
    /// is replaced break-before-make and invalidated. All or nothing: the split tables are
    /// allocated first. Returns the leaf that mapped `ipa` before, if any.
    pub fn replace_page(&mut self, ipa: u64, pa: u64, attrs: Attrs) -> Result<Option<Leaf>, Error> {
        self.check_ipa_range(ipa, PAGE_SIZE)?;
        let old = self.query(ipa);
        self.map(ipa, PAGE_SIZE, pa, attrs, MapFlags::REPLACE)?;
        Ok(old)
    }

    /// Check a batch of updates against the current tables and count the table pages applying it
    /// needs (an upper bound). Nothing changes.
    ///
    /// The updates must touch pairwise disjoint ranges ([`Error::Overlap`]); each is checked
    /// and counted against the tables as they are now. [`apply_batch`](Self::apply_batch) runs
    /// maps and modifies first, unmaps last, so the tables an unmap empties are never ones a map
    /// of the batch counted on, and the sum of the counts bounds what the batch takes.
    pub fn plan_batch(&self, updates: &[Update<'_>]) -> Result<usize, Error> {
        for (i, u) in updates.iter().enumerate() {
            let (a, sa) = u.range();
            for v in &updates[..i] {
                let (b, sb) = v.range();
                if a < b.saturating_add(sb) && b < a.saturating_add(sa) {
                    return Err(Error::Overlap { ipa: a.max(b) });
                }
            }
        }
        let mut needed = 0;
        for u in updates {
            needed += self.plan_update(u)?;
        }
        Ok(needed)
    }

    fn plan_update(&self, u: &Update<'_>) -> Result<usize, Error> {
        let (s, e, op) = batch_op(&self.geometry, self.config.pa_range.bits(), u)?;
        if let Update::Unmap { ipa, size } = *u {
            // A batch unmap covers mapped pages only (the RM's seam contract).
            self.require_mapped(ipa, size)?;
        }
        let level = self.geometry.start_level();
        let mut needed = 0;
        for (t, base, cs, ce) in root_slices(self.root, &self.geometry, s, e) {
            needed += plan_table(&self.mem, Node::Real(t), level, base, cs, ce, &op)?.0;
        }
        Ok(needed)
    }

    fn require_mapped(&self, ipa: u64, size: u64) -> Result<(), Error> {
        let end = ipa + size;
        let mut cur = ipa;
        while cur < end {
            let l = self.query(cur).ok_or(Error::NotMapped { ipa: cur })?;
            cur = l.ipa + l.size();
        }
        Ok(())
    }

    /// Take `n` table pages from the table memory for a batch (all or none).
    pub fn reserve_tables(&mut self, n: usize) -> Result<TableReserve, Error> {
        Reserve::fill(&mut self.mem, n).map(TableReserve)
    }

    /// Give an unused reserve back to the table memory.
    pub fn release_tables(&mut self, mut r: TableReserve) {
        r.0.release(&mut self.mem);
    }

    /// Apply a batch that [`plan_batch`](Self::plan_batch) accepted against these very tables,
    /// with at least as many reserved tables as it counted. Cannot fail then: maps and modifies
    /// first, unmaps last, break-before-make and TLB invalidation batched over the whole batch.
    /// Unused reserve pages go back to the table memory.
    pub fn apply_batch(&mut self, reserve: TableReserve, updates: &[Update<'_>]) {
        let level = self.geometry.start_level();
        let (root, geometry, pa_bits) = (self.root, self.geometry, self.config.pa_range.bits());
        let mut c = self.committer(reserve.0);
        for unmaps in [false, true] {
            for u in updates {
                if matches!(u, Update::Unmap { .. }) != unmaps {
                    continue;
                }
                let Ok((s, e, op)) = batch_op(&geometry, pa_bits, u) else {
                    debug_assert!(false, "apply_batch of an update plan_batch refused");
                    continue;
                };
                for (t, base, cs, ce) in root_slices(root, &geometry, s, e) {
                    let r = c.commit_table(t, level, base, cs, ce, &op, true);
                    debug_assert!(
                        r.is_ok(),
                        "batch commit failed after a successful plan: {r:?}"
                    );
                }
                c.settle();
            }
        }
        // Summed per-update counts may exceed what the batch took: the rest goes back.
        c.finish_with_spare();
    }

    /// Walk the tables for `ipa` once: the entry that translates it (see [`Entry`]). `None` if
    /// `ipa` is outside the address space.
    pub fn entry(&self, ipa: u64) -> Option<Entry> {
        if ipa >= self.geometry.ipa_limit() {
            return None;
        }
        Some(self.find_entry(ipa))
    }

    /// Make the page at `e.ipa` map `pa` with `attrs` using the entry one walk found, without
    /// walking again (the copy-on-write step): a page entry is replaced break-before-make in
    /// place; a block is split first (one table from the table memory, filled whole from the
    /// block, so it is never zeroed first) and the page's entry in it replaced; an invalid entry
    /// at the last level is written. [`Error::StaleEntry`] if the descriptor changed since the
    /// walk; [`Error::NotMapped`] if the entry is invalid above the last level. All or nothing.
    pub fn replace_page_at(&mut self, e: &Entry, pa: u64, attrs: Attrs) -> Result<(), Error> {
        let page = e.ipa & !(PAGE_SIZE - 1);
        check_range(pa, PAGE_SIZE, 1u64 << self.config.pa_range.bits(), false)?;
        let consistent = e.ipa < self.geometry.ipa_limit()
            && e.level >= self.geometry.start_level()
            && e.es == e.ipa & !(block_size(e.level) - 1);
        if !consistent || self.mem.read_entry(e.table, e.index) != e.desc {
            return Err(Error::StaleEntry { ipa: e.ipa });
        }
        let new_leaf = raw::leaf(pa, attrs.to_bits(), 3);
        if e.level < 3 && !raw::is_leaf(e.desc, e.level) {
            return Err(Error::NotMapped { ipa: e.ipa });
        }
        if e.level == 3 {
            // No split: the page entry in place (the common fault; kept apart from the split
            // below so that it stays as small as it was).
            let vttbr = self.vttbr();
            let at = (e.table, e.index, e.es);
            if !replace_live_page(&mut self.mem, &mut self.tlb, vttbr, at, e.desc, new_leaf) {
                let mut c = self.committer(Reserve::empty());
                c.replace(e.table, e.index, 3, e.es, e.desc, new_leaf, true);
                c.finish();
            }
            return Ok(());
        }
        self.replace_splitting(e, page, new_leaf)
    }

    /// A committer over this address space's tables, holding `reserve` for the tables it links.
    #[inline]
    fn committer(&mut self, reserve: Reserve) -> Committer<'_, M, T> {
        let vttbr = self.vttbr();
        Committer::new(
            &mut self.mem,
            &mut self.tlb,
            vttbr,
            &mut self.tables,
            reserve,
        )
    }

    /// [`replace_page_at`](Self::replace_page_at) of a page inside the block `e`: a 2 MiB block
    /// splits into one table, a 1 GiB block into two (down to the page), from the spare tables
    /// when there are enough (no allocator call), else allocated. Split tables are written
    /// whole (`fill_from_block`) before they are linked.
    #[inline(never)]
    fn replace_splitting(&mut self, e: &Entry, page: u64, new_leaf: u64) -> Result<(), Error> {
        let (reserve, lent) = self.split_tables((3 - e.level) as usize)?;
        // Not `self.committer`: the spare is handed back to `self.spare` while `c` lives.
        let vttbr = self.vttbr();
        let mut c = Committer::new(
            &mut self.mem,
            &mut self.tlb,
            vttbr,
            &mut self.tables,
            reserve,
        );
        // A fresh table holding the block's pages (every entry written), with this page's
        // entry already the new one, then swap it in for the block.
        let t = c.take_table()?;
        let mut lvl = e.level + 1;
        c.fill_from_block(t, e.desc, lvl);
        let mut table = t;
        let mut base = e.es;
        while lvl < 3 {
            // A 1 GiB block splits into 2 MiB blocks: split the one holding the page too.
            let i = ((page - base) >> level_shift(lvl)) as usize;
            let sub = c.take_table()?;
            let blk = c.mem.read_entry(table, i);
            c.fill_from_block(sub, blk, lvl + 1);
            c.mem.write_entry(table, i, raw::table(sub));
            base += i as u64 * block_size(lvl);
            table = sub;
            lvl += 1;
        }
        let i = ((page - base) >> level_shift(3)) as usize;
        c.mem.write_entry(table, i, new_leaf);
        c.replace(e.table, e.index, e.level, e.es, e.desc, raw::table(t), true);
        if lent {
            // The spare tables the split did not take stay spare.
            self.spare = c.take_reserve();
        }
        c.finish();
        Ok(())
    }

    /// Split the block that maps `ipa` into a next-level table with the same output and
    /// attributes (break-before-make). [`Error::NotABlock`] if `ipa` is mapped by a page,
    /// [`Error::NotMapped`] if not mapped.
    pub fn split_block(&mut self, ipa: u64) -> Result<(), Error> {
        self.check_ipa_range(ipa, PAGE_SIZE)?;
        let Entry {
            table,
            index,
            level,
            es,
            desc: old,
            ..
        } = self.find_entry(ipa);
        if !raw::is_leaf(old, level) {
            return Err(Error::NotMapped { ipa });
        }
        if level == 3 {
            return Err(Error::NotABlock { ipa });
        }
        let reserve = Reserve::fill_for_split(&mut self.mem, 1)?;
        let mut c = self.committer(reserve);
        let t = c.take_table()?;
        c.fill_from_block(t, old, level + 1);
        c.replace(table, index, level, es, old, raw::table(t), true);
        c.finish();
        Ok(())
    }

    /// Merge, bottom-up, every table inside `[ipa, ipa + size)` whose 512 leaves have identical
    /// attributes (software bits included) and contiguous output aligned for a block, into one
    /// 2 MiB or 1 GiB block (break-before-make; the table is freed). Returns how many blocks
    /// were made. Never allocates.
    pub fn merge(&mut self, ipa: u64, size: u64) -> Result<usize, Error> {
        let e = self.check_ipa_range(ipa, size)?;
        let level = self.geometry.start_level();
        let slices = root_slices(self.root, &self.geometry, ipa, e);
        let mut c = self.committer(Reserve::empty());
        let mut merged = 0;
        for (t, base, cs, ce) in slices {
            merged += c.merge_table(t, level, base, cs, ce);
        }
        c.finish();
        Ok(merged)
    }

    /// Walk to the first non-table descriptor for `ipa` (which must be in range).
    fn find_entry(&self, ipa: u64) -> Entry {
        let mut level = self.geometry.start_level();
        let shift = level_shift(level);
        let idx = (ipa >> shift) as usize;
        let mut table = self.root + (idx / ENTRIES_PER_TABLE) as u64 * PAGE_SIZE;
        let mut index = idx % ENTRIES_PER_TABLE;
        loop {
            let d = self.mem.read_entry(table, index);
            let es = ipa & !(block_size(level) - 1);
            if !raw::is_table(d, level) {
                return Entry {
                    ipa,
                    table,
                    index,
                    level,
                    es,
                    desc: d,
                };
            }
            table = raw::table_pa(d);
            level += 1;
            index = ((ipa >> level_shift(level)) as usize) % ENTRIES_PER_TABLE;
        }
    }

    /// The leaf mapping `ipa`, walking the tables as the MMU would; `None` if unmapped or out of
    /// range.
    pub fn query(&self, ipa: u64) -> Option<Leaf> {
        if ipa >= self.geometry.ipa_limit() {
            return None;
        }
        let Entry {
            level, es, desc: d, ..
        } = self.find_entry(ipa);
        raw::is_leaf(d, level).then(|| Leaf {
            ipa: es,
            pa: raw::leaf_oa(d, level),
            level,
            attrs: Attrs::from_descriptor(Descriptor::new(d)),
        })
    }

    /// The PA and attributes `ipa` translates to.
    pub fn translate(&self, ipa: u64) -> Option<(u64, Attrs)> {
        let leaf = self.query(ipa)?;
        Some((leaf.pa + (ipa - leaf.ipa), leaf.attrs))
    }

    /// What the MMU would do for a guest `access` to `ipa`: the PA, or the stage-2 fault it
    /// raises (translation fault at the level of the invalid descriptor, access-flag fault,
    /// permission fault at the leaf's level). An IPA at or above 2^ipa_bits gives a translation
    /// fault at level 0, whatever the start level: the input-size check of `AArch64.S2Translate`
    /// reports level 0 (FSC 0x04), as the MMU does (checked against QEMU's `AT S12E1R`).
    pub fn simulate_access(&self, ipa: u64, access: Access) -> Result<u64, FaultStatus> {
        if ipa >= self.geometry.ipa_limit() {
            return Err(FaultStatus::new(FaultKind::Translation, Some(0)));
        }
        let Entry {
            level, es, desc: d, ..
        } = self.find_entry(ipa);
        if !raw::is_leaf(d, level) {
            return Err(FaultStatus::new(FaultKind::Translation, Some(level)));
        }
        let attrs = Attrs::from_descriptor(Descriptor::new(d));
        if !attrs.af {
            return Err(FaultStatus::new(FaultKind::AccessFlag, Some(level)));
        }
        let allowed = match access {
            Access::Read => attrs.s2ap.readable(),
            Access::Write => attrs.s2ap.writable(),
            Access::Execute => !attrs.xn,
        };
        if !allowed {
            return Err(FaultStatus::new(FaultKind::Permission, Some(level)));
        }
        Ok(raw::leaf_oa(d, level) + (ipa - es))
    }

    /// Call `f` for every valid leaf, in IPA order (for invariant and isolation checkers).
    pub fn for_each_leaf(&self, f: &mut dyn FnMut(&Leaf)) {
        let level = self.geometry.start_level();
        let span = ENTRIES_PER_TABLE as u64 * block_size(level);
        for t in 0..self.geometry.root_tables() as u64 {
            self.leaves_in(self.root + t * PAGE_SIZE, level, t * span, f);
        }
    }

    fn leaves_in(&self, table: u64, level: u8, base: u64, f: &mut dyn FnMut(&Leaf)) {
        for i in 0..ENTRIES_PER_TABLE {
            let d = self.mem.read_entry(table, i);
            let es = base + i as u64 * block_size(level);
            if raw::is_table(d, level) {
                self.leaves_in(raw::table_pa(d), level + 1, es, f);
            } else if raw::is_leaf(d, level) {
                f(&Leaf {
                    ipa: es,
                    pa: raw::leaf_oa(d, level),
                    level,
                    attrs: Attrs::from_descriptor(Descriptor::new(d)),
                });
            }
        }
    }

    /// Call `f` for every valid leaf that maps part of `[ipa, ipa + size)`, in IPA order (a leaf
    /// is reported whole even if it extends beyond the range). Visits only the tables that
    /// cover the range.
    pub fn for_each_leaf_in(
        &self,
        ipa: u64,
        size: u64,
        f: &mut dyn FnMut(&Leaf),
    ) -> Result<(), Error> {
        let e = self.check_ipa_range(ipa, size)?;
        let level = self.geometry.start_level();
        for (t, base, s, e) in root_slices(self.root, &self.geometry, ipa, e) {
            self.leaves_in_range(t, level, base, s, e, f);
        }
        Ok(())
    }

    fn leaves_in_range(
        &self,
        table: u64,
        level: u8,
        base: u64,
        s: u64,
        e: u64,
        f: &mut dyn FnMut(&Leaf),
    ) {
        let shift = level_shift(level);
        let (i0, i1) = (
            ((s - base) >> shift) as usize,
            ((e - 1 - base) >> shift) as usize,
        );
        for i in i0..=i1 {
            let d = self.mem.read_entry(table, i);
            let es = base + i as u64 * block_size(level);
            if raw::is_table(d, level) {
                let (cs, ce) = (s.max(es), e.min(es + block_size(level)));
                self.leaves_in_range(raw::table_pa(d), level + 1, es, cs, ce, f);
            } else if raw::is_leaf(d, level) {
                f(&Leaf {
                    ipa: es,
                    pa: raw::leaf_oa(d, level),
                    level,
                    attrs: Attrs::from_descriptor(Descriptor::new(d)),
                });
            }
        }
    }

    /// Call `f(table_pa, level)` for every table page reachable from the root, root pages
    /// included (each concatenated root page once).
    pub fn for_each_table(&self, f: &mut dyn FnMut(u64, u8)) {
        let level = self.geometry.start_level();
        for t in 0..self.geometry.root_tables() as u64 {
            self.tables_in(self.root + t * PAGE_SIZE, level, f);
        }
    }

    fn tables_in(&self, table: u64, level: u8, f: &mut dyn FnMut(u64, u8)) {
        f(table, level);
        for i in 0..ENTRIES_PER_TABLE {
            let d = self.mem.read_entry(table, i);
            if raw::is_table(d, level) {
                self.tables_in(raw::table_pa(d), level + 1, f);
            }
        }
    }

    /// Tear the address space down: invalidate the whole VMID, free every table page (root
    /// included, and the spare tables), and hand back the table memory and TLB objects.
    pub fn destroy(mut self) -> (M, T) {
        fn free_below<M: TableMemory>(mem: &mut M, t: u64, level: u8, tables: &mut usize) {
            for i in 0..ENTRIES_PER_TABLE {
                let d = mem.read_entry(t, i);
                if raw::is_table(d, level) {
                    let child = raw::table_pa(d);
                    free_below(mem, child, level + 1, tables);
                    mem.free_table(child);
                    *tables -= 1;
                }
            }
        }
        self.spare.release(&mut self.mem);
        let vttbr = self.vttbr();
        self.tlb.invalidate_vmid(vttbr);
        let level = self.geometry.start_level();
        // With no table below the root (`tables` counts them exactly) there is nothing to
        // walk for: an empty space, or one of root-level blocks, is freed without reading its
        // 512 or more root entries.
        let below = self.tables > self.geometry.root_tables();
        for t in (0..self.geometry.root_tables() as u64).filter(|_| below) {
            free_below(
                &mut self.mem,
                self.root + t * PAGE_SIZE,
                level,
                &mut self.tables,
            );
        }
        self.mem.free_root(self.root, self.geometry.root_tables());
        (self.mem, self.tlb)
    }
}

/// The root tables `[s, e)` touches: (table PA, IPA of its entry 0, clipped start, clipped end).
/// The engine operation of a batch update over `[s, e)`, with its arguments checked.
fn batch_op<'b>(g: &Geometry, pa_bits: u8, u: &Update<'b>) -> Result<(u64, u64, Op<'b>), Error> {
    Ok(match *u {
        Update::Map {
            ipa,
            size,
            pa,
            attrs,
            flags,
        } => {
            let e = check_range(ipa, size, g.ipa_limit(), true)?;
            check_range(pa, size, 1u64 << pa_bits, false)?;
            let flags = MapFlags(flags.0 & !MapFlags::REPLACE.0);
            (
                ipa,
                e,
                Op::Map {
                    ipa0: ipa,
                    pa0: pa,
                    attr_bits: attrs.to_bits(),
                    flags,
                },
            )
        }
        Update::Unmap { ipa, size } => {
            (ipa, check_range(ipa, size, g.ipa_limit(), true)?, Op::Unmap)
        }
        Update::Modify { ipa, size, f } => (
            ipa,
            check_range(ipa, size, g.ipa_limit(), true)?,
            Op::Modify {
                f,
                skip_holes: false,
            },
        ),
    })
}

fn root_slices(
    root: u64,
    g: &Geometry,
    s: u64,
    e: u64,
) -> impl Iterator<Item = (u64, u64, u64, u64)> {
    let span = ENTRIES_PER_TABLE as u64 * block_size(g.start_level());
    ((s / span)..=((e - 1) / span)).map(move |t| {
        let base = t * span;
        (root + t * PAGE_SIZE, base, s.max(base), e.min(base + span))
    })
}
