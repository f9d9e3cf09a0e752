//! The vCPUs, their virtual interrupts, and which physical CPU runs which: one table under
//! one spin lock (never held while taking the RM's lock).
//!
//! Fixed-priority round robin, as Gunyah's scheduler: each vCPU has a priority (0..=63,
//! higher runs first; a VM config's `sched-priority` is an offset from its owner's, HLOS's
//! [`DEFAULT_PRIORITY`]) and a timeslice (`sched-timeslice`, whole ticks of [`TICK_HZ`],
//! at least one); a proxy-scheduled VM's vCPUs get the lowest priority and the shortest
//! timeslice, as Gunyah's RM gives them (`sched_policy`, which the host tests run). A CPU runs the runnable vCPU of the highest priority among those it may run
//! (a vCPU pinned to a CPU runs only there), the one queued longest among equals; a CPU with
//! nothing to run waits in WFI until kicked or until its tick. Every CPU has an EL2 timer
//! tick: it charges the running vCPU one tick of its slice; a vCPU whose slice is used up
//! goes to the back of its priority's queue (and yields the CPU if another of its priority
//! waits), so a guest spinning forever cannot starve its equals; a higher-priority vCPU that
//! becomes runnable takes the CPU at once (its CPU is kicked), and the one it preempts keeps
//! its place and what is left of its slice. The tick also checks the virtual timers of
//! vCPUs that are off their CPU. A vCPU that executes WFI (trapped) sleeps until an
//! interrupt it would take (enabled, below its priority mask, preempting its running
//! priority under its binary point: `vgic`) is pending for it, whether or not it masks
//! interrupts (PSTATE.I is not looked at: WFI wakes for a masked interrupt).
//!
//! Switching saves the outgoing vCPU's trap frame, EL1 state and virtual CPU interface into
//! its record and loads the incoming one's.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed, Ordering::SeqCst};

use aarch64_cpu::registers::{Writeable, HCR_EL2, VTCR_EL2, VTTBR_EL2};
use gunyah_rm::platform::Vmid;

use crate::boot::Frame;
use crate::layout::MAX_CPUS;
use crate::percpu::{self, key, this_cpu, Lock, CPUS, NONE};
use crate::vcpu::{SysRegs, Vcpu};
use crate::vgic::{self, CpuGic, VmGic};

use crate::sched_policy::pick;
pub use crate::sched_policy::{
    slice_ticks, vcpu_sched, VcpuSched, DEFAULT_PRIORITY, DEFAULT_TIMESLICE_US, MAX_PRIORITY,
    TICK_HZ,
};

/// The virtual timer's PPI.
pub const VTIMER_INTID: u32 = 27;

/// What a vCPU is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Powered off (never started, or CPU_OFF).
    Off,
    /// Runnable, not on a CPU.
    Ready,
    /// In WFI: runnable once an interrupt is pending for it.
    Blocked,
    /// Loaded on this CPU.
    Running(usize),
}

/// A vCPU in the table.
pub struct Entry {
    /// Its registers and identity.
    pub vcpu: Vcpu,
    /// Generation of its VM's incarnation.
    pub gen: u32,
    /// What it does.
    pub state: State,
    /// The only CPU it may run on, if pinned.
    pub affinity: Option<usize>,
    /// VTCR_EL2 and VTTBR_EL2 of its VM's stage 2.
    pub stage2: (u64, u64),
    /// Its redistributor and virtual CPU interface.
    gic: CpuGic,
    /// Its priority (higher runs first).
    priority: u8,
    /// Its timeslice in ticks.
    slice: u32,
    /// Ticks of its current slice used.
    used: u32,
    /// Its place in its priority's queue (smaller runs first): taken anew when it goes to the
    /// back (its slice used up, a yield, a wait); kept when a higher priority preempts it.
    queued: u64,
    /// The CPU it last left (which wakes it when its virtual timer fires while it sleeps
    /// and that CPU is idle).
    last_cpu: usize,
    /// Where its VM's distributor was in [`Sched::gics`] (checked before use: a hint).
    gic_at: usize,
}

