//! Entry at EL2, exception vectors, EL2's own stage 1, and entering a vCPU at EL1.

use aarch64_cpu::registers::{
    Readable, Writeable, ELR_EL1, ELR_EL2, ESR_EL1, ESR_EL2, FAR_EL1, FAR_EL2, MAIR_EL2, SCTLR_EL2,
    SPSR_EL1, SPSR_EL2, TCR_EL2, TTBR0_EL2, VBAR_EL1,
};

// The board keeps its own entry and vectors rather than `aarch64-rt`'s: a hypervisor's
// vectors save a vCPU's whole register file (x0-x30, q0-q31, FPSR, FPCR) as a frame the
// handler may replace with another vCPU's, and each physical CPU runs on its own stack.
#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    r#"
.section .text.boot, "ax"
// The boot CPU (QEMU starts only CPU 0 at the ELF entry).
.global _start
_start:
    bl el2_stack_for_this_cpu
    ldr x1, =__bss_start
    ldr x2, =__bss_end
1:  cmp x1, x2
    b.hs 2f
    str xzr, [x1], #8
    b 1b
2:  adr x1, el2_vectors
    msr vbar_el2, x1
    isb
    bl el2_main
3:  wfe
    b 3b

// Every other CPU, started by PSCI CPU_ON with this entry (x0 = its index).
.global el2_secondary_entry
el2_secondary_entry:
    bl el2_stack_for_this_cpu
    adr x1, el2_vectors
    msr vbar_el2, x1
    isb
    bl el2_secondary_main
4:  wfe
    b 4b

// SP = the top of this CPU's stack (MPIDR Aff0 picks it); TPIDR_EL2 = that index.
el2_stack_for_this_cpu:
    mrs x9, mpidr_el1
    and x9, x9, #0xff
    msr tpidr_el2, x9
    add x10, x9, #1
    ldr x11, ={stack_base}
    mov x12, #{stack_size}
    madd x11, x10, x12, x11
    mov sp, x11
    ret

.section .text
.balign 2048
el2_vectors:
.rept 8
.balign 0x80
    b el2_unexpected
