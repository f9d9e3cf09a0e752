//! RM RPC transport: per-client reassembly of fragmented requests (§1.4) and
//! the outgoing queue of replies and notifications (§1.5).
//!
//! Receive rules follow the RM: packets with a bad header are dropped; a new
//! first fragment abandons a partial message; a continuation must match the
//! pending message's msg_id, seq and fragment count, else it is dropped.
//! Outgoing: notifications carry their own global 16-bit counter; at most
//! [`MAX_QUEUED_NOTIFICATIONS`] notifications wait per VM and the oldest is
//! dropped when that is exceeded.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use gunyah_rm_abi::header::{HEADER_SIZE, MAX_FRAGMENT_PAYLOAD, MAX_PACKET_SIZE};
use gunyah_rm_abi::{
    Encode, Fragmenter, MsgId, MsgType, Reassembler, Received, RmError, RpcHeader,
};
use zerocopy::IntoBytes;

use crate::platform::Vmid;
use crate::reply::Refusal;

/// Notifications kept per VM before the oldest is dropped.
pub const MAX_QUEUED_NOTIFICATIONS: usize = 256;

/// The largest refusal trailer.
const TRAILER_MAX: usize = 8;

/// The fragmenter of a reply: the data borrowed from `result`, a refusal's trailer written in
/// `trailer`. `None` if it needs more than 62 continuations.
fn reply_fragmenter<'a>(
    seq: u16,
    msg_id: u32,
    result: &'a Result<Vec<u8>, Refusal>,
    trailer: &'a mut [u8; TRAILER_MAX],
) -> Option<Fragmenter<'a>> {
    let (code, data): (RmError, &[u8]) = match result {
        Ok(d) => (RmError::Ok, d),
        Err(r) => (r.code, r.trailer.map_or(&[][..], |t| t.write(trailer))),
    };
    Fragmenter::reply(seq, MsgId(msg_id), code, data).ok()
}

/// Each packet of `f`, in order, through one stack buffer.
fn for_each_packet(mut f: Fragmenter<'_>, mut put: impl FnMut(&[u8])) {
    let mut buf = [0u8; MAX_PACKET_SIZE];
    while let Some(n) = f.next_into(&mut buf) {
        put(&buf[..n]);
    }
}

/// Append the packets of `f` to `out`, each for `to` and each its own exact-size vector.
fn push_packets(out: &mut Vec<(Vmid, Vec<u8>)>, to: Vmid, f: Fragmenter<'_>) {
    out.reserve(f.packet_count());
    for_each_packet(f, |p| out.push((to, p.to_vec())));
}

impl Outgoing {
    /// Append this message's packets to `out` as `(to, packet)`. A reply too large for 63
    /// fragments becomes NORESOURCE so the caller is never left waiting; such a notification
    /// is not sent.
    pub fn packets_into(&self, out: &mut Vec<(Vmid, Vec<u8>)>) {
        let mut trailer = [0u8; TRAILER_MAX];
        let f = match &self.body {
            Body::Reply(r) => {
                reply_fragmenter(self.seq, self.msg_id, r, &mut trailer).or_else(|| {
                    Fragmenter::reply(self.seq, MsgId(self.msg_id), RmError::NoResource, &[]).ok()
                })
            }
            Body::Notification(p) => Fragmenter::notification(self.seq, MsgId(self.msg_id), p).ok(),
            Body::Packet(p) => {
                out.push((self.to, p.clone()));
                return;
            }
        };
        if let Some(f) = f {
            push_packets(out, self.to, f);
        }
    }

    /// [`Outgoing::packets_into`], consuming the message: a notification made into its packet
    /// when it was queued ([`Body::Packet`]) moves out as it is, no copy, no allocation.
    pub fn into_packets(self, out: &mut Vec<(Vmid, Vec<u8>)>) {
        match self.body {
            Body::Packet(p) => out.push((self.to, p)),
            _ => self.packets_into(out),
        }
    }
}

