//! What each physical CPU publishes to the others, lock-free: whether it is running a vCPU
//! in the guest right now and which, and whether it is idle. A VM's vCPUs leave every CPU
//! before its stage 2 may go (`evict_vm`): the VM's generation in `ALIVE` is cleared, every
//! CPU running one of its vCPUs in the guest is kicked (SGI) and waited for. A CPU about to
//! ERET into a vCPU publishes it first and then checks the generation (both sequentially
//! consistent), so either it sees the VM is gone or the evicting CPU sees it in the guest
//! and waits until its trap (Dekker's handshake).

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};

use gunyah_rm::platform::Vmid;

use crate::layout::MAX_CPUS;

/// "No vCPU".
pub const NONE: u64 = u64::MAX;

/// One CPU's published state.
pub struct PerCpu {
    /// The vCPU it runs in the guest right now (`key`), or NONE while it is in EL2.
    in_guest: AtomicU64,
    /// It waits for work (WFI); a new runnable vCPU should kick it.
    pub idle: AtomicBool,
    /// It has been started.
    pub online: AtomicBool,
    /// The vCPU (`key`) whose stage-2 fault it serves outside the board's lock (on the RM's
    /// concurrent fault path), or NONE.
    in_fault: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const PER_CPU: PerCpu = PerCpu {
    in_guest: AtomicU64::new(NONE),
    idle: AtomicBool::new(false),
    online: AtomicBool::new(false),
    in_fault: AtomicU64::new(NONE),
};

/// Every CPU's state.
pub static CPUS: [PerCpu; MAX_CPUS] = [PER_CPU; MAX_CPUS];

#[allow(clippy::declare_interior_mutable_const)]
const DEAD: AtomicU32 = AtomicU32::new(0);

/// Per VMID (the low byte: every VMID the RM hands out is below 256): the generation of its
/// running incarnation, 0 when it has none.
static ALIVE: [AtomicU32; 256] = [DEAD; 256];
static NEXT_GEN: AtomicU32 = AtomicU32::new(1);

/// This CPU's index (MPIDR Aff0, kept in TPIDR_EL2 by the entry code).
pub fn this_cpu() -> usize {
    let v: u64;
    #[cfg(target_arch = "aarch64")]
    // SAFETY: reading TPIDR_EL2, which the entry code set and nothing else writes.
    unsafe {
        core::arch::asm!("mrs {0}, tpidr_el2", out(reg) v, options(nomem, nostack))
    };
    #[cfg(not(target_arch = "aarch64"))]
    {
        v = 0;
    }
    (v as usize).min(MAX_CPUS - 1)
}

/// A vCPU's key: VM generation, VMID and index.
pub fn key(gen: u32, vmid: Vmid, index: u32) -> u64 {
    (u64::from(gen) << 32) | (u64::from(vmid) << 16) | u64::from(index & 0xFFFF)
}

fn slot(vmid: Vmid) -> &'static AtomicU32 {
    &ALIVE[usize::from(vmid & 0xFF)]
}

/// A new incarnation of `vmid` starts running: its generation.
pub fn vm_started(vmid: Vmid) -> u32 {
    let g = NEXT_GEN.fetch_add(1, SeqCst);
    slot(vmid).store(g, SeqCst);
    g
}

/// Whether generation `gen` of `vmid` may still run.
pub fn vm_alive(vmid: Vmid, gen: u32) -> bool {
    slot(vmid).load(SeqCst) == gen
}

/// This CPU enters the guest with vCPU `k` of `vmid` (generation `gen`): false (and nothing
/// published) if the VM is gone.
pub fn enter_guest(k: u64, vmid: Vmid, gen: u32) -> bool {
    publish_if_alive(&CPUS[this_cpu()].in_guest, k, vmid, gen)
}

/// Publish `k` in this CPU's `cell`, then check that `vmid` (generation `gen`) is alive; if
/// not, withdraw it. The store before the check pairs with the evicting side's flag change
/// before its look at every CPU's cell (Dekker's handshake, all `SeqCst`).
fn publish_if_alive(cell: &AtomicU64, k: u64, vmid: Vmid, gen: u32) -> bool {
    cell.store(k, SeqCst);
    if vm_alive(vmid, gen) {
        return true;
    }
    cell.store(NONE, SeqCst);
    false
}

/// This CPU is in EL2 (first thing on every trap and interrupt from a guest).
pub fn left_guest() {
    CPUS[this_cpu()].in_guest.store(NONE, SeqCst);
}

/// Take generation `gen` of `vmid` off every CPU: no CPU enters its vCPUs from now on, and
/// this returns once none runs one in the guest (each is kicked with an SGI and leaves at
/// its trap, which needs no lock the caller may hold).
pub fn evict_vm(vmid: Vmid, gen: u32) {
    let _ = slot(vmid).compare_exchange(gen, 0, SeqCst, SeqCst);
    let me = this_cpu();
    let runs_it = |c: &PerCpu| {
        let k = c.in_guest.load(SeqCst);
        k != NONE && (k >> 32) as u32 == gen
    };
    for (i, c) in CPUS.iter().enumerate() {
        if i != me && runs_it(c) {
            crate::gic::kick(i);
        }
    }
    for (i, c) in CPUS.iter().enumerate() {
        while i != me && runs_it(c) {
            cpu_relax();
        }
    }
}

