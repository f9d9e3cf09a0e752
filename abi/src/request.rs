//! Every known request as one enum, decoded by message ID.
//!
//! ```
//! use gunyah_rm_abi::{MsgId, Request, RmError};
//! use gunyah_rm_abi::vm::VmidReq;
//! // VM_START of VMID 0x80.
//! let req = Request::decode(MsgId::VM_START, &[0x80, 0, 0, 0]).unwrap();
//! assert_eq!(req, Request::VmStart(VmidReq::new(0x80)));
//! // Wrong size: the RM answers MSG_INVALID.
//! assert_eq!(Request::decode(MsgId::VM_START, &[0x80]), Err(RmError::MsgInvalid));
//! // Unknown IDs are kept for an UNIMPLEMENTED reply.
//! assert!(matches!(Request::decode(MsgId(0x5600_00FF), &[]), Ok(Request::Other { .. })));
//! ```

use crate::error::RmError;
use crate::ext::{
    GmemBindReq, GmemCreateReq, GmemUnbindReq, GoldenMapReq, GoldenReleaseReq, GoldenSealReq,
    GoldenUnmapReq, SimVmReadReq, SimVmWrite,
};
use crate::fragment::Fragmenter;
use crate::mem::{MemAccept, MemAppend, MemCreate, MemLookupSgl, MemNotify, MemReleaseReq};
use crate::msg_id::MsgId;
use crate::vm::{
    ConsoleChars, FwSetVmFirmwareReq, VmAuthImage, VmConfigImageReq, VmExitReq, VmInitReq,
    VmIrqAcceptReq, VmIrqLendReq, VmIrqNotify, VmSetAddressLayoutReq, VmSetBootContextReq,
    VmSetDemandPaging, VmSetFirmwareMemReq, VmSetStatusReq, VmSetTimeBaseReq, VmStopReq, VmidReq,
    Word,
};
use crate::vm_id::{VmGuidReq, VmIdChars};
use crate::wire::{DecodeError, Empty, Encode, EncodeError, Writer};

