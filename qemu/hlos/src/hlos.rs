//! HLOS's scene (VMID 3). Everything it does to other VMs goes through RM RPC:
//! 1. identify the hypervisor, VM_GET_VMID, bad hypercalls get Gunyah's error codes and
//!    change nothing, FP/SIMD registers survive a trap;
//! 2. VM_ALLOC_VMID three times (two clones, one attacker); a 2 MiB golden source in its RAM lent and sealed (GOLDEN_SEAL),
//!    after which reading it aborts;
//! 3. per clone: a gmem pool with a scratch binding, the golden image mapped copy-on-write
//!    (GOLDEN_MAP; the attacker's read-only, without a pool), a mailbox page shared (MEM_SHARE), and the launch as a Gunyah VMM does
//!    it: this very image and the clone's DT in an image parcel (MEM_LEND),
//!    VM_SET_ADDRESS_LAYOUT, VM_CONFIG_IMAGE, VM_INIT, VM_GET_HYP_RESOURCES,
//!    VM_SET_BOOT_CONTEXT (x1 = mailbox handle, x2 = clone index), VM_START;
//! 4. wait for both clones' results (the agent, `agent.rs`), check them and the RM's
//!    statistics (VM_MEM_STATS, COW_BROKEN notifications);
//! 5. tear everything down (VM_STOP, VM_RESET, MEM_RECLAIM, VM_DEALLOC_VMID,
//!    GOLDEN_RELEASE), read the golden source again, print the summary and power off.

use core::ptr::{read_volatile, write_volatile};

use gunyah_rm_abi::ext::{
    bind_flags, map_flags, GmemBindReq, GmemCreateReq, GoldenMapReq, NO_GMEM,
};
use gunyah_rm_abi::ext::{GoldenReleaseReq, GoldenSealReq};
use gunyah_rm_abi::mem::{rights, AclEntry, MemCreate, MemReleaseReq, SglEntry};
use gunyah_rm_abi::vm::{VmConfigImageReq, VmSetAddressLayoutReq, VmSetBootContextReq};
use gunyah_rm_abi::vm::{VmInitReq, VmStopReq, VmidReq};
use gunyah_rm_abi::wire::Empty;
use gunyah_rm_abi::{Request, RmError};

use crate::console::fail;
use crate::dt::DtInfo;
use crate::el1::is_injected_abort;
use crate::gic;
use crate::hvc::{self, *};
use crate::layout::*;
use crate::mailbox::Mailbox;
use crate::rpc::{Reply, Rpc};
use crate::say;
use crate::start::{fp_regs_survive, probe};

/// HLOS's VMID.
pub const HLOS_VMID: u16 = 3;

/// The seed of HLOS's SVE predicates (`sve::pattern`).
const SVE_SEED: u64 = 0x4C05;

/// The clones' DT (`clone.dts`, compiled by build.rs).
static CLONE_DTB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/clone.dtb"));
/// The spinner's DT (`spinner.dts`): a VM config pinning its two vCPUs to physical CPU 0,
/// where HLOS's vCPU 0 runs.
static SPINNER_DTB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/spinner.dtb"));

/// Racer VMs, two vCPUs each.
const RACERS: usize = 3;
/// CoW copies the run makes: two per timing clone, one per racer and race page.
const COPIES: u64 = 4 + RACERS as u64 * RACE_PAGES;

/// The racers' DT (`racer.dts`): two vCPUs, not pinned.
static RACER_DTB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/racer.dtb"));

/// The concurrency scene: every racer's two vCPUs up (it says ready), then go for all at
/// once: each vCPU writes its word of the same golden pages, so copy-on-write faults on one
/// page come from several VMs and from two vCPUs of one VM at the same time. Each racer
/// checks it sees both its vCPUs' words and golden data elsewhere (VM_MEM_STATS later
/// checks exactly one copy per VM and page).
fn race(racers: &[Clone]) {
    let mbs: [Mailbox; RACERS] =
        core::array::from_fn(|k| Mailbox::at(MAILBOX_SRC + (3 + k) as u64 * 4096));
    let mut waits = 0;
    while mbs.iter().any(|m| m.get(MB_READY) == 0) {
        waits += 1;
        if waits > 20_000 {
            fail(format_args!("the racers never got both vCPUs up"));
        }
        gic::wait_us(1000);
    }
    for m in &mbs {
        m.set(MB_GO, 1);
    }
    for (k, c) in racers.iter().enumerate() {
        let r = wait_mailbox(3 + k, c.vmid);
        if r[0] != RACE_PAGES {
            fail(format_args!("racer VM {} wrote {} pages", c.vmid, r[0]));
        }
    }
    let ids: [u16; RACERS] = core::array::from_fn(|k| racers[k].vmid);
    say!(
        "racers {ids:?}: two vCPUs each (PSCI CPU_ON), on different physical CPUs, wrote the \
         same {RACE_PAGES} golden pages at once; each sees both its vCPUs' words and the golden \
         data around them"
    );
}

