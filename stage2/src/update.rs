//! The update engine: plan (read-only, counts the tables an operation needs and finds argument
//! errors), then commit (cannot fail: every table comes from a pre-filled reserve), with
//! break-before-make, batched TLB invalidation and deferred freeing of unlinked tables.

use crate::descriptor::{raw, Attrs, Descriptor, BBM_ATTR_MASK, HW_ATTR_MASK, OA_MASK};
use crate::error::Error;
use crate::geometry::{block_size, level_shift, ENTRIES_PER_TABLE, PAGE_SIZE};
use crate::memory::TableMemory;
use crate::tlb::{TlbMaintenance, MAX_TLBI_IPAS};
use crate::MapFlags;
use core::mem::MaybeUninit;

/// What to do over an IPA range.
pub(crate) enum Op<'a> {
    /// Map `[ipa0, ..)` to `[pa0, ..)` with leaf attribute bits `attr_bits`.
    Map {
        ipa0: u64,
        pa0: u64,
        attr_bits: u64,
        flags: MapFlags,
    },
    /// Remove every mapping.
    Unmap,
    /// Replace the attributes of every mapped page; unless `skip_holes`, every page must be
    /// mapped.
    Modify {
        f: &'a dyn Fn(Attrs) -> Attrs,
        skip_holes: bool,
    },
}

/// A table as the walker sees it: real memory, a block seen as the table it would split into,
/// or an empty table that does not exist yet.
#[derive(Clone, Copy)]
pub(crate) enum Node {
    Real(u64),
    Virtual(u64),
    Empty,
}

/// The decision for one descriptor.
enum Action {
    Nothing,
    Write(u64),
    Clear,
    Descend(u64),
    DescendNew,
    Split,
}

fn decide(op: &Op<'_>, old: u64, level: u8, es: u64, s: u64, e: u64) -> Result<Action, Error> {
    let size = block_size(level);
    let full = s == es && e - es == size;
    let table = raw::is_table(old, level);
    let leaf = raw::is_leaf(old, level);
    Ok(match op {
        Op::Map {
            ipa0,
            pa0,
            attr_bits,
            flags,
        } => {
            let pa = pa0 + (s - ipa0);
            let replace = flags.contains(MapFlags::REPLACE);
            if full && flags.block_allowed(level) && pa & (size - 1) == 0 {
                let new = raw::leaf(pa, *attr_bits, level);
                if table {
                    if replace {
                        Action::Write(new)
                    } else {
                        // Find the exact mapped page (tables are never empty) and report it.
                        Action::Descend(raw::table_pa(old))
                    }
                } else if leaf {
                    if !replace {
                        return Err(Error::AlreadyMapped { ipa: s });
                    } else if old == new {
                        Action::Nothing
                    } else {
                        Action::Write(new)
                    }
                } else {
                    Action::Write(new)
                }
            } else if table {
                Action::Descend(raw::table_pa(old))
            } else if leaf {
                if !replace {
                    return Err(Error::AlreadyMapped { ipa: s });
                }
                Action::Split
            } else {
                Action::DescendNew
            }
        }
        Op::Unmap => {
            if table {
                if full {
                    Action::Clear
                } else {
                    Action::Descend(raw::table_pa(old))
                }
            } else if leaf {
                if full {
                    Action::Clear
                } else {
                    Action::Split
                }
            } else {
                Action::Nothing
            }
        }
        Op::Modify { f, skip_holes } => {
            if table {
                Action::Descend(raw::table_pa(old))
            } else if leaf {
                if full {
                    let attrs = f(Attrs::from_descriptor(Descriptor::new(old)));
                    let new = raw::leaf(raw::leaf_oa(old, level), attrs.to_bits(), level);
                    if new == old {
                        Action::Nothing
                    } else {
                        Action::Write(new)
                    }
                } else {
                    Action::Split
                }
            } else if *skip_holes {
                Action::Nothing
            } else {
                return Err(Error::NotMapped { ipa: s });
            }
        }
    })
}