/// This CPU starts serving a stage-2 fault of vCPU `k` of `vmid` (generation `gen`) without
/// the board's lock: false (and nothing published) if the VM is gone. Until [`end_fault`], its
/// stage 2 stays (Dekker's handshake with [`wait_faults_of_gone`], as [`enter_guest`] with
/// [`evict_vm`]): the fault may walk it in hardware (AT S1E1R) and the RM serves it.
pub fn begin_fault(k: u64, vmid: Vmid, gen: u32) -> bool {
    publish_if_alive(&CPUS[this_cpu()].in_fault, k, vmid, gen)
}

/// This CPU is done with the fault [`begin_fault`] published.
pub fn end_fault() {
    CPUS[this_cpu()].in_fault.store(NONE, SeqCst);
}

/// Wait until no other CPU serves a fault of a VM generation that is gone (taken off the CPUs
/// by [`evict_vm`]). The board calls it under its own lock before every request to the RM, so
/// no request frees a stage 2 (or hands its VMID to a new VM) while a fault that saw the VM
/// alive still uses it. A CPU serving a fault never takes the board's lock, so this ends.
pub fn wait_faults_of_gone() {
    let me = this_cpu();
    let stale = |c: &PerCpu| {
        let k = c.in_fault.load(SeqCst);
        k != NONE && !vm_alive((k >> 16) as Vmid, (k >> 32) as u32)
    };
    for (i, c) in CPUS.iter().enumerate() {
        while i != me && stale(c) {
            cpu_relax();
        }
    }
}

/// How a CPU waits for a lock or for another CPU: the YIELD hint. On hardware it only tells
/// the core another thread may go first; QEMU's single-threaded TCG (with `-icount`) turns it
/// into a switch to the next CPU, so a CPU waiting for a lock lets the holder run instead of
/// spinning out its whole time slice (which can starve the holder of a broadcast TLB
/// maintenance it is waiting in).
pub struct YieldRelax;

impl spin::RelaxStrategy for YieldRelax {
    fn relax() {
        cpu_relax();
    }
}

/// One wait step (see [`YieldRelax`]).
#[inline(always)]
pub fn cpu_relax() {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: a hint instruction with no architectural effect.
    unsafe {
        core::arch::asm!("yield", options(nomem, nostack, preserves_flags))
    };
}

/// The board's spin lock: test-and-set (`spin`'s `SpinMutex`), waiting with YIELD, plus a
/// count of how unfair it was: the most times other CPUs took it while one CPU waited
/// (a FIFO lock bounds that by the number of waiters ahead, at most `MAX_CPUS - 1`).
///
/// Not a ticket (FIFO) lock on purpose: under QEMU's multi-threaded TCG on a host with
/// fewer cores than vCPU threads, a FIFO hand-over waits until the host runs the one vCPU
/// thread holding the next ticket (YIELD does nothing there), and with `spin`'s
/// `TicketMutex` the 8-CPU catalogue boot stopped making progress, and so did a lock that
/// hands it to a waiter overtaken 16 times (qemu/README.md). Test-and-set hands the
/// lock to whichever waiter runs; [`Lock::most_overtaken`], printed in the board's summary,
/// shows how far from FIFO that went in a run.
pub struct Lock<T> {
    inner: spin::mutex::SpinMutex<T, YieldRelax>,
    /// Times it was taken (the waiters' clock).
    taken: AtomicU64,
    /// The most times it was taken by others while one CPU waited for it.
    most_overtaken: AtomicU64,
}

/// The guard of a taken [`Lock`].
pub type LockGuard<'a, T> = spin::mutex::SpinMutexGuard<'a, T>;

impl<T> Lock<T> {
    /// A new, free lock holding `v`.
    pub const fn new(v: T) -> Self {
        Lock {
            inner: spin::mutex::SpinMutex::new(v),
            taken: AtomicU64::new(0),
            most_overtaken: AtomicU64::new(0),
        }
    }

    /// Take it, waiting with YIELD while another CPU holds it.
    pub fn lock(&self) -> LockGuard<'_, T> {
        if let Some(g) = self.try_lock() {
            return g;
        }
        let start = self.taken.load(Relaxed);
        loop {
            // Test before test-and-set: the waiters spin on a shared line, not on writes.
            while self.inner.is_locked() {
                cpu_relax();
            }
            if let Some(g) = self.inner.try_lock() {
                let now = self.taken.fetch_add(1, Relaxed);
                self.most_overtaken
                    .fetch_max(now.wrapping_sub(start), Relaxed);
                return g;
            }
        }
    }

    /// Take it if it is free.
    pub fn try_lock(&self) -> Option<LockGuard<'_, T>> {
        let g = self.inner.try_lock()?;
        self.taken.fetch_add(1, Relaxed);
        Some(g)
    }

    /// The most times other CPUs took it while one CPU waited for it, so far.
    pub fn most_overtaken(&self) -> u64 {
        self.most_overtaken.load(Relaxed)
    }
}

/// Whether every other online CPU is idle (in WFI with nothing to run).
pub fn others_idle() -> bool {
    let me = this_cpu();
    CPUS.iter()
        .enumerate()
        .all(|(i, c)| i == me || !c.online.load(SeqCst) || c.idle.load(SeqCst))
}
