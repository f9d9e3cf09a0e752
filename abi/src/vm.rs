//! VM management, IRQ and console payloads (spec §5, §8, §9) of the 0x56
//! family, plus FW_SET_VM_FIRMWARE.
//!
//! Fixed-size payloads are plain wire structs whose field comments give the
//! offsets; `decode` requires the exact size (`MSG_INVALID` otherwise).

use zerocopy::little_endian::{U16, U32, U64};

use crate::mem::{SglEntry, VmidEntry};
use crate::vm_state::{OsState, VmState};
use crate::wire::{
    counted_len, fixed_payload, list_len, wire_struct, DecodeError, Encode, EncodeError, Reader,
    Writer,
};

/// VM_STOP flags.
pub mod stop_flags {
    /// Stop immediately (→ EXITED, VM_EXITED type VM_STOP_FORCED).
    pub const FORCE: u8 = 0x1;
}

/// VM_STOP stop_reason values (OOT; LNX uses FORCE_STOP with FORCE).
pub mod stop_reason {
    crate::names::named_values! { u32;
        /// Shutdown.
        SHUTDOWN = 0,
        /// Restart.
        RESTART = 1,
        /// Crash.
        CRASH = 2,
        /// Forced stop.
        FORCE_STOP = 3,
    }
}

/// VM_CONFIG_IMAGE auth_mech values.
pub mod auth_mech {
    crate::names::named_values! { u16;
        /// No authentication.
        NONE = 0,
        /// Platform (QCOM_PIL_ELF).
        PLATFORM = 1,
        /// Android pVM (QCOM_ANDROID_PVM).
        ANDROID = 2,
    }
}

/// VM_SET_BOOT_CONTEXT reg_set values.
pub mod reg_set {
    crate::names::named_values! { u8;
        /// X registers (index ≤ 31).
        X = 0,
        /// PC (index 0).
        PC = 1,
        /// SP (index ≤ 2).
        SP = 2,
    }
}

/// VM_SET_ADDRESS_LAYOUT range_id values.
pub mod range_id {
    crate::names::named_values! { u32;
        /// The image range.
        IMAGE = 0,
        /// The firmware range.
        FIRMWARE = 1,
    }
}

/// Hypervisor resource entry types (VM_GET_HYP_RESOURCES).
pub mod resource_type {
    crate::names::named_values! { u8;
        /// Doorbell source (LNX BELL_TX).
        DOORBELL_SRC = 0,
        /// Doorbell (LNX BELL_RX).
        DOORBELL = 1,
        /// Message queue send side.
        MSG_QUEUE_SEND = 2,
        /// Message queue receive side.
        MSG_QUEUE_RECV = 3,
        /// Virtual CPU.
        VIRTUAL_CPU = 4,
        /// Virtual PM.
        VIRTUAL_PM = 5,
        /// Virtio MMIO.
        VIRTIO_MMIO = 6,
        /// Virtual RTC.
        VRTC = 7,
        /// Watchdog.
        WATCHDOG = 8,
        /// Memory extent (LNX only).
        MEM_EXTENT = 9,
        /// Address space (LNX only).
        ADDR_SPACE = 10,
    }
}

/// VM_EXIT / VM_EXITED exit flags (RM: bit 0 RESTART).
pub mod exit_flags {
    /// The VM asks to be restarted.
    pub const RESTART: u16 = 0x1;
}

/// Exit codes, RM numbering (bits \[23:16\] of VM_EXITED reason word 0).
/// RM rejects UNKNOWN_ERROR in VM_EXIT. OOT numbers them differently.
pub mod exit_code {
    crate::names::named_values! { u8;
        /// Normal exit.
        NORMAL = 0,
        /// Software error.
        SOFTWARE_ERROR = 1,
        /// Unknown error (refused in VM_EXIT).
        UNKNOWN_ERROR = 2,
        /// Bus error.
        BUS_ERROR = 3,
        /// Device error.
        DEVICE_ERROR = 4,
    }
}

/// VM_AUTH_IMAGE parameter types (OOT).
pub mod auth_param {
    crate::names::named_values! { u32;
        /// Peripheral authentication service ID.
        PAS_ID = 0,
    }
}

/// VM_IRQ_NOTIFY flags.
pub mod irq_notify_flags {
    /// Lent.
    pub const LENT: u32 = 1;
    /// Released.
    pub const RELEASED: u32 = 2;
    /// Accepted.
    pub const ACCEPTED: u32 = 4;
}