/// The entries of one table that a map writes whole as leaves of that table's level: those the
/// range covers entirely, where the flags allow a leaf of that size and the output is aligned
/// for it. Over an invalid entry such a leaf is a plain write (no break-before-make, no table,
/// nothing to check), the case of a fresh mapping of a long physically contiguous range (a
/// golden image: 256 blocks of 2 MiB): [`plan_table`] and [`Committer::commit_table`] take it
/// with a validity test per entry instead of [`decide`], and anything else in the run (a
/// valid entry) still goes through [`decide`]. The result is exactly what [`decide`] gives
/// (`bulk_run_is_exactly_the_per_entry_path` in the tests compares the tables).
#[derive(Clone, Copy)]
struct Run {
    /// First and last index of the run.
    j0: usize,
    j1: usize,
    /// Output address of entry 0 of the table (wrapping: entries before the run may precede
    /// the range's PA).
    pa: u64,
    /// Leaf attribute bits.
    bits: u64,
}

impl Run {
    fn contains(&self, i: usize) -> bool {
        self.j0 <= i && i <= self.j1
    }

    /// The entries of the run from `i` (inside it) that are invalid in `node`: up to the
    /// returned index, exclusive.
    fn invalid_from<M: TableMemory>(&self, mem: &M, node: Node, level: u8, i: usize) -> usize {
        match node {
            Node::Empty => self.j1 + 1,
            // Entries of a block seen as a table are all leaves.
            Node::Virtual(_) => i,
            Node::Real(t) => {
                let mut k = i;
                while k <= self.j1 && free(mem.read_entry(t, k), level) {
                    k += 1;
                }
                k
            }
        }
    }
}

/// An invalid descriptor at `level` (neither table nor leaf): a map writes over it plainly.
#[inline]
fn free(d: u64, level: u8) -> bool {
    !raw::is_table(d, level) && !raw::is_leaf(d, level)
}

#[cfg(test)]
extern crate std;

#[cfg(test)]
std::thread_local! {
    /// Tests only: `false` makes every entry go through [`decide`] (the per-entry path the
    /// bulk run is compared with).
    static BULK: core::cell::Cell<bool> = const { core::cell::Cell::new(true) };
}

/// The bulk run of `op` over `[s, e)` within a table at `level` starting at `base`, if any.
fn bulk_run(op: &Op<'_>, level: u8, base: u64, s: u64, e: u64) -> Option<Run> {
    #[cfg(test)]
    if !BULK.with(|b| b.get()) {
        return None;
    }
    let Op::Map {
        ipa0,
        pa0,
        attr_bits,
        flags,
    } = *op
    else {
        return None;
    };
    let size = block_size(level);
    // `pa - ipa` is the same for every entry; entries are aligned, so all leaves are or none.
    let delta = pa0.wrapping_sub(ipa0);
    if !flags.block_allowed(level) || delta & (size - 1) != 0 {
        return None;
    }
    let shift = level_shift(level);
    // First entry starting at or after `s`, last one ending at or before `e`.
    let j0 = (s - base).div_ceil(size) as usize;
    let end = ((e - base) >> shift) as usize;
    (end > j0).then(|| Run {
        j0,
        j1: end - 1,
        pa: base.wrapping_add(delta),
        bits: attr_bits,
    })
}

/// Descriptor `i` of a node at `level`.
fn node_entry<M: TableMemory>(mem: &M, node: Node, level: u8, i: usize) -> u64 {
    match node {
        Node::Real(t) => mem.read_entry(t, i),
        Node::Empty => 0,
        Node::Virtual(block) => {
            let oa = raw::leaf_oa(block, level - 1) + i as u64 * block_size(level);
            raw::leaf(oa, block, level)
        }
    }
}

