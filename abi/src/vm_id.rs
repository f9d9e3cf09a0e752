//! VM identity messages (spec §2.3, §9): VM_GET_ID (0x56000010) and VM_LOOKUP_URI /
//! VM_LOOKUP_GUID / VM_LOOKUP_NAME (0x56000011..13).
//!
//! Layouts, read from Gunyah's RM (`quic/gunyah-resource-manager`,
//! `src/vm_mgnt/vm_mgnt.c`: `vm_mgnt_handle_get_id`, `vm_mgnt_handle_lookup_{uri,guid,name}`,
//! `vm_mgnt_lookup_by_id`; `include/vm_mgnt.h`: `VM_MAX_NAME_LEN`/`VM_MAX_URI_LEN` 80,
//! `VM_GUID_LEN` 16) and from Qualcomm's out-of-tree Linux driver
//! (`CodeLinaro-mirror/le_platform_vendor_qcom-opensource_gunyah-drivers`,
//! `drivers/virt/gunyah/gh_rm_drv_private.h`: `gh_vm_get_id_req_payload`,
//! `gh_vm_get_id_resp_entry`, `gh_vm_lookup_char_req_payload`, `gh_vm_lookup_resp_entry`;
//! `gh_rm_iface.c`: `gh_rm_vm_get_id`, `gh_rm_vm_lookup_name_uri`, `gh_rm_vm_lookup_guid`).
//! Little-endian throughout.
//!
//! | message | request | reply data (after `u32 err`) |
//! |---|---|---|
//! | VM_GET_ID | `u16 vmid` (0 = the caller), `u16 reserved` — exactly 4 bytes ([`VmidReq`](crate::vm::VmidReq)) | `u32 n_entries`, then `n_entries` × { `u8 id_type`, `u8 reserved`, `u16 id_size`, `id_size` bytes zero-padded to 4 } ([`VmIds`]) |
//! | VM_LOOKUP_NAME, VM_LOOKUP_URI | `u16 size`, `u16 reserved`, `size` bytes (no NUL) zero-padded to 4 ([`VmIdChars`]) | `u32 count`, then `count` × { `u16 vmid`, `u16 reserved` } ([`VmLookupReply`]) |
//! | VM_LOOKUP_GUID | the 16 GUID bytes ([`VmGuidReq`]) | as above |
//!
//! `id_type` ([`vm_id_type`]): GUID 0, URI 1, NAME 2, SIGN_AUTH 3. Gunyah's RM answers
//! VM_GET_ID with the GUID entry first (16 bytes, all zero when the VM has none), then NAME
//! and URI when the VM has them, then SIGN_AUTH (the platform's string for the VM's signer:
//! `"N/A"` for an image not authenticated, on its QEMU platform).
//!
//! Request checks (the RM's answers): VM_GET_ID of any size but 4 → `MSG_INVALID` (the
//! reserved half-word is not checked). VM_LOOKUP_NAME/URI: fewer than 4 bytes →
//! `MSG_INVALID`; `size` over 79 ([`VM_MAX_ID_LEN`]) → `ARGUMENT_INVALID` (checked before the
//! length); a payload that is not `4 + size` rounded up to 4 → `MSG_INVALID`; a padding byte
//! that is not 0 → `MSG_INVALID`. VM_LOOKUP_GUID of any size but 16 → `MSG_INVALID`.

use zerocopy::little_endian::{U16, U32};

use crate::error::RmError;
use crate::mem::VmidEntry;
use crate::wire::{
    counted_len, fixed_payload, wire_struct, DecodeError, Encode, EncodeError, Reader, Writer,
};

/// `id_type` values of VM_GET_ID entries (§9, `vm_id_type_t`).
pub mod vm_id_type {
    crate::names::named_values! { u8;
        /// 16-byte GUID (config `vm-guid`).
        GUID = 0,
        /// URI (config `vm-uri`).
        URI = 1,
        /// Name (config `image-name`).
        NAME = 2,
        /// Signing authority (platform string).
        SIGN_AUTH = 3,
    }
}

/// Length of a VM GUID in bytes (`VM_GUID_LEN`).
pub const VM_GUID_LEN: usize = 16;

