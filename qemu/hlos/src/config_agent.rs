//! The guest agent in the VMs HLOS launches from `vm-configs/` (`configs.rs`): the boot
//! context's x3 says which (4 trusted VM, 5 zygote, 6 app clone, 7 the quota-limited app
//! clone, 8 protected VM). Each works on the memory its config gave it; the RM set that up
//! at VM_INIT from the config in its DT. Results go to the mailbox as in `agent.rs`
//! ([.., .., .., the VMID the RM told it, .., ..]; 0 = every check passed, else the check).

use core::ptr::{read_volatile, write_volatile};

use gunyah_rm_abi::vm::VmSetStatusReq;
use gunyah_rm_abi::{Request, RmError};

use crate::agent::{el1_instructions, el2_during};
use crate::el1::is_injected_abort;
use crate::layout::*;
use crate::mailbox::Mailbox;
use crate::pattern::*;
use crate::rpc::Rpc;
use crate::start::probe;

/// Boot-context roles (x3).
pub const ROLE_TRUSTED: u64 = 4;
/// See [`ROLE_TRUSTED`].
pub const ROLE_ZYGOTE: u64 = 5;
/// See [`ROLE_TRUSTED`].
pub const ROLE_APP_CLONE: u64 = 6;
/// See [`ROLE_TRUSTED`].
pub const ROLE_QUOTA_CLONE: u64 = 7;
/// See [`ROLE_TRUSTED`].
pub const ROLE_PROTECTED: u64 = 8;

/// The trusted VM's fixed VMID (`vm-configs/trusted-vm.dts`).
pub const TRUSTED_VMID: u64 = 0x2d;
/// Its 32 MiB of RAM (eagerly populated gmem).
const TRUSTED_RAM: (u64, u64) = (0x8000_0000, 0x200_0000);
/// An app clone's own RAM (`vm-configs/app-clone.dts`: 64 MiB at 0x8c000000, demand-paged).
pub const CLONE_RAM: u64 = 0x8c00_0000;
/// The zygote page the zygote itself writes after the seal (its own CoW copy; clones must
/// not see it).
pub const ZYGOTE_WRITE_PAGE: u64 = 1;
/// The pages an app clone writes: half of the first (the fault that splits the 2 MiB
/// golden block), one word of the second.
pub const CLONE_FIRST_PAGE: u64 = 5;
/// See [`CLONE_FIRST_PAGE`].
pub const CLONE_SECOND_PAGE: u64 = 9;
/// The golden page an app clone copies itself (for the comparison).
const CLONE_COPY_PAGE: u64 = 7;
/// app-clone-1's CoW quota (`vm-configs/app-clone-stop.dts`): its next copy stops it.
pub const QUOTA_PAGES: u64 = 256;
/// Mailbox word where the quota clone counts the pages it copied.
pub const MB_PROGRESS: u64 = 10;
/// The page a protected VM writes.
pub const PROTECTED_PAGE: u64 = 2;

fn at(page: u64, word: u64) -> *mut u64 {
    (ZYGOTE_SEAL_IPA + page * 4096 + word * 8) as *mut u64
}

fn get(page: u64, word: u64) -> u64 {
    // SAFETY: the golden image (or the zygote's RAM) at IPA = VA through the agent's stage 1.
    unsafe { read_volatile(at(page, word)) }
}

fn put(page: u64, word: u64, v: u64) {
    // SAFETY: as in `get`; a write to a golden page takes a stage-2 CoW fault EL2 serves.
    unsafe { write_volatile(at(page, word), v) }
}

/// The golden data where nobody wrote it: every 31st page, its first and last word.
fn golden_intact(skip: &[u64]) -> Option<u64> {
    let pages = ZYGOTE_SEAL_SIZE / 4096;
    (0..pages)
        .step_by(31)
        .chain([pages - 1])
        .filter(|p| !skip.contains(p))
        .find(|&p| get(p, 0) != zygote_word(p, 0) || get(p, 511) != zygote_word(p, 511))
}

