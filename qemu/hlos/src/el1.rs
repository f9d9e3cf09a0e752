//! The EL1 code both payloads share (the HLOS payload's `start.rs` and the catalogue
//! runner's `catalogue/start.rs`): switching the MMU on over a stage 1, and the EL1 vectors.
//! The vectors survive only an abort of one of the binary's two probe instructions (the
//! global labels `probe_read_access` and `probe_write_access`, each binary's own): they skip
//! it and hand ESR_EL1 back in x1 (the probes treat x1 and x2 as scratch). Anything else goes
//! to the binary's `el1_fatal(esr, elr, far)`.

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    r#"
.section .text
// el1_mmu_on(x0 = stage 1's level-1 table): FP/SIMD on (CPACR_EL1.FPEN), the vectors
// (VBAR_EL1 = el1_vectors, a link address: used once the MMU is on), MAIR_EL1 (attribute 0
// device-nGnRE, 1 normal write-back), TCR_EL1, TTBR0_EL1 = x0, then the MMU and caches on
// (SCTLR_EL1). Uses x9 only and no stack; the caller runs where its stage 1 maps it at the
// same address.
.global el1_mmu_on
el1_mmu_on:
    mov x9, #(3 << 20)
    msr cpacr_el1, x9
    ldr x9, =el1_vectors
    msr vbar_el1, x9
    ldr x9, =0xFF04
    msr mair_el1, x9
    ldr x9, ={tcr}
    msr tcr_el1, x9
    msr ttbr0_el1, x0
    isb
    tlbi vmalle1
    dsb nsh
    isb
    ldr x9, =0x30D01805
    msr sctlr_el1, x9
    isb
    ret

// EL1 vectors: the current-EL/SPx synchronous entry handles aborts of the probes; anything
// else is fatal.
.balign 2048
.global el1_vectors
el1_vectors:
.rept 4
.balign 0x80
    b el1_unexpected
.endr
.balign 0x80
    b el1_sync
.rept 11
.balign 0x80
    b el1_unexpected
.endr

el1_sync:
    mrs x1, elr_el1
    ldr x2, =probe_read_access
    cmp x1, x2
    b.eq 1f
    ldr x2, =probe_write_access
    cmp x1, x2
    b.ne el1_unexpected
1:  add x1, x1, #4
    msr elr_el1, x1
    mrs x1, esr_el1
    eret

el1_unexpected:
    mrs x0, esr_el1
    mrs x1, elr_el1
    mrs x2, far_el1
    b el1_fatal
"#,
    // T0SZ 25, IRGN0/ORGN0 WB, SH0 inner, TG0 4K, EPD1, IPS 40-bit.
    tcr = const 0x2_0080_3519u64,
);

/// Whether `esr` is the synchronous external abort (data abort, current EL) a hypervisor
/// injects for an access it does not serve.
pub fn is_injected_abort(esr: u64) -> bool {
    esr >> 26 == 0x25 && esr & 0x3F == 0x10
}