/// Longest name or URI a lookup may carry: Gunyah's buffers are 80 bytes with the NUL
/// (`VM_MAX_NAME_LEN - 1`, `VM_MAX_URI_LEN - 1`).
pub const VM_MAX_ID_LEN: usize = 79;

/// `size` rounded up to 4.
const fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

wire_struct! {
    /// The 4-byte head of one VM_GET_ID reply entry: +0 u8 id_type, +1 u8 reserved, +2 u16
    /// id_size; the id bytes follow, zero-padded to 4 (`gh_vm_get_id_resp_entry`).
    pub struct VmIdEntryHead {
        /// +0 [`vm_id_type`] value.
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::vm_id_type"))]
        pub id_type: u8,
        /// +1 reserved.
        pub reserved: u8,
        /// +2 number of id bytes that follow (before padding).
        pub id_size: U16,
    }
}

/// One identity of a VM, as VM_GET_ID carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct VmIdEntry<'a> {
    /// [`vm_id_type`] value.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::vm_id_type"))]
    pub id_type: u8,
    /// The id bytes (a name or URI without NUL, 16 GUID bytes, ...).
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::wire"))]
    pub id: &'a [u8],
}

impl<'a> VmIdEntry<'a> {
    /// An entry of type `id_type` with bytes `id`.
    pub const fn new(id_type: u8, id: &'a [u8]) -> Self {
        VmIdEntry { id_type, id }
    }

    /// Bytes on the wire: head, id, padding.
    pub const fn encoded_len(&self) -> usize {
        4 + pad4(self.id.len())
    }
}

/// VM_GET_ID reply data, to encode: `u32 n_entries` and the entries, each padded to 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmIdList<'a> {
    /// The entries, in reply order.
    pub entries: &'a [VmIdEntry<'a>],
}

impl Encode for VmIdList<'_> {
    fn encoded_len(&self) -> usize {
        4 + self
            .entries
            .iter()
            .map(VmIdEntry::encoded_len)
            .sum::<usize>()
    }

    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.put(&U32::new(self.entries.len() as u32))?;
        for e in self.entries {
            let size = u16::try_from(e.id.len()).map_err(|_| EncodeError::TooManyEntries {
                count: e.id.len(),
                max: u16::MAX as usize,
            })?;
            w.put(&VmIdEntryHead {
                id_type: e.id_type,
                reserved: 0,
                id_size: U16::new(size),
            })?;
            w.bytes(e.id)?;
            w.pad4()?;
        }
        Ok(w.finish())
    }
}

/// VM_GET_ID reply data, decoded: `n_entries` entries whose sizes add up to the payload
/// exactly (what Linux's `gh_rm_vm_get_id` checks). Read them with [`VmIds::iter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmIds<'a> {
    count: u32,
    entries: &'a [u8],
}

impl<'a> VmIds<'a> {
    /// Decode untrusted bytes: every entry's head and padded id inside the payload, nothing
    /// after the last (`MSG_INVALID` otherwise).
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let count = r.read::<U32>("n_id_entries")?.get();
        let start = r.pos();
        for _ in 0..count {
            let head = r.read::<VmIdEntryHead>("id entry")?;
            let n = head.id_size.get() as usize;
            r.bytes(n, "id bytes")?;
            let pad = pad4(n) - n;
            r.bytes(pad, "id padding")?;
        }
        r.finish()?;
        Ok(VmIds {
            count,
            entries: &bytes[start..],
        })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The entries in reply order.
    pub fn iter(&self) -> VmIdIter<'a> {
        VmIdIter {
            left: self.count,
            rest: Reader::new(self.entries),
        }
    }

    /// The bytes of the first entry of type `id_type`.
    pub fn get(&self, id_type: u8) -> Option<&'a [u8]> {
        self.iter().find(|e| e.id_type == id_type).map(|e| e.id)
    }
}

/// Iterator over the entries of a decoded [`VmIds`].
#[derive(Clone, Debug)]
pub struct VmIdIter<'a> {
    left: u32,
    rest: Reader<'a>,
}

impl<'a> Iterator for VmIdIter<'a> {
    type Item = VmIdEntry<'a>;

