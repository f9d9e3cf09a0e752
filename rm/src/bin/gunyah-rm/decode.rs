//! `gunyah-rm decode`: pretty-print RM RPC message-queue messages.
//!
//! Each argument (or each non-empty stdin line, `#` starts a comment) is one
//! message-queue message in hex; spaces, `:` and `_` between digits and a
//! leading `0x` are ignored. Fragmented messages are reassembled with the
//! RM's receive rules. A reply's data is decoded by the msg_id it carries
//! (which is the request's). Malformed input is reported on stderr with the
//! packet number and byte offset, and the exit status is 1.

use std::io::BufRead;
use std::process::ExitCode;

use gunyah_rm_abi::ext::{
    CowBroken, FaultIpa, FaultUnserved, GmemBindReq, GmemCreateReq, GmemUnbindReq, GoldenMapReq,
    GoldenReleaseReq, GoldenSealReply, GoldenSealReq, GoldenUnmapReq, IdReply, QuotaExhausted,
    SimVmReadReq, SimVmWrite, VmMemStatsReply,
};
use gunyah_rm_abi::header::MAX_FRAGMENT_PAYLOAD;
use gunyah_rm_abi::mem::{
    AclEntry, AttrEntry, MemAccept, MemAcceptReply, MemAppend, MemCreate, MemHandleReply,
    MemLookupSgl, MemNotify, MemOwnerNotif, MemRecall, MemReleaseReq, MemShared, SglEntry,
    VmidEntry,
};
use gunyah_rm_abi::vm::{
    ConsoleChars, FwSetVmFirmwareReq, HypResourceEntry, HypResources, VmAuthImage,
    VmConfigImageReq, VmExitReq, VmExited, VmIrqAcceptReq, VmIrqLendReq, VmIrqLentNotif,
    VmIrqNotify, VmSetAddressLayoutReq, VmSetBootContextReq, VmSetDemandPaging,
    VmSetFirmwareMemReq, VmSetStatusReq, VmSetTimeBaseReq, VmStateReply, VmStatusNotif, VmStopReq,
    VmidReq, Word,
};
use gunyah_rm_abi::{
    DecodeError, ExitType, Message, MsgType, Notification, OsState, Reassembler, Received, Reply,
    ReplyData, Request, RmError, VmState,
};
use zerocopy::little_endian::U64;

#[derive(clap::Args)]
pub struct Args {
    /// Message-queue messages as hex, one per argument (read from stdin, one per line, if none).
    pub hex: Vec<String>,
    /// Print one JSON object per logical message.
    #[arg(long)]
    pub json: bool,
}

