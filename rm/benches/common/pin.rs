//! Pinning bench threads to CPUs, so a figure is measured on the cores it names and not on
//! wherever the scheduler placed (or moved) the thread.

/// Pin the calling thread to `cpu`; false if the kernel refused (no such CPU, or not allowed).
pub fn pin_to(cpu: usize) -> bool {
    if cpu >= libc::CPU_SETSIZE as usize {
        return false;
    }
    // SAFETY: an all-zero cpu_set_t is a valid empty set; CPU_SET writes inside it (`cpu` is
    // below CPU_SETSIZE); sched_setaffinity(0, ..) applies to the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Pin the calling thread to the CPU it runs on now (the "pinned to one core"), so the
/// anchors, the baseline and the RM run on one core with one set of caches.
#[allow(dead_code)] // used by cow_fault, not by every bench that includes this file
pub fn pin_to_current_cpu() -> Option<usize> {
    // SAFETY: `sched_getcpu` has no preconditions.
    let cpu = usize::try_from(unsafe { libc::sched_getcpu() }).ok()?;
    pin_to(cpu).then_some(cpu)
}

/// The CPUs this process may run on, in order (empty if the kernel does not say).
#[allow(dead_code)] // used by fault_scaling
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set for sched_getaffinity to fill.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Vec::new();
    }
    // SAFETY: CPU_ISSET reads inside the set for every index below CPU_SETSIZE.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}