.endr
.balign 0x80
    sub sp, sp, #{frame_size}
    stp x0, x1, [sp, #0]
    mov x0, #0
    b el2_lower_save
.balign 0x80
    sub sp, sp, #{frame_size}
    stp x0, x1, [sp, #0]
    mov x0, #1
    b el2_lower_save
.rept 6
.balign 0x80
    b el2_unexpected
.endr

el2_unexpected:
    mrs x0, esr_el2
    mrs x1, elr_el2
    bl el2_unexpected_rust

// A trap (x0 = 0) or an interrupt (x0 = 1) from the running vCPU: save its x0-x30, q0-q31,
// FPSR and FPCR as a `Frame` the handler may change (results, or a different vCPU's
// registers; EL2's Rust code uses the FP/SIMD registers too), restore from it and return to
// EL1.
el2_lower_save:
    stp x2, x3, [sp, #16]
    stp x4, x5, [sp, #32]
    stp x6, x7, [sp, #48]
    stp x8, x9, [sp, #64]
    stp x10, x11, [sp, #80]
    stp x12, x13, [sp, #96]
    stp x14, x15, [sp, #112]
    stp x16, x17, [sp, #128]
    stp x18, x19, [sp, #144]
    stp x20, x21, [sp, #160]
    stp x22, x23, [sp, #176]
    stp x24, x25, [sp, #192]
    stp x26, x27, [sp, #208]
    stp x28, x29, [sp, #224]
    str x30, [sp, #240]
    stp q0, q1, [sp, #256]
    stp q2, q3, [sp, #288]
    stp q4, q5, [sp, #320]
    stp q6, q7, [sp, #352]
    stp q8, q9, [sp, #384]
    stp q10, q11, [sp, #416]
    stp q12, q13, [sp, #448]
    stp q14, q15, [sp, #480]
    stp q16, q17, [sp, #512]
    stp q18, q19, [sp, #544]
    stp q20, q21, [sp, #576]
    stp q22, q23, [sp, #608]
    stp q24, q25, [sp, #640]
    stp q26, q27, [sp, #672]
    stp q28, q29, [sp, #704]
    stp q30, q31, [sp, #736]
    mrs x2, fpsr
    mrs x3, fpcr
    str x2, [sp, #768]
    str x3, [sp, #776]
    mov x1, x0
    mov x0, sp
    bl el2_lower_rust
el2_vcpu_return:
    ldr x0, [sp, #768]
    ldr x1, [sp, #776]
    msr fpsr, x0
    msr fpcr, x1
    ldp q0, q1, [sp, #256]
    ldp q2, q3, [sp, #288]
    ldp q4, q5, [sp, #320]
    ldp q6, q7, [sp, #352]
    ldp q8, q9, [sp, #384]
    ldp q10, q11, [sp, #416]
    ldp q12, q13, [sp, #448]
    ldp q14, q15, [sp, #480]
    ldp q16, q17, [sp, #512]
    ldp q18, q19, [sp, #544]
    ldp q20, q21, [sp, #576]
    ldp q22, q23, [sp, #608]
    ldp q24, q25, [sp, #640]
    ldp q26, q27, [sp, #672]
    ldp q28, q29, [sp, #704]
    ldp q30, q31, [sp, #736]
    ldp x0, x1, [sp, #0]
    ldp x2, x3, [sp, #16]
    ldp x4, x5, [sp, #32]
    ldp x6, x7, [sp, #48]
    ldp x8, x9, [sp, #64]
    ldp x10, x11, [sp, #80]
    ldp x12, x13, [sp, #96]
    ldp x14, x15, [sp, #112]
    ldp x16, x17, [sp, #128]
    ldp x18, x19, [sp, #144]
    ldp x20, x21, [sp, #160]
    ldp x22, x23, [sp, #176]
    ldp x24, x25, [sp, #192]
    ldp x26, x27, [sp, #208]
    ldp x28, x29, [sp, #224]
    ldr x30, [sp, #240]
    add sp, sp, #{frame_size}
    eret

// fn el2_enter_vcpu(frame: &Frame) -> !: run a vCPU from a frame on this CPU's stack.
.global el2_enter_vcpu
el2_enter_vcpu:
    mov sp, x0
    b el2_vcpu_return

"#,
    stack_base = const crate::layout::EL2_STACKS,
    stack_size = const crate::layout::EL2_STACK_SIZE,
    frame_size = const core::mem::size_of::<Frame>(),
);

/// The saved registers of the trapping vCPU (layout used by the vector asm above).
#[derive(Clone)]
#[repr(C)]
pub struct Frame {
    /// x0..x30 (index 31 unused).
    pub x: [u64; 32],
    /// q0..q31.
    pub q: [u128; 32],
    /// FPSR.
    pub fpsr: u64,
    /// FPCR.
    pub fpcr: u64,
}

const _: () = assert!(core::mem::size_of::<Frame>() == 784);

impl Frame {
    /// All registers zero (a fresh vCPU sees nothing of EL2 or another VM).
    pub const fn zeroed() -> Self {
        Frame {
            x: [0; 32],
            q: [0; 32],
            fpsr: 0,
            fpcr: 0,
        }
    }
}

extern "C" {
    /// Restore `frame` and ERET into the vCPU (asm above).
    fn el2_enter_vcpu(frame: &Frame) -> !;
    /// Where PSCI CPU_ON starts the other CPUs (asm above).
    fn el2_secondary_entry();
}

/// The physical address secondary CPUs start at.
pub fn secondary_entry() -> u64 {
    el2_secondary_entry as *const () as u64
}

#[repr(C, align(4096))]
struct Table([u64; 512]);

/// EL2 stage 1: 0..1 GiB device (GIC, PL011), 1..3 GiB normal write-back (all of RAM),
/// identity.
static EL2_L1: Table = {
    let mut t = [0u64; 512];
    t[0] = 0x401; // block, AF, AttrIndx 0 (device)
    t[1] = 0x4000_0000 | 0x705; // block, AF, SH inner, AttrIndx 1 (normal)
    t[2] = 0x8000_0000 | 0x705;
    Table(t)
};

/// Turn on EL2's MMU and caches and let EL2 use FP/SIMD (its Rust code does), and SVE at
/// 128 bits where the CPU has it (the vCPUs' state, `sve.rs`).
pub fn init_cpu() {
    MAIR_EL2.set(0xFF00);
    // T0SZ 25, IRGN0/ORGN0 WB, SH0 inner, TG0 4K, PS 40-bit, RES1 bits 23 and 31.
    TCR_EL2.set(0x8082_3519);
    TTBR0_EL2.set(&EL2_L1 as *const Table as u64);
    #[cfg(target_arch = "aarch64")]
    // SAFETY: invalidate EL2's TLB before turning on the MMU over identity tables that map
    // this code and data where they are.
    unsafe {
        core::arch::asm!("tlbi alle2", "dsb sy", "isb")
    };
    SCTLR_EL2.set(0x30C5_1835); // M, C, I + RES1
    #[cfg(target_arch = "aarch64")]
    // SAFETY: context synchronisation; then CPTR_EL2.TFP = 0 (RES1 bits kept) so FP/SIMD
    // does not trap, and TZ = 0 where the CPU has SVE (`sve.rs`).
    unsafe {
        core::arch::asm!("isb", "msr cptr_el2, {0}", "isb", in(reg) crate::sve::cptr_el2())
    };
    crate::sve::init_cpu();
}

/// Inject a synchronous external abort (data abort) into the trapping vCPU, as the abort
/// its access would raise without a hypervisor that serves it: ESR_EL1 / FAR_EL1 / ELR_EL1 /
/// SPSR_EL1 as the CPU would set them, and the next ERET enters its EL1 vector for that
/// exception (current EL with SP_EL0 or SP_ELx, or lower EL). Returns false (nothing
/// changed) if the vCPU was in no AArch64 EL1/EL0 mode.
pub fn inject_data_abort() -> bool {
    let wnr = ESR_EL2.get() & (1 << 6);
    let from_el0 = SPSR_EL2.get() & 0x1F == 0;
    let ec = if from_el0 { 0x24 } else { 0x25 };
    inject_sync((ec << 26) | (1 << 25) | wnr | 0x10, Some(FAR_EL2.get()))
}

/// Inject an Undefined Instruction exception (EC 0, "unknown reason") into the trapping
/// vCPU for the instruction that trapped, as the CPU raises it for an instruction EL1 may not
/// execute: what Gunyah does with a system register access it does not emulate. False
/// (nothing changed) as [`inject_data_abort`].
pub fn inject_undef() -> bool {
    inject_sync(1 << 25, None)
}

/// Take a synchronous exception with syndrome `esr` (and fault address `far`) to the
/// vCPU's EL1 at the trapping instruction.
fn inject_sync(esr: u64, far: Option<u64>) -> bool {
    let spsr = SPSR_EL2.get();
    let offset = match spsr & 0x1F {
        0b00101 => 0x200, // EL1h
        0b00100 => 0x000, // EL1t
        0b00000 => 0x400, // EL0t
        _ => return false,
    };
    ESR_EL1.set(esr);
    if let Some(far) = far {
        FAR_EL1.set(far);
    }
    ELR_EL1.set(ELR_EL2.get());
    SPSR_EL1.set(spsr);
    ELR_EL2.set(VBAR_EL1.get() + offset);
    SPSR_EL2.set(0x3C5);
    true
}

/// Restore `frame` and ERET into the vCPU whose EL1 and EL2 registers are loaded (from
/// `el2_main`, not from a trap).
pub fn enter(frame: &Frame) -> ! {
    // SAFETY: the caller loaded the vCPU's registers (ELR/SPSR_EL2, EL1 state, stage 2);
    // the asm moves SP to the frame (on EL2's stack, never returned to), restores it and
    // ERETs; the vCPU comes back only through the exception vectors.
    unsafe { el2_enter_vcpu(frame) }
}

#[no_mangle]
extern "C" fn el2_unexpected_rust(esr: u64, elr: u64) -> ! {
    crate::console::fail(format_args!(
        "unexpected exception taken at EL2: ESR {esr:#x} ELR {elr:#x}"
    ))
}