/// A decoded field value, kept in wire order for the human output.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    /// An integer.
    Num(u64),
    /// A name or other text.
    Str(String),
    /// Raw bytes (hex in JSON).
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Val>),
    /// Named fields in order.
    Obj(Vec<(&'static str, Val)>),
    /// No value.
    Null,
}

macro_rules! obj {
    ($($k:literal => $v:expr),* $(,)?) => {
        Val::Obj(vec![$(($k, Val::from($v))),*])
    };
}

impl From<u8> for Val {
    fn from(v: u8) -> Val {
        Val::Num(v.into())
    }
}
impl From<u16> for Val {
    fn from(v: u16) -> Val {
        Val::Num(v.into())
    }
}
impl From<u32> for Val {
    fn from(v: u32) -> Val {
        Val::Num(v.into())
    }
}
impl From<u64> for Val {
    fn from(v: u64) -> Val {
        Val::Num(v)
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Val {
        Val::Str(v.to_string())
    }
}
impl From<Option<&'static str>> for Val {
    fn from(v: Option<&'static str>) -> Val {
        v.map_or(Val::Null, Val::from)
    }
}
impl From<&[u8]> for Val {
    fn from(v: &[u8]) -> Val {
        Val::Bytes(v.to_vec())
    }
}
impl<T: ToVal> From<&[T]> for Val {
    fn from(v: &[T]) -> Val {
        Val::List(v.iter().map(ToVal::val).collect())
    }
}

impl Val {
    /// The JSON form: numbers, strings, byte strings as hex, objects.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Val::Num(n) => J::from(*n),
            Val::Str(s) => J::from(s.as_str()),
            Val::Bytes(b) => J::from(hex::encode(b)),
            Val::List(l) => J::Array(l.iter().map(Val::to_json).collect()),
            Val::Obj(fields) => J::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
            Val::Null => J::Null,
        }
    }

    fn scalar(&self) -> Option<String> {
        match self {
            Val::Num(n) if *n < 10 => Some(n.to_string()),
            Val::Num(n) => Some(format!("{n} ({n:#x})")),
            Val::Str(s) => Some(s.clone()),
            Val::Bytes(b) if b.is_empty() => Some("(none)".into()),
            Val::Bytes(b) => {
                // Show text only when it is text (console output, strings).
                let printable = b
                    .iter()
                    .all(|&c| c.is_ascii_graphic() || c == b' ' || c == b'\n' || c == b'\t');
                if printable {
                    Some(format!(
                        "{} {:?}",
                        hex::encode(b),
                        String::from_utf8_lossy(b)
                    ))
                } else {
                    Some(hex::encode(b))
                }
            }
            // A value with its name, e.g. a VM state: "3 (RUNNING)".
            Val::Obj(f) if f.len() == 2 && f[0].0 == "value" && f[1].0 == "name" => Some(format!(
                "{} ({})",
                f[0].1.scalar().unwrap_or_default(),
                f[1].1.scalar().unwrap_or_default()
            )),
            Val::Null => Some("-".into()),
            Val::List(_) | Val::Obj(_) => None,
        }
    }

    /// Print the fields of an object, one per line.
    fn print_fields(&self, out: &mut String, indent: usize) {
        let pad = "  ".repeat(indent);
        let Val::Obj(fields) = self else {
            if let Some(s) = self.scalar() {
                out.push_str(&format!("{pad}{s}\n"));
            }
            return;
        };
        for (k, v) in fields {
            match v {
                Val::List(items) => {
                    out.push_str(&format!("{pad}{k}: {} entries\n", items.len()));
                    for (i, item) in items.iter().enumerate() {
                        match item {
                            Val::Obj(f) if f.iter().all(|(_, v)| v.scalar().is_some()) => {
                                let line: Vec<String> = f
                                    .iter()
                                    .map(|(k, v)| format!("{k}: {}", v.scalar().unwrap()))
                                    .collect();
                                out.push_str(&format!("{pad}  [{i}] {}\n", line.join(", ")));
                            }
                            Val::Obj(_) => {
                                out.push_str(&format!("{pad}  [{i}]\n"));
                                item.print_fields(out, indent + 2);
                            }
                            other => out.push_str(&format!(
                                "{pad}  [{i}] {}\n",
                                other.scalar().unwrap_or_default()
                            )),
                        }
                    }
                }
                Val::Obj(_) if v.scalar().is_none() => {
                    out.push_str(&format!("{pad}{k}:\n"));
                    v.print_fields(out, indent + 1);
                }
                _ => out.push_str(&format!("{pad}{k}: {}\n", v.scalar().unwrap_or_default())),
            }
        }
    }
}

/// Field-by-field view of a payload type.
pub trait ToVal {
    /// The fields, in wire order.
    fn val(&self) -> Val;
}

