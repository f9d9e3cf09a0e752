//! RM RPC transport: per-client reassembly of fragmented requests (§1.4) and
//! the outgoing queue of replies and notifications (§1.5).
//!
//! Receive rules follow the RM: packets with a bad header are dropped; a new
//! first fragment abandons a partial message; a continuation must match the
//! pending message's msg_id, seq and fragment count, else it is dropped.
//! Outgoing: notifications carry their own global 16-bit counter; at most
//! [`MAX_QUEUED_NOTIFICATIONS`] notifications wait per VM and the oldest is
//! dropped when that is exceeded.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use crate::platform::Vmid;

/// Bytes of an RPC header.
pub const HEADER_SIZE: usize = 8;
/// Largest message-queue message.
pub const MAX_PACKET: usize = 240;
/// Payload bytes per fragment.
pub const FRAGMENT_PAYLOAD: usize = MAX_PACKET - HEADER_SIZE;
/// Most continuation fragments.
pub const MAX_CONTINUATIONS: usize = 62;
/// Notifications kept per VM before the oldest is dropped.
pub const MAX_QUEUED_NOTIFICATIONS: usize = 256;

/// Message type: continuation.
pub const TYPE_CONTINUATION: u8 = 0;
/// Message type: request.
pub const TYPE_REQUEST: u8 = 1;
/// Message type: reply.
pub const TYPE_REPLY: u8 = 2;
/// Message type: notification.
pub const TYPE_NOTIFICATION: u8 = 3;

/// A decoded RPC header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Message type (bits 1:0 of byte 1).
    pub msg_type: u8,
    /// Continuation count (bits 7:2 of byte 1).
    pub fragments: u8,
    /// Sequence number.
    pub seq: u16,
    /// Message ID.
    pub msg_id: u32,
}

impl Header {
    /// Parse and validate as the RM does; `None` means drop the packet.
    pub fn parse(p: &[u8]) -> Option<(Header, &[u8])> {
        if p.len() < HEADER_SIZE || p[0] != 0x21 {
            return None;
        }
        let h = Header {
            msg_type: p[1] & 3,
            fragments: p[1] >> 2,
            seq: u16::from_le_bytes([p[2], p[3]]),
            msg_id: u32::from_le_bytes([p[4], p[5], p[6], p[7]]),
        };
        if h.fragments as usize > MAX_CONTINUATIONS {
            return None;
        }
        Some((h, &p[HEADER_SIZE..]))
    }

    /// Encode the 8 header bytes.
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let s = self.seq.to_le_bytes();
        let m = self.msg_id.to_le_bytes();
        [
            0x21,
            (self.fragments << 2) | (self.msg_type & 3),
            s[0],
            s[1],
            m[0],
            m[1],
            m[2],
            m[3],
        ]
    }
}

/// Split a logical message into packets. Returns `None` if it needs more
/// than 62 continuations.
pub fn fragment(msg_type: u8, seq: u16, msg_id: u32, payload: &[u8]) -> Option<Vec<Vec<u8>>> {
    let n = if payload.is_empty() {
        1
    } else {
        payload.len().div_ceil(FRAGMENT_PAYLOAD)
    };
    if n > MAX_CONTINUATIONS + 1 {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let h = Header {
            msg_type: if i == 0 { msg_type } else { TYPE_CONTINUATION },
            fragments: (n - 1) as u8,
            seq,
            msg_id,
        };
        let lo = i * FRAGMENT_PAYLOAD;
        let hi = (lo + FRAGMENT_PAYLOAD).min(payload.len());
        let mut p = Vec::with_capacity(HEADER_SIZE + hi - lo);
        p.extend_from_slice(&h.encode());
        p.extend_from_slice(&payload[lo..hi]);
        out.push(p);
    }
    Some(out)
}

/// A complete message received from a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// Message type of the first fragment.
    pub msg_type: u8,
    /// Sequence number.
    pub seq: u16,
    /// Message ID.
    pub msg_id: u32,
    /// Reassembled payload.
    pub payload: Vec<u8>,
}

#[derive(Clone, Debug)]
struct Partial {
    hdr: Header,
    remaining: u8,
    payload: Vec<u8>,
}

/// Reassembles one client's fragments.
#[derive(Clone, Debug, Default)]
pub struct Reassembler {
    partial: Option<Partial>,
}

