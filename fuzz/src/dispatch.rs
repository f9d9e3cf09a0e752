//! The `rm_dispatch` target: the RM fed as several VMs at once.
//!
//! Each input runs on a fresh [`World`] (built through the RM's own request path on the small
//! simulator, [`gunyah_rm::sim::small_rm`]):
//! * HLOS (3) manages everything; it owns the golden image [`World::g`] (64 KiB of its RAM lent
//!   to T and sealed), the parcel [`World::x`] (a page lent to T, not accepted) and the pools.
//! * T (0x80): RUNNING; the golden image mapped copy-on-write at [`CLONE_IPA`] paid by pool
//!   [`World::p`], two eager pages of that pool at [`BIND_IPA`]; it accepted a page HLOS donated
//!   and lent it on to U as [`World::y`].
//! * U (0x81): READY.
//! * W (0x82): RUNNING; the golden image mapped read-only (no CoW) at [`CLONE_IPA`], and its pool
//!   [`World::q`] bound demand-paged (16 pages) at [`BIND_IPA`].
//! * L (0x83): LOAD, so it has no RM message queue yet.
//!
//! The input is a sequence of operations (see [`Op`] for the byte format): requests as any of
//! these VMs (whole, fragmented by the abi crate, or only their first fragments), raw packets,
//! structured requests with fuzzed fields (memparcels, gmem, golden, lifecycle, SIM accesses),
//! a vCPU's reads and writes ([`Rm::vm_read`], [`Rm::vm_write`]) and client disconnects.
//!
//! The isolation checker ([`Rm::check_isolation`]) runs after every [`CHECK_EVERY`] operations
//! and at the end of every input (it walks every VM's tables: running it after every operation
//! made the target ten times slower; a violation persists until the end of the input anyway).
//! After every operation [`World::settle`] checks:
//! * every packet the RM sends is 8..=240 bytes, goes to a VM that has an RM message queue
//!   ([`Rm::link`]), arrives unfragmented-interleaved, and decodes with the abi crate (a reply for
//!   its request ID, a known notification);
//! * every request that completed (by an independent reassembler per sender) from a VM whose
//!   queue exists gets exactly one reply with its seq and ID, and nothing else is replied;
//! * a request refused with an error changes no record and sends no notification (the RM's
//!   records compared before and after), except the few whose failures the spec lets change
//!   state ([`ERROR_MAY_CHANGE_STATE`]).

use std::collections::BTreeMap;

use gunyah_rm::platform::PhysMem;
use gunyah_rm::sim::{small_rm, SimPlatform};
use gunyah_rm::vm::LinkId;
use gunyah_rm::Rm;
use gunyah_rm_abi::ext::{
    GmemBindReq, GmemCreateReq, GmemUnbindReq, GoldenMapReq, GoldenReleaseReq, GoldenSealReq,
    GoldenUnmapReq, SimVmReadReq, SimVmWrite,
};
use gunyah_rm_abi::mem::{AclEntry, MemAccept, MemCreate, MemNotify, MemReleaseReq, SglEntry};
use gunyah_rm_abi::vm::{
    VmConfigImageReq, VmExitReq, VmInitReq, VmSetStatusReq, VmStopReq, VmidReq,
};
use gunyah_rm_abi::vm_id::{VmGuidReq, VmIdChars};
use gunyah_rm_abi::{
    Encode, Fragmenter, MsgId, MsgType, Notification, Reassembler, Received, Reply, Request,
};

use crate::input::{Input, Script};

/// HLOS's VMID.
pub const HLOS: u16 = 3;
/// The VMIDs the world gives its VMs (the first dynamic VMIDs, in allocation order).
pub const T: u16 = 0x80;
/// A READY VM.
pub const U: u16 = 0x81;
/// A RUNNING VM with a read-only golden mapping and a demand-paged pool.
pub const W: u16 = 0x82;
/// A VM in LOAD (no RM message queue).
pub const L: u16 = 0x83;
/// The named senders, by index (see [`sender`]).
pub const SENDERS: [u16; 5] = [HLOS, T, U, W, L];

const PAGE: u64 = 0x1000;
/// HLOS RAM on the small simulator: 4 MiB here.
pub const HLOS_RAM: u64 = 0x4000_0000;
/// Where each VM's one-page DT lies in HLOS RAM (one page per VM from here).
const DT_BASE: u64 = HLOS_RAM;
/// HLOS RAM sealed as the golden image (16 pages).
pub const GOLDEN_SRC: u64 = 0x4010_0000;
/// Size of the golden image.
pub const GOLDEN_SIZE: u64 = 16 * PAGE;
/// HLOS RAM page lent to T (X).
pub const X_PA: u64 = 0x4020_0000;
/// HLOS RAM page donated to T.
pub const DONATED_PA: u64 = 0x4020_1000;
/// HLOS RAM left for the fuzzer to share, lend and donate.
pub const FREE_RAM: u64 = 0x4030_0000;
/// Where T and W map the golden image.
pub const CLONE_IPA: u64 = 0x8000_0000;
/// Where T and W bind pool pages.
pub const BIND_IPA: u64 = 0x9000_0000;
/// Where the RM maps accepted parcels when it picks (`RmConfig::ipa_alloc_base`).
pub const ALLOC_IPA: u64 = 0x1_0000_0000;
/// Interesting IPAs an operation picks from (see [`ipa`]; the `R_` constants index it).
pub const IPAS: [u64; 9] = [
    HLOS_RAM,
    GOLDEN_SRC,
    X_PA,
    FREE_RAM,
    CLONE_IPA,
    BIND_IPA,
    ALLOC_IPA,
    0,
    0xFF_FFFF_F000,
];
const R_HLOS: u8 = 0;
const R_X: u8 = 2;
const R_FREE: u8 = 3;
const R_CLONE: u8 = 4;
const R_BIND: u8 = 5;
const R_ALLOC: u8 = 6;

