//! Stage-2 faults from many vCPUs at once: [`ConcurrentRm`].
//!
//! [`ConcurrentRm`] holds the [`Rm`] behind a reader-writer lock and one *fault ledger* per VM
//! behind that VM's own lock. A fault takes the RM-wide lock for reading and its VM's ledger
//! lock; every request and everything else takes the RM-wide lock for writing
//! ([`ConcurrentRm::exclusive`]). So faults in different VMs run in parallel, faults in one VM
//! run one at a time, and no fault runs while a request changes anything.
//!
//! # Who holds what
//!
//! * Read side of the RM lock (a fault): the RM's records (VM table, every VM's ranges and
//!   pools, goldens, parcels) are read-only. What a fault changes is one VM's:
//!   - its stage-2 tables, through [`SharedAddressSpaces`](crate::platform::SharedAddressSpaces) (the platform locks that VM's tables
//!     only, `crate::stage2_spaces`), while holding the VM's ledger lock;
//!   - its ledger (`Ledger`): the copies each golden range made, the pages charged to each
//!     pool, the IPAs for COW_BROKEN and the fault counters, *on top of* the records;
//!   - pages from the partition, through [`SharedPhysMem`](crate::platform::SharedPhysMem) (lock-free or a leaf lock of the
//!     platform).
//! * Write side (a request, a fault the fast path does not serve, a COW_BROKEN flush): the
//!   whole [`Rm`]. Taking it first folds every ledger into the records (the golden ranges'
//!   copy counts, the pools' charges, the VM's pending COW_BROKEN IPAs, the counters), so code
//!   with `&mut Rm` sees exact records and never a ledger.
//!
//! A fault the fast path cannot serve completely — anything unserved (its notification goes
//! to the outbox, a `stop-vm` action changes the VM table), a quota that is used up, a
//! demand-zero page (it adds a range), a VM without a ledger yet — changes nothing and is
//! handled again by [`Rm::handle_access_fault`] under the write side, which walks again and
//! decides from what the tables hold then (another vCPU may have served it meanwhile: retry).
//!
//! # Lock order, and why it cannot deadlock
//!
//! 1. the RM lock ([`crate::sync::RwLock`]), read or write;
//! 2. one VM's ledger ([`crate::sync::Mutex`]), only by a fault, under the read side;
//! 3. that VM's stage-2 tables (the platform's per-VM lock), for one walk or one replace;
//! 4. the platform's allocator (a leaf: nothing is taken under it).
//!
//! Every thread takes locks in this order and never two of one level (one VM per fault), so
//! no cycle of waiters exists. The write side waits for the readers to leave; a reader never
//! waits for the write side while holding the read side (a fault that needs the write side
//! drops the read side first), and the write side takes no ledger lock (`&mut` reaches them).
//! The RM lock lets a waiting writer in first (`crate::sync::RwLock`): faults arriving while a
//! request waits hold back, so the request waits only for the faults already in flight, and a
//! fault takes the read side once (never twice, which would wait on that writer).
//!
//! # A fault racing an unmap, and two vCPUs on one gfn
//!
//! Every request that frees a page or changes a VM's ranges or tables (golden unmap, reclaim,
//! unbind, teardown) holds the write side, so it waits until no fault holds the read side.
//! A fault holds the read side from its walk to its last ledger entry: either the whole fault
//! (walk, allocate, copy, replace, ledger) happens before the unmap — which then finds the copy
//! in the tables, frees it and uncharges it against the folded, exact pool charge — or all of
//! it after, when the walk no longer finds the golden leaf and the fault is refused. The copy's
//! destination is a page fresh from the allocator that no one else holds, and its source (a
//! golden page) is freed only under the write side. So no fault copies into, or maps, a freed
//! page. (A vCPU's own accesses are not under these locks: the unmap's break-before-make and
//! TLB invalidation keep it off the page, as on hardware.)
//!
//! Two vCPUs of one VM faulting on one gfn are serialised by the VM's ledger lock: the second
//! walks after the first replaced the entry, finds it writable and retries, so there is
//! exactly one copy and no vCPU's write goes to a copy that a second copy then replaces.
//!
//! `rm/tests/loom_fault.rs` checks this protocol with loom (two vCPUs faulting one gfn while a
//! third request unmaps it) and `rm/tests/cow_concurrency.rs` runs it with threads.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use gunyah_stage2::{Access, Fault};

use crate::cow::{decide, fault_access, FaultCounters, FaultOutcome, Step, COW_BATCH};
use crate::platform::{ConcurrentPlatform, MemKind, Tag, Vmid, PAGE_SIZE};
use crate::service::Rm;
use crate::space::State;
use crate::sync::{CachePadded, Mutex, RwLock};

