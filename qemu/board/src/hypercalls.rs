//! The Gunyah hypercalls this EL2 stand-in implements (SMCCC form: `hvc #0`, x0 =
//! 0xC600_8000 | call) and PSCI for its VMs (HVC or SMC conduit):
//! * hypervisor_identify;
//! * msgqueue_send / msgqueue_receive on the VM's RM-RPC queue pair, named by the
//!   capabilities in its cspace (from VM_INIT's resources, or the board's for HLOS);
//! * scheduler_yield;
//! * PSCI_VERSION, PSCI_FEATURES, CPU_OFF, SYSTEM_OFF (HLOS: the run ends; another VM: its
//!   vCPU stops).
//!
//! Everything else answers UNIMPLEMENTED (PSCI: NOT_SUPPORTED).

use alloc::vec::Vec;

use gunyah_rm::platform::{AddressSpaces, Vmid, PAGE_SIZE};
use gunyah_rm::vm::VMID_HLOS;

use crate::board::{Board, Cap};
use crate::boot::Frame;

/// hypervisor_identify.
pub const HYP_IDENTIFY: u64 = 0xC600_8000;
/// msgqueue_send: x1 cap, x2 size, x3 buffer, x4 flags (bit0 push) -> x0 error, x1 not_full.
pub const MSGQ_SEND: u64 = 0xC600_801B;
/// msgqueue_receive: x1 cap, x2 buffer, x3 size -> x0 error, x1 size, x2 not_empty.
pub const MSGQ_RECV: u64 = 0xC600_801C;
/// scheduler_yield.
pub const SCHED_YIELD: u64 = 0xC600_803B;
/// PSCI calls (SMC32/SMC64 function IDs).
const PSCI_VERSION: u64 = 0x8400_0000;
const PSCI_CPU_OFF: u64 = 0x8400_0002;
const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
const PSCI_FEATURES: u64 = 0x8400_000A;
const PSCI_NOT_SUPPORTED: u64 = -1i64 as u64;
/// Error codes (Gunyah `error_t`).
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
/// An RM RPC message's size limit.
const MAX_MSG: u64 = 240;

/// What the board does after a hypercall.
pub enum Next {
    /// Return to the vCPU (results in the frame).
    Resume,
    /// Run another vCPU if there is one.
    Yield,
    /// The vCPU powered itself off.
    Off,
    /// HLOS powered the machine off.
    SystemOff,
}

fn cap_of(board: &Board, vmid: Vmid, cap: u64) -> Option<Cap> {
    board.vms.get(&vmid)?.caps.get(&cap).copied()
}

/// Handle the hypercall in `frame` from the running vCPU.
pub fn handle(board: &mut Board, frame: &mut Frame) -> Next {
    let vmid = board.current_vm();
    match frame.x[0] {
        HYP_IDENTIFY => {
            // API version 1, 64-bit; flags0: partition/cspace (0), msgqueue (2), vcpu (5).
            frame.x[0] = 1 | (1 << 15) | (0x48 << 56);
            frame.x[1] = 1 | (1 << 2) | (1 << 5);
            frame.x[2] = 0;
        }
        MSGQ_SEND => {
            let (cap, size, buf, flags) = (frame.x[1], frame.x[2], frame.x[3], frame.x[4]);
            frame.x[0] = match cap_of(board, vmid, cap) {
                None => CSPACE_CAP_NULL,
                Some(Cap::RmTx) if size == 0 || size > MAX_MSG => ARGUMENT_SIZE,
                Some(Cap::RmTx) if flags & !1 != 0 => ARGUMENT_INVALID,
                Some(Cap::RmTx) => match copy_from_guest(board, vmid, buf, size) {
                    Some(msg) => {
                        board.rm.packet_from(vmid, &msg);
                        board.pump();
                        board.sync_vms();
                        frame.x[1] = 1; // not_full
                        OK
                    }
                    None => ADDR_INVALID,
                },
                Some(_) => CSPACE_CAP_NULL,
            };
        }
        MSGQ_RECV => {
            let (cap, buf, size) = (frame.x[1], frame.x[2], frame.x[3]);
            // A cap of another kind of object counts as absent.
            frame.x[0] = match cap_of(board, vmid, cap) {
                Some(Cap::RmRx) => receive(board, vmid, buf, size, frame),
                _ => CSPACE_CAP_NULL,
            };
        }
        SCHED_YIELD => {
            frame.x[0] = OK;
            return Next::Yield;
        }
        PSCI_VERSION => frame.x[0] = 0x1_0000, // 1.0
        PSCI_FEATURES => {
            frame.x[0] = match frame.x[1] {
                PSCI_VERSION | PSCI_CPU_OFF | PSCI_SYSTEM_OFF | PSCI_FEATURES => 0,
                _ => PSCI_NOT_SUPPORTED,
            }
        }
        PSCI_CPU_OFF => return Next::Off,
        PSCI_SYSTEM_OFF if vmid == VMID_HLOS => return Next::SystemOff,
        // Another VM's SYSTEM_OFF stops only its own vCPU here (the VM stays RUNNING in the
        // RM until its owner stops it).
        PSCI_SYSTEM_OFF => return Next::Off,
        id if id >> 24 == 0x84 || id >> 24 == 0xC4 => frame.x[0] = PSCI_NOT_SUPPORTED,
        _ => frame.x[0] = UNIMPLEMENTED,
    }
    Next::Resume
}