/// Requests whose failures may change state (spec §12: a failed VM_CONFIG_IMAGE, VM_INIT or
/// VM_START moves the VM to INIT_FAILED), and the SIM accesses, which like a vCPU's may have
/// written the bytes before the page that faulted and made copies on the way.
pub const ERROR_MAY_CHANGE_STATE: [MsgId; 6] = [
    MsgId::VM_CONFIG_IMAGE,
    MsgId::VM_AUTH_IMAGE,
    MsgId::VM_INIT,
    MsgId::VM_START,
    MsgId::SIM_VM_READ,
    MsgId::SIM_VM_WRITE,
];

/// Requests whose reply's first word is a new handle or ID.
pub const MAKES_ID: [MsgId; 7] = [
    MsgId::MEM_SHARE,
    MsgId::MEM_LEND,
    MsgId::MEM_DONATE,
    MsgId::GMEM_CREATE,
    MsgId::GMEM_BIND,
    MsgId::GOLDEN_SEAL,
    MsgId::VM_ALLOC_VMID,
];

/// The VM an operation acts as: a named sender, or (index 5 on) a dynamic VMID.
pub fn sender(b: u8) -> u16 {
    let i = b as usize % 32;
    match SENDERS.get(i) {
        Some(v) => *v,
        None => 0x80 + (i - SENDERS.len()) as u16 + SENDERS.len() as u16 - 1,
    }
}

/// An IPA: one of [`IPAS`] plus `u16 × 16` bytes, or (selector ≥ 8) a raw `u64`.
pub fn ipa(inp: &mut Input<'_>) -> u64 {
    let sel = inp.u8() as usize;
    match IPAS.get(sel) {
        Some(base) => base.wrapping_add(u64::from(inp.u16()) * 16),
        None => inp.u64(),
    }
}

/// A message that came out of the RM, reassembled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// Destination.
    pub to: u16,
    /// Reply or notification.
    pub ty: MsgType,
    /// Sequence number.
    pub seq: u16,
    /// Message ID.
    pub msg_id: MsgId,
    /// The logical payload (a reply's starts with its error code).
    pub payload: Vec<u8>,
}

/// One sender's view as the harness tracks it: the link its packets were reassembled under.
struct Mirror {
    link: LinkId,
    rx: Box<Reassembler>,
}

/// The RM and what the harness knows of it.
pub struct World {
    /// The RM under test.
    pub rm: Rm<SimPlatform>,
    /// The golden image.
    pub g: u32,
    /// Parcel X (HLOS page lent to T, not accepted).
    pub x: u32,
    /// Parcel Y (T's donated page lent to U).
    pub y: u32,
    /// T's pool.
    pub p: u32,
    /// W's pool.
    pub q: u32,
    /// The IDs the last two successful requests that make one returned (the newest first;
    /// [`MAKES_ID`]), for the next structured requests.
    pub ids: [u32; 2],
    seq: u16,
    mirrors: BTreeMap<u16, Mirror>,
    /// Requests completed since the last settle: (from, seq, msg_id).
    expected: Vec<(u16, u16, MsgId)>,
    /// Everything the RM sent (kept only when `record` is set, for seeds).
    pub log: Vec<Sent>,
    record: bool,
    /// Print every operation and message (`GUNYAH_RM_FUZZ_TRACE` set), to read a crash.
    trace: bool,
}

impl World {
    /// The world of the module docs.
    pub fn new() -> World {
        Self::build(false)
    }

    fn build(record: bool) -> World {
        let mut w = World {
            rm: small_rm(),
            g: 0,
            x: 0,
            y: 0,
            p: 0,
            q: 0,
            ids: [0; 2],
            seq: 0,
            mirrors: BTreeMap::new(),
            expected: Vec::new(),
            log: Vec::new(),
            record,
            trace: false,
        };
        for vm in [T, U, W] {
            assert_eq!(w.ready_vm(), vm);
        }
        let alloc = msg(&Request::VmAllocVmid(VmidReq::new(0)));
        assert_eq!(w.ok(HLOS, &alloc), u32::from(L));
        w.ok(HLOS, &msg(&Request::VmStart(VmidReq::new(T))));
        w.ok(HLOS, &msg(&Request::VmStart(VmidReq::new(W))));
        // The golden image: HLOS RAM with known bytes, lent to T and sealed by HLOS.
        let pattern: Vec<u8> = (0..GOLDEN_SIZE).map(|i| (i * 7 + 1) as u8).collect();
        assert!(w.rm.platform_mut().write(GOLDEN_SRC, &pattern));
        let lent = w.ok(HLOS, &lend(MsgId::MEM_LEND, T, 7, GOLDEN_SRC, GOLDEN_SIZE));
        w.g = w.ok(HLOS, &msg(&Request::GoldenSeal(GoldenSealReq::new(lent))));
        w.p = w.ok(
            HLOS,
            &msg(&Request::GmemCreate(GmemCreateReq::new(16 * PAGE, 0, T))),
        );
        w.q = w.ok(
            HLOS,
            &msg(&Request::GmemCreate(GmemCreateReq::new(32 * PAGE, 0, W))),
        );
        let map = |vm, flags, pool| {
            Request::GoldenMap(GoldenMapReq::new(
                w.g,
                vm,
                flags,
                0,
                CLONE_IPA,
                GOLDEN_SIZE,
                pool,
            ))
        };
        let (map_t, map_w) = (map(T, 1, w.p), map(W, 0, gunyah_rm_abi::ext::NO_GMEM));
        w.ok(HLOS, &msg(&map_t));
        w.ok(HLOS, &msg(&map_w));
        w.ok(HLOS, &msg(&bind(w.p, T, 6, 0, 0, BIND_IPA, 2 * PAGE)));
        w.ok(HLOS, &msg(&bind(w.q, W, 6, 1, 0, BIND_IPA, 16 * PAGE)));
        w.x = w.ok(HLOS, &lend(MsgId::MEM_LEND, T, 6, X_PA, PAGE));
        let don = w.ok(HLOS, &lend(MsgId::MEM_DONATE, T, 7, DONATED_PA, PAGE));
        let reply = w.call(T, &msg(&accept(don, 0, 0x80)));
        assert_eq!(reply.0, 0, "T accepts the donated page");
        let t_ipa = u64::from_le_bytes(reply.1[8..16].try_into().expect("accept reply"));
        w.y = w.ok(T, &lend(MsgId::MEM_LEND, U, 6, t_ipa, PAGE));
        w.trace = std::env::var_os("GUNYAH_RM_FUZZ_TRACE").is_some();
        w
    }

