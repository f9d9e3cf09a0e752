//! The board's scheduling policy (`qemu/board/src/sched_policy.rs`) on the host: what a VM
//! config's `vcpus` node gives its vCPUs (a proxy-scheduled VM's the lowest priority and the
//! shortest timeslice, as Gunyah's RM), and that a CPU then runs them only when nothing of
//! higher priority is runnable.

extern crate alloc;

#[path = "../src/sched_policy.rs"]
mod sched_policy;

use gunyah_rm::config::{Affinity, Vcpus};
use sched_policy::*;

fn vcpus(affinity: Affinity, map: &[u32], offset: i32, timeslice_us: u32) -> Vcpus {
    Vcpus {
        affinity,
        affinity_map: map.to_vec(),
        count: map.len().max(1) as u32,
        sched_priority: offset,
        sched_timeslice_us: timeslice_us,
    }
}

#[test]
fn proxy_scheduled_vcpus_get_the_lowest_priority_and_shortest_slice() {
    // What the RM's loader leaves in a proxy VM's `vcpus` (its own values are ignored).
    let proxy = vcpus(Affinity::Proxy, &[], 0, DEFAULT_TIMESLICE_US);
    let s = vcpu_sched(Some(&proxy), DEFAULT_PRIORITY);
    assert_eq!(s.priority, MIN_PRIORITY);
    assert_eq!(s.priority, 0);
    assert_eq!(s.timeslice_us, 100);
    assert_eq!(slice_ticks(s.timeslice_us), 1);
    assert!(s.affinity.is_empty());
    // Whatever the values the config carried, and whoever owns it.
    let odd = vcpus(Affinity::Proxy, &[1, 2], 20, 50_000);
    assert_eq!(
        vcpu_sched(Some(&odd), MAX_PRIORITY),
        VcpuSched {
            affinity: Vec::new(),
            priority: 0,
            timeslice_us: 100
        }
    );
}

#[test]
fn other_affinities_take_the_config_relative_to_the_owner() {
    for a in [Affinity::Static, Affinity::Sticky, Affinity::Pinned] {
        let v = vcpus(a, &[0, 0], -1, 3000);
        let s = vcpu_sched(Some(&v), DEFAULT_PRIORITY);
        assert_eq!(s.priority, 31);
        assert_eq!(s.timeslice_us, 3000);
        assert_eq!(slice_ticks(s.timeslice_us), 3);
        assert_eq!(s.affinity, [0, 0]);
    }
    // Offsets are clamped to the scheduler's range.
    let high = vcpus(Affinity::Static, &[0], 63, 5000);
    assert_eq!(
        vcpu_sched(Some(&high), DEFAULT_PRIORITY).priority,
        MAX_PRIORITY
    );
    let low = vcpus(Affinity::Static, &[0], -63, 5000);
    assert_eq!(
        vcpu_sched(Some(&low), DEFAULT_PRIORITY).priority,
        MIN_PRIORITY
    );
    // No VM config: the defaults, anywhere.
    let none = vcpu_sched(None, DEFAULT_PRIORITY);
    assert_eq!(
        (none.priority, none.timeslice_us, none.affinity.len()),
        (32, 5000, 0)
    );
}

#[test]
fn a_proxy_vcpu_runs_only_when_nothing_of_higher_priority_is_runnable() {
    let proxy = vcpu_sched(
        Some(&vcpus(Affinity::Proxy, &[], 0, DEFAULT_TIMESLICE_US)),
        DEFAULT_PRIORITY,
    );
    let plain = vcpu_sched(None, DEFAULT_PRIORITY);
    // (place, priority, place in queue): the proxy vCPU queued first still loses.
    let ready = [(0, proxy.priority, 1), (1, plain.priority, 7)];
    assert_eq!(pick(ready.into_iter()).map(|r| r.0), Some(1));
    // Alone it runs.
    assert_eq!(pick(ready[..1].iter().copied()).map(|r| r.0), Some(0));
    // Among equals, the one queued first; nothing runnable, nothing.
    let equals = [(0, 0, 9), (1, 0, 4), (2, 0, 6)];
    assert_eq!(pick(equals.into_iter()).map(|r| r.0), Some(1));
    assert_eq!(pick(core::iter::empty()), None);
}
