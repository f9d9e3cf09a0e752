//! The EL1 test guests. They run with their stage-1 MMU on (`boot::GUEST_L1`), touch only
//! their stack, the image's code and read-only data, and the memory their VM maps, and talk
//! to EL2 only through `hvc #0` (Gunyah SMCCC hypercalls). No statics, no panics: a failed
//! check ends the vCPU with a nonzero status.

use core::ptr::{read_volatile, write_volatile};

use crate::hypercalls::{
    ADDR_INVALID, ARGUMENT_INVALID, ARGUMENT_SIZE, CSPACE_CAP_NULL, HYP_IDENTIFY, MSGQUEUE_EMPTY,
    MSGQ_RECV, MSGQ_SEND, RM_RX_CAP, RM_TX_CAP, UNIMPLEMENTED, VCPU_POWEROFF,
};
use crate::layout::*;
use crate::pmu;

const VM_ALLOC_VMID: u32 = 0x5600_0001;
const MEM_LEND: u32 = 0x5100_0012;
const MEM_SHARE: u32 = 0x5100_0013;
const GMEM_CREATE: u32 = 0x4700_0001;
const GMEM_BIND: u32 = 0x4700_0002;
const GOLDEN_SEAL: u32 = 0x4700_0010;
const GOLDEN_MAP: u32 = 0x4700_0011;
/// Rights (ACL and GMEM_BIND perms).
const RWX: u8 = 7;
const RX: u8 = 5;
const RW: u8 = 6;
const VM_GET_VMID: u32 = 0x5600_0024;
const VM_START: u32 = 0x5600_0004;
const VM_DEALLOC: u32 = 0x5600_0002;
const VM_STOP: u32 = 0x5600_0005;
const VM_RESET: u32 = 0x5600_0006;
const MEM_RECLAIM: u32 = 0x5100_0015;
const GOLDEN_RELEASE: u32 = 0x4700_0013;
const VM_CONFIG_IMAGE: u32 = 0x5600_0009;
const VM_INIT: u32 = 0x5600_000B;
/// The clones' VM configuration DT (`clone.dts`, compiled by build.rs).
static CLONE_DTB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/clone.dtb"));
/// RPC message types (header byte 1, low two bits).
const TYPE_REQUEST: u8 = 1;
const TYPE_REPLY: u8 = 2;

extern "C" {
    /// Load from `va`: 0, or the ESR_EL1 of the abort it took (asm in `boot.rs`).
    fn guest_probe_read(va: u64) -> u64;
    /// Store zero to `va`: 0, or the ESR_EL1 of the abort it took.
    fn guest_probe_write(va: u64) -> u64;
    /// Fill q0-q31, msgqueue_send `len` bytes at `buf` (if `len` != 0), store `seed` at
    /// `store_va` (if not 0), check q0-q31: 0, or 1 + the first register that changed.
    fn guest_fp_survives(seed: u64, buf: u64, len: u64, store_va: u64) -> u64;
}

/// Whether `esr` is the synchronous external abort (data abort, current EL) the board injects.
fn is_injected_abort(esr: u64) -> bool {
    esr >> 26 == 0x25 && esr & 0x3F == 0x10
}

/// Probe a load (`write` false) or a store of zero at `va`; the ESR_EL1 of its abort or 0.
fn probe(va: u64, write: bool) -> u64 {
    // SAFETY: the probes touch only `va`; an abort there comes back as its ESR (the EL1
    // vectors skip the access), a completed store writes zero to memory the caller chose.
    unsafe {
        if write {
            guest_probe_write(va)
        } else {
            guest_probe_read(va)
        }
    }
}

/// One SMCCC hypercall: x0 = function ID, x1..x4 arguments; returns x0..x2.
#[inline(always)]
fn hvc(id: u64, a1: u64, a2: u64, a3: u64, a4: u64) -> [u64; 3] {
    let (r0, r1, r2): (u64, u64, u64);
    #[cfg(target_arch = "aarch64")]
    // SAFETY: a hypercall to EL2, which preserves every register but x0..x3.
    unsafe {
        core::arch::asm!("hvc #0",
            inout("x0") id => r0, inout("x1") a1 => r1, inout("x2") a2 => r2,
            inout("x3") a3 => _, in("x4") a4, options(nostack))
    };
    #[cfg(not(target_arch = "aarch64"))]
    {
        (r0, r1, r2) = (id, a1 ^ a2 ^ a3 ^ a4, 0);
    }
    [r0, r1, r2]
}

