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
use crate::hvc::{self, *};
use crate::layout::*;
use crate::mailbox::Mailbox;
use crate::rpc::{Reply, Rpc};
use crate::say;
use crate::start::{fp_regs_survive, is_injected_abort, probe};

/// HLOS's VMID.
pub const HLOS_VMID: u16 = 3;

/// The clones' DT (`clone.dts`, compiled by build.rs).
static CLONE_DTB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/clone.dtb"));

extern "C" {
    static __image_start: u8;
    static __image_end: u8;
    static __end: u8;
}

/// (start, loaded size, size with .bss and stack) of this image.
fn image() -> (u64, u64, u64) {
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
fn ok(rpc: &mut Rpc, req: Request<'_>, what: &str) -> Reply {
    match rpc.call(&req) {
        Ok(r) if r.err == RmError::Ok => r,
        Ok(r) => fail(format_args!("{what}: RM error {:?}", r.err)),
        Err(e) => fail(format_args!("{what}: no reply ({e:?})")),
    }
}

fn mem_create<'a>(acl: &'a [AclEntry], sgl: &'a [SglEntry]) -> MemCreate<'a> {
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
    let [api, flags0, _] = hvc::call(HYP_IDENTIFY, 0, 0, 0, 0);
    if api & 0x3FFF != 1 || flags0 & (1 << 2) == 0 {
        fail(format_args!(
            "hypervisor_identify: api {api:#x} flags {flags0:#x}"
        ));
    }
    let mut rpc = Rpc::new(tx, rx);
    let me = ok(&mut rpc, Request::VmGetVmid(Empty), "VM_GET_VMID").word(0);
    if me != HLOS_VMID as u32 {
        fail(format_args!("VM_GET_VMID answered {me}"));
    }
    say!("VM_GET_VMID: {me}");
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
    say!("VM_ALLOC_VMID: VMs {a} and {b} (clones), {x} (attacker)");
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
    if parcel_size > IMAGE_SPAN || CLONE_DTB.len() as u64 > DT_ROOM {
        fail(format_args!("image parcel too large ({parcel_size:#x})"));
    }
    let mut clones = [Clone::default(); 3];
    for (i, vm) in [a, b, x].into_iter().enumerate() {
        let attacker = vm == x;
        let victim = clones[0].vmid as u64 | (clones[0].mailbox as u64) << 16;
        let c = &mut clones[i];
        c.vmid = vm;
        if attacker {
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
            core::ptr::copy_nonoverlapping(
                CLONE_DTB.as_ptr(),
                (src + dt_off) as *mut u8,
                CLONE_DTB.len(),
            );
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
        let cfg = VmConfigImageReq::new(
            vm,
            0,
            c.image,
            (0, img_total),
            (dt_off, CLONE_DTB.len() as u64),
        );
        ok(&mut rpc, Request::VmConfigImage(cfg), "VM_CONFIG_IMAGE");
        ok(&mut rpc, Request::VmInit(VmInitReq::new(vm)), "VM_INIT");
        let res = ok(
            &mut rpc,
            Request::VmGetHypResources(VmidReq::new(vm)),
            "VM_GET_HYP_RESOURCES",
        );
        let role = attacker as u64;
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
    }

    // Wait for all three.
    let mut results = [[0u64; 6]; 3];
    for (i, c) in clones.iter().enumerate() {
        let mb = Mailbox::at(MAILBOX_SRC + i as u64 * 4096);
        let mut spins = 0u64;
        let (status, r) = loop {
            if let Some(done) = mb.poll() {
                break done;
            }
            spins += 1;
            if spins > 10_000_000 {
                fail(format_args!("VM {} never reported", c.vmid));
            }
            hvc::yield_now();
        };
        if status != 0 {
            fail(format_args!(
                "VM {} failed check {status} ({:#x} {:#x} {:#x})",
                c.vmid, r[0], r[1], r[2]
            ));
        }
        if r[3] != c.vmid as u64 {
            fail(format_args!(
                "VM {} was told VMID {} by VM_GET_VMID",
                c.vmid, r[3]
            ));
        }
        results[i] = r;
        if c.vmid == x {
            say!(
                "attacker VM {x}: {} attacks stopped (a write to a read-only golden page, reads \
                 of HLOS's and EL2's memory, MEM_ACCEPT of VM {a}'s mailbox, VM_STOP of VM {a}, \
                 GOLDEN_MAP of an image it does not own, VM_ALLOC_VMID, a capability from \
                 another cspace, malformed fragments); the golden page is unchanged",
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
    say!("clones' FP/SIMD registers survived traps to EL2 (CoW faults)");
    // Each clone wrote two golden pages: two CoW copies each; the attacker none.
    for c in &clones {
        let want = if c.vmid == x { 0 } else { 2 };
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
    for page in [0, WRITE_PAGE, SECOND_WRITE_PAGE, GOLDEN_SIZE / 4096 - 1] {
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
        "stopped, reset and deallocated the three VMs, reclaimed the parcels, released the golden \
         image; its source reads back unchanged"
    );
    if rpc.cow_broken != 4 {
        fail(format_args!(
            "{} COW_BROKEN notifications, want one per copy (4)",
            rpc.cow_broken
        ));
    }
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
    say!(
        "summary: VMs launched 3; golden pages {}; CoW copies 4; COW_BROKEN to HLOS {}; \
         FAULT_UNSERVED to HLOS {}; isolation probes stopped 4; attacks stopped {stopped}",
        GOLDEN_SIZE / 4096,
        rpc.cow_broken,
        rpc.fault_unserved
    );
    say!("all checks passed; PSCI SYSTEM_OFF");
    hvc::system_off()
}
