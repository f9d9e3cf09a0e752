//! The Gunyah hypercalls this EL2 stand-in implements (SMCCC form: `hvc #0`, x0 =
//! 0xC600_8000 | call) and PSCI for its VMs (HVC or SMC conduit):
//! * hypervisor_identify;
//! * msgqueue_send / msgqueue_receive on the VM's RM-RPC queue pair, named by the
//!   capabilities in its cspace (from VM_INIT's resources, or the board's for HLOS);
//! * scheduler_yield;
//! * SMCCC_VERSION (1.1) and the vendor-hypervisor Call UID (Gunyah's), which Linux needs
//!   to find Gunyah (`psci_init_smccc`, then `arch_is_gunyah_guest`);
//! * PSCI_VERSION, PSCI_FEATURES, CPU_ON and AFFINITY_INFO (the VM's own vCPUs, by MPIDR
//!   Aff0), CPU_OFF, SYSTEM_OFF and SYSTEM_RESET (HLOS: the run ends; another VM: its vCPU
//!   stops), `psci.rs`.
//!
//! With feature `catalogue`, the catalogue runner's test channel too (`testchan.rs`).
//! Everything else answers UNIMPLEMENTED (PSCI: NOT_SUPPORTED).

use alloc::vec::Vec;

use gunyah_rm::platform::{Vmid, PAGE_SIZE};
use gunyah_rm::vm::VMID_HLOS;

use crate::boot::Frame;
use crate::rmcore::{self, Cap, Core, ReceiveError};
use crate::sched::{self, After};

#[path = "../../hvc_abi.rs"]
#[allow(dead_code)]
mod abi;
pub use abi::*;

use crate::psci::{
    AFFINITY_INFO_32 as PSCI_AFFINITY_INFO_32, AFFINITY_INFO_64 as PSCI_AFFINITY_INFO_64,
    CPU_ON_32 as PSCI_CPU_ON_32, CPU_ON_64 as PSCI_CPU_ON_64, FEATURES as PSCI_FEATURES,
    NOT_SUPPORTED as PSCI_NOT_SUPPORTED, SYSTEM_RESET as PSCI_SYSTEM_RESET,
    VERSION as PSCI_VERSION,
};
/// An RM RPC message's size limit.
const MAX_MSG: u64 = 240;

/// What the board does after a hypercall.
pub enum Next {
    /// Back to the scheduler with this.
    Sched(After),
    /// HLOS powered the machine off.
    SystemOff,
    /// HLOS asked for a system reset (Linux's reboot, or its panic with `panic=N`).
    SystemReset,
}

fn cap_of(core: &Core, vmid: Vmid, cap: u64) -> Option<Cap> {
    core.vms.get(&vmid)?.caps.get(&cap).copied()
}

/// How many of HLOS's RM RPC packets the opt-in log prints (feature `rpc-log`).
#[cfg(feature = "rpc-log")]
const RPC_LOG_MAX: u32 = 64;

/// Feature `rpc-log` (`cargo xtask qemu --rpc-log`): one line for each of the first
/// [`RPC_LOG_MAX`] RM RPC packets HLOS sends or receives (what a driver really exchanges
/// with the RM).
#[cfg(feature = "rpc-log")]
fn rpc_log(vmid: Vmid, way: &str, msg: &[u8]) {
    use core::sync::atomic::{AtomicU32, Ordering::Relaxed};
    static LOGGED: AtomicU32 = AtomicU32::new(0);
    if vmid != VMID_HLOS || LOGGED.fetch_add(1, Relaxed) >= RPC_LOG_MAX {
        return;
    }
    if let Some((kind, id, seq, result)) = crate::gunyah_hvc::rpc_summary(msg) {
        match result {
            Some(r) => crate::println!(
                "qemu board: RM RPC {way}: {kind} {id:#010x} seq {seq}, {} bytes, result {r:#x}",
                msg.len()
            ),
            None => crate::println!(
                "qemu board: RM RPC {way}: {kind} {id:#010x} seq {seq}, {} bytes",
                msg.len()
            ),
        }
    }
}

