//! Replies: the error code and the data, decoded by the request's message ID.
//!
//! A reply's payload is `u32 err` then data. On `OK` the data layout depends
//! on the request; on an error the RM sends only the code, except a 4-byte
//! hypervisor error after VM_SET_TIME_BASE / VM_SET_FIRMWARE_MEM and the
//! faulting `u64 ipa` after SIM_VM_READ / SIM_VM_WRITE with MEM_INVALID.

use crate::error::RmError;
use crate::ext::{FaultIpa, GoldenSealReply, IdReply, VmMemStatsReply};
use crate::fragment::Fragmenter;
use crate::mem::{MemAcceptReply, MemHandleReply};
use crate::msg_id::MsgId;
use crate::reassemble::split_reply;
use crate::request::Request;
use crate::vm::{HypResources, VmPeers, VmStateReply, Word};
use crate::vm_id::{VmIds, VmLookupReply};
use crate::wire::{DecodeError, Encode, EncodeError, Writer};

/// The data part of a reply.
///
/// With the `serde` feature it serializes as the data alone (see
/// [`ser`](crate::ser)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(untagged))]
pub enum ReplyData<'a> {
    /// No data (standard reply).
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::empty"))]
    Empty,
    /// Memparcel handle (MEM_SHARE/LEND/DONATE, MEM_QCOM_LOOKUP_SGL).
    MemHandle(MemHandleReply),
    /// MEM_ACCEPT when the request had no SGL entries.
    MemAccept(MemAcceptReply<'a>),
    /// A VMID (VM_GET_VMID, dynamic VM_ALLOC_VMID).
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::vmid"))]
    Vmid(Word),
    /// VM_GET_STATE.
    VmState(VmStateReply),
    /// VM_GET_OWNER: the caller's owner.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::owner_vmid"))]
    Owner(Word),
    /// VM_GET_PEERS.
    Peers(VmPeers<'a>),
    /// VM_HOST_GET_TYPE.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::host_type"))]
    HostType(Word),
    /// VM_GET_HYP_RESOURCES.
    HypResources(HypResources<'a>),
    /// VM_GET_ID.
    VmIds(VmIds<'a>),
    /// VM_LOOKUP_NAME / URI / GUID.
    VmLookup(VmLookupReply<'a>),
    /// VM_IRQ_LEND: virq_handle.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::virq_handle"))]
    VirqHandle(Word),
    /// VM_IRQ_ACCEPT: virq.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::virq"))]
    Virq(Word),
    /// GMEM_CREATE: gmem id.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::gmem_id"))]
    GmemId(IdReply),
    /// GMEM_BIND: memparcel handle of the binding.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::bind_handle"))]
    BindHandle(IdReply),
    /// GOLDEN_SEAL.
    GoldenSeal(GoldenSealReply),
    /// VM_MEM_STATS.
    VmMemStats(VmMemStatsReply),
    /// SIM_VM_READ: the bytes read.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::data"))]
    SimRead(&'a [u8]),
    /// SIM_VM_WRITE: faults served.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::faults_served"))]
    SimWrite(IdReply),
    /// Hypervisor error after a failed VM_SET_TIME_BASE / VM_SET_FIRMWARE_MEM.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::hyp_error"))]
    HypError(Word),
    /// SIM_VM_READ/WRITE with MEM_INVALID: the page that faulted.
    FaultIpa(FaultIpa),
    /// Data of a reply this crate does not decode.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::raw"))]
    Other(&'a [u8]),
}

impl Encode for ReplyData<'_> {
    fn encoded_len(&self) -> usize {
        match self {
            ReplyData::Empty => 0,
            ReplyData::MemHandle(v) => v.encoded_len(),
            ReplyData::MemAccept(v) => v.encoded_len(),
            ReplyData::Vmid(v) | ReplyData::VirqHandle(v) | ReplyData::Virq(v) => v.encoded_len(),
            ReplyData::Owner(v) | ReplyData::HostType(v) => v.encoded_len(),
            ReplyData::Peers(v) => v.encoded_len(),
            ReplyData::HypError(v) => v.encoded_len(),
            ReplyData::VmState(v) => v.encoded_len(),
            ReplyData::HypResources(v) => v.encoded_len(),
            ReplyData::VmIds(v) => v.encoded_len(),
            ReplyData::VmLookup(v) => v.encoded_len(),
            ReplyData::GmemId(v) | ReplyData::BindHandle(v) | ReplyData::SimWrite(v) => {
                v.encoded_len()
            }
            ReplyData::GoldenSeal(v) => v.encoded_len(),
            ReplyData::VmMemStats(v) => v.encoded_len(),
            ReplyData::FaultIpa(v) => v.encoded_len(),
            ReplyData::SimRead(b) | ReplyData::Other(b) => b.len(),
        }
    }

    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        match self {
            ReplyData::Empty => Ok(0),
            ReplyData::MemHandle(v) => v.encode(out),
            ReplyData::MemAccept(v) => v.encode(out),
            ReplyData::Vmid(v) | ReplyData::VirqHandle(v) | ReplyData::Virq(v) => v.encode(out),
            ReplyData::Owner(v) | ReplyData::HostType(v) => v.encode(out),
            ReplyData::Peers(v) => v.encode(out),
            ReplyData::HypError(v) => v.encode(out),
            ReplyData::VmState(v) => v.encode(out),
            ReplyData::HypResources(v) => v.encode(out),
            ReplyData::VmIds(v) => v.encode(out),
            ReplyData::VmLookup(v) => v.encode(out),
            ReplyData::GmemId(v) | ReplyData::BindHandle(v) | ReplyData::SimWrite(v) => {
                v.encode(out)
            }
            ReplyData::GoldenSeal(v) => v.encode(out),
            ReplyData::VmMemStats(v) => v.encode(out),
            ReplyData::FaultIpa(v) => v.encode(out),
            ReplyData::SimRead(b) | ReplyData::Other(b) => {
                let mut w = Writer::new(out);
                w.bytes(b)?;
                Ok(w.finish())
            }
        }
    }
}

/// A decoded reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    /// The RM error code.
    pub error: RmError,
    /// The data after it.
    pub data: ReplyData<'a>,
}

/// Shift a data-relative error to be relative to the reply payload.
fn after_code(mut e: DecodeError) -> DecodeError {
    e.offset += 4;
    e
}

impl<'a> Reply<'a> {
    /// Decode a reply payload (`u32 err` + data) to a request `msg_id`;
    /// offsets in the error are relative to the reply payload.
    pub fn decode_detailed(msg_id: MsgId, payload: &'a [u8]) -> Result<Self, DecodeError> {
        let (error, data) = split_reply(payload).map_err(|_| {
            DecodeError::invalid(payload.len(), "reply shorter than its 4-byte error code")
        })?;
        let data = Self::decode_data(msg_id, error, data).map_err(after_code)?;
        Ok(Reply { error, data })
    }

    /// As [`Reply::decode_detailed`], with only the error code.
    pub fn decode(msg_id: MsgId, payload: &'a [u8]) -> Result<Self, RmError> {
        Self::decode_detailed(msg_id, payload).map_err(|e| e.error)
    }

    /// Decode the data after the error code.
    pub fn decode_data(
        msg_id: MsgId,
        error: RmError,
        data: &'a [u8],
    ) -> Result<ReplyData<'a>, DecodeError> {
        let known = Request::knows(msg_id);
        if error != RmError::Ok {
            return match msg_id {
                _ if data.is_empty() => Ok(ReplyData::Empty),
                MsgId::VM_SET_TIME_BASE | MsgId::VM_SET_FIRMWARE_MEM => {
                    Ok(ReplyData::HypError(Word::decode(data)?))
                }
                MsgId::SIM_VM_READ | MsgId::SIM_VM_WRITE if error == RmError::MemInvalid => {
                    Ok(ReplyData::FaultIpa(FaultIpa::decode(data)?))
                }
                _ if !known => Ok(ReplyData::Other(data)),
                _ => Err(DecodeError::invalid(0, "data after an error code")),
            };
        }
        Ok(match msg_id {
            MsgId::MEM_DONATE | MsgId::MEM_LEND | MsgId::MEM_SHARE | MsgId::MEM_QCOM_LOOKUP_SGL => {
                ReplyData::MemHandle(MemHandleReply::decode(data)?)
            }
            MsgId::MEM_ACCEPT if data.is_empty() => ReplyData::Empty,
            MsgId::MEM_ACCEPT => ReplyData::MemAccept(MemAcceptReply::decode(data)?),
            MsgId::VM_ALLOC_VMID if data.is_empty() => ReplyData::Empty,
            MsgId::VM_ALLOC_VMID | MsgId::VM_GET_VMID => ReplyData::Vmid(Word::decode(data)?),
            MsgId::VM_GET_STATE => ReplyData::VmState(VmStateReply::decode(data)?),
            MsgId::VM_GET_OWNER => ReplyData::Owner(Word::decode(data)?),
            MsgId::VM_GET_PEERS => ReplyData::Peers(VmPeers::decode(data)?),
            MsgId::VM_HOST_GET_TYPE => ReplyData::HostType(Word::decode(data)?),
            MsgId::VM_GET_HYP_RESOURCES => ReplyData::HypResources(HypResources::decode(data)?),
            MsgId::VM_GET_ID => ReplyData::VmIds(VmIds::decode(data)?),
            MsgId::VM_LOOKUP_NAME | MsgId::VM_LOOKUP_URI | MsgId::VM_LOOKUP_GUID => {
                ReplyData::VmLookup(VmLookupReply::decode(data)?)
            }
            MsgId::VM_IRQ_LEND => ReplyData::VirqHandle(Word::decode(data)?),
            MsgId::VM_IRQ_ACCEPT => ReplyData::Virq(Word::decode(data)?),
            MsgId::GMEM_CREATE => ReplyData::GmemId(IdReply::decode(data)?),
            MsgId::GMEM_BIND => ReplyData::BindHandle(IdReply::decode(data)?),
            MsgId::GOLDEN_SEAL => ReplyData::GoldenSeal(GoldenSealReply::decode(data)?),
            MsgId::VM_MEM_STATS => ReplyData::VmMemStats(VmMemStatsReply::decode(data)?),
            MsgId::SIM_VM_READ => ReplyData::SimRead(data),
            MsgId::SIM_VM_WRITE => ReplyData::SimWrite(IdReply::decode(data)?),
            _ if !known => ReplyData::Other(data),
            _ if data.is_empty() => ReplyData::Empty,
            _ => return Err(DecodeError::invalid(0, "data in a standard reply")),
        })
    }

    /// Write `u32 err` then the data into `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.bytes(&self.error.code().to_le_bytes())?;
        let n = w.finish();
        Ok(n + self.data.encode(&mut out[n..])?)
    }

    /// Encode the data into `scratch` and return the packets of the reply
    /// to request `msg_id` with sequence number `seq`.
    pub fn packets<'b>(
        &self,
        seq: u16,
        msg_id: MsgId,
        scratch: &'b mut [u8],
    ) -> Result<Fragmenter<'b>, EncodeError> {
        let n = self.data.encode(scratch)?;
        Ok(Fragmenter::reply(seq, msg_id, self.error, &scratch[..n])?)
    }

    /// Encoded length including the error code.
    pub fn encoded_len(&self) -> usize {
        4 + self.data.encoded_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::SglEntry;

    #[test]
    fn standard_and_handle_replies_by_hand() {
        let r = Reply::decode(MsgId::MEM_RECLAIM, &[0x0B, 0, 0, 0]).unwrap();
        assert_eq!(r.error, RmError::MemInuse);
        assert_eq!(r.data, ReplyData::Empty);
        let r = Reply::decode(MsgId::MEM_LEND, &[0, 0, 0, 0, 5, 0, 0, 0]).unwrap();
        assert_eq!(r.data, ReplyData::MemHandle(MemHandleReply::new(5)));
        // An error reply carries no data.
        let e = Reply::decode_detailed(MsgId::MEM_LEND, &[6, 0, 0, 0, 5, 0, 0, 0]).unwrap_err();
        assert_eq!((e.error, e.offset), (RmError::MsgInvalid, 4));
        // Short.
        assert_eq!(
            Reply::decode(MsgId::MEM_LEND, &[0, 0]),
            Err(RmError::MsgInvalid)
        );
    }

    #[test]
    fn special_error_data() {
        let r = Reply::decode(MsgId::VM_SET_TIME_BASE, &[6, 0, 0, 0, 1, 0, 0, 0]).unwrap();
        assert_eq!(r.data, ReplyData::HypError(Word::new(1)));
        let r = Reply::decode(
            MsgId::SIM_VM_WRITE,
            &[0x0A, 0, 0, 0, 0, 0x30, 0, 0x40, 0, 0, 0, 0],
        )
        .unwrap();
        assert_eq!(r.data, ReplyData::FaultIpa(FaultIpa::new(0x4000_3000)));
    }

    #[test]
    fn accept_and_unknown() {
        let mut b = std::vec![0, 0, 0, 0, 1, 0, 0, 0];
        b.extend_from_slice(&0x8000_0000u64.to_le_bytes());
        b.extend_from_slice(&0x2000u64.to_le_bytes());
        let r = Reply::decode(MsgId::MEM_ACCEPT, &b).unwrap();
        match r.data {
            ReplyData::MemAccept(a) => assert_eq!(a.sgl, &[SglEntry::new(0x8000_0000, 0x2000)]),
            other => panic!("{other:?}"),
        }
        let mut out = [0u8; 64];
        let n = r.encode(&mut out).unwrap();
        assert_eq!(&out[..n], &b[..]);
        let r = Reply::decode(MsgId(0x5600_0019), &[0, 0, 0, 0, 1, 2]).unwrap();
        assert_eq!(r.data, ReplyData::Other(&[1, 2]));
    }
}
