//! The stage-2 fault path: copy-on-write of golden pages and demand paging.
//!
//! [`Rm::handle_fault`] takes a decoded stage-2 fault of one VM and either
//! serves it (a private copy of a golden page, or a fresh zeroed pool page)
//! and says "resume", finds it already served (another vCPU got there first,
//! or the fault raced with break-before-make) and says "retry", or refuses
//! it and says what the platform must do (inject an abort or the VM was
//! stopped). Faults outside every binding, golden mapping and
//! demand-paging range are reported, not served.
//!
//! The CoW step, in order: quota check, allocate one page from the VM's
//! pool, copy 4 KiB, replace the one stage-2 entry (the platform splits a
//! block if needed, break-before-make, TLB invalidate), update the VM's
//! gfn → page record, the golden page's share count and the pool's charge.
//! Only that VM's tables change. Every failure leaves the records and the
//! tables as they were (the allocated page goes back).
//!
//! Here the fault path runs with the whole [`Rm`] (`&mut`): one fault at a time. A second
//! fault on the same gfn, queued behind the first, finds the page writable and retries, so
//! concurrent faults produce exactly one copy. [`crate::concurrent`] serves faults of many
//! vCPUs at once through the same decision ([`decide`]), with shared access to the RM and a
//! per-VM lock.

use alloc::vec::Vec;

use gunyah_stage2::{Access, Fault, FaultKind};

use gunyah_rm_abi::ext::{CowBroken, FaultUnserved, QuotaExhausted};
use gunyah_rm_abi::MsgId;
use zerocopy::little_endian::U64;

use crate::config::FaultAction;
use crate::platform::{MemKind, Platform, PlatformError, Rights, Tag, Vmid, Walked, PAGE_SIZE};
use crate::service::Rm;
use crate::space::{Binding, GoldenMap, Range, State};
use crate::vm::{transition_valid, VmState};

/// VM_EXITED exit_type when a VM is stopped for an unserved fault
/// (5 = SOFTWARE_ERROR in the RM's table).
pub const EXIT_TYPE_UNSERVED_FAULT: u16 = 5;
/// VM_EXITED reason for it (RM exit code 3 = BUS_ERROR).
pub const EXIT_REASON_BUS_ERROR: u32 = 3;

/// Most IPAs in one COW_BROKEN notification.
pub const COW_BATCH: usize = 512;

/// Counters of the fault path (for stats and the simulator's reports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounters {
    /// CoW copies made.
    pub cow_copies: u64,
    /// Pages populated on demand.
    pub demand_pages: u64,
    /// Faults found already served (another vCPU, break-before-make race).
    pub retries: u64,
    /// Faults not served.
    pub unserved: u64,
}

/// Why a fault was not served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unserved {
    /// A write to a golden mapping without copy-on-write.
    NoCow,
    /// The paying pool's quota (or the mapping's copy quota) is used up.
    QuotaExhausted {
        /// The pool.
        gmem: u32,
    },
    /// The partition has no free page (or no table page for the split).
    NoMemory,
    /// The access is not allowed by the mapping (e.g. a write to a read-only
    /// binding, an instruction fetch from a non-executable golden mapping).
    NotPermitted,
    /// The IPA is in no mapping, binding or demand-paging range of the VM.
    Unmapped,
}

impl Unserved {
    /// The FAULT_UNSERVED `why` code.
    pub fn why_code(self) -> u8 {
        use gunyah_rm_abi::ext::fault_why;
        match self {
            Unserved::NoCow => fault_why::NO_COW,
            Unserved::QuotaExhausted { .. } => fault_why::QUOTA_EXHAUSTED,
            Unserved::NoMemory => fault_why::NO_MEMORY,
            Unserved::NotPermitted => fault_why::NOT_PERMITTED,
            Unserved::Unmapped => fault_why::UNMAPPED,
        }
    }
}

/// What the platform does after [`Rm::handle_fault`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOutcome {
    /// A private copy of the golden page was made and mapped: resume.
    Copied {
        /// The copy's PA.
        pa: u64,
    },
    /// A zeroed pool page was mapped (demand paging): resume.
    Populated {
        /// The page's PA.
        pa: u64,
    },
    /// The translation already allows the access (served by another vCPU,
    /// or the fault raced with break-before-make): resume; the access retries.
    Retry,
    /// Not served: inject a synchronous external abort into the vCPU.
    Abort(Unserved),
    /// Not served: the VM was stopped (its config says `stop-vm`).
    Stopped(Unserved),
    /// Not an RM-managed page (outside every binding, golden mapping and
    /// demand-paging range), or an IPA the platform has not resolved: the
    /// platform handles it as it would without the RM (MMIO, abort).
    Report,
}