/// What faults served under the read side changed in one VM's records, until the next
/// exclusive section folds it in.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Copies made per golden range (by the range's first IPA).
    copies: Vec<(u64, u64)>,
    /// Pages charged per pool.
    charged: Vec<(u32, u64)>,
    /// IPAs copied, for COW_BROKEN, after the VM's pending ones.
    pending_cow: Vec<zerocopy::little_endian::U64>,
    /// Fault counters.
    counters: FaultCounters,
}

fn count<K: PartialEq + Copy>(v: &[(K, u64)], k: K) -> u64 {
    v.iter().find(|e| e.0 == k).map_or(0, |e| e.1)
}

fn bump<K: PartialEq + Copy>(v: &mut Vec<(K, u64)>, k: K) {
    match v.iter_mut().find(|e| e.0 == k) {
        Some(e) => e.1 += 1,
        None => v.push((k, 1)),
    }
}

impl Ledger {
    /// An empty ledger with room for a burst of faults, allocated here (under the write side)
    /// rather than by a VM's first faults.
    fn reserved() -> Self {
        Ledger {
            copies: Vec::with_capacity(4),
            charged: Vec::with_capacity(2),
            pending_cow: Vec::with_capacity(32),
            counters: FaultCounters::default(),
        }
    }

    fn is_empty(&self) -> bool {
        self.copies.is_empty()
            && self.charged.is_empty()
            && self.pending_cow.is_empty()
            && self.counters == FaultCounters::default()
    }
}

/// The RM and the ledgers, behind the RM-wide lock.
struct Inner<P: ConcurrentPlatform> {
    rm: Rm<P>,
    /// One per VM with an IPA space; created and dropped under the write side.
    ledgers: BTreeMap<Vmid, CachePadded<Mutex<Ledger>>>,
}

impl<P: ConcurrentPlatform> Inner<P> {
    /// Fold every ledger into the records, send full COW_BROKEN batches, and keep one ledger
    /// per VM that has a space.
    fn settle(&mut self) {
        let rm = &mut self.rm;
        for (&vmid, l) in self.ledgers.iter_mut() {
            let l = l.get_mut();
            if l.is_empty() {
                continue;
            }
            // Emptied in place: the ledger keeps its vectors' capacity, so a fault does not
            // allocate (`Ledger::reserved`).
            let counters = core::mem::take(&mut l.counters);
            let c = &mut rm.counters;
            c.cow_copies += counters.cow_copies;
            c.demand_pages += counters.demand_pages;
            c.retries += counters.retries;
            c.unserved += counters.unserved;
            let Some(space) = rm.spaces.get_mut(&vmid) else {
                l.copies.clear();
                l.charged.clear();
                l.pending_cow.clear();
                continue;
            };
            for (range, n) in l.copies.drain(..) {
                if let Some(State::Golden(g)) = space.at_mut(range).map(|r| &mut r.state) {
                    g.copies += n;
                }
            }
            for (pool, n) in l.charged.drain(..) {
                if let Some(p) = space.pools.get_mut(&pool) {
                    p.used_pages += n;
                }
            }
            space.pending_cow.append(&mut l.pending_cow);
            if !space.pending_cow.is_empty() {
                rm.cow_dirty.insert(vmid);
            }
            if space.pending_cow.len() >= COW_BATCH {
                rm.flush_cow_broken_of(vmid);
            }
        }
        let spaces = &rm.spaces;
        self.ledgers.retain(|v, _| spaces.contains_key(v));
        for &v in spaces.keys() {
            self.ledgers
                .entry(v)
                .or_insert_with(|| CachePadded(Mutex::new(Ledger::reserved())));
        }
    }
}

/// The RM, serving stage-2 faults of many vCPUs (threads, physical CPUs) at once; see the
/// module docs for the locking.
pub struct ConcurrentRm<P: ConcurrentPlatform> {
    inner: RwLock<Inner<P>>,
    /// Faults handled under the write side.
    exclusive_faults: AtomicU64,
}

impl<P: ConcurrentPlatform> ConcurrentRm<P> {
    /// Serve `rm`'s faults concurrently.
    pub fn new(rm: Rm<P>) -> Self {
        let mut inner = Inner {
            rm,
            ledgers: BTreeMap::new(),
        };
        inner.settle();
        ConcurrentRm {
            inner: RwLock::new(inner),
            exclusive_faults: AtomicU64::new(0),
        }
    }

    /// The RM, with every fault's changes in its records.
    pub fn into_inner(self) -> Rm<P> {
        let mut inner = self.inner.into_inner();
        inner.settle();
        inner.rm
    }

