//! The PSCI functions the board implements for its VMs (PSCI 1.0, HVC or SMC conduit;
//! dispatched in `hypercalls.rs`) and what PSCI_FEATURES answers for each function ID.
//! Pure, also built on the host (`tests/psci.rs`).

/// PSCI_VERSION.
pub const VERSION: u64 = 0x8400_0000;
/// CPU_OFF.
pub const CPU_OFF: u64 = 0x8400_0002;
/// CPU_ON, SMC32 and SMC64.
pub const CPU_ON_32: u64 = 0x8400_0003;
/// CPU_ON (SMC64).
pub const CPU_ON_64: u64 = 0xC400_0003;
/// AFFINITY_INFO, SMC32.
pub const AFFINITY_INFO_32: u64 = 0x8400_0004;
/// AFFINITY_INFO (SMC64).
pub const AFFINITY_INFO_64: u64 = 0xC400_0004;
/// SYSTEM_OFF.
pub const SYSTEM_OFF: u64 = 0x8400_0008;
/// SYSTEM_RESET: what Linux calls when it reboots, or after a panic with `panic=N`.
pub const SYSTEM_RESET: u64 = 0x8400_0009;
/// PSCI_FEATURES.
pub const FEATURES: u64 = 0x8400_000A;
/// NOT_SUPPORTED (-1): the answer to every PSCI function not listed here.
pub const NOT_SUPPORTED: u64 = -1i64 as u64;
/// SMCCC_VERSION, which PSCI_FEATURES lists too (Linux's `psci_init_smccc`).
pub const SMCCC_VERSION: u64 = 0x8000_0000;

/// PSCI_FEATURES(`id`): 0 for an implemented function (no feature flags: CPU_SUSPEND, the
/// only function with some, is not implemented), NOT_SUPPORTED for anything else.
pub fn features(id: u64) -> u64 {
    match id {
        VERSION | CPU_OFF | CPU_ON_32 | CPU_ON_64 | AFFINITY_INFO_32 | AFFINITY_INFO_64
        | SYSTEM_OFF | SYSTEM_RESET | FEATURES | SMCCC_VERSION => 0,
        _ => NOT_SUPPORTED,
    }
}

/// Whether `id` is in PSCI's function ID ranges (SMC32 0x8400_0000.., SMC64 0xC400_0000..):
/// unimplemented ones answer NOT_SUPPORTED, as PSCI says (other calls get Gunyah's
/// UNIMPLEMENTED, the same -1).
pub fn is_psci(id: u64) -> bool {
    id >> 24 == 0x84 || id >> 24 == 0xC4
}