/// Index range `i0..=i1` of a table at `level` starting at `base` that `[s, e)` touches.
fn index_range(level: u8, base: u64, s: u64, e: u64) -> (usize, usize) {
    let shift = level_shift(level);
    (
        ((s - base) >> shift) as usize,
        ((e - 1 - base) >> shift) as usize,
    )
}

/// Plan `op` over `[s, e)` within a node: number of tables to allocate, and whether anything
/// would change. Reads only.
pub(crate) fn plan_table<M: TableMemory>(
    mem: &M,
    node: Node,
    level: u8,
    base: u64,
    s: u64,
    e: u64,
    op: &Op<'_>,
) -> Result<(usize, bool), Error> {
    let size = block_size(level);
    let (i0, i1) = index_range(level, base, s, e);
    let mut count = 0;
    let mut changed = false;
    let run = bulk_run(op, level, base, s, e);
    let mut idx = i0..=i1;
    while let Some(i) = idx.next() {
        if let Some(r) = run.filter(|r| r.contains(i)) {
            let k = r.invalid_from(mem, node, level, i);
            if k > i {
                changed = true;
                idx = k..=i1;
                continue;
            }
        }
        let old = node_entry(mem, node, level, i);
        let es = base + i as u64 * size;
        let (cs, ce) = (s.max(es), e.min(es + size));
        match decide(op, old, level, es, cs, ce)? {
            Action::Nothing => {}
            Action::Write(_) | Action::Clear => changed = true,
            Action::Descend(t) => {
                let (n, c) = plan_table(mem, Node::Real(t), level + 1, es, cs, ce, op)?;
                count += n;
                changed |= c;
            }
            Action::DescendNew => {
                let (n, _) = plan_table(mem, Node::Empty, level + 1, es, cs, ce, op)?;
                count += n + 1;
                changed = true;
            }
            Action::Split => {
                let (n, c) = plan_table(mem, Node::Virtual(old), level + 1, es, cs, ce, op)?;
                if c {
                    count += n + 1;
                    changed = true;
                }
            }
        }
    }
    Ok((count, changed))
}

/// Pre-allocated table pages, linked through their first word (they are not reachable by any
/// walker while in the reserve).
pub(crate) struct Reserve {
    head: Option<u64>,
    len: usize,
}

impl Reserve {
    pub(crate) const fn empty() -> Reserve {
        Reserve { head: None, len: 0 }
    }

    /// Allocate `n` zeroed tables, or none at all.
    pub(crate) fn fill<M: TableMemory>(mem: &mut M, n: usize) -> Result<Reserve, Error> {
        Reserve::fill_with(mem, n, M::alloc_table)
    }

    /// Allocate `n` tables for block splits, which write every entry before linking a table
    /// ([`TableMemory::alloc_table_unzeroed`]; `take` still clears the link word), or none.
    pub(crate) fn fill_for_split<M: TableMemory>(mem: &mut M, n: usize) -> Result<Reserve, Error> {
        Reserve::fill_with(mem, n, M::alloc_table_unzeroed)
    }

    fn fill_with<M: TableMemory>(
        mem: &mut M,
        n: usize,
        alloc: fn(&mut M) -> Option<u64>,
    ) -> Result<Reserve, Error> {
        let mut r = Reserve::empty();
        for _ in 0..n {
            match alloc(mem) {
                Some(pa) if pa & !OA_MASK == 0 => r.push(mem, pa),
                Some(pa) => {
                    mem.free_table(pa);
                    r.release(mem);
                    return Err(Error::BadTableMemory { pa });
                }
                None => {
                    r.release(mem);
                    return Err(Error::NoMemory);
                }
            }
        }
        Ok(r)
    }

    fn push<M: TableMemory>(&mut self, mem: &mut M, pa: u64) {
        mem.write_entry(pa, 0, self.head.unwrap_or(u64::MAX));
        self.head = Some(pa);
        self.len += 1;
    }