/// The one packet of notification `msg_id` (sequence number `seq`) carrying `payload`'s
/// encoding, written straight into one exact-size vector: the bytes the fragmenter makes of the
/// encoded payload, without encoding it into a buffer first and copying it again (one
/// allocation, the packet). `None` if it takes more than one packet or cannot be encoded.
pub fn notification_packet<E: Encode + ?Sized>(
    seq: u16,
    msg_id: MsgId,
    payload: &E,
) -> Option<Vec<u8>> {
    let len = payload.encoded_len();
    if len > MAX_FRAGMENT_PAYLOAD {
        return None;
    }
    let mut p = alloc::vec![0u8; HEADER_SIZE + len];
    let (head, body) = p.split_at_mut(HEADER_SIZE);
    head.copy_from_slice(RpcHeader::new(MsgType::Notification, 0, seq, msg_id).as_bytes());
    let n = payload.encode(body).ok()?;
    p.truncate(HEADER_SIZE + n);
    Some(p)
}

/// A complete request received from a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// Sequence number.
    pub seq: u16,
    /// Message ID.
    pub msg_id: u32,
    /// Reassembled payload.
    pub payload: Vec<u8>,
}

/// One client's reassembly state (the abi `Reassembler`, which applies the
/// RM's receive rules: bad headers, stray or mismatched continuations are
/// dropped; a new first fragment abandons a partial message).
pub struct ClientRx(Box<Reassembler>);

impl Default for ClientRx {
    fn default() -> Self {
        ClientRx(Box::new(Reassembler::new()))
    }
}

impl core::fmt::Debug for ClientRx {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

impl ClientRx {
    /// Feed one packet; returns a request when one completes. Replies and
    /// notifications from clients are not handled by the RM and are dropped.
    pub fn push(&mut self, packet: &[u8]) -> Option<Incoming> {
        match self.0.push(packet).received {
            Received::Complete(m) if m.ty == MsgType::Request => Some(Incoming {
                seq: m.seq,
                msg_id: m.msg_id.0,
                payload: m.payload.to_vec(),
            }),
            _ => None,
        }
    }

    /// Feed one packet; when it completes a request, copy its payload into `payload` (cleared
    /// first, its allocation kept) and return its `(seq, msg_id)`. As [`ClientRx::push`]
    /// otherwise, without a new vector per request.
    pub fn push_into(&mut self, packet: &[u8], payload: &mut Vec<u8>) -> Option<(u16, u32)> {
        match self.0.push(packet).received {
            Received::Complete(m) if m.ty == MsgType::Request => {
                payload.clear();
                payload.extend_from_slice(m.payload);
                Some((m.seq, m.msg_id.0))
            }
            _ => None,
        }
    }

    /// Whether a partial message is pending.
    pub fn pending(&self) -> bool {
        self.0.pending().is_some()
    }
}

/// What a queued message carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// A reply: its data, or why the request was refused (kept typed until the fragmenter).
    Reply(Result<Vec<u8>, Refusal>),
    /// A notification's payload.
    Notification(Vec<u8>),
    /// A notification of one packet, made into that packet (header and payload, exactly as
    /// the fragmenter makes it from the payload) when it was queued.
    Packet(Vec<u8>),
}

/// A queued outgoing message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// Destination VM.
    pub to: Vmid,
    /// Sequence number (the request's for replies; the counter for notifications).
    pub seq: u16,
    /// Message ID.
    pub msg_id: u32,
    /// What it carries.
    pub body: Body,
}

impl Outgoing {
    /// Whether it is a notification.
    pub fn is_notification(&self) -> bool {
        matches!(self.body, Body::Notification(_) | Body::Packet(_))
    }
}

/// Replies and notifications waiting for the transport, in the order made.
#[derive(Clone, Debug, Default)]
pub struct Outbox {
    queue: VecDeque<Outgoing>,
    notif_count: BTreeMap<Vmid, usize>,
    /// Notifications dropped because a VM's queue was full.
    pub dropped: u64,
}

impl Outbox {
    /// Queue a reply.
    pub fn reply(&mut self, to: Vmid, seq: u16, msg_id: u32, result: Result<Vec<u8>, Refusal>) {
        self.queue.push_back(Outgoing {
            to,
            seq,
            msg_id,
            body: Body::Reply(result),
        });
    }

