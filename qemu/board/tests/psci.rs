//! PSCI_FEATURES as the board answers it (`qemu/board/src/psci.rs`), on the host: what Linux
//! asks at boot (`psci_init_system_reset2`, `psci_init_cpu_suspend`, `psci_init_smccc`)
//! and what it calls later.

#[path = "../src/psci.rs"]
mod psci;

#[test]
fn psci_features_lists_what_the_board_implements_and_nothing_else() {
    for id in [
        psci::VERSION,
        psci::CPU_OFF,
        psci::CPU_ON_32,
        psci::CPU_ON_64,
        psci::AFFINITY_INFO_32,
        psci::AFFINITY_INFO_64,
        psci::SYSTEM_OFF,
        psci::SYSTEM_RESET,
        psci::FEATURES,
        psci::SMCCC_VERSION,
    ] {
        assert_eq!(psci::features(id), 0, "{id:#x}");
    }
    // CPU_SUSPEND (32/64), MIGRATE_INFO_TYPE, SYSTEM_RESET2 (32/64), SYSTEM_SUSPEND,
    // CPU_DEFAULT_SUSPEND, an unknown ID, a Gunyah hypercall, garbage.
    for id in [
        0x8400_0001,
        0xC400_0001,
        0x8400_0006,
        0x8400_0012,
        0xC400_0012,
        0xC400_000E,
        0x8400_000C,
        0x8400_00FF,
        0xC600_8000,
        u64::MAX,
        0,
    ] {
        assert_eq!(psci::features(id), psci::NOT_SUPPORTED, "{id:#x}");
    }
    assert_eq!(psci::NOT_SUPPORTED as i64, -1);
}

#[test]
fn psci_ranges() {
    assert!(psci::is_psci(psci::SYSTEM_RESET));
    assert!(psci::is_psci(0xC400_0012));
    assert!(!psci::is_psci(0xC600_8000));
    assert!(!psci::is_psci(psci::SMCCC_VERSION));
    assert!(!psci::is_psci(0x8600_FF01));
}