/// vcpu_poweroff of the last vCPU, reporting `status` (0 = every check passed) and five
/// result words to the board in x3..x8 (a board extension of the call).
fn poweroff(status: u64, r: [u64; 5]) -> ! {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: the board never resumes a powered-off vCPU.
    unsafe {
        core::arch::asm!("hvc #0", in("x0") VCPU_POWEROFF, in("x1") 0u64, in("x2") 1u64,
            in("x3") status, in("x4") r[0], in("x5") r[1], in("x6") r[2], in("x7") r[3],
            in("x8") r[4], options(noreturn))
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        let _ = (status, r);
        loop {}
    }
}

/// A request payload being written (little-endian fields).
struct Payload {
    buf: [u8; 232],
    len: usize,
}

impl Payload {
    fn new() -> Self {
        Payload {
            buf: [0; 232],
            len: 0,
        }
    }
    fn put(&mut self, bytes: &[u8]) -> &mut Self {
        if let Some(dst) = self.buf.get_mut(self.len..self.len + bytes.len()) {
            dst.copy_from_slice(bytes);
            self.len += bytes.len();
        } else {
            self.len = usize::MAX; // too long: `bytes()` fails the call
        }
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.put(&v.to_le_bytes())
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.put(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.put(&v.to_le_bytes())
    }
    fn bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[0; 233])
    }
}

/// A MEM_SHARE / MEM_LEND body (rm-rpc-abi §3.1): normal memory, no flags, label 0, the
/// ACL, one SGL entry and an empty attribute list.
fn mem_create(acl: &[(u16, u8)], ipa: u64, size: u64) -> Payload {
    let mut p = Payload::new();
    p.put(&[0, 0, 0, 0]).u32(0).u16(acl.len() as u16).u16(0);
    for &(vmid, rights) in acl {
        p.u16(vmid).put(&[rights, 0]);
    }
    p.u16(1).u16(0).u64(ipa).u64(size).u16(0).u16(0);
    p
}

/// One RM RPC call: send the request (one message), then receive until the matching reply.
/// Returns the reply's error code and its first data word, or None on a transport error.
fn rpc(seq: u16, msg_id: u32, payload: &[u8]) -> Option<(u32, u32)> {
    let mut pk = [0u8; 240];
    pk[0] = 0x21; // header words 2, API version 1
    pk[1] = TYPE_REQUEST;
    pk[2..4].copy_from_slice(&seq.to_le_bytes());
    pk[4..8].copy_from_slice(&msg_id.to_le_bytes());
    let n = 8 + payload.len();
    pk.get_mut(8..n)?.copy_from_slice(payload);
    let [err, _, _] = hvc(MSGQ_SEND, RM_TX_CAP, n as u64, pk.as_ptr() as u64, 1);
    if err != 0 {
        return None;
    }
    for _ in 0..64 {
        let mut rx = [0u8; 240];
        let [err, size, _] = hvc(MSGQ_RECV, RM_RX_CAP, rx.as_mut_ptr() as u64, 240, 0);
        if err == MSGQUEUE_EMPTY {
            return None;
        }
        if err != 0 || !(12..=240).contains(&size) {
            return None;
        }
        let is_reply = rx[1] & 3 == TYPE_REPLY
            && rx[2..4] == seq.to_le_bytes()
            && rx[4..8] == msg_id.to_le_bytes();
        if !is_reply {
            continue; // a notification
        }
        let word = |o: usize| u32::from_le_bytes([rx[o], rx[o + 1], rx[o + 2], rx[o + 3]]);
        let data = if size >= 16 { word(12) } else { 0 };
        return Some((word(8), data));
    }
    None
}