/// The scene of config VM `role`; (status, results).
pub fn scene(role: u64, index: u64, me: u64, rpc: &mut Rpc) -> (u64, [u64; 6]) {
    let fail = |check: u64, a: u64, b: u64| (check, [a, b, 0, me, 0, 0]);
    match role {
        ROLE_TRUSTED => {
            if me != TRUSTED_VMID {
                return fail(50, me, 0);
            }
            // Its own RAM, populated at launch, reads and writes at both ends; past its end
            // nothing is mapped: the access aborts.
            let (base, size) = TRUSTED_RAM;
            for a in [base, base + size - 8] {
                // SAFETY: the trusted VM's RAM (IPA = VA).
                unsafe { write_volatile(a as *mut u64, a ^ me) };
                // SAFETY: as above.
                if unsafe { read_volatile(a as *const u64) } != a ^ me {
                    return fail(51, a, 0);
                }
            }
            let esr = probe(base + size, false);
            if !is_injected_abort(esr) {
                return fail(52, esr, 0);
            }
            (0, [0, 0, 0, me, 0, 0])
        }
        ROLE_ZYGOTE => {
            // Boot work: the seal range gets its known content.
            for p in 0..ZYGOTE_SEAL_SIZE / 4096 {
                for w in 0..512 {
                    put(p, w, zygote_word(p, w));
                }
            }
            // OS RUN: the RM seals the range now and maps it back copy-on-write.
            let st = VmSetStatusReq::new(0, gunyah_rm_abi::OsState::Run, 0);
            match rpc.call(&Request::VmSetStatus(st)) {
                Ok(r) if r.err == RmError::Ok => {}
                _ => return fail(40, 0, 0),
            }
            if let Some(p) = golden_intact(&[]) {
                return fail(41, p, get(p, 0));
            }
            // Its own write now copies the page into its pool.
            put(ZYGOTE_WRITE_PAGE, 0, me);
            if get(ZYGOTE_WRITE_PAGE, 0) != me
                || get(ZYGOTE_WRITE_PAGE, 1) != zygote_word(ZYGOTE_WRITE_PAGE, 1)
            {
                return fail(42, get(ZYGOTE_WRITE_PAGE, 0), 0);
            }
            (0, [ZYGOTE_SEAL_SIZE / 4096, 0, 0, me, 0, 0])
        }
        ROLE_APP_CLONE => app_clone(index, me),
        ROLE_QUOTA_CLONE => {
            let mb = Mailbox::at(CLONE_MAILBOX_IPA);
            for p in 0..QUOTA_PAGES {
                put(p, 0, clone_word(index, p));
                mb.set(MB_PROGRESS, p + 1);
            }
            // One copy over the quota: the RM stops this VM (fault-action stop-vm).
            put(QUOTA_PAGES, 0, clone_word(index, QUOTA_PAGES));
            fail(70, get(QUOTA_PAGES, 0), 0)
        }
        ROLE_PROTECTED => {
            if let Some(p) = golden_intact(&[]) {
                return fail(80, p, get(p, 0));
            }
            put(PROTECTED_PAGE, 0, me);
            if get(PROTECTED_PAGE, 0) != me || get(PROTECTED_PAGE, 1) != zygote_word(2, 1) {
                return fail(81, get(PROTECTED_PAGE, 0), 0);
            }
            (0, [0, 0, 0, me, 0, 0])
        }
        _ => fail(90, role, 0),
    }
}

/// An app clone: the zygote's image at the IPA it was sealed from, its own RAM after it.
fn app_clone(index: u64, me: u64) -> (u64, [u64; 6]) {
    let fail = |check: u64, a: u64, b: u64| (check, [a, b, 0, me, 0, 0]);
    // The image as sealed: the zygote's own later write does not show.
    if let Some(p) = golden_intact(&[]) {
        return fail(20, p, get(p, 0));
    }
    if get(ZYGOTE_WRITE_PAGE, 0) != zygote_word(ZYGOTE_WRITE_PAGE, 0) {
        return fail(21, get(ZYGOTE_WRITE_PAGE, 0), 0);
    }
    // Its own RAM is demand-paged: the first touch populates a page (before the timing).
    let own = CLONE_RAM as *mut u64;
    // SAFETY: the clone's private RAM (IPA = VA).
    unsafe { write_volatile(own, me) };
    // The first write faults to EL2 (splitting the 2 MiB golden block) and is retried.
    let ((), el2) = el2_during(|| put(CLONE_FIRST_PAGE, 0, clone_word(index, 0)));
    for w in 1..WRITTEN_WORDS {
        put(CLONE_FIRST_PAGE, w, clone_word(index, w));
    }
    for w in 0..512 {
        let want = if w < WRITTEN_WORDS {
            clone_word(index, w)
        } else {
            zygote_word(CLONE_FIRST_PAGE, w)
        };
        if get(CLONE_FIRST_PAGE, w) != want {
            return fail(22, w, get(CLONE_FIRST_PAGE, w));
        }
    }
    if let Some(p) = golden_intact(&[CLONE_FIRST_PAGE]) {
        return fail(23, p, get(p, 0));
    }
    // A second fault in the block already split.
    let ((), el2_next) = el2_during(|| put(CLONE_SECOND_PAGE, 0, clone_word(index, 0)));
    if get(CLONE_SECOND_PAGE, 0) != clone_word(index, 0)
        || get(CLONE_SECOND_PAGE, 1) != zygote_word(CLONE_SECOND_PAGE, 1)
    {
        return fail(25, get(CLONE_SECOND_PAGE, 0), 0);
    }
    // The guest's own 4 KiB copy (golden page -> its RAM), for comparison.
    let c0 = el1_instructions();
    // SAFETY: source the golden mapping, destination the clone's populated RAM page.
    unsafe {
        core::ptr::copy_nonoverlapping(at(CLONE_COPY_PAGE, 0) as *const u8, own as *mut u8, 4096)
    };
    let copy = el1_instructions().wrapping_sub(c0);
    // SAFETY: the page just written.
    let last = unsafe { read_volatile((CLONE_RAM + 4088) as *const u64) };
    if last != zygote_word(CLONE_COPY_PAGE, 511) {
        return fail(24, last, 0);
    }
    (0, [el2, copy, el2_next, me, 0, 0])
}