impl FaultOutcome {
    /// Whether the vCPU resumes (and retries the access).
    pub fn resumes(&self) -> bool {
        matches!(
            self,
            FaultOutcome::Copied { .. } | FaultOutcome::Populated { .. } | FaultOutcome::Retry
        )
    }
    /// Whether this fault made a page (CoW copy or demand page).
    pub fn made_page(&self) -> bool {
        matches!(
            self,
            FaultOutcome::Copied { .. } | FaultOutcome::Populated { .. }
        )
    }
}

/// What a fault needs, decided from the one walk and the VM's range covering the page (the
/// same decision for the exclusive path here and the concurrent one, [`crate::concurrent`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Step {
    /// The translation already allows the access.
    Retry,
    /// Copy the golden page `src` at the page of the golden range starting at `range`.
    Cow {
        /// First IPA of the golden range.
        range: u64,
        /// Its mapping.
        m: GoldenMap,
        /// PA of the golden page.
        src: u64,
    },
    /// A first touch of a demand-paged binding: a zeroed pool page.
    Demand(Binding),
    /// A fault no range covers: a demand-zero page if a VM_SET_DEMAND_PAGING range does.
    DemandZero,
    /// Not served.
    Unserved(Unserved, FaultAction),
}

/// The decision for `access` to `page` of a VM whose walk gave `walked` and whose range
/// covering the page is `range`.
pub(crate) fn decide(walked: &Walked, range: Option<&Range>, page: u64, access: Access) -> Step {
    if let Some(l) = walked.leaf {
        if permits(l.rights, access) {
            return Step::Retry;
        }
    }
    match range.map(|r| (r, r.state)) {
        Some((r, State::Golden(m))) => match walked.leaf {
            Some(l) if l.tag == Tag::Golden && access == Access::Write => {
                if !m.cow {
                    return Step::Unserved(Unserved::NoCow, m.fault_action);
                }
                Step::Cow {
                    range: r.ipa,
                    m,
                    src: l.pa + (page - l.ipa),
                }
            }
            // A copy (or golden page) the access is not allowed on, e.g. an
            // instruction fetch from a non-executable mapping.
            _ => Step::Unserved(Unserved::NotPermitted, m.fault_action),
        },
        Some((_, State::Bound(b))) => {
            if walked.leaf.is_some() || !b.demand || !permits(b.rights, access) {
                Step::Unserved(Unserved::NotPermitted, FaultAction::InjectAbort)
            } else {
                Step::Demand(b)
            }
        }
        Some(_) => {
            // Mapped by the VM's other memory (its own RAM, a parcel) without the right,
            // or a range that is not mapped (lent out, IPAs reserved for an accept).
            let why = if walked.leaf.is_some() {
                Unserved::NotPermitted
            } else {
                Unserved::Unmapped
            };
            Step::Unserved(why, FaultAction::InjectAbort)
        }
        None => Step::DemandZero,
    }
}

/// The IPA and access a decoded stage-2 fault asks the RM to serve, or `None` if it is not the
/// RM's (no IPA known, or a kind the RM does not serve: the platform reports it).
pub(crate) fn fault_access(fault: &Fault) -> Option<(u64, Access)> {
    let ipa = fault.ipa?;
    match fault.status.kind {
        FaultKind::Translation | FaultKind::Permission | FaultKind::AccessFlag => {
            // A fault on the guest's own stage-1 walk may need to write
            // the table (access/dirty flag updates): serve it as a write,
            // as KVM does, so page tables in golden pages get copied.
            let access = if fault.s1ptw {
                Access::Write
            } else {
                fault.access
            };
            Some((ipa, access))
        }
        _ => None,
    }
}

/// Short of a page for a copy: give every VM's spare split tables back (the first thing to give
/// up for a fault) and try once more. Out of line: the fault path proper stays as it was.
#[cold]
#[inline(never)]
fn copy_after_releasing_spares<P: Platform>(plat: &mut P, src: u64) -> Option<u64> {
    if plat.release_split_tables() == 0 {
        return None;
    }
    plat.alloc_page_copy(src)
}