/// Bad hypercalls get Gunyah's error codes and change nothing: no request reaches the RM, a
/// malformed RPC packet is dropped, a reply that does not fit stays queued. Returns the
/// number of the first case that went wrong, or 0.
fn bad_hypercalls() -> u64 {
    // A valid VM_GET_VMID request, seq 0x77.
    let pk = [0x21u8, 1, 0x77, 0, 0x24, 0, 0, 0x56];
    let p = pk.as_ptr() as u64;
    let unmapped = HEAP.0; // EL2's heap: not in HLOS's stage 2
    let crossing = HLOS_RAM.0 + HLOS_RAM.1 - 8; // last 8 bytes of HLOS RAM, then the partition
    let cases = [
        (MSGQ_SEND, 7, 8, p, 0, CSPACE_CAP_NULL),
        (MSGQ_SEND, RM_RX_CAP, 8, p, 0, CSPACE_CAP_NULL),
        (MSGQ_SEND, RM_TX_CAP, 0, p, 0, ARGUMENT_SIZE),
        (MSGQ_SEND, RM_TX_CAP, 241, p, 0, ARGUMENT_SIZE),
        (MSGQ_SEND, RM_TX_CAP, 8, p, 2, ARGUMENT_INVALID),
        (MSGQ_SEND, RM_TX_CAP, 8, unmapped, 0, ADDR_INVALID),
        (MSGQ_SEND, RM_TX_CAP, 16, crossing, 0, ADDR_INVALID),
        (MSGQ_RECV, RM_TX_CAP, p, 240, 0, CSPACE_CAP_NULL),
        (MSGQ_RECV, RM_RX_CAP, p, 240, 0, MSGQUEUE_EMPTY),
        (0xC600_8FFF, 0, 0, 0, 0, UNIMPLEMENTED),
    ];
    for (i, &(id, a1, a2, a3, a4, want)) in cases.iter().enumerate() {
        if hvc(id, a1, a2, a3, a4)[0] != want {
            return 1 + i as u64;
        }
    }
    // A malformed RPC packet (unknown API version) is accepted by the queue, dropped by the RM.
    let junk = [0xFFu8; 12];
    if hvc(MSGQ_SEND, RM_TX_CAP, 12, junk.as_ptr() as u64, 1)[0] != 0 {
        return 20;
    }
    let mut rx = [0u8; 240];
    let rxp = rx.as_mut_ptr() as u64;
    if hvc(MSGQ_RECV, RM_RX_CAP, rxp, 240, 0)[0] != MSGQUEUE_EMPTY {
        return 21;
    }
    // A reply that does not fit the buffer, or a buffer EL2 cannot write, stays queued.
    if hvc(MSGQ_SEND, RM_TX_CAP, 8, p, 1)[0] != 0 {
        return 22;
    }
    if hvc(MSGQ_RECV, RM_RX_CAP, rxp, 8, 0)[0] != ARGUMENT_SIZE {
        return 23;
    }
    if hvc(MSGQ_RECV, RM_RX_CAP, unmapped, 240, 0)[0] != ADDR_INVALID {
        return 24;
    }
    let [err, size, more] = hvc(MSGQ_RECV, RM_RX_CAP, rxp, 240, 0);
    let want = [0x21, 2, 0x77, 0, 0x24, 0, 0, 0x56, 0, 0, 0, 0, 3, 0, 0, 0];
    if err != 0 || size != 16 || more != 0 || rx[..16] != want {
        return 25;
    }
    0
}

/// An RPC that must succeed (status `check` otherwise): its first reply data word.
fn rpc_ok(seq: &mut u16, msg_id: u32, payload: &[u8], check: u64) -> u32 {
    *seq = seq.wrapping_add(1);
    match rpc(*seq, msg_id, payload) {
        Some((0, v)) => v,
        Some((e, _)) => poweroff(check, [e as u64, msg_id as u64, 0, 0, 0]),
        None => poweroff(check, [u64::MAX, msg_id as u64, 0, 0, 0]),
    }
}

