//! Every connection of the server and what each packet does, without sockets: the socket
//! layer ([`super::socket`], or a fuzz target) reads and writes through [`Sockets`] and says
//! which connections `poll` found ready; [`Hub::round`] does the rest.
//!
//! Rules (DESIGN.md "Host socket transport", README "The `gunyah-rm` tool"):
//! * A connection's first packet must be a hello ([`super::parse_hello`]); it is answered with
//!   the same 8 bytes before anything else, or the connection is closed when the VMID has no
//!   RM-RPC link now ([`Endpoint::link`]), is already connected, or [`MAX_CONNECTED`] clients
//!   are. A connection is bound to the link it connected under and dropped as soon as the link
//!   changes.
//! * Silent connections have their own budget ([`MAX_PENDING`], the oldest is dropped to make
//!   room) and must say hello within [`HELLO_TIMEOUT`].
//! * A packet over [`MAX_PACKET`] bytes, or more than [`MAX_OUTBOX`] packets waiting for a
//!   client that does not read, drops that client. At most [`READ_BUDGET`] packets are read
//!   from one client per round.

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use super::{
    hello, parse_hello, Endpoint, Event, HELLO_TIMEOUT, MAX_CONNECTED, MAX_OUTBOX, MAX_PACKET,
    MAX_PENDING, READ_BUDGET,
};

/// What `poll` reported for one connection in this round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// There is something to read (a packet or the end of the stream).
    pub readable: bool,
    /// The peer hung up or the socket has an error.
    pub hangup: bool,
}

/// One non-blocking read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recv {
    /// A packet of this length; longer than the buffer if it was truncated.
    Packet(usize),
    /// Nothing to read now.
    Empty,
    /// End of stream, or the socket failed.
    Closed,
}

/// One non-blocking send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Send {
    /// The packet was sent.
    Sent,
    /// The socket's buffer is full: try again next round.
    Full,
    /// The socket failed.
    Failed,
}

/// The socket layer under a [`Hub`]: one packet at a time, never blocking.
pub trait Sockets<S> {
    /// Read one packet into `buf`.
    fn recv(&mut self, sock: &S, buf: &mut [u8]) -> Recv;
    /// Send one packet.
    fn send(&mut self, sock: &S, packet: &[u8]) -> Send;
}

/// What becomes of a connection at the end of a round.
enum Fate {
    Keep,
    Close,
    Drop(&'static str),
}

/// One connection.
pub struct Client<S> {
    id: u64,
    sock: S,
    vmid: Option<u16>,
    /// The link the connection is bound to (set with `vmid`).
    link: u64,
    since: Instant,
    outbox: VecDeque<Vec<u8>>,
    /// Whether the answer to the hello has been sent.
    greeted: bool,
}

impl<S> Client<S> {
    /// A number that names this connection for as long as the hub lives.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// Its socket.
    pub fn sock(&self) -> &S {
        &self.sock
    }
    /// The VM it said hello as.
    pub fn vmid(&self) -> Option<u16> {
        self.vmid
    }
    /// The RM-RPC link it is bound to, once it said hello.
    pub fn link(&self) -> Option<u64> {
        self.vmid.map(|_| self.link)
    }
    /// Packets waiting to be sent to it.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }
}

/// Every connection of a server, oldest first.
pub struct Hub<S> {
    clients: Vec<Client<S>>,
    next_id: u64,
}

impl<S> Default for Hub<S> {
    fn default() -> Self {
        Hub {
            clients: Vec::new(),
            next_id: 0,
        }
    }
}

impl<S> Hub<S> {
    /// No connections.
    pub fn new() -> Self {
        Self::default()
    }

    /// The connections, oldest first.
    pub fn clients(&self) -> &[Client<S>] {
        &self.clients
    }

    /// VMIDs of the connected clients.
    pub fn connected(&self) -> impl Iterator<Item = u16> + '_ {
        self.clients.iter().filter_map(|c| c.vmid)
    }

