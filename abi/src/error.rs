//! RM error codes (`rm_error_t`, u32) — spec §4.

/// An RM error code as carried in the first word of every reply.
///
/// Unknown values are kept intact in [`RmError::Other`] so a reply can be
/// decoded and re-encoded without loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RmError {
    /// 0x0: success.
    Ok,
    /// 0xFFFFFFFF: unknown or unsupported request.
    Unimplemented,
    /// 0x1: out of memory.
    NoMem,
    /// 0x2: out of a resource (also: list longer than 512 entries).
    NoResource,
    /// 0x3: not permitted.
    Denied,
    /// 0x4: malformed message (short, bad list, trailing bytes).
    MsgInvalid,
    /// 0x5: busy.
    Busy,
    /// 0x6: an argument is invalid.
    ArgumentInvalid,
    /// 0x7: unknown handle.
    HandleInvalid,
    /// 0x8: accept validation failed.
    ValidateFailed,
    /// 0x9: mapping failed.
    MapFailed,
    /// 0xA: memory invalid.
    MemInvalid,
    /// 0xB: memory in use.
    MemInuse,
    /// 0xC: memory already released.
    MemReleased,
    /// 0xD: VMID invalid.
    VmidInvalid,
    /// 0xE: lookup failed.
    LookupFailed,
    /// 0xF: IRQ invalid.
    IrqInvalid,
    /// 0x10: IRQ in use.
    IrqInuse,
    /// 0x11: IRQ released.
    IrqReleased,
    /// 0x12: in use.
    InUse,
    /// 0x13: IRQ not mapped.
    IrqNotMapped,
    /// 0x14: wrong VM state.
    VmState,
    /// A code this crate does not name.
    Other(u32),
}

impl RmError {
    /// All named codes with their wire values (spec §4).
    pub const NAMED: [(RmError, u32, &'static str); 22] = [
        (RmError::Ok, 0x0, "OK"),
        (RmError::Unimplemented, 0xFFFF_FFFF, "UNIMPLEMENTED"),
        (RmError::NoMem, 0x1, "NOMEM"),
        (RmError::NoResource, 0x2, "NORESOURCE"),
        (RmError::Denied, 0x3, "DENIED"),
        (RmError::MsgInvalid, 0x4, "MSG_INVALID"),
        (RmError::Busy, 0x5, "BUSY"),
        (RmError::ArgumentInvalid, 0x6, "ARGUMENT_INVALID"),
        (RmError::HandleInvalid, 0x7, "HANDLE_INVALID"),
        (RmError::ValidateFailed, 0x8, "VALIDATE_FAILED"),
        (RmError::MapFailed, 0x9, "MAP_FAILED"),
        (RmError::MemInvalid, 0xA, "MEM_INVALID"),
        (RmError::MemInuse, 0xB, "MEM_INUSE"),
        (RmError::MemReleased, 0xC, "MEM_RELEASED"),
        (RmError::VmidInvalid, 0xD, "VMID_INVALID"),
        (RmError::LookupFailed, 0xE, "LOOKUP_FAILED"),
        (RmError::IrqInvalid, 0xF, "IRQ_INVALID"),
        (RmError::IrqInuse, 0x10, "IRQ_INUSE"),
        (RmError::IrqReleased, 0x11, "IRQ_RELEASED"),
        (RmError::InUse, 0x12, "IN_USE"),
        (RmError::IrqNotMapped, 0x13, "IRQ_NOT_MAPPED"),
        (RmError::VmState, 0x14, "VM_STATE"),
    ];

    /// The wire value.
    pub const fn code(self) -> u32 {
        match self {
            RmError::Ok => 0x0,
            RmError::Unimplemented => 0xFFFF_FFFF,
            RmError::NoMem => 0x1,
            RmError::NoResource => 0x2,
            RmError::Denied => 0x3,
            RmError::MsgInvalid => 0x4,
            RmError::Busy => 0x5,
            RmError::ArgumentInvalid => 0x6,
            RmError::HandleInvalid => 0x7,
            RmError::ValidateFailed => 0x8,
            RmError::MapFailed => 0x9,
            RmError::MemInvalid => 0xA,
            RmError::MemInuse => 0xB,
            RmError::MemReleased => 0xC,
            RmError::VmidInvalid => 0xD,
            RmError::LookupFailed => 0xE,
            RmError::IrqInvalid => 0xF,
            RmError::IrqInuse => 0x10,
            RmError::IrqReleased => 0x11,
            RmError::InUse => 0x12,
            RmError::IrqNotMapped => 0x13,
            RmError::VmState => 0x14,
            RmError::Other(c) => c,
        }
    }

    /// Decode a wire value; unknown values are kept in [`RmError::Other`].
    pub fn from_code(code: u32) -> RmError {
        Self::NAMED
            .iter()
            .find(|(_, c, _)| *c == code)
            .map(|(e, _, _)| *e)
            .unwrap_or(RmError::Other(code))
    }

    /// The spec's name (`MEM_INUSE`, ...), or `None` for an unknown code.
    pub fn name(self) -> Option<&'static str> {
        Self::NAMED
            .iter()
            .find(|(e, _, _)| *e == self)
            .map(|(_, _, n)| *n)
    }
}

impl core::fmt::Display for RmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({:#x})", self.code()),
            None => write!(f, "unknown RM error {:#x}", self.code()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_spec_table() {
        // Values typed in from spec §4, not derived from the table above.
        assert_eq!(RmError::from_code(0xB), RmError::MemInuse);
        assert_eq!(RmError::from_code(0xFFFF_FFFF), RmError::Unimplemented);
        assert_eq!(RmError::VmState.code(), 0x14);
        assert_eq!(RmError::MsgInvalid.code(), 4);
        assert_eq!(RmError::from_code(0x99), RmError::Other(0x99));
        for (e, c, _) in RmError::NAMED {
            assert_eq!(e.code(), c);
            assert_eq!(RmError::from_code(c), e);
        }
    }
}