/// HLOS (VMID 3): identify the hypervisor, ask the RM for its own VMID, allocate two VMs,
/// fill the golden source in its RAM, then through RPC: lend it and seal it golden, share the
/// image's code and read-only data (`shared` = (base, size)) with both VMs, and give each VM
/// a pool, an eager stack binding and a copy-on-write mapping of the golden image, and
/// launch both (VM_CONFIG_IMAGE with a lent image parcel holding their DT, VM_INIT, VM_START).
/// Reports (status, [own vmid, vm a, vm b, code parcel handle, golden id]).
pub extern "C" fn hlos_main(shared_base: u64, shared_size: u64) -> ! {
    let [info, flags0, _] = hvc(HYP_IDENTIFY, 0, 0, 0, 0);
    if info & 0x3FFF != 1 || flags0 & (1 << 2) == 0 {
        poweroff(1, [info, flags0, 0, 0, 0]);
    }
    let mut seq = 0;
    let me = rpc_ok(&mut seq, VM_GET_VMID, &[], 2) as u64;
    let bad = bad_hypercalls();
    if bad != 0 {
        poweroff(12, [bad, 0, 0, 0, 0]);
    }
    // The FP/SIMD registers survive a trap that runs the RM (a VM_GET_VMID request).
    let pk = [0x21u8, 1, 0x78, 0, 0x24, 0, 0, 0x56];
    // SAFETY: the routine touches only q0-q31, x0-x15 (caller-saved or restored by it) and
    // the 8 bytes of `pk`, which it hands to msgqueue_send.
    let changed = unsafe { guest_fp_survives(0x5EED_0000, pk.as_ptr() as u64, 8, 0) };
    let mut rx = [0u8; 240];
    let [err, size, _] = hvc(MSGQ_RECV, RM_RX_CAP, rx.as_mut_ptr() as u64, 240, 0);
    if changed != 0 || err != 0 || size != 16 || rx[2] != 0x78 || rx[12] != 3 {
        poweroff(17, [changed, err, size, 0, 0]);
    }
    let a = rpc_ok(&mut seq, VM_ALLOC_VMID, &[0, 0, 0, 0], 3) as u16;
    let b = rpc_ok(&mut seq, VM_ALLOC_VMID, &[0, 0, 0, 0], 4) as u16;
    for page in 0..GOLDEN_SIZE / 4096 {
        for word in 0..512 {
            let p = (GOLDEN_SRC + page * 4096 + word * 8) as *mut u64;
            // SAFETY: HLOS RAM, mapped read/write in HLOS's stage 2.
            unsafe { write_volatile(p, golden_word(page, word)) };
        }
    }
    let lend = mem_create(&[(a, RWX)], GOLDEN_SRC, GOLDEN_SIZE);
    let parcel = rpc_ok(&mut seq, MEM_LEND, lend.bytes(), 5);
    let golden = rpc_ok(
        &mut seq,
        GOLDEN_SEAL,
        Payload::new().u32(parcel).u32(0).bytes(),
        6,
    );
    // Sealing took the source away from HLOS: reading it aborts; the RAM below does not.
    let esr = probe(GOLDEN_SRC, false);
    if !is_injected_abort(esr) || probe(GOLDEN_SRC - 4096, false) != 0 {
        poweroff(11, [esr, 0, 0, 0, 0]);
    }
    let share = mem_create(&[(3, RWX), (a, RX), (b, RX)], shared_base, shared_size);
    let code = rpc_ok(&mut seq, MEM_SHARE, share.bytes(), 7);
    for vm in [a, b] {
        let mut create = Payload::new();
        create.u64(64 * 4096).u32(0).u16(vm).u16(0);
        let pool = rpc_ok(&mut seq, GMEM_CREATE, create.bytes(), 8);
        let mut bind = Payload::new();
        bind.u32(pool).u16(vm).put(&[RW, 0]);
        bind.u64(0).u64(CLONE_STACK_IPA).u64(CLONE_STACK_SIZE);
        rpc_ok(&mut seq, GMEM_BIND, bind.bytes(), 9);
        let mut map = Payload::new();
        map.u32(golden).u16(vm).u16(1); // COW
        map.u64(0)
            .u64(CLONE_GOLDEN_IPA)
            .u64(GOLDEN_SIZE)
            .u32(pool)
            .u32(0);
        rpc_ok(&mut seq, GOLDEN_MAP, map.bytes(), 10);
    }
    let mut images = [0u32; 2];
    // Launch both: image parcel (the DT) lent to the VM, VM_CONFIG_IMAGE, VM_INIT, VM_START.
    for (i, vm) in [a, b].into_iter().enumerate() {
        let img = CLONE_IMAGE_SRC + i as u64 * CLONE_IMAGE_SIZE;
        for (k, byte) in CLONE_DTB.iter().enumerate() {
            // SAFETY: HLOS RAM, mapped read/write in HLOS's stage 2.
            unsafe { write_volatile((img + k as u64) as *mut u8, *byte) };
        }
        let lend = mem_create(&[(vm, RWX)], img, CLONE_IMAGE_SIZE);
        let image = rpc_ok(&mut seq, MEM_LEND, lend.bytes(), 13);
        images[i] = image;
        let mut cfg = Payload::new();
        cfg.u16(vm).u16(0).u32(image).u64(0).u64(CLONE_IMAGE_SIZE);
        cfg.u64(0).u64(CLONE_DTB.len() as u64);
        rpc_ok(&mut seq, VM_CONFIG_IMAGE, cfg.bytes(), 14);
        let mut id = Payload::new();
        id.u16(vm).u16(0);
        rpc_ok(&mut seq, VM_INIT, id.bytes(), 15);
        rpc_ok(&mut seq, VM_START, id.bytes(), 16);
    }
    poweroff(
        0,
        [
            me,
            a as u64,
            b as u64,
            code as u64 | (golden as u64) << 32,
            images[0] as u64 | (images[1] as u64) << 32,
        ],
    )
}

