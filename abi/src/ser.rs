//! `serde::Serialize` for the payloads (feature `serde`), so that a tool can
//! describe any message from this crate's own definitions (the
//! `gunyah-rm decode` subcommand does) and a new message needs no second
//! description.
//!
//! What the serialization looks like:
//! * every payload struct is a struct of its fields, in wire order, under
//!   the spec's names (`mem_handle`, `type`, `exit_reason`);
//! * little-endian integers (`U16`, `U32`, `U64`) are plain numbers;
//! * a field whose values have names (VM and OS state, exit type, mem type,
//!   trans type, rights, resource type, ...) is `{"value": n, "name": "..."}`
//!   when this crate names `n`, the bare number otherwise;
//! * bytes are a lower-case hex string in human-readable formats (JSON),
//!   bytes otherwise;
//! * a field called `reserved` is left out while it is zero;
//! * [`Request`](crate::Request), [`ReplyData`](crate::ReplyData) and
//!   [`Notification`](crate::Notification) serialize as their payload alone:
//!   the message ID travels beside it, as on the wire. A payload that is one
//!   word names it (`{"virq_handle": 5}`), an empty payload is `{}` and one
//!   this crate does not decode is `{"raw": "<hex>"}`.
//!
//! The wire structs keep their `zerocopy` layout: the helpers here are
//! named in `#[serde(serialize_with = ...)]` attributes (the crate's
//! `wire_struct!` macro adds `ser::wire` to every field of a fixed-size
//! struct itself).

use core::fmt;

use serde::ser::{Serialize, SerializeStruct, Serializer};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{Immutable, IntoBytes};

use crate::ext::IdReply;
use crate::mem::{mem_attr, mem_type, rights, trans_type};
use crate::msg_id::MsgId;
use crate::vm::{auth_mech, auth_param, exit_code, range_id, reg_set, resource_type};
use crate::vm::{stop_reason, Word};
use crate::wire::{Bytes, Empty};
use crate::{ext, ExitType, OsState, VmState};

/// How a field value appears in the serialization.
pub(crate) trait Wire {
    /// Serialize the value.
    fn wire<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error>;
}

macro_rules! wire_numbers {
    ($($t:ty => $method:ident,)*) => {$(
        impl Wire for $t {
            fn wire<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.$method((*self).into())
            }
        }
    )*};
}

wire_numbers! {
    u8 => serialize_u8,
    U16 => serialize_u16,
    U32 => serialize_u32,
    U64 => serialize_u64,
}

impl<const N: usize> Wire for [u8; N] {
    fn wire<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        bytes(self, s)
    }
}

impl Wire for &[u8] {
    fn wire<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        bytes(self, s)
    }
}

impl Wire for &[U32] {
    fn wire<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(|v| v.get()))
    }
}

impl Wire for &[U64] {
    fn wire<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(|v| v.get()))
    }
}

/// `serialize_with` for any wire field: numbers, byte arrays, lists of
/// little-endian integers.
pub(crate) fn wire<T: Wire, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    v.wire(s)
}

/// `skip_serializing_if` for reserved fields: all bytes zero.
pub(crate) fn is_zero<T: IntoBytes + Immutable>(v: &T) -> bool {
    v.as_bytes().iter().all(|b| *b == 0)
}

/// Bytes: hex for people, bytes for machines.
fn bytes<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.collect_str(&Hex(b))
    } else {
        s.serialize_bytes(b)
    }
}

struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        bytes(self.0, s)
    }
}

impl Serialize for Empty {
    /// An empty struct (`{}`), like any other payload without fields.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_struct("Empty", 0)?.end()
    }
}

/// A number with the name this crate gives it.
struct Named {
    value: u64,
    name: Option<&'static str>,
}

impl Serialize for Named {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.name {
            Some(name) => {
                let mut st = s.serialize_struct("Named", 2)?;
                st.serialize_field("value", &self.value)?;
                st.serialize_field("name", name)?;
                st.end()
            }
            None => s.serialize_u64(self.value),
        }
    }
}

/// An integer field, plain or little-endian.
pub(crate) trait Number {
    /// The value.
    fn number(&self) -> u64;
}

macro_rules! numbers {
    ($($t:ty),*) => {$(
        impl Number for $t {
            fn number(&self) -> u64 {
                u64::from(*self)
            }
        }
    )*};
}
numbers!(u8, u16, u32, U16, U32);

/// `serialize_with` helpers for fields with named values: `$fn` names a
/// value of type `$ty` with `$names`.
macro_rules! named_fields {
    ($( $fn:ident: $ty:ty => $names:expr; )*) => {$(
        pub(crate) fn $fn<T: Number, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
            let value = v.number();
            let name = <$ty>::try_from(value).ok().and_then($names);
            Named { value, name }.serialize(s)
        }
    )*};
}