fn named<T>(raw: T, name: Option<&'static str>) -> Val
where
    Val: From<T>,
{
    match name {
        Some(n) => Val::Obj(vec![
            ("value", Val::from(raw)),
            ("name", Val::Str(n.to_string())),
        ]),
        None => Val::from(raw),
    }
}

fn mem_type(v: u8) -> Val {
    named(v, ["NORMAL", "IO"].get(v as usize).copied())
}

fn trans_type(v: u8) -> Val {
    named(v, ["DONATE", "LEND", "SHARE"].get(v as usize).copied())
}

fn resource_type(v: u8) -> Val {
    const NAMES: [&str; 11] = [
        "DOORBELL_SRC",
        "DOORBELL",
        "MSG_QUEUE_SEND",
        "MSG_QUEUE_RECV",
        "VIRTUAL_CPU",
        "VIRTUAL_PM",
        "VIRTIO_MMIO",
        "VRTC",
        "WATCHDOG",
        "MEM_EXTENT",
        "ADDR_SPACE",
    ];
    named(v, NAMES.get(v as usize).copied())
}

impl ToVal for AclEntry {
    fn val(&self) -> Val {
        obj! { "vmid" => self.vmid.get(), "rights" => self.rights }
    }
}
impl ToVal for SglEntry {
    fn val(&self) -> Val {
        obj! { "ipa" => self.ipa.get(), "size" => self.size.get() }
    }
}
impl ToVal for AttrEntry {
    fn val(&self) -> Val {
        obj! { "attr" => self.attr.get(), "vmid" => self.vmid.get() }
    }
}
impl ToVal for VmidEntry {
    fn val(&self) -> Val {
        obj! { "vmid" => self.vmid.get() }
    }
}
impl ToVal for U64 {
    fn val(&self) -> Val {
        Val::Num(self.get())
    }
}
impl ToVal for gunyah_rm_abi::vm::AuthParam {
    fn val(&self) -> Val {
        obj! { "type" => self.ty.get(), "value" => self.value.get() }
    }
}
impl ToVal for HypResourceEntry {
    fn val(&self) -> Val {
        obj! {
            "type" => resource_type(self.ty), "partner_vmid" => self.partner_vmid.get(),
            "resource_handle" => self.resource_handle.get(),
            "resource_label" => self.resource_label.get(), "cap_id" => self.cap_id.get(),
            "virq_handle" => self.virq_handle.get(), "virq" => self.virq.get(),
            "base" => self.base.get(), "size" => self.size.get(),
        }
    }
}

impl ToVal for MemCreate<'_> {
    fn val(&self) -> Val {
        obj! {
            "mem_type" => mem_type(self.mem_type), "flags" => self.flags, "label" => self.label,
            "acl" => self.acl, "sgl" => self.sgl, "attrs" => self.attrs,
        }
    }
}
impl ToVal for MemAppend<'_> {
    fn val(&self) -> Val {
        obj! { "mem_handle" => self.handle, "flags" => self.flags, "sgl" => self.sgl }
    }
}
impl ToVal for MemAccept<'_> {
    fn val(&self) -> Val {
        obj! {
            "mem_handle" => self.handle, "mem_type" => mem_type(self.mem_type),
            "trans_type" => trans_type(self.trans_type), "flags" => self.flags, "label" => self.label,
            "acl" => self.acl, "map_vmid" => self.map_vmid, "sgl" => self.sgl,
            "attrs" => self.attrs,
        }
    }
}
impl ToVal for MemReleaseReq {
    fn val(&self) -> Val {
        obj! { "mem_handle" => self.handle.get(), "flags" => self.flags }
    }
}
impl ToVal for MemNotify<'_> {
    fn val(&self) -> Val {
        obj! {
            "mem_handle" => self.handle, "flags" => self.flags,
            "mem_info_tag" => self.mem_info_tag, "vmids" => self.vmids,
        }
    }
}
impl ToVal for MemLookupSgl<'_> {
    fn val(&self) -> Val {
        obj! {
            "mem_type" => mem_type(self.mem_type), "label" => self.label, "acl" => self.acl,
            "sgl" => self.sgl, "attrs" => self.attrs,
        }
    }
}
impl ToVal for MemHandleReply {
    fn val(&self) -> Val {
        obj! { "mem_handle" => self.handle.get() }
    }
}
impl ToVal for MemAcceptReply<'_> {
    fn val(&self) -> Val {
        obj! { "flags" => self.flags, "sgl" => self.sgl }
    }
}
impl ToVal for MemShared<'_> {
    fn val(&self) -> Val {
        obj! {
            "mem_handle" => self.handle, "mem_type" => mem_type(self.mem_type),
            "trans_type" => trans_type(self.trans_type), "flags" => self.flags,
            "owner_vmid" => self.owner_vmid, "label" => self.label,
            "mem_info_tag" => self.mem_info_tag, "acl" => self.acl,
            "region_sizes" => self.region_sizes, "attrs" => self.attrs,
        }
    }
}
impl ToVal for MemOwnerNotif {
    fn val(&self) -> Val {
        obj! {
            "mem_handle" => self.handle.get(), "vmid" => self.vmid.get(),
            "mem_info_tag" => self.mem_info_tag.get(),
        }
    }
}
impl ToVal for MemRecall {
    fn val(&self) -> Val {
        obj! { "mem_handle" => self.handle.get(), "mem_info_tag" => self.mem_info_tag.get() }
    }
}
impl ToVal for FwSetVmFirmwareReq {
    fn val(&self) -> Val {
        obj! {
            "auth_type" => self.auth_type.get(), "mem_handle" => self.mem_handle.get(),
            "image_offset" => self.image_offset.get(), "image_size" => self.image_size.get(),
        }
    }
}
impl ToVal for VmidReq {
    fn val(&self) -> Val {
        obj! { "vmid" => self.vmid.get(), "reserved" => self.reserved.get() }
    }
}
impl ToVal for VmStopReq {
    fn val(&self) -> Val {
        obj! {
            "vmid" => self.vmid.get(), "flags" => self.flags,
            "stop_reason" => self.stop_reason.get(),
        }
    }
}
impl ToVal for VmConfigImageReq {
    fn val(&self) -> Val {
        obj! {
            "vmid" => self.vmid.get(), "auth_mech" => self.auth_mech.get(),
            "mem_handle" => self.mem_handle.get(), "image_offset" => self.image_offset.get(),
            "image_size" => self.image_size.get(), "dtb_offset" => self.dtb_offset.get(),
            "dtb_size" => self.dtb_size.get(),
        }
    }
}
impl ToVal for VmAuthImage<'_> {
    fn val(&self) -> Val {
        obj! { "vmid" => self.vmid, "params" => self.params }
    }
}
impl ToVal for VmSetTimeBaseReq {
    fn val(&self) -> Val {
        obj! {
            "vmid" => self.vmid.get(), "time_base" => self.time_base.get(),
            "sys_timer_ref" => self.sys_timer_ref.get(),
        }
    }
}
impl ToVal for VmSetBootContextReq {
    fn val(&self) -> Val {
        obj! {
            "vmid" => self.vmid.get(), "reg_set" => self.reg_set,
            "reg_index" => self.reg_index, "value" => self.value.get(),
        }
    }
}
impl ToVal for VmSetFirmwareMemReq {
    fn val(&self) -> Val {
        obj! {
            "vmid" => self.vmid.get(), "reserved" => self.reserved.get(),
            "mem_handle" => self.mem_handle.get(), "fw_offset" => self.fw_offset.get(),
            "fw_size" => self.fw_size.get(),
        }
    }
}
impl ToVal for VmSetDemandPaging<'_> {
    fn val(&self) -> Val {
        obj! { "vmid" => self.vmid, "ranges" => self.ranges }
    }
}
impl ToVal for VmSetAddressLayoutReq {
    fn val(&self) -> Val {
        obj! {
            "vmid" => self.vmid.get(), "range_id" => self.range_id.get(),
            "base" => self.base.get(), "size" => self.size.get(),
        }
    }
}
impl ToVal for VmSetStatusReq {
    fn val(&self) -> Val {
        obj! {
            "vm_status" => named(self.vm_status, VmState::from_raw(self.vm_status).map(VmState::name)),
            "os_status" => named(self.os_status, OsState::from_raw(self.os_status).map(OsState::name)),
            "app_status" => self.app_status.get(),
        }
    }
}
impl ToVal for VmExitReq {
    fn val(&self) -> Val {
        obj! { "exit_flags" => self.exit_flags.get(), "exit_code" => self.exit_code }
    }
}
impl ToVal for ConsoleChars<'_> {
    fn val(&self) -> Val {
        obj! { "vmid" => self.vmid, "bytes" => self.bytes }
    }
}
impl ToVal for VmIrqLendReq {
    fn val(&self) -> Val {
        obj! { "vmid" => self.vmid.get(), "virq" => self.virq.get(), "label" => self.label.get() }
    }
}
impl ToVal for VmIrqAcceptReq {
    fn val(&self) -> Val {
        obj! { "virq_handle" => self.virq_handle.get(), "virq" => self.virq.get() }
    }
}
impl ToVal for VmIrqNotify<'_> {
    fn val(&self) -> Val {
        obj! { "virq_handle" => self.virq_handle, "flags" => self.flags, "vmids" => self.vmids }
    }
}
impl ToVal for VmStateReply {
    fn val(&self) -> Val {
        obj! {
            "vm_status" => named(self.vm_status, VmState::from_raw(self.vm_status).map(VmState::name)),
            "os_status" => named(self.os_status, OsState::from_raw(self.os_status).map(OsState::name)),
            "app_status" => self.app_status.get(),
        }
    }
}
impl ToVal for VmStatusNotif {
    fn val(&self) -> Val {
        obj! {
            "vmid" => self.vmid.get(),
            "vm_status" => named(self.vm_status, VmState::from_raw(self.vm_status).map(VmState::name)),
            "os_status" => named(self.os_status, OsState::from_raw(self.os_status).map(OsState::name)),
            "app_status" => self.app_status.get(),
        }
    }
}
impl ToVal for VmExited<'_> {
    fn val(&self) -> Val {
        obj! {
            "vmid" => self.vmid,
            "exit_type" => named(self.exit_type, ExitType::from_raw(self.exit_type).map(ExitType::name)),
            "exit_reason" => self.reason,
        }
    }
}
impl ToVal for HypResources<'_> {
    fn val(&self) -> Val {
        obj! { "entries" => self.entries }
    }
}
impl ToVal for VmIrqLentNotif {
    fn val(&self) -> Val {
        obj! {
            "owner_vmid" => self.owner_vmid.get(), "virq_handle" => self.virq_handle.get(),
            "label" => self.label.get(),
        }
    }
}
impl ToVal for GmemCreateReq {
    fn val(&self) -> Val {
        obj! {
            "size" => self.size.get(), "flags" => self.flags.get(),
            "owner_vmid" => self.owner_vmid.get(), "reserved" => self.reserved.get(),
        }
    }
}
impl ToVal for GmemBindReq {
    fn val(&self) -> Val {
        obj! {
            "gmem_id" => self.gmem_id.get(), "vmid" => self.vmid.get(), "perms" => self.perms,
            "flags" => self.flags, "offset" => self.offset.get(), "ipa" => self.ipa.get(),
            "size" => self.size.get(),
        }
    }
}
impl ToVal for GmemUnbindReq {
    fn val(&self) -> Val {
        obj! {
            "gmem_id" => self.gmem_id.get(), "vmid" => self.vmid.get(),
            "reserved" => self.reserved.get(), "ipa" => self.ipa.get(), "size" => self.size.get(),
        }
    }
}
impl ToVal for GoldenSealReq {
    fn val(&self) -> Val {
        obj! { "mem_handle" => self.mem_handle.get(), "flags" => self.flags.get() }
    }
}
impl ToVal for GoldenSealReply {
    fn val(&self) -> Val {
        obj! { "golden_id" => self.golden_id.get(), "digest" => &self.digest[..] }
    }
}
impl ToVal for GoldenMapReq {
    fn val(&self) -> Val {
        obj! {
            "golden_id" => self.golden_id.get(), "vmid" => self.vmid.get(),
            "flags" => self.flags.get(), "offset" => self.offset.get(), "ipa" => self.ipa.get(),
            "size" => self.size.get(), "gmem_id" => self.gmem_id.get(),
            "reserved" => self.reserved.get(),
        }
    }
}
impl ToVal for GoldenUnmapReq {
    fn val(&self) -> Val {
        obj! {
            "golden_id" => self.golden_id.get(), "vmid" => self.vmid.get(),
            "reserved" => self.reserved.get(), "ipa" => self.ipa.get(), "size" => self.size.get(),
        }
    }
}
impl ToVal for GoldenReleaseReq {
    fn val(&self) -> Val {
        obj! { "golden_id" => self.golden_id.get(), "reserved" => self.reserved.get() }
    }
}
impl ToVal for VmMemStatsReply {
    fn val(&self) -> Val {
        obj! {
            "private_pages" => self.private_pages.get(),
            "golden_mapped_pages" => self.golden_mapped_pages.get(),
            "cow_copied_pages" => self.cow_copied_pages.get(),
            "quota_pages" => self.quota_pages.get(),
        }
    }
}
impl ToVal for SimVmReadReq {
    fn val(&self) -> Val {
        obj! { "vmid" => self.vmid.get(), "length" => self.length.get(), "ipa" => self.ipa.get() }
    }
}
impl ToVal for SimVmWrite<'_> {
    fn val(&self) -> Val {
        obj! {
            "vmid" => self.vmid, "length" => self.data.len() as u64, "ipa" => self.ipa,
            "data" => self.data,
        }
    }
}
impl ToVal for CowBroken<'_> {
    fn val(&self) -> Val {
        obj! { "vmid" => self.vmid, "ipas" => self.ipas }
    }
}
impl ToVal for QuotaExhausted {
    fn val(&self) -> Val {
        obj! {
            "vmid" => self.vmid.get(), "gmem_id" => self.gmem_id.get(), "ipa" => self.ipa.get(),
            "quota_pages" => self.quota_pages.get(),
        }
    }
}
impl ToVal for FaultUnserved {
    fn val(&self) -> Val {
        let why = match self.why {
            1 => "no_cow",
            2 => "unmapped",
            3 => "not_permitted",
            4 => "quota_exhausted",
            5 => "no_memory",
            _ => "unknown",
        };
        let action = match self.action {
            1 => "abort_injected",
            2 => "vm_stopped",
            _ => "unknown",
        };
        obj! {
            "vmid" => self.vmid.get(), "why" => why, "action" => action, "ipa" => self.ipa.get(),
        }
    }
}
impl ToVal for FaultIpa {
    fn val(&self) -> Val {
        obj! { "ipa" => self.ipa.get() }
    }
}