/// Generates a message enum: variant ↔ message ID ↔ payload type, with
/// `decode`, `msg_id`, `encode` and `encoded_len`.
macro_rules! message_enum {
    (
        $(#[$m:meta])*
        pub enum $name:ident<'a> {
            $( $(#[$d:meta])* $var:ident($ty:ty) = $id:ident, )*
        }
    ) => {
        $(#[$m])*
        ///
        /// With the `serde` feature it serializes as its payload alone (see
        /// [`ser`](crate::ser)).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize), serde(untagged))]
        pub enum $name<'a> {
            $( $(#[$d])* $var($ty), )*
            /// A message ID this crate does not decode; payload kept as is.
            #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::other"))]
            Other {
                /// The message ID.
                msg_id: MsgId,
                /// The raw payload.
                payload: &'a [u8],
            },
        }

        impl<'a> $name<'a> {
            /// Decode a payload by message ID, with the byte offset and
            /// reason on failure.
            pub fn decode_detailed(msg_id: MsgId, payload: &'a [u8]) -> Result<Self, DecodeError> {
                Ok(match msg_id {
                    $( MsgId::$id => $name::$var(<$ty>::decode(payload)?), )*
                    _ => $name::Other { msg_id, payload },
                })
            }

            /// Decode a payload by message ID; the error is the RM's
            /// answer (`MSG_INVALID`, `NORESOURCE`).
            pub fn decode(msg_id: MsgId, payload: &'a [u8]) -> Result<Self, RmError> {
                Self::decode_detailed(msg_id, payload).map_err(|e| e.error)
            }

            /// The message ID this payload travels under.
            pub fn msg_id(&self) -> MsgId {
                match self {
                    $( $name::$var(_) => MsgId::$id, )*
                    $name::Other { msg_id, .. } => *msg_id,
                }
            }

            /// Whether `msg_id` has a typed variant here.
            pub fn knows(msg_id: MsgId) -> bool {
                matches!(msg_id, $( MsgId::$id )|*)
            }
        }

        impl Encode for $name<'_> {
            fn encoded_len(&self) -> usize {
                match self {
                    $( $name::$var(p) => p.encoded_len(), )*
                    $name::Other { payload, .. } => payload.len(),
                }
            }

            fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
                match self {
                    $( $name::$var(p) => p.encode(out), )*
                    $name::Other { payload, .. } => {
                        let mut w = Writer::new(out);
                        w.bytes(payload)?;
                        Ok(w.finish())
                    }
                }
            }
        }
    };
}
pub(crate) use message_enum;

message_enum! {
    /// A decoded request payload.
    pub enum Request<'a> {
        /// MEM_DONATE.
        MemDonate(MemCreate<'a>) = MEM_DONATE,
        /// MEM_LEND.
        MemLend(MemCreate<'a>) = MEM_LEND,
        /// MEM_SHARE.
        MemShare(MemCreate<'a>) = MEM_SHARE,
        /// MEM_APPEND.
        MemAppend(MemAppend<'a>) = MEM_APPEND,
        /// MEM_ACCEPT.
        MemAccept(MemAccept<'a>) = MEM_ACCEPT,
        /// MEM_RELEASE.
        MemRelease(MemReleaseReq) = MEM_RELEASE,
        /// MEM_RECLAIM.
        MemReclaim(MemReleaseReq) = MEM_RECLAIM,
        /// MEM_NOTIFY.
        MemNotify(MemNotify<'a>) = MEM_NOTIFY,
        /// MEM_QCOM_LOOKUP_SGL.
        MemLookupSgl(MemLookupSgl<'a>) = MEM_QCOM_LOOKUP_SGL,
        /// FW_SET_VM_FIRMWARE.
        FwSetVmFirmware(FwSetVmFirmwareReq) = FW_SET_VM_FIRMWARE,
        /// VM_ALLOC_VMID (vmid 0 = dynamic).
        VmAllocVmid(VmidReq) = VM_ALLOC_VMID,
        /// VM_DEALLOC_VMID.
        VmDeallocVmid(VmidReq) = VM_DEALLOC_VMID,
        /// VM_START.
        VmStart(VmidReq) = VM_START,
        /// VM_STOP.
        VmStop(VmStopReq) = VM_STOP,
        /// VM_RESET.
        VmReset(VmidReq) = VM_RESET,
        /// VM_CONFIG_IMAGE.
        VmConfigImage(VmConfigImageReq) = VM_CONFIG_IMAGE,
        /// VM_AUTH_IMAGE.
        VmAuthImage(VmAuthImage<'a>) = VM_AUTH_IMAGE,
        /// VM_INIT (reserved must be 0).
        VmInit(VmInitReq) = VM_INIT,
        /// VM_GET_VMID (empty payload).
        VmGetVmid(Empty) = VM_GET_VMID,
        /// VM_GET_OWNER (empty payload): the caller's owner.
        VmGetOwner(Empty) = VM_GET_OWNER,
        /// VM_GET_PEERS (empty payload): the caller's peers.
        VmGetPeers(Empty) = VM_GET_PEERS,
        /// VM_HOST_GET_TYPE (empty payload).
        VmHostGetType(Empty) = VM_HOST_GET_TYPE,
        /// VM_GET_STATE (vmid 0 = self).
        VmGetState(VmidReq) = VM_GET_STATE,
        /// VM_GET_HYP_RESOURCES.
        VmGetHypResources(VmidReq) = VM_GET_HYP_RESOURCES,
        /// VM_GET_ID (vmid 0 = self).
        VmGetId(VmidReq) = VM_GET_ID,
        /// VM_LOOKUP_URI.
        VmLookupUri(VmIdChars<'a>) = VM_LOOKUP_URI,
        /// VM_LOOKUP_GUID.
        VmLookupGuid(VmGuidReq) = VM_LOOKUP_GUID,
        /// VM_LOOKUP_NAME.
        VmLookupName(VmIdChars<'a>) = VM_LOOKUP_NAME,
        /// VM_SET_TIME_BASE.
        VmSetTimeBase(VmSetTimeBaseReq) = VM_SET_TIME_BASE,
        /// VM_SET_BOOT_CONTEXT (0x56000031).
        VmSetBootContext(VmSetBootContextReq) = VM_SET_BOOT_CONTEXT,
        /// VM_SET_FIRMWARE_MEM.
        VmSetFirmwareMem(VmSetFirmwareMemReq) = VM_SET_FIRMWARE_MEM,
        /// VM_SET_DEMAND_PAGING.
        VmSetDemandPaging(VmSetDemandPaging<'a>) = VM_SET_DEMAND_PAGING,
        /// VM_SET_ADDRESS_LAYOUT.
        VmSetAddressLayout(VmSetAddressLayoutReq) = VM_SET_ADDRESS_LAYOUT,
        /// VM_SET_STATUS (guest → RM).
        VmSetStatus(VmSetStatusReq) = VM_SET_STATUS,
        /// VM_EXIT (guest → RM).
        VmExit(VmExitReq) = VM_EXIT,
        /// VM_CONSOLE_OPEN.
        VmConsoleOpen(VmidReq) = VM_CONSOLE_OPEN,
        /// VM_CONSOLE_CLOSE.
        VmConsoleClose(VmidReq) = VM_CONSOLE_CLOSE,
        /// VM_CONSOLE_WRITE.
        VmConsoleWrite(ConsoleChars<'a>) = VM_CONSOLE_WRITE,
        /// VM_CONSOLE_FLUSH.
        VmConsoleFlush(VmidReq) = VM_CONSOLE_FLUSH,
        /// VM_IRQ_LEND.
        VmIrqLend(VmIrqLendReq) = VM_IRQ_LEND,
        /// VM_IRQ_ACCEPT.
        VmIrqAccept(VmIrqAcceptReq) = VM_IRQ_ACCEPT,
        /// VM_IRQ_RELEASE (virq_handle).
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::virq_handle"))]
        VmIrqRelease(Word) = VM_IRQ_RELEASE,
        /// VM_IRQ_RECLAIM (virq_handle).
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::virq_handle"))]
        VmIrqReclaim(Word) = VM_IRQ_RECLAIM,
        /// VM_IRQ_NOTIFY.
        VmIrqNotify(VmIrqNotify<'a>) = VM_IRQ_NOTIFY,
        /// GMEM_CREATE.
        GmemCreate(GmemCreateReq) = GMEM_CREATE,
        /// GMEM_BIND.
        GmemBind(GmemBindReq) = GMEM_BIND,
        /// GMEM_UNBIND.
        GmemUnbind(GmemUnbindReq) = GMEM_UNBIND,
        /// GOLDEN_SEAL.
        GoldenSeal(GoldenSealReq) = GOLDEN_SEAL,
        /// GOLDEN_MAP.
        GoldenMap(GoldenMapReq) = GOLDEN_MAP,
        /// GOLDEN_UNMAP.
        GoldenUnmap(GoldenUnmapReq) = GOLDEN_UNMAP,
        /// GOLDEN_RELEASE.
        GoldenRelease(GoldenReleaseReq) = GOLDEN_RELEASE,
        /// VM_MEM_STATS (vmid 0 = self).
        VmMemStats(VmidReq) = VM_MEM_STATS,
        /// SIM_VM_READ.
        SimVmRead(SimVmReadReq) = SIM_VM_READ,
        /// SIM_VM_WRITE.
        SimVmWrite(SimVmWrite<'a>) = SIM_VM_WRITE,
    }
}

impl Request<'_> {
    /// Encode into `scratch` and return the packets of the request.
    ///
    /// ```
    /// use gunyah_rm_abi::{Request, vm::VmidReq};
    /// let mut scratch = [0u8; 64];
    /// let packets: Vec<_> = Request::VmStart(VmidReq::new(0x80))
    ///     .packets(5, &mut scratch)
    ///     .unwrap()
    ///     .collect();
    /// assert_eq!(packets[0].as_bytes(), &[0x21, 0x01, 5, 0, 0x04, 0, 0, 0x56, 0x80, 0, 0, 0]);
    /// ```
    pub fn packets<'b>(
        &self,
        seq: u16,
        scratch: &'b mut [u8],
    ) -> Result<Fragmenter<'b>, EncodeError> {
        let n = self.encode(scratch)?;
        Ok(Fragmenter::request(seq, self.msg_id(), &scratch[..n])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::{rights, AclEntry, SglEntry};

    #[test]
    fn decode_by_id_and_encode_back() {
        let acl = [AclEntry::new(0x80, rights::RWX)];
        let sgl = [SglEntry::new(0x4000_0000, 0x1000)];
        let req = Request::MemLend(MemCreate::normal(&acl, &sgl));
        let mut buf = [0u8; 128];
        let n = req.encode(&mut buf).unwrap();
        assert_eq!(n, req.encoded_len());
        assert_eq!(Request::decode(MsgId::MEM_LEND, &buf[..n]).unwrap(), req);
        // Same bytes under MEM_SHARE give the share variant.
        assert!(matches!(
            Request::decode(MsgId::MEM_SHARE, &buf[..n]).unwrap(),
            Request::MemShare(_)
        ));
        assert_eq!(req.msg_id(), MsgId::MEM_LEND);
    }

    #[test]
    fn get_vmid_must_be_empty() {
        assert_eq!(
            Request::decode(MsgId::VM_GET_VMID, &[]).unwrap(),
            Request::VmGetVmid(Empty)
        );
        assert_eq!(
            Request::decode(MsgId::VM_GET_VMID, &[0]),
            Err(RmError::MsgInvalid)
        );
    }

    #[test]
    fn reserved_fields_of_vm_init_and_set_firmware_mem_must_be_zero() {
        // §12.1: a non-zero reserved field → MSG_INVALID.
        assert_eq!(
            Request::decode(MsgId::VM_INIT, &[0x80, 0, 0, 0]).unwrap(),
            Request::VmInit(VmInitReq::new(0x80))
        );
        assert_eq!(
            Request::decode(MsgId::VM_INIT, &[0x80, 0, 1, 0]),
            Err(RmError::MsgInvalid)
        );
        let mut fw = [0u8; 24];
        fw[0] = 0x80;
        assert!(Request::decode(MsgId::VM_SET_FIRMWARE_MEM, &fw).is_ok());
        fw[3] = 1;
        assert_eq!(
            Request::decode(MsgId::VM_SET_FIRMWARE_MEM, &fw),
            Err(RmError::MsgInvalid)
        );
        assert_eq!(
            Request::decode(MsgId::VM_SET_FIRMWARE_MEM, &fw[..20]),
            Err(RmError::MsgInvalid)
        );
        // The queries with an empty payload: anything else is MSG_INVALID.
        for id in [
            MsgId::VM_GET_OWNER,
            MsgId::VM_GET_PEERS,
            MsgId::VM_HOST_GET_TYPE,
        ] {
            assert!(Request::decode(id, &[]).is_ok());
            assert_eq!(Request::decode(id, &[0, 0, 0, 0]), Err(RmError::MsgInvalid));
        }
    }

    #[test]
    fn extension_request_by_hand() {
        // GOLDEN_RELEASE golden 9.
        assert_eq!(
            Request::decode(MsgId(0x4700_0013), &[9, 0, 0, 0, 0, 0, 0, 0]).unwrap(),
            Request::GoldenRelease(GoldenReleaseReq::new(9))
        );
        // SIM_VM_READ vmid 3, length 16, ipa 0x40000000.
        let b = [3, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0];
        assert_eq!(
            Request::decode(MsgId(0x4700_00F0), &b).unwrap(),
            Request::SimVmRead(SimVmReadReq::new(3, 16, 0x4000_0000))
        );
    }
}