wire_struct! {
    /// `u16 vmid, u16 reserved` (4 bytes): VM_ALLOC_VMID (0 = dynamic),
    /// VM_DEALLOC_VMID, VM_START, VM_RESET, VM_INIT (reserved must be 0),
    /// VM_GET_STATE (0 = self), VM_GET_HYP_RESOURCES, VM_CONSOLE_OPEN/
    /// CLOSE/FLUSH.
    pub struct VmidReq {
        /// +0 VMID.
        pub vmid: U16,
        /// +2 reserved.
        pub reserved: U16,
    }
}

impl VmidReq {
    /// A request naming `vmid`.
    pub fn new(vmid: u16) -> Self {
        VmidReq {
            vmid: U16::new(vmid),
            reserved: U16::new(0),
        }
    }
}

wire_struct! {
    /// VM_STOP request (8 bytes).
    pub struct VmStopReq {
        /// +0 VMID.
        pub vmid: U16,
        /// +2 flags ([`stop_flags`]).
        pub flags: u8,
        /// +3 reserved.
        pub reserved: u8,
        /// +4 stop reason ([`stop_reason`]).
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::stop_reason"))]
        pub stop_reason: U32,
    }
}

impl VmStopReq {
    /// A stop request.
    pub fn new(vmid: u16, flags: u8, stop_reason: u32) -> Self {
        VmStopReq {
            vmid: U16::new(vmid),
            flags,
            reserved: 0,
            stop_reason: U32::new(stop_reason),
        }
    }
}

wire_struct! {
    /// VM_CONFIG_IMAGE request (40 bytes).
    pub struct VmConfigImageReq {
        /// +0 VMID.
        pub vmid: U16,
        /// +2 auth mechanism ([`auth_mech`]).
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::auth_mech"))]
        pub auth_mech: U16,
        /// +4 image memparcel handle.
        pub mem_handle: U32,
        /// +8 image offset in the parcel.
        pub image_offset: U64,
        /// +16 image size.
        pub image_size: U64,
        /// +24 DT offset in the parcel.
        pub dtb_offset: U64,
        /// +32 DT size.
        pub dtb_size: U64,
    }
}

wire_struct! {
    /// VM_AUTH_IMAGE parameter (8 bytes): +0 u32 type, +4 u32 value.
    pub struct AuthParam {
        /// Parameter type (PAS_ID = 0).
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::auth_param", rename = "type"))]
        pub ty: U32,
        /// Value.
        pub value: U32,
    }
}

wire_struct! {
    /// VM_SET_FIRMWARE_MEM request (24 bytes).
    pub struct VmSetFirmwareMemReq {
        /// +0 VMID.
        pub vmid: U16,
        /// +2 reserved, must be 0.
        pub reserved: U16,
        /// +4 firmware memparcel handle.
        pub mem_handle: U32,
        /// +8 offset in the parcel.
        pub fw_offset: U64,
        /// +16 size.
        pub fw_size: U64,
    }
}

wire_struct! {
    /// VM_SET_TIME_BASE request (20 bytes).
    pub struct VmSetTimeBaseReq {
        /// +0 VMID.
        pub vmid: U16,
        /// +2 reserved.
        pub reserved: U16,
        /// +4 time base.
        pub time_base: U64,
        /// +12 system timer reference.
        pub sys_timer_ref: U64,
    }
}

wire_struct! {
    /// VM_SET_BOOT_CONTEXT request (16 bytes).
    pub struct VmSetBootContextReq {
        /// +0 VMID.
        pub vmid: U16,
        /// +2 register set ([`reg_set`]).
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::reg_set"))]
        pub reg_set: u8,
        /// +3 register index.
        pub reg_index: u8,
        /// +4 reserved.
        pub reserved: U32,
        /// +8 value.
        pub value: U64,
    }
}

wire_struct! {
    /// VM_SET_ADDRESS_LAYOUT request (24 bytes).
    pub struct VmSetAddressLayoutReq {
        /// +0 VMID.
        pub vmid: U16,
        /// +2 reserved.
        pub reserved: U16,
        /// +4 range ID ([`range_id`]).
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::range_id"))]
        pub range_id: U32,
        /// +8 base IPA.
        pub base: U64,
        /// +16 size.
        pub size: U64,
    }
}

