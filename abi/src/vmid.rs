//! Well-known VMIDs (spec §5.5).

/// The hypervisor.
pub const HYP: u16 = 0;
/// The primary VM (Linux host, "HLOS").
pub const HLOS: u16 = 3;
/// The Resource Manager (LNX `GUNYAH_VMID_ROOT_VM`).
pub const RM: u16 = 0xFF;
/// First VMID handed out by dynamic allocation (VM_ALLOC_VMID with vmid 0).
pub const DYNAMIC_FIRST: u16 = 0x80;
/// Number of dynamic VMIDs the RM hands out (0x80..=0xBE).
pub const DYNAMIC_COUNT: u16 = 63;
/// Last VMID of the dynamic range as the spec names it (0x80–0xBF).
pub const DYNAMIC_RANGE_END: u16 = 0xBF;
/// Specific VMIDs requested with VM_ALLOC_VMID must be below this.
pub const STATIC_LIMIT: u16 = 64;
/// "Any VM".
pub const ANY: u16 = 0xFFFE;
/// Default peer.
pub const PEER_DEFAULT: u16 = 0xFFFF;
/// LNX `GUNYAH_VMID_INVAL`.
pub const INVALID: u16 = 0xFFFF;
/// VMID 0 in a request means "the caller" for several VM queries.
pub const SELF: u16 = 0;

/// Whether `vmid` lies in the dynamic allocation range the RM uses.
pub const fn is_dynamic(vmid: u16) -> bool {
    vmid >= DYNAMIC_FIRST && vmid < DYNAMIC_FIRST + DYNAMIC_COUNT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert!(is_dynamic(0x80));
        assert!(is_dynamic(0xBE));
        assert!(!is_dynamic(0x7F));
        assert!(!is_dynamic(0xBF));
        assert_eq!(RM, 255);
    }
}
