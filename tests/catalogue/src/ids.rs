//! Numbers of the protocol, typed from the spec sheet (`rm-rpc-abi.md` §2, §4, §5) and the
//! extension's layouts (`gunyah_rm_abi::ext` docs), not taken from the code under test.

/// VMID of HLOS, the primary VM (§5.5).
pub const HLOS: u16 = 3;
/// VMID of the RM itself (§5.5).
pub const RM: u16 = 0xFF;
/// First dynamic VMID (§5.5).
pub const DYN_FIRST: u16 = 0x80;
/// Last dynamic VMID (63 slots, §12.1).
pub const DYN_LAST: u16 = 0xBE;

// §2.1 memory calls.
pub const MEM_DONATE: u32 = 0x5100_0010;
pub const MEM_ACCEPT: u32 = 0x5100_0011;
pub const MEM_LEND: u32 = 0x5100_0012;
pub const MEM_SHARE: u32 = 0x5100_0013;
pub const MEM_RELEASE: u32 = 0x5100_0014;
pub const MEM_RECLAIM: u32 = 0x5100_0015;
pub const MEM_NOTIFY: u32 = 0x5100_0017;
pub const MEM_APPEND: u32 = 0x5100_0018;
pub const MEM_LOOKUP_SGL: u32 = 0x5100_001A;
// §2.2 memory notifications.
pub const N_MEM_SHARED: u32 = 0x5110_0011;
pub const N_MEM_RELEASED: u32 = 0x5110_0012;
pub const N_MEM_ACCEPTED: u32 = 0x5110_0013;
pub const N_MEM_RECALL: u32 = 0x5110_0014;
// §2.3 VM calls.
pub const VM_ALLOC: u32 = 0x5600_0001;
pub const VM_DEALLOC: u32 = 0x5600_0002;
pub const VM_START: u32 = 0x5600_0004;
pub const VM_STOP: u32 = 0x5600_0005;
pub const VM_RESET: u32 = 0x5600_0006;
pub const VM_CONFIG_IMAGE: u32 = 0x5600_0009;
pub const VM_AUTH_IMAGE: u32 = 0x5600_000A;
pub const VM_INIT: u32 = 0x5600_000B;
pub const VM_SET_BOOT_CONTEXT_V16: u32 = 0x5600_000C;
pub const VM_GET_ID: u32 = 0x5600_0010;
pub const VM_LOOKUP_URI: u32 = 0x5600_0011;
pub const VM_LOOKUP_GUID: u32 = 0x5600_0012;
pub const VM_LOOKUP_NAME: u32 = 0x5600_0013;
pub const VM_GET_OWNER: u32 = 0x5600_0015;
pub const VM_GET_STATE: u32 = 0x5600_0017;
pub const VM_GET_HYP_RESOURCES: u32 = 0x5600_0020;
pub const VM_GET_VMID: u32 = 0x5600_0024;
pub const VM_GET_PEERS: u32 = 0x5600_0025;
pub const VM_SET_TIME_BASE: u32 = 0x5600_0030;
pub const VM_SET_BOOT_CONTEXT: u32 = 0x5600_0031;
pub const VM_SET_FIRMWARE_MEM: u32 = 0x5600_0032;
pub const VM_SET_DEMAND_PAGING: u32 = 0x5600_0033;
pub const VM_SET_ADDRESS_LAYOUT: u32 = 0x5600_0034;
pub const VM_SET_STATUS: u32 = 0x5600_0080;
pub const VM_EXIT: u32 = 0x5600_0085;
pub const VM_HOST_GET_TYPE: u32 = 0x5600_00A0;
// §2.4 VM notifications.
pub const N_VM_EXITED: u32 = 0x5610_0001;
pub const N_VM_SHUTDOWN: u32 = 0x5610_0002;
pub const N_VM_STATUS: u32 = 0x5610_0008;
// Extension family 0x47.
pub const GMEM_CREATE: u32 = 0x4700_0001;
pub const GMEM_BIND: u32 = 0x4700_0002;
pub const GMEM_UNBIND: u32 = 0x4700_0003;
pub const GOLDEN_SEAL: u32 = 0x4700_0010;
pub const GOLDEN_MAP: u32 = 0x4700_0011;
pub const GOLDEN_UNMAP: u32 = 0x4700_0012;
pub const GOLDEN_RELEASE: u32 = 0x4700_0013;
pub const VM_MEM_STATS: u32 = 0x4700_0020;
pub const SIM_VM_READ: u32 = 0x4700_00F0;
pub const SIM_VM_WRITE: u32 = 0x4700_00F1;
pub const N_COW_BROKEN: u32 = 0x4710_0001;
pub const N_QUOTA_EXHAUSTED: u32 = 0x4710_0002;
pub const N_FAULT_UNSERVED: u32 = 0x4710_0003;