wire_struct! {
    /// VM_SET_STATUS request (guest → RM, 4 bytes).
    pub struct VmSetStatusReq {
        /// +0 VM status (unused by the RM).
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::vm_state"))]
        pub vm_status: u8,
        /// +1 OS status ([`OsState`]).
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::os_state"))]
        pub os_status: u8,
        /// +2 application status (opaque).
        pub app_status: U16,
    }
}

wire_struct! {
    /// VM_EXIT request (guest → RM, 4 bytes).
    pub struct VmExitReq {
        /// +0 exit flags (bit 0 RESTART).
        pub exit_flags: U16,
        /// +2 exit code.
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::exit_code"))]
        pub exit_code: u8,
        /// +3 reserved.
        pub reserved: u8,
    }
}

wire_struct! {
    /// A `u32` reply or payload word: VM_GET_VMID reply (vmid),
    /// VM_ALLOC_VMID reply (allocated vmid), VM_IRQ_LEND reply
    /// (virq_handle), VM_IRQ_ACCEPT reply (virq), VM_IRQ_RELEASE/RECLAIM
    /// request and VM_IRQ_RELEASED/ACCEPTED notification (virq_handle),
    /// VM_SHUTDOWN notification (stop_reason), hypervisor error after a
    /// failed VM_SET_TIME_BASE / VM_SET_FIRMWARE_MEM.
    pub struct Word {
        /// +0 value.
        pub value: U32,
    }
}

impl Word {
    /// A word.
    pub fn new(value: u32) -> Self {
        Word {
            value: U32::new(value),
        }
    }
}

wire_struct! {
    /// VM_GET_STATE reply data (4 bytes; as a u32: bits\[7:0\] vm_status,
    /// \[15:8\] os_status, \[31:16\] app_status).
    pub struct VmStateReply {
        /// +0 VM status ([`VmState`]).
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::vm_state"))]
        pub vm_status: u8,
        /// +1 OS status ([`OsState`]).
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::os_state"))]
        pub os_status: u8,
        /// +2 application status.
        pub app_status: U16,
    }
}

wire_struct! {
    /// VM_STATUS notification (8 bytes).
    pub struct VmStatusNotif {
        /// +0 VMID.
        pub vmid: U16,
        /// +2 reserved.
        pub reserved: U16,
        /// +4 VM status ([`VmState`]).
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::vm_state"))]
        pub vm_status: u8,
        /// +5 OS status ([`OsState`]).
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::os_state"))]
        pub os_status: u8,
        /// +6 application status.
        pub app_status: U16,
    }
}

impl VmStatusNotif {
    /// A VM_STATUS payload.
    pub fn new(vmid: u16, vm: VmState, os: OsState, app_status: u16) -> Self {
        VmStatusNotif {
            vmid: U16::new(vmid),
            reserved: U16::new(0),
            vm_status: vm.raw(),
            os_status: os.raw(),
            app_status: U16::new(app_status),
        }
    }
}

wire_struct! {
    /// Hypervisor resource entry (44 bytes) of VM_GET_HYP_RESOURCES.
    pub struct HypResourceEntry {
        /// +0 type ([`resource_type`]).
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::resource_type", rename = "type"))]
        pub ty: u8,
        /// +1 reserved.
        pub reserved: u8,
        /// +2 partner VMID.
        pub partner_vmid: U16,
        /// +4 resource handle.
        pub resource_handle: U32,
        /// +8 resource label.
        pub resource_label: U32,
        /// +12 capability ID.
        pub cap_id: U64,
        /// +20 virtual IRQ handle.
        pub virq_handle: U32,
        /// +24 virtual IRQ number.
        pub virq: U32,
        /// +28 base address.
        pub base: U64,
        /// +36 size.
        pub size: U64,
    }
}

wire_struct! {
    /// VM_IRQ_LEND request (12 bytes).
    pub struct VmIrqLendReq {
        /// +0 borrower VMID.
        pub vmid: U16,
        /// +2 reserved.
        pub reserved: U16,
        /// +4 virtual IRQ.
        pub virq: U32,
        /// +8 label.
        pub label: U32,
    }
}

wire_struct! {
    /// VM_IRQ_ACCEPT request (8 bytes).
    pub struct VmIrqAcceptReq {
        /// +0 handle from VM_IRQ_LEND.
        pub virq_handle: U32,
        /// +4 virtual IRQ wanted.
        pub virq: U32,
    }
}