impl Entry {
    /// A vCPU record.
    pub fn new(
        vcpu: Vcpu,
        gen: u32,
        on: bool,
        affinity: Option<usize>,
        stage2: (u64, u64),
    ) -> Self {
        Entry {
            vcpu,
            gen,
            state: if on { State::Ready } else { State::Off },
            affinity,
            stage2,
            gic: CpuGic::default(),
            priority: DEFAULT_PRIORITY,
            slice: slice_ticks(DEFAULT_TIMESLICE_US),
            used: 0,
            queued: 0,
            last_cpu: 0,
            gic_at: 0,
        }
    }

    /// The same vCPU with `priority` and a timeslice of `timeslice_us` microseconds.
    pub fn with_sched(mut self, priority: u8, timeslice_us: u32) -> Self {
        self.priority = priority.min(MAX_PRIORITY);
        self.slice = slice_ticks(timeslice_us);
        self
    }

    fn key(&self) -> u64 {
        key(self.gen, self.vcpu.vmid, self.vcpu.index)
    }

    /// Whether this is a vCPU of generation `gen` of `vmid`.
    fn of_vm(&self, vmid: Vmid, gen: u32) -> bool {
        self.vcpu.vmid == vmid && self.gen == gen
    }

    fn may_run_on(&self, cpu: usize) -> bool {
        self.state == State::Ready && self.affinity.is_none_or(|a| a == cpu)
    }
}

struct Sched {
    vcpus: Vec<Entry>,
    /// Each VM incarnation's distributor, with its (VMID, generation).
    gics: Vec<((Vmid, u32), VmGic)>,
    /// Per CPU: where the vCPU loaded there is in `vcpus` (checked against its key before
    /// use: `remove_vm` moves entries).
    running: [usize; MAX_CPUS],
    /// The next place in a queue.
    clock: u64,
    /// Slices used up, by timeslice: (ticks, how many), the first timeslices seen.
    used_up: [(u32, u64); 8],
    /// Per CPU: a vCPU of higher priority than the one running there became runnable for
    /// it, or its running vCPU's slice was used up, since it last chose: whether to make way
    /// is worth a look (the one scan of the table a trap may need, not made on every trap).
    resched: [bool; MAX_CPUS],
    /// Per CPU: the priority of the vCPU loaded there.
    on_cpu: [Option<u8>; MAX_CPUS],
}

static SCHED: Lock<Sched> = Lock::new(Sched {
    vcpus: Vec::new(),
    gics: Vec::new(),
    running: [0; MAX_CPUS],
    clock: 0,
    used_up: [(0, 0); 8],
    resched: [false; MAX_CPUS],
    on_cpu: [None; MAX_CPUS],
});

impl Sched {
    /// Where the vCPU of key `cur`, loaded on `cpu`, is in `vcpus`: the CPU's record if it
    /// still holds that vCPU, else a search.
    fn find_running(&self, cpu: usize, cur: u64) -> Option<usize> {
        let hint = self.running[cpu];
        if self.vcpus.get(hint).is_some_and(|e| e.key() == cur) {
            return Some(hint);
        }
        self.vcpus.iter().position(|e| e.key() == cur)
    }

    /// Where the distributor of vCPU `i`'s VM is in `gics`: the vCPU's record if it still
    /// holds that VM's, else a search (which updates the record).
    fn gic_of(&mut self, i: usize) -> Option<usize> {
        let e = &self.vcpus[i];
        let id = (e.vcpu.vmid, e.gen);
        if self.gics.get(e.gic_at).is_some_and(|(k, _)| *k == id) {
            return Some(e.gic_at);
        }
        let at = self.gics.iter().position(|(k, _)| *k == id)?;
        self.vcpus[i].gic_at = at;
        Some(at)
    }

    /// How many vCPUs generation `gen` of `vmid` has (what its virtual GIC and SGI
    /// targets are sized by).
    fn vcpus_of(&self, vmid: Vmid, gen: u32) -> u32 {
        self.vcpus.iter().filter(|e| e.of_vm(vmid, gen)).count() as u32
    }

    /// Where vCPU `index` of (`vmid`, `gen`) is in `vcpus`.
    fn vcpu_index(&self, vmid: Vmid, gen: u32, index: u32) -> Option<usize> {
        self.vcpus
            .iter()
            .position(|e| e.of_vm(vmid, gen) && e.vcpu.index == index)
    }

    /// Where the distributor of (`vmid`, `gen`) is in `gics`.
    fn gic_index(&self, vmid: Vmid, gen: u32) -> Option<usize> {
        self.gics.iter().position(|(k, _)| *k == (vmid, gen))
    }