    /// Allocate a VM as HLOS and take it to READY (DT parcel, VM_CONFIG_IMAGE, VM_INIT).
    fn ready_vm(&mut self) -> u16 {
        let vmid = self.ok(HLOS, &msg(&Request::VmAllocVmid(VmidReq::new(0)))) as u16;
        let pa = DT_BASE + u64::from(vmid & 0xF) * PAGE;
        let dtb = tiny_dtb(1);
        assert!(self.rm.platform_mut().write(pa, &dtb));
        let img = self.ok(HLOS, &lend(MsgId::MEM_LEND, vmid, 7, pa, PAGE));
        let cfg = VmConfigImageReq {
            vmid: vmid.into(),
            auth_mech: 0.into(),
            mem_handle: img.into(),
            image_offset: 0.into(),
            image_size: 0.into(),
            dtb_offset: 0.into(),
            dtb_size: (dtb.len() as u64).into(),
        };
        self.ok(HLOS, &msg(&Request::VmConfigImage(cfg)));
        self.ok(HLOS, &msg(&Request::VmInit(VmInitReq::new(vmid))));
        vmid
    }

    /// A successful `req` from `from`'s first data word (a new handle or ID), or `None` if it
    /// failed.
    pub fn call_for_id(&mut self, from: u16, req: &Msg) -> Option<u32> {
        let (code, p) = self.call(from, req);
        let word = p.get(4..8)?;
        (code == 0).then(|| u32::from_le_bytes(word.try_into().expect("word")))
    }

    /// Send `req` from `from`; returns the reply's error code and its whole payload.
    pub fn call(&mut self, from: u16, req: &Msg) -> (u32, Vec<u8>) {
        let seq = self.send(from, req.0, &req.1, usize::MAX);
        let sent = self.settle();
        let r = sent
            .iter()
            .find(|m| m.ty == MsgType::Reply && m.to == from && m.seq == seq)
            .expect("a reply");
        let code = u32::from_le_bytes(r.payload[..4].try_into().expect("code"));
        (code, r.payload.clone())
    }

    /// [`World::call`] that must succeed; returns the first data word.
    fn ok(&mut self, from: u16, req: &Msg) -> u32 {
        let (code, p) = self.call(from, req);
        assert_eq!(code, 0, "setup request {:?} failed", req.0);
        p.get(4..8)
            .map_or(0, |b| u32::from_le_bytes(b.try_into().expect("word")))
    }

    /// Send the first `max_packets` packets of a request from `from`; returns its seq.
    pub fn send(&mut self, from: u16, id: MsgId, payload: &[u8], max_packets: usize) -> u16 {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        if let Ok(f) = Fragmenter::request(seq, id, payload) {
            for p in f.take(max_packets) {
                self.packet(from, &p);
            }
        }
        seq
    }

    /// One packet from `from`, through the harness's own reassembler first.
    pub fn packet(&mut self, from: u16, p: &[u8]) {
        if let Some(link) = self.rm.link(from) {
            let m = self.mirrors.entry(from).or_insert_with(|| Mirror {
                link,
                rx: Box::new(Reassembler::new()),
            });
            if m.link != link {
                // A new link of this VMID: the RM starts it with a clean reassembler.
                m.link = link;
                m.rx.reset();
            }
            if let Received::Complete(msg) = m.rx.push(p).received {
                if msg.ty == MsgType::Request {
                    self.expected.push((from, msg.seq, msg.msg_id));
                }
            }
        }
        self.rm.packet_from(from, p);
    }

    /// The client of `vmid` went away.
    pub fn disconnect(&mut self, vmid: u16) {
        if let Some(m) = self.mirrors.get_mut(&vmid) {
            m.rx.reset();
        }
        self.rm.client_disconnected(vmid);
    }

