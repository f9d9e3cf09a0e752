//! The payload's side of the GICv3 its hypervisor gives it (QEMU virt's layout: distributor
//! at 0x0800_0000, redistributors from 0x080A_0000, stride 0x2_0000; on the board both are
//! virtual, and the CPU interface is the GIC's virtual one). The payload never takes
//! interrupts: it waits with WFI, interrupts masked, and then acknowledges what is pending
//! (ICC_IAR1_EL1 / ICC_EOIR1_EL1), so an interrupt only ends a wait.
//!
//! Used: the RM-RPC receive interrupt (the SPI its DT names, raised when a packet arrives
//! in its queue) and the EL1 virtual timer (PPI 27) for waits with a deadline.

use core::ptr::{read_volatile, write_volatile};

const GICD: u64 = 0x0800_0000;
const GICR: u64 = 0x080A_0000;
const GICR_STRIDE: u64 = 0x2_0000;
/// The virtual timer's PPI.
pub const VTIMER: u32 = 27;

fn w32(addr: u64, v: u32) {
    // SAFETY: the GIC's registers, device memory in the payload's stage 1 (VA 0..1 GiB).
    unsafe { write_volatile(addr as *mut u32, v) };
}

fn r32(addr: u64) -> u32 {
    // SAFETY: as in `w32`.
    unsafe { read_volatile(addr as *const u32) }
}

/// The vCPU's index (MPIDR Aff0).
pub fn cpu_index() -> u64 {
    let v: u64;
    // SAFETY: reading MPIDR_EL1 has no side effects.
    unsafe { core::arch::asm!("mrs {0}, mpidr_el1", out(reg) v, options(nomem, nostack)) };
    v & 0xFF
}

/// Set up the distributor (group 1 on, `spi` enabled and routed here) and this vCPU's
/// redistributor (awake, the virtual timer's PPI enabled) and CPU interface.
pub fn init(spi: Option<u32>) {
    let me = cpu_index();
    // CTLR: ARE_NS, EnableGrp1A.
    w32(GICD, (1 << 4) | (1 << 1));
    if let Some(id) = spi.filter(|i| (32..1020).contains(i)) {
        w32(GICD + 0x100 + u64::from(id / 32) * 4, 1 << (id % 32));
        // IROUTER: this vCPU.
        // SAFETY: as in `w32`.
        unsafe { write_volatile((GICD + 0x6000 + u64::from(id) * 8) as *mut u64, me) };
    }
    cpu_init();
}

/// This vCPU's redistributor and CPU interface (a secondary vCPU calls only this).
pub fn cpu_init() {
    let rd = GICR + cpu_index() * GICR_STRIDE;
    let waker = r32(rd + 0x14);
    w32(rd + 0x14, waker & !(1 << 1));
    w32(rd + 0x1_0100, 1 << VTIMER);
    // SAFETY: the CPU interface's system registers: system-register access on, every
    // priority unmasked, group 1 enabled.
    unsafe {
        core::arch::asm!(
            "mrs {t}, icc_sre_el1",
            "orr {t}, {t}, #1",
            "msr icc_sre_el1, {t}",
            "isb",
            "msr icc_pmr_el1, {pmr}",
            "msr icc_igrpen1_el1, {one}",
            "isb",
            t = out(reg) _,
            pmr = in(reg) 0xFFu64,
            one = in(reg) 1u64,
        )
    };
}

fn priority_reg(intid: u32) -> u64 {
    if intid < 32 {
        GICR + cpu_index() * GICR_STRIDE + 0x1_0400 + u64::from(intid)
    } else {
        GICD + 0x400 + u64::from(intid)
    }
}

/// Set interrupt `intid`'s priority (a byte write of GICD_IPRIORITYR for an SPI, of this
/// vCPU's GICR_IPRIORITYR for an SGI or PPI).
pub fn set_priority(intid: u32, priority: u8) {
    // SAFETY: as in `w32`; the priority registers are byte-accessible.
    unsafe { write_volatile(priority_reg(intid) as *mut u8, priority) };
}

/// Interrupt `intid`'s priority, as the GIC keeps it.
pub fn priority(intid: u32) -> u8 {
    // SAFETY: as in `set_priority`.
    unsafe { read_volatile(priority_reg(intid) as *const u8) }
}

/// Set the CPU interface's priority mask (ICC_PMR_EL1): only priorities below it are taken.
pub fn set_priority_mask(pmr: u8) {
    // SAFETY: the priority mask of this vCPU's own CPU interface.
    unsafe {
        core::arch::asm!("msr icc_pmr_el1, {0}", "isb", in(reg) u64::from(pmr), options(nomem, nostack))
    };
}