named_fields! {
    mem_type: u8 => mem_type::name;
    trans_type: u8 => trans_type::name;
    rights: u8 => rights::name;
    mem_attr: u16 => mem_attr::name;
    vm_state: u8 => |v| VmState::from_raw(v).map(VmState::name);
    os_state: u8 => |v| OsState::from_raw(v).map(OsState::name);
    exit_type: u16 => |v| ExitType::from_raw(v).map(ExitType::name);
    exit_code: u8 => exit_code::name;
    stop_reason: u32 => stop_reason::name;
    auth_mech: u16 => auth_mech::name;
    auth_param: u32 => auth_param::name;
    reg_set: u8 => reg_set::name;
    range_id: u32 => range_id::name;
    resource_type: u8 => resource_type::name;
    vm_id_type: u8 => crate::vm_id::vm_id_type::name;
    fault_why: u8 => ext::fault_why::name;
    fault_action: u8 => ext::fault_action::name;
}

/// A one-word payload ([`Word`], [`IdReply`]).
pub(crate) trait OneWord {
    /// The word.
    fn word(&self) -> u32;
}

impl OneWord for Word {
    fn word(&self) -> u32 {
        self.value.get()
    }
}

impl OneWord for IdReply {
    fn word(&self) -> u32 {
        self.id.get()
    }
}

/// `serialize_with` helpers for enum variants whose payload is one word:
/// `{"<name>": word}`, the word named by `$names` if given.
macro_rules! word_variants {
    ($( $fn:ident => $field:literal $(, $names:path)?; )*) => {$(
        pub(crate) fn $fn<W: OneWord, S: Serializer>(w: &W, s: S) -> Result<S::Ok, S::Error> {
            let mut st = s.serialize_struct("Word", 1)?;
            let value = w.word();
            let name: Option<&'static str> = None $(.or($names(value)))?;
            st.serialize_field($field, &Named { value: value.into(), name })?;
            st.end()
        }
    )*};
}

word_variants! {
    vmid => "vmid";
    owner_vmid => "owner_vmid";
    host_type => "host_type";
    virq_handle => "virq_handle";
    virq => "virq";
    hyp_error => "hyp_error";
    stop_reason_word => "stop_reason", stop_reason::name;
    gmem_id => "gmem_id";
    bind_handle => "mem_handle";
    faults_served => "faults_served";
}

/// `serialize_with` for an enum's unit variant without data: `{}`.
pub(crate) fn empty<S: Serializer>(s: S) -> Result<S::Ok, S::Error> {
    Empty.serialize(s)
}

/// `serialize_with` for undecoded data: `{"raw": bytes}`.
pub(crate) fn raw<S: Serializer>(b: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    one_field("Raw", "raw", b, s)
}

/// `serialize_with` for a message this crate does not decode: its payload
/// raw (the message ID is in the header).
pub(crate) fn other<S: Serializer>(
    _msg_id: &MsgId,
    payload: &&[u8],
    s: S,
) -> Result<S::Ok, S::Error> {
    raw(payload, s)
}

/// `serialize_with` for data read from guest memory: `{"data": bytes}`.
pub(crate) fn data<S: Serializer>(b: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    one_field("Data", "data", b, s)
}

fn one_field<S: Serializer>(
    ty: &'static str,
    field: &'static str,
    b: &[u8],
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut st = s.serialize_struct(ty, 1)?;
    st.serialize_field(field, &Bytes(b))?;
    st.end()
}

#[cfg(test)]
mod tests {
    use serde_json::{json, to_value};

    use crate::ext::{GoldenSealReply, IdReply};
    use crate::mem::{rights, AclEntry, MemCreate, MemReleaseReq, MemShared, SglEntry};
    use crate::vm::{HypResourceEntry, VmExited, VmStatusNotif, Word};
    use crate::wire::Empty;
    use crate::{MsgId, Notification, OsState, ReplyData, Request, VmState};
    use zerocopy::little_endian::U64;

    #[test]
    fn wire_fields_are_numbers_and_reserved_zero_is_left_out() {
        assert_eq!(
            to_value(AclEntry::new(0x80, rights::RWX)).unwrap(),
            json!({"vmid": 128, "rights": {"value": 7, "name": "RWX"}})
        );
        let mut acl = AclEntry::new(3, 0x9);
        acl.reserved = 1;
        assert_eq!(
            to_value(acl).unwrap(),
            json!({"vmid": 3, "rights": 9, "reserved": 1})
        );
        let mut rel = MemReleaseReq::new(0x10, 1);
        assert_eq!(
            to_value(rel).unwrap(),
            json!({"mem_handle": 16, "flags": 1})
        );
        rel.reserved = [0, 0, 0xab];
        assert_eq!(to_value(rel).unwrap()["reserved"], "0000ab");
    }