    /// Take what the RM sent and check every invariant of the module docs (except the
    /// refused-request one, which [`run`] checks around single requests).
    pub fn settle(&mut self) -> Vec<Sent> {
        let packets = self.rm.drain_outgoing();
        let mut sent = Vec::new();
        let mut rx: BTreeMap<u16, Reassembler> = BTreeMap::new();
        let mut open: Option<u16> = None;
        for (to, p) in packets {
            assert!((8..=240).contains(&p.len()), "packet of {} bytes", p.len());
            assert!(
                self.rm.link(to).is_some(),
                "a packet for VM {to:#x}, which has no RM message queue"
            );
            if let Some(o) = open {
                assert_eq!(o, to, "a message to {o:#x} interleaved with one to {to:#x}");
            }
            match rx.entry(to).or_default().push(&p).received {
                Received::Complete(m) => {
                    open = None;
                    sent.push(Sent {
                        to,
                        ty: m.ty,
                        seq: m.seq,
                        msg_id: m.msg_id,
                        payload: m.payload.to_vec(),
                    });
                }
                Received::Partial(_) => open = Some(to),
                Received::Dropped(why) => panic!("the RM sent a bad packet to {to:#x}: {why}"),
            }
        }
        assert!(open.is_none(), "the RM's last message is incomplete");
        for m in &sent {
            match m.ty {
                MsgType::Reply => {
                    if let Err(e) = Reply::decode_detailed(m.msg_id, &m.payload) {
                        panic!("reply to {:?} does not decode: {e}", m.msg_id);
                    }
                }
                MsgType::Notification => {
                    match Notification::decode_detailed(m.msg_id, &m.payload) {
                        Ok(Notification::Other { .. }) => {
                            panic!("unknown notification {:?}", m.msg_id)
                        }
                        Ok(_) => {}
                        Err(e) => panic!("notification {:?} does not decode: {e}", m.msg_id),
                    }
                }
                ty => panic!("the RM sent a message of type {ty:?}"),
            }
        }
        // Replies: exactly one per completed request, none other. A request whose sender lost
        // its link while it was handled may go unanswered (its queue is gone).
        let mut replies: Vec<(u16, u16, MsgId)> = sent
            .iter()
            .filter(|m| m.ty == MsgType::Reply)
            .map(|m| (m.to, m.seq, m.msg_id))
            .collect();
        let mut expected = std::mem::take(&mut self.expected);
        replies.sort();
        expected.sort();
        for r in &replies {
            let i = expected
                .iter()
                .position(|e| e == r)
                .unwrap_or_else(|| panic!("reply {r:x?} to no request; expected {expected:x?}"));
            expected.remove(i);
        }
        for (from, seq, id) in expected {
            let still = self.mirrors.get(&from).map(|m| m.link) == self.rm.link(from);
            assert!(
                !still,
                "request {id:?} seq {seq} from {from:#x} got no reply"
            );
        }
        for m in sent.iter().filter(|m| m.ty == MsgType::Reply) {
            if MAKES_ID.contains(&m.msg_id) && m.payload.len() >= 8 && m.payload[..4] == [0; 4] {
                let id = u32::from_le_bytes(m.payload[4..8].try_into().expect("word"));
                self.ids = [id, self.ids[0]];
            }
        }
        if self.record {
            self.log.extend(sent.iter().cloned());
        }
        if self.trace {
            for m in &sent {
                let code = (m.ty == MsgType::Reply)
                    .then(|| u32::from_le_bytes(m.payload[..4].try_into().expect("code")));
                eprintln!(
                    "  -> {:#x} {:?} {:?} seq {} code {code:x?} ({} bytes)",
                    m.to,
                    m.ty,
                    m.msg_id,
                    m.seq,
                    m.payload.len()
                );
            }
        }
        sent
    }
}

impl World {
    /// Run the isolation checker; panic on any violation.
    pub fn check(&self) {
        let v = self.rm.check_isolation();
        assert!(v.is_empty(), "isolation violations: {v:#?}");
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

/// A request encoded: its ID and payload.
pub type Msg = (MsgId, Vec<u8>);

/// Encode a request.
pub fn msg(req: &Request<'_>) -> Msg {
    (req.msg_id(), encode(req))
}

/// Encode a request's payload.
pub fn encode(req: &Request<'_>) -> Vec<u8> {
    let mut v = vec![0u8; req.encoded_len()];
    let n = req.encode(&mut v).expect("request encodes");
    v.truncate(n);
    v
}

fn lend(id: MsgId, to: u16, rights: u8, ipa: u64, size: u64) -> Msg {
    let acl = [AclEntry::new(to, rights)];
    let sgl = [SglEntry::new(ipa, size)];
    let c = MemCreate::normal(&acl, &sgl);
    msg(&match id {
        MsgId::MEM_DONATE => Request::MemDonate(c),
        MsgId::MEM_SHARE => Request::MemShare(c),
        _ => Request::MemLend(c),
    })
}

fn accept(handle: u32, trans_type: u8, flags: u8) -> Request<'static> {
    Request::MemAccept(MemAccept {
        handle,
        mem_type: 0,
        trans_type,
        flags,
        label: 0,
        acl: &[],
        map_vmid: 0,
        sgl: &[],
        attrs: &[],
    })
}

fn bind(
    pool: u32,
    vm: u16,
    perms: u8,
    flags: u8,
    off: u64,
    ipa: u64,
    size: u64,
) -> Request<'static> {
    Request::GmemBind(GmemBindReq::new(pool, vm, perms, flags, off, ipa, size))
}

/// A minimal flattened device tree (the catalogue's): a root `compatible` and one
/// `/cpus/cpu@N` per vCPU.
pub use gunyah_rm_catalogue::dtb::tiny_dtb;

/// Operation kinds, the low 3 bits of an operation's first byte (the high 5 bits pick the VM
/// with [`sender`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// `msg_id (abi::msg_id), u16 len, len bytes`: a request, fragmented by the abi crate.
    Request = 0,
    /// `structured request` (see [`structured`]).
    Typed = 1,
    /// `u8 len, len bytes`: one raw packet.
    Raw = 2,
    /// `u8 packets, msg_id, u16 len, len bytes`: only the first packets of a request.
    Partial = 3,
    /// `ipa, u16 len`: the VM's vCPU reads (at most 8 KiB).
    Read = 4,
    /// `ipa, u16 len, u8 seed`: the VM's vCPU writes (at most 8 KiB).
    Write = 5,
    /// The VM's client disconnects (its partial message is dropped).
    Disconnect = 6,
    /// Same as [`Op::Typed`] (structured requests get twice the weight).
    Typed2 = 7,
}

/// Most bytes one vCPU access or request payload of an operation has.
const MAX_ACCESS: usize = 8192;

/// Run one input on a fresh world.
pub fn run(data: &[u8]) {
    let mut w = World::new();
    let mut inp = Input::new(data);
    let mut ops = 0;
    while !inp.is_empty() && ops < 64 {
        ops += 1;
        step(&mut w, &mut inp);
        if ops % CHECK_EVERY == 0 {
            w.check();
        }
    }
    w.check();
}

/// Operations between two runs of the isolation checker (and one at the end of every input).
pub const CHECK_EVERY: usize = 8;

