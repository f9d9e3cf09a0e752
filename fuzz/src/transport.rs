//! The `serve_transport` target: the `gunyah-rm serve` transport's packet handling
//! ([`gunyah_rm::serve_transport::hub::Hub`] over [`RmEndpoint`], the code the server runs),
//! with fake sockets in place of Unix ones.
//!
//! The RM is the `rm_dispatch` target's world (HLOS; T and W RUNNING, U READY, L in LOAD). Each
//! operation's first byte picks a kind (low 3 bits) and a connection (high 5 bits, modulo the
//! connections made so far):
//! * 0 — a new connection;
//! * 1 — it sends a hello as `sender(u8)` (see `dispatch::sender`);
//! * 2 — it sends one raw packet (`u8 len`, up to 255 bytes);
//! * 3 — it sends a request (`msg_id, u8 split, u16 len, payload`), fragmented by the abi crate;
//!   the packets after the first `split` (and all it sends after them) wait until the next
//!   kind-6 operation;
//! * 4 — it hangs up;
//! * 5 — it reads `u8` packets (0: it stops reading);
//! * 6 — the waiting packets of every connection arrive; time advances by `u8 × 40 ms`;
//! * 7 — a server round.
//!
//! Checked after every round: connected clients have distinct VMIDs, at most
//! `MAX_CONNECTED`, each bound to its VM's current link; at most `MAX_PENDING` silent
//! connections; outboxes within `MAX_OUTBOX`; a connection gets the hello answer first, and
//! only replies to requests that reached the RM from its own VM and link (recorded as the
//! endpoint sees them, never another VM's nor an earlier VM's of the same VMID). At the end,
//! with every packet delivered and every client reading, a connection that never sent a raw
//! packet got exactly one reply to each of its requests.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use gunyah_rm::serve_transport::endpoint::RmEndpoint;
use gunyah_rm::serve_transport::hub::{Hub, Ready, Recv, Send, Sockets};
use gunyah_rm::serve_transport::{hello, Endpoint, Event, MAX_CONNECTED, MAX_OUTBOX, MAX_PENDING};
use gunyah_rm::sim::SimPlatform;
use gunyah_rm_abi::{Fragmenter, MsgId, MsgType, RpcHeader};

use crate::dispatch::{sender, World};
use crate::input::{Input, Script};

/// One fake socket, seen from the client's side.
#[derive(Default)]
struct Sock {
    /// Packets the server will read, in order.
    inbound: VecDeque<Vec<u8>>,
    /// Packets still on their way (released by operation 6).
    later: VecDeque<Vec<u8>>,
    hung_up: bool,
    /// Packets the client will still take before its socket is full (`None`: no limit).
    window: Option<usize>,
    /// Everything the server sent it.
    got: Vec<Vec<u8>>,
    /// How many of `got` have been checked.
    checked: usize,
    /// Requests it sent while `clean`.
    whole: Vec<(u16, u32)>,
    /// It sent only hellos and requests (no raw packets) so far.
    clean: bool,
    /// Replies received, by (seq, msg_id).
    replies: HashMap<(u16, u32), usize>,
    /// Partial reply being reassembled: (seq, msg_id, continuations left).
    partial: Option<(u16, u32, u8)>,
}

/// What the harness learns as the hub works: which socket it is reading, the (VMID, link)
/// each connection was bound to when it connected, and the (VMID, link) every request
/// reached the RM from, by (seq, msg_id).
#[derive(Default)]
struct Tracking {
    reading: Option<u32>,
    bound: HashMap<u32, (u16, u64)>,
    requests: HashMap<(u16, u32), HashSet<(u16, u64)>>,
}

/// Every fake socket, by index.
#[derive(Default)]
struct Net {
    socks: Vec<Sock>,
    track: Rc<RefCell<Tracking>>,
}

/// The real endpoint, watched.
struct Spy {
    ep: RmEndpoint<SimPlatform>,
    track: Rc<RefCell<Tracking>>,
}