/// Acknowledge the highest-priority pending interrupt (ICC_IAR1_EL1): its INTID, 1023 if
/// none is taken.
pub fn acknowledge() -> u32 {
    let id: u64;
    // SAFETY: acknowledging an interrupt only changes the GIC's state.
    unsafe { core::arch::asm!("mrs {0}, icc_iar1_el1", out(reg) id, options(nomem, nostack)) };
    (id & 0xFF_FFFF) as u32
}

/// End interrupt `id` (ICC_EOIR1_EL1).
pub fn end(id: u32) {
    // SAFETY: ending an interrupt this vCPU acknowledged.
    unsafe {
        core::arch::asm!("msr icc_eoir1_el1, {0}", "isb", in(reg) u64::from(id), options(nomem, nostack))
    };
}

/// Whether this vCPU masks IRQs (PSTATE.I, DAIF bit 7): the payload's waits are WFIs with
/// IRQs masked, which architecturally still end when an interrupt is pending.
pub fn irqs_masked() -> bool {
    let daif: u64;
    // SAFETY: reading DAIF has no side effects.
    unsafe { core::arch::asm!("mrs {0}, daif", out(reg) daif, options(nomem, nostack)) };
    daif & (1 << 7) != 0
}

/// Wait (WFI) until an interrupt is pending, acknowledging none.
pub fn wait_pending() {
    // SAFETY: WFI with interrupts masked returns when one is pending.
    unsafe { core::arch::asm!("dsb sy", "wfi", options(nomem, nostack)) };
}

/// Fire this vCPU's virtual timer now and wait until its interrupt was raised (the
/// hypervisor took the timer's PPI and masked the timer: CNTV_CTL_EL0.IMASK), taking none.
pub fn fire_timer() {
    // SAFETY: arming this vCPU's own virtual timer to expire at once.
    unsafe {
        core::arch::asm!("msr cntv_tval_el0, {0}", "msr cntv_ctl_el0, {1}", "isb", in(reg) 1u64, in(reg) 1u64, options(nomem, nostack))
    };
    loop {
        let ctl: u64;
        // SAFETY: reading this vCPU's own timer control.
        unsafe {
            core::arch::asm!("isb", "mrs {0}, cntv_ctl_el0", out(reg) ctl, options(nomem, nostack))
        };
        if ctl & 0b10 != 0 {
            return;
        }
        core::hint::spin_loop();
    }
}

/// Turn this vCPU's virtual timer off.
pub fn timer_stop() {
    timer_off();
}

/// Acknowledge and end every pending interrupt: how many there were besides the virtual
/// timer, and whether the timer was one.
pub fn ack_all() -> (u32, bool) {
    let (mut n, mut timer) = (0, false);
    loop {
        let id: u64;
        // SAFETY: acknowledging an interrupt (ICC_IAR1_EL1) only changes the GIC's state.
        unsafe { core::arch::asm!("mrs {0}, icc_iar1_el1", out(reg) id, options(nomem, nostack)) };
        let id = id & 0xFF_FFFF;
        if id >= 1020 {
            return (n, timer);
        }
        if id == u64::from(VTIMER) {
            timer_off();
            timer = true;
        } else {
            n += 1;
        }
        // SAFETY: ending the interrupt just acknowledged.
        unsafe {
            core::arch::asm!("msr icc_eoir1_el1, {0}", "isb", in(reg) id, options(nomem, nostack))
        };
    }
}

fn timer_off() {
    // SAFETY: the EL1 virtual timer is this vCPU's own.
    unsafe { core::arch::asm!("msr cntv_ctl_el0, xzr", "isb", options(nomem, nostack)) };
}

/// Wait for an interrupt (WFI; the hypervisor lets the CPU run others), then acknowledge
/// what is pending (as `ack_all`).
pub fn wait() -> (u32, bool) {
    // SAFETY: WFI with interrupts masked returns when one is pending.
    unsafe { core::arch::asm!("dsb sy", "wfi", options(nomem, nostack)) };
    ack_all()
}

/// Wait for an interrupt or `us` microseconds (the virtual timer), whichever comes first.
pub fn wait_us(us: u64) {
    wait_us_detail(us);
}

/// `wait_us`, telling what ended the wait (as `ack_all`).
pub fn wait_us_detail(us: u64) -> (u32, bool) {
    let freq: u64;
    // SAFETY: reading the counter frequency, then arming this vCPU's own virtual timer.
    unsafe {
        core::arch::asm!("mrs {0}, cntfrq_el0", out(reg) freq, options(nomem, nostack));
        core::arch::asm!(
            "msr cntv_tval_el0, {0}",
            "msr cntv_ctl_el0, {1}",
            "isb",
            in(reg) (freq / 1_000_000 * us).max(1),
            in(reg) 1u64,
            options(nomem, nostack)
        );
    }
    let n = wait();
    timer_off();
    n
}