/// Decode and run one operation, then settle.
pub fn step(w: &mut World, inp: &mut Input<'_>) {
    let tag = inp.u8();
    let who = sender(tag >> 3);
    if w.trace {
        eprintln!("op {} as {who:#x}", tag & 7);
    }
    match tag & 7 {
        0 => {
            let id = crate::abi::msg_id(inp);
            let len = inp.u16() as usize % (MAX_ACCESS + 1);
            let payload = inp.bytes(len).to_vec();
            request_checked(w, who, id, &payload);
        }
        1 | 7 => {
            let (id, payload) = structured(w, inp);
            request_checked(w, who, id, &payload);
        }
        2 => {
            let len = inp.u8() as usize;
            let p = inp.bytes(len).to_vec();
            w.packet(who, &p);
            w.settle();
        }
        3 => {
            let n = inp.u8() as usize % 64;
            let id = crate::abi::msg_id(inp);
            let len = inp.u16() as usize % (MAX_ACCESS + 1);
            let payload = inp.bytes(len).to_vec();
            w.send(who, id, &payload, n);
            w.settle();
        }
        4 => {
            let at = ipa(inp);
            let len = inp.u16() as usize % (MAX_ACCESS + 1);
            let mut buf = vec![0u8; len];
            let _ = w.rm.vm_read(who, at, &mut buf);
            w.settle();
        }
        5 => {
            let at = ipa(inp);
            let len = inp.u16() as usize % (MAX_ACCESS + 1);
            let seed = inp.u8();
            let data: Vec<u8> = (0..len).map(|i| seed.wrapping_add(i as u8)).collect();
            let _ = w.rm.vm_write(who, at, &data);
            w.settle();
        }
        _ => {
            w.disconnect(who);
            w.settle();
        }
    }
}

/// The RM's records as its public API shows them (cloned, compared with `==`): a cheaper
/// stand-in for [`Rm::snapshot`], which also walks every table. Tables that change while the
/// records stay the same are what the isolation checker finds.
#[derive(Debug, PartialEq)]
struct Records {
    vms: gunyah_rm::vm::VmTable,
    parcels: gunyah_rm::memparcel::ParcelDb,
    spaces: Vec<Option<gunyah_rm::space::VmSpace>>,
    stats: Vec<Option<gunyah_rm::golden::MemStats>>,
    images: Vec<Option<gunyah_rm::golden::Golden>>,
    usage: gunyah_rm::platform::PartitionUsage,
    faults: gunyah_rm::cow::FaultCounters,
}

impl Records {
    fn of(rm: &Rm<SimPlatform>) -> Records {
        let vmids: Vec<u16> = rm.vms().vms.keys().copied().collect();
        Records {
            vms: rm.vms().clone(),
            parcels: rm.parcels().clone(),
            spaces: vmids.iter().map(|v| rm.vm_space(*v).cloned()).collect(),
            stats: vmids.iter().map(|v| rm.mem_stats(*v)).collect(),
            images: (0..32).map(|i| rm.golden(i).cloned()).collect(),
            usage: rm.platform().partition_usage(),
            faults: rm.fault_counters(),
        }
    }
}

/// A whole request from `from`; if it is refused with an error, nothing changed (module docs).
fn request_checked(w: &mut World, from: u16, id: MsgId, payload: &[u8]) {
    let before = Records::of(&w.rm);
    let seq = w.send(from, id, payload, usize::MAX);
    let sent = w.settle();
    let Some(reply) = sent
        .iter()
        .find(|m| m.ty == MsgType::Reply && m.to == from && m.seq == seq && m.msg_id == id)
    else {
        return;
    };
    let code = u32::from_le_bytes(reply.payload[..4].try_into().expect("reply code"));
    if code == 0 || ERROR_MAY_CHANGE_STATE.contains(&id) {
        return;
    }
    let notes: Vec<&Sent> = sent
        .iter()
        .filter(|m| m.ty == MsgType::Notification)
        .collect();
    assert!(
        notes.is_empty(),
        "{id:?} from {from:#x} failed with {code:#x} but sent {notes:x?}"
    );
    let after = Records::of(&w.rm);
    if before != after {
        panic!(
            "{id:?} from {from:#x} failed with {code:#x} but changed state:\n{}",
            first_difference(&format!("{before:#?}"), &format!("{after:#?}")).unwrap_or_default()
        );
    }
}

fn first_difference(a: &str, b: &str) -> Option<String> {
    a.lines()
        .zip(b.lines())
        .enumerate()
        .find(|(_, (x, y))| x != y)
        .map(|(i, (x, y))| format!("line {i}: before `{x}`, after `{y}`"))
}