wire_struct! {
    /// VM_IRQ_LENT notification (12 bytes).
    pub struct VmIrqLentNotif {
        /// +0 owner VMID.
        pub owner_vmid: U16,
        /// +2 reserved.
        pub reserved: U16,
        /// +4 handle.
        pub virq_handle: U32,
        /// +8 label.
        pub label: U32,
    }
}

wire_struct! {
    /// FW_SET_VM_FIRMWARE request (24 bytes).
    pub struct FwSetVmFirmwareReq {
        /// +0 auth type.
        pub auth_type: U16,
        /// +2 reserved.
        pub reserved: U16,
        /// +4 image memparcel handle.
        pub mem_handle: U32,
        /// +8 image offset.
        pub image_offset: U64,
        /// +16 image size.
        pub image_size: U64,
    }
}

impl VmConfigImageReq {
    /// A VM_CONFIG_IMAGE request.
    pub fn new(
        vmid: u16,
        auth_mech: u16,
        mem_handle: u32,
        image: (u64, u64),
        dtb: (u64, u64),
    ) -> Self {
        VmConfigImageReq {
            vmid: U16::new(vmid),
            auth_mech: U16::new(auth_mech),
            mem_handle: U32::new(mem_handle),
            image_offset: U64::new(image.0),
            image_size: U64::new(image.1),
            dtb_offset: U64::new(dtb.0),
            dtb_size: U64::new(dtb.1),
        }
    }
}

impl AuthParam {
    /// An auth parameter.
    pub fn new(ty: u32, value: u32) -> Self {
        AuthParam {
            ty: U32::new(ty),
            value: U32::new(value),
        }
    }
}

impl VmSetFirmwareMemReq {
    /// A VM_SET_FIRMWARE_MEM request.
    pub fn new(vmid: u16, mem_handle: u32, fw_offset: u64, fw_size: u64) -> Self {
        VmSetFirmwareMemReq {
            vmid: U16::new(vmid),
            reserved: U16::new(0),
            mem_handle: U32::new(mem_handle),
            fw_offset: U64::new(fw_offset),
            fw_size: U64::new(fw_size),
        }
    }
}

impl VmSetTimeBaseReq {
    /// A VM_SET_TIME_BASE request.
    pub fn new(vmid: u16, time_base: u64, sys_timer_ref: u64) -> Self {
        VmSetTimeBaseReq {
            vmid: U16::new(vmid),
            reserved: U16::new(0),
            time_base: U64::new(time_base),
            sys_timer_ref: U64::new(sys_timer_ref),
        }
    }
}

impl VmSetBootContextReq {
    /// A VM_SET_BOOT_CONTEXT request.
    pub fn new(vmid: u16, reg_set: u8, reg_index: u8, value: u64) -> Self {
        VmSetBootContextReq {
            vmid: U16::new(vmid),
            reg_set,
            reg_index,
            reserved: U32::new(0),
            value: U64::new(value),
        }
    }
}

impl VmSetAddressLayoutReq {
    /// A VM_SET_ADDRESS_LAYOUT request.
    pub fn new(vmid: u16, range_id: u32, base: u64, size: u64) -> Self {
        VmSetAddressLayoutReq {
            vmid: U16::new(vmid),
            reserved: U16::new(0),
            range_id: U32::new(range_id),
            base: U64::new(base),
            size: U64::new(size),
        }
    }
}

impl VmSetStatusReq {
    /// A VM_SET_STATUS request.
    pub fn new(vm_status: u8, os: OsState, app_status: u16) -> Self {
        VmSetStatusReq {
            vm_status,
            os_status: os.raw(),
            app_status: U16::new(app_status),
        }
    }
}

impl VmExitReq {
    /// A VM_EXIT request.
    pub fn new(exit_flags: u16, exit_code: u8) -> Self {
        VmExitReq {
            exit_flags: U16::new(exit_flags),
            exit_code,
            reserved: 0,
        }
    }
}

impl VmStateReply {
    /// A VM_GET_STATE reply.
    pub fn new(vm: VmState, os: OsState, app_status: u16) -> Self {
        VmStateReply {
            vm_status: vm.raw(),
            os_status: os.raw(),
            app_status: U16::new(app_status),
        }
    }
}

impl VmIrqLendReq {
    /// A VM_IRQ_LEND request.
    pub fn new(vmid: u16, virq: u32, label: u32) -> Self {
        VmIrqLendReq {
            vmid: U16::new(vmid),
            reserved: U16::new(0),
            virq: U32::new(virq),
            label: U32::new(label),
        }
    }
}

