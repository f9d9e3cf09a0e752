//! The guest agent: this image, run by a clone VM that HLOS launched (its DT names another
//! VMID than HLOS's). Boot context from HLOS: x1 = the mailbox parcel's handle, x2 = the
//! clone's index.
//!
//! It asks the RM for its VMID over the queues its DT names, accepts the mailbox itself
//! (MEM_ACCEPT), probes isolation (HLOS's RAM and the board's RAM are not there: the accesses
//! abort), reads the golden image, writes half of page `WRITE_PAGE` (the first store takes a
//! stage-2 permission fault that EL2 serves with a private copy), reads its data and the
//! rest of the copied page back, writes one word of `SECOND_WRITE_PAGE` with every FP/SIMD
//! register loaded, and times its own copy of a 4 KiB page. Results go to the mailbox:
//! [EL2 instructions during the first faulting store, EL1 instructions of its own 4 KiB copy,
//! EL2 instructions during the second faulting store, the VMID the RM told it, 0, 0].

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU64, Ordering};

use gunyah_rm_abi::mem::{accept_flags, MemAccept, SglEntry};
use gunyah_rm_abi::wire::Empty;
use gunyah_rm_abi::{Request, RmError};

use crate::dt::DtInfo;
use crate::el1::is_injected_abort;
use crate::hvc;
use crate::layout::*;
use crate::mailbox::Mailbox;
use crate::rpc::Rpc;
use crate::start::{fp_regs_survive, probe, FATAL_MAILBOX};

/// Instructions retired at EL2 while this vCPU was on its CPU (PMU counter 0: the board
/// traps the read and gives each vCPU its own count, `board/src/vpmu.rs`).
pub(crate) fn el2_instructions() -> u64 {
    let v: u64;
    // SAFETY: reading a PMU counter has no side effects.
    unsafe { core::arch::asm!("isb", "mrs {0}, pmevcntr0_el0", out(reg) v, options(nostack)) };
    v
}

/// EL2 instructions while `f` runs, and what it returned. A counter read is itself a trap to
/// EL2, counted in the next read: the cost of one (two reads back to back) is subtracted.
pub(crate) fn el2_during<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let a = el2_instructions();
    let reads = el2_instructions().wrapping_sub(a);
    let before = el2_instructions();
    let r = f();
    let n = el2_instructions().wrapping_sub(before).wrapping_sub(reads);
    (r, n)
}

/// Instructions this vCPU retired at EL1 (PMU counter 1, its own as counter 0).
pub(crate) fn el1_instructions() -> u64 {
    let v: u64;
    // SAFETY: as above.
    unsafe { core::arch::asm!("isb", "mrs {0}, pmevcntr1_el0", out(reg) v, options(nostack)) };
    v
}

pub(crate) fn golden_va(page: u64, word: u64) -> *mut u64 {
    (CLONE_GOLDEN_VA + page * 4096 + word * 8) as *mut u64
}

pub(crate) fn read(page: u64, word: u64) -> u64 {
    // SAFETY: the clone's golden mapping (read-only or its own copy), through its stage 1.
    unsafe { read_volatile(golden_va(page, word)) }
}

/// The agent's main. `role` (boot context x3) 1 makes it the attacker
/// (`attacker.rs`), which gets `victim` (x4: a clone's VMID | its mailbox handle << 16).
pub fn main(info: &DtInfo, mailbox_handle: u64, index: u64, role: u64, victim: u64) -> ! {
    crate::gic::init(info.rx_virq);
    let mut rpc = Rpc::new(info.tx_cap, info.rx_cap);
    let me = match rpc.call(&Request::VmGetVmid(Empty)) {
        Ok(r) if r.err == RmError::Ok => r.word(0) as u64,
        _ => hvc::cpu_off(),
    };
    let sgl = [SglEntry::new(CLONE_MAILBOX_IPA, 4096)];
    let accept = accept_share(mailbox_handle as u32, &sgl);
    match rpc.call(&Request::MemAccept(accept)) {
        Ok(r) if r.err == RmError::Ok => {}
        _ => hvc::cpu_off(),
    }
    let mb = Mailbox::at(CLONE_MAILBOX_IPA);
    FATAL_MAILBOX.store(CLONE_MAILBOX_IPA, Ordering::Relaxed);
    // Its SVE predicates: zero now (nothing of another vCPU's), its own pattern from here
    // to the end of its scene (`sve.rs`).
    let seed = me ^ (role << 16) ^ 0x5E5E;
    let sve = crate::sve::start(seed);
    let finish = |status: u64, results: [u64; 6]| {
        let sve = sve.map(|s| s.and_then(|()| crate::sve::check(seed)));
        match sve {
            Some(Err(code)) if status == 0 => mb.finish(80 + code, [code, 0, 0, me, 0, 0]),
            _ => mb.finish(status, results),
        }
    };
    if role == 2 {
        // Its second vCPU spins too, on the same physical CPU (its VM config).
        SPINNER.store(1, Ordering::SeqCst);
        let [err, ..] = hvc::call(hvc::PSCI_CPU_ON, 1, crate::start::secondary_entry(), 1, 0);
        if err != 0 {
            hvc::cpu_off()
        }
        spin(0)
    }
    if role >= crate::config_agent::ROLE_TRUSTED {
        // A VM HLOS launched from its config (`configs.rs`).
        let (status, results) = crate::config_agent::scene(role, index, me, &mut rpc);
        finish(status, results);
        hvc::cpu_off()
    }
    if role == 3 {
        let (status, results) = race(index, me);
        finish(status, results);
        hvc::cpu_off()
    }
    let (status, results) = if role == 1 {
        crate::attacker::scene(&mut rpc, me, victim)
    } else {
        scene(index, me, info.tx_cap)
    };
    finish(status, results);
    hvc::cpu_off()
}