    /// Take a table (zeroed if it was allocated zeroed).
    pub(crate) fn take<M: TableMemory>(&mut self, mem: &mut M) -> Option<u64> {
        let pa = self.head?;
        let next = mem.read_entry(pa, 0);
        mem.write_entry(pa, 0, 0);
        self.head = if next == u64::MAX { None } else { Some(next) };
        self.len -= 1;
        Some(pa)
    }

    /// Return every remaining page to the allocator.
    pub(crate) fn release<M: TableMemory>(&mut self, mem: &mut M) {
        while let Some(pa) = self.take(mem) {
            mem.free_table(pa);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Move one table from `from` into this reserve; `false` if `from` is empty.
    pub(crate) fn move_one_from<M: TableMemory>(
        &mut self,
        from: &mut Reserve,
        mem: &mut M,
    ) -> bool {
        match from.take(mem) {
            Some(pa) => {
                self.push(mem, pa);
                true
            }
            None => false,
        }
    }
}

/// A fixed-capacity list that is not zero-filled on creation: the committer is built on every
/// operation (the copy-on-write hot path), and clearing ~6 KiB of buffers each time would cost
/// more than the table update itself.
struct FixedBuf<T: Copy, const N: usize> {
    data: [MaybeUninit<T>; N],
    len: usize,
}

impl<T: Copy, const N: usize> FixedBuf<T, N> {
    const fn new() -> Self {
        FixedBuf {
            data: [const { MaybeUninit::uninit() }; N],
            len: 0,
        }
    }
    fn is_full(&self) -> bool {
        self.len == N
    }
    /// Append; the caller checks `is_full` first.
    fn push(&mut self, v: T) {
        self.data[self.len].write(v);
        self.len += 1;
    }
    fn as_slice(&self) -> &[T] {
        // SAFETY: elements `0..len` were initialised by `push` (`len` only grows there and is
        // reset to 0 by `clear`); `MaybeUninit<T>` has the layout of `T`.
        unsafe { core::slice::from_raw_parts(self.data.as_ptr().cast::<T>(), self.len) }
    }
    fn clear(&mut self) {
        self.len = 0;
    }
}

const MAX_PENDING: usize = 64;
const MAX_FREES: usize = 64;
/// Tag in a deferred free (table pages are page aligned, so bit 0 is free): the page is all
/// zeros ([`TableMemory::free_zeroed_table`]).
const ZEROED: u64 = 1;

/// Break-before-make of one live level-3 page entry whose output changes (the copy-on-write
/// replace: a golden page for the VM's copy): `table[i]`, translating the page at `ipa` and
/// holding `old` now, made invalid, the page's TLB entries invalidated, `new` written, the
/// writes made visible to table walkers. The sequence [`Committer`] makes for one entry,
/// without its queues (they cost a CoW fault ~150 instructions). Returns false, having written
/// nothing, if `old` is not a valid page or `new` has the same output: the caller uses the
/// committer then.
pub(crate) fn replace_live_page<M: TableMemory, T: TlbMaintenance>(
    mem: &mut M,
    tlb: &mut T,
    vttbr: u64,
    (table, i, ipa): (u64, usize, u64),
    old: u64,
    new: u64,
) -> bool {
    if !raw::is_leaf(old, 3) || raw::leaf_oa(old, 3) == raw::leaf_oa(new, 3) {
        return false;
    }
    mem.write_entry(table, i, 0);
    tlb.invalidate_ipas(vttbr, &[ipa]);
    mem.write_entry(table, i, new);
    tlb.sync_writes(vttbr);
    true
}

/// The commit side: writes descriptors, batches TLB invalidation, defers "make" writes of
/// break-before-make and frees of unlinked tables until after the invalidation.
pub(crate) struct Committer<'a, M: TableMemory, T: TlbMaintenance> {
    pub(crate) mem: &'a mut M,
    pub(crate) tlb: &'a mut T,
    pub(crate) vttbr: u64,
    pub(crate) tables: &'a mut usize,
    pub(crate) reserve: Reserve,
    ipas: FixedBuf<u64, MAX_TLBI_IPAS>,
    whole_vmid: bool,
    pending: FixedBuf<(u64, u16, u64), MAX_PENDING>,
    frees: FixedBuf<u64, MAX_FREES>,
    wrote: bool,
    /// Flushes so far (an unmap's descent asks whether one came between its invalidations and
    /// the unlink of the table it emptied).
    flushes: u32,
}

impl<'a, M: TableMemory, T: TlbMaintenance> Committer<'a, M, T> {
    pub(crate) fn new(
        mem: &'a mut M,
        tlb: &'a mut T,
        vttbr: u64,
        tables: &'a mut usize,
        reserve: Reserve,
    ) -> Self {
        Committer {
            mem,
            tlb,
            vttbr,
            tables,
            reserve,
            ipas: FixedBuf::new(),
            whole_vmid: false,
            pending: FixedBuf::new(),
            frees: FixedBuf::new(),
            wrote: false,
            flushes: 0,
        }
    }

