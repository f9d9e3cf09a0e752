//! Message and notification IDs (spec §2, DESIGN.md "Extension messages").
//!
//! [`MsgId`] is a plain `u32` newtype so that an ID this crate does not know
//! survives decoding and re-encoding unchanged (the RM answers unknown
//! requests with `UNIMPLEMENTED`, it does not reject the packet).

/// A 32-bit RM RPC message or notification ID as carried in the header.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgId(pub u32);

/// The message family: bits \[31:24\] of the ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// 0x51: memparcels and firmware.
    Memory,
    /// 0x56: VM management, IRQ lending, console.
    Vm,
    /// 0x47 ('G'): the gmem / golden / CoW extension of this project.
    Extension,
    /// Anything else (including the informative IDs 0x1 and 0x2).
    Other(u8),
}

macro_rules! msg_ids {
    ($( $(#[$doc:meta])* $name:ident = $val:expr; )*) => {
        impl MsgId {
            $( $(#[$doc])* pub const $name: MsgId = MsgId($val); )*

            /// Every ID this crate names, with its name.
            pub const ALL: &'static [(MsgId, &'static str)] = &[
                $( (MsgId($val), stringify!($name)), )*
            ];
        }
    };
}

msg_ids! {
    // Informative IDs (OOT only).
    /// OOT GET_IDENT (informative, not in RM).
    GET_IDENT = 0x0000_0001;
    /// OOT GET_FEATURES (not in RM).
    GET_FEATURES = 0x0000_0002;

    // §2.1 memory calls.
    /// Donate memory (ownership moves on accept).
    MEM_DONATE = 0x5100_0010;
    /// Accept a memparcel.
    MEM_ACCEPT = 0x5100_0011;
    /// Lend memory (owner loses access).
    MEM_LEND = 0x5100_0012;
    /// Share memory (owner keeps access).
    MEM_SHARE = 0x5100_0013;
    /// Release an accepted memparcel.
    MEM_RELEASE = 0x5100_0014;
    /// Reclaim a memparcel (owner).
    MEM_RECLAIM = 0x5100_0015;
    /// Notify VMs about a memparcel.
    MEM_NOTIFY = 0x5100_0017;
    /// Append SGL entries to a memparcel created with APPEND.
    MEM_APPEND = 0x5100_0018;
    /// Look up a memparcel handle by its ACL/SGL/attrs.
    MEM_QCOM_LOOKUP_SGL = 0x5100_001A;
    /// Firmware milestone.
    FW_MILESTONE = 0x5100_0020;
    /// Set a VM's firmware.
    FW_SET_VM_FIRMWARE = 0x5100_0021;

    // §2.2 memory notifications.
    /// RM → recipients: a memparcel was shared with you.
    MEM_SHARED = 0x5110_0011;
    /// RM → owner: an acceptor released the memparcel.
    MEM_RELEASED = 0x5110_0012;
    /// RM → owner: an acceptor accepted the memparcel.
    MEM_ACCEPTED = 0x5110_0013;
    /// RM → listed VMs: the owner recalls the memparcel.
    MEM_RECALL = 0x5110_0014;

    // §2.3 VM management / query calls.
    /// Allocate a VMID (RM name VM_ALLOCATE).
    VM_ALLOC_VMID = 0x5600_0001;
    /// Deallocate a VMID (RM name VM_DEALLOCATE).
    VM_DEALLOC_VMID = 0x5600_0002;
    /// Start a VM.
    VM_START = 0x5600_0004;
    /// Stop a VM.
    VM_STOP = 0x5600_0005;
    /// Reset a VM.
    VM_RESET = 0x5600_0006;
    /// Suspend (commented out in RM).
    VM_SUSPEND = 0x5600_0007;
    /// Resume (commented out in RM).
    VM_RESUME = 0x5600_0008;
    /// Configure the VM image parcel.
    VM_CONFIG_IMAGE = 0x5600_0009;
    /// Authenticate the VM image.
    VM_AUTH_IMAGE = 0x5600_000A;
    /// Initialise a VM (INIT → READY).
    VM_INIT = 0x5600_000B;
    /// VM_SET_BOOT_CONTEXT as numbered in LNX v16 only.
    VM_SET_BOOT_CONTEXT_V16 = 0x5600_000C;
    /// Get a VM's identifier.
    VM_GET_ID = 0x5600_0010;
    /// Look up a VM by URI.
    VM_LOOKUP_URI = 0x5600_0011;
    /// Look up a VM by GUID.
    VM_LOOKUP_GUID = 0x5600_0012;
    /// Look up a VM by name.
    VM_LOOKUP_NAME = 0x5600_0013;
    /// Get a VM's owner.
    VM_GET_OWNER = 0x5600_0015;
    /// Get a VM's state.
    VM_GET_STATE = 0x5600_0017;
    /// Get a VM's crash message.
    VM_GET_CRASH_MSG = 0x5600_0019;
    /// Get a VM's hypervisor resources.
    VM_GET_HYP_RESOURCES = 0x5600_0020;
    /// Get hypervisor capability IDs.
    VM_GET_HYP_CAPIDS = 0x5600_0021;
    /// Get hypervisor IRQs.
    VM_GET_HYP_IRQS = 0x5600_0022;
    /// Get the caller's VMID.
    VM_GET_VMID = 0x5600_0024;
    /// Get the caller's peers.
    VM_GET_PEERS = 0x5600_0025;
    /// Set the VM time base.
    VM_SET_TIME_BASE = 0x5600_0030;
    /// Set a boot register (LNX v17/ACK; RM name VM_SET_CONTEXT).
    VM_SET_BOOT_CONTEXT = 0x5600_0031;
    /// Set the firmware memparcel.
    VM_SET_FIRMWARE_MEM = 0x5600_0032;
    /// Enable demand paging for ranges (LNX only).
    VM_SET_DEMAND_PAGING = 0x5600_0033;
    /// Set an address layout range (LNX only).
    VM_SET_ADDRESS_LAYOUT = 0x5600_0034;
    /// Minidump info (OOT).
    MINIDUMP_GET_INFO = 0x5600_0040;
    /// Minidump register range (OOT).
    MINIDUMP_REGISTER_RANGE = 0x5600_0041;
    /// Minidump deregister slot (OOT).
    MINIDUMP_DEREGISTER_SLOT = 0x5600_0042;
    /// Accept a lent IRQ.
    VM_IRQ_ACCEPT = 0x5600_0050;
    /// Lend an IRQ.
    VM_IRQ_LEND = 0x5600_0051;
    /// Release an accepted IRQ.
    VM_IRQ_RELEASE = 0x5600_0052;
    /// Reclaim a lent IRQ.
    VM_IRQ_RECLAIM = 0x5600_0053;
    /// Notify about a lent IRQ.
    VM_IRQ_NOTIFY = 0x5600_0054;
    /// Unmap an IRQ.
    VM_IRQ_UNMAP = 0x5600_0055;
    /// Device accept (OOT).
    VM_DEVICE_ACCEPT = 0x5600_0060;
    /// Device lend (OOT).
    VM_DEVICE_LEND = 0x5600_0061;
    /// Device release (OOT).
    VM_DEVICE_RELEASE = 0x5600_0062;
    /// Device reclaim (OOT).
    VM_DEVICE_RECLAIM = 0x5600_0063;
    /// Device notify (OOT).
    VM_DEVICE_NOTIFY = 0x5600_0064;
    /// Device find handle (OOT).
    VM_DEVICE_FIND_HANDLE = 0x5600_0065;
    /// Device get resources (OOT).
    VM_DEVICE_GET_RESOURCES = 0x5600_0066;
    /// Device bus lockdown (OOT).
    VM_DEVICE_BUS_LOCKDOWN = 0x5600_0067;
    /// Device bus unlock (OOT).
    VM_DEVICE_BUS_UNLOCK = 0x5600_0068;
    /// Guest reports its status.
    VM_SET_STATUS = 0x5600_0080;
    /// Open a VM console.
    VM_CONSOLE_OPEN = 0x5600_0081;
    /// Close a VM console.
    VM_CONSOLE_CLOSE = 0x5600_0082;
    /// Write to a VM console.
    VM_CONSOLE_WRITE = 0x5600_0083;
    /// Flush a VM console.
    VM_CONSOLE_FLUSH = 0x5600_0084;
    /// Guest → RM: the VM exits.
    VM_EXIT = 0x5600_0085;
    /// Set a crash message.
    VM_SET_CRASH_MSG = 0x5600_0086;
    /// Get the host type.
    VM_HOST_GET_TYPE = 0x5600_00A0;
    /// Reserve IPA ranges.
    IPA_RESERVE = 0x5600_00B0;
    /// Unreserve IPA ranges.
    IPA_UNRESERVE = 0x5600_00B1;

    // §2.4 VM notifications.
    /// RM → owner: a VM exited.
    VM_EXITED = 0x5610_0001;
    /// RM → VM: please shut down.
    VM_SHUTDOWN = 0x5610_0002;
    /// RM → peers: a VM's status changed.
    VM_STATUS = 0x5610_0008;
    /// An IRQ was lent to you.
    VM_IRQ_LENT = 0x5610_0011;
    /// A lent IRQ was released.
    VM_IRQ_RELEASED = 0x5610_0012;
    /// A lent IRQ was accepted.
    VM_IRQ_ACCEPTED = 0x5610_0013;
    /// Console characters from a VM.
    VM_CONSOLE_CHARS = 0x5610_0080;

    // Extension family 0x47 (see the crate documentation for layouts).
    /// Create a gmem instance.
    GMEM_CREATE = 0x4700_0001;
    /// Bind a gmem range to a VM's gfn range.
    GMEM_BIND = 0x4700_0002;
    /// Remove a gmem binding.
    GMEM_UNBIND = 0x4700_0003;
    /// Seal a memparcel as a golden image.
    GOLDEN_SEAL = 0x4700_0010;
    /// Map a golden range into a VM.
    GOLDEN_MAP = 0x4700_0011;
    /// Unmap a golden mapping.
    GOLDEN_UNMAP = 0x4700_0012;
    /// Release a golden image.
    GOLDEN_RELEASE = 0x4700_0013;
    /// Memory statistics of a VM.
    VM_MEM_STATS = 0x4700_0020;
    /// Simulator: read guest memory through stage 2.
    SIM_VM_READ = 0x4700_00F0;
    /// Simulator: write guest memory through stage 2.
    SIM_VM_WRITE = 0x4700_00F1;
    /// RM → owner: CoW copies were made (batched per VM).
    COW_BROKEN = 0x4710_0001;
    /// RM → owner: a gmem quota was exhausted.
    QUOTA_EXHAUSTED = 0x4710_0002;
    /// RM → manager: a stage-2 fault of a VM was not served.
    FAULT_UNSERVED = 0x4710_0003;
}

impl MsgId {
    /// RM's name for [`MsgId::VM_ALLOC_VMID`].
    pub const VM_ALLOCATE: MsgId = MsgId::VM_ALLOC_VMID;
    /// RM's name for [`MsgId::VM_DEALLOC_VMID`].
    pub const VM_DEALLOCATE: MsgId = MsgId::VM_DEALLOC_VMID;

    /// The raw value.
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// The name used in this crate (`MEM_LEND`, ...), or `None` if unknown.
    pub fn name(self) -> Option<&'static str> {
        Self::ALL
            .iter()
            .find(|(id, _)| *id == self)
            .map(|(_, n)| *n)
    }

    /// Look an ID up by its name (exact, upper case).
    pub fn from_name(name: &str) -> Option<MsgId> {
        Self::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(id, _)| *id)
    }

    /// The family byte (bits \[31:24\]).
    pub const fn family(self) -> Family {
        match (self.0 >> 24) as u8 {
            0x51 => Family::Memory,
            0x56 => Family::Vm,
            0x47 => Family::Extension,
            other => Family::Other(other),
        }
    }

    /// Whether the ID is in a notification range (0x5110xxxx, 0x5610xxxx,
    /// 0x4710xxxx): bits \[23:16\] equal 0x10 in those families.
    pub const fn is_notification_id(self) -> bool {
        let fam = (self.0 >> 24) as u8;
        (fam == 0x51 || fam == 0x56 || fam == 0x47) && ((self.0 >> 16) & 0xFF) == 0x10
    }
}

