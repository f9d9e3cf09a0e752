//! Splitting one logical message into message-queue messages (spec §1.4).
//!
//! The logical payload is cut into 232-byte pieces. A reply's logical payload
//! starts with its 4-byte error code, so its first fragment carries the code
//! and at most 228 data bytes. The header of every fragment repeats `seq`,
//! `msg_id` and the continuation count; the first fragment carries the real
//! type, the others type 0 (continuation).

use zerocopy::IntoBytes;

use crate::error::RmError;
use crate::header::{
    MsgType, RpcHeader, HEADER_SIZE, MAX_CONTINUATIONS, MAX_FRAGMENT_PAYLOAD, MAX_MESSAGE_PAYLOAD,
    MAX_PACKET_SIZE,
};
use crate::msg_id::MsgId;

/// Why a message cannot be fragmented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragmentError {
    /// More than 62 continuations would be needed.
    TooLarge {
        /// Logical payload length (including a reply's error code).
        len: usize,
        /// The largest length that fits (14616).
        max: usize,
    },
    /// `Continuation` is not a type a logical message can have.
    ContinuationType,
}

impl core::fmt::Display for FragmentError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FragmentError::TooLarge { len, max } => write!(
                f,
                "payload of {len} bytes needs more than {MAX_CONTINUATIONS} continuations (max {max} bytes)"
            ),
            FragmentError::ContinuationType => {
                f.write_str("a logical message cannot have type continuation")
            }
        }
    }
}

/// One message-queue message (≤ 240 bytes), stored inline.
#[derive(Clone, Copy)]
pub struct Packet {
    buf: [u8; MAX_PACKET_SIZE],
    len: usize,
}

impl Packet {
    /// The packet bytes (header + payload piece).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Packet length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a packet has at least its header.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl core::ops::Deref for Packet {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl core::fmt::Debug for Packet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Packet(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// Number of continuations for a logical payload of `len` bytes, or an error
/// if more than 62 would be needed.
pub fn continuations_for(len: usize) -> Result<u8, FragmentError> {
    if len > MAX_MESSAGE_PAYLOAD {
        return Err(FragmentError::TooLarge {
            len,
            max: MAX_MESSAGE_PAYLOAD,
        });
    }
    // len == 0 is a single header-only packet.
    Ok(if len == 0 {
        0
    } else {
        ((len - 1) / MAX_FRAGMENT_PAYLOAD) as u8
    })
}

/// Produces the packets of one logical message, in order.
///
/// ```
/// use gunyah_rm_abi::{Fragmenter, MsgId, RmError};
/// let data = [0u8; 300];
/// let packets: Vec<_> = Fragmenter::reply(9, MsgId::MEM_ACCEPT, RmError::Ok, &data)
///     .unwrap()
///     .collect();
/// assert_eq!(packets.len(), 2); // 4 + 300 bytes = 232 + 72
/// assert_eq!(packets[0].len(), 240);
/// assert_eq!(packets[1].len(), 8 + 72);
/// ```
#[derive(Clone, Debug)]
pub struct Fragmenter<'a> {
    ty: MsgType,
    seq: u16,
    msg_id: MsgId,
    /// A reply's error code, sent before `payload`.
    prefix: Option<[u8; 4]>,
    payload: &'a [u8],
    continuations: u8,
    /// Index of the next fragment to produce.
    next: usize,
}

impl<'a> Fragmenter<'a> {
    /// Fragment a message of type `ty`. For a reply, `error` is sent first;
    /// for other types it must be `None` (it is ignored otherwise).
    pub fn new(
        ty: MsgType,
        seq: u16,
        msg_id: MsgId,
        error: Option<RmError>,
        payload: &'a [u8],
    ) -> Result<Self, FragmentError> {
        if ty == MsgType::Continuation {
            return Err(FragmentError::ContinuationType);
        }
        let prefix = match ty {
            MsgType::Reply => Some(error.unwrap_or(RmError::Ok).code().to_le_bytes()),
            _ => None,
        };
        let total = payload.len() + prefix.map_or(0, |p| p.len());
        let continuations = continuations_for(total)?;
        Ok(Fragmenter {
            ty,
            seq,
            msg_id,
            prefix,
            payload,
            continuations,
            next: 0,
        })
    }

    /// Fragment a request.
    pub fn request(seq: u16, msg_id: MsgId, payload: &'a [u8]) -> Result<Self, FragmentError> {
        Self::new(MsgType::Request, seq, msg_id, None, payload)
    }

    /// Fragment a reply: `error` code, then `data`.
    pub fn reply(
        seq: u16,
        msg_id: MsgId,
        error: RmError,
        data: &'a [u8],
    ) -> Result<Self, FragmentError> {
        Self::new(MsgType::Reply, seq, msg_id, Some(error), data)
    }

    /// Fragment a notification.
    pub fn notification(seq: u16, msg_id: MsgId, payload: &'a [u8]) -> Result<Self, FragmentError> {
        Self::new(MsgType::Notification, seq, msg_id, None, payload)
    }

    /// The continuation count written in every header.
    pub fn continuations(&self) -> u8 {
        self.continuations
    }

    /// Total number of packets (continuations + 1).
    pub fn packet_count(&self) -> usize {
        self.continuations as usize + 1
    }

    fn total_len(&self) -> usize {
        self.payload.len() + self.prefix.map_or(0, |p| p.len())
    }