impl Endpoint for Spy {
    fn link(&self, vmid: u16) -> Option<u64> {
        self.ep.link(vmid)
    }
    fn connected(&mut self, vmid: u16) {
        let mut t = self.track.borrow_mut();
        let sock = t
            .reading
            .expect("a connection is made while reading its hello");
        let link = self.ep.link(vmid).expect("connected without a link");
        assert!(
            t.bound.insert(sock, (vmid, link)).is_none(),
            "a second hello took effect"
        );
        drop(t);
        self.ep.connected(vmid);
    }
    fn disconnected(&mut self, vmid: u16) {
        self.ep.disconnected(vmid);
    }
    fn packet(&mut self, vmid: u16, p: &[u8]) {
        if let Ok((h, _)) = RpcHeader::parse(p) {
            if h.msg_type() == MsgType::Request {
                let link = self
                    .ep
                    .link(vmid)
                    .expect("a packet from a VM without a link");
                self.track
                    .borrow_mut()
                    .requests
                    .entry((h.seq(), h.msg_id().0))
                    .or_default()
                    .insert((vmid, link));
            }
        }
        self.ep.packet(vmid, p);
    }
    fn pop_outgoing(&mut self, vmid: u16) -> Option<Vec<u8>> {
        self.ep.pop_outgoing(vmid)
    }
}

impl Sockets<u32> for Net {
    fn recv(&mut self, s: &u32, buf: &mut [u8]) -> Recv {
        self.track.borrow_mut().reading = Some(*s);
        let sock = &mut self.socks[*s as usize];
        match sock.inbound.pop_front() {
            Some(p) => {
                let n = p.len().min(buf.len());
                buf[..n].copy_from_slice(&p[..n]);
                Recv::Packet(p.len())
            }
            None if sock.hung_up => Recv::Closed,
            None => Recv::Empty,
        }
    }

    fn send(&mut self, s: &u32, p: &[u8]) -> Send {
        let sock = &mut self.socks[*s as usize];
        if sock.hung_up {
            return Send::Failed;
        }
        match &mut sock.window {
            Some(0) => return Send::Full,
            Some(n) => *n -= 1,
            None => {}
        }
        sock.got.push(p.to_vec());
        Send::Sent
    }
}

/// The harness's state: the hub, the RM and the fake sockets.
struct Rig {
    hub: Hub<u32>,
    ep: Spy,
    net: Net,
    now: Instant,
    seq: u16,
    /// The link each connected socket was seen bound to.
    bound: BTreeMap<u32, (u16, u64)>,
}

impl Rig {
    fn new() -> Rig {
        let World { rm, .. } = World::new();
        let track = Rc::new(RefCell::new(Tracking::default()));
        Rig {
            hub: Hub::new(),
            ep: Spy {
                ep: RmEndpoint::new(rm),
                track: track.clone(),
            },
            net: Net {
                socks: Vec::new(),
                track,
            },
            now: Instant::now(),
            seq: 0,
            bound: BTreeMap::new(),
        }
    }

    /// The socket of the `n`-th connection made so far, if any.
    fn sock(&mut self, n: u8) -> Option<&mut Sock> {
        let len = self.net.socks.len();
        (len > 0).then(|| &mut self.net.socks[n as usize % len])
    }