impl From<u32> for MsgId {
    fn from(v: u32) -> Self {
        MsgId(v)
    }
}

impl From<MsgId> for u32 {
    fn from(v: MsgId) -> Self {
        v.0
    }
}

impl core::fmt::Debug for MsgId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n}({:#010x})", self.0),
            None => write!(f, "MsgId({:#010x})", self.0),
        }
    }
}

impl core::fmt::Display for MsgId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{:#010x}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_from_spec_tables() {
        // Typed in from spec §2.1-§2.4.
        assert_eq!(MsgId::MEM_LEND.raw(), 0x5100_0012);
        assert_eq!(MsgId::MEM_QCOM_LOOKUP_SGL.raw(), 0x5100_001A);
        assert_eq!(MsgId::MEM_RECALL.raw(), 0x5110_0014);
        assert_eq!(MsgId::VM_SET_BOOT_CONTEXT.raw(), 0x5600_0031);
        assert_eq!(MsgId::VM_SET_DEMAND_PAGING.raw(), 0x5600_0033);
        assert_eq!(MsgId::VM_SET_ADDRESS_LAYOUT.raw(), 0x5600_0034);
        assert_eq!(MsgId::VM_STATUS.raw(), 0x5610_0008);
        assert_eq!(MsgId::VM_CONSOLE_CHARS.raw(), 0x5610_0080);
        assert_eq!(MsgId::VM_ALLOCATE, MsgId(0x5600_0001));
        assert_eq!(MsgId::SIM_VM_WRITE.raw(), 0x4700_00F1);
    }

    #[test]
    fn names_and_unknown_ids() {
        assert_eq!(MsgId(0x5100_0012).name(), Some("MEM_LEND"));
        assert_eq!(MsgId(0x5100_0016).name(), None);
        assert_eq!(MsgId::from_name("VM_EXITED"), Some(MsgId(0x5610_0001)));
        let unknown = MsgId(0xDEAD_BEEF);
        assert_eq!(unknown.raw(), 0xDEAD_BEEF);
        assert_eq!(unknown.family(), Family::Other(0xDE));
    }

    #[test]
    fn ids_are_unique() {
        for (i, (a, na)) in MsgId::ALL.iter().enumerate() {
            for (b, nb) in &MsgId::ALL[i + 1..] {
                assert_ne!(a, b, "{na} and {nb} share an ID");
                assert_ne!(na, nb);
            }
        }
    }

    #[test]
    fn notification_ranges() {
        assert!(MsgId::MEM_SHARED.is_notification_id());
        assert!(MsgId::VM_EXITED.is_notification_id());
        assert!(MsgId::COW_BROKEN.is_notification_id());
        assert!(!MsgId::MEM_SHARE.is_notification_id());
        assert!(!MsgId::GET_IDENT.is_notification_id());
        assert_eq!(MsgId::GOLDEN_MAP.family(), Family::Extension);
    }
}