    /// The distributor of (`vmid`, `gen`), to change.
    fn gic_mut(&mut self, vmid: Vmid, gen: u32) -> Option<&mut VmGic> {
        let at = self.gic_index(vmid, gen)?;
        Some(&mut self.gics[at].1)
    }

    /// Fill vCPU `i`'s list registers (loaded on this CPU) from its VM's distributor.
    fn fill(&mut self, i: usize) {
        if let Some(g) = self.gic_of(i) {
            let index = self.vcpus[i].vcpu.index;
            self.vcpus[i].gic.fill(&mut self.gics[g].1, index);
        }
    }

    /// Put vCPU `i` at the back of its priority's queue.
    fn requeue(&mut self, i: usize) {
        self.vcpus[i].queued = self.clock;
        self.clock += 1;
    }

    /// vCPU `i` became runnable (at the back of its queue): see [`Sched::notify`].
    fn make_ready(&mut self, i: usize) {
        self.vcpus[i].state = State::Ready;
        self.requeue(i);
        self.notify(i);
    }

    /// Runnable vCPU `i` waits: kick every idle CPU that may run it; if none is idle, the CPU
    /// it may run on with the lowest priority below its own (a higher priority takes the CPU
    /// at once). This CPU is not kicked: it is in EL2 and decides on its way back to a guest
    /// (`after_trap`) or in its idle loop.
    fn notify(&mut self, i: usize) {
        let (affinity, priority) = (self.vcpus[i].affinity, self.vcpus[i].priority);
        let may = |c: usize| affinity.is_none_or(|a| a == c);
        let mut kicked = false;
        for (c, p) in CPUS.iter().enumerate() {
            if p.idle.load(SeqCst) && may(c) {
                crate::gic::kick(c);
                kicked = true;
            }
        }
        if kicked {
            return;
        }
        let victim = (0..MAX_CPUS)
            .filter(|&c| may(c))
            .filter_map(|c| self.on_cpu[c].filter(|&p| p < priority).map(|p| (p, c)))
            .min();
        if let Some((_, c)) = victim {
            self.resched[c] = true;
            if c != this_cpu() {
                crate::gic::kick(c);
            }
        }
    }

    /// The runnable vCPUs `cpu` may run: (place, priority, place in its priority's queue).
    fn ready_for(&self, cpu: usize) -> impl Iterator<Item = (usize, u8, u64)> + '_ {
        self.vcpus
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.may_run_on(cpu))
            .map(|(i, e)| (i, e.priority, e.queued))
    }

    /// Whether vCPU `i`, running on `cpu`, should make way: one of higher priority, or one of
    /// its priority ahead of it in the queue (its slice was used up), waits for `cpu`.
    /// Counts the preemption.
    fn should_make_way(&self, i: usize, cpu: usize) -> bool {
        let me = &self.vcpus[i];
        let ahead = pick(self.ready_for(cpu));
        match ahead {
            Some((_, p, _)) if p > me.priority => {
                PRIORITY_PREEMPTIONS.fetch_add(1, Relaxed);
                true
            }
            Some((_, p, q)) if p == me.priority && q < me.queued => {
                PREEMPTIONS.fetch_add(1, Relaxed);
                true
            }
            _ => false,
        }
    }
}

#[allow(clippy::declare_interior_mutable_const)]
const NO_VCPU: AtomicU64 = AtomicU64::new(NONE);
/// Per CPU: the key of the vCPU loaded on it (written only by that CPU).
static CURRENT: [AtomicU64; MAX_CPUS] = [NO_VCPU; MAX_CPUS];

/// The PMU counters of the vCPU each CPU runs (`vpmu.rs`).
static VPMU: [crate::vpmu::Loaded; MAX_CPUS] = [const { crate::vpmu::Loaded::new() }; MAX_CPUS];

/// The PMU counters of the vCPU running on this CPU (a trapped counter read).
pub fn vpmu_counts() -> [u32; 2] {
    VPMU[this_cpu()].read(crate::pmu::counters())
}