fn receive(board: &mut Board, vmid: Vmid, buf: u64, size: u64, frame: &mut Frame) -> u64 {
    let Some(m) = board.vms.get(&vmid).and_then(|v| v.rx.front().cloned()) else {
        return MSGQUEUE_EMPTY;
    };
    if m.len() as u64 > size {
        return ARGUMENT_SIZE;
    }
    if !copy_to_guest(board, vmid, buf, &m) {
        return ADDR_INVALID;
    }
    let q = &mut board.vms.entry(vmid).or_default().rx;
    q.pop_front();
    frame.x[1] = m.len() as u64;
    frame.x[2] = !q.is_empty() as u64;
    OK
}

/// The guest's stage-1 translation of `va` (the running vCPU's EL1 regime), for a read or a
/// write: the IPA, or None if its stage 1 does not allow it.
fn stage1(va: u64, write: bool) -> Option<u64> {
    let par: u64;
    #[cfg(target_arch = "aarch64")]
    // SAFETY: AT only writes PAR_EL1, which is saved and restored around it; the guest's EL1
    // registers and VTTBR_EL2 are loaded (we are handling its trap).
    unsafe {
        let saved: u64;
        core::arch::asm!("mrs {0}, par_el1", out(reg) saved);
        if write {
            core::arch::asm!("at s1e1w, {0}", "isb", in(reg) va);
        } else {
            core::arch::asm!("at s1e1r, {0}", "isb", in(reg) va);
        }
        core::arch::asm!("mrs {0}, par_el1", "msr par_el1, {1}", out(reg) par, in(reg) saved);
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        par = 1;
    }
    (par & 1 == 0).then_some((par & 0x000F_FFFF_FFFF_F000) | (va & 0xFFF))
}

/// The PA behind guest VA `va` of `vmid`, if its stage 1 and stage 2 allow the access and it
/// is normal memory.
fn guest_pa(board: &Board, vmid: Vmid, va: u64, write: bool) -> Option<u64> {
    let ipa = stage1(va, write)?;
    let leaf = board.rm.platform().query(vmid, ipa)?;
    let ok = if write {
        leaf.rights.writable()
    } else {
        leaf.rights.readable()
    };
    (ok && leaf.kind == gunyah_rm::MemKind::Normal).then_some(leaf.pa + (ipa - leaf.ipa))
}

/// Page-sized pieces of `[va, va+len)`.
fn pieces(va: u64, len: u64) -> impl Iterator<Item = (u64, u64, usize)> {
    let mut off = 0;
    core::iter::from_fn(move || {
        if off >= len {
            return None;
        }
        let a = va.wrapping_add(off);
        let n = (PAGE_SIZE - a % PAGE_SIZE).min(len - off);
        let item = (a, n, off as usize);
        off += n;
        Some(item)
    })
}

fn copy_from_guest(board: &Board, vmid: Vmid, va: u64, len: u64) -> Option<Vec<u8>> {
    let mut out = alloc::vec![0u8; len as usize];
    for (a, n, off) in pieces(va, len) {
        let pa = guest_pa(board, vmid, a, false)?;
        // SAFETY: `pa..pa+n` is RAM the guest may read (its stage 2 maps it readable, normal
        // memory), identity-mapped at EL2, within one page.
        unsafe {
            core::ptr::copy_nonoverlapping(pa as *const u8, out[off..].as_mut_ptr(), n as usize)
        };
    }
    Some(out)
}

fn copy_to_guest(board: &Board, vmid: Vmid, va: u64, data: &[u8]) -> bool {
    let mut pas = Vec::new();
    for (a, n, off) in pieces(va, data.len() as u64) {
        match guest_pa(board, vmid, a, true) {
            Some(pa) => pas.push((pa, n, off)),
            None => return false, // nothing written
        }
    }
    for (pa, n, off) in pas {
        // SAFETY: RAM the guest may write (its stage 2 maps it writable, normal memory),
        // identity-mapped at EL2, within one page.
        unsafe { core::ptr::copy_nonoverlapping(data[off..].as_ptr(), pa as *mut u8, n as usize) };
    }
    true
}
