//! Message and notification IDs the RM handles or sends (spec §2).

#![allow(missing_docs)]

pub const MEM_DONATE: u32 = 0x5100_0010;
pub const MEM_ACCEPT: u32 = 0x5100_0011;
pub const MEM_LEND: u32 = 0x5100_0012;
pub const MEM_SHARE: u32 = 0x5100_0013;
pub const MEM_RELEASE: u32 = 0x5100_0014;
pub const MEM_RECLAIM: u32 = 0x5100_0015;
pub const MEM_NOTIFY: u32 = 0x5100_0017;
pub const MEM_APPEND: u32 = 0x5100_0018;
pub const MEM_QCOM_LOOKUP_SGL: u32 = 0x5100_001A;

pub const NOTIF_MEM_SHARED: u32 = 0x5110_0011;
pub const NOTIF_MEM_RELEASED: u32 = 0x5110_0012;
pub const NOTIF_MEM_ACCEPTED: u32 = 0x5110_0013;
pub const NOTIF_MEM_RECALL: u32 = 0x5110_0014;

pub const VM_ALLOC_VMID: u32 = 0x5600_0001;
pub const VM_DEALLOC_VMID: u32 = 0x5600_0002;
pub const VM_START: u32 = 0x5600_0004;
pub const VM_STOP: u32 = 0x5600_0005;
pub const VM_RESET: u32 = 0x5600_0006;
pub const VM_CONFIG_IMAGE: u32 = 0x5600_0009;
pub const VM_AUTH_IMAGE: u32 = 0x5600_000A;
pub const VM_INIT: u32 = 0x5600_000B;
pub const VM_GET_STATE: u32 = 0x5600_0017;
pub const VM_GET_HYP_RESOURCES: u32 = 0x5600_0020;
pub const VM_GET_VMID: u32 = 0x5600_0024;
pub const VM_SET_BOOT_CONTEXT: u32 = 0x5600_0031;
pub const VM_SET_FIRMWARE_MEM: u32 = 0x5600_0032;
pub const VM_SET_DEMAND_PAGING: u32 = 0x5600_0033;
pub const VM_SET_ADDRESS_LAYOUT: u32 = 0x5600_0034;
pub const VM_SET_STATUS: u32 = 0x5600_0080;
pub const VM_EXIT: u32 = 0x5600_0085;

pub const NOTIF_VM_EXITED: u32 = 0x5610_0001;
pub const NOTIF_VM_SHUTDOWN: u32 = 0x5610_0002;
pub const NOTIF_VM_STATUS: u32 = 0x5610_0008;