/// vCPUs taken off a CPU by the tick (their slice used up) while another of their priority
/// waited.
pub static PREEMPTIONS: AtomicU64 = AtomicU64::new(0);
/// vCPUs taken off a CPU before their slice ended because one of higher priority became
/// runnable there.
pub static PRIORITY_PREEMPTIONS: AtomicU64 = AtomicU64::new(0);
/// Virtual interrupts raised (message-queue pushes and virtual timers).
pub static VIRQS_RAISED: AtomicU64 = AtomicU64::new(0);

/// The scheduler's line of the board's summary: preemptions by priority and by the tick,
/// and the slices used up by timeslice.
pub fn report() {
    let s = SCHED.lock();
    let mut slices = alloc::string::String::new();
    for (ticks, n) in s.used_up.iter().filter(|(_, n)| *n != 0) {
        if !slices.is_empty() {
            slices.push_str(", ");
        }
        let _ = core::fmt::Write::write_fmt(&mut slices, format_args!("{ticks} ticks: {n}"));
    }
    drop(s);
    crate::println!(
        "qemu board: scheduler: preemptions by a higher priority {}; by the tick at the end of \
         a slice {}; slices used up by timeslice [{slices}]",
        PRIORITY_PREEMPTIONS.load(Relaxed),
        PREEMPTIONS.load(Relaxed),
    );
}

/// The vCPU loaded on this CPU: (VMID, index, generation), if any.
pub fn current() -> Option<(Vmid, u32, u32)> {
    let k = CURRENT[this_cpu()].load(SeqCst);
    (k != NONE).then_some(((k >> 16) as Vmid, (k & 0xFFFF) as u32, (k >> 32) as u32))
}

/// Add a VM incarnation's vCPUs (and its distributor); kick CPUs for the runnable.
pub fn add(vmid: Vmid, gen: u32, entries: Vec<Entry>) {
    let mut s = SCHED.lock();
    let at = match s.gic_index(vmid, gen) {
        Some(at) => {
            s.gics[at].1 = VmGic::default();
            at
        }
        None => {
            s.gics.push(((vmid, gen), VmGic::default()));
            s.gics.len() - 1
        }
    };
    let first = s.vcpus.len();
    s.vcpus.extend(entries);
    for i in first..s.vcpus.len() {
        s.vcpus[i].gic_at = at;
    }
    for i in first..s.vcpus.len() {
        if s.vcpus[i].state == State::Ready {
            s.make_ready(i);
        }
    }
}

/// Drop every vCPU of generation `gen` of `vmid` (after `percpu::evict_vm`: none runs).
pub fn remove_vm(vmid: Vmid, gen: u32) {
    let mut s = SCHED.lock();
    s.vcpus.retain(|e| !e.of_vm(vmid, gen));
    s.gics.retain(|(k, _)| *k != (vmid, gen));
}

/// vCPU `i` may take an interrupt now (of `priority`, just raised; None: one it would take,
/// already checked): wake it if it sleeps and would take it (its priority mask; it had
/// nothing to take when it went to sleep, so the new interrupt is all to look at), kick its
/// CPU if it runs elsewhere (it fills its list registers on the way back to the guest).
fn deliver(s: &mut Sched, i: usize, priority: Option<u8>) {
    let e = &s.vcpus[i];
    match e.state {
        State::Blocked if priority.is_none_or(|p| e.gic.would_take(p)) => s.make_ready(i),
        State::Running(c) if c != this_cpu() => crate::gic::kick(c),
        _ => {}
    }
}

/// Raise SPI `intid` of `vmid`'s running incarnation (a message-queue push).
pub fn raise_spi(vmid: Vmid, gen: u32, intid: u32) {
    VIRQS_RAISED.fetch_add(1, Relaxed);
    let mut s = SCHED.lock();
    let Some((target, priority)) = s
        .gic_mut(vmid, gen)
        .and_then(|g| Some((g.raise_spi(intid)?, g.spi_priority(intid))))
    else {
        return;
    };
    if let Some(i) = s.vcpu_index(vmid, gen, target) {
        deliver(&mut s, i, Some(priority));
    }
}

fn raise_ppi_locked(s: &mut Sched, i: usize, intid: u32) {
    VIRQS_RAISED.fetch_add(1, Relaxed);
    let Some(g) = s.gic_of(i) else {
        return;
    };
    if s.vcpus[i].gic.raise_ppi(&s.gics[g].1, intid) {
        let priority = s.vcpus[i].gic.ppi_priority(intid);
        deliver(s, i, Some(priority));
    }
}

