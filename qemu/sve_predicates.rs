//! SVE's predicate registers P0-P15 and FFR moved to and from memory at a vector length of
//! 128 bits, where each predicate is 2 bytes: shared by the board (EL2, switching a vCPU's
//! state: `board/src/sve.rs`) and the HLOS payload (EL1, checking its own: `hlos/src/sve.rs`)
//! through `#[path]`.

/// P0-P15, then FFR.
pub type Predicates = [u16; 17];

/// Store P0-P15 and FFR into `p`. P0 is used to read FFR and loaded back after.
///
/// # Safety
/// SVE must be enabled at the current EL with a vector length of 128 bits (so `#n, MUL VL`
/// is byte offset 2n in `p`, 34 bytes).
#[inline(always)]
pub unsafe fn save(p: &mut Predicates) {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: the caller's promise: SVE on at 128 bits; the stores stay inside `p`.
    unsafe {
        core::arch::asm!(
            ".arch_extension sve",
            "str p0, [{b}, #0, MUL VL]",
            "str p1, [{b}, #1, MUL VL]",
            "str p2, [{b}, #2, MUL VL]",
            "str p3, [{b}, #3, MUL VL]",
            "str p4, [{b}, #4, MUL VL]",
            "str p5, [{b}, #5, MUL VL]",
            "str p6, [{b}, #6, MUL VL]",
            "str p7, [{b}, #7, MUL VL]",
            "str p8, [{b}, #8, MUL VL]",
            "str p9, [{b}, #9, MUL VL]",
            "str p10, [{b}, #10, MUL VL]",
            "str p11, [{b}, #11, MUL VL]",
            "str p12, [{b}, #12, MUL VL]",
            "str p13, [{b}, #13, MUL VL]",
            "str p14, [{b}, #14, MUL VL]",
            "str p15, [{b}, #15, MUL VL]",
            "rdffr p0.b",
            "str p0, [{b}, #16, MUL VL]",
            "ldr p0, [{b}, #0, MUL VL]",
            b = in(reg) p.as_mut_ptr(),
            options(nostack)
        )
    };
    #[cfg(not(target_arch = "aarch64"))]
    let _ = p;
}

/// Load P0-P15 and FFR from `p` (FFR through P0, before P0 gets its own value). FFR should
/// be a "first elements true" predicate: WRFFR of any other is unpredictable.
///
/// # Safety
/// As for [`save`].
#[inline(always)]
pub unsafe fn load(p: &Predicates) {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: the caller's promise: SVE on at 128 bits; the loads stay inside `p`.
    unsafe {
        core::arch::asm!(
            ".arch_extension sve",
            "ldr p0, [{b}, #16, MUL VL]",
            "wrffr p0.b",
            "ldr p0, [{b}, #0, MUL VL]",
            "ldr p1, [{b}, #1, MUL VL]",
            "ldr p2, [{b}, #2, MUL VL]",
            "ldr p3, [{b}, #3, MUL VL]",
            "ldr p4, [{b}, #4, MUL VL]",
            "ldr p5, [{b}, #5, MUL VL]",
            "ldr p6, [{b}, #6, MUL VL]",
            "ldr p7, [{b}, #7, MUL VL]",
            "ldr p8, [{b}, #8, MUL VL]",
            "ldr p9, [{b}, #9, MUL VL]",
            "ldr p10, [{b}, #10, MUL VL]",
            "ldr p11, [{b}, #11, MUL VL]",
            "ldr p12, [{b}, #12, MUL VL]",
            "ldr p13, [{b}, #13, MUL VL]",
            "ldr p14, [{b}, #14, MUL VL]",
            "ldr p15, [{b}, #15, MUL VL]",
            b = in(reg) p.as_ptr(),
            options(nostack, readonly)
        )
    };
    #[cfg(not(target_arch = "aarch64"))]
    let _ = p;
}