/// RM error codes (§4).
pub mod err {
    pub const OK: u32 = 0;
    pub const UNIMPLEMENTED: u32 = 0xFFFF_FFFF;
    pub const NOMEM: u32 = 0x1;
    pub const NORESOURCE: u32 = 0x2;
    pub const DENIED: u32 = 0x3;
    pub const MSG_INVALID: u32 = 0x4;
    pub const BUSY: u32 = 0x5;
    pub const ARGUMENT_INVALID: u32 = 0x6;
    pub const HANDLE_INVALID: u32 = 0x7;
    pub const VALIDATE_FAILED: u32 = 0x8;
    pub const MAP_FAILED: u32 = 0x9;
    pub const MEM_INVALID: u32 = 0xA;
    pub const MEM_INUSE: u32 = 0xB;
    pub const MEM_RELEASED: u32 = 0xC;
    pub const VMID_INVALID: u32 = 0xD;
    pub const LOOKUP_FAILED: u32 = 0xE;
    pub const VM_STATE: u32 = 0x14;

    /// The name of a code, for messages.
    pub fn name(code: u32) -> &'static str {
        match code {
            OK => "OK",
            UNIMPLEMENTED => "UNIMPLEMENTED",
            NOMEM => "NOMEM",
            NORESOURCE => "NORESOURCE",
            DENIED => "DENIED",
            MSG_INVALID => "MSG_INVALID",
            BUSY => "BUSY",
            ARGUMENT_INVALID => "ARGUMENT_INVALID",
            HANDLE_INVALID => "HANDLE_INVALID",
            VALIDATE_FAILED => "VALIDATE_FAILED",
            MAP_FAILED => "MAP_FAILED",
            MEM_INVALID => "MEM_INVALID",
            MEM_INUSE => "MEM_INUSE",
            MEM_RELEASED => "MEM_RELEASED",
            VMID_INVALID => "VMID_INVALID",
            LOOKUP_FAILED => "LOOKUP_FAILED",
            VM_STATE => "VM_STATE",
            _ => "?",
        }
    }
}

/// VM status values (§5.1).
pub mod st {
    pub const INIT: u8 = 1;
    pub const READY: u8 = 2;
    pub const RUNNING: u8 = 3;
    pub const LOAD: u8 = 5;
    pub const INIT_FAILED: u8 = 8;
    pub const EXITED: u8 = 9;
    pub const RESETTING: u8 = 10;
    pub const RESET: u8 = 11;
}

/// Memparcel rights (§3).
pub mod rights {
    pub const R: u8 = 0x4;
    pub const RW: u8 = 0x6;
    pub const RX: u8 = 0x5;
    pub const RWX: u8 = 0x7;
}

/// MEM_ACCEPT flags (§3).
pub mod accept {
    pub const VALIDATE_SANITIZED: u8 = 0x01;
    pub const VALIDATE_ACL_ATTR: u8 = 0x02;
    pub const VALIDATE_LABEL: u8 = 0x04;
    pub const MAP_OTHER: u8 = 0x08;
    pub const MAP_CONTIGUOUS: u8 = 0x10;
    pub const DONE: u8 = 0x80;
}

/// MEM_NOTIFY flags (§3.4).
pub mod notify {
    pub const SHARED: u8 = 0x1;
    pub const RELEASED: u8 = 0x2;
    pub const ACCEPTED: u8 = 0x4;
    pub const RECALL: u8 = 0x8;
}

/// Transfer types (§3).
pub mod trans {
    pub const DONATE: u8 = 0;
    pub const LEND: u8 = 1;
    pub const SHARE: u8 = 2;
}