    /// Write a descriptor (one 64-bit store).
    fn put(&mut self, table: u64, index: usize, value: u64) {
        self.wrote = true;
        self.mem.write_entry(table, index, value);
    }

    /// Invalidate what was broken, then write the pending descriptors, then free unlinked tables.
    pub(crate) fn flush(&mut self) {
        if self.whole_vmid {
            self.tlb.invalidate_vmid(self.vttbr);
        } else if !self.ipas.as_slice().is_empty() {
            self.tlb.invalidate_ipas(self.vttbr, self.ipas.as_slice());
        }
        for &(t, i, v) in self.pending.as_slice() {
            self.mem.write_entry(t, i as usize, v);
        }
        for &f in self.frees.as_slice() {
            if f & ZEROED != 0 {
                self.mem.free_zeroed_table(f & !ZEROED);
            } else {
                self.mem.free_table(f);
            }
            *self.tables -= 1;
        }
        self.ipas.clear();
        self.whole_vmid = false;
        self.pending.clear();
        self.frees.clear();
        self.flushes = self.flushes.wrapping_add(1);
    }

    /// Between the updates of a batch: make the deferred "make" writes of break-before-make
    /// (and the invalidation before them) happen, so the next update walks the tables as they
    /// now are, not an entry still waiting to be written.
    pub(crate) fn settle(&mut self) {
        if !self.pending.as_slice().is_empty() {
            self.flush();
        }
    }

    /// Finish a batch, whose reserve may hold more than it took: flush and give the rest back.
    /// By reference, as [`finish`](Self::finish).
    pub(crate) fn finish_with_spare(&mut self) {
        self.flush();
        if self.wrote {
            self.tlb.sync_writes(self.vttbr);
        }
        self.reserve.release(self.mem);
    }

    /// Finish: flush and give unused reserve pages back. By reference, not by value: moving
    /// the committer (its fixed TLBI, pending and free lists, 6 KiB) into the call was a
    /// `memcpy` of 6 KiB on every copy-on-write fault (2.7 k of the 3.5 k EL2 instructions of
    /// a page replace in QEMU). The committer is not used after it.
    pub(crate) fn finish(&mut self) {
        self.flush();
        if self.wrote {
            // Make the final descriptor writes visible to table walkers before returning.
            self.tlb.sync_writes(self.vttbr);
        }
        debug_assert_eq!(self.reserve.len(), 0, "plan over-counted tables");
        self.reserve.release(self.mem);
    }

    /// The reserve's tables not taken (yet), leaving it empty: a caller that lent its own
    /// spare tables to the committer takes the rest back before [`finish`](Self::finish).
    pub(crate) fn take_reserve(&mut self) -> Reserve {
        core::mem::replace(&mut self.reserve, Reserve::empty())
    }

