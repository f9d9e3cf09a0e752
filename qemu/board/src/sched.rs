//! The vCPUs and which physical CPU runs which: one table under one spin lock (never held
//! while taking the RM's lock). A CPU runs the runnable vCPU that waited longest among
//! those it may run (a vCPU pinned to a CPU runs only there); a CPU with nothing to run
//! waits in WFI until kicked. Switching saves the outgoing vCPU's trap frame and EL1 state
//! into its record and loads the incoming one's.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

use aarch64_cpu::registers::{Writeable, HCR_EL2, VTCR_EL2, VTTBR_EL2};
use gunyah_rm::platform::Vmid;

use crate::boot::Frame;
use crate::layout::MAX_CPUS;
use crate::percpu::{self, key, this_cpu, CPUS, NONE};
use crate::vcpu::{SysRegs, Vcpu};

/// What a vCPU is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Powered off (never started, or CPU_OFF).
    Off,
    /// Runnable, not on a CPU.
    Ready,
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
    /// When it last left a CPU (smaller runs first).
    last: u64,
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
            last: 0,
        }
    }

    fn key(&self) -> u64 {
        key(self.gen, self.vcpu.vmid, self.vcpu.index)
    }

    fn may_run_on(&self, cpu: usize) -> bool {
        self.state == State::Ready && self.affinity.is_none_or(|a| a == cpu)
    }
}

struct Sched {
    vcpus: Vec<Entry>,
    clock: u64,
}

static SCHED: spin::Mutex<Sched> = spin::Mutex::new(Sched {
    vcpus: Vec::new(),
    clock: 0,
});

#[allow(clippy::declare_interior_mutable_const)]
const NO_VCPU: AtomicU64 = AtomicU64::new(NONE);
/// Per CPU: the key of the vCPU loaded on it (written only by that CPU).
static CURRENT: [AtomicU64; MAX_CPUS] = [NO_VCPU; MAX_CPUS];

/// The vCPU loaded on this CPU: (VMID, index, generation), if any.
pub fn current() -> Option<(Vmid, u32, u32)> {
    let k = CURRENT[this_cpu()].load(SeqCst);
    (k != NONE).then(|| ((k >> 16) as Vmid, (k & 0xFFFF) as u32, (k >> 32) as u32))
}

/// Kick every idle CPU that may run `e`.
fn wake_for(affinity: Option<usize>) {
    for (i, c) in CPUS.iter().enumerate() {
        if c.idle.load(SeqCst) && affinity.is_none_or(|a| a == i) {
            crate::gic::kick(i);
        }
    }
}

/// Add a VM's vCPUs; kick idle CPUs for those that are runnable.
pub fn add(entries: Vec<Entry>) {
    let wake: Vec<Option<usize>> = entries
        .iter()
        .filter(|e| e.state == State::Ready)
        .map(|e| e.affinity)
        .collect();
    SCHED.lock().vcpus.extend(entries);
    for a in wake {
        wake_for(a);
    }
}

/// Drop every vCPU of generation `gen` of `vmid` (after `percpu::evict_vm`: none runs).
pub fn remove_vm(vmid: Vmid, gen: u32) {
    SCHED
        .lock()
        .vcpus
        .retain(|e| !(e.vcpu.vmid == vmid && e.gen == gen));
}

/// PSCI CPU_ON for vCPU `index` of the caller's VM: 0 SUCCESS, -2 INVALID_PARAMETERS (no
/// such vCPU), -4 ALREADY_ON. It starts at `entry` (EL1h, MMU off) with x0 = `context`.
pub fn cpu_on(vmid: Vmid, gen: u32, index: u32, entry: u64, context: u64) -> i64 {
    let mut s = SCHED.lock();
    let Some(e) = s
        .vcpus
        .iter_mut()
        .find(|e| e.vcpu.vmid == vmid && e.gen == gen && e.vcpu.index == index)
    else {
        return -2;
    };
    if e.state != State::Off {
        return -4;
    }
    let mut x = [0u64; 31];
    x[0] = context;
    e.vcpu = Vcpu::new(vmid, index, entry, &x, 0);
    e.state = State::Ready;
    let a = e.affinity;
    drop(s);
    wake_for(a);
    0
}