/// A copy's replace that failed with `e`: if it was short of a table page, give every VM's
/// spare split tables back and try once more; whether it is done.
#[cold]
#[inline(never)]
fn replace_after_releasing_spares<P: Platform>(
    plat: &mut P,
    e: PlatformError,
    vmid: Vmid,
    walked: &Walked,
    page: u64,
    pa: u64,
    rights: Rights,
) -> bool {
    e == PlatformError::NoMemory
        && plat.release_split_tables() != 0
        && plat
            .replace_page_at(vmid, walked, page, pa, rights, MemKind::Normal, Tag::Copy)
            .is_ok()
}

fn permits(r: Rights, access: Access) -> bool {
    match access {
        Access::Read => r.readable(),
        Access::Write => r.writable(),
        Access::Execute => r.executable(),
    }
}

impl<P: Platform> Rm<P> {
    /// Handle a decoded stage-2 abort of `vmid`. The IPA must be known
    /// (`fault.ipa`; for a permission fault the platform resolves it from
    /// FAR_EL2 first, see `gunyah_stage2::Fault::needs_ipa_resolution`).
    pub fn handle_fault(&mut self, vmid: Vmid, fault: &Fault) -> FaultOutcome {
        match fault_access(fault) {
            Some((ipa, access)) => self.handle_access_fault(vmid, ipa, access),
            None => FaultOutcome::Report,
        }
    }

    /// Handle a stage-2 fault of `vmid` on `access` to `ipa` (any kind: the
    /// RM looks at what the tables hold now, under its lock).
    ///
    /// One walk and one state lookup: the leaf the walk finds says what the
    /// page is (its tag: a golden page or the VM's copy), the VM's range says
    /// what it may become ([`decide`]), and a copy-on-write replaces the entry
    /// the walk ended at. The bookkeeping of a copy is O(1): the mapping's and
    /// the pool's counters and the COW_BROKEN batch.
    pub fn handle_access_fault(&mut self, vmid: Vmid, ipa: u64, access: Access) -> FaultOutcome {
        let page = ipa & !(PAGE_SIZE - 1);
        let Some(walked) = self.plat.walk_exclusive(vmid, page) else {
            return FaultOutcome::Report;
        };
        let Some(space) = self.spaces.get(&vmid) else {
            return FaultOutcome::Report;
        };
        match decide(&walked, space.at(page), page, access) {
            Step::Retry => {
                self.counters.retries += 1;
                FaultOutcome::Retry
            }
            Step::Cow { range, m, src } => self.cow_copy(vmid, page, range, &m, &walked, src),
            Step::Demand(b) => match self.new_zero_page(vmid, b.pool, page, b.rights, Tag::None) {
                Ok(pa) => {
                    self.counters.demand_pages += 1;
                    FaultOutcome::Populated { pa }
                }
                Err(u) => self.unserved_at(vmid, page, u, FaultAction::InjectAbort),
            },
            Step::DemandZero => self.demand_zero(vmid, page),
            Step::Unserved(why, action) => self.unserved_at(vmid, page, why, action),
        }
    }

    /// A fault on an IPA no range covers: a zeroed page from the VM's first
    /// pool if a VM_SET_DEMAND_PAGING range covers it, else unserved.
    fn demand_zero(&mut self, vmid: Vmid, page: u64) -> FaultOutcome {
        let in_dp = self.vms.get(vmid).is_some_and(|v| {
            v.demand_paging
                .iter()
                .any(|&(b, s)| page >= b && page - b < s)
        });
        // Charged to the VM's first pool.
        let pool = self
            .spaces
            .get(&vmid)
            .and_then(|s| s.pools.keys().next().copied());
        let (true, Some(pool)) = (in_dp, pool) else {
            return self.unserved_at(vmid, page, Unserved::Unmapped, FaultAction::InjectAbort);
        };
        match self.new_zero_page(vmid, pool, page, Rights::RWX, Tag::Zero) {
            Ok(pa) => {
                if let Some(s) = self.spaces.get_mut(&vmid) {
                    s.insert(page, PAGE_SIZE, State::Zero { pool });
                }
                self.counters.demand_pages += 1;
                FaultOutcome::Populated { pa }
            }
            Err(u) => self.unserved_at(vmid, page, u, FaultAction::InjectAbort),
        }
    }