/// A structured request: `u8 kind` then its fields, each from the input. Returns the ID and the
/// encoded payload (encoded by the abi crate, so it is well-formed; the values are the fuzzer's).
pub fn structured(w: &World, inp: &mut Input<'_>) -> Msg {
    let kind = inp.u8();
    let handle = |inp: &mut Input<'_>| -> u32 {
        // Small numbers hit live handles; 0xF0..=0xF4 name the world's, 0xF5 and 0xF6 the last
        // two IDs the RM returned (a parcel, pool or image just made), 0xFF a raw u32.
        match inp.u8() {
            0xF0 => w.x,
            0xF1 => w.y,
            0xF2 => w.g,
            0xF3 => w.p,
            0xF4 => w.q,
            0xF5 => w.ids[0],
            0xF6 => w.ids[1],
            0xFF => inp.u32(),
            b => u32::from(b),
        }
    };
    let pages = |inp: &mut Input<'_>| u64::from(inp.u8()) * PAGE;
    let req: Request<'_> = match kind % 16 {
        0..=2 => {
            let n_acl = (inp.u8() % 4) as usize;
            let acl: Vec<AclEntry> = (0..n_acl)
                .map(|_| AclEntry::new(sender(inp.u8()), inp.u8() & 7))
                .collect();
            let n_sgl = (inp.u8() % 3) as usize;
            let sgl: Vec<SglEntry> = (0..n_sgl)
                .map(|_| SglEntry::new(ipa(inp), pages(inp)))
                .collect();
            let (mem_type, flags, label) = (inp.u8() & 1, inp.u8() & 3, u32::from(inp.u8()));
            let c = MemCreate {
                mem_type,
                flags,
                label,
                acl: &acl,
                sgl: &sgl,
                attrs: &[],
            };
            return msg(&match kind % 16 {
                0 => Request::MemShare(c),
                1 => Request::MemLend(c),
                _ => Request::MemDonate(c),
            });
        }
        3 => {
            let h = handle(inp);
            let (trans, flags) = (inp.u8() % 3, inp.u8());
            let n_sgl = (inp.u8() % 2) as usize;
            let sgl: Vec<SglEntry> = (0..n_sgl)
                .map(|_| SglEntry::new(ipa(inp), pages(inp)))
                .collect();
            return msg(&Request::MemAccept(MemAccept {
                handle: h,
                mem_type: 0,
                trans_type: trans,
                flags,
                label: 0,
                acl: &[],
                map_vmid: 0,
                sgl: &sgl,
                attrs: &[],
            }));
        }
        4 => Request::MemRelease(MemReleaseReq::new(handle(inp), inp.u8() & 1)),
        5 => Request::MemReclaim(MemReleaseReq::new(handle(inp), inp.u8() & 1)),
        6 => {
            let h = handle(inp);
            let flags = 1 << (inp.u8() % 4);
            let vm = [gunyah_rm_abi::mem::VmidEntry::new(sender(inp.u8()))];
            return msg(&Request::MemNotify(MemNotify {
                handle: h,
                flags,
                mem_info_tag: 0,
                vmids: &vm,
            }));
        }
        7 => Request::GmemCreate(GmemCreateReq::new(pages(inp), 0, sender(inp.u8()))),
        8 => Request::GmemBind(GmemBindReq::new(
            handle(inp),
            sender(inp.u8()),
            inp.u8() & 7,
            inp.u8() & 1,
            pages(inp),
            ipa(inp),
            pages(inp),
        )),
        9 => Request::GmemUnbind(GmemUnbindReq::new(
            handle(inp),
            sender(inp.u8()),
            ipa(inp),
            pages(inp),
        )),
        10 => Request::GoldenSeal(GoldenSealReq::new(handle(inp))),
        11 => Request::GoldenMap(GoldenMapReq::new(
            handle(inp),
            sender(inp.u8()),
            u16::from(inp.u8() & 3),
            pages(inp),
            ipa(inp),
            pages(inp),
            handle(inp),
        )),
        12 => match inp.u8() % 2 {
            0 => Request::GoldenUnmap(GoldenUnmapReq::new(
                handle(inp),
                sender(inp.u8()),
                ipa(inp),
                pages(inp),
            )),
            _ => Request::GoldenRelease(GoldenReleaseReq::new(handle(inp))),
        },
        13 => {
            let vm = sender(inp.u8());
            match inp.u8() % 14 {
                0 => Request::VmAllocVmid(VmidReq::new(0)),
                1 => Request::VmDeallocVmid(VmidReq::new(vm)),
                2 => Request::VmStart(VmidReq::new(vm)),
                3 => Request::VmStop(VmStopReq::new(vm, inp.u8() & 1, 0)),
                4 => Request::VmReset(VmidReq::new(vm)),
                5 => Request::VmInit(VmInitReq::new(vm)),
                6 => Request::VmGetState(VmidReq::new(vm)),
                7 => Request::VmSetStatus(VmSetStatusReq {
                    vm_status: inp.u8() % 8,
                    os_status: inp.u8() % 8,
                    app_status: 0.into(),
                }),
                8 => Request::VmExit(VmExitReq::new(0, inp.u8())),
                9 => Request::VmMemStats(VmidReq::new(vm)),
                10 => Request::VmGetId(VmidReq::new(vm)),
                11 => Request::VmLookupName(VmIdChars::new(id_chars(inp.u8()))),
                12 => Request::VmLookupUri(VmIdChars::new(id_chars(inp.u8()))),
                _ => Request::VmLookupGuid(VmGuidReq::new([inp.u8(); 16])),
            }
        }
        14 => {
            let (vm, at) = (sender(inp.u8()), ipa(inp));
            let len = inp.u16() as usize % 2048;
            let payload = match inp.u8() % 2 {
                0 => encode(&Request::SimVmRead(SimVmReadReq::new(vm, len as u32, at))),
                _ => {
                    let data: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5A).collect();
                    encode(&Request::SimVmWrite(SimVmWrite {
                        vmid: vm,
                        ipa: at,
                        data: &data,
                    }))
                }
            };
            let id = if payload.len() == 16 {
                MsgId::SIM_VM_READ
            } else {
                MsgId::SIM_VM_WRITE
            };
            return (id, payload);
        }
        _ => {
            let vm = sender(inp.u8());
            let h = handle(inp);
            let size = inp.u16() as u64;
            Request::VmConfigImage(VmConfigImageReq {
                vmid: vm.into(),
                auth_mech: 0.into(),
                mem_handle: h.into(),
                image_offset: 0.into(),
                image_size: 0.into(),
                dtb_offset: 0.into(),
                dtb_size: size.into(),
            })
        }
    };
    msg(&req)
}

/// A name or URI to look up: none, HLOS's (Gunyah's RM names it), a shipped config's,
/// or the longest Gunyah allows (79 bytes) and one byte more (refused).
fn id_chars(pick: u8) -> &'static [u8] {
    const LONG: &[u8; 80] = &[b'v'; 80];
    match pick % 6 {
        0 => b"",
        1 => b"HLOS",
        2 => b"app-clone-0",
        3 => b"vm://android/app/0",
        4 => &LONG[..79],
        _ => LONG,
    }
}