/// PSCI AFFINITY_INFO for vCPU `index` of the caller's VM: 0 ON, 1 OFF, -2 no such vCPU.
pub fn affinity_info(vmid: Vmid, gen: u32, index: u32) -> i64 {
    let s = SCHED.lock();
    match s
        .vcpus
        .iter()
        .find(|e| e.vcpu.vmid == vmid && e.gen == gen && e.vcpu.index == index)
    {
        None => -2,
        Some(e) if e.state == State::Off => 1,
        Some(_) => 0,
    }
}

/// What becomes of the vCPU that trapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// It goes on.
    Resume,
    /// It stays runnable; another may run first.
    Yield,
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
        let clock = s.clock;
        match s.vcpus.iter_mut().find(|e| e.key() == cur) {
            // Its VM was taken away: nothing to keep.
            None => {}
            Some(e) if after == After::Resume => {
                let (vmid, gen) = (e.vcpu.vmid, e.gen);
                drop(s);
                if percpu::enter_guest(cur, vmid, gen) {
                    return;
                }
            }
            Some(e) => {
                e.vcpu.frame.clone_from(frame);
                e.vcpu.sys = SysRegs::save();
                e.last = clock;
                e.state = if after == After::Off {
                    State::Off
                } else {
                    State::Ready
                };
                s.clock += 1;
            }
        }
        CURRENT[cpu].store(NONE, SeqCst);
        idle_stage2();
    }
    schedule(frame);
}

/// No vCPU on this CPU: stage 2 off, so nothing walks a VM's tables from here.
fn idle_stage2() {
    HCR_EL2.set(1 << 31);
    VTTBR_EL2.set(0);
    #[cfg(target_arch = "aarch64")]
    // SAFETY: context synchronisation after changing EL2 controls.
    unsafe {
        core::arch::asm!("isb")
    };
}

/// Load the next vCPU this CPU may run into `frame` and the CPU, waiting for one.
pub fn schedule(frame: &mut Frame) {
    let cpu = this_cpu();
    loop {
        let mut s = SCHED.lock();
        let pick = s
            .vcpus
            .iter()
            .enumerate()
            .filter(|(_, e)| e.may_run_on(cpu))
            .min_by_key(|(_, e)| e.last)
            .map(|(i, _)| i);
        let Some(i) = pick else {
            CPUS[cpu].idle.store(true, SeqCst);
            drop(s);
            wait_for_work();
            CPUS[cpu].idle.store(false, SeqCst);
            continue;
        };
        let e = &mut s.vcpus[i];
        e.state = State::Running(cpu);
        let k = e.key();
        let (vmid, gen) = (e.vcpu.vmid, e.gen);
        frame.clone_from(&e.vcpu.frame);
        e.vcpu.sys.restore();
        let (vtcr, vttbr) = e.stage2;
        drop(s);
        VTCR_EL2.set(vtcr);
        VTTBR_EL2.set(vttbr);
        // RW: EL1 is AArch64; TSC: SMC traps (PSCI through SMC); IMO: physical interrupts
        // come to EL2; VM: stage 2 on.
        HCR_EL2.set((1 << 31) | (1 << 19) | (1 << 4) | 1);
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
        CURRENT[cpu].store(NONE, SeqCst);
        idle_stage2();
    }
}

/// WFI until an interrupt is pending at this CPU, then take it (a kick needs nothing more).
fn wait_for_work() {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: WFI with interrupts masked at EL2: it returns when one is pending.
    unsafe {
        core::arch::asm!("dsb sy", "wfi")
    };
    crate::gic::drain(|_| {});
}