/// vCPU `me` of (`vmid`, `gen`) wrote `value` to ICC_SGI1R_EL1: raise the SGI it names on
/// the vCPUs it names (`vgic::sgi_targets`), itself included if it named itself. The number
/// of vCPUs it went to.
pub fn send_sgi(vmid: Vmid, gen: u32, me: u32, value: u64) -> u32 {
    let mut s = SCHED.lock();
    let s = &mut *s;
    let vcpus = s.vcpus_of(vmid, gen);
    let (intid, targets) = vgic::sgi_targets(value, me, vcpus);
    let mut sent = 0;
    for i in 0..s.vcpus.len() {
        let e = &s.vcpus[i];
        if e.of_vm(vmid, gen) && e.vcpu.index < 64 && targets & (1 << e.vcpu.index) != 0 {
            raise_ppi_locked(s, i, intid);
            sent += 1;
        }
    }
    sent
}

/// PSCI CPU_ON for vCPU `index` of the caller's VM: 0 SUCCESS, -2 INVALID_PARAMETERS (no
/// such vCPU), -4 ALREADY_ON. It starts at `entry` (EL1h, MMU off) with x0 = `context`.
pub fn cpu_on(vmid: Vmid, gen: u32, index: u32, entry: u64, context: u64) -> i64 {
    let mut s = SCHED.lock();
    let Some(i) = s.vcpu_index(vmid, gen, index) else {
        return -2;
    };
    let e = &mut s.vcpus[i];
    if e.state != State::Off {
        return -4;
    }
    let mut x = [0u64; 31];
    x[0] = context;
    e.vcpu = Vcpu::new(vmid, index, entry, &x, 0);
    e.gic = CpuGic::default();
    e.used = 0;
    s.make_ready(i);
    0
}

/// PSCI AFFINITY_INFO for vCPU `index` of the caller's VM: 0 ON, 1 OFF, -2 no such vCPU.
pub fn affinity_info(vmid: Vmid, gen: u32, index: u32) -> i64 {
    let s = SCHED.lock();
    match s.vcpu_index(vmid, gen, index).map(|i| &s.vcpus[i]) {
        None => -2,
        Some(e) if e.state == State::Off => 1,
        Some(_) => 0,
    }
}

/// A guest access of `size` bytes to the virtual GIC by a vCPU of generation `gen` of
/// `vmid`: what a read returns, or None if `ipa` is not in its virtual GIC.
pub fn vgic_access(vmid: Vmid, gen: u32, ipa: u64, size: u64, write: Option<u64>) -> Option<u64> {
    let mut s = SCHED.lock();
    let s = &mut *s;
    let vcpus = s.vcpus_of(vmid, gen);
    let frame = vgic::decode(ipa, vcpus)?;
    let g = s.gic_index(vmid, gen)?;
    let v = match frame {
        vgic::Frame::Dist(off) => vgic::distributor(off, size, write, &mut s.gics[g].1),
        vgic::Frame::Redist(idx, off) => {
            let i = s.vcpu_index(vmid, gen, idx)?;
            vgic::redistributor(off, size, write, &mut s.vcpus[i].gic, idx, vcpus)
        }
    };
    // An enable may have made something deliverable: wake whoever can take it.
    if write.is_some() {
        for i in 0..s.vcpus.len() {
            let e = &mut s.vcpus[i];
            if e.of_vm(vmid, gen) {
                let live = e.state == State::Running(this_cpu());
                let index = e.vcpu.index;
                if e.gic.has_work(&s.gics[g].1, index, live) {
                    deliver(s, i, None);
                }
            }
        }
    }
    Some(v)
}

/// What becomes of the vCPU that trapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// It goes on (unless one of higher priority, or of its priority whose turn it is,
    /// waits for this CPU).
    Resume,
    /// It goes to the back of its priority's queue; another may run first.
    Yield,
    /// It executed WFI: it sleeps unless an interrupt it would take is pending for it.
    Wfi,
    /// It powered off (or was stopped by the board).
    Off,
}