/// Wait (WFI, the virtual timer waking us each millisecond) until VM `vmid` reports in
/// mailbox `i`; its results, after checking its status and the VMID it was told.
pub(crate) fn wait_mailbox(i: usize, vmid: u16) -> [u64; 6] {
    let mb = Mailbox::at(MAILBOX_SRC + i as u64 * 4096);
    let mut waits = 0u64;
    let (status, r) = loop {
        if let Some(done) = mb.poll() {
            break done;
        }
        waits += 1;
        if waits > 20_000 {
            fail(format_args!("VM {vmid} never reported"));
        }
        gic::wait_us(1000);
    };
    if status != 0 {
        fail(format_args!(
            "VM {vmid} failed check {status} ({:#x} {:#x} {:#x})",
            r[0], r[1], r[2]
        ));
    }
    if r[3] != vmid as u64 {
        fail(format_args!(
            "VM {vmid} was told VMID {} by VM_GET_VMID",
            r[3]
        ));
    }
    r
}

/// The spinner (mailbox `i`): two vCPUs loop forever without a trap on HLOS's physical CPU,
/// one priority below HLOS (`spinner.dts`). While HLOS sleeps 10 ms they run, taking turns
/// (round robin within their priority, 3-tick slices: the board counts the slices they used
/// up); while HLOS computes for 5 ms without trapping (longer than HLOS's own timeslice)
/// neither runs: the higher priority keeps the CPU.
/// Returns how far each counted while HLOS slept 10 ms.
fn spinner_check(i: usize, sp: u16) -> [u64; 2] {
    let mb = MAILBOX_SRC + i as u64 * 4096;
    // SAFETY: the spinner's mailbox page, shared read/write with us.
    let count = |v: u64| unsafe { read_volatile((mb + 16 + v * 8) as *const u64) };
    let counts = || [count(0), count(1)];
    let mut waits = 0;
    while counts().contains(&0) {
        waits += 1;
        if waits > 20_000 {
            fail(format_args!(
                "spinner VM {sp}'s two vCPUs never both ran ({:?})",
                counts()
            ));
        }
        gic::wait_us(1000);
    }
    let freq: u64;
    // SAFETY: reading the counter frequency has no side effects.
    unsafe { core::arch::asm!("mrs {0}, cntfrq_el0", out(reg) freq, options(nomem, nostack)) };
    let now = || {
        let t: u64;
        // SAFETY: reading the virtual counter has no side effects.
        unsafe { core::arch::asm!("isb", "mrs {0}, cntvct_el0", out(reg) t, options(nostack)) };
        t
    };
    // Sleep 10 ms in one wait (another interrupt may end it early: sleep the rest): the
    // spinners take turns in 3-tick slices meanwhile.
    let c0 = counts();
    let end = now() + freq / 100;
    while now() < end {
        gic::wait_us((end.saturating_sub(now()) * 1_000_000 / freq).max(1));
    }
    let c1 = counts();
    if c1[0] <= c0[0] || c1[1] <= c0[1] {
        fail(format_args!(
            "spinner VM {sp}'s vCPUs did not both run while HLOS slept ({c0:?} -> {c1:?})"
        ));
    }
    // Compute for 5 ms (the virtual counter), never trapping: the tick charges HLOS's slice
    // and finds only lower priorities waiting.
    let b0 = counts();
    let end = now() + freq / 200;
    while now() < end {
        core::hint::spin_loop();
    }
    let b1 = counts();
    if b1 != b0 {
        fail(format_args!(
            "spinner VM {sp} ran while HLOS, of higher priority, computed on their CPU \
             ({b0:?} -> {b1:?})"
        ));
    }
    [c1[0] - c0[0], c1[1] - c0[1]]
}

extern "C" {
    static __image_start: u8;
    static __image_end: u8;
    static __end: u8;
}

/// (start, loaded size, size with .bss and stack) of this image.
pub(crate) fn image() -> (u64, u64, u64) {
    // SAFETY: linker symbols; only their addresses are used.
    let (s, e, end) = unsafe {
        (
            &__image_start as *const u8 as u64,
            &__image_end as *const u8 as u64,
            &__end as *const u8 as u64,
        )
    };
    (s, e - s, end - s)
}

/// A call that must succeed: its reply, else the run fails naming `what`.
pub(crate) fn ok(rpc: &mut Rpc, req: Request<'_>, what: &str) -> Reply {
    match rpc.call(&req) {
        Ok(r) if r.err == RmError::Ok => r,
        Ok(r) => fail(format_args!("{what}: RM error {:?}", r.err)),
        Err(e) => fail(format_args!("{what}: no reply ({e:?})")),
    }
}