#[cfg(not(feature = "rpc-log"))]
fn rpc_log(_: Vmid, _: &str, _: &[u8]) {}

/// Handle the hypercall in `frame` from the running vCPU (`index` of generation `gen` of
/// `vmid`).
pub fn handle(vmid: Vmid, index: u32, gen: u32, frame: &mut Frame) -> Next {
    let _ = index;
    match frame.x[0] {
        HYP_IDENTIFY => {
            // API version 1, 64-bit; flags0: partition/cspace (0), msgqueue (2), vcpu (5).
            frame.x[0] = 1 | (1 << 15) | (0x48 << 56);
            frame.x[1] = 1 | (1 << 2) | (1 << 5);
            frame.x[2] = 0;
        }
        MSGQ_SEND => {
            let (cap, size, buf, flags) = (frame.x[1], frame.x[2], frame.x[3], frame.x[4]);
            let r = rmcore::with_core(vmid, gen, |core| match cap_of(core, vmid, cap) {
                Some(Cap::RmTx) if size == 0 || size > MAX_MSG => ARGUMENT_SIZE,
                Some(Cap::RmTx) if flags & !1 != 0 => ARGUMENT_INVALID,
                Some(Cap::RmTx) => match copy_from_guest(core, vmid, buf, size) {
                    Some(msg) => {
                        rpc_log(vmid, "to the RM", &msg);
                        core.packet_from(vmid, &msg);
                        OK
                    }
                    None => ADDR_INVALID,
                },
                _ => CSPACE_CAP_NULL,
            });
            match r {
                Some(err) => {
                    frame.x[0] = err;
                    frame.x[1] = 1; // not_full: the RM takes every packet at once
                }
                None => return Next::Sched(After::Off),
            }
        }
        MSGQ_RECV => {
            let (cap, buf, size) = (frame.x[1], frame.x[2], frame.x[3]);
            let r = rmcore::with_core(vmid, gen, |core| match cap_of(core, vmid, cap) {
                // A cap of another kind of object counts as absent.
                Some(Cap::RmRx) => {
                    let max = usize::try_from(size).unwrap_or(usize::MAX);
                    let deliver = |c: &mut Core, m: &[u8]| {
                        let ok = copy_to_guest(c, vmid, buf, m);
                        if ok {
                            rpc_log(vmid, "from the RM", m);
                        }
                        ok
                    };
                    match core.receive(vmid, max, deliver) {
                        Ok((len, more)) => (OK, len as u64, more as u64),
                        Err(ReceiveError::Empty) => (MSGQUEUE_EMPTY, 0, 0),
                        Err(ReceiveError::TooBig) => (ARGUMENT_SIZE, 0, 0),
                        Err(ReceiveError::Address) => (ADDR_INVALID, 0, 0),
                    }
                }
                _ => (CSPACE_CAP_NULL, 0, 0),
            });
            match r {
                Some((err, len, more)) => {
                    frame.x[0] = err;
                    if err == OK {
                        frame.x[1] = len;
                        frame.x[2] = more;
                    }
                }
                None => return Next::Sched(After::Off),
            }
        }
        SCHED_YIELD => {
            frame.x[0] = OK;
            return Next::Sched(After::Yield);
        }
        // SMCCC 1.1: Linux's `arm_smccc_1_1_invoke` (how `arch_is_gunyah_guest` asks for the
        // UID) does nothing under 1.0.
        SMCCC_VERSION => frame.x[0] = 0x1_0001,
        VENDOR_HYP_CALL_UID => frame.x[..4].copy_from_slice(&GUNYAH_UID),
        PSCI_VERSION => frame.x[0] = 0x1_0000, // 1.0
        PSCI_FEATURES => frame.x[0] = crate::psci::features(frame.x[1]),
        PSCI_CPU_ON_32 | PSCI_CPU_ON_64 => {
            let (mpidr, entry, ctx) = (frame.x[1], frame.x[2], frame.x[3]);
            // A VM's vCPUs are numbered by MPIDR Aff0 (its DT's cpu@N); other affinity
            // levels are zero.
            frame.x[0] = if mpidr & !0xFF != 0 {
                -2i64 as u64
            } else {
                sched::cpu_on(vmid, gen, mpidr as u32, entry, ctx) as u64
            };
        }
        PSCI_AFFINITY_INFO_32 | PSCI_AFFINITY_INFO_64 => {
            let (mpidr, level) = (frame.x[1], frame.x[2]);
            frame.x[0] = if mpidr & !0xFF != 0 || level != 0 {
                -2i64 as u64
            } else {
                sched::affinity_info(vmid, gen, mpidr as u32) as u64
            };
        }
        PSCI_CPU_OFF => return Next::Sched(After::Off),
        #[cfg(feature = "catalogue")]
        id if crate::testchan::owns(id) => {
            if !crate::testchan::handle(vmid, gen, frame) {
                return Next::Sched(After::Off);
            }
        }
        PSCI_SYSTEM_OFF if vmid == VMID_HLOS => return Next::SystemOff,
        // Another VM's SYSTEM_OFF stops only its own vCPU here (the VM stays RUNNING in the
        // RM until its owner stops it).
        PSCI_SYSTEM_OFF => return Next::Sched(After::Off),
        PSCI_SYSTEM_RESET if vmid == VMID_HLOS => return Next::SystemReset,
        // Another VM's: as its SYSTEM_OFF (its owner resets it through the RM).
        PSCI_SYSTEM_RESET => return Next::Sched(After::Off),
        id if crate::psci::is_psci(id) => frame.x[0] = PSCI_NOT_SUPPORTED,
        _ => frame.x[0] = UNIMPLEMENTED,
    }
    Next::Sched(After::Resume)
}