impl VmIrqAcceptReq {
    /// A VM_IRQ_ACCEPT request.
    pub fn new(virq_handle: u32, virq: u32) -> Self {
        VmIrqAcceptReq {
            virq_handle: U32::new(virq_handle),
            virq: U32::new(virq),
        }
    }
}

impl VmIrqLentNotif {
    /// A VM_IRQ_LENT payload.
    pub fn new(owner_vmid: u16, virq_handle: u32, label: u32) -> Self {
        VmIrqLentNotif {
            owner_vmid: U16::new(owner_vmid),
            reserved: U16::new(0),
            virq_handle: U32::new(virq_handle),
            label: U32::new(label),
        }
    }
}

impl HypResourceEntry {
    /// A resource entry (`ty` from [`resource_type`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ty: u8,
        partner_vmid: u16,
        resource_handle: u32,
        resource_label: u32,
        cap_id: u64,
        virq_handle: u32,
        virq: u32,
        base: u64,
        size: u64,
    ) -> Self {
        HypResourceEntry {
            ty,
            reserved: 0,
            partner_vmid: U16::new(partner_vmid),
            resource_handle: U32::new(resource_handle),
            resource_label: U32::new(resource_label),
            cap_id: U64::new(cap_id),
            virq_handle: U32::new(virq_handle),
            virq: U32::new(virq),
            base: U64::new(base),
            size: U64::new(size),
        }
    }
}

fixed_payload!(
    VmidReq,
    VmStopReq,
    VmConfigImageReq,
    VmSetTimeBaseReq,
    VmSetBootContextReq,
    VmSetAddressLayoutReq,
    VmSetStatusReq,
    VmExitReq,
    Word,
    VmStateReply,
    VmStatusNotif,
    VmIrqLendReq,
    VmIrqAcceptReq,
    VmIrqLentNotif,
    FwSetVmFirmwareReq,
);

/// VM_AUTH_IMAGE request: +0 u16 vmid, +2 u16 n_params, +4 n × 8-byte
/// [`AuthParam`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct VmAuthImage<'a> {
    /// VMID.
    pub vmid: u16,
    /// Parameters.
    pub params: &'a [AuthParam],
}

impl<'a> VmAuthImage<'a> {
    /// Decode untrusted bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let vmid = r.read::<U16>("vmid")?.get();
        let n = r.read::<U16>("n_params")?.get() as usize;
        let params = r.slice(n, "auth parameters")?;
        r.finish()?;
        Ok(VmAuthImage { vmid, params })
    }
}

impl Encode for VmAuthImage<'_> {
    fn encoded_len(&self) -> usize {
        4 + 8 * self.params.len()
    }

    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let n = u16::try_from(self.params.len()).map_err(|_| EncodeError::TooManyEntries {
            count: self.params.len(),
            max: u16::MAX as usize,
        })?;
        let mut w = Writer::new(out);
        w.put(&U16::new(self.vmid))?;
        w.put(&U16::new(n))?;
        w.put(self.params)?;
        Ok(w.finish())
    }
}

/// VM_SET_DEMAND_PAGING request (LNX): +0 u16 vmid, +2 u16 reserved, +4 u32
/// range_count, +8 range_count × {u64 base, u64 size}.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct VmSetDemandPaging<'a> {
    /// VMID.
    pub vmid: u16,
    /// Guest IPA ranges.
    pub ranges: &'a [SglEntry],
}

impl<'a> VmSetDemandPaging<'a> {
    /// Decode untrusted bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let vmid = r.read::<U16>("vmid")?.get();
        let _ = r.read::<U16>("reserved")?;
        let n = r.read::<U32>("range_count")?.get() as usize;
        let ranges = r.slice(n, "ranges")?;
        r.finish()?;
        Ok(VmSetDemandPaging { vmid, ranges })
    }
}

impl Encode for VmSetDemandPaging<'_> {
    fn encoded_len(&self) -> usize {
        8 + 16 * self.ranges.len()
    }

    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.put(&U16::new(self.vmid))?;
        w.put(&U16::new(0))?;
        w.put(&U32::new(self.ranges.len() as u32))?;
        w.put(self.ranges)?;
        Ok(w.finish())
    }
}