pub(crate) fn mem_create<'a>(acl: &'a [AclEntry], sgl: &'a [SglEntry]) -> MemCreate<'a> {
    MemCreate {
        mem_type: 0,
        flags: 0,
        label: 0,
        acl,
        sgl,
        attrs: &[],
    }
}

/// Bad hypercalls get Gunyah's error codes and change nothing: no request reaches the RM, a
/// malformed RPC packet is dropped, a reply that does not fit stays queued. The number of
/// the first case that went wrong, or 0.
fn bad_hypercalls(tx: u64, rx: u64) -> u64 {
    // A valid VM_GET_VMID request, seq 0x77.
    let pk = [0x21u8, 1, 0x77, 0, 0x24, 0, 0, 0x56];
    let p = pk.as_ptr() as u64;
    let unmapped = EL2_RAM; // not in HLOS's stage 2
    let crossing = HLOS_RAM.0 + HLOS_RAM.1 - 8; // last 8 bytes of HLOS RAM, then the board's
    let bad_cap = tx ^ rx ^ 0x5A5A;
    let cases = [
        (MSGQ_SEND, bad_cap, 8, p, 0, CSPACE_CAP_NULL),
        (MSGQ_SEND, rx, 8, p, 0, CSPACE_CAP_NULL),
        (MSGQ_SEND, tx, 0, p, 0, ARGUMENT_SIZE),
        (MSGQ_SEND, tx, 241, p, 0, ARGUMENT_SIZE),
        (MSGQ_SEND, tx, 8, p, 2, ARGUMENT_INVALID),
        (MSGQ_SEND, tx, 8, unmapped, 0, ADDR_INVALID),
        (MSGQ_SEND, tx, 16, crossing, 0, ADDR_INVALID),
        (MSGQ_RECV, tx, p, 240, 0, CSPACE_CAP_NULL),
        (MSGQ_RECV, rx, p, 240, 0, MSGQUEUE_EMPTY),
        (0xC600_8FFF, 0, 0, 0, 0, UNIMPLEMENTED),
        (SCHED_YIELD, 0, 0, 0, 0, OK),
    ];
    for (i, &(id, a1, a2, a3, a4, want)) in cases.iter().enumerate() {
        if hvc::call(id, a1, a2, a3, a4)[0] != want {
            return 1 + i as u64;
        }
    }
    // A malformed RPC packet (unknown API version) is accepted by the queue, dropped by the RM.
    let junk = [0xFFu8; 12];
    if hvc::call(MSGQ_SEND, tx, 12, junk.as_ptr() as u64, 1)[0] != OK {
        return 20;
    }
    let mut buf = [0u8; 240];
    let b = buf.as_mut_ptr() as u64;
    if hvc::call(MSGQ_RECV, rx, b, 240, 0)[0] != MSGQUEUE_EMPTY {
        return 21;
    }
    // A reply that does not fit the buffer, or a buffer EL2 cannot write, stays queued.
    if hvc::call(MSGQ_SEND, tx, 8, p, 1)[0] != OK {
        return 22;
    }
    if hvc::call(MSGQ_RECV, rx, b, 8, 0)[0] != ARGUMENT_SIZE {
        return 23;
    }
    if hvc::call(MSGQ_RECV, rx, unmapped, 240, 0)[0] != ADDR_INVALID {
        return 24;
    }
    let [err, size, more] = hvc::call(MSGQ_RECV, rx, b, 240, 0);
    let want = [0x21, 2, 0x77, 0, 0x24, 0, 0, 0x56, 0, 0, 0, 0, 3, 0, 0, 0];
    if err != OK || size != 16 || more != 0 || buf[..16] != want {
        return 25;
    }
    0
}