    fn next(&mut self) -> Option<VmIdEntry<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Checked at decode: these reads succeed.
        let head = self.rest.read::<VmIdEntryHead>("id entry").ok()?;
        let n = head.id_size.get() as usize;
        let id = self.rest.bytes(n, "id bytes").ok()?;
        self.rest.bytes(pad4(n) - n, "id padding").ok()?;
        Some(VmIdEntry::new(head.id_type, id))
    }
}

impl Encode for VmIds<'_> {
    fn encoded_len(&self) -> usize {
        4 + self.entries.len()
    }

    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.put(&U32::new(self.count))?;
        w.bytes(self.entries)?;
        Ok(w.finish())
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for VmIds<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct Entries<'a>(VmIds<'a>);
        impl serde::Serialize for Entries<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter())
            }
        }
        let mut st = s.serialize_struct("VmIds", 1)?;
        st.serialize_field("entries", &Entries(*self))?;
        st.end()
    }
}

/// VM_LOOKUP_NAME / VM_LOOKUP_URI request: +0 u16 size, +2 u16 reserved, +4 `size` bytes
/// zero-padded to 4 (`gh_vm_lookup_char_req_payload`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct VmIdChars<'a> {
    /// The name or URI, without NUL.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::wire"))]
    pub id: &'a [u8],
}

impl<'a> VmIdChars<'a> {
    /// A lookup of `id`.
    pub const fn new(id: &'a [u8]) -> Self {
        VmIdChars { id }
    }

    /// Decode untrusted bytes with the checks of Gunyah's RM, in its order (module docs).
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.require_len(4, "VmIdChars")?;
        let size = r.read::<U16>("size")?.get() as usize;
        let _reserved = r.read::<U16>("reserved")?;
        if size > VM_MAX_ID_LEN {
            return Err(DecodeError {
                error: RmError::ArgumentInvalid,
                offset: 0,
                what: "size",
                why: "longer than 79 bytes",
            });
        }
        if bytes.len() != 4 + pad4(size) {
            return Err(
                DecodeError::invalid(bytes.len().min(4 + size), "characters")
                    .because("payload is not 4 + size rounded up to 4"),
            );
        }
        let id = r.bytes(size, "characters")?;
        let pad = r.rest();
        if let Some(i) = pad.iter().position(|b| *b != 0) {
            return Err(DecodeError::invalid(4 + size + i, "padding").because("not zero"));
        }
        Ok(VmIdChars { id })
    }
}

impl Encode for VmIdChars<'_> {
    fn encoded_len(&self) -> usize {
        4 + pad4(self.id.len())
    }

    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let n = u16::try_from(self.id.len()).map_err(|_| EncodeError::TooManyEntries {
            count: self.id.len(),
            max: u16::MAX as usize,
        })?;
        let mut w = Writer::new(out);
        w.put(&U16::new(n))?;
        w.put(&U16::new(0))?;
        w.bytes(self.id)?;
        w.pad4()?;
        Ok(w.finish())
    }
}

wire_struct! {
    /// VM_LOOKUP_GUID request (16 bytes): the GUID, in the byte order of the config's
    /// `vm-guid` string (Linux sends `uuid_parse`'s bytes).
    pub struct VmGuidReq {
        /// +0 the 16 GUID bytes.
        pub guid: [u8; 16],
    }
}

impl VmGuidReq {
    /// A lookup of `guid`.
    pub const fn new(guid: [u8; 16]) -> Self {
        VmGuidReq { guid }
    }
}

fixed_payload!(VmIdEntryHead, VmGuidReq);

/// VM_LOOKUP_* reply data: +0 u32 count, +4 count × { u16 vmid, u16 reserved }
/// (`gh_vm_lookup_resp_payload`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct VmLookupReply<'a> {
    /// The VMs found.
    pub vmids: &'a [VmidEntry],
}

impl<'a> VmLookupReply<'a> {
    /// Decode untrusted bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let vmids = r.counted("count", "VMID entries")?;
        r.finish()?;
        Ok(VmLookupReply { vmids })
    }
}