/// VM_CONSOLE_WRITE request and VM_CONSOLE_CHARS notification: +0 u16
/// vmid, +2 u16 num_bytes, +4 bytes; zero padding to a 4-byte boundary is
/// accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ConsoleChars<'a> {
    /// VMID (target for WRITE, source for CHARS).
    pub vmid: u16,
    /// The characters.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::wire"))]
    pub bytes: &'a [u8],
}

impl<'a> ConsoleChars<'a> {
    /// Decode untrusted bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let vmid = r.read::<U16>("vmid")?.get();
        let n = r.read::<U16>("num_bytes")?.get() as usize;
        let chars = r.bytes(n, "characters")?;
        let pad = (4 - (r.pos() & 3)) & 3;
        if r.remaining() != 0 && r.remaining() != pad {
            r.finish()?;
        }
        Ok(ConsoleChars { vmid, bytes: chars })
    }
}

impl Encode for ConsoleChars<'_> {
    fn encoded_len(&self) -> usize {
        4 + self.bytes.len()
    }

    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let n = u16::try_from(self.bytes.len()).map_err(|_| EncodeError::TooManyEntries {
            count: self.bytes.len(),
            max: u16::MAX as usize,
        })?;
        let mut w = Writer::new(out);
        w.put(&U16::new(self.vmid))?;
        w.put(&U16::new(n))?;
        w.bytes(self.bytes)?;
        Ok(w.finish())
    }
}

/// VM_EXITED notification (§5.4): +0 u16 vmid, +2 u16 exit_type, +4 u32
/// exit_reason_size, +8 reason bytes (word 0 = exit_flags | exit_code << 16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct VmExited<'a> {
    /// VMID.
    pub vmid: u16,
    /// [`ExitType`](crate::ExitType) value.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::exit_type"))]
    pub exit_type: u16,
    /// The exit reason bytes.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::ser::wire", rename = "exit_reason")
    )]
    pub reason: &'a [u8],
}

impl<'a> VmExited<'a> {
    /// Decode untrusted bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let vmid = r.read::<U16>("vmid")?.get();
        let exit_type = r.read::<U16>("exit_type")?.get();
        let n = r.read::<U32>("exit_reason_size")?.get() as usize;
        let reason = r.bytes(n, "exit reason")?;
        r.finish()?;
        Ok(VmExited {
            vmid,
            exit_type,
            reason,
        })
    }
}

impl Encode for VmExited<'_> {
    fn encoded_len(&self) -> usize {
        8 + self.reason.len()
    }

    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.put(&U16::new(self.vmid))?;
        w.put(&U16::new(self.exit_type))?;
        w.put(&U32::new(self.reason.len() as u32))?;
        w.bytes(self.reason)?;
        Ok(w.finish())
    }
}

/// A fixed-size payload whose reserved field must be 0: Gunyah's RM answers
/// MSG_INVALID otherwise (§12.1 "a non-zero reserved field of VM_INIT or
/// VM_SET_FIRMWARE_MEM → MSG_INVALID").
fn reserved_zero<T: zerocopy::FromBytes>(
    bytes: &[u8],
    name: &'static str,
    reserved_at: usize,
    reserved_len: usize,
) -> Result<T, DecodeError> {
    let size = core::mem::size_of::<T>();
    if bytes.len() < size {
        return Err(DecodeError::invalid(bytes.len(), name).because("payload too short"));
    }
    if bytes.len() > size {
        return Err(DecodeError::invalid(size, name).because("trailing bytes"));
    }
    if bytes[reserved_at..reserved_at + reserved_len]
        .iter()
        .any(|b| *b != 0)
    {
        return Err(DecodeError::invalid(reserved_at, name).because("reserved field is not 0"));
    }
    T::read_from_bytes(bytes).map_err(|_| DecodeError::invalid(0, name))
}

wire_struct! {
    /// VM_INIT request (4 bytes): `u16 vmid, u16 reserved` (must be 0).
    pub struct VmInitReq {
        /// +0 VMID.
        pub vmid: U16,
        /// +2 reserved, must be 0.
        pub reserved: U16,
    }
}

impl VmInitReq {
    /// Wire size in bytes.
    pub const SIZE: usize = 4;

    /// A VM_INIT request for `vmid`.
    pub fn new(vmid: u16) -> Self {
        VmInitReq {
            vmid: U16::new(vmid),
            reserved: U16::new(0),
        }
    }

    /// Decode exactly 4 bytes with the reserved half-word 0 (`MSG_INVALID`
    /// otherwise).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        reserved_zero(bytes, "VmInitReq", 2, 2)
    }
}