    pub(crate) fn push_tlbi(&mut self, ipa: u64) {
        if self.whole_vmid {
            return;
        }
        if self.ipas.is_full() {
            self.whole_vmid = true;
        } else {
            self.ipas.push(ipa);
        }
    }

    fn push_pending(&mut self, table: u64, index: usize, value: u64) {
        if self.pending.is_full() {
            self.flush();
        }
        self.pending.push((table, index as u16, value));
    }

    fn defer_free(&mut self, pa: u64) {
        if self.frees.is_full() {
            self.flush();
        }
        self.frees.push(pa);
    }

    /// [`defer_free`](Self::defer_free) of a table [`table_empty`](Self::table_empty) found
    /// empty and that is now unlinked: nothing can write into it before the free.
    fn defer_free_zeroed(&mut self, pa: u64) {
        self.defer_free(pa | ZEROED);
    }

    pub(crate) fn take_table(&mut self) -> Result<u64, Error> {
        if let Some(pa) = self.reserve.take(self.mem) {
            *self.tables += 1;
            return Ok(pa);
        }
        // Only reachable if plan and commit disagree.
        debug_assert!(false, "plan under-counted tables");
        Err(Error::NoMemory)
    }

    /// Write the leaves of `run` into `table` from entry `i` on while the entries are invalid
    /// (plain writes, as [`replace`](Self::replace) does for an invalid entry); returns the
    /// index of the first entry not written.
    fn write_run(&mut self, table: u64, run: &Run, level: u8, i: usize) -> usize {
        let step = block_size(level);
        let mut leaf = raw::leaf(run.pa.wrapping_add(i as u64 * step), run.bits, level);
        let mut k = i;
        while k <= run.j1 && free(self.mem.read_entry(table, k), level) {
            self.mem.write_entry(table, k, leaf);
            // The output address sits in the middle of the descriptor and does not carry out
            // of it: every leaf of the run maps inside the map's PA range, which was checked to
            // end within the PA size (at most 48 bits, the top of the OA field).
            leaf = leaf.wrapping_add(step);
            k += 1;
        }
        if k > i {
            self.wrote = true;
        }
        k
    }

    /// Fill a fresh table at `level` with the pages/blocks of `block` (a leaf one level up).
    pub(crate) fn fill_from_block(&mut self, t: u64, block: u64, level: u8) {
        let first = raw::leaf_oa(block, level - 1);
        let step = block_size(level);
        self.wrote = true;
        // Leaf i is leaf 0 with `i * step` added to its output address (see `fill_table`).
        self.mem.fill_table(t, raw::leaf(first, block, level), step);
    }

    /// Break-before-make replacement of the live or fresh descriptor `table[i]` (level `level`,
    /// mapping from `es`) from `old` to `new`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn replace(
        &mut self,
        table: u64,
        i: usize,
        level: u8,
        es: u64,
        old: u64,
        new: u64,
        live: bool,
    ) {
        let old_table = raw::is_table(old, level);
        let old_leaf = raw::is_leaf(old, level);
        if !live || !(old_table || old_leaf) {
            self.put(table, i, new);
            if old_table {
                self.free_subtree_now(raw::table_pa(old), level + 1);
            }
            return;
        }
        if old_leaf
            && raw::is_leaf(new, level)
            && raw::leaf_oa(old, level) == raw::leaf_oa(new, level)
            && (old ^ new) & BBM_ATTR_MASK == 0
        {
            // Same output, same size, same memory type: permissions/AF/software bits change in
            // place. Only software bits changing needs no invalidation.
            self.put(table, i, new);
            if (old ^ new) & HW_ATTR_MASK != 0 {
                self.push_tlbi(es);
            }
            return;
        }
        self.put(table, i, 0);
        if old_table {
            self.collect_subtree(raw::table_pa(old), level + 1, es);
        } else {
            self.push_tlbi(es);
        }
        self.push_pending(table, i, new);
    }

