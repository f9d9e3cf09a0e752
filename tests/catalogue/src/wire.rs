//! The RM RPC wire format, written again from the spec sheet (§1.2–§1.4) so that the
//! catalogue checks the RM's packets with an implementation of its own.
//!
//! Header (8 bytes): `0x21` (API version 1, 2 header words), then `type | fragments << 2`,
//! `u16 seq`, `u32 msg_id`; at most 232 payload bytes per packet; a message of N packets
//! announces N−1 continuations in every packet; continuations carry type 0.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The first header byte of every packet.
pub const API: u8 = 0x21;
/// Largest packet on the message queue.
pub const MAX_PACKET: usize = 240;
/// Payload bytes per packet.
pub const MAX_CHUNK: usize = 232;
/// Most continuations a message may announce.
pub const MAX_CONTINUATIONS: usize = 62;

/// Message types (§1.2).
pub mod ty {
    pub const CONTINUATION: u8 = 0;
    pub const REQUEST: u8 = 1;
    pub const REPLY: u8 = 2;
    pub const NOTIFICATION: u8 = 3;
}

/// One 8-byte header.
pub fn header(msg_type: u8, continuations: u8, seq: u16, msg_id: u32) -> [u8; 8] {
    let s = seq.to_le_bytes();
    let m = msg_id.to_le_bytes();
    [
        API,
        (continuations << 2) | (msg_type & 3),
        s[0],
        s[1],
        m[0],
        m[1],
        m[2],
        m[3],
    ]
}

/// The packets of one request: 232 payload bytes per packet; an empty payload is one
/// 8-byte packet. More than 63 packets are built too (announcing what does not fit the
/// 6-bit field is the caller's business): cases use that to test the RM's limits.
pub fn request_packets(seq: u16, msg_id: u32, payload: &[u8]) -> Vec<Vec<u8>> {
    let chunks: Vec<&[u8]> = if payload.is_empty() {
        alloc::vec![&[][..]]
    } else {
        payload.chunks(MAX_CHUNK).collect()
    };
    let cont = (chunks.len() - 1) as u8;
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let t = if i == 0 {
                ty::REQUEST
            } else {
                ty::CONTINUATION
            };
            let mut p = header(t, cont, seq, msg_id).to_vec();
            p.extend_from_slice(c);
            p
        })
        .collect()
}

/// A complete message the RM sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    /// REPLY or NOTIFICATION.
    pub msg_type: u8,
    /// Sequence number.
    pub seq: u16,
    /// Message ID.
    pub msg_id: u32,
    /// Payload (a reply's starts with its error code).
    pub payload: Vec<u8>,
}

/// Reassembles what the RM sends to one VM, and refuses anything the spec does not allow
/// an RM to send.
#[derive(Debug, Default)]
pub struct Rx {
    pending: Option<(Msg, u8)>,
}

impl Rx {
    /// Feed one packet; a complete message when it completes one.
    pub fn push(&mut self, p: &[u8]) -> Result<Option<Msg>, String> {
        if p.len() < 8 || p.len() > MAX_PACKET {
            return Err(format!("packet of {} bytes", p.len()));
        }
        if p[0] != API {
            return Err(format!("header byte {:#04x}, not 0x21", p[0]));
        }
        let t = p[1] & 3;
        let cont = p[1] >> 2;
        let seq = u16::from_le_bytes([p[2], p[3]]);
        let id = u32::from_le_bytes([p[4], p[5], p[6], p[7]]);
        if usize::from(cont) > MAX_CONTINUATIONS {
            return Err(format!("{cont} continuations announced"));
        }
        if t == ty::CONTINUATION {
            let Some((m, left)) = self.pending.as_mut() else {
                return Err(String::from("a continuation with no message started"));
            };
            if (m.seq, m.msg_id) != (seq, id) {
                return Err(format!(
                    "continuation seq {seq:#x} id {id:#x} inside message seq {:#x} id {:#x}",
                    m.seq, m.msg_id
                ));
            }
            m.payload.extend_from_slice(&p[8..]);
            *left -= 1;
            if *left == 0 {
                return Ok(self.pending.take().map(|(m, _)| m));
            }
            return Ok(None);
        }
        if t == ty::REQUEST {
            return Err(String::from("the RM sent a request"));
        }
        if self.pending.is_some() {
            return Err(String::from("a new message while one was incomplete"));
        }
        let m = Msg {
            msg_type: t,
            seq,
            msg_id: id,
            payload: p[8..].to_vec(),
        };
        if cont == 0 {
            Ok(Some(m))
        } else {
            self.pending = Some((m, cont));
            Ok(None)
        }
    }

    /// Whether a message is incomplete.
    pub fn incomplete(&self) -> bool {
        self.pending.is_some()
    }
}