/// FAULT_UNSERVED `why` and `action` (`gunyah_rm_abi::ext` docs).
pub mod fault {
    pub const NO_COW: u8 = 1;
    pub const UNMAPPED: u8 = 2;
    pub const NOT_PERMITTED: u8 = 3;
    pub const QUOTA: u8 = 4;
    pub const ABORT: u8 = 1;
}

/// GOLDEN_MAP flags and "no gmem" (`gunyah_rm_abi::ext` docs).
pub mod golden {
    pub const COW: u16 = 0x1;
    pub const EXEC: u16 = 0x2;
    pub const NO_GMEM: u32 = 0xFFFF_FFFF;
}

/// exit_type of a forced VM_STOP (§5.4).
pub const EXIT_VM_STOP_FORCED: u16 = 7;

/// What VM_HOST_GET_TYPE answers on Gunyah's RM (§12.1).
pub const HOST_TYPE: u32 = 0x0100_0164;

/// The name of a message ID, for messages.
pub fn msg_name(id: u32) -> &'static str {
    match id {
        MEM_DONATE => "MEM_DONATE",
        MEM_ACCEPT => "MEM_ACCEPT",
        MEM_LEND => "MEM_LEND",
        MEM_SHARE => "MEM_SHARE",
        MEM_RELEASE => "MEM_RELEASE",
        MEM_RECLAIM => "MEM_RECLAIM",
        MEM_NOTIFY => "MEM_NOTIFY",
        MEM_APPEND => "MEM_APPEND",
        MEM_LOOKUP_SGL => "MEM_QCOM_LOOKUP_SGL",
        N_MEM_SHARED => "MEM_SHARED",
        N_MEM_RELEASED => "MEM_RELEASED",
        N_MEM_ACCEPTED => "MEM_ACCEPTED",
        N_MEM_RECALL => "MEM_RECALL",
        VM_ALLOC => "VM_ALLOC_VMID",
        VM_DEALLOC => "VM_DEALLOC_VMID",
        VM_START => "VM_START",
        VM_STOP => "VM_STOP",
        VM_RESET => "VM_RESET",
        VM_CONFIG_IMAGE => "VM_CONFIG_IMAGE",
        VM_AUTH_IMAGE => "VM_AUTH_IMAGE",
        VM_INIT => "VM_INIT",
        VM_GET_OWNER => "VM_GET_OWNER",
        VM_GET_STATE => "VM_GET_STATE",
        VM_GET_HYP_RESOURCES => "VM_GET_HYP_RESOURCES",
        VM_GET_VMID => "VM_GET_VMID",
        VM_GET_PEERS => "VM_GET_PEERS",
        VM_SET_TIME_BASE => "VM_SET_TIME_BASE",
        VM_SET_BOOT_CONTEXT => "VM_SET_BOOT_CONTEXT",
        VM_SET_FIRMWARE_MEM => "VM_SET_FIRMWARE_MEM",
        VM_SET_DEMAND_PAGING => "VM_SET_DEMAND_PAGING",
        VM_SET_ADDRESS_LAYOUT => "VM_SET_ADDRESS_LAYOUT",
        VM_SET_STATUS => "VM_SET_STATUS",
        VM_EXIT => "VM_EXIT",
        VM_HOST_GET_TYPE => "VM_HOST_GET_TYPE",
        N_VM_EXITED => "VM_EXITED",
        N_VM_SHUTDOWN => "VM_SHUTDOWN",
        N_VM_STATUS => "VM_STATUS",
        GMEM_CREATE => "GMEM_CREATE",
        GMEM_BIND => "GMEM_BIND",
        GMEM_UNBIND => "GMEM_UNBIND",
        GOLDEN_SEAL => "GOLDEN_SEAL",
        GOLDEN_MAP => "GOLDEN_MAP",
        GOLDEN_UNMAP => "GOLDEN_UNMAP",
        GOLDEN_RELEASE => "GOLDEN_RELEASE",
        VM_MEM_STATS => "VM_MEM_STATS",
        SIM_VM_READ => "SIM_VM_READ",
        SIM_VM_WRITE => "SIM_VM_WRITE",
        N_COW_BROKEN => "COW_BROKEN",
        N_QUOTA_EXHAUSTED => "QUOTA_EXHAUSTED",
        N_FAULT_UNSERVED => "FAULT_UNSERVED",
        _ => "?",
    }
}