    /// Clear the descriptor `table[i]`.
    fn clear(&mut self, table: u64, i: usize, level: u8, es: u64, old: u64, live: bool) {
        self.put(table, i, 0);
        if raw::is_table(old, level) {
            if live {
                self.collect_subtree(raw::table_pa(old), level + 1, es);
            } else {
                self.free_subtree_now(raw::table_pa(old), level + 1);
            }
        } else if live && raw::is_leaf(old, level) {
            self.push_tlbi(es);
        }
    }

    /// An unlinked subtree: invalidate its leaves, then free its tables after the invalidation.
    /// Returns the number of leaves.
    pub(crate) fn collect_subtree(&mut self, t: u64, level: u8, base: u64) -> usize {
        let mut leaves = 0;
        for i in 0..ENTRIES_PER_TABLE {
            let d = self.mem.read_entry(t, i);
            let es = base + i as u64 * block_size(level);
            if raw::is_table(d, level) {
                leaves += self.collect_subtree(raw::table_pa(d), level + 1, es);
            } else if raw::is_leaf(d, level) {
                self.push_tlbi(es);
                leaves += 1;
            }
        }
        if leaves == 0 {
            // Still drop walk-cache entries for the table itself.
            self.push_tlbi(base);
        }
        self.defer_free(t);
        leaves
    }

    /// Free a subtree that no walker can have seen.
    fn free_subtree_now(&mut self, t: u64, level: u8) {
        for i in 0..ENTRIES_PER_TABLE {
            let d = self.mem.read_entry(t, i);
            if raw::is_table(d, level) {
                self.free_subtree_now(raw::table_pa(d), level + 1);
            }
        }
        self.mem.free_table(t);
        *self.tables -= 1;
    }

    /// All entries zero and no pending write into it.
    fn table_empty(&self, t: u64) -> bool {
        !self.pending.as_slice().iter().any(|p| p.0 == t) && self.mem.table_is_zero(t)
    }