impl Encode for VmInitReq {
    fn encoded_len(&self) -> usize {
        Self::SIZE
    }
    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.put(self)?;
        Ok(w.finish())
    }
}

impl VmSetFirmwareMemReq {
    /// Wire size in bytes.
    pub const SIZE: usize = 24;

    /// Decode exactly 24 bytes with the reserved half-word 0 (`MSG_INVALID`
    /// otherwise).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        reserved_zero(bytes, "VmSetFirmwareMemReq", 2, 2)
    }
}

impl Encode for VmSetFirmwareMemReq {
    fn encoded_len(&self) -> usize {
        Self::SIZE
    }
    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.put(self)?;
        Ok(w.finish())
    }
}

/// VM_GET_PEERS reply data: +0 u32 count, +4 count × u32 VMID (the RM's
/// `vm_mgnt_handle_get_peers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct VmPeers<'a> {
    /// The peers' VMIDs, one u32 each.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::wire"))]
    pub vmids: &'a [U32],
}

impl<'a> VmPeers<'a> {
    /// Decode untrusted bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let vmids = r.counted("count", "peer VMIDs")?;
        r.finish()?;
        Ok(VmPeers { vmids })
    }
}

impl Encode for VmPeers<'_> {
    fn encoded_len(&self) -> usize {
        counted_len::<U32>(self.vmids.len())
    }

    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.counted(self.vmids)?;
        Ok(w.finish())
    }
}

/// VM_GET_HYP_RESOURCES reply data: +0 u32 n_entries, +4 n × 44-byte
/// [`HypResourceEntry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct HypResources<'a> {
    /// The entries.
    pub entries: &'a [HypResourceEntry],
}

impl<'a> HypResources<'a> {
    /// Decode untrusted bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let entries = r.counted("n_entries", "resource entries")?;
        r.finish()?;
        Ok(HypResources { entries })
    }
}

impl Encode for HypResources<'_> {
    fn encoded_len(&self) -> usize {
        counted_len::<HypResourceEntry>(self.entries.len())
    }

    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.counted(self.entries)?;
        Ok(w.finish())
    }
}

/// VM_IRQ_NOTIFY request: +0 u32 virq_handle, +4 u32 flags
/// ([`irq_notify_flags`]), then for LENT a VMID list (u16 count, u16
/// reserved, entries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct VmIrqNotify<'a> {
    /// Handle.
    pub virq_handle: u32,
    /// Flags.
    pub flags: u32,
    /// VMIDs (LENT).
    pub vmids: &'a [VmidEntry],
}

impl<'a> VmIrqNotify<'a> {
    /// Decode untrusted bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let virq_handle = r.read::<U32>("virq_handle")?.get();
        let flags = r.read::<U32>("flags")?.get();
        let vmids = r.list("VMID list")?.entries;
        r.finish()?;
        Ok(VmIrqNotify {
            virq_handle,
            flags,
            vmids,
        })
    }
}