impl Reassembler {
    /// Feed one packet; returns a message when one completes.
    pub fn push(&mut self, packet: &[u8]) -> Option<Incoming> {
        let (h, body) = Header::parse(packet)?;
        if h.msg_type == TYPE_CONTINUATION {
            let p = self.partial.as_mut()?;
            if p.hdr.msg_id != h.msg_id || p.hdr.seq != h.seq || p.hdr.fragments != h.fragments {
                return None;
            }
            p.payload.extend_from_slice(body);
            p.remaining -= 1;
            if p.remaining == 0 {
                let p = self.partial.take()?;
                return Some(Incoming {
                    msg_type: p.hdr.msg_type,
                    seq: p.hdr.seq,
                    msg_id: p.hdr.msg_id,
                    payload: p.payload,
                });
            }
            return None;
        }
        // A new message abandons any partial one.
        self.partial = None;
        if h.fragments == 0 {
            return Some(Incoming {
                msg_type: h.msg_type,
                seq: h.seq,
                msg_id: h.msg_id,
                payload: body.to_vec(),
            });
        }
        self.partial = Some(Partial {
            hdr: h,
            remaining: h.fragments,
            payload: body.to_vec(),
        });
        None
    }

    /// Whether a partial message is pending.
    pub fn pending(&self) -> bool {
        self.partial.is_some()
    }
}

/// A queued outgoing message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// Destination VM.
    pub to: Vmid,
    /// TYPE_REPLY or TYPE_NOTIFICATION.
    pub msg_type: u8,
    /// Sequence number (the request's for replies; the counter for notifications).
    pub seq: u16,
    /// Message ID.
    pub msg_id: u32,
    /// Logical payload (a reply's starts with its error code).
    pub payload: Vec<u8>,
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
    pub fn reply(&mut self, to: Vmid, seq: u16, msg_id: u32, payload: Vec<u8>) {
        self.queue.push_back(Outgoing {
            to,
            msg_type: TYPE_REPLY,
            seq,
            msg_id,
            payload,
        });
    }

    /// Queue a notification, dropping `to`'s oldest one if its queue is full.
    pub fn notify(&mut self, to: Vmid, seq: u16, msg_id: u32, payload: Vec<u8>) {
        let n = self.notif_count.entry(to).or_insert(0);
        if *n >= MAX_QUEUED_NOTIFICATIONS {
            if let Some(i) = self
                .queue
                .iter()
                .position(|o| o.to == to && o.msg_type == TYPE_NOTIFICATION)
            {
                self.queue.remove(i);
                self.dropped += 1;
            }
        } else {
            *n += 1;
        }
        self.queue.push_back(Outgoing {
            to,
            msg_type: TYPE_NOTIFICATION,
            seq,
            msg_id,
            payload,
        });
    }

    /// Take every queued message.
    pub fn drain(&mut self) -> Vec<Outgoing> {
        self.notif_count.clear();
        self.queue.drain(..).collect()
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

    #[test]
    fn fragments_and_reassembles() {
        let payload: Vec<u8> = (0..500u32).map(|i| i as u8).collect();
        let pk = fragment(TYPE_REQUEST, 9, 0x5100_0013, &payload).unwrap();
        assert_eq!(pk.len(), 3); // 232 + 232 + 36
        assert_eq!(&pk[0][..8], &[0x21, (2 << 2) | 1, 9, 0, 0x13, 0, 0, 0x51]);
        assert_eq!(pk[1][1], 2 << 2);
        let mut r = Reassembler::default();
        assert!(r.push(&pk[0]).is_none());
        assert!(r.push(&pk[1]).is_none());
        let m = r.push(&pk[2]).unwrap();
        assert_eq!(m.payload, payload);
        assert_eq!(
            (m.seq, m.msg_id, m.msg_type),
            (9, 0x5100_0013, TYPE_REQUEST)
        );
    }

    #[test]
    fn drops_what_rm_drops() {
        let mut r = Reassembler::default();
        // Stray continuation.
        assert!(r.push(&[0x21, 1 << 2, 0, 0, 1, 0, 0, 0]).is_none());
        // Bad api byte.
        assert!(r.push(&[0x22, 1, 0, 0, 1, 0, 0, 0]).is_none());
        // 63 continuations announced.
        assert!(r.push(&[0x21, (63 << 2) | 1, 0, 0, 1, 0, 0, 0]).is_none());
        assert!(!r.pending());
        // Continuation with the wrong seq is dropped; the right one completes.
        assert!(r
            .push(&[0x21, (1 << 2) | 1, 5, 0, 1, 0, 0, 0, 0xAA])
            .is_none());
        assert!(r.push(&[0x21, 1 << 2, 6, 0, 1, 0, 0, 0, 0xBB]).is_none());
        let m = r.push(&[0x21, 1 << 2, 5, 0, 1, 0, 0, 0, 0xCC]).unwrap();
        assert_eq!(m.payload, [0xAA, 0xCC]);
    }

    #[test]
    fn notification_queue_drops_oldest() {
        let mut o = Outbox::default();
        for i in 0..300u16 {
            o.notify(7, i, 1, Vec::new());
        }
        o.reply(7, 0, 2, Vec::new());
        let d = o.drain();
        assert_eq!(d.len(), 257);
        assert_eq!(d[0].seq, 44); // 300 - 256
        assert_eq!(o.dropped, 44);
    }
}