/// The receive queue's interrupt: a reply raises it (WFI returns with it pending, not the
/// timer), and it is pending again while packets wait; 12 requests sent before receiving
/// (more than the queue's depth of 8) are all answered, in order; once the queue is empty
/// only the timer ends a wait. Every wait is a WFI with IRQs masked (PSTATE.I set, checked):
/// it must end for an interrupt the vCPU would take unmasked, as WFI does on hardware. The
/// number of the first case that went wrong.
fn queue_interrupts(tx: u64, rx: u64) -> u64 {
    if !gic::irqs_masked() {
        return 60;
    }
    gic::ack_all();
    let pk = |seq: u8| [0x21u8, 1, seq, 0, 0x24, 0, 0, 0x56];
    let p = pk(0x90);
    if hvc::call(MSGQ_SEND, tx, 8, p.as_ptr() as u64, 1)[0] != OK {
        return 1;
    }
    let (others, timer) = gic::wait_us_detail(100_000);
    if others != 1 || timer {
        return 2;
    }
    let mut buf = [0u8; 240];
    let b = buf.as_mut_ptr() as u64;
    if hvc::call(MSGQ_RECV, rx, b, 240, 0)[0] != OK || buf[2] != 0x90 {
        return 3;
    }
    for i in 0..12u8 {
        let p = pk(0xA0 + i);
        if hvc::call(MSGQ_SEND, tx, 8, p.as_ptr() as u64, 1)[0] != OK {
            return 4;
        }
    }
    for i in 0..12u8 {
        // The interrupt is pending while a packet waits: the wait ends at once, not by the
        // timer.
        let (others, timer) = gic::wait_us_detail(100_000);
        if others == 0 || timer {
            return 10 + u64::from(i);
        }
        let [err, size, more] = hvc::call(MSGQ_RECV, rx, b, 240, 0);
        if err != OK || size != 16 || buf[2] != 0xA0 + i || more != u64::from(i < 11) {
            return 30 + u64::from(i);
        }
    }
    // Empty now: only the timer ends a wait.
    let (others, timer) = gic::wait_us_detail(1000);
    if others != 0 || !timer || hvc::call(MSGQ_RECV, rx, b, 240, 0)[0] != MSGQUEUE_EMPTY {
        return 50;
    }
    0
}

/// Virtual interrupt priorities (GICD_IPRIORITYR, GICR_IPRIORITYR0-7) and the priority mask
/// (ICC_PMR_EL1): the receive queue's SPI `spi` at 0x40, the virtual timer's PPI at 0x80 (both
/// read back as set), both pending at once (a reply waits; the timer fired). With the mask at
/// 0x60 the SPI is taken and the timer's interrupt is not (a list register with one fixed
/// priority would give neither, or both); with the mask open, the timer's. Then back to the
/// board's default priority 0xA0 and an open mask. The number of the first case that went
/// wrong.
fn interrupt_priorities(tx: u64, rx: u64, spi: u32) -> u64 {
    gic::ack_all();
    gic::set_priority(spi, 0x40);
    gic::set_priority(gic::VTIMER, 0x80);
    if gic::priority(spi) != 0x40 || gic::priority(gic::VTIMER) != 0x80 {
        return 1;
    }
    let p = [0x21u8, 1, 0x91, 0, 0x24, 0, 0, 0x56];
    if hvc::call(MSGQ_SEND, tx, 8, p.as_ptr() as u64, 1)[0] != OK {
        return 2;
    }
    // The reply's interrupt pending (not taken), then the timer's too.
    gic::wait_pending();
    gic::fire_timer();
    gic::set_priority_mask(0x60);
    let first = gic::acknowledge();
    if first != spi {
        return 10 + u64::from(first.min(1023));
    }
    gic::end(first);
    let mut buf = [0u8; 240];
    let [err, _, more] = hvc::call(MSGQ_RECV, rx, buf.as_mut_ptr() as u64, 240, 0);
    if err != OK || buf[2] != 0x91 || more != 0 {
        return 3;
    }
    // The timer's interrupt waits below the mask.
    let masked = gic::acknowledge();
    if masked != 1023 {
        return 2000 + u64::from(masked);
    }
    gic::set_priority_mask(0xFF);
    let next = gic::acknowledge();
    if next != gic::VTIMER {
        return 3000 + u64::from(next.min(1023));
    }
    gic::end(next);
    gic::timer_stop();
    gic::set_priority(spi, 0xA0);
    gic::set_priority(gic::VTIMER, 0xA0);
    0
}

/// What HLOS keeps about a launched clone.
#[derive(Clone, Copy, Default)]
struct Clone {
    vmid: u16,
    image: u32,
    mailbox: u32,
}