/// The guest's stage-1 translation of `va` (the running vCPU's EL1 regime), for a read or a
/// write: the IPA, or None if its stage 1 does not allow it.
fn stage1(va: u64, write: bool) -> Option<u64> {
    let par: u64;
    #[cfg(target_arch = "aarch64")]
    // SAFETY: AT only writes PAR_EL1, which is saved and restored around it; the guest's EL1
    // registers and VTTBR_EL2 are loaded (we are handling its trap, its VM alive).
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

pub(crate) fn copy_from_guest(core: &Core, vmid: Vmid, va: u64, len: u64) -> Option<Vec<u8>> {
    let mut out = alloc::vec![0u8; len as usize];
    for (a, n, off) in pieces(va, len) {
        let pa = core.guest_pa(vmid, stage1(a, false)?, false)?;
        // SAFETY: `pa..pa+n` is RAM the guest may read (its stage 2 maps it readable, normal
        // memory), identity-mapped at EL2, within one page; the RM's lock is held, so the
        // mapping stays.
        unsafe {
            core::ptr::copy_nonoverlapping(pa as *const u8, out[off..].as_mut_ptr(), n as usize)
        };
    }
    Some(out)
}

pub(crate) fn copy_to_guest(core: &Core, vmid: Vmid, va: u64, data: &[u8]) -> bool {
    let mut pas = Vec::new();
    for (a, n, off) in pieces(va, data.len() as u64) {
        match stage1(a, true).and_then(|ipa| core.guest_pa(vmid, ipa, true)) {
            Some(pa) => pas.push((pa, n, off)),
            None => return false, // nothing written
        }
    }
    for (pa, n, off) in pas {
        // SAFETY: RAM the guest may write (its stage 2 maps it writable, normal memory),
        // identity-mapped at EL2, within one page; the RM's lock is held.
        unsafe { core::ptr::copy_nonoverlapping(data[off..].as_ptr(), pa as *mut u8, n as usize) };
    }
    true
}