fn word(name: &'static str, w: &Word) -> Val {
    Val::Obj(vec![(name, Val::Num(w.value.get().into()))])
}
fn id(name: &'static str, w: &IdReply) -> Val {
    Val::Obj(vec![(name, Val::Num(w.id.get().into()))])
}

impl ToVal for Request<'_> {
    fn val(&self) -> Val {
        match self {
            Request::MemDonate(p) | Request::MemLend(p) | Request::MemShare(p) => p.val(),
            Request::MemAppend(p) => p.val(),
            Request::MemAccept(p) => p.val(),
            Request::MemRelease(p) | Request::MemReclaim(p) => p.val(),
            Request::MemNotify(p) => p.val(),
            Request::MemLookupSgl(p) => p.val(),
            Request::FwSetVmFirmware(p) => p.val(),
            Request::VmAllocVmid(p)
            | Request::VmDeallocVmid(p)
            | Request::VmStart(p)
            | Request::VmReset(p)
            | Request::VmGetState(p)
            | Request::VmGetHypResources(p)
            | Request::VmConsoleOpen(p)
            | Request::VmConsoleClose(p)
            | Request::VmConsoleFlush(p)
            | Request::VmMemStats(p) => p.val(),
            Request::VmStop(p) => p.val(),
            Request::VmConfigImage(p) => p.val(),
            Request::VmAuthImage(p) => p.val(),
            Request::VmInit(p) => obj! { "vmid" => p.vmid.get(), "reserved" => p.reserved.get() },
            Request::VmGetVmid(_)
            | Request::VmGetOwner(_)
            | Request::VmGetPeers(_)
            | Request::VmHostGetType(_) => Val::Obj(vec![]),
            Request::VmSetTimeBase(p) => p.val(),
            Request::VmSetBootContext(p) => p.val(),
            Request::VmSetFirmwareMem(p) => p.val(),
            Request::VmSetDemandPaging(p) => p.val(),
            Request::VmSetAddressLayout(p) => p.val(),
            Request::VmSetStatus(p) => p.val(),
            Request::VmExit(p) => p.val(),
            Request::VmConsoleWrite(p) => p.val(),
            Request::VmIrqLend(p) => p.val(),
            Request::VmIrqAccept(p) => p.val(),
            Request::VmIrqRelease(w) | Request::VmIrqReclaim(w) => word("virq_handle", w),
            Request::VmIrqNotify(p) => p.val(),
            Request::GmemCreate(p) => p.val(),
            Request::GmemBind(p) => p.val(),
            Request::GmemUnbind(p) => p.val(),
            Request::GoldenSeal(p) => p.val(),
            Request::GoldenMap(p) => p.val(),
            Request::GoldenUnmap(p) => p.val(),
            Request::GoldenRelease(p) => p.val(),
            Request::SimVmRead(p) => p.val(),
            Request::SimVmWrite(p) => p.val(),
            Request::Other { payload, .. } => obj! { "raw" => *payload },
        }
    }
}

