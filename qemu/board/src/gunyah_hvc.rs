//! Gunyah's own hypercall form, `hvc #0x6000 + n` with the arguments from x0: what Gunyah's
//! RM and Qualcomm's out-of-tree Gunyah drivers for Linux (`asm/gunyah/hcall.h`,
//! `_gh_hcall`) use, alongside the SMCCC form (`hvc #0`, x0 = 0xC600_8000 | n, arguments
//! from x1) that Gunyah also takes and the board implements (`hypercalls.rs`). Both
//! answer in x0.. the same way, so a call in Gunyah's form is the SMCCC call with its
//! arguments moved up one register.

/// The first of Gunyah's hypercall immediates (hypervisor_identify).
pub const HVC_IMM_BASE: u16 = 0x6000;
/// One past the last immediate taken for a hypercall (0x6000..0x8000: call numbers
/// 0..0x2000, SMCCC function IDs 0xC600_8000..0xC600_A000).
pub const HVC_IMM_END: u16 = 0x8000;
/// The SMCCC function ID of Gunyah call 0 (fast call, SMC64, vendor-specific hypervisor
/// service, bit 15 set).
pub const SMCCC_BASE: u64 = 0xC600_8000;

/// The HVC immediate of a trapped HVC's ESR_EL2 (ISS bits 15:0).
pub fn hvc_imm(esr: u64) -> u16 {
    esr as u16
}

/// Rewrite `x` (the vCPU's x0..x7) for `hvc #imm` into the SMCCC form the board's
/// hypercall handler reads: x0 = the call's function ID, the arguments from x1. `false`
/// (and `x` untouched) for an immediate that is not a Gunyah hypercall's.
pub fn to_smccc(imm: u16, x: &mut [u64]) -> bool {
    if !(HVC_IMM_BASE..HVC_IMM_END).contains(&imm) || x.is_empty() {
        return false;
    }
    let n = x.len().min(8);
    x.copy_within(0..n - 1, 1);
    x[0] = SMCCC_BASE | u64::from(imm - HVC_IMM_BASE);
    true
}

/// One line for an RM RPC packet's header (`rm-rpc-abi.md`: byte 0 version and header
/// words, byte 1 type in bits 1:0 and fragments above, sequence at 2, message ID at 4, a
/// reply's result at 8), as the board's opt-in RPC log prints it (feature `rpc-log`).
/// `None` for a packet shorter than a header.
#[cfg_attr(not(feature = "rpc-log"), allow(dead_code))]
pub fn rpc_summary(msg: &[u8]) -> Option<(&'static str, u32, u16, Option<u32>)> {
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(msg.get(at..at + 4)?.try_into().ok()?))
    };
    let msg_id = word(4)?;
    let seq = u16::from_le_bytes([msg[2], msg[3]]);
    let (kind, result) = match msg[1] & 3 {
        0 => ("continuation", None),
        1 => ("request", None),
        2 => ("reply", word(8)),
        _ => ("notification", None),
    };
    Some((kind, msg_id, seq, result))
}
