//! The physical GICv3 (through `arm-gic`): the boot CPU sets up the distributor and every
//! redistributor, each CPU its own CPU interface. EL2 uses one SGI to make another CPU look
//! at its work again (a vCPU became runnable, or one it runs must leave). Physical
//! interrupts are routed to EL2 (HCR_EL2.IMO) and taken only while a vCPU runs; an idle CPU
//! waits with WFI and reads them itself.

use core::ptr::NonNull;

use arm_gic::gicv3::registers::{Gicd, GicrSgi};
use arm_gic::gicv3::{GicCpuInterface, GicV3, SgiTarget, SgiTargetGroup};
use arm_gic::{IntId, InterruptGroup};
use safe_mmio::UniqueMmioPointer;

/// The SGI that asks a CPU to reschedule.
pub const KICK: IntId = IntId::sgi(0);
/// The EL2 physical timer's PPI (Gunyah's QEMU platform: hyp timer PPI 26).
pub const TICK: IntId = IntId::ppi(10);
/// The EL1 virtual timer's PPI (27), which comes to EL2 while a vCPU runs.
pub const VTIMER: IntId = IntId::ppi(11);

static GIC: crate::percpu::Lock<Option<GicV3<'static>>> = crate::percpu::Lock::new(None);

/// The boot CPU: set up the distributor and redistributors (`gicd`, `gicr` from the DT) for
/// `cpus` CPUs, and this CPU's interface.
pub fn init(gicd: u64, gicr: u64, cpus: usize) -> Result<(), &'static str> {
    // SAFETY: the GIC's distributor and redistributor frames from QEMU's DT, device memory in
    // EL2's stage 1, driven only through this instance (under its lock) and the CPU
    // interface's system registers.
    let mut gic = unsafe {
        GicV3::new(
            UniqueMmioPointer::new(NonNull::new(gicd as *mut Gicd).ok_or("GICD at 0")?),
            NonNull::new(gicr as *mut GicrSgi).ok_or("GICR at 0")?,
            cpus,
        )
    }
    .map_err(|_| "the GIC's redistributors are not what GICv3 describes")?;
    GicCpuInterface::enable_system_register_el2(true);
    gic.setup(0);
    *GIC.lock() = Some(gic);
    init_cpu(0);
    Ok(())
}

/// This CPU (`cpu`): wake its redistributor, enable the kick SGI, unmask every priority.
pub fn init_cpu(cpu: usize) {
    GicCpuInterface::enable_system_register_el2(true);
    let mut g = GIC.lock();
    let Some(gic) = g.as_mut() else { return };
    gic.init_cpu(cpu);
    for id in [KICK, TICK, VTIMER] {
        let _ = gic.set_interrupt_priority(id, Some(cpu), 0x80);
        let _ = gic.enable_interrupt(id, Some(cpu), true);
    }
    drop(g);
    GicCpuInterface::set_priority_mask(0xFF);
    GicCpuInterface::enable_group1(true);
    crate::vgic::init_cpu();
    #[cfg(target_arch = "aarch64")]
    // SAFETY: EL2 timer controls: EL1 may read the physical counter (EL1PCTEN) but not use
    // the physical timer (EL1PCEN 0: it traps); the virtual counter equals the physical one
    // (CNTVOFF_EL2 0), which `tick` relies on.
    unsafe {
        core::arch::asm!("msr cnthctl_el2, {0}", "msr cntvoff_el2, xzr", "isb", in(reg) 1u64)
    };
    arm_tick(crate::sched::TICK_HZ);
}

/// The counter (CNTPCT_EL0; the virtual counter is the same).
pub fn counter() -> u64 {
    let v: u64;
    #[cfg(target_arch = "aarch64")]
    // SAFETY: reading the counter has no side effects.
    unsafe {
        core::arch::asm!("isb", "mrs {0}, cntpct_el0", out(reg) v, options(nostack))
    };
    #[cfg(not(target_arch = "aarch64"))]
    {
        v = 0;
    }
    v
}

/// Arm this CPU's EL2 timer for counter value `at`, or turn it off.
pub fn arm_tick_at(at: Option<u64>) {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: the EL2 physical timer is the board's own.
    unsafe {
        match at {
            Some(cval) => core::arch::asm!(
                "msr cnthp_cval_el2, {0}",
                "msr cnthp_ctl_el2, {1}",
                "isb",
                in(reg) cval,
                in(reg) 1u64,
            ),
            None => core::arch::asm!("msr cnthp_ctl_el2, xzr", "isb"),
        }
    }
    #[cfg(not(target_arch = "aarch64"))]
    let _ = at;
}

/// Arm this CPU's EL2 timer to fire in 1/`hz` s.
pub fn arm_tick(hz: u64) {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: the EL2 physical timer is the board's own.
    unsafe {
        let freq: u64;
        core::arch::asm!("mrs {0}, cntfrq_el0", out(reg) freq, options(nomem, nostack));
        core::arch::asm!(
            "msr cnthp_tval_el2, {0}",
            "msr cnthp_ctl_el2, {1}",
            "isb",
            in(reg) (freq / hz).max(1),
            in(reg) 1u64,
        );
    }
    #[cfg(not(target_arch = "aarch64"))]
    let _ = hz;
}

/// Make `cpu` take an interrupt (and so look at its work again).
pub fn kick(cpu: usize) {
    let target = SgiTarget::List {
        affinity3: 0,
        affinity2: 0,
        affinity1: 0,
        target_list: 1 << cpu,
    };
    let _ = GicCpuInterface::send_sgi(KICK, target, SgiTargetGroup::CurrentGroup1);
}

/// Acknowledge and end every interrupt pending at this CPU; `f` sees each.
pub fn drain(mut f: impl FnMut(IntId)) {
    while let Some(id) = GicCpuInterface::get_and_acknowledge_interrupt(InterruptGroup::Group1) {
        f(id);
        GicCpuInterface::end_interrupt(id, InterruptGroup::Group1);
    }
}

/// [`crate::percpu::Lock::most_overtaken`] of the GIC's lock, for the board's summary.
pub fn lock_most_overtaken() -> u64 {
    GIC.most_overtaken()
}