impl ToVal for ReplyData<'_> {
    fn val(&self) -> Val {
        match self {
            ReplyData::Empty => Val::Obj(vec![]),
            ReplyData::MemHandle(p) => p.val(),
            ReplyData::MemAccept(p) => p.val(),
            ReplyData::Vmid(w) => word("vmid", w),
            ReplyData::Owner(w) => word("owner_vmid", w),
            ReplyData::HostType(w) => word("host_type", w),
            ReplyData::Peers(p) => {
                let v: Vec<Val> = p.vmids.iter().map(|x| Val::Num(x.get().into())).collect();
                obj! { "peers" => Val::List(v) }
            }
            ReplyData::VmState(p) => p.val(),
            ReplyData::HypResources(p) => p.val(),
            ReplyData::VirqHandle(w) => word("virq_handle", w),
            ReplyData::Virq(w) => word("virq", w),
            ReplyData::GmemId(i) => id("gmem_id", i),
            ReplyData::BindHandle(i) => id("mem_handle", i),
            ReplyData::GoldenSeal(p) => p.val(),
            ReplyData::VmMemStats(p) => p.val(),
            ReplyData::SimRead(b) => obj! { "data" => *b },
            ReplyData::SimWrite(i) => id("faults_served", i),
            ReplyData::HypError(w) => word("hyp_error", w),
            ReplyData::FaultIpa(p) => p.val(),
            ReplyData::Other(b) => obj! { "raw" => *b },
        }
    }
}

