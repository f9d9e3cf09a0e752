//! Reassembling message-queue messages into logical messages with the RM's
//! receive rules (spec §1.4), in a fixed buffer (no allocation).
//!
//! | Situation | What happens |
//! |---|---|
//! | header invalid (short, api ≠ 0x21, > 62 continuations) | packet dropped, a pending partial stays |
//! | packet longer than 240 bytes | packet dropped |
//! | new non-continuation while a partial is pending | the partial is dropped ([`Outcome::abandoned`]) |
//! | continuation with no partial | dropped |
//! | continuation whose msg_id, seq or count differs | that fragment dropped, the partial stays |
//! | continuation count reaches 0 | message complete |

use crate::header::{HeaderError, MsgType, RpcHeader, MAX_MESSAGE_PAYLOAD, MAX_PACKET_SIZE};
use crate::msg_id::MsgId;
use crate::RmError;

/// Why a packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The header failed validation.
    Header(HeaderError),
    /// The packet is longer than a message-queue message (240 bytes).
    TooLong {
        /// The packet length.
        len: usize,
    },
    /// A continuation arrived while no partial message was pending.
    OrphanContinuation,
    /// A continuation's msg_id differs from the pending message's.
    MsgIdMismatch {
        /// The pending message's ID.
        expected: MsgId,
        /// The continuation's ID.
        got: MsgId,
    },
    /// A continuation's seq differs from the pending message's.
    SeqMismatch {
        /// The pending message's seq.
        expected: u16,
        /// The continuation's seq.
        got: u16,
    },
    /// A continuation's continuation count differs from the pending message's.
    FragmentCountMismatch {
        /// The pending message's count.
        expected: u8,
        /// The continuation's count.
        got: u8,
    },
}

impl DropReason {
    /// Byte offset in the packet of the field that caused the drop.
    pub fn offset(&self) -> usize {
        match self {
            DropReason::Header(h) => h.offset(),
            DropReason::TooLong { .. } => MAX_PACKET_SIZE,
            DropReason::OrphanContinuation | DropReason::FragmentCountMismatch { .. } => 1,
            DropReason::SeqMismatch { .. } => 2,
            DropReason::MsgIdMismatch { .. } => 4,
        }
    }
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DropReason::Header(h) => write!(f, "{h}"),
            DropReason::TooLong { len } => write!(
                f,
                "packet of {len} bytes is longer than {MAX_PACKET_SIZE} bytes"
            ),
            DropReason::OrphanContinuation => {
                f.write_str("continuation fragment without a message in progress")
            }
            DropReason::MsgIdMismatch { expected, got } => write!(
                f,
                "continuation msg_id {:#010x} does not match {:#010x} in progress",
                got.0, expected.0
            ),
            DropReason::SeqMismatch { expected, got } => write!(
                f,
                "continuation seq {got} does not match seq {expected} in progress"
            ),
            DropReason::FragmentCountMismatch { expected, got } => write!(
                f,
                "continuation fragment count {got} does not match {expected} in progress"
            ),
        }
    }
}

/// A partial message waiting for continuations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Type of the first fragment.
    pub ty: MsgType,
    /// Sequence number.
    pub seq: u16,
    /// Message ID.
    pub msg_id: MsgId,
    /// Continuation count announced in the header.
    pub fragments: u8,
    /// Continuations still expected.
    pub remaining: u8,
    /// Payload bytes received so far.
    pub received: usize,
}

/// A complete logical message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// Request, reply or notification.
    pub ty: MsgType,
    /// Sequence number.
    pub seq: u16,
    /// Message ID.
    pub msg_id: MsgId,
    /// Number of continuations it arrived in.
    pub fragments: u8,
    /// The logical payload (for a reply, starting with the error code).
    pub payload: &'a [u8],
}

impl<'a> Message<'a> {
    /// Split a reply's payload into its error code and data; a payload
    /// shorter than 4 bytes is `MSG_INVALID`.
    pub fn reply_parts(&self) -> Result<(RmError, &'a [u8]), RmError> {
        split_reply(self.payload)
    }
}

/// Split a reply payload into `(error, data)`; shorter than 4 bytes is
/// `MSG_INVALID`.
pub fn split_reply(payload: &[u8]) -> Result<(RmError, &[u8]), RmError> {
    if payload.len() < 4 {
        return Err(RmError::MsgInvalid);
    }
    let (code, data) = payload.split_at(4);
    let code = u32::from_le_bytes([code[0], code[1], code[2], code[3]]);
    Ok((RmError::from_code(code), data))
}

/// What one packet did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received<'a> {
    /// A logical message is complete.
    Complete(Message<'a>),
    /// The fragment was stored; continuations are still expected.
    Partial(Pending),
    /// The packet was dropped.
    Dropped(DropReason),
}