/// The racer's second vCPU is up / has written its words.
static SIBLING_UP: AtomicU64 = AtomicU64::new(0);
static SIBLING_DONE: AtomicU64 = AtomicU64::new(0);
/// The racer's index (for the second vCPU).
static RACER: AtomicU64 = AtomicU64::new(0);

/// Both vCPUs of this VM wait for HLOS's go, then write word `vcpu` of each race page
/// (each VM's vCPUs fault on the same golden pages as every other racer's, at once).
fn race_writes(racer: u64, vcpu: u64) {
    let mb = Mailbox::at(CLONE_MAILBOX_IPA);
    while mb.get(MB_GO) == 0 {
        core::hint::spin_loop();
    }
    for p in RACE_FIRST_PAGE..RACE_FIRST_PAGE + RACE_PAGES {
        // SAFETY: the racer's copy-on-write golden mapping.
        unsafe { write_volatile(golden_va(p, vcpu), race_word(racer, vcpu, p)) };
    }
}

/// A racer (role 3, two vCPUs): start vCPU 1 with PSCI CPU_ON, say ready, write with it at
/// HLOS's go, then check every race page holds both vCPUs' words and golden data elsewhere.
fn race(racer: u64, me: u64) -> (u64, [u64; 6]) {
    let fail = |check: u64, a: u64, b: u64| (check, [a, b, 0, me, 0, 0]);
    RACER.store(racer, Ordering::SeqCst);
    let [err, ..] = hvc::call(hvc::PSCI_CPU_ON, 1, crate::start::secondary_entry(), 1, 0);
    if err != 0 {
        return fail(60, err, 0);
    }
    let mut waits = 0u64;
    while SIBLING_UP.load(Ordering::SeqCst) == 0 {
        waits += 1;
        if waits > 1 << 30 {
            return fail(61, 0, 0);
        }
        core::hint::spin_loop();
    }
    let mb = Mailbox::at(CLONE_MAILBOX_IPA);
    mb.set(MB_READY, 1);
    race_writes(racer, 0);
    while SIBLING_DONE.load(Ordering::SeqCst) == 0 {
        core::hint::spin_loop();
    }
    for p in RACE_FIRST_PAGE..RACE_FIRST_PAGE + RACE_PAGES {
        for w in [0, 1] {
            if read(p, w) != race_word(racer, w, p) {
                return fail(62, p, read(p, w));
            }
        }
        for w in [2, 511] {
            if read(p, w) != golden_word(p, w) {
                return fail(63, p, read(p, w));
            }
        }
    }
    (0, [RACE_PAGES, 0, 0, me, 0, 0])
}

/// This VM is the spinner (its second vCPU spins too).
static SPINNER: AtomicU64 = AtomicU64::new(0);

/// The second vCPU of a racer or of the spinner (entered at `_secondary_start`).
pub fn secondary(index: u64) -> ! {
    if SPINNER.load(Ordering::SeqCst) != 0 {
        spin(1)
    }
    crate::gic::cpu_init();
    SIBLING_UP.store(index, Ordering::SeqCst);
    race_writes(RACER.load(Ordering::SeqCst), 1);
    SIBLING_DONE.store(1, Ordering::SeqCst);
    hvc::cpu_off()
}