impl ToVal for Notification<'_> {
    fn val(&self) -> Val {
        match self {
            Notification::MemShared(p) => p.val(),
            Notification::MemReleased(p) | Notification::MemAccepted(p) => p.val(),
            Notification::MemRecall(p) => p.val(),
            Notification::VmExited(p) => p.val(),
            Notification::VmShutdown(w) => word("stop_reason", w),
            Notification::VmStatus(p) => p.val(),
            Notification::VmIrqLent(p) => p.val(),
            Notification::VmIrqReleased(w) | Notification::VmIrqAccepted(w) => {
                word("virq_handle", w)
            }
            Notification::VmConsoleChars(p) => p.val(),
            Notification::CowBroken(p) => p.val(),
            Notification::QuotaExhausted(p) => p.val(),
            Notification::FaultUnserved(p) => p.val(),
            Notification::Other { payload, .. } => obj! { "raw" => *payload },
        }
    }
}

fn error_name(e: RmError) -> String {
    e.name()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:#x}", e.code()))
}

/// A logical message decoded field by field: `type`, `seq`, `msg_id`,
/// `name`, `fragments`, `error`/`error_code` for replies, `payload`.
pub fn message_val(m: &Message<'_>) -> Result<Val, DecodeError> {
    let mut fields: Vec<(&'static str, Val)> = vec![
        ("type", Val::from(m.ty.name())),
        ("seq", Val::from(m.seq)),
        ("msg_id", Val::Str(format!("{:#010x}", m.msg_id.0))),
        ("name", Val::from(m.msg_id.name())),
        ("fragments", Val::from(m.fragments)),
    ];
    let payload = match m.ty {
        MsgType::Request => Request::decode_detailed(m.msg_id, m.payload)?.val(),
        MsgType::Notification => Notification::decode_detailed(m.msg_id, m.payload)?.val(),
        MsgType::Reply => {
            let r = Reply::decode_detailed(m.msg_id, m.payload)?;
            fields.push(("error", Val::Str(error_name(r.error))));
            fields.push(("error_code", Val::from(r.error.code())));
            r.data.val()
        }
        // The reassembler never completes a message of this type.
        MsgType::Continuation => obj! { "raw" => m.payload },
    };
    fields.push(("payload", payload));
    Ok(Val::Obj(fields))
}

