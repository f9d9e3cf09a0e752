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

static GIC: spin::Mutex<Option<GicV3<'static>>> = spin::Mutex::new(None);

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
    let _ = gic.set_interrupt_priority(KICK, Some(cpu), 0x80);
    let _ = gic.enable_interrupt(KICK, Some(cpu), true);
    drop(g);
    GicCpuInterface::set_priority_mask(0xFF);
    GicCpuInterface::enable_group1(true);
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