/// After a trap: go on with the current vCPU, or put it away and run the next. Returns once
/// `frame` and the CPU hold a vCPU that may run (waiting in WFI while there is none).
pub fn after_trap(frame: &mut Frame, after: After) {
    let cpu = this_cpu();
    let cur = CURRENT[cpu].load(SeqCst);
    if cur != NONE {
        let mut s = SCHED.lock();
        let s = &mut *s;
        match s.find_running(cpu, cur) {
            // Its VM was taken away: nothing to keep.
            None => {}
            Some(i) => {
                let (vmid, gen, index) =
                    (s.vcpus[i].vcpu.vmid, s.vcpus[i].gen, s.vcpus[i].vcpu.index);
                let has_work = after == After::Wfi
                    && s.gic_of(i)
                        .is_some_and(|g| s.vcpus[i].gic.has_work(&s.gics[g].1, index, true));
                let look = core::mem::take(&mut s.resched[cpu]);
                let stays = match after {
                    After::Resume => true,
                    After::Wfi => has_work,
                    _ => false,
                } && !(look && s.should_make_way(i, cpu));
                if stays {
                    s.running[cpu] = i;
                    s.fill(i);
                    if percpu::enter_guest(cur, vmid, gen) {
                        return;
                    }
                } else {
                    let e = &mut s.vcpus[i];
                    e.vcpu.frame.clone_from(frame);
                    e.vcpu.sys = SysRegs::save();
                    e.vcpu.pmu = VPMU[cpu].read(crate::pmu::counters());
                    e.vcpu.sve = crate::sve::SveRegs::save();
                    e.gic.save();
                    e.last_cpu = cpu;
                    e.state = match after {
                        After::Off => State::Off,
                        After::Wfi if !has_work => State::Blocked,
                        _ => State::Ready,
                    };
                    // Preempted (Resume, or WFI with work) it keeps its place and slice, and
                    // another CPU may take it; otherwise it goes to the back with a new slice.
                    if matches!(after, After::Yield | After::Off)
                        || (after == After::Wfi && !has_work)
                    {
                        e.used = 0;
                        s.requeue(i);
                    } else {
                        s.notify(i);
                    }
                }
            }
        }
        s.on_cpu[cpu] = None;
        CURRENT[cpu].store(NONE, SeqCst);
        idle_cpu();
    }
    schedule(frame);
}

/// No vCPU on this CPU: stage 2 off (nothing walks a VM's tables from here), the virtual
/// timer of the vCPU that left disabled (its record has it), and its list registers empty
/// (`vgic::discard_cpu`: a vCPU whose VM was taken away while it ran left them as they were).
fn idle_cpu() {
    HCR_EL2.set(1 << 31);
    VTTBR_EL2.set(0);
    vgic::discard_cpu();
    #[cfg(target_arch = "aarch64")]
    // SAFETY: EL2 controls and the EL1 virtual timer of no vCPU; context synchronised.
    unsafe {
        core::arch::asm!("msr cntv_ctl_el0, xzr", "isb")
    };
}

/// Load the next vCPU this CPU may run into `frame` and the CPU, waiting for one: the
/// highest priority, the first in its queue.
pub fn schedule(frame: &mut Frame) {
    let cpu = this_cpu();
    loop {
        let mut s = SCHED.lock();
        let s2 = &mut *s;
        let Some((i, _, _)) = pick(s2.ready_for(cpu)) else {
            // Tickless while idle: wake only for the virtual timer of a vCPU that went to
            // sleep here.
            let deadline = s2
                .vcpus
                .iter()
                .filter(|e| e.state == State::Blocked && e.last_cpu == cpu)
                .filter(|e| e.vcpu.sys.cntv_ctl & 0b11 == 0b01)
                .map(|e| e.vcpu.sys.cntv_cval)
                .min();
            CPUS[cpu].idle.store(true, SeqCst);
            drop(s);
            crate::gic::arm_tick_at(deadline);
            wait_for_work();
            CPUS[cpu].idle.store(false, SeqCst);
            continue;
        };
        s2.resched[cpu] = false;
        s2.on_cpu[cpu] = Some(s2.vcpus[i].priority);
        s2.running[cpu] = i;
        let e = &mut s2.vcpus[i];
        e.state = State::Running(cpu);
        let k = e.key();
        let (vmid, gen) = (e.vcpu.vmid, e.gen);
        frame.clone_from(&e.vcpu.frame);
        e.vcpu.sys.restore();
        VPMU[cpu].load(e.vcpu.pmu, crate::pmu::counters());
        e.vcpu.sve.restore();
        e.gic.restore();
        s2.fill(i);
        let (vtcr, vttbr) = s2.vcpus[i].stage2;
        drop(s);
        crate::gic::arm_tick(TICK_HZ);
        VTCR_EL2.set(vtcr);
        VTTBR_EL2.set(vttbr);
        // RW: EL1 is AArch64; TSC: SMC traps (PSCI through SMC); TID3: ID register reads
        // trap (`idregs.rs`); TWE, TWI: WFE and WFI trap; IMO: physical interrupts come to
        // EL2 (and virtual ones go to the vCPU); VM: stage 2 on.
        HCR_EL2.set((1 << 31) | (1 << 19) | (1 << 18) | (1 << 14) | (1 << 13) | (1 << 4) | 1);
        #[cfg(target_arch = "aarch64")]
        // SAFETY: synchronise the new translation regime before the ERET that uses it.
        unsafe {
            core::arch::asm!("isb")
        };
        CURRENT[cpu].store(k, SeqCst);
        if percpu::enter_guest(k, vmid, gen) {
            return;
        }
        // Its VM went while we loaded it.
        SCHED.lock().on_cpu[cpu] = None;
        CURRENT[cpu].store(NONE, SeqCst);
        idle_cpu();
    }
}