/// Parse one hex packet; the error names the byte offset.
fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let digits: Vec<char> = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':' && *c != '_')
        .collect();
    let mut out = Vec::with_capacity(digits.len() / 2);
    for (i, pair) in digits.chunks(2).enumerate() {
        if pair.len() < 2 {
            return Err(format!("byte {i}: odd number of hex digits"));
        }
        let hi = pair[0].to_digit(16);
        let lo = pair[1].to_digit(16);
        match (hi, lo) {
            (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
            _ => {
                return Err(format!(
                    "byte {i}: {:?} is not a hex byte",
                    pair.iter().collect::<String>()
                ))
            }
        }
    }
    Ok(out)
}

/// Packets seen for the message being reassembled: (packet number, payload length).
type Parts = Vec<(usize, usize)>;

/// Map a logical-payload offset to (packet number, byte offset in that packet).
fn locate(parts: &Parts, mut off: usize) -> (usize, usize) {
    for (i, &(packet, len)) in parts.iter().enumerate() {
        if off < len || i + 1 == parts.len() {
            return (packet, 8 + off);
        }
        off -= len;
    }
    (0, 8 + off)
}

struct Decoder {
    json: bool,
    rx: Reassembler,
    parts: Parts,
    failed: bool,
    out: String,
}

impl Decoder {
    fn error(&mut self, msg: String) {
        eprintln!("gunyah-rm decode: {msg}");
        self.failed = true;
    }