    #[test]
    fn named_values_carry_their_names() {
        // VM state 7 is reserved: no name, the bare number.
        let mut n = VmStatusNotif::new(0x81, VmState::Load, OsState::Boot, 0x0102);
        assert_eq!(
            to_value(n).unwrap(),
            json!({
                "vmid": 129,
                "vm_status": {"value": 5, "name": "LOAD"},
                "os_status": {"value": 2, "name": "BOOT"},
                "app_status": 258,
            })
        );
        n.vm_status = 7;
        assert_eq!(to_value(n).unwrap()["vm_status"], 7);
        let e = HypResourceEntry::new(4, 0x80, 1, 2, 0x33, 0, 0x20, 0, 0);
        assert_eq!(
            to_value(e).unwrap()["type"],
            json!({"value": 4, "name": "VIRTUAL_CPU"})
        );
        let x = VmExited {
            vmid: 0x80,
            exit_type: 7,
            reason: &[1, 0, 3, 0],
        };
        assert_eq!(
            to_value(x).unwrap(),
            json!({
                "vmid": 128,
                "exit_type": {"value": 7, "name": "VM_STOP_FORCED"},
                "exit_reason": "01000300",
            })
        );
    }

    #[test]
    fn lists_and_bytes() {
        let acl = [AclEntry::new(3, rights::RW)];
        let sizes = [U64::new(0x20_0000)];
        let s = MemShared {
            handle: 9,
            mem_type: 1,
            trans_type: 2,
            flags: 1,
            owner_vmid: 3,
            label: 0x1234,
            mem_info_tag: 0xbeef,
            acl: &acl,
            region_sizes: &sizes,
            attrs: &[],
        };
        assert_eq!(
            to_value(s).unwrap(),
            json!({
                "mem_handle": 9,
                "mem_type": {"value": 1, "name": "IO"},
                "trans_type": {"value": 2, "name": "SHARE"},
                "flags": 1,
                "owner_vmid": 3,
                "label": 0x1234,
                "mem_info_tag": 0xbeef,
                "acl": [{"vmid": 3, "rights": {"value": 6, "name": "RW"}}],
                "region_sizes": [0x20_0000],
                "attrs": [],
            })
        );
        let mut digest = [0u8; 32];
        digest[31] = 0xff;
        let v = to_value(GoldenSealReply::new(2, digest)).unwrap();
        assert_eq!(v["golden_id"], 2);
        assert_eq!(v["digest"], std::format!("{}ff", "00".repeat(31)));
    }

    #[test]
    fn message_enums_are_their_payload() {
        let sgl = [SglEntry::new(0x4000_0000, 0x1000)];
        let lend = Request::MemLend(MemCreate::normal(&[], &sgl));
        assert_eq!(
            to_value(lend).unwrap(),
            json!({
                "mem_type": {"value": 0, "name": "NORMAL"},
                "flags": 0,
                "label": 0,
                "acl": [],
                "sgl": [{"ipa": 0x4000_0000, "size": 0x1000}],
                "attrs": [],
            })
        );
        let other = Request::Other {
            msg_id: MsgId(0x5600_00ff),
            payload: &[0xab, 0xcd],
        };
        assert_eq!(to_value(other).unwrap(), json!({"raw": "abcd"}));
        assert_eq!(to_value(Request::VmGetVmid(Empty)).unwrap(), json!({}));
        assert_eq!(
            to_value(Request::VmIrqRelease(Word::new(5))).unwrap(),
            json!({"virq_handle": 5})
        );
        assert_eq!(to_value(ReplyData::Empty).unwrap(), json!({}));
        assert_eq!(
            to_value(ReplyData::BindHandle(IdReply::new(0x4742_0000))).unwrap(),
            json!({"mem_handle": 0x4742_0000u32})
        );
        assert_eq!(
            to_value(ReplyData::SimRead(b"hi")).unwrap(),
            json!({"data": "6869"})
        );
        assert_eq!(
            to_value(Notification::VmShutdown(Word::new(3))).unwrap(),
            json!({"stop_reason": {"value": 3, "name": "FORCE_STOP"}})
        );
        assert_eq!(
            to_value(Notification::VmIrqAccepted(Word::new(9))).unwrap(),
            json!({"virq_handle": 9})
        ); // VM identity: the entries with their named types, the lookups' VMIDs.
        use crate::mem::VmidEntry;
        use crate::vm_id::{VmIdChars, VmIds, VmLookupReply};
        let ids = [
            1, 0, 0, 0, // one entry
            2, 0, 4, 0, b'H', b'L', b'O', b'S',
        ];
        assert_eq!(
            to_value(ReplyData::VmIds(VmIds::decode(&ids).unwrap())).unwrap(),
            json!({"entries": [{"id_type": {"value": 2, "name": "NAME"}, "id": "484c4f53"}]})
        );
        assert_eq!(
            to_value(Request::VmLookupName(VmIdChars::new(b"HLOS"))).unwrap(),
            json!({"id": "484c4f53"})
        );
        let found = [VmidEntry::new(3)];
        assert_eq!(
            to_value(ReplyData::VmLookup(VmLookupReply { vmids: &found })).unwrap(),
            json!({"vmids": [{"vmid": 3}]})
        );
    }
}
