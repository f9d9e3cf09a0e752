//! Entry at EL2, exception vectors, EL2's own stage 1, and entering a vCPU at EL1.

use aarch64_cpu::registers::{
    Readable, Writeable, CPACR_EL1, ELR_EL1, ELR_EL2, ESR_EL1, ESR_EL2, FAR_EL1, FAR_EL2, MAIR_EL1,
    MAIR_EL2, SCTLR_EL1, SCTLR_EL2, SPSR_EL1, SPSR_EL2, SP_EL1, TCR_EL1, TCR_EL2, TTBR0_EL1,
    TTBR0_EL2, VBAR_EL1, VTCR_EL2, VTTBR_EL2,
};

extern "C" {
    /// The guests' EL1 vector table (asm above).
    static guest_vectors: u8;
}

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    r#"
.section .text.boot, "ax"
.global _start
_start:
    ldr x1, ={stack_top}
    mov sp, x1
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

.section .text
.balign 2048
el2_vectors:
.rept 8
.balign 0x80
    b el2_unexpected
.endr
.balign 0x80
    b el2_lower_sync
.rept 7
.balign 0x80
    b el2_unexpected
.endr

el2_unexpected:
    mrs x0, esr_el2
    mrs x1, elr_el2
    bl el2_unexpected_rust

// A trap from the running vCPU: save its x0-x30, q0-q31, FPSR and FPCR as a `Frame` the
// handler may change (results, or a different vCPU's registers; EL2's Rust code uses the
// FP/SIMD registers too), restore from it and return to EL1.
el2_lower_sync:
    sub sp, sp, #{frame_size}
    stp x0, x1, [sp, #0]
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
    mrs x0, fpsr
    mrs x1, fpcr
    str x0, [sp, #768]
    str x1, [sp, #776]
    mov x0, sp
    bl el2_lower_sync_rust
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

// fn el2_enter_vcpu(frame: &Frame) -> !: run a vCPU from a frame on EL2's stack.
.global el2_enter_vcpu
el2_enter_vcpu:
    mov sp, x0
    b el2_vcpu_return

// ---- EL1 guest code (in the shared code range) ----

// The guests' EL1 vectors. Only the current-EL/SPx synchronous entry is expected, and only
// for an abort the hypervisor injected into one of the probes below.
.balign 2048
.global guest_vectors
guest_vectors:
.rept 4
.balign 0x80
    b guest_unexpected
.endr
.balign 0x80
    b guest_abort
.rept 11
.balign 0x80
    b guest_unexpected
.endr

// An abort on a probe's access: skip the access and hand ESR_EL1 back in x1 (probes treat
// x1 and x2 as scratch). Anything else is unexpected.
guest_abort:
    mrs x1, elr_el1
    adr x2, guest_probe_read_access
    cmp x1, x2
    b.eq 1f
    adr x2, guest_probe_write_access
    cmp x1, x2
    b.ne guest_unexpected
1:  add x1, x1, #4
    msr elr_el1, x1
    mrs x1, esr_el1
    eret

// vcpu_poweroff with status 99, ESR_EL1 and ELR_EL1 as results.
guest_unexpected:
    ldr x0, ={poweroff}
    mov x1, xzr
    mov x2, #1
    mov x3, #99
    mrs x4, esr_el1
    mrs x5, elr_el1
    hvc #0
    b .

// u64 guest_probe_read(u64 va): 0 if the load completed, else the ESR_EL1 of its abort.
.global guest_probe_read
guest_probe_read:
    mov x1, xzr
guest_probe_read_access:
    ldr x2, [x0]
    mov x0, x1
    ret

// u64 guest_probe_write(u64 va): stores zero; 0 if it completed, else the abort's ESR_EL1.
.global guest_probe_write
guest_probe_write:
    mov x1, xzr
guest_probe_write_access:
    str xzr, [x0]
    mov x0, x1
    ret

// u64 guest_fp_survives(u64 seed, u64 buf, u64 len, u64 store_va): fill q0-q31 from `seed`,
// then (if `len` != 0) msgqueue_send `len` bytes at `buf` to the RM, then (if `store_va` != 0)
// store `seed` there (which may fault to EL2), then check every q register: 0 if all kept
// their values across the traps, else 1 + the first register that changed.
.global guest_fp_survives
guest_fp_survives:
    mov x12, x0
    mov x13, x1
    mov x14, x2
    mov x15, x3
.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    add x9, x12, #\n
    fmov d\n, x9
    mvn x10, x9
    mov v\n\().d[1], x10
.endr
    cbz x14, 1f
    ldr x0, ={send}
    mov x1, #{tx_cap}
    mov x2, x14
    mov x3, x13
    mov x4, #1
    hvc #0
1:  cbz x15, 2f
    str x12, [x15]
2:
.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    mov x0, #(\n + 1)
    add x9, x12, #\n
    fmov x10, d\n
    cmp x9, x10
    b.ne 3f
    mvn x9, x9
    mov x10, v\n\().d[1]
    cmp x9, x10
    b.ne 3f
.endr
    mov x0, xzr
3:  ret
"#,
    send = const crate::hypercalls::MSGQ_SEND,
    tx_cap = const crate::hypercalls::RM_TX_CAP,
    poweroff = const crate::hypercalls::VCPU_POWEROFF,
    stack_top = const crate::layout::EL2_STACK_TOP,
    frame_size = const core::mem::size_of::<Frame>(),
);

/// The saved registers of the trapping vCPU (layout used by the vector asm above).
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
}

#[repr(C, align(4096))]
struct Table([u64; 512]);

/// EL2 stage 1: 0..1 GiB device (PL011), 1..2 GiB normal write-back (RAM), identity.
static EL2_L1: Table = {
    let mut t = [0u64; 512];
    t[0] = 0x401; // block, AF, AttrIndx 0 (device)
    t[1] = 0x4000_0000 | 0x705; // block, AF, SH inner, AttrIndx 1 (normal)
    Table(t)
};

/// The guests' stage 1 (shared by every guest, read-only, part of the shared image range):
/// VA 1..2 GiB -> IPA 1..2 GiB (code, stacks, HLOS RAM); VA 4..5 GiB -> IPA 2..3 GiB (the
/// clones' golden mapping), all normal write-back, AP RW at EL1.
static GUEST_L1: Table = {
    let mut t = [0u64; 512];
    t[1] = 0x4000_0000 | 0x701;
    t[(crate::layout::CLONE_GOLDEN_VA >> 30) as usize] = crate::layout::CLONE_GOLDEN_IPA | 0x701;
    Table(t)
};

/// Turn on EL2's MMU and caches, let EL2 and EL1 use FP/SIMD, and load the guests' EL1
/// stage-1 registers (every guest uses `GUEST_L1`).
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
    // does not trap.
    unsafe {
        core::arch::asm!("isb", "msr cptr_el2, {0}", "isb", in(reg) 0x33FFu64)
    };
    CPACR_EL1.set(3 << 20);
    MAIR_EL1.set(0xFF);
    TCR_EL1.set(0x2_0080_3519); // T0SZ 25, WB, inner, 4K, EPD1, IPS 40-bit
    TTBR0_EL1.set(&GUEST_L1 as *const Table as u64);
    SCTLR_EL1.set(0x30D0_1805); // M, C, I + RES1
                                // Only the symbol's address is taken.
    VBAR_EL1.set(core::ptr::addr_of!(guest_vectors) as u64);
}