    fn round(&mut self) {
        let ready: HashMap<u64, Ready> = self
            .hub
            .clients()
            .iter()
            .filter_map(|c| {
                let s = &self.net.socks[*c.sock() as usize];
                let r = Ready {
                    readable: !s.inbound.is_empty() || s.hung_up,
                    hangup: s.hung_up,
                };
                (r.readable || r.hangup).then_some((c.id(), r))
            })
            .collect();
        let trace = std::env::var_os("GUNYAH_RM_FUZZ_TRACE").is_some();
        let mut log = |e: Event<'_>| {
            if trace {
                eprintln!("  {e:x?}");
            }
        };
        self.hub.round(
            &|id| ready.get(&id).copied(),
            self.now,
            &mut self.net,
            &mut self.ep,
            &mut log,
        );
        self.check();
    }

    fn check(&mut self) {
        let mut vmids = HashSet::new();
        let mut pending = 0;
        for c in self.hub.clients() {
            assert!(
                c.outbox_len() <= MAX_OUTBOX + 1,
                "outbox of {}",
                c.outbox_len()
            );
            match c.vmid() {
                Some(v) => {
                    assert!(vmids.insert(v), "two connections as VM {v:#x}");
                    assert_eq!(
                        c.link(),
                        self.ep.link(v),
                        "a connection of VM {v:#x} outlived its link"
                    );
                    let s = *c.sock();
                    let link = c.link().expect("connected");
                    let b = self.bound.entry(s).or_insert((v, link));
                    assert_eq!(*b, (v, link), "a connection changed VM or link");
                }
                None => pending += 1,
            }
        }
        assert!(vmids.len() <= MAX_CONNECTED);
        assert!(pending <= MAX_PENDING);
        let t = self.net.track.borrow();
        for (i, s) in self.net.socks.iter_mut().enumerate() {
            check_received(s, t.bound.get(&(i as u32)).copied(), &t.requests);
        }
    }

    fn step(&mut self, inp: &mut Input<'_>) {
        let tag = inp.u8();
        let who = tag >> 3;
        match tag & 7 {
            0 => {
                let id = self.net.socks.len() as u32;
                self.net.socks.push(Sock {
                    clean: true,
                    ..Sock::default()
                });
                self.hub.add(id, self.now, &mut |_| {});
            }
            1 => {
                let vmid = sender(inp.u8());
                if let Some(s) = self.sock(who) {
                    s.inbound.push_back(hello(vmid).to_vec());
                }
            }
            2 => {
                let len = inp.u8() as usize;
                let p = inp.bytes(len).to_vec();
                if let Some(s) = self.sock(who) {
                    s.clean = false;
                    s.inbound.push_back(p);
                }
            }
            3 => {
                let id = crate::abi::msg_id(inp);
                let split = inp.u8() as usize;
                let len = inp.u16() as usize % 4096;
                let payload = inp.bytes(len).to_vec();
                self.seq = self.seq.wrapping_add(1);
                let seq = self.seq;
                if let (Some(s), Ok(f)) = (self.sock(who), Fragmenter::request(seq, id, &payload)) {
                    // Its packets arrive in order (a split request's rest, and anything sent
                    // after it, waits in `later`), so the RM sees the whole request.
                    if s.clean {
                        s.whole.push((seq, id.0));
                    }
                    for (i, p) in f.enumerate() {
                        if i < split && s.later.is_empty() {
                            s.inbound.push_back(p.to_vec());
                        } else {
                            s.later.push_back(p.to_vec());
                        }
                    }
                }
            }
            4 => {
                if let Some(s) = self.sock(who) {
                    s.hung_up = true;
                }
            }
            5 => {
                let n = inp.u8() as usize;
                if let Some(s) = self.sock(who) {
                    s.window = Some(n);
                }
            }
            6 => {
                for s in &mut self.net.socks {
                    let later: Vec<_> = s.later.drain(..).collect();
                    s.inbound.extend(later);
                }
                self.now += Duration::from_millis(40 * u64::from(inp.u8()));
            }
            _ => self.round(),
        }
    }
}

/// The packets a connection received since the last check: the hello answer first, then RM
/// packets; every reply answers a request that reached the RM from the VM and link the
/// connection is bound to.
fn check_received(
    s: &mut Sock,
    bound: Option<(u16, u64)>,
    requests: &HashMap<(u16, u32), HashSet<(u16, u64)>>,
) {
    while s.checked < s.got.len() {
        let p = &s.got[s.checked];
        let bound = bound.expect("a packet to a connection that never connected");
        if s.checked == 0 {
            assert_eq!(
                p[..],
                hello(bound.0),
                "the first packet is not the hello answer"
            );
            s.checked += 1;
            continue;
        }
        let (h, _) = RpcHeader::parse(p).expect("the RM sent a bad header");
        let key = (h.seq(), h.msg_id().0);
        match h.msg_type() {
            MsgType::Reply => {
                assert!(
                    requests.get(&key).is_some_and(|from| from.contains(&bound)),
                    "VM {:#x} (link {}) got a reply to {:?} seq {} it never sent (sent by {:x?})",
                    bound.0,
                    bound.1,
                    MsgId(key.1),
                    key.0,
                    requests.get(&key)
                );
                assert!(s.partial.is_none(), "a reply inside another message");
                if h.fragments() == 0 {
                    *s.replies.entry(key).or_default() += 1;
                } else {
                    s.partial = Some((key.0, key.1, h.fragments()));
                }
            }
            MsgType::Continuation => {
                if let Some((seq, id, left)) = s.partial {
                    assert_eq!((seq, id), key, "continuation of another message");
                    if left == 1 {
                        s.partial = None;
                        *s.replies.entry(key).or_default() += 1;
                    } else {
                        s.partial = Some((seq, id, left - 1));
                    }
                }
            }
            _ => assert!(s.partial.is_none(), "a notification inside a reply"),
        }
        s.checked += 1;
    }
}