/// Requests a client really sends, encoded by the abi crate with the world's handles and VMIDs:
/// (name, ID, payload). Seeds for this target and `abi_decode`.
pub fn sample_requests() -> Vec<(String, MsgId, Vec<u8>)> {
    let w = World::new();
    let v: Vec<(&str, Msg)> = vec![
        (
            "vm-get-vmid",
            msg(&Request::VmGetVmid(gunyah_rm_abi::wire::Empty)),
        ),
        ("vm-alloc", msg(&Request::VmAllocVmid(VmidReq::new(0)))),
        ("vm-get-state", msg(&Request::VmGetState(VmidReq::new(T)))),
        ("vm-get-id", msg(&Request::VmGetId(VmidReq::new(T)))),
        (
            "vm-lookup-name",
            msg(&Request::VmLookupName(VmIdChars::new(b"HLOS"))),
        ),
        ("vm-start-u", msg(&Request::VmStart(VmidReq::new(U)))),
        ("vm-stop-t", msg(&Request::VmStop(VmStopReq::new(T, 0, 0)))),
        ("vm-reset-u", msg(&Request::VmReset(VmidReq::new(U)))),
        (
            "vm-dealloc-l",
            msg(&Request::VmDeallocVmid(VmidReq::new(L))),
        ),
        (
            "mem-share",
            lend(MsgId::MEM_SHARE, T, 6, FREE_RAM, 2 * PAGE),
        ),
        ("mem-lend", lend(MsgId::MEM_LEND, W, 7, FREE_RAM, PAGE)),
        (
            "mem-donate",
            lend(MsgId::MEM_DONATE, U, 7, FREE_RAM + PAGE, PAGE),
        ),
        ("mem-accept-x", msg(&accept(w.x, 1, 0x80))),
        ("mem-accept-y", msg(&accept(w.y, 1, 0x80))),
        (
            "mem-release-x",
            msg(&Request::MemRelease(MemReleaseReq::new(w.x, 0))),
        ),
        (
            "mem-reclaim-x",
            msg(&Request::MemReclaim(MemReleaseReq::new(w.x, 0))),
        ),
        (
            "gmem-create",
            msg(&Request::GmemCreate(GmemCreateReq::new(8 * PAGE, 0, U))),
        ),
        (
            "gmem-bind",
            msg(&bind(
                w.p,
                T,
                6,
                1,
                2 * PAGE,
                BIND_IPA + 0x10_0000,
                4 * PAGE,
            )),
        ),
        (
            "gmem-unbind",
            msg(&Request::GmemUnbind(GmemUnbindReq::new(
                w.p,
                T,
                BIND_IPA,
                2 * PAGE,
            ))),
        ),
        (
            "golden-seal",
            msg(&Request::GoldenSeal(GoldenSealReq::new(w.x))),
        ),
        (
            "golden-map",
            msg(&Request::GoldenMap(GoldenMapReq::new(
                w.g,
                U,
                1,
                0,
                CLONE_IPA,
                GOLDEN_SIZE,
                w.q,
            ))),
        ),
        (
            "golden-unmap",
            msg(&Request::GoldenUnmap(GoldenUnmapReq::new(
                w.g,
                T,
                CLONE_IPA,
                GOLDEN_SIZE,
            ))),
        ),
        (
            "golden-release",
            msg(&Request::GoldenRelease(GoldenReleaseReq::new(w.g))),
        ),
        ("vm-mem-stats", msg(&Request::VmMemStats(VmidReq::new(T)))),
        (
            "sim-read",
            msg(&Request::SimVmRead(SimVmReadReq::new(T, 64, CLONE_IPA))),
        ),
        (
            "vm-set-status",
            msg(&Request::VmSetStatus(VmSetStatusReq::new(
                3,
                gunyah_rm_abi::OsState::Run,
                0,
            ))),
        ),
        ("vm-exit", msg(&Request::VmExit(VmExitReq::new(0, 1)))),
        (
            "sim-write",
            msg(&Request::SimVmWrite(SimVmWrite {
                vmid: T,
                ipa: CLONE_IPA + 0xF00,
                data: &[0xC3; 300],
            })),
        ),
    ];
    v.into_iter()
        .map(|(n, (id, p))| (n.to_string(), id, p))
        .collect()
}

/// Replies and notifications the RM sent while building the world (seeds for `abi_decode`).
pub fn sample_outgoing() -> Vec<(MsgId, MsgType, Vec<u8>)> {
    let mut w = World::build(true);
    // Add the traffic of a CoW write and an unserved fault (COW_BROKEN, FAULT_UNSERVED).
    let _ = w.rm.vm_write(T, CLONE_IPA, b"x");
    let _ = w.rm.vm_write(W, CLONE_IPA, b"x");
    w.settle();
    w.log
        .into_iter()
        .map(|m| (m.msg_id, m.ty, m.payload))
        .collect()
}

/// Write one operation of each kind for seeds.
pub struct OpWriter(Script);

impl OpWriter {
    /// An empty script.
    pub fn new() -> Self {
        OpWriter(Script::new())
    }
    fn tag(&mut self, who: u16, kind: Op) -> &mut Script {
        let i = SENDERS
            .iter()
            .position(|v| *v == who)
            .unwrap_or_else(|| (who as usize).saturating_sub(0x7F));
        self.0.u8(((i as u8) << 3) | kind as u8)
    }
    /// A whole request.
    pub fn request(&mut self, who: u16, id: MsgId, payload: &[u8]) -> &mut Self {
        self.tag(who, Op::Request);
        crate::abi::msg_id_selector(&mut self.0, id);
        self.0.u16(payload.len() as u16).bytes(payload);
        self
    }
    /// The first `n` packets of a request.
    pub fn partial(&mut self, who: u16, n: u8, id: MsgId, payload: &[u8]) -> &mut Self {
        self.tag(who, Op::Partial).u8(n);
        crate::abi::msg_id_selector(&mut self.0, id);
        self.0.u16(payload.len() as u16).bytes(payload);
        self
    }
    /// A structured request: kind and field bytes as [`structured`] reads them.
    pub fn typed(&mut self, who: u16, fields: &[u8]) -> &mut Self {
        self.tag(who, Op::Typed).bytes(fields);
        self
    }
    /// A raw packet.
    pub fn raw(&mut self, who: u16, p: &[u8]) -> &mut Self {
        self.tag(who, Op::Raw).u8(p.len() as u8).bytes(p);
        self
    }
    /// A vCPU read at `IPAS[region] + off16 * 16`.
    pub fn read(&mut self, who: u16, region: u8, off16: u16, len: u16) -> &mut Self {
        self.tag(who, Op::Read).u8(region).u16(off16).u16(len);
        self
    }
    /// A vCPU write.
    pub fn write(&mut self, who: u16, region: u8, off16: u16, len: u16, seed: u8) -> &mut Self {
        self.tag(who, Op::Write)
            .u8(region)
            .u16(off16)
            .u16(len)
            .u8(seed);
        self
    }
    /// A disconnect.
    pub fn disconnect(&mut self, who: u16) -> &mut Self {
        self.tag(who, Op::Disconnect);
        self
    }
    /// The input.
    pub fn finish(&mut self) -> Vec<u8> {
        self.0.finish()
    }
}