/// Inject a synchronous external abort (data abort, current EL) into the trapping vCPU, as
/// the abort its access would raise without a hypervisor that serves it: ESR_EL1 / FAR_EL1 /
/// ELR_EL1 / SPSR_EL1 as the CPU would set them, and the next ERET enters its EL1 vector
/// (current EL with SP_ELx, synchronous). Returns false (nothing changed) unless the vCPU was
/// at EL1h, the only mode the test guests use.
pub fn inject_data_abort() -> bool {
    let spsr = SPSR_EL2.get();
    if spsr & 0xF != 0x5 {
        return false;
    }
    let wnr = ESR_EL2.get() & (1 << 6);
    ESR_EL1.set((0x25 << 26) | (1 << 25) | wnr | 0x10);
    FAR_EL1.set(FAR_EL2.get());
    ELR_EL1.set(ELR_EL2.get());
    SPSR_EL1.set(spsr);
    ELR_EL2.set(VBAR_EL1.get() + 0x200);
    SPSR_EL2.set(0x3C5);
    true
}

/// Make the next ERET enter a vCPU of the VM whose stage 2 is `(vtcr, vttbr)` at `entry`
/// (EL1h, interrupts masked) with stack `sp` and x0..x2 = `args` (the rest of `frame`
/// zeroed). HCR_EL2: RW (EL1 is AArch64), VM (stage 2 on).
pub fn load_vcpu(frame: &mut Frame, stage2: (u64, u64), entry: u64, sp: u64, args: [u64; 3]) {
    *frame = Frame::zeroed();
    frame.x[..3].copy_from_slice(&args);
    VTCR_EL2.set(stage2.0);
    VTTBR_EL2.set(stage2.1);
    aarch64_cpu::registers::HCR_EL2.set((1 << 31) | 1);
    SP_EL1.set(sp);
    ELR_EL2.set(entry);
    SPSR_EL2.set(0x3C5);
    #[cfg(target_arch = "aarch64")]
    // SAFETY: synchronise the new translation regime before the ERET that uses it.
    unsafe {
        core::arch::asm!("isb")
    };
}

/// Enter the first vCPU (from `el2_main`, not from a trap).
pub fn run_first_vcpu(stage2: (u64, u64), entry: u64, sp: u64, args: [u64; 3]) -> ! {
    let mut frame = Frame::zeroed();
    load_vcpu(&mut frame, stage2, entry, sp, args);
    // SAFETY: ELR/SPSR/SP_EL1 and stage 2 are set up by `load_vcpu`; the asm moves SP to the
    // frame (on EL2's stack, never returned to), restores it and ERETs; the vCPU comes back
    // only through the exception vectors, on the stack below.
    unsafe { el2_enter_vcpu(&frame) }
}

#[no_mangle]
extern "C" fn el2_unexpected_rust(esr: u64, elr: u64) -> ! {
    crate::console::fail(format_args!(
        "unexpected exception taken at EL2: ESR {esr:#x} ELR {elr:#x}"
    ))
}