    /// Quota check, allocate, zero and map one page of pool `pool` (of
    /// `vmid`) at `page`, charging the pool.
    fn new_zero_page(
        &mut self,
        vmid: Vmid,
        pool: u32,
        page: u64,
        rights: Rights,
        tag: Tag,
    ) -> Result<u64, Unserved> {
        let g = self
            .spaces
            .get(&vmid)
            .and_then(|s| s.pools.get(&pool))
            .ok_or(Unserved::NoMemory)?;
        if !g.has_room(1) {
            let quota = g.quota_pages;
            self.quota_exhausted(vmid, pool, page, quota);
            return Err(Unserved::QuotaExhausted { gmem: pool });
        }
        let pa = match self.plat.alloc_page() {
            Some(pa) => pa,
            // Spare split tables are the first thing to give up for a page.
            None if self.plat.release_split_tables() != 0 => {
                self.plat.alloc_page().ok_or(Unserved::NoMemory)?
            }
            None => return Err(Unserved::NoMemory),
        };
        self.plat.zero(pa, PAGE_SIZE);
        if self
            .plat
            .map(vmid, page, pa, PAGE_SIZE, rights, MemKind::Normal, tag)
            .is_err()
        {
            self.plat.free_page(pa);
            return Err(Unserved::NoMemory);
        }
        self.charge(vmid, pool, 1);
        Ok(pa)
    }

    /// The CoW step for a write to the golden page `src` at `page` of the
    /// golden range starting at `range` (mapping `m`), found by the walk
    /// `walked`.
    ///
    /// The VM's records are looked up once for the whole step (the platform's calls in between
    /// touch only `self.plat`), and nothing is allocated once the VM's COW_BROKEN batch has
    /// been sent once (its buffer keeps its capacity).
    fn cow_copy(
        &mut self,
        vmid: Vmid,
        page: u64,
        range: u64,
        m: &GoldenMap,
        walked: &Walked,
        src: u64,
    ) -> FaultOutcome {
        let Some(gid) = m.pool else {
            return self.unserved_at(vmid, page, Unserved::NoCow, m.fault_action);
        };
        let Some(space) = self.spaces.get_mut(&vmid) else {
            return self.unserved_at(vmid, page, Unserved::NoMemory, m.fault_action);
        };
        let Some(pool) = space.pools.get_mut(&gid) else {
            return self.unserved_at(vmid, page, Unserved::NoMemory, m.fault_action);
        };
        // 1. Quota: the pool's, and the mapping's own copy limit.
        let limit = match m.cow_quota {
            Some(q) if m.copies >= q => Some(q),
            _ if !pool.has_room(1) => Some(pool.quota_pages),
            _ => None,
        };
        if let Some(quota) = limit {
            self.quota_exhausted(vmid, gid, page, quota);
            return self.unserved_at(
                vmid,
                page,
                Unserved::QuotaExhausted { gmem: gid },
                m.fault_action,
            );
        }
        // 2. + 3. One page from the partition (charged to the pool below),
        // holding a copy of the golden page: not zeroed first, since the
        // 4 KiB copy overwrites all of it.
        let Some(pa) = self
            .plat
            .alloc_page_copy(src)
            .or_else(|| copy_after_releasing_spares(&mut self.plat, src))
        else {
            return self.unserved_at(vmid, page, Unserved::NoMemory, m.fault_action);
        };
        // 4. Replace the entry the walk found (split, break-before-make, invalidate); a split
        // takes its tables from the VM's spare tables, else allocates them.
        let rights = m.copy_rights();
        if let Err(e) =
            self.plat
                .replace_page_at(vmid, walked, page, pa, rights, MemKind::Normal, Tag::Copy)
        {
            if !replace_after_releasing_spares(&mut self.plat, e, vmid, walked, page, pa, rights) {
                self.plat.free_page(pa);
                return self.unserved_at(vmid, page, Unserved::NoMemory, m.fault_action);
            }
        }
        // 5. Bookkeeping, O(1): the pool's charge, the mapping's copies, the
        // COW_BROKEN batch.
        self.counters.cow_copies += 1;
        pool.used_pages += 1;
        space.count_copy(range);
        space.pending_cow.push(U64::new(page));
        self.cow_dirty.insert(vmid);
        if space.pending_cow.len() >= COW_BATCH {
            self.flush_cow_broken_of(vmid);
        }
        FaultOutcome::Copied { pa }
    }