    fn packet(&mut self, n: usize, text: &str) {
        let bytes = match parse_hex(text) {
            Ok(b) => b,
            Err(e) => return self.error(format!("packet {n}: {e}")),
        };
        let outcome = self.rx.push(&bytes);
        if let Some(p) = outcome.abandoned {
            let msg = format!(
                "packet {n}: a new message abandons {} seq={} {:#010x} waiting for {} more fragment(s)",
                p.ty.name(),
                p.seq,
                p.msg_id.0,
                p.remaining
            );
            eprintln!("gunyah-rm decode: {msg}");
            self.failed = true;
            self.parts.clear();
        }
        let body = bytes.len().saturating_sub(8).min(MAX_FRAGMENT_PAYLOAD);
        match outcome.received {
            Received::Dropped(d) => {
                let msg = format!("packet {n}: byte {}: {d}; packet dropped", d.offset());
                eprintln!("gunyah-rm decode: {msg}");
                self.failed = true;
            }
            Received::Partial(p) => {
                if p.remaining == p.fragments {
                    self.parts.clear();
                }
                self.parts.push((n, body));
            }
            Received::Complete(m) => {
                if m.fragments == 0 {
                    self.parts.clear();
                }
                self.parts.push((n, body));
                match message_val(&m) {
                    Ok(v) => {
                        if self.json {
                            self.out.push_str(&v.to_json().to_string());
                            self.out.push('\n');
                        } else {
                            self.out.push_str(&human(&m, &v));
                        }
                    }
                    Err(e) => {
                        let (pkt, at) = locate(&self.parts, e.offset);
                        let why = if e.why.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", e.why)
                        };
                        let msg = format!(
                            "packet {pkt}: byte {at} (payload byte {}): {} {} {:#010x}: {}{why} ({})",
                            e.offset,
                            m.ty.name(),
                            m.msg_id.name().unwrap_or("?"),
                            m.msg_id.0,
                            e.what,
                            e.error.name().unwrap_or("?")
                        );
                        eprintln!("gunyah-rm decode: {msg}");
                        self.failed = true;
                    }
                }
                self.parts.clear();
            }
        }
        // Print as we go so that output and errors interleave sensibly.
        print!("{}", std::mem::take(&mut self.out));
    }

    fn finish(&mut self) {
        if let Some(p) = self.rx.pending() {
            let msg = format!(
                "input ends inside {} seq={} {:#010x}: {} of {} continuation(s) missing",
                p.ty.name(),
                p.seq,
                p.msg_id.0,
                p.remaining,
                p.fragments
            );
            self.error(msg);
        }
    }
}

pub fn human(m: &Message<'_>, v: &Val) -> String {
    let mut s = format!(
        "{} seq={} msg_id={:#010x} {} ({} fragment(s), {} payload bytes)\n",
        m.ty.name(),
        m.seq,
        m.msg_id.0,
        m.msg_id.name().unwrap_or("(unknown)"),
        m.fragments as usize + 1,
        m.payload.len()
    );
    if let Val::Obj(fields) = v {
        for (k, f) in fields {
            match *k {
                "error" => s.push_str(&format!("  error: {}\n", f.scalar().unwrap_or_default())),
                "payload" => f.print_fields(&mut s, 1),
                _ => {}
            }
        }
    }
    s
}

pub fn run(args: Args) -> ExitCode {
    let mut d = Decoder {
        json: args.json,
        rx: Reassembler::new(),
        parts: Vec::new(),
        failed: false,
        out: String::new(),
    };
    if args.hex.is_empty() {
        let stdin = std::io::stdin();
        let mut n = 0;
        for line in stdin.lock().lines() {
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    d.error(format!("reading stdin: {e}"));
                    break;
                }
            };
            let text = line.split('#').next().unwrap_or("").trim();
            if text.is_empty() {
                continue;
            }
            n += 1;
            d.packet(n, text);
        }
    } else {
        for (i, h) in args.hex.iter().enumerate() {
            d.packet(i + 1, h);
        }
    }
    d.finish();
    if d.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_parsing() {
        assert_eq!(parse_hex("21 01:00_00").unwrap(), vec![0x21, 1, 0, 0]);
        assert_eq!(parse_hex("0x2101").unwrap(), vec![0x21, 1]);
        assert_eq!(
            parse_hex("21z1").unwrap_err(),
            "byte 1: \"z1\" is not a hex byte"
        );
        assert_eq!(
            parse_hex("210").unwrap_err(),
            "byte 1: odd number of hex digits"
        );
    }

    #[test]
    fn locate_maps_payload_offsets_to_packets() {
        let parts = vec![(4, 232), (5, 36)];
        assert_eq!(locate(&parts, 0), (4, 8));
        assert_eq!(locate(&parts, 231), (4, 239));
        assert_eq!(locate(&parts, 232), (5, 8));
        assert_eq!(locate(&parts, 268), (5, 44));
    }
}