impl Default for OpWriter {
    fn default() -> Self {
        Self::new()
    }
}

/// Seeds: each sample request from each sender, and scenarios the tests walk through
/// (accept/release/reclaim, CoW writes and reads, an unserved fault, a VM's whole lifecycle,
/// fragmentation edges, a partial request interrupted by another).
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let samples = sample_requests();
    for (name, id, payload) in &samples {
        for who in [HLOS, T, U] {
            let s = OpWriter::new().request(who, *id, payload).finish();
            out.push((format!("{name}-from-{who:02x}"), s));
        }
    }
    let find = |n: &str| {
        samples
            .iter()
            .find(|(name, _, _)| name == n)
            .map(|(_, id, p)| (*id, p.clone()))
            .expect("sample")
    };
    let (acc_x, acc_x_p) = find("mem-accept-x");
    let (rel_x, rel_x_p) = find("mem-release-x");
    let (rec_x, rec_x_p) = find("mem-reclaim-x");
    out.push((
        "accept-write-release-reclaim".into(),
        OpWriter::new()
            .request(T, acc_x, &acc_x_p)
            .write(T, R_ALLOC, 0, 64, 0x11)
            .read(T, R_ALLOC, 0, 128)
            .request(HLOS, rec_x, &rec_x_p)
            .request(T, rel_x, &rel_x_p)
            .request(HLOS, rec_x, &rec_x_p)
            .read(HLOS, R_X, 0, 64)
            .finish(),
    ));
    out.push((
        "cow-and-unserved".into(),
        OpWriter::new()
            .write(T, R_CLONE, 0, 4096, 0x22)
            .read(T, R_CLONE, 0, 8192)
            .write(W, R_CLONE, 0x10, 16, 0x33)
            .read(W, R_CLONE, 0, 64)
            .write(W, R_BIND, 0, 8192, 0x44)
            .read(W, R_BIND, 0, 8192)
            .write(HLOS, R_HLOS, 0x8000, 64, 0x55)
            .read(HLOS, R_HLOS, 0x8000, 64)
            .finish(),
    ));
    let (stop, stop_p) = find("vm-stop-t");
    out.push((
        "lifecycle".into(),
        OpWriter::new()
            .request(HLOS, stop, &stop_p)
            .typed(HLOS, &[13, 1, 3, 1])
            .typed(HLOS, &[13, 1, 4])
            .typed(HLOS, &[13, 1, 1])
            .typed(HLOS, &[13, 0, 0])
            .typed(HLOS, &[13, 3, 4])
            .typed(HLOS, &[13, 3, 1])
            .finish(),
    ));
    out.push((
        "share-accept-notify".into(),
        OpWriter::new()
            // HLOS shares 2 pages of free RAM with T (RW) and U (R).
            .typed(HLOS, &[0, 3, 0, 7, 1, 6, 2, 4, 1, R_FREE, 0, 0, 2, 0, 0, 0])
            .typed(T, &[3, 0xF5, 2, 0x80, 0])
            .typed(HLOS, &[6, 0xF5, 0, 2])
            .typed(U, &[3, 0xF5, 2, 0x80, 0])
            .write(T, R_ALLOC, 0, 32, 1)
            .read(U, R_ALLOC, 0, 32)
            .typed(T, &[4, 0xF5, 0])
            .typed(HLOS, &[5, 0xF5, 0])
            .finish(),
    ));
    out.push((
        "gmem-golden".into(),
        OpWriter::new()
            .typed(HLOS, &[7, 8, 2])
            .typed(HLOS, &[8, 0xF5, 2, 6, 1, 0, R_BIND, 0, 0, 4])
            .write(U, R_BIND, 0, 100, 9)
            .typed(HLOS, &[11, 0xF2, 2, 1, 0, R_CLONE, 0, 0, 16, 0xF6])
            .write(U, R_CLONE, 0x100, 10, 7)
            .typed(HLOS, &[12, 0, 0xF2, 2, R_CLONE, 0, 0, 16])
            .typed(HLOS, &[9, 0xF6, 2, R_BIND, 0, 0, 4])
            .finish(),
    ));
    // Fragmentation edges: payloads of 232 and 233 bytes, a partial request then another.
    let (share, share_p) = find("mem-share");
    let mut long = share_p.clone();
    long.resize(233, 0);
    out.push((
        "fragments".into(),
        OpWriter::new()
            .request(HLOS, share, &share_p[..share_p.len().min(232)])
            .request(HLOS, share, &long)
            .partial(T, 1, MsgId::SIM_VM_WRITE, &[0u8; 600])
            .request(T, acc_x, &acc_x_p)
            .partial(HLOS, 2, MsgId::SIM_VM_WRITE, &[0u8; 700])
            .disconnect(HLOS)
            .raw(HLOS, &[0x21, 0x00, 1, 0, 0xF1, 0, 0, 0x47, 0])
            .request(L, acc_x, &acc_x_p)
            .finish(),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_world_builds_and_every_seed_runs() {
        let w = World::new();
        assert_eq!(w.rm.vm_state(L), Some(gunyah_rm::vm::VmState::Load));
        for (name, s) in seeds() {
            if name.contains("from") && std::env::var_os("GUNYAH_RM_FUZZ_TRACE").is_some() {
                continue;
            }
            eprintln!("seed {name}");
            run(&s);
        }
    }
}
