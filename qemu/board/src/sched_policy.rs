//! The scheduler's policy apart from the hardware and the table's lock (`tests/sched.rs`
//! runs it on the host): priorities and timeslices, what a VM config says about its vCPUs,
//! and which runnable vCPU a CPU takes.

use alloc::vec::Vec;

use gunyah_rm::config::{Affinity, Vcpus};

/// EL2 timer ticks per second on every CPU.
pub const TICK_HZ: u64 = 1000;
/// A vCPU's priority when nothing says otherwise (Gunyah's default; HLOS's).
pub const DEFAULT_PRIORITY: u8 = 32;
/// The lowest priority (Gunyah's SCHEDULER_MIN_PRIORITY): a proxy-scheduled VM's.
pub const MIN_PRIORITY: u8 = 0;
/// The highest priority.
pub const MAX_PRIORITY: u8 = 63;
/// A vCPU's timeslice when nothing says otherwise (Gunyah's default: 5 ms).
pub const DEFAULT_TIMESLICE_US: u32 = 5_000;
/// The shortest timeslice (Gunyah's SCHEDULER_MIN_TIMESLICE, 100 us, the shortest
/// `sched-timeslice` the RM's config loader accepts): a proxy-scheduled VM's. The board
/// charges slices in whole ticks, so it is one tick here.
pub const MIN_TIMESLICE_US: u32 = 100;

/// The priority of a VM's vCPUs whose config says `sched-priority = <offset>` and whose
/// owner runs at `owner` (clamped to [`MIN_PRIORITY`]..=[`MAX_PRIORITY`]).
pub fn priority_from(owner: u8, offset: i32) -> u8 {
    (i32::from(owner) + offset).clamp(i32::from(MIN_PRIORITY), i32::from(MAX_PRIORITY)) as u8
}

/// A timeslice in microseconds as whole ticks (rounded up, at least one).
pub fn slice_ticks(timeslice_us: u32) -> u32 {
    let t = (u64::from(timeslice_us) * TICK_HZ).div_ceil(1_000_000);
    t.clamp(1, u64::from(u32::MAX)) as u32
}

/// How a VM's vCPUs are scheduled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VcpuSched {
    /// The physical CPU of each vCPU, by index (a vCPU past its end runs anywhere).
    pub affinity: Vec<u32>,
    /// Their priority.
    pub priority: u8,
    /// Their timeslice in microseconds.
    pub timeslice_us: u32,
}

/// How the vCPUs of a VM whose config's `vcpus` node is `vcpus` (None: no VM config) are
/// scheduled, its owner running at `owner`. As Gunyah's RM: a proxy-scheduled VM's vCPUs
/// run anywhere with the lowest priority and the shortest timeslice, whatever its config
/// says; another's are pinned by its `affinity-map`, with its `sched-priority` (an offset
/// from its owner's) and `sched-timeslice`; without a config, anywhere with the defaults.
pub fn vcpu_sched(vcpus: Option<&Vcpus>, owner: u8) -> VcpuSched {
    match vcpus {
        Some(v) if v.affinity == Affinity::Proxy => VcpuSched {
            affinity: Vec::new(),
            priority: MIN_PRIORITY,
            timeslice_us: MIN_TIMESLICE_US,
        },
        Some(v) => VcpuSched {
            affinity: v.affinity_map.clone(),
            priority: priority_from(owner, v.sched_priority),
            timeslice_us: v.sched_timeslice_us,
        },
        None => VcpuSched {
            affinity: Vec::new(),
            priority: DEFAULT_PRIORITY,
            timeslice_us: DEFAULT_TIMESLICE_US,
        },
    }
}

/// Which of the runnable vCPUs `ready` (place in the table, priority, place in its
/// priority's queue) a CPU runs: the highest priority, among equals the one queued first.
pub fn pick(ready: impl Iterator<Item = (usize, u8, u64)>) -> Option<(usize, u8, u64)> {
    ready.max_by_key(|&(_, p, q)| (p, core::cmp::Reverse(q)))
}
