//! What a request answers besides its data: a refusal (the error code and the few bytes some
//! requests send after it), and the encoding of reply payloads. The router, the transport's
//! fragmenter and the transitions that build their own reply data share these; none of them
//! depends on another for it.

use alloc::vec::Vec;

use gunyah_rm_abi::{Encode, RmError};

/// Why a request was refused: its error code, and the data a few requests send after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The error code.
    pub code: RmError,
    /// What follows the code, if anything.
    pub trailer: Option<Trailer>,
}

/// Data some refusals carry after the error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trailer {
    /// The hypervisor `error_t` after a failed VM_SET_FIRMWARE_MEM / VM_SET_TIME_BASE (§1.3).
    HypError(u32),
    /// The page that faulted, after SIM_VM_READ / SIM_VM_WRITE with MEM_INVALID.
    FaultIpa(u64),
}

impl Trailer {
    /// Its bytes on the wire.
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = [0u8; 8];
        self.write(&mut b).to_vec()
    }

    /// Its bytes on the wire, written at the start of `buf`.
    pub fn write<'a>(&self, buf: &'a mut [u8; 8]) -> &'a [u8] {
        match *self {
            Trailer::HypError(e) => {
                buf[..4].copy_from_slice(&e.to_le_bytes());
                &buf[..4]
            }
            Trailer::FaultIpa(ipa) => {
                *buf = ipa.to_le_bytes();
                &buf[..]
            }
        }
    }
}

impl From<RmError> for Refusal {
    fn from(code: RmError) -> Refusal {
        Refusal {
            code,
            trailer: None,
        }
    }
}

/// Encode a payload into a new vector; `None` if it cannot be encoded.
pub(crate) fn encode_vec<E: Encode + ?Sized>(e: &E) -> Option<Vec<u8>> {
    let mut v = alloc::vec![0u8; e.encoded_len()];
    let n = e.encode(&mut v).ok()?;
    v.truncate(n);
    Some(v)
}
