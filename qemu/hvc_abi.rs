//! The Gunyah hypercall ABI both sides of the board use (SMCCC form: `hvc #0`, x0 =
//! 0xC600_8000 | call): the calls' function IDs and Gunyah's error codes (`error_t`), as
//! the EL2 board implements them (`board/src/hypercalls.rs`) and the EL1 payloads call
//! them (`hlos/src/hvc.rs`), which include this file.

/// hypervisor_identify.
pub const HYP_IDENTIFY: u64 = 0xC600_8000;
/// msgqueue_send: x1 cap, x2 size, x3 buffer, x4 flags (bit0 push) -> x0 error, x1 not_full.
pub const MSGQ_SEND: u64 = 0xC600_801B;
/// msgqueue_receive: x1 cap, x2 buffer, x3 size -> x0 error, x1 size, x2 not_empty.
pub const MSGQ_RECV: u64 = 0xC600_801C;
/// scheduler_yield: x1 control, x2 arg.
pub const SCHED_YIELD: u64 = 0xC600_803B;
/// SMCCC_VERSION (SMCCC 1.1 and later): x0 = major << 16 | minor.
pub const SMCCC_VERSION: u64 = 0x8000_0000;
/// The vendor-specific-hypervisor service's Call UID query (`ARM_SMCCC_VENDOR_HYP_CALL_UID`).
pub const VENDOR_HYP_CALL_UID: u64 = 0x8600_FF01;
/// Gunyah's UID words for that query, x0..x3 (hyp `SMCCC_GUNYAH_UID0..3`: UUID
/// c1d58fcd-a453-5fdb-9265-ce36673d5f14, which Linux's `arch_is_gunyah_guest` compares).
pub const GUNYAH_UID: [u64; 4] = [0xcd8f_d5c1, 0xdb5f_53a4, 0x36ce_6592, 0x145f_3d67];
/// PSCI CPU_OFF.
pub const PSCI_CPU_OFF: u64 = 0x8400_0002;
/// PSCI SYSTEM_OFF.
pub const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;

/// Gunyah error codes: success.
pub const OK: u64 = 0;
/// -1.
pub const UNIMPLEMENTED: u64 = u64::MAX;
/// Bad argument.
pub const ARGUMENT_INVALID: u64 = 1;
/// Bad size.
pub const ARGUMENT_SIZE: u64 = 2;
/// Bad guest address.
pub const ADDR_INVALID: u64 = 22;
/// No such capability.
pub const CSPACE_CAP_NULL: u64 = 50;
/// Nothing to receive.
pub const MSGQUEUE_EMPTY: u64 = 60;