/// HLOS again, after the clones ran: tear everything down through RPC (VM_STOP, VM_RESET,
/// MEM_RECLAIM of the image and code parcels, VM_DEALLOC, GOLDEN_RELEASE), then check that the
/// golden source came home: HLOS reads it again, unchanged. Arguments as HLOS reported them:
/// `vms` = a | b << 16, `parcels` = code | golden << 32, `images` = image a | image b << 32.
/// Reports (status, [0; 5]).
pub extern "C" fn hlos_teardown(vms: u64, parcels: u64, images: u64) -> ! {
    let (a, b) = (vms as u16, (vms >> 16) as u16);
    let (code, golden) = (parcels as u32, (parcels >> 32) as u32);
    let mut seq = 0x100;
    for vm in [a, b] {
        let mut stop = Payload::new();
        stop.u16(vm).put(&[1, 0]).u32(0);
        rpc_ok(&mut seq, VM_STOP, stop.bytes(), 40);
        rpc_ok(
            &mut seq,
            VM_RESET,
            Payload::new().u16(vm).u16(0).bytes(),
            41,
        );
    }
    for handle in [images as u32, (images >> 32) as u32, code] {
        let mut reclaim = Payload::new();
        reclaim.u32(handle).put(&[0, 0, 0, 0]);
        rpc_ok(&mut seq, MEM_RECLAIM, reclaim.bytes(), 42);
    }
    for vm in [a, b] {
        rpc_ok(
            &mut seq,
            VM_DEALLOC,
            Payload::new().u16(vm).u16(0).bytes(),
            43,
        );
    }
    rpc_ok(
        &mut seq,
        GOLDEN_RELEASE,
        Payload::new().u32(golden).u32(0).bytes(),
        44,
    );
    for page in [0, WRITE_PAGE, SECOND_WRITE_PAGE, GOLDEN_SIZE / 4096 - 1] {
        let va = GOLDEN_SRC + page * 4096;
        if probe(va, false) != 0 {
            poweroff(45, [page, 0, 0, 0, 0]);
        }
        // SAFETY: HLOS RAM, mapped again (the probe just read it).
        let w = unsafe { read_volatile(va as *const u64) };
        if w != golden_word(page, 0) {
            poweroff(46, [page, w, 0, 0, 0]);
        }
    }
    poweroff(0, [0; 5])
}

fn golden_va(page: u64, word: u64) -> *mut u64 {
    (CLONE_GOLDEN_VA + page * 4096 + word * 8) as *mut u64
}

fn read(page: u64, word: u64) -> u64 {
    // SAFETY: the clone's golden mapping (read-only or its own copy), through its stage 1.
    unsafe { read_volatile(golden_va(page, word)) }
}

