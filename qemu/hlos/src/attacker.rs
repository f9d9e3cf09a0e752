//! The attacker: the agent in a VM whose golden mapping is read-only (no copy-on-write). It
//! tries what a hostile guest would, and each attempt must be stopped:
//! 1. write a golden page: the RM does not serve the fault, EL2 injects an abort, the page
//!    keeps the golden data;
//! 2. read HLOS's memory (another VM's) and 3. EL2's: not in its stage 2, aborts;
//! 4. accept a victim clone's mailbox parcel (MEM_ACCEPT): refused;
//! 5. RPCs for a VM it does not manage (VM_STOP of the victim, GOLDEN_MAP into itself of an
//!    image it does not own, VM_ALLOC_VMID): refused;
//! 6. msgqueue_send on a capability that is not in its cspace (HLOS's): CSPACE_CAP_NULL;
//! 7. malformed fragments (a request announcing continuations, then a continuation of
//!    another sequence number, then a packet with a bad API version): dropped, and its next
//!    request is answered normally;
//! 8. the PMU and the debug registers, which the board does not switch between vCPUs: a
//!    hardware counter other than its own two (PMEVCNTR2_EL0, PMCCNTR_EL0) and PMCR_EL0 read
//!    as zero, a reset of the counters (PMCR_EL0.P, C) leaves its own counting, and a
//!    breakpoint (DBGBVR0_EL1, DBGBCR0_EL1) or MDSCR_EL1.MDE/KDE written does not stick.
//!
//! Results: [attacks stopped, 0, 0, its VMID, 0, 0]; the status names the first attack
//! that was not stopped.

use gunyah_rm_abi::ext::{GoldenMapReq, NO_GMEM};
use gunyah_rm_abi::mem::SglEntry;
use gunyah_rm_abi::vm::{VmStopReq, VmidReq};
use gunyah_rm_abi::wire::Empty;
use gunyah_rm_abi::{Request, RmError};

use crate::agent::{accept_share, golden_va, read};
use crate::el1::is_injected_abort;
use crate::hvc::{self, CSPACE_CAP_NULL, MSGQ_SEND};
use crate::layout::*;
use crate::rpc::Rpc;
use crate::start::probe;

/// Whether the RM refused `req` (answered, with an error).
fn refused(rpc: &mut Rpc, req: Request<'_>) -> bool {
    matches!(rpc.call(&req), Ok(r) if r.err != RmError::Ok)
}

/// The attacks; (status, results).
pub fn scene(rpc: &mut Rpc, me: u64, victim: u64) -> (u64, [u64; 6]) {
    let (victim_vm, victim_mailbox) = (victim as u16, (victim >> 16) as u32);
    let fail = |n: u64, a: u64| (40 + n, [n - 1, a, 0, me, 0, 0]);
    // 1. A write to a golden page without CoW.
    let esr = probe(golden_va(WRITE_PAGE, 0) as u64, true);
    if !is_injected_abort(esr) || read(WRITE_PAGE, 0) != golden_word(WRITE_PAGE, 0) {
        return fail(1, esr);
    }
    // 2, 3. Another VM's memory (HLOS's RAM) and EL2's.
    for (n, va) in [(2, GOLDEN_SRC - 4096), (3, EL2_RAM)] {
        let esr = probe(va, false);
        if !is_injected_abort(esr) {
            return fail(n, esr);
        }
    }
    // 4. The victim's mailbox (asked for below the attacker's own).
    let steal_ipa = CLONE_MAILBOX_IPA - 0x10_0000;
    let sgl = [SglEntry::new(steal_ipa, 4096)];
    let steal = accept_share(victim_mailbox, &sgl);
    if !refused(rpc, Request::MemAccept(steal)) || probe(steal_ipa, false) == 0 {
        return fail(4, 0);
    }
    // 5. Requests only the victim's or the image's owner may make.
    let map = GoldenMapReq::new(0, me as u16, 0, 0, 0x9000_0000, 4096, NO_GMEM);
    let forged = [
        Request::VmStop(VmStopReq::new(victim_vm, 1, 0)),
        Request::GoldenMap(map),
        Request::VmAllocVmid(VmidReq::new(0)),
    ];
    for req in forged {
        let id = req.msg_id().raw() as u64;
        if !refused(rpc, req) {
            return fail(5, id);
        }
    }
    // 6. A capability from another cspace (HLOS's tx cap, which its DT shows).
    let pk = [0x21u8, 1, 0x55, 0, 0x24, 0, 0, 0x56];
    if hvc::call(MSGQ_SEND, 0x3_0001, 8, pk.as_ptr() as u64, 1)[0] != CSPACE_CAP_NULL {
        return fail(6, 0);
    }
    // 7. Malformed fragments: VM_GET_VMID announcing 3 continuations, a continuation with
    // another seq, a bad API version; then a well-formed request must get its answer.
    let first = [0x21u8, 1 | (3 << 2), 0x60, 0, 0x24, 0, 0, 0x56, 1, 2, 3, 4];
    let stray = [0x21u8, 0, 0x61, 0, 0x24, 0, 0, 0x56, 9, 9, 9, 9];
    let junk = [0x7Fu8; 16];
    for p in [&first[..], &stray[..], &junk[..]] {
        if hvc::call(MSGQ_SEND, rpc.tx(), p.len() as u64, p.as_ptr() as u64, 1)[0] != 0 {
            return fail(7, 1);
        }
    }
    match rpc.call(&Request::VmGetVmid(Empty)) {
        Ok(r) if r.err == RmError::Ok && r.word(0) as u64 == me => {}
        _ => return fail(7, 2),
    }
    if let Some(why) = pmu_and_debug() {
        return fail(8, why);
    }
    (0, [8, 0, 0, me, 0, 0])
}

/// MRS of a system register by name.
macro_rules! mrs {
    ($reg:literal) => {{
        let v: u64;
        // SAFETY: a system register read; the board traps it (MDCR_EL2) and emulates it.
        unsafe { core::arch::asm!(concat!("mrs {0}, ", $reg), out(reg) v, options(nostack)) };
        v
    }};
}

/// MSR of a system register by name.
macro_rules! msr {
    ($reg:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: a system register write; the board traps it (MDCR_EL2) and ignores it.
        unsafe { core::arch::asm!(concat!("msr ", $reg, ", {0}"), "isb", in(reg) v, options(nostack)) };
    }};
}

/// Attack 8: None if the board kept the PMU and the debug registers to itself, else which
/// check failed (1-based).
fn pmu_and_debug() -> Option<u64> {
    if mrs!("pmcr_el0") != 0 || mrs!("pmevcntr2_el0") != 0 || mrs!("pmccntr_el0") != 0 {
        return Some(1);
    }
    // Reset every counter (PMCR_EL0.P, C) and disable them all (PMCNTENCLR_EL0): its own
    // counting goes on from where it was.
    let before = crate::agent::el1_instructions();
    msr!("pmcr_el0", 0b111);
    msr!("pmcntenclr_el0", u64::MAX);
    if crate::agent::el1_instructions() < before {
        return Some(2);
    }
    // A breakpoint on its own code, enabled, and self-hosted debug switched on.
    msr!(
        "dbgbvr0_el1",
        pmu_and_debug as fn() -> Option<u64> as usize as u64
    );
    msr!("dbgbcr0_el1", (0xF << 5) | (0b11 << 1) | 1);
    msr!("mdscr_el1", (1 << 15) | (1 << 13));
    if mrs!("dbgbvr0_el1") != 0 || mrs!("dbgbcr0_el1") != 0 || mrs!("mdscr_el1") != 0 {
        return Some(3);
    }
    None
}
