//! The 8-byte RPC header carried by every message-queue message (spec §1.2).
//!
//! | Offset | Size | Field | Encoding |
//! |---|---|---|---|
//! | 0 | 1 | api | bits\[3:0\] API version = 1, bits\[7:4\] header words = 2 → 0x21 |
//! | 1 | 1 | type | bits\[1:0\] message type, bits\[7:2\] continuation count |
//! | 2 | 2 | seq | LE16 |
//! | 4 | 4 | msg_id | LE32 |

use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::msg_id::MsgId;

/// Size of the RPC header in bytes.
pub const HEADER_SIZE: usize = 8;
/// Largest message-queue message the RM RPC uses (`RM_RPC_MESSAGE_SIZE`).
pub const MAX_PACKET_SIZE: usize = 240;
/// Payload bytes per fragment (`RM_RPC_MAX_CONTENT`).
pub const MAX_FRAGMENT_PAYLOAD: usize = MAX_PACKET_SIZE - HEADER_SIZE;
/// Most continuation fragments after the first (`RM_RPC_MAX_FRAGMENTS`).
pub const MAX_CONTINUATIONS: u8 = 62;
/// Largest logical payload the RM accepts: 232 × 63 = 14616 bytes. For a
/// reply this includes the 4-byte error code.
pub const MAX_MESSAGE_PAYLOAD: usize = MAX_FRAGMENT_PAYLOAD * (MAX_CONTINUATIONS as usize + 1);
/// The only valid value of byte 0: API version 1, 2 header words.
pub const API_BYTE: u8 = 0x21;
/// The API version this crate speaks.
pub const API_VERSION: u8 = 1;
/// Header length in 32-bit words.
pub const HEADER_WORDS: u8 = 2;

/// Message type, bits \[1:0\] of header byte 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MsgType {
    /// 0: a continuation fragment.
    Continuation,
    /// 1: a request.
    Request,
    /// 2: a reply.
    Reply,
    /// 3: a notification.
    Notification,
}

impl MsgType {
    /// The 2-bit wire value.
    pub const fn raw(self) -> u8 {
        match self {
            MsgType::Continuation => 0,
            MsgType::Request => 1,
            MsgType::Reply => 2,
            MsgType::Notification => 3,
        }
    }

    /// Decode the low two bits of `v` (every value is valid).
    pub const fn from_bits(v: u8) -> MsgType {
        match v & 3 {
            0 => MsgType::Continuation,
            1 => MsgType::Request,
            2 => MsgType::Reply,
            _ => MsgType::Notification,
        }
    }

    /// Lower-case name: `continuation`, `request`, `reply`, `notification`.
    pub const fn name(self) -> &'static str {
        match self {
            MsgType::Continuation => "continuation",
            MsgType::Request => "request",
            MsgType::Reply => "reply",
            MsgType::Notification => "notification",
        }
    }
}

/// Why a header was rejected (RM drops such packets without a reply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The packet is shorter than the 8-byte header.
    TooShort {
        /// The packet length.
        len: usize,
    },
    /// Byte 0 bits \[3:0\] are not API version 1.
    ApiVersion {
        /// The api byte as received.
        api: u8,
    },
    /// Byte 0 bits \[7:4\] are not 2 header words.
    HeaderWords {
        /// The api byte as received.
        api: u8,
    },
    /// The continuation count in byte 1 exceeds 62.
    TooManyFragments {
        /// The continuation count as received.
        fragments: u8,
    },
}

impl HeaderError {
    /// The byte offset in the packet of the field that is wrong.
    pub const fn offset(self) -> usize {
        match self {
            HeaderError::TooShort { len } => len,
            HeaderError::ApiVersion { .. } | HeaderError::HeaderWords { .. } => 0,
            HeaderError::TooManyFragments { .. } => 1,
        }
    }
}

impl core::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            HeaderError::TooShort { len } => {
                write!(f, "packet of {len} bytes is shorter than the 8-byte header")
            }
            HeaderError::ApiVersion { api } => {
                write!(f, "api byte {api:#04x}: API version {} is not 1", api & 0xF)
            }
            HeaderError::HeaderWords { api } => write!(
                f,
                "api byte {api:#04x}: header length {} words is not 2",
                api >> 4
            ),
            HeaderError::TooManyFragments { fragments } => write!(
                f,
                "fragment count {fragments} exceeds the maximum of {MAX_CONTINUATIONS}"
            ),
        }
    }
}

/// The RPC header as it sits on the wire.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct RpcHeader {
    /// API version (bits \[3:0\]) and header words (bits \[7:4\]).
    pub api: u8,
    /// Message type (bits \[1:0\]) and continuation count (bits \[7:2\]).
    pub type_fragments: u8,
    /// Sequence number.
    pub seq: U16,
    /// Message ID.
    pub msg_id: U32,
}