    /// Count an unserved fault at `page`, apply `action` and tell the VM's
    /// manager (FAULT_UNSERVED; a VM without a manager, HLOS, is not told).
    fn unserved_at(
        &mut self,
        vmid: Vmid,
        page: u64,
        why: Unserved,
        action: FaultAction,
    ) -> FaultOutcome {
        use gunyah_rm_abi::ext::fault_action;
        self.counters.unserved += 1;
        let outcome = if action == FaultAction::StopVm && self.stop_for_fault(vmid) {
            FaultOutcome::Stopped(why)
        } else {
            FaultOutcome::Abort(why)
        };
        let done = match outcome {
            FaultOutcome::Stopped(_) => fault_action::VM_STOPPED,
            _ => fault_action::ABORT_INJECTED,
        };
        let manager = self.vms.get(vmid).map_or(vmid, |v| v.owner);
        if manager != vmid {
            let n = FaultUnserved::new(vmid, why.why_code(), done, page);
            self.notify_with(manager, MsgId::FAULT_UNSERVED, &n);
        }
        outcome
    }

    /// Stop `vmid` (EXITED, VM_EXITED to its owner) if its state allows.
    fn stop_for_fault(&mut self, vmid: Vmid) -> bool {
        let Some(vm) = self.vms.get(vmid) else {
            return false;
        };
        if !transition_valid(vm.state, VmState::Exited, vm.flags) {
            return false;
        }
        self.exit_vm(vmid, EXIT_TYPE_UNSERVED_FAULT, EXIT_REASON_BUS_ERROR);
        true
    }

    /// QUOTA_EXHAUSTED to `vmid`'s owner.
    fn quota_exhausted(&mut self, vmid: Vmid, gmem: u32, ipa: u64, quota: u64) {
        let owner = self.vms.get(vmid).map_or(vmid, |v| v.owner);
        let q = QuotaExhausted::new(vmid, gmem, ipa, quota);
        self.notify_with(owner, MsgId::QUOTA_EXHAUSTED, &q);
    }

    /// Send every pending COW_BROKEN notification (one per VM, up to 512
    /// IPAs each) to the VMs' owners, in VMID order. [`Rm::drain_outgoing`] calls this.
    /// Visits only the VMs marked in `cow_dirty` (not a slot per VMID), and allocates nothing
    /// when no batch is pending.
    pub fn flush_cow_broken(&mut self) {
        while let Some(v) = self.cow_dirty.pop_first() {
            self.flush_cow_broken_of(v);
        }
        debug_assert!(
            self.spaces.values().all(|s| s.pending_cow.is_empty()),
            "a VM with pending COW_BROKEN IPAs was not marked in cow_dirty"
        );
    }

    pub(crate) fn flush_cow_broken_of(&mut self, vmid: Vmid) {
        self.cow_dirty.remove(vmid);
        let Some(ipas) = self
            .spaces
            .get_mut(&vmid)
            .map(|s| core::mem::take(&mut s.pending_cow))
        else {
            return;
        };
        if !ipas.is_empty() {
            let owner = self.vms.get(vmid).map_or(vmid, |v| v.owner);
            // The pending list is the wire's IPA list: each batch is encoded straight into its
            // packet (most fit one), no copy of the list in between.
            for chunk in ipas.chunks(COW_BATCH) {
                let n = CowBroken { vmid, ipas: chunk };
                self.notify_with(owner, MsgId::COW_BROKEN, &n);
            }
        }
        self.give_back_cow_buffer(vmid, ipas);
    }

    /// The buffer goes back with its capacity: the VM's next copies push without allocating on
    /// the fault path.
    fn give_back_cow_buffer(&mut self, vmid: Vmid, mut ipas: Vec<U64>) {
        ipas.clear();
        if let Some(s) = self.spaces.get_mut(&vmid) {
            if s.pending_cow.is_empty() {
                s.pending_cow = ipas;
            }
        }
    }

    /// Fault-path counters (copies made, demand pages, retries, unserved).
    pub fn fault_counters(&self) -> FaultCounters {
        self.counters
    }
}