    /// A new connection that has not said hello. When [`MAX_PENDING`] are already waiting,
    /// the oldest of them is dropped to make room. Returns the new connection's id.
    pub fn add(&mut self, sock: S, now: Instant, log: &mut dyn FnMut(Event<'_>)) -> u64 {
        let pending = self.clients.iter().filter(|c| c.vmid.is_none()).count();
        if pending >= MAX_PENDING {
            if let Some(i) = self.clients.iter().position(|c| c.vmid.is_none()) {
                self.clients.remove(i);
                log(Event::Dropped {
                    vmid: None,
                    why: "silent connection dropped to make room for a new one",
                });
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.clients.push(Client {
            id,
            sock,
            vmid: None,
            link: 0,
            since: now,
            outbox: VecDeque::new(),
            greeted: false,
        });
        id
    }

    /// One round: read what the ready connections sent (`ready` by connection id), drop the
    /// connections whose hello is late or whose link went, move the RM's packets to the
    /// outboxes and send what the sockets take; then retire the connections that are done
    /// (their sockets are dropped, which closes them).
    pub fn round(
        &mut self,
        ready: &dyn Fn(u64) -> Option<Ready>,
        now: Instant,
        io: &mut dyn Sockets<S>,
        ep: &mut dyn Endpoint,
        log: &mut dyn FnMut(Event<'_>),
    ) {
        let mut online: HashSet<u16> = self.connected().collect();
        let mut fates = Vec::with_capacity(self.clients.len());
        // Clients whose endpoint already heard they went (in the input pass).
        let mut told = Vec::with_capacity(self.clients.len());
        for c in self.clients.iter_mut() {
            let fate = match ready(c.id) {
                Some(r) => serve_input(c, r, io, ep, &mut online, log),
                None => Fate::Keep,
            };
            // A client that hung up frees its VMID at once: a reconnect later in this round
            // (clients are served oldest first) is then accepted. The endpoint hears of it now,
            // before that reconnect speaks: told at the end of the round, it would drop the
            // partial message the new client had begun.
            let gone = matches!(fate, Fate::Close | Fate::Drop(_));
            if let (Some(v), true) = (c.vmid, gone) {
                online.remove(&v);
                ep.disconnected(v);
            }
            told.push(gone);
            fates.push(fate);
        }
        for (c, fate) in self.clients.iter_mut().zip(fates.iter_mut()) {
            if matches!(fate, Fate::Keep) {
                *fate = match c.vmid {
                    None if now.saturating_duration_since(c.since) > HELLO_TIMEOUT => {
                        Fate::Drop("no hello in time")
                    }
                    None => Fate::Keep,
                    Some(vmid) if ep.link(vmid) != Some(c.link) => {
                        Fate::Drop("its VM was reset or deallocated")
                    }
                    Some(vmid) => flush(c, vmid, io, ep, log),
                };
            }
        }
        let mut fates = fates.into_iter().zip(told);
        self.clients.retain(|c| {
            let (fate, told) = fates.next().unwrap_or((Fate::Keep, false));
            let vmid = c.vmid;
            if let (Some(v), false, false) = (vmid, told, matches!(fate, Fate::Keep)) {
                ep.disconnected(v);
            }
            match fate {
                Fate::Keep => true,
                Fate::Close => {
                    if let Some(v) = vmid {
                        log(Event::Disconnected(v));
                    }
                    false
                }
                Fate::Drop(why) => {
                    log(Event::Dropped { vmid, why });
                    false
                }
            }
        });
    }
}

/// Read what a ready client sent (hello, then message-queue messages).
fn serve_input<S>(
    c: &mut Client<S>,
    ready: Ready,
    io: &mut dyn Sockets<S>,
    ep: &mut dyn Endpoint,
    online: &mut HashSet<u16>,
    log: &mut dyn FnMut(Event<'_>),
) -> Fate {
    // One byte more than the largest packet, so a longer one shows.
    let mut buf = [0u8; MAX_PACKET + 1];
    for _ in 0..READ_BUDGET {
        let n = match io.recv(&c.sock, &mut buf) {
            Recv::Packet(n) => n,
            Recv::Empty => break,
            Recv::Closed => return Fate::Close,
        };
        if n > MAX_PACKET {
            return Fate::Drop("packet longer than 240 bytes");
        }
        let packet = &buf[..n];
        match c.vmid {
            None => {
                let Some(vmid) = parse_hello(packet) else {
                    return Fate::Drop("first packet is not a GRM1 hello");
                };
                let Some(link) = ep.link(vmid) else {
                    log(Event::Refused {
                        vmid: Some(vmid),
                        why:
                            "no such VM, or its RM message queues do not exist yet (before VM_INIT)",
                    });
                    return Fate::Close;
                };
                if !online.insert(vmid) {
                    log(Event::Refused {
                        vmid: Some(vmid),
                        why: "VMID already connected",
                    });
                    return Fate::Close;
                }
                if online.len() > MAX_CONNECTED {
                    online.remove(&vmid);
                    log(Event::Refused {
                        vmid: Some(vmid),
                        why: "too many connected clients",
                    });
                    return Fate::Close;
                }
                // The answer goes out first, before anything the RM queues for this VM.
                c.outbox.push_back(hello(vmid).to_vec());
                c.vmid = Some(vmid);
                c.link = link;
                ep.connected(vmid);
                log(Event::Connected(vmid));
            }
            Some(vmid) => {
                // Another client's request (HLOS deallocating this VM) may have ended the
                // link since the last packet.
                if ep.link(vmid) != Some(c.link) {
                    return Fate::Drop("its VM was reset or deallocated");
                }
                log(Event::Rx(vmid, packet));
                ep.packet(vmid, packet);
            }
        }
    }
    if ready.hangup && !ready.readable {
        return Fate::Close;
    }
    Fate::Keep
}

/// Move the RM's packets for `vmid` to the client's outbox and send what the socket takes.
fn flush<S>(
    c: &mut Client<S>,
    vmid: u16,
    io: &mut dyn Sockets<S>,
    ep: &mut dyn Endpoint,
    log: &mut dyn FnMut(Event<'_>),
) -> Fate {
    while let Some(p) = ep.pop_outgoing(vmid) {
        if c.outbox.len() >= MAX_OUTBOX {
            return Fate::Drop("client does not read its replies");
        }
        c.outbox.push_back(p);
    }
    while let Some(p) = c.outbox.front() {
        match io.send(&c.sock, p) {
            Send::Sent => {
                if c.greeted {
                    log(Event::Tx(vmid, p));
                }
                c.greeted = true;
                c.outbox.pop_front();
            }
            Send::Full => break,
            Send::Failed => return Fate::Close,
        }
    }
    Fate::Keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Sockets as queues: what each client sends, what it got, and whether it hung up.
    #[derive(Default)]
    struct Fake {
        inbound: HashMap<u32, VecDeque<Vec<u8>>>,
        hung_up: HashSet<u32>,
        got: HashMap<u32, Vec<Vec<u8>>>,
    }

    impl Sockets<u32> for Fake {
        fn recv(&mut self, s: &u32, buf: &mut [u8]) -> Recv {
            match self.inbound.get_mut(s).and_then(VecDeque::pop_front) {
                Some(p) => {
                    let n = p.len().min(buf.len());
                    buf[..n].copy_from_slice(&p[..n]);
                    Recv::Packet(p.len())
                }
                None if self.hung_up.contains(s) => Recv::Closed,
                None => Recv::Empty,
            }
        }
        fn send(&mut self, s: &u32, p: &[u8]) -> Send {
            self.got.entry(*s).or_default().push(p.to_vec());
            Send::Sent
        }
    }

    /// An endpoint with links for VMIDs 3 and 0x80 that echoes every packet back.
    #[derive(Default)]
    struct Echo {
        out: HashMap<u16, VecDeque<Vec<u8>>>,
        events: Vec<String>,
    }

    impl Endpoint for Echo {
        fn link(&self, vmid: u16) -> Option<u64> {
            [3, 0x80].contains(&vmid).then_some(u64::from(vmid))
        }
        fn connected(&mut self, vmid: u16) {
            self.events.push(format!("connected {vmid}"));
        }
        fn disconnected(&mut self, vmid: u16) {
            self.events.push(format!("disconnected {vmid}"));
        }
        fn packet(&mut self, vmid: u16, p: &[u8]) {
            self.out.entry(vmid).or_default().push_back(p.to_vec());
        }
        fn pop_outgoing(&mut self, vmid: u16) -> Option<Vec<u8>> {
            self.out.get_mut(&vmid)?.pop_front()
        }
    }

    #[test]
    fn hello_then_packets_then_hangup() {
        let (mut hub, mut io, mut ep) = (Hub::new(), Fake::default(), Echo::default());
        let t0 = Instant::now();
        hub.add(1u32, t0, &mut |_| {});
        io.inbound
            .insert(1, VecDeque::from([hello(3).to_vec(), b"ping".to_vec()]));
        let r = Ready {
            readable: true,
            hangup: false,
        };
        hub.round(&|_| Some(r), t0, &mut io, &mut ep, &mut |_| {});
        assert_eq!(io.got[&1], [hello(3).to_vec(), b"ping".to_vec()]);
        assert_eq!(hub.connected().collect::<Vec<_>>(), [3]);
        io.hung_up.insert(1);
        hub.round(&|_| Some(r), t0, &mut io, &mut ep, &mut |_| {});
        assert!(hub.clients().is_empty());
        assert_eq!(ep.events, ["connected 3", "disconnected 3"]);
    }

    #[test]
    fn readiness_follows_its_connection_when_a_silent_one_is_evicted() {
        // A connected client, then MAX_PENDING silent ones; a new connection evicts the oldest
        // silent one. Readiness is given by connection id, so the hangup of the newest
        // connection is not taken for the connected client's (which has nothing to read).
        let (mut hub, mut io, mut ep) = (Hub::new(), Fake::default(), Echo::default());
        let t0 = Instant::now();
        let a = hub.add(0u32, t0, &mut |_| {});
        io.inbound.insert(0, VecDeque::from([hello(0x80).to_vec()]));
        let rd = Ready {
            readable: true,
            hangup: false,
        };
        hub.round(
            &|id| (id == a).then_some(rd),
            t0,
            &mut io,
            &mut ep,
            &mut |_| {},
        );
        for s in 1..=MAX_PENDING as u32 {
            hub.add(s, t0, &mut |_| {});
        }
        let late = hub.add(99, t0, &mut |_| {});
        assert_eq!(hub.clients().len(), 1 + MAX_PENDING);
        io.hung_up.insert(99);
        let hup = Ready {
            readable: false,
            hangup: true,
        };
        hub.round(
            &|id| (id == late).then_some(hup),
            t0,
            &mut io,
            &mut ep,
            &mut |_| {},
        );
        assert_eq!(hub.connected().collect::<Vec<_>>(), [0x80]);
        assert!(hub.clients().iter().all(|c| c.id() != late));
    }

    #[test]
    fn oversized_packets_bad_hellos_and_late_hellos_drop_the_client() {
        let (mut hub, mut io, mut ep) = (Hub::new(), Fake::default(), Echo::default());
        let t0 = Instant::now();
        let r = Ready {
            readable: true,
            hangup: false,
        };
        let mut why = Vec::new();
        let mut log = |e: Event<'_>| {
            if let Event::Dropped { why: w, .. } | Event::Refused { why: w, .. } = e {
                why.push(w.to_string());
            }
        };
        for (s, first) in [
            (1u32, hello(3).to_vec()),
            (2, b"hello".to_vec()),
            (3, hello(7).to_vec()),
        ] {
            hub.add(s, t0, &mut log);
            io.inbound.insert(s, VecDeque::from([first]));
        }
        io.inbound.get_mut(&1).unwrap().push_back(vec![0; 241]);
        hub.add(4, t0, &mut log);
        hub.round(&|id| (id != 3).then_some(r), t0, &mut io, &mut ep, &mut log);
        hub.round(
            &|_| None,
            t0 + HELLO_TIMEOUT * 2,
            &mut io,
            &mut ep,
            &mut log,
        );
        assert!(hub.clients().is_empty());
        assert_eq!(
            why,
            [
                // Refusals are logged as they happen, drops when the round retires the client.
                "no such VM, or its RM message queues do not exist yet (before VM_INIT)",
                "packet longer than 240 bytes",
                "first packet is not a GRM1 hello",
                "no hello in time"
            ]
        );
    }

    /// A client that hangs up and a new client of the same VM in the same round: the old
    /// one's goodbye must not drop the partial message the new one has begun (the RM's
    /// reassembly of that VM is reset when the old client goes, before the new one speaks).
    #[test]
    fn a_reconnect_in_the_same_round_keeps_the_new_clients_partial_message() {
        use crate::serve_transport::endpoint::RmEndpoint;
        use gunyah_rm_abi::{Fragmenter, MsgId, MsgType, RpcHeader};
        let mut ep = RmEndpoint::new(crate::sim::small_rm());
        let (mut hub, mut io) = (Hub::new(), Fake::default());
        let t0 = Instant::now();
        let r = Ready {
            readable: true,
            hangup: false,
        };
        hub.add(1u32, t0, &mut |_| {});
        io.inbound.insert(1, VecDeque::from([hello(3).to_vec()]));
        hub.round(&|_| Some(r), t0, &mut io, &mut ep, &mut |_| {});
        assert_eq!(hub.connected().collect::<Vec<_>>(), [3]);
        // A 300-byte SIM_VM_WRITE by HLOS to its own RAM: two packets.
        let mut req = 3u16.to_le_bytes().to_vec();
        req.extend_from_slice(&[0, 0]);
        req.extend_from_slice(&284u32.to_le_bytes());
        req.extend_from_slice(&0x4000_0000u64.to_le_bytes());
        req.resize(300, 0xAB);
        let packets: Vec<Vec<u8>> = Fragmenter::request(7, MsgId::SIM_VM_WRITE, &req)
            .unwrap()
            .map(|p| p.to_vec())
            .collect();
        assert_eq!(packets.len(), 2);
        // Client 1 hangs up; client 2 connects as HLOS and sends the first packet, same round.
        io.hung_up.insert(1);
        hub.add(2u32, t0, &mut |_| {});
        io.inbound
            .insert(2, VecDeque::from([hello(3).to_vec(), packets[0].clone()]));
        hub.round(&|_| Some(r), t0, &mut io, &mut ep, &mut |_| {});
        assert_eq!(hub.connected().collect::<Vec<_>>(), [3]);
        // The rest of the request, next round: the reply must come.
        io.inbound
            .get_mut(&2)
            .unwrap()
            .push_back(packets[1].clone());
        hub.round(&|_| Some(r), t0, &mut io, &mut ep, &mut |_| {});
        let replies: Vec<&Vec<u8>> = io.got[&2]
            .iter()
            .skip(1)
            .filter(|p| RpcHeader::parse(p).is_ok_and(|(h, _)| h.msg_type() == MsgType::Reply))
            .collect();
        assert_eq!(replies.len(), 1, "the new client's request got no reply");
    }
}