impl Encode for VmIrqNotify<'_> {
    fn encoded_len(&self) -> usize {
        8 + list_len::<VmidEntry>(self.vmids.len())
    }

    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.put(&U32::new(self.virq_handle))?;
        w.put(&U32::new(self.flags))?;
        w.list(self.vmids, 0)?;
        Ok(w.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExitType, RmError};

    #[test]
    fn fixed_requests_from_spec_offsets() {
        // VM_STOP vmid 0x80, FORCE, reason 3.
        let s = VmStopReq::decode(&[0x80, 0, 1, 0, 3, 0, 0, 0]).unwrap();
        assert_eq!(
            s,
            VmStopReq::new(0x80, stop_flags::FORCE, stop_reason::FORCE_STOP)
        );
        assert_eq!(
            VmStopReq::decode(&[0x80, 0, 1, 0]).unwrap_err().error,
            RmError::MsgInvalid
        );
        // VM_CONFIG_IMAGE: vmid 0x80, auth 0, handle 2, image 0/0, dtb 0x1000/0x2000.
        let mut b = [0u8; 40];
        b[0] = 0x80;
        b[4] = 2;
        b[25] = 0x10;
        b[33] = 0x20;
        let c = VmConfigImageReq::decode(&b).unwrap();
        assert_eq!(c.mem_handle.get(), 2);
        assert_eq!(c.dtb_offset.get(), 0x1000);
        assert_eq!(c.dtb_size.get(), 0x2000);
        // VM_SET_TIME_BASE: time_base at +4 (unaligned).
        let mut t = [0u8; 20];
        t[4] = 0x11;
        t[12] = 0x22;
        let tb = VmSetTimeBaseReq::decode(&t).unwrap();
        assert_eq!((tb.time_base.get(), tb.sys_timer_ref.get()), (0x11, 0x22));
        // VM_SET_BOOT_CONTEXT: vmid 0x80, PC(1), index 0, value 0x4008_0000.
        let bc =
            VmSetBootContextReq::decode(&[0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x40, 0, 0, 0, 0])
                .unwrap();
        assert_eq!(bc.reg_set, reg_set::PC);
        assert_eq!(bc.value.get(), 0x4008_0000);
    }

    #[test]
    fn demand_paging_and_auth_by_hand() {
        let mut b = std::vec![0x80, 0, 0, 0, 2, 0, 0, 0];
        for (base, size) in [(0x8000_0000u64, 0x1000u64), (0x9000_0000, 0x2000)] {
            b.extend_from_slice(&base.to_le_bytes());
            b.extend_from_slice(&size.to_le_bytes());
        }
        let d = VmSetDemandPaging::decode(&b).unwrap();
        assert_eq!(d.vmid, 0x80);
        assert_eq!(d.ranges[1], SglEntry::new(0x9000_0000, 0x2000));
        b[4] = 3;
        assert_eq!(VmSetDemandPaging::decode(&b).unwrap_err().offset, 8);
        let a = VmAuthImage::decode(&[0x80, 0, 1, 0, 0, 0, 0, 0, 7, 0, 0, 0]).unwrap();
        assert_eq!(a.params[0].value.get(), 7);
    }

    #[test]
    fn notifications_by_hand() {
        // VM_STATUS vmid 0x80, RESET, os NONE, app 0.
        let s = VmStatusNotif::decode(&[0x80, 0, 0, 0, 11, 0, 0, 0]).unwrap();
        assert_eq!(
            s,
            VmStatusNotif::new(0x80, VmState::Reset, OsState::None, 0)
        );
        // VM_EXITED vmid 0x80, type 7, 4 reason bytes of 0.
        let e = VmExited::decode(&[0x80, 0, 7, 0, 4, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(e.exit_type, ExitType::VmStopForced.raw());
        assert_eq!(e.reason, &[0, 0, 0, 0]);
        assert_eq!(
            VmExited::decode(&[0x80, 0, 7, 0, 8, 0, 0, 0, 0, 0, 0, 0])
                .unwrap_err()
                .offset,
            8
        );
        // Console chars "hi" with padding.
        let c = ConsoleChars::decode(&[3, 0, 2, 0, b'h', b'i', 0, 0]).unwrap();
        assert_eq!(c.bytes, b"hi");
        assert!(ConsoleChars::decode(&[3, 0, 2, 0, b'h', b'i', 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn constructors_match_hand_bytes() {
        use zerocopy::IntoBytes;
        assert_eq!(
            VmExitReq::new(exit_flags::RESTART, exit_code::BUS_ERROR).as_bytes(),
            &[1, 0, 3, 0]
        );
        assert_eq!(
            VmStateReply::new(VmState::Running, OsState::Run, 0x0102).as_bytes(),
            &[3, 4, 2, 1]
        );
        assert_eq!(
            VmSetAddressLayoutReq::new(0x80, range_id::FIRMWARE, 0x1000, 0x2000).as_bytes(),
            &[0x80, 0, 0, 0, 1, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            VmIrqLendReq::new(0x80, 0x20, 7).as_bytes(),
            &[0x80, 0, 0, 0, 0x20, 0, 0, 0, 7, 0, 0, 0]
        );
        assert_eq!(
            HypResourceEntry::new(4, 0, 0, 0, 9, 0, 0, 0, 0).as_bytes()[12],
            9
        );
    }

    #[test]
    fn hyp_resources_by_hand() {
        let mut b = std::vec![1, 0, 0, 0];
        let mut e = [0u8; 44];
        e[0] = resource_type::VIRTUAL_CPU;
        e[12] = 0x33; // cap_id
        e[24] = 0x20; // virq
        b.extend_from_slice(&e);
        let r = HypResources::decode(&b).unwrap();
        assert_eq!(r.entries[0].ty, 4);
        assert_eq!(r.entries[0].cap_id.get(), 0x33);
        assert_eq!(r.entries[0].virq.get(), 0x20);
    }
}