impl Encode for VmLookupReply<'_> {
    fn encoded_len(&self) -> usize {
        counted_len::<VmidEntry>(self.vmids.len())
    }

    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.counted(self.vmids)?;
        Ok(w.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MsgId, Reply, ReplyData, Request};

    /// HLOS's answer on Gunyah's RM, byte by byte: GUID (zero), NAME "HLOS", SIGN_AUTH "N/A".
    const HLOS_IDS: [u8; 44] = [
        0, 0, 0, 0, // err OK
        3, 0, 0, 0, // n_entries
        0, 0, 16, 0, // GUID, size 16
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, //
        2, 0, 4, 0, b'H', b'L', b'O', b'S', // NAME "HLOS"
        3, 0, 3, 0, b'N', b'/', b'A', 0, // SIGN_AUTH "N/A" + 1 pad
    ];

    #[test]
    fn get_id_reply_by_hand() {
        let guid = [0u8; 16];
        let list = [
            VmIdEntry::new(vm_id_type::GUID, &guid),
            VmIdEntry::new(vm_id_type::NAME, b"HLOS"),
            VmIdEntry::new(vm_id_type::SIGN_AUTH, b"N/A"),
        ];
        let l = VmIdList { entries: &list };
        let mut out = [0xEEu8; 64];
        let n = l.encode(&mut out).unwrap();
        assert_eq!(n, l.encoded_len());
        assert_eq!(&out[..n], &HLOS_IDS[4..]);
        let r = Reply::decode(MsgId::VM_GET_ID, &HLOS_IDS).unwrap();
        let ReplyData::VmIds(ids) = r.data else {
            panic!("{r:?}")
        };
        assert_eq!(ids.len(), 3);
        assert!(ids.iter().eq(list.iter().copied()));
        assert_eq!(ids.get(vm_id_type::NAME), Some(&b"HLOS"[..]));
        assert_eq!(ids.get(vm_id_type::URI), None);
        let mut again = [0u8; 64];
        assert_eq!(r.encode(&mut again).unwrap(), HLOS_IDS.len());
        assert_eq!(&again[..HLOS_IDS.len()], &HLOS_IDS[..]);
    }

    #[test]
    fn get_id_reply_sizes_must_add_up() {
        // One entry too many announced, an id running past the end, a byte left over.
        let mut b = HLOS_IDS[4..].to_vec();
        b[0] = 4;
        assert_eq!(
            VmIds::decode(&b),
            Err(DecodeError::invalid(40, "id entry").because("payload ends early"))
        );
        let mut b = HLOS_IDS[4..].to_vec();
        b[34] = 5; // SIGN_AUTH size 5 → padded 8, past the end
        assert_eq!(VmIds::decode(&b).unwrap_err().error, RmError::MsgInvalid);
        let mut b = HLOS_IDS[4..].to_vec();
        b.extend_from_slice(&[0; 4]);
        assert_eq!(VmIds::decode(&b).unwrap_err().why, "trailing bytes");
        assert!(VmIds::decode(&[0, 0, 0, 0]).unwrap().is_empty());
        assert_eq!(
            VmIds::decode(&[0, 0]).unwrap_err().error,
            RmError::MsgInvalid
        );
    }

    #[test]
    fn get_id_request_is_a_vmid_request() {
        use crate::vm::VmidReq;
        assert_eq!(
            Request::decode(MsgId::VM_GET_ID, &[0x80, 0, 0, 0]).unwrap(),
            Request::VmGetId(VmidReq::new(0x80))
        );
        // Gunyah's RM reads only the VMID; the reserved half-word is not checked.
        assert!(Request::decode(MsgId::VM_GET_ID, &[3, 0, 0xFF, 0xFF]).is_ok());
        for bad in [&[][..], &[3, 0], &[3, 0, 0], &[3, 0, 0, 0, 0]] {
            assert_eq!(
                Request::decode(MsgId::VM_GET_ID, bad),
                Err(RmError::MsgInvalid)
            );
        }
    }

    #[test]
    fn lookup_chars_by_hand() {
        let b = [4, 0, 0, 0, b'H', b'L', b'O', b'S'];
        let r = Request::decode(MsgId::VM_LOOKUP_NAME, &b).unwrap();
        assert_eq!(r, Request::VmLookupName(VmIdChars::new(b"HLOS")));
        let mut out = [0u8; 16];
        assert_eq!(r.encode(&mut out).unwrap(), 8);
        assert_eq!(&out[..8], &b);
        // "vm://a" (6 bytes) → padded to 8, 12 in all.
        let b = [6, 0, 0, 0, b'v', b'm', b':', b'/', b'/', b'a', 0, 0];
        assert_eq!(
            Request::decode(MsgId::VM_LOOKUP_URI, &b).unwrap(),
            Request::VmLookupUri(VmIdChars::new(b"vm://a"))
        );
        // The reserved half-word is not checked; an empty id is 4 bytes.
        assert!(VmIdChars::decode(&[0, 0, 9, 9]).unwrap().id.is_empty());
    }

    #[test]
    fn lookup_chars_errors_in_gunyahs_order() {
        let code = |b: &[u8]| VmIdChars::decode(b).map(|_| ()).map_err(|e| e.error);
        // Shorter than the head.
        assert_eq!(code(&[4, 0, 0]), Err(RmError::MsgInvalid));
        assert_eq!(code(&[]), Err(RmError::MsgInvalid));
        // size 80 → ARGUMENT_INVALID, even though the payload is short too.
        assert_eq!(code(&[80, 0, 0, 0]), Err(RmError::ArgumentInvalid));
        let mut long = std::vec![79u8, 0, 0, 0];
        long.resize(4 + 79, b'a');
        long.push(0);
        assert_eq!(code(&long), Ok(()));
        long[0] = 80;
        assert_eq!(code(&long), Err(RmError::ArgumentInvalid));
        // Length not 4 + pad4(size): unpadded, too long, too short.
        assert_eq!(
            code(&[3, 0, 0, 0, b'a', b'b', b'c']),
            Err(RmError::MsgInvalid)
        );
        assert_eq!(
            code(&[3, 0, 0, 0, b'a', b'b', b'c', 0, 0, 0, 0, 0]),
            Err(RmError::MsgInvalid)
        );
        assert_eq!(
            code(&[4, 0, 0, 0, b'a', b'b', b'c']),
            Err(RmError::MsgInvalid)
        );
        // Padding not zero.
        assert_eq!(
            code(&[3, 0, 0, 0, b'a', b'b', b'c', 1]),
            Err(RmError::MsgInvalid)
        );
        assert_eq!(code(&[3, 0, 0, 0, b'a', b'b', b'c', 0]), Ok(()));
    }

    #[test]
    fn lookup_guid_and_reply_by_hand() {
        let g: [u8; 16] = core::array::from_fn(|i| i as u8);
        assert_eq!(
            Request::decode(MsgId::VM_LOOKUP_GUID, &g).unwrap(),
            Request::VmLookupGuid(VmGuidReq::new(g))
        );
        assert_eq!(
            Request::decode(MsgId::VM_LOOKUP_GUID, &g[..15]),
            Err(RmError::MsgInvalid)
        );
        let mut g17 = g.to_vec();
        g17.push(0);
        assert_eq!(
            Request::decode(MsgId::VM_LOOKUP_GUID, &g17),
            Err(RmError::MsgInvalid)
        );
        // Reply: OK, 2 VMs (3 and 0x80).
        let b = [0, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0x80, 0, 0, 0];
        for id in [
            MsgId::VM_LOOKUP_NAME,
            MsgId::VM_LOOKUP_URI,
            MsgId::VM_LOOKUP_GUID,
        ] {
            let r = Reply::decode(id, &b).unwrap();
            let ReplyData::VmLookup(l) = r.data else {
                panic!("{r:?}")
            };
            assert_eq!(l.vmids, &[VmidEntry::new(3), VmidEntry::new(0x80)]);
            let mut out = [0u8; 16];
            assert_eq!(l.encode(&mut out).unwrap(), 12);
            assert_eq!(&out[..12], &b[4..]);
        }
        assert_eq!(
            Reply::decode(MsgId::VM_LOOKUP_NAME, &[0, 0, 0, 0, 1, 0, 0, 0]),
            Err(RmError::MsgInvalid)
        );
    }
}