/// A spinner vCPU: count in mailbox word 2 + `vcpu` forever, never trapping (no hypercall,
/// no WFI, no fault); only the hypervisor takes the CPU away from it.
fn spin(vcpu: u64) -> ! {
    // Predicates of its own on HLOS's CPU, which HLOS must not find in its.
    crate::sve::set(0x5917 + vcpu);
    let counter = (CLONE_MAILBOX_IPA + 16 + vcpu * 8) as *mut u64;
    let mut n = 0u64;
    loop {
        n += 1;
        // SAFETY: the mailbox page this VM accepted, mapped read/write.
        unsafe { write_volatile(counter, n) };
    }
}

fn scene(index: u64, me: u64, tx: u64) -> (u64, [u64; 6]) {
    let fail = |check: u64, a: u64, b: u64| (check, [a, b, 0, me, 0, 0]);
    // Isolation probes: the golden mapping reads; HLOS's RAM (the sealed source's IPA) and
    // the board's RAM are not in this VM: reading them aborts.
    if probe(golden_va(0, 0) as u64, false) != 0 {
        return fail(30, 0, 0);
    }
    for (check, va) in [(31, GOLDEN_SRC), (32, EL2_RAM)] {
        let esr = probe(va, false);
        if !is_injected_abort(esr) {
            return fail(check, esr, va);
        }
    }
    // The golden data, the page about to be written included (the other clone's earlier
    // write must not show).
    let mut page = 0;
    while page < GOLDEN_SIZE / 4096 {
        if read(page, 0) != golden_word(page, 0) || read(page, 511) != golden_word(page, 511) {
            return fail(20, page, read(page, 0));
        }
        page += 31;
    }
    for w in 0..512 {
        if read(WRITE_PAGE, w) != golden_word(WRITE_PAGE, w) {
            return fail(21, w, read(WRITE_PAGE, w));
        }
    }
    // The write: the first store faults to EL2 and is retried there.
    let ((), el2) = el2_during(|| {
        // SAFETY: the clone's copy-on-write golden mapping.
        unsafe { write_volatile(golden_va(WRITE_PAGE, 0), clone_word(index, 0)) }
    });
    for w in 1..WRITTEN_WORDS {
        // SAFETY: as above; the page is now the clone's own copy.
        unsafe { write_volatile(golden_va(WRITE_PAGE, w), clone_word(index, w)) };
    }
    for w in 0..512 {
        let want = if w < WRITTEN_WORDS {
            clone_word(index, w)
        } else {
            golden_word(WRITE_PAGE, w)
        };
        if read(WRITE_PAGE, w) != want {
            return fail(22, w, read(WRITE_PAGE, w));
        }
    }
    for p in [WRITE_PAGE - 1, WRITE_PAGE + 1] {
        if read(p, 0) != golden_word(p, 0) || read(p, 511) != golden_word(p, 511) {
            return fail(23, p, read(p, 0));
        }
    }
    // A second CoW fault in the same 2 MiB block (already split by the first), taken with
    // every FP/SIMD register loaded: they must survive it.
    let (changed, el2_next) = el2_during(|| {
        fp_regs_survive(
            clone_word(index, 0),
            &[],
            golden_va(SECOND_WRITE_PAGE, 0) as u64,
            tx,
        )
    });
    if changed != 0 {
        return fail(26, changed, 0);
    }
    if read(SECOND_WRITE_PAGE, 0) != clone_word(index, 0)
        || read(SECOND_WRITE_PAGE, 1) != golden_word(SECOND_WRITE_PAGE, 1)
    {
        return fail(25, read(SECOND_WRITE_PAGE, 0), read(SECOND_WRITE_PAGE, 1));
    }
    // The guest's own 4 KiB copy (golden page -> its scratch page), for comparison.
    let dst = CLONE_SCRATCH_IPA as *mut u8;
    let c0 = el1_instructions();
    // SAFETY: source is the golden mapping, destination the clone's gmem scratch binding.
    unsafe { core::ptr::copy_nonoverlapping(golden_va(COPY_PAGE, 0) as *const u8, dst, 4096) };
    let own = el1_instructions().wrapping_sub(c0);
    // SAFETY: the scratch page just written.
    let last = unsafe { read_volatile((CLONE_SCRATCH_IPA + 4088) as *const u64) };
    if last != golden_word(COPY_PAGE, 511) {
        return fail(24, last, 0);
    }
    (0, [el2, own, el2_next, me, 0, 0])
}

/// MEM_ACCEPT of shared parcel `handle` (a mailbox) at the IPAs of `sgl`, done at once.
pub fn accept_share(handle: u32, sgl: &[SglEntry]) -> MemAccept<'_> {
    MemAccept {
        handle,
        mem_type: 0,
        trans_type: 2, // share
        flags: accept_flags::DONE,
        label: 0,
        acl: &[],
        map_vmid: 0,
        sgl,
        attrs: &[],
    }
}