/// Run one input.
pub fn run(data: &[u8]) {
    let mut rig = Rig::new();
    let mut inp = Input::new(data);
    let mut ops = 0;
    while !inp.is_empty() && ops < 256 {
        ops += 1;
        rig.step(&mut inp);
    }
    // Everything arrives, every client reads: whole requests of clean, still-connected clients
    // whose link is unchanged get exactly one reply each.
    for s in &mut rig.net.socks {
        let later: Vec<_> = s.later.drain(..).collect();
        s.inbound.extend(later);
        s.window = None;
    }
    for _ in 0..3 {
        rig.round();
    }
    let live: Vec<(u32, u16)> = rig
        .hub
        .clients()
        .iter()
        .filter_map(|c| c.vmid().map(|v| (*c.sock(), v)))
        .collect();
    for (sock, v) in live {
        let s = &rig.net.socks[sock as usize];
        let bound = rig.net.track.borrow().bound.get(&sock).copied();
        if !s.clean || bound.map(|b| b.0) != Some(v) {
            continue;
        }
        for key in &s.whole {
            let n = s.replies.get(key).copied().unwrap_or(0);
            assert_eq!(
                n,
                1,
                "VM {v:#x}'s request {:?} seq {} got {n} replies",
                MsgId(key.1),
                key.0
            );
        }
    }
}

/// Seeds: clients connecting as each VM and sending the sample requests, a reconnect, a VM
/// reset while connected, a client that stops reading, and misbehaving clients.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let samples = crate::dispatch::sample_requests();
    let mut out = Vec::new();
    let op = |s: &mut Script, kind: u8, conn: u8| {
        s.u8((conn << 3) | kind);
    };
    let request = |s: &mut Script, conn: u8, id: MsgId, payload: &[u8], split: u8| {
        s.u8((conn << 3) | 3);
        crate::abi::msg_id_selector(s, id);
        s.u8(split).u16(payload.len() as u16).bytes(payload);
    };
    // Connection 0 as HLOS, 1 as T, 2 as U: each sends every sample request.
    let mut s = Script::new();
    for (conn, vm) in [(0u8, 0u8), (1, 1), (2, 2)] {
        op(&mut s, 0, conn);
        op(&mut s, 1, conn);
        s.u8(vm);
    }
    op(&mut s, 7, 0);
    for (_, id, payload) in &samples {
        for conn in 0..3 {
            request(&mut s, conn, *id, payload, 255);
        }
        op(&mut s, 7, 0);
    }
    out.push(("three-clients-all-samples".into(), s.finish()));
    // HLOS stops and resets T while T is connected; T reconnects (refused: no link).
    let stop = samples
        .iter()
        .find(|(n, _, _)| n == "vm-stop-t")
        .expect("sample");
    let mut s = Script::new();
    for (conn, vm) in [(0u8, 0u8), (1, 1)] {
        op(&mut s, 0, conn);
        op(&mut s, 1, conn);
        s.u8(vm);
    }
    op(&mut s, 7, 0);
    request(&mut s, 0, stop.1, &stop.2, 255);
    op(&mut s, 7, 0);
    let mut stop_force = crate::dispatch::encode(&gunyah_rm_abi::Request::VmStop(
        gunyah_rm_abi::vm::VmStopReq::new(crate::dispatch::T, 1, 0),
    ));
    request(&mut s, 0, MsgId::VM_STOP, &stop_force, 255);
    stop_force = crate::dispatch::encode(&gunyah_rm_abi::Request::VmReset(
        gunyah_rm_abi::vm::VmidReq::new(crate::dispatch::T),
    ));
    request(&mut s, 0, MsgId::VM_RESET, &stop_force, 255);
    op(&mut s, 7, 0);
    op(&mut s, 7, 0);
    op(&mut s, 0, 2);
    op(&mut s, 1, 2);
    s.u8(1);
    op(&mut s, 7, 0);
    out.push(("reset-while-connected".into(), s.finish()));
    // A split request, a client that stops reading, a hangup and a reconnect, a bad client.
    let big = samples
        .iter()
        .find(|(n, _, _)| n == "sim-write")
        .expect("sample");
    let mut s = Script::new();
    op(&mut s, 0, 0);
    op(&mut s, 1, 0);
    s.u8(0);
    request(&mut s, 0, big.1, &big.2, 1);
    op(&mut s, 7, 0);
    op(&mut s, 6, 0);
    s.u8(1);
    op(&mut s, 5, 0);
    s.u8(0);
    op(&mut s, 7, 0);
    op(&mut s, 4, 0);
    op(&mut s, 0, 1);
    op(&mut s, 1, 1);
    s.u8(0);
    op(&mut s, 7, 0);
    op(&mut s, 0, 2);
    op(&mut s, 2, 2);
    s.u8(4).bytes(b"GRM2");
    op(&mut s, 6, 0);
    s.u8(100);
    op(&mut s, 7, 0);
    out.push(("split-stall-reconnect-bad".into(), s.finish()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_runs() {
        for (name, s) in seeds() {
            eprintln!("seed {name}");
            run(&s);
        }
    }
}