/// The result of [`Reassembler::push`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome<'a> {
    /// What the packet did.
    pub received: Received<'a>,
    /// A partial message this packet replaced (RM drops it silently).
    pub abandoned: Option<Pending>,
}

/// Reassembles one sender's packets. Holds up to 14616 payload bytes.
pub struct Reassembler {
    buf: [u8; MAX_MESSAGE_PAYLOAD],
    pending: Option<Pending>,
}

impl Default for Reassembler {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Reassembler {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Reassembler")
            .field("pending", &self.pending)
            .finish()
    }
}

impl Reassembler {
    /// An empty reassembler.
    pub const fn new() -> Self {
        Reassembler {
            buf: [0; MAX_MESSAGE_PAYLOAD],
            pending: None,
        }
    }

    /// The partial message in progress, if any.
    pub fn pending(&self) -> Option<Pending> {
        self.pending
    }

    /// Forget any partial message (e.g. when the sender disconnects).
    pub fn reset(&mut self) -> Option<Pending> {
        self.pending.take()
    }

    fn drop_packet(reason: DropReason) -> Outcome<'static> {
        Outcome {
            received: Received::Dropped(reason),
            abandoned: None,
        }
    }

    /// Feed one message-queue message.
    pub fn push(&mut self, packet: &[u8]) -> Outcome<'_> {
        if packet.len() > MAX_PACKET_SIZE {
            return Self::drop_packet(DropReason::TooLong { len: packet.len() });
        }
        let (hdr, body) = match RpcHeader::parse(packet) {
            Ok(v) => v,
            Err(e) => return Self::drop_packet(DropReason::Header(e)),
        };
        let ty = hdr.msg_type();
        if ty == MsgType::Continuation {
            return self.push_continuation(&hdr, body);
        }
        let abandoned = self.pending.take();
        // body ≤ 232 bytes, so it always fits.
        self.buf[..body.len()].copy_from_slice(body);
        let p = Pending {
            ty,
            seq: hdr.seq(),
            msg_id: hdr.msg_id(),
            fragments: hdr.fragments(),
            remaining: hdr.fragments(),
            received: body.len(),
        };
        if p.remaining == 0 {
            Outcome {
                received: Received::Complete(self.message(p)),
                abandoned,
            }
        } else {
            self.pending = Some(p);
            Outcome {
                received: Received::Partial(p),
                abandoned,
            }
        }
    }

    fn push_continuation(&mut self, hdr: &RpcHeader, body: &[u8]) -> Outcome<'_> {
        let Some(mut p) = self.pending else {
            return Self::drop_packet(DropReason::OrphanContinuation);
        };
        if hdr.msg_id() != p.msg_id {
            return Self::drop_packet(DropReason::MsgIdMismatch {
                expected: p.msg_id,
                got: hdr.msg_id(),
            });
        }
        if hdr.seq() != p.seq {
            return Self::drop_packet(DropReason::SeqMismatch {
                expected: p.seq,
                got: hdr.seq(),
            });
        }
        if hdr.fragments() != p.fragments {
            return Self::drop_packet(DropReason::FragmentCountMismatch {
                expected: p.fragments,
                got: hdr.fragments(),
            });
        }
        // At most 63 fragments of ≤ 232 bytes each: always within the buffer.
        let end = p.received + body.len();
        debug_assert!(end <= MAX_MESSAGE_PAYLOAD);
        self.buf[p.received..end].copy_from_slice(body);
        p.received = end;
        p.remaining -= 1;
        if p.remaining == 0 {
            self.pending = None;
            Outcome {
                received: Received::Complete(self.message(p)),
                abandoned: None,
            }
        } else {
            self.pending = Some(p);
            Outcome {
                received: Received::Partial(p),
                abandoned: None,
            }
        }
    }

    fn message(&self, p: Pending) -> Message<'_> {
        Message {
            ty: p.ty,
            seq: p.seq,
            msg_id: p.msg_id,
            fragments: p.fragments,
            payload: &self.buf[..p.received],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn hdr(b1: u8, seq: u16, id: u32) -> Vec<u8> {
        let mut v = std::vec![0x21, b1];
        v.extend_from_slice(&seq.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
        v
    }

    fn complete(o: Outcome<'_>) -> Message<'_> {
        match o.received {
            Received::Complete(m) => m,
            other => panic!("expected complete, got {other:?}"),
        }
    }

    #[test]
    fn single_packet_request() {
        let mut r = Reassembler::new();
        let mut p = hdr(0x01, 3, 0x5600_0004);
        p.extend_from_slice(&[0x80, 0, 0, 0]);
        let m = complete(r.push(&p));
        assert_eq!(m.ty, MsgType::Request);
        assert_eq!(m.msg_id, MsgId::VM_START);
        assert_eq!(m.seq, 3);
        assert_eq!(m.payload, &[0x80, 0, 0, 0]);
    }

    #[test]
    fn two_fragment_reply_by_hand() {
        let mut r = Reassembler::new();
        // Reply, 1 continuation: (1 << 2) | 2 = 0x06; continuation 0x04.
        let mut a = hdr(0x06, 9, 0x5100_0011);
        a.extend_from_slice(&[0, 0, 0, 0]); // RM_OK
        a.extend_from_slice(&[0x11; 228]);
        let mut b = hdr(0x04, 9, 0x5100_0011);
        b.extend_from_slice(&[0x22; 5]);
        assert!(matches!(r.push(&a).received, Received::Partial(p) if p.remaining == 1));
        let m = complete(r.push(&b));
        assert_eq!(m.ty, MsgType::Reply);
        assert_eq!(m.payload.len(), 237);
        let (err, data) = m.reply_parts().unwrap();
        assert_eq!(err, RmError::Ok);
        assert_eq!(data.len(), 233);
        assert_eq!(data[227], 0x11);
        assert_eq!(data[228], 0x22);
    }

    #[test]
    fn receive_rules() {
        let mut r = Reassembler::new();
        // Orphan continuation.
        let cont = hdr(0x08, 1, 0x5100_0013);
        assert_eq!(
            r.push(&cont).received,
            Received::Dropped(DropReason::OrphanContinuation)
        );
        // Start a 2-continuation request.
        let first = hdr(0x09, 1, 0x5100_0013);
        assert!(matches!(r.push(&first).received, Received::Partial(_)));
        // Wrong msg_id, seq, fragment count: dropped, partial kept.
        assert_eq!(
            r.push(&hdr(0x08, 1, 0x5100_0012)).received,
            Received::Dropped(DropReason::MsgIdMismatch {
                expected: MsgId::MEM_SHARE,
                got: MsgId::MEM_LEND
            })
        );
        assert_eq!(
            r.push(&hdr(0x08, 2, 0x5100_0013)).received,
            Received::Dropped(DropReason::SeqMismatch {
                expected: 1,
                got: 2
            })
        );
        assert_eq!(
            r.push(&hdr(0x04, 1, 0x5100_0013)).received,
            Received::Dropped(DropReason::FragmentCountMismatch {
                expected: 2,
                got: 1
            })
        );
        // Bad header: dropped, partial kept.
        assert!(matches!(
            r.push(&[0x22, 0x08, 1, 0, 0x13, 0, 0, 0x51]).received,
            Received::Dropped(DropReason::Header(HeaderError::ApiVersion { api: 0x22 }))
        ));
        assert_eq!(r.pending().unwrap().remaining, 2);
        assert!(matches!(r.push(&cont).received, Received::Partial(p) if p.remaining == 1));
        // A new request abandons the partial.
        let out = r.push(&hdr(0x01, 7, 0x5600_0024));
        assert_eq!(out.abandoned.unwrap().msg_id, MsgId::MEM_SHARE);
        assert_eq!(complete(out).msg_id, MsgId::VM_GET_VMID);
        assert!(r.pending().is_none());
        // Continuation after completion is an orphan.
        assert_eq!(
            r.push(&cont).received,
            Received::Dropped(DropReason::OrphanContinuation)
        );
    }

    #[test]
    fn too_long_and_short_packets() {
        let mut r = Reassembler::new();
        let big = [0u8; 241];
        assert_eq!(
            r.push(&big).received,
            Received::Dropped(DropReason::TooLong { len: 241 })
        );
        assert_eq!(
            r.push(&[0x21]).received,
            Received::Dropped(DropReason::Header(HeaderError::TooShort { len: 1 }))
        );
    }

    #[test]
    fn max_size_message() {
        let mut r = Reassembler::new();
        // 62 continuations: first 0xF9 then 0xF8, all 232-byte payloads.
        let mut first = hdr(0xF9, 0, 0x4700_00F1);
        first.extend_from_slice(&[1; 232]);
        assert!(matches!(r.push(&first).received, Received::Partial(_)));
        for i in 0..62 {
            let mut c = hdr(0xF8, 0, 0x4700_00F1);
            c.extend_from_slice(&[2; 232]);
            let o = r.push(&c);
            if i < 61 {
                assert!(matches!(o.received, Received::Partial(_)));
            } else {
                assert_eq!(complete(o).payload.len(), 14616);
            }
        }
    }

    #[test]
    fn split_reply_rejects_short() {
        assert_eq!(split_reply(&[0, 0, 0]).unwrap_err(), RmError::MsgInvalid);
        assert_eq!(
            split_reply(&[6, 0, 0, 0, 9]).unwrap(),
            (RmError::ArgumentInvalid, &[9u8][..])
        );
    }
}