impl RpcHeader {
    /// A header with api byte 0x21. `fragments` is the number of
    /// continuations that follow the first fragment (only 6 bits are kept;
    /// the [`Fragmenter`](crate::Fragmenter) never produces more than 62).
    pub fn new(ty: MsgType, fragments: u8, seq: u16, msg_id: MsgId) -> RpcHeader {
        RpcHeader {
            api: API_BYTE,
            type_fragments: ((fragments & 0x3F) << 2) | ty.raw(),
            seq: U16::new(seq),
            msg_id: U32::new(msg_id.0),
        }
    }

    /// API version, bits \[3:0\] of byte 0.
    pub const fn api_version(&self) -> u8 {
        self.api & 0xF
    }

    /// Header length in words, bits \[7:4\] of byte 0.
    pub const fn header_words(&self) -> u8 {
        self.api >> 4
    }

    /// The message type.
    pub const fn msg_type(&self) -> MsgType {
        MsgType::from_bits(self.type_fragments)
    }

    /// Number of continuation fragments (bits \[7:2\] of byte 1).
    pub const fn fragments(&self) -> u8 {
        self.type_fragments >> 2
    }

    /// Sequence number.
    pub fn seq(&self) -> u16 {
        self.seq.get()
    }

    /// Message ID.
    pub fn msg_id(&self) -> MsgId {
        MsgId(self.msg_id.get())
    }

    /// Check the header as the RM does (§1.2): version 1, 2 words, ≤ 62
    /// continuations.
    pub fn validate(&self) -> Result<(), HeaderError> {
        if self.api_version() != API_VERSION {
            return Err(HeaderError::ApiVersion { api: self.api });
        }
        if self.header_words() != HEADER_WORDS {
            return Err(HeaderError::HeaderWords { api: self.api });
        }
        if self.fragments() > MAX_CONTINUATIONS {
            return Err(HeaderError::TooManyFragments {
                fragments: self.fragments(),
            });
        }
        Ok(())
    }

    /// Split a packet into its validated header and payload.
    pub fn parse(packet: &[u8]) -> Result<(RpcHeader, &[u8]), HeaderError> {
        let (hdr, rest) = RpcHeader::read_from_prefix(packet)
            .map_err(|_| HeaderError::TooShort { len: packet.len() })?;
        hdr.validate()?;
        Ok((hdr, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_written_header_decodes() {
        // Request, 0 continuations, seq 0x1234, MEM_LEND 0x51000012.
        let bytes = [0x21, 0x01, 0x34, 0x12, 0x12, 0x00, 0x00, 0x51, 0xAA];
        let (h, rest) = RpcHeader::parse(&bytes).unwrap();
        assert_eq!(h.msg_type(), MsgType::Request);
        assert_eq!(h.fragments(), 0);
        assert_eq!(h.seq(), 0x1234);
        assert_eq!(h.msg_id(), MsgId::MEM_LEND);
        assert_eq!(rest, &[0xAA]);
    }

    #[test]
    fn encodes_type_and_fragment_count() {
        // Reply with 3 continuations: (3 << 2) | 2 = 0x0E.
        let h = RpcHeader::new(MsgType::Reply, 3, 7, MsgId(0x5600_0024));
        assert_eq!(
            h.as_bytes(),
            &[0x21, 0x0E, 0x07, 0x00, 0x24, 0x00, 0x00, 0x56]
        );
        // Notification with 62 continuations: (62 << 2) | 3 = 0xFB.
        let h = RpcHeader::new(MsgType::Notification, 62, 0, MsgId(0));
        assert_eq!(h.as_bytes()[1], 0xFB);
    }

    #[test]
    fn rejects_what_rm_drops() {
        assert_eq!(
            RpcHeader::parse(&[0x21, 1, 0, 0, 0, 0, 0]).unwrap_err(),
            HeaderError::TooShort { len: 7 }
        );
        assert_eq!(
            RpcHeader::parse(&[0x22, 1, 0, 0, 0, 0, 0, 0]).unwrap_err(),
            HeaderError::ApiVersion { api: 0x22 }
        );
        assert_eq!(
            RpcHeader::parse(&[0x31, 1, 0, 0, 0, 0, 0, 0]).unwrap_err(),
            HeaderError::HeaderWords { api: 0x31 }
        );
        // 63 continuations: (63 << 2) | 1 = 0xFD.
        assert_eq!(
            RpcHeader::parse(&[0x21, 0xFD, 0, 0, 0, 0, 0, 0]).unwrap_err(),
            HeaderError::TooManyFragments { fragments: 63 }
        );
        // 62 is the maximum and accepted: (62 << 2) = 0xF8.
        assert!(RpcHeader::parse(&[0x21, 0xF8, 0, 0, 0, 0, 0, 0]).is_ok());
    }

    #[test]
    fn constants_match_spec() {
        assert_eq!(MAX_FRAGMENT_PAYLOAD, 232);
        assert_eq!(MAX_MESSAGE_PAYLOAD, 14616);
    }
}