/// A clone: `index` 0 or 1; `shared_base` is the start of the code HLOS shared with it.
/// Asks the RM for its VMID, probes isolation, reads the golden image, writes half of page
/// `WRITE_PAGE` (the first store takes a stage-2 permission fault that EL2 serves with a
/// private copy), reads its data and the rest of the copied golden page back, writes one word
/// of `SECOND_WRITE_PAGE`, and times its own copy of a 4 KiB page. Reports (status, [EL2
/// instructions during the first faulting store, EL1 instructions of its own 4 KiB copy, EL2
/// instructions during the second faulting store, the VMID the RM told it, 0]).
pub extern "C" fn clone_main(index: u64, shared_base: u64) -> ! {
    // Its own RPC link: the RM answers VM_GET_VMID with this VM's VMID.
    let me = match rpc(1, VM_GET_VMID, &[]) {
        Some((0, v)) => v as u64,
        other => poweroff(19, [other.map_or(u64::MAX, |r| r.0 as u64), 0, 0, 0, 0]),
    };
    // Isolation probes: the golden mapping reads; writing the shared code, reading HLOS's
    // RAM (the sealed source's IPA) and EL2's heap all abort.
    if probe(golden_va(0, 0) as u64, false) != 0 {
        poweroff(30, [0; 5]);
    }
    for (check, va, write) in [
        (31, shared_base, true),
        (32, GOLDEN_SRC, false),
        (33, HEAP.0, false),
    ] {
        let esr = probe(va, write);
        if !is_injected_abort(esr) {
            poweroff(check, [esr, va, 0, 0, 0]);
        }
    }
    // The golden data, the page about to be written included (the other clone's earlier
    // write must not show).
    let mut page = 0;
    while page < GOLDEN_SIZE / 4096 {
        if read(page, 0) != golden_word(page, 0) || read(page, 511) != golden_word(page, 511) {
            poweroff(20, [page, read(page, 0), 0, 0, 0]);
        }
        page += 31;
    }
    for w in 0..512 {
        if read(WRITE_PAGE, w) != golden_word(WRITE_PAGE, w) {
            poweroff(21, [w, read(WRITE_PAGE, w), 0, 0, 0]);
        }
    }
    // The write: the first store faults to EL2 and is retried there.
    let before = pmu::el2_instructions();
    // SAFETY: the clone's copy-on-write golden mapping.
    unsafe { write_volatile(golden_va(WRITE_PAGE, 0), clone_word(index, 0)) };
    let el2 = pmu::el2_instructions().wrapping_sub(before);
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
            poweroff(22, [w, read(WRITE_PAGE, w), 0, 0, 0]);
        }
    }
    for p in [WRITE_PAGE - 1, WRITE_PAGE + 1] {
        if read(p, 0) != golden_word(p, 0) || read(p, 511) != golden_word(p, 511) {
            poweroff(23, [p, read(p, 0), 0, 0, 0]);
        }
    }
    // A second CoW fault in the same 2 MiB block (already split by the first).
    // The store goes through `guest_fp_survives`: the FP/SIMD registers must survive the
    // CoW fault too.
    let before = pmu::el2_instructions();
    // SAFETY: as in HLOS's use; the store hits the clone's copy-on-write golden mapping.
    let changed = unsafe {
        guest_fp_survives(
            clone_word(index, 0),
            0,
            0,
            golden_va(SECOND_WRITE_PAGE, 0) as u64,
        )
    };
    let el2_next = pmu::el2_instructions().wrapping_sub(before);
    if changed != 0 {
        poweroff(26, [changed, 0, 0, 0, 0]);
    }
    if read(SECOND_WRITE_PAGE, 0) != clone_word(index, 0)
        || read(SECOND_WRITE_PAGE, 1) != golden_word(SECOND_WRITE_PAGE, 1)
    {
        poweroff(
            25,
            [
                read(SECOND_WRITE_PAGE, 0),
                read(SECOND_WRITE_PAGE, 1),
                0,
                0,
                0,
            ],
        );
    }
    // The guest's own 4 KiB copy (golden page -> its scratch page), for comparison.
    let dst = CLONE_STACK_IPA as *mut u8;
    let c0 = pmu::el1_instructions();
    // SAFETY: source is the golden mapping, destination the clone's scratch page (the first
    // 4 KiB of its stack binding, below the stack).
    unsafe { core::ptr::copy_nonoverlapping(golden_va(COPY_PAGE, 0) as *const u8, dst, 4096) };
    let own = pmu::el1_instructions().wrapping_sub(c0);
    // SAFETY: the scratch page just written.
    let last = unsafe { read_volatile((CLONE_STACK_IPA + 4088) as *const u64) };
    if last != golden_word(COPY_PAGE, 511) {
        poweroff(24, [last, 0, 0, 0, 0]);
    }
    poweroff(0, [el2, own, el2_next, me, 0])
}