    /// Run `f` with the whole RM (a request, a query, a transport call), no fault in flight.
    pub fn exclusive<R>(&self, f: impl FnOnce(&mut Rm<P>) -> R) -> R {
        let mut inner = self.inner.write();
        inner.settle();
        let r = f(&mut inner.rm);
        inner.settle();
        r
    }

    /// [`Rm::handle_fault`], concurrently with other vCPUs' faults.
    pub fn handle_fault(&self, vmid: Vmid, fault: &Fault) -> FaultOutcome {
        match fault_access(fault) {
            Some((ipa, access)) => self.handle_access_fault(vmid, ipa, access),
            None => FaultOutcome::Report,
        }
    }

    /// [`Rm::handle_access_fault`], concurrently with other vCPUs' faults: served under the
    /// read side and `vmid`'s ledger lock when it can be, else under the write side.
    pub fn handle_access_fault(&self, vmid: Vmid, ipa: u64, access: Access) -> FaultOutcome {
        let served = {
            let inner = self.inner.read(usize::from(vmid));
            match inner.ledgers.get(&vmid) {
                Some(l) => inner.rm.fault_shared(&mut l.lock(), vmid, ipa, access),
                None => None,
            }
        };
        match served {
            Some((outcome, batch_full)) => {
                if batch_full {
                    // Settling sends the full COW_BROKEN batch.
                    self.exclusive(|_| ());
                }
                outcome
            }
            None => {
                self.exclusive_faults.fetch_add(1, Ordering::Relaxed);
                self.exclusive(|rm| rm.handle_access_fault(vmid, ipa, access))
            }
        }
    }

    /// How many faults were handled under the write side (not served by the concurrent path:
    /// refused, quota used up, demand-zero pages, a VM's first fault before it had a ledger).
    pub fn exclusive_faults(&self) -> u64 {
        self.exclusive_faults.load(Ordering::Relaxed)
    }
}

impl<P: ConcurrentPlatform> Rm<P> {
    /// The fault path under the read side and `vmid`'s ledger lock: a CoW copy, a demand page
    /// of a binding or a retry, with its bookkeeping in `ledger`, and whether the VM's
    /// COW_BROKEN batch is full. `None` (nothing changed) for anything else: the caller
    /// handles it under the write side.
    fn fault_shared(
        &self,
        ledger: &mut Ledger,
        vmid: Vmid,
        ipa: u64,
        access: Access,
    ) -> Option<(FaultOutcome, bool)> {
        let page = ipa & !(PAGE_SIZE - 1);
        let walked = self.plat.walk(vmid, page)?;
        let space = self.spaces.get(&vmid)?;
        match decide(&walked, space.at(page), page, access) {
            Step::Retry => {
                ledger.counters.retries += 1;
                Some((FaultOutcome::Retry, false))
            }
            Step::Cow { range, m, src } => {
                let gid = m.pool?;
                let pool = space.pools.get(&gid)?;
                let copies = m.copies + count(&ledger.copies, range);
                let used = pool.used_pages + count(&ledger.charged, gid);
                if m.cow_quota.is_some_and(|q| copies >= q) || used >= pool.quota_pages {
                    return None;
                }
                let pa = self.plat.alloc_page_copy_shared(src)?;
                let rights = m.copy_rights();
                if self
                    .plat
                    .replace_page_at_shared(
                        vmid,
                        &walked,
                        page,
                        pa,
                        rights,
                        MemKind::Normal,
                        Tag::Copy,
                    )
                    .is_err()
                {
                    self.plat.free_page_shared(pa);
                    return None;
                }
                bump(&mut ledger.copies, range);
                bump(&mut ledger.charged, gid);
                ledger
                    .pending_cow
                    .push(zerocopy::little_endian::U64::new(page));
                ledger.counters.cow_copies += 1;
                let full = space.pending_cow.len() + ledger.pending_cow.len() >= COW_BATCH;
                Some((FaultOutcome::Copied { pa }, full))
            }
            Step::Demand(b) => {
                let pool = space.pools.get(&b.pool)?;
                if pool.used_pages + count(&ledger.charged, b.pool) >= pool.quota_pages {
                    return None;
                }
                let pa = self.plat.alloc_zeroed_page_shared()?;
                if self
                    .plat
                    .replace_page_at_shared(
                        vmid,
                        &walked,
                        page,
                        pa,
                        b.rights,
                        MemKind::Normal,
                        Tag::None,
                    )
                    .is_err()
                {
                    self.plat.free_page_shared(pa);
                    return None;
                }
                bump(&mut ledger.charged, b.pool);
                ledger.counters.demand_pages += 1;
                Some((FaultOutcome::Populated { pa }, false))
            }
            Step::DemandZero | Step::Unserved(..) => None,
        }
    }
}