/// WFI until an interrupt is pending at this CPU, then take it.
fn wait_for_work() {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: WFI with interrupts masked at EL2: it returns when one is pending.
    unsafe {
        core::arch::asm!("dsb sy", "wfi")
    };
    crate::gic::drain(|id| {
        if id == crate::gic::TICK {
            // Silence it (the idle loop re-arms it) before it is ended.
            crate::gic::arm_tick_at(None);
            tick();
        }
    });
}

/// The EL2 timer tick on this CPU: charge the vCPU running here one tick of its slice (a
/// slice used up sends it to the back of its priority's queue: `after_trap` then lets the
/// next of its priority run), and raise the virtual timer of every vCPU off its CPU whose
/// timer fired. The caller re-arms the tick.
pub fn tick() {
    let now = crate::gic::counter();
    let cur = CURRENT[this_cpu()].load(SeqCst);
    let mut s = SCHED.lock();
    if let Some(i) = s.find_running(this_cpu(), cur) {
        let e = &mut s.vcpus[i];
        e.used += 1;
        if e.used >= e.slice {
            e.used = 0;
            let ticks = e.slice;
            s.requeue(i);
            s.resched[this_cpu()] = true;
            if let Some(slot) = s.used_up.iter_mut().find(|(t, n)| *t == ticks || *n == 0) {
                *slot = (ticks, slot.1 + 1);
            }
        }
    }
    let mut fired = Vec::new();
    for (i, e) in s.vcpus.iter_mut().enumerate() {
        let ctl = e.vcpu.sys.cntv_ctl;
        // Enabled, not masked, off a CPU, expired: mask it (the guest's handler re-arms),
        // raise its interrupt.
        if !matches!(e.state, State::Running(_) | State::Off)
            && ctl & 0b11 == 0b01
            && e.vcpu.sys.cntv_cval <= now
        {
            e.vcpu.sys.cntv_ctl |= 0b10;
            fired.push(i);
        }
    }
    for i in fired {
        raise_ppi_locked(&mut s, i, VTIMER_INTID);
    }
}

/// The running vCPU's virtual timer fired (its PPI came to EL2): mask it in the CPU (the
/// guest's handler re-arms it) and make its virtual interrupt pending.
pub fn vtimer_fired() {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: the EL1 virtual timer of the vCPU loaded on this CPU; IMASK only silences it.
    unsafe {
        core::arch::asm!(
            "mrs {t}, cntv_ctl_el0",
            "orr {t}, {t}, #2",
            "msr cntv_ctl_el0, {t}",
            "isb",
            t = out(reg) _,
        )
    };
    let cur = CURRENT[this_cpu()].load(SeqCst);
    let mut s = SCHED.lock();
    if let Some(i) = s.find_running(this_cpu(), cur) {
        raise_ppi_locked(&mut s, i, VTIMER_INTID);
    }
}

/// [`crate::percpu::Lock::most_overtaken`] of the scheduler's lock, for the board's summary.
pub fn lock_most_overtaken() -> u64 {
    SCHED.most_overtaken()
}