/// HLOS's main.
pub fn main(info: &DtInfo) -> ! {
    let (tx, rx) = (info.tx_cap, info.rx_cap);
    say!(
        "RM RPC queues from the DT's /hypervisor node: tx cap {tx:#x}, rx cap {rx:#x} (DT at \
         {:#x}, {} bytes)",
        info.dt.0,
        info.dt.1
    );
    // How Linux finds Gunyah: `psci_init_smccc` (PSCI_FEATURES lists SMCCC_VERSION, which
    // says 1.1 or later, else Linux has no SMCCC 1.1 conduit), then `arch_is_gunyah_guest`
    // (the vendor-hypervisor Call UID is Gunyah's UUID).
    const PSCI_FEATURES: u64 = 0x8400_000A;
    let [feature, ..] = hvc::call(PSCI_FEATURES, SMCCC_VERSION, 0, 0, 0);
    let [smccc, ..] = hvc::call(SMCCC_VERSION, 0, 0, 0, 0);
    let uid = hvc::call4(VENDOR_HYP_CALL_UID);
    if feature != 0 || smccc >> 31 != 0 || smccc < 0x1_0001 || uid != GUNYAH_UID {
        fail(format_args!(
            "SMCCC discovery: PSCI_FEATURES(SMCCC_VERSION) {feature:#x}, SMCCC_VERSION \
             {smccc:#x}, vendor hypervisor UID {uid:x?}"
        ));
    }
    say!(
        "SMCCC {}.{}; the vendor hypervisor's Call UID is Gunyah's \
         (c1d58fcd-a453-5fdb-9265-ce36673d5f14), as Linux checks",
        smccc >> 16,
        smccc & 0xFFFF
    );
    // Gunyah's QEMU platform gives HLOS the device region below its RAM (but the GIC's
    // frames): QEMU's flash at 0x0400_0000 reads, where the board used to inject an abort.
    let esr = probe(0x0400_0000, false);
    if esr != 0 {
        fail(format_args!(
            "reading QEMU's flash at 0x4000000: ESR {esr:#x}"
        ));
    }
    say!("the device region below RAM is HLOS's: QEMU's flash at 0x4000000 reads");
    let [api, flags0, _] = hvc::call(HYP_IDENTIFY, 0, 0, 0, 0);
    if api & 0x3FFF != 1 || flags0 & (1 << 2) == 0 {
        fail(format_args!(
            "hypervisor_identify: api {api:#x} flags {flags0:#x}"
        ));
    }
    // The GIC first: a wait for a reply (WFI) ends only for an interrupt the CPU interface
    // lets through (group 1 on, priority mask open), as on hardware.
    gic::init(info.rx_virq);
    let mut rpc = Rpc::new(tx, rx);
    let me = ok(&mut rpc, Request::VmGetVmid(Empty), "VM_GET_VMID").word(0);
    if me != HLOS_VMID as u32 {
        fail(format_args!("VM_GET_VMID answered {me}"));
    }
    say!("VM_GET_VMID: {me}");
    let irqs = queue_interrupts(tx, rx);
    if irqs != 0 {
        fail(format_args!("message-queue interrupts: case {irqs}"));
    }
    say!(
        "a packet the RM puts in HLOS's receive queue raises its interrupt (SPI {}, taken \
         through the virtual GIC, ending its WFI with IRQs masked, PSTATE.I set) while it \
         holds packets; 12 requests sent before receiving get 12 replies in order",
        info.rx_virq.unwrap_or(0)
    );
    let spi = info.rx_virq.unwrap_or(0);
    let prio = interrupt_priorities(tx, rx, spi);
    if prio != 0 {
        fail(format_args!("virtual interrupt priorities: case {prio}"));
    }
    say!(
        "virtual interrupt priorities: with its receive SPI {spi} at priority 0x40 and the \
         virtual timer's PPI 27 at 0x80 (IPRIORITYR, read back) both pending and the priority \
         mask at 0x60, HLOS took the SPI and not the timer's interrupt; with the mask open, \
         the timer's"
    );
    let bad = bad_hypercalls(tx, rx);
    if bad != 0 {
        fail(format_args!("bad hypercall case {bad}"));
    }
    // The FP/SIMD registers survive a trap that runs the RM (a VM_GET_VMID request).
    let pk = [0x21u8, 1, 0x78, 0, 0x24, 0, 0, 0x56];
    let changed = fp_regs_survive(0x5EED_0000, &pk, 0, tx);
    let mut buf = [0u8; 240];
    let [err, size, _] = hvc::call(MSGQ_RECV, rx, buf.as_mut_ptr() as u64, 240, 0);
    if changed != 0 || err != OK || size != 16 || buf[2] != 0x78 || buf[12] != 3 {
        fail(format_args!(
            "FP/SIMD across a trap: changed {changed} err {err} size {size}"
        ));
    }
    say!(
        "bad hypercalls (wrong cap, size or flags, unmapped or page-crossing buffers, unknown \
         call, malformed RPC, small receive buffer) got Gunyah error codes and changed nothing; \
         FP/SIMD registers survived a trap"
    );
    // SVE predicates of its own from here to the end, on CPU 0, which the spinner's vCPUs
    // share with it (`sve.rs`).
    let sve = crate::sve::start(SVE_SEED);
    if let Some(Err(code)) = sve {
        fail(format_args!("SVE at HLOS's start: check {code}"));
    }

    // Two VMs and a golden image.
    let a = ok(
        &mut rpc,
        Request::VmAllocVmid(VmidReq::new(0)),
        "VM_ALLOC_VMID",
    )
    .word(0) as u16;
    let b = ok(
        &mut rpc,
        Request::VmAllocVmid(VmidReq::new(0)),
        "VM_ALLOC_VMID",
    )
    .word(0) as u16;
    let x = ok(
        &mut rpc,
        Request::VmAllocVmid(VmidReq::new(0)),
        "VM_ALLOC_VMID",
    )
    .word(0) as u16;
    let mut racers = [0u16; RACERS];
    for r in racers.iter_mut() {
        *r = ok(
            &mut rpc,
            Request::VmAllocVmid(VmidReq::new(0)),
            "VM_ALLOC_VMID",
        )
        .word(0) as u16;
    }
    let sp = ok(
        &mut rpc,
        Request::VmAllocVmid(VmidReq::new(0)),
        "VM_ALLOC_VMID",
    )
    .word(0) as u16;
    say!(
        "VM_ALLOC_VMID: VMs {a} and {b} (clones), {x} (attacker), {racers:?} (racers), {sp} \
         (spinner)"
    );
    for page in 0..GOLDEN_SIZE / 4096 {
        for word in 0..512 {
            let p = (GOLDEN_SRC + page * 4096 + word * 8) as *mut u64;
            // SAFETY: HLOS RAM, mapped read/write in HLOS's stage 2 and stage 1.
            unsafe { write_volatile(p, golden_word(page, word)) };
        }
    }
    let acl = [AclEntry::new(a, rights::RWX)];
    let sgl = [SglEntry::new(GOLDEN_SRC, GOLDEN_SIZE)];
    let parcel = ok(
        &mut rpc,
        Request::MemLend(mem_create(&acl, &sgl)),
        "MEM_LEND (golden source)",
    )
    .word(0);
    let golden = ok(
        &mut rpc,
        Request::GoldenSeal(GoldenSealReq::new(parcel)),
        "GOLDEN_SEAL",
    )
    .word(0);
    // Sealing took the source away from HLOS: reading it aborts; the RAM below does not.
    let esr = probe(GOLDEN_SRC, false);
    if !is_injected_abort(esr) || probe(GOLDEN_SRC - 4096, false) != 0 {
        fail(format_args!(
            "reading the sealed source did not abort (ESR {esr:#x})"
        ));
    }
    say!("sealed golden image {golden} (2 MiB of HLOS RAM); reading the source now aborts");

    let (img_start, img_loaded, img_total) = image();
    let dt_off = img_total; // page aligned (link.ld)
    let parcel_size = (dt_off + DT_ROOM).next_multiple_of(4096);
    if parcel_size > IMAGE_SPAN || CLONE_DTB.len().max(SPINNER_DTB.len()) as u64 > DT_ROOM {
        fail(format_args!("image parcel too large ({parcel_size:#x})"));
    }
    // One at a time (each one's CoW faults are timed with every other CPU idle), the
    // spinner last.
    let mut clones = [Clone::default(); 4 + RACERS];
    let mut results = [[0u64; 6]; 3];
    let order = [a, b, x, racers[0], racers[1], racers[2], sp];
    for (i, vm) in order.into_iter().enumerate() {
        let attacker = vm == x;
        let spinner = vm == sp;
        let racer = racers.contains(&vm);
        let dtb = if spinner {
            SPINNER_DTB
        } else if racer {
            RACER_DTB
        } else {
            CLONE_DTB
        };
        let victim = clones[0].vmid as u64 | (clones[0].mailbox as u64) << 16;
        let c = &mut clones[i];
        c.vmid = vm;
        if spinner {
            // Nothing but its mailbox.
        } else if attacker {
            // The attacker maps the golden image read-only: no copy-on-write, no pool.
            let map = GoldenMapReq::new(golden, vm, 0, 0, CLONE_GOLDEN_IPA, GOLDEN_SIZE, NO_GMEM);
            ok(&mut rpc, Request::GoldenMap(map), "GOLDEN_MAP (read-only)");
        } else {
            let pool = ok(
                &mut rpc,
                Request::GmemCreate(GmemCreateReq::new(64 * 4096, 0, vm)),
                "GMEM_CREATE",
            )
            .word(0);
            let bind = GmemBindReq::new(
                pool,
                vm,
                rights::RW,
                0,
                0,
                CLONE_SCRATCH_IPA,
                CLONE_SCRATCH_SIZE,
            );
            let _ = bind_flags::DEMAND_PAGED;
            ok(&mut rpc, Request::GmemBind(bind), "GMEM_BIND");
            let map = GoldenMapReq::new(
                golden,
                vm,
                map_flags::COW,
                0,
                CLONE_GOLDEN_IPA,
                GOLDEN_SIZE,
                pool,
            );
            ok(&mut rpc, Request::GoldenMap(map), "GOLDEN_MAP");
        }
        // The mailbox: shared read/write with the clone, which accepts it itself.
        let mb_ipa = MAILBOX_SRC + i as u64 * 4096;
        Mailbox::at(mb_ipa).clear();
        let acl = [
            AclEntry::new(HLOS_VMID, rights::RW),
            AclEntry::new(vm, rights::RW),
        ];
        let sgl = [SglEntry::new(mb_ipa, 4096)];
        c.mailbox = ok(
            &mut rpc,
            Request::MemShare(mem_create(&acl, &sgl)),
            "MEM_SHARE (mailbox)",
        )
        .word(0);
        // The image parcel: this image (the VM runs it at the same address), room for .bss
        // and the stack, then the VM's DT.
        let src = IMAGE_SRC + i as u64 * IMAGE_SPAN;
        // SAFETY: HLOS RAM (the staging area) and our own loaded image; no overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(
                img_start as *const u8,
                src as *mut u8,
                img_loaded as usize,
            );
            core::ptr::write_bytes(
                (src + img_loaded) as *mut u8,
                0,
                (parcel_size - img_loaded) as usize,
            );
            core::ptr::copy_nonoverlapping(dtb.as_ptr(), (src + dt_off) as *mut u8, dtb.len());
        }
        let acl = [AclEntry::new(vm, rights::RWX)];
        let sgl = [SglEntry::new(src, parcel_size)];
        c.image = ok(
            &mut rpc,
            Request::MemLend(mem_create(&acl, &sgl)),
            "MEM_LEND (image)",
        )
        .word(0);
        let layout = VmSetAddressLayoutReq::new(vm, 0, img_start, parcel_size);
        ok(
            &mut rpc,
            Request::VmSetAddressLayout(layout),
            "VM_SET_ADDRESS_LAYOUT",
        );
        let cfg = VmConfigImageReq::new(vm, 0, c.image, (0, img_total), (dt_off, dtb.len() as u64));
        ok(&mut rpc, Request::VmConfigImage(cfg), "VM_CONFIG_IMAGE");
        ok(&mut rpc, Request::VmInit(VmInitReq::new(vm)), "VM_INIT");
        let res = ok(
            &mut rpc,
            Request::VmGetHypResources(VmidReq::new(vm)),
            "VM_GET_HYP_RESOURCES",
        );
        let role = match (spinner, racer) {
            (true, _) => 2,
            (_, true) => 3,
            _ => attacker as u64,
        };
        for (reg, value) in [(1, c.mailbox as u64), (2, i as u64), (3, role), (4, victim)] {
            let ctx = VmSetBootContextReq::new(vm, 0, reg, value);
            ok(
                &mut rpc,
                Request::VmSetBootContext(ctx),
                "VM_SET_BOOT_CONTEXT",
            );
        }
        ok(&mut rpc, Request::VmStart(VmidReq::new(vm)), "VM_START");
        say!(
            "VM {vm} RUNNING: image parcel {} (this image + DT), mailbox parcel {}, {} hypervisor \
             resources (VM_CONFIG_IMAGE, VM_INIT, VM_START through RPC)",
            c.image,
            c.mailbox,
            res.word(0)
        );
        if spinner || racer {
            continue;
        }
        let r = wait_mailbox(i, c.vmid);
        results[i] = r;
        if c.vmid == x {
            say!(
                "attacker VM {x}: {} attacks stopped (a write to a read-only golden page, reads \
                 of HLOS's and EL2's memory, MEM_ACCEPT of VM {a}'s mailbox, VM_STOP of VM {a}, \
                 GOLDEN_MAP of an image it does not own, VM_ALLOC_VMID, a capability from \
                 another cspace, malformed fragments, the PMU and debug registers); the \
                 golden page is unchanged",
                r[0]
            );
            continue;
        }
        say!(
            "VM {} got VMID {} from VM_GET_VMID over the queues in its DT, accepted its \
             mailbox, read golden, wrote its copy, read it back",
            c.vmid,
            r[3]
        );
    }
    race(&clones[3..3 + RACERS]);
    let spun = spinner_check(3 + RACERS, sp);
    say!(
        "spinner VM {sp}: two vCPUs loop without trapping on HLOS's physical CPU, one \
         priority below HLOS (affinity-map <0 0>, sched-priority -1, sched-timeslice 3000 in \
         its VM config): while HLOS slept 10 ms both ran (counted {} and {}); while HLOS \
         computed 5 ms without trapping neither ran",
        spun[0],
        spun[1]
    );

    say!("clones' FP/SIMD registers survived traps to EL2 (CoW faults)");
    // Each clone wrote two golden pages: two CoW copies each; the attacker none.
    for c in &clones {
        let want = if c.vmid == x || c.vmid == sp {
            0
        } else if racers.contains(&c.vmid) {
            RACE_PAGES
        } else {
            2
        };
        let st = ok(
            &mut rpc,
            Request::VmMemStats(VmidReq::new(c.vmid)),
            "VM_MEM_STATS",
        );
        let copied = u64::from(st.word(4)) | u64::from(st.word(5)) << 32;
        if copied != want {
            fail(format_args!(
                "VM {}: VM_MEM_STATS says {copied} CoW copies, want {want}",
                c.vmid
            ));
        }
    }

    // Teardown.
    for c in &clones {
        let stop = VmStopReq::new(c.vmid, 1, 0);
        ok(&mut rpc, Request::VmStop(stop), "VM_STOP");
        ok(&mut rpc, Request::VmReset(VmidReq::new(c.vmid)), "VM_RESET");
    }
    for c in &clones {
        for h in [c.image, c.mailbox] {
            ok(
                &mut rpc,
                Request::MemReclaim(MemReleaseReq::new(h, 0)),
                "MEM_RECLAIM",
            );
        }
        ok(
            &mut rpc,
            Request::VmDeallocVmid(VmidReq::new(c.vmid)),
            "VM_DEALLOC_VMID",
        );
    }
    ok(
        &mut rpc,
        Request::GoldenRelease(GoldenReleaseReq::new(golden)),
        "GOLDEN_RELEASE",
    );
    for page in [0, WRITE_PAGE, SECOND_WRITE_PAGE, GOLDEN_SIZE / 4096 - 1]
        .into_iter()
        .chain(RACE_FIRST_PAGE..RACE_FIRST_PAGE + RACE_PAGES)
    {
        let va = GOLDEN_SRC + page * 4096;
        if probe(va, false) != 0 {
            fail(format_args!(
                "golden source page {page} still unreadable after GOLDEN_RELEASE"
            ));
        }
        // SAFETY: HLOS RAM, mapped again (the probe just read it).
        let w = unsafe { read_volatile(va as *const u64) };
        if w != golden_word(page, 0) {
            fail(format_args!("golden source page {page} changed: {w:#x}"));
        }
    }
    say!(
        "stopped (the spinner too: VM_STOP took it off its CPU), reset and deallocated the \
         seven VMs, reclaimed the parcels, released the golden image; its source reads back unchanged"
    );
    // Every copy is reported, in notifications batched per VM (at most one per copy).
    if rpc.cow_broken_ipas != COPIES || rpc.cow_broken > COPIES {
        fail(format_args!(
            "{} COW_BROKEN notifications with {} IPAs, want one IPA per copy ({COPIES})",
            rpc.cow_broken, rpc.cow_broken_ipas
        ));
    }
    // This scene's notification counts, before the next scene's.
    let (cow_broken, cow_ipas, fault_unserved) =
        (rpc.cow_broken, rpc.cow_broken_ipas, rpc.fault_unserved);
    // The Android-like set of vm-configs/, launched through RPC only (`configs.rs`).
    crate::configs::scene(&mut rpc);
    let [[f0, g0, n0, ..], [f1, g1, n1, ..], [stopped, ..]] = results;
    if f0 == 0 && g0 == 0 {
        say!("instruction counts unavailable (run QEMU with -icount shift=0)");
    } else {
        say!(
            "EL2 instructions per CoW fault (trap to ERET, RM included): first in the 2 MiB \
             golden block, which it splits: {f0} (VM {a}), {f1} (VM {b}); next in that block: \
             {n0} (VM {a}), {n1} (VM {b}); guest's own 4 KiB copy at EL1: {g0} (VM {a}), {g1} \
             (VM {b})"
        );
    }
    match sve {
        Some(_) => match crate::sve::check(SVE_SEED) {
            Ok(()) => say!(
                "SVE at 128 bits: the predicates and FFR of HLOS and of every VM that \
                 reported (clones, attacker, racers, the vm-configs VMs) started zero and kept \
                 their own values to the end, through traps to EL2 and the spinner's vCPUs on \
                 HLOS's CPU"
            ),
            Err(code) => fail(format_args!("SVE at HLOS's end: check {code}")),
        },
        None => say!("SVE: not on this CPU"),
    }
    say!(
        "summary: VMs launched 7; golden pages {}; CoW copies {COPIES}; COW_BROKEN to HLOS {} \
         IPAs in {} notifications; FAULT_UNSERVED to HLOS {}; isolation probes stopped 4; \
         attacks stopped {} (the attacker's {stopped}, the spinner's endless loop)",
        GOLDEN_SIZE / 4096,
        cow_ipas,
        cow_broken,
        fault_unserved,
        stopped + 1
    );
    say!("all checks passed; PSCI SYSTEM_OFF");
    hvc::system_off()
}