    /// Commit `op` over `[s, e)` within the real table `table` at `level` starting at `base`.
    /// `live` says whether the table is reachable by the MMU.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn commit_table(
        &mut self,
        table: u64,
        level: u8,
        base: u64,
        s: u64,
        e: u64,
        op: &Op<'_>,
        live: bool,
    ) -> Result<(), Error> {
        let size = block_size(level);
        let (i0, i1) = index_range(level, base, s, e);
        let run = bulk_run(op, level, base, s, e);
        let mut idx = i0..=i1;
        while let Some(i) = idx.next() {
            if let Some(r) = run.filter(|r| r.contains(i)) {
                let k = self.write_run(table, &r, level, i);
                if k > i {
                    idx = k..=i1;
                    continue;
                }
            }
            let old = self.mem.read_entry(table, i);
            let es = base + i as u64 * size;
            let (cs, ce) = (s.max(es), e.min(es + size));
            match decide(op, old, level, es, cs, ce)? {
                Action::Nothing => {}
                Action::Write(new) => self.replace(table, i, level, es, old, new, live),
                Action::Clear => self.clear(table, i, level, es, old, live),
                Action::Descend(t) => {
                    let flushes = self.flushes;
                    self.commit_table(t, level + 1, es, cs, ce, op, live)?;
                    if matches!(op, Op::Unmap) && self.table_empty(t) {
                        // Empty (no entry, no pending write into it) and, once unlinked,
                        // unreachable: it stays all zeros until it is freed, so the allocator
                        // may hand it out again without zeroing it.
                        self.put(table, i, 0);
                        if live {
                            // Its leaves were queued for invalidation as they were cleared, and
                            // a queued invalidation runs after this unlink. But if the batch
                            // filled up and flushed during the descent, the last of them may
                            // have run before it, and a walker could still hold the entry
                            // just cleared in its walk cache: then invalidate an address it
                            // covers, so the table is freed only once no walker reaches it.
                            if self.flushes != flushes {
                                self.push_tlbi(es);
                            }
                            self.defer_free_zeroed(t);
                        } else {
                            self.mem.free_zeroed_table(t);
                            *self.tables -= 1;
                        }
                    }
                }
                Action::DescendNew => {
                    let t = self.take_table()?;
                    self.commit_table(t, level + 1, es, cs, ce, op, false)?;
                    self.put(table, i, raw::table(t));
                }
                Action::Split => {
                    let (_, changed) =
                        plan_table(&*self.mem, Node::Virtual(old), level + 1, es, cs, ce, op)?;
                    if !changed {
                        continue;
                    }
                    let t = self.take_table()?;
                    self.fill_from_block(t, old, level + 1);
                    self.commit_table(t, level + 1, es, cs, ce, op, false)?;
                    self.replace(table, i, level, es, old, raw::table(t), live);
                }
            }
        }
        Ok(())
    }

    /// Merge uniform tables within `[s, e)` of `table` back into blocks; returns how many.
    pub(crate) fn merge_table(
        &mut self,
        table: u64,
        level: u8,
        base: u64,
        s: u64,
        e: u64,
    ) -> usize {
        let size = block_size(level);
        let (i0, i1) = index_range(level, base, s, e);
        let mut merged = 0;
        for i in i0..=i1 {
            let es = base + i as u64 * size;
            let (cs, ce) = (s.max(es), e.min(es + size));
            let old = self.mem.read_entry(table, i);
            if !raw::is_table(old, level) {
                continue;
            }
            let t = raw::table_pa(old);
            let inner = self.merge_table(t, level + 1, es, cs, ce);
            merged += inner;
            let full = cs == es && ce - es == size;
            if !full || !(level == 1 || level == 2) {
                continue;
            }
            if inner > 0 {
                // Merged children are pending writes inside `t`; land them before inspecting it.
                self.flush();
            }
            if let Some(block) = self.uniform(t, level + 1, level) {
                self.put(table, i, 0);
                self.collect_subtree(t, level + 1, es);
                self.push_pending(table, i, block);
                merged += 1;
            }
        }
        merged
    }

    /// If the table `t` at `level` holds 512 leaves with identical attributes and contiguous
    /// output aligned for a block at `parent_level`, that block descriptor.
    fn uniform(&self, t: u64, level: u8, parent_level: u8) -> Option<u64> {
        let first = self.mem.read_entry(t, 0);
        if !raw::is_leaf(first, level) {
            return None;
        }
        let oa = raw::leaf_oa(first, level);
        if oa & (block_size(parent_level) - 1) != 0 {
            return None;
        }
        let step = block_size(level);
        let uniform =
            (1..ENTRIES_PER_TABLE).all(|i| self.mem.read_entry(t, i) == first + i as u64 * step);
        uniform.then(|| raw::leaf(oa, first, parent_level))
    }
}

/// Check a range argument: aligned, non-empty, no overflow, within `limit`.
pub(crate) fn check_range(addr: u64, size: u64, limit: u64, is_ipa: bool) -> Result<u64, Error> {
    if size == 0 {
        return Err(Error::ZeroSize);
    }
    if !addr.is_multiple_of(PAGE_SIZE) {
        return Err(Error::Unaligned { value: addr });
    }
    if !size.is_multiple_of(PAGE_SIZE) {
        return Err(Error::Unaligned { value: size });
    }
    let end = addr.checked_add(size).ok_or(Error::RangeOverflow)?;
    if end > limit {
        let first = addr.max(limit);
        return Err(if is_ipa {
            Error::IpaOutOfRange { ipa: first }
        } else {
            Error::PaOutOfRange { pa: first }
        });
    }
    Ok(end)
}

#[cfg(test)]
#[path = "bulk_tests.rs"]
mod bulk_tests;