    /// Queue a notification, dropping `to`'s oldest one if its queue is full.
    pub fn notify(&mut self, to: Vmid, seq: u16, msg_id: u32, payload: Vec<u8>) {
        self.notify_body(to, seq, msg_id, Body::Notification(payload));
    }

    /// [`Outbox::notify`] of a notification already made into its one packet
    /// ([`notification_packet`]).
    pub fn notify_packet(&mut self, to: Vmid, seq: u16, msg_id: u32, packet: Vec<u8>) {
        self.notify_body(to, seq, msg_id, Body::Packet(packet));
    }

    fn notify_body(&mut self, to: Vmid, seq: u16, msg_id: u32, body: Body) {
        let n = self.notif_count.entry(to).or_insert(0);
        if *n >= MAX_QUEUED_NOTIFICATIONS {
            if let Some(i) = self
                .queue
                .iter()
                .position(|o| o.to == to && o.is_notification())
            {
                self.queue.remove(i);
                self.dropped += 1;
            }
        } else {
            *n += 1;
        }
        self.queue.push_back(Outgoing {
            to,
            seq,
            msg_id,
            body,
        });
    }

    /// Take every queued message, in order.
    pub fn drain(&mut self) -> impl Iterator<Item = Outgoing> + '_ {
        self.notif_count.clear();
        self.queue.drain(..)
    }

    /// Drop everything queued for `vmid` (it went away).
    pub fn forget(&mut self, vmid: Vmid) {
        self.queue.retain(|o| o.to != vmid);
        self.notif_count.remove(&vmid);
    }

    /// Number of queued messages.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply's packets, each its own vector.
    fn reply_packets(
        seq: u16,
        msg_id: u32,
        result: &Result<Vec<u8>, Refusal>,
    ) -> Option<Vec<Vec<u8>>> {
        let mut trailer = [0u8; TRAILER_MAX];
        let mut out = Vec::new();
        for_each_packet(reply_fragmenter(seq, msg_id, result, &mut trailer)?, |p| {
            out.push(p.to_vec())
        });
        Some(out)
    }

    fn req(frags: u8, ty: u8, seq: u16, id: u32, body: &[u8]) -> Vec<u8> {
        let mut p = vec![0x21, (frags << 2) | ty];
        p.extend_from_slice(&seq.to_le_bytes());
        p.extend_from_slice(&id.to_le_bytes());
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn reply_fragments_carry_error_code_first() {
        // 4-byte error + 300 bytes of trailer-free data would be an OK reply; a refusal
        // carries only its code and trailer. 4 + 300 = 304 → 232 + 72.
        let data: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let pk = reply_packets(9, 0x5100_0011, &Ok(data)).unwrap();
        assert_eq!(pk.len(), 2);
        assert_eq!(
            &pk[0][..12],
            &[0x21, (1 << 2) | 2, 9, 0, 0x11, 0, 0, 0x51, 0, 0, 0, 0]
        );
        assert_eq!(&pk[1][..8], &[0x21, 1 << 2, 9, 0, 0x11, 0, 0, 0x51]);
        assert_eq!(pk[0].len() + pk[1].len() - 16, 304);
        // A refusal: the code, then its trailer.
        let no = Err(crate::reply::Refusal {
            code: RmError::MemInvalid,
            trailer: Some(crate::reply::Trailer::FaultIpa(0x8000_1000)),
        });
        let pk = reply_packets(3, 0x4700_00F1, &no).unwrap();
        assert_eq!(
            pk,
            vec![vec![
                0x21, 2, 3, 0, 0xF1, 0, 0, 0x47, 0xA, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0, 0
            ]]
        );
    }

    #[test]
    fn reassembles_requests_and_drops_what_rm_drops() {
        let mut r = ClientRx::default();
        // Stray continuation, bad api byte, 63 continuations: dropped.
        assert!(r.push(&req(1, 0, 0, 1, &[])).is_none());
        assert!(r.push(&[0x22, 1, 0, 0, 1, 0, 0, 0]).is_none());
        assert!(r.push(&req(63, 1, 0, 1, &[])).is_none());
        assert!(!r.pending());
        // Continuation with the wrong seq is dropped; the right one completes.
        assert!(r.push(&req(1, 1, 5, 1, &[0xAA])).is_none());
        assert!(r.push(&req(1, 0, 6, 1, &[0xBB])).is_none());
        let m = r.push(&req(1, 0, 5, 1, &[0xCC])).unwrap();
        assert_eq!((m.seq, m.msg_id, m.payload), (5, 1, vec![0xAA, 0xCC]));
        // A notification from a client is not a request.
        assert!(r.push(&req(0, 3, 1, 1, &[])).is_none());
    }

    /// A notification made into its packet when queued goes out byte for byte as the one
    /// fragmented at the drain; one that needs more than one packet is not made into one.
    #[test]
    fn a_notification_packet_made_at_queue_time_is_the_fragmenters() {
        use gunyah_rm_abi::wire::Bytes;
        for len in [0usize, 1, 3, 16, 8 + 8 * 4, MAX_PACKET_SIZE - 8] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let p = notification_packet(0xBEEF, MsgId(0x4710_0001), &Bytes(&payload)).unwrap();
            let mut a = Vec::new();
            Outgoing {
                to: 3,
                seq: 0xBEEF,
                msg_id: 0x4710_0001,
                body: Body::Notification(payload),
            }
            .packets_into(&mut a);
            let mut b = Vec::new();
            let o = Outgoing {
                to: 3,
                seq: 0xBEEF,
                msg_id: 0x4710_0001,
                body: Body::Packet(p),
            };
            assert!(o.is_notification());
            o.clone().packets_into(&mut b);
            assert_eq!(a, b, "{len}");
            let mut c = Vec::new();
            o.into_packets(&mut c);
            assert_eq!(a, c, "{len}");
        }
        assert!(notification_packet(1, MsgId(2), &Bytes(&[0; MAX_PACKET_SIZE - 7])).is_none());
    }

    /// COW_BROKEN encoded straight into its packet is the fragmenter's packet of the encoded
    /// notification, byte for byte, up to the most IPAs one packet holds; one more is refused.
    #[test]
    fn a_cow_broken_packet_is_the_encoded_notifications() {
        use gunyah_rm_abi::ext::CowBroken;
        use zerocopy::little_endian::U64;
        for n in 0..=28u64 {
            let ipas: Vec<U64> = (0..n)
                .map(|i| U64::new(0x80_0000_0000 + i * 0x1_2345_6000))
                .collect();
            let c = CowBroken {
                vmid: 0x1234,
                ipas: &ipas,
            };
            let mut payload = vec![0u8; c.encoded_len()];
            let len = c.encode(&mut payload).unwrap();
            payload.truncate(len);
            let mut f = Fragmenter::notification(0xBEEF, MsgId::COW_BROKEN, &payload).unwrap();
            let mut want = vec![0u8; MAX_PACKET_SIZE];
            let wlen = f.next_into(&mut want).unwrap();
            want.truncate(wlen);
            assert_eq!(f.next_into(&mut [0u8; MAX_PACKET_SIZE]), None, "{n} IPAs");
            assert_eq!(
                notification_packet(0xBEEF, MsgId::COW_BROKEN, &c),
                Some(want),
                "{n} IPAs"
            );
        }
        let ipas = [U64::new(0); 29];
        let c = CowBroken {
            vmid: 2,
            ipas: &ipas,
        };
        assert_eq!(notification_packet(1, MsgId::COW_BROKEN, &c), None);
    }

    #[test]
    fn notification_queue_drops_oldest() {
        let mut o = Outbox::default();
        for i in 0..300u16 {
            o.notify(7, i, 1, Vec::new());
        }
        o.reply(7, 0, 2, Ok(Vec::new()));
        let d: Vec<Outgoing> = o.drain().collect();
        assert_eq!(d.len(), 257);
        assert_eq!(d[0].seq, 44); // 300 - 256
        assert_eq!(o.dropped, 44);
    }
}
