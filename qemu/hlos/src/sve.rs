//! SVE from EL1 (the board lists it and switches its state per vCPU at 128 bits:
//! `board/src/sve.rs`). Each VM of this image checks, on every vCPU that runs its scene, that
//! its predicates P0-P15 and FFR start zero (nothing of another vCPU's is left in them), sets
//! them to a pattern of its own, and finds the pattern unchanged at the end, after its traps to
//! EL2 and whatever other vCPUs ran on its physical CPU meanwhile (HLOS shares CPU 0 with the
//! spinner, whose vCPUs set other patterns).

/// The vector length every check assumes: 128 bits (16 bytes, so 2 bytes per predicate).
const VL_BYTES: u64 = 16;

/// Whether this VM sees SVE (ID_AA64PFR0_EL1.SVE, the board's value); if so it is turned on
/// for EL1 and EL0 (CPACR_EL1.ZEN).
pub fn enable() -> bool {
    let pfr0: u64;
    // SAFETY: an ID register read (trapped and answered by the board).
    unsafe { core::arch::asm!("mrs {0}, id_aa64pfr0_el1", out(reg) pfr0, options(nomem, nostack)) };
    if (pfr0 >> 32) & 0xF == 0 {
        return false;
    }
    // SAFETY: CPACR_EL1.ZEN [17:16] = 0b11: SVE instructions do not trap at EL1/EL0; FPEN
    // (set by `el1_mmu_on`) kept.
    unsafe {
        core::arch::asm!(
            "mrs {t}, cpacr_el1",
            "orr {t}, {t}, #(3 << 16)",
            "msr cpacr_el1, {t}",
            "isb",
            t = out(reg) _,
            options(nomem, nostack)
        )
    };
    true
}

/// The vector length in bytes.
pub fn vl_bytes() -> u64 {
    let v: u64;
    // SAFETY: RDVL reads the vector length (SVE on, `enable`).
    unsafe {
        core::arch::asm!(".arch_extension sve", "rdvl {0}, #1", out(reg) v, options(nomem, nostack))
    };
    v
}

#[path = "../../sve_predicates.rs"]
mod predicates;
pub use predicates::Predicates;

/// Read P0-P15 and FFR (the vector length must be 128 bits: [`vl_bytes`]).
pub fn read() -> Predicates {
    let mut p = [0u16; 17];
    // SAFETY: SVE is on at EL1 (`enable`) and the callers checked the vector length.
    unsafe { predicates::save(&mut p) };
    p
}

/// Load P0-P15 and FFR from `p` (the vector length must be 128 bits).
pub fn write(p: &Predicates) {
    // SAFETY: as in `read`.
    unsafe { predicates::load(p) };
}

/// A pattern of `seed`'s own: P<i> = seed-derived bits, FFR the first (seed % 16 + 1)
/// elements true.
pub fn pattern(seed: u64) -> Predicates {
    let mut p = [0u16; 17];
    for (i, v) in p.iter_mut().enumerate().take(16) {
        *v = (seed.wrapping_mul(0x9E37_79B9).rotate_left(i as u32 * 3) as u16) | 1;
    }
    p[16] = ((1u32 << (seed % 16 + 1)) - 1) as u16;
    p
}

/// Set `seed`'s pattern, if the VM has SVE at 128 bits (a vCPU that never checks, only
/// leaves its own values on its CPU: the spinner's).
pub fn set(seed: u64) {
    if enable() && vl_bytes() == VL_BYTES {
        write(&pattern(seed));
    }
}

/// At the start of a vCPU's work: None if the VM has no SVE; else whether its predicates and
/// FFR were all zero (then they are set to `seed`'s pattern), as `Err(code)` if not (1: the
/// vector length is not 128 bits, 2: a predicate was not zero).
pub fn start(seed: u64) -> Option<Result<(), u64>> {
    if !enable() {
        return None;
    }
    if vl_bytes() != VL_BYTES {
        return Some(Err(1));
    }
    if read() != [0; 17] {
        return Some(Err(2));
    }
    write(&pattern(seed));
    Some(Ok(()))
}

/// At the end: whether the predicates and FFR still hold `seed`'s pattern (3 if not).
pub fn check(seed: u64) -> Result<(), u64> {
    if read() == pattern(seed) {
        Ok(())
    } else {
        Err(3)
    }
}