    /// Write the next packet into `out` (at least 240 bytes, or at least
    /// the packet's size) and return its length; `None` when done or when
    /// `out` is too small (nothing is consumed then).
    pub fn next_into(&mut self, out: &mut [u8]) -> Option<usize> {
        if self.next > self.continuations as usize {
            return None;
        }
        let start = self.next * MAX_FRAGMENT_PAYLOAD;
        let end = (start + MAX_FRAGMENT_PAYLOAD).min(self.total_len());
        let len = HEADER_SIZE + (end - start);
        if out.len() < len {
            return None;
        }
        let ty = if self.next == 0 {
            self.ty
        } else {
            MsgType::Continuation
        };
        let hdr = RpcHeader::new(ty, self.continuations, self.seq, self.msg_id);
        out[..HEADER_SIZE].copy_from_slice(hdr.as_bytes());
        // Copy stream[start..end] where stream = prefix ++ payload.
        let prefix: &[u8] = match &self.prefix {
            Some(p) => p,
            None => &[],
        };
        let mut dst = HEADER_SIZE;
        if start < prefix.len() {
            let n = prefix.len().min(end) - start;
            out[dst..dst + n].copy_from_slice(&prefix[start..start + n]);
            dst += n;
        }
        let from = start.max(prefix.len()) - prefix.len();
        let to = end.max(prefix.len()) - prefix.len();
        out[dst..dst + (to - from)].copy_from_slice(&self.payload[from..to]);
        self.next += 1;
        Some(len)
    }
}

impl Iterator for Fragmenter<'_> {
    type Item = Packet;

    fn next(&mut self) -> Option<Packet> {
        let mut p = Packet {
            buf: [0; MAX_PACKET_SIZE],
            len: 0,
        };
        p.len = self.next_into(&mut p.buf)?;
        Some(p)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.packet_count().saturating_sub(self.next);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Fragmenter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_request_is_one_header() {
        let v: std::vec::Vec<Packet> = Fragmenter::request(1, MsgId::VM_GET_VMID, &[])
            .unwrap()
            .collect();
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].as_bytes(),
            &[0x21, 0x01, 0x01, 0x00, 0x24, 0x00, 0x00, 0x56]
        );
    }

    #[test]
    fn standard_reply_is_12_bytes() {
        let mut f = Fragmenter::reply(5, MsgId::VM_START, RmError::VmState, &[]).unwrap();
        let p = f.next().unwrap();
        assert_eq!(
            p.as_bytes(),
            &[0x21, 0x02, 0x05, 0x00, 0x04, 0x00, 0x00, 0x56, 0x14, 0, 0, 0]
        );
        assert!(f.next().is_none());
    }

    #[test]
    fn continuation_counts() {
        assert_eq!(continuations_for(0).unwrap(), 0);
        assert_eq!(continuations_for(232).unwrap(), 0);
        assert_eq!(continuations_for(233).unwrap(), 1);
        assert_eq!(continuations_for(14616).unwrap(), 62);
        assert_eq!(
            continuations_for(14617).unwrap_err(),
            FragmentError::TooLarge {
                len: 14617,
                max: 14616
            }
        );
        // A reply's error code counts: 14613 data bytes + 4 is too much.
        let data = [0u8; 14613];
        assert!(Fragmenter::reply(0, MsgId(1), RmError::Ok, &data).is_err());
        assert_eq!(
            Fragmenter::reply(0, MsgId(1), RmError::Ok, &data[..14612])
                .unwrap()
                .continuations(),
            62
        );
    }

    #[test]
    fn three_fragment_request_by_hand() {
        // 500 bytes: 232 + 232 + 36; continuation count 2 in every header.
        let mut payload = [0u8; 500];
        for (i, b) in payload.iter_mut().enumerate() {
            *b = i as u8;
        }
        let f = Fragmenter::request(0xBEEF, MsgId::MEM_SHARE, &payload).unwrap();
        let p: std::vec::Vec<Packet> = f.collect();
        assert_eq!(p.len(), 3);
        // (2 << 2) | 1 = 0x09 first; (2 << 2) | 0 = 0x08 after.
        assert_eq!(&p[0][..8], &[0x21, 0x09, 0xEF, 0xBE, 0x13, 0, 0, 0x51]);
        assert_eq!(&p[1][..8], &[0x21, 0x08, 0xEF, 0xBE, 0x13, 0, 0, 0x51]);
        assert_eq!(&p[2][..8], &[0x21, 0x08, 0xEF, 0xBE, 0x13, 0, 0, 0x51]);
        assert_eq!(p[0].len(), 240);
        assert_eq!(p[1].len(), 240);
        assert_eq!(p[2].len(), 8 + 36);
        assert_eq!(p[1][8], 232u16 as u8); // payload[232]
        assert_eq!(p[2][8], (464 % 256) as u8);
    }

    #[test]
    fn reply_error_code_leads_first_fragment() {
        let data = [0xAB; 229]; // 4 + 229 = 233 → 2 fragments
        let p: std::vec::Vec<Packet> = Fragmenter::reply(1, MsgId(2), RmError::Ok, &data)
            .unwrap()
            .collect();
        assert_eq!(p.len(), 2);
        assert_eq!(&p[0][8..12], &[0, 0, 0, 0]);
        assert_eq!(p[0][12], 0xAB);
        assert_eq!(p[1].as_bytes(), &[0x21, 0x04, 1, 0, 2, 0, 0, 0, 0xAB]);
    }

    #[test]
    fn continuation_type_is_refused() {
        assert_eq!(
            Fragmenter::new(MsgType::Continuation, 0, MsgId(1), None, &[]).unwrap_err(),
            FragmentError::ContinuationType
        );
    }
}
