//! Errors returned by table operations. Every error leaves the tables unchanged.

use core::fmt;

/// Why a stage-2 operation was refused. The tables are exactly as before the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// IPA size outside 32..=48 bits.
    InvalidIpaBits(u8),
    /// The IPA size is larger than the configured physical address range (VTCR_EL2.PS).
    IpaExceedsPaRange {
        /// Requested IPA bits.
        ipa_bits: u8,
        /// Physical address bits.
        pa_bits: u8,
    },
    /// The VMID does not fit the configured VMID width (8 bits without VTCR_EL2.VS).
    VmidTooLarge(u16),
    /// An address or size argument is not 4 KiB aligned.
    Unaligned {
        /// The offending value.
        value: u64,
    },
    /// A size of zero.
    ZeroSize,
    /// `address + size` overflows.
    RangeOverflow,
    /// The IPA range reaches beyond the address space's IPA size.
    IpaOutOfRange {
        /// First IPA outside the address space (or the start, if it is already outside).
        ipa: u64,
    },
    /// The output range reaches beyond the physical address range.
    PaOutOfRange {
        /// First PA outside the physical address range.
        pa: u64,
    },
    /// A page of the range is already mapped and replacement was not allowed.
    AlreadyMapped {
        /// An IPA in the range that is mapped.
        ipa: u64,
    },
    /// A page of the range is not mapped.
    NotMapped {
        /// An IPA in the range that is not mapped.
        ipa: u64,
    },
    /// The IPA is not mapped by a block (it is a page or unmapped).
    NotABlock {
        /// The IPA asked about.
        ipa: u64,
    },
    /// The table-memory allocator could not supply a page.
    NoMemory,
    /// Two updates of one batch overlap (a batch's updates must touch disjoint ranges).
    Overlap {
        /// An IPA both touch.
        ipa: u64,
    },
    /// An [`Entry`](crate::Entry) no longer describes the tables (they changed since the walk).
    StaleEntry {
        /// The IPA it was walked for.
        ipa: u64,
    },
    /// The table-memory allocator returned a misaligned physical address.
    BadTableMemory {
        /// The address it returned.
        pa: u64,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::InvalidIpaBits(b) => write!(f, "IPA size {b} bits is outside 32..=48"),
            Error::IpaExceedsPaRange { ipa_bits, pa_bits } => {
                write!(
                    f,
                    "IPA size {ipa_bits} bits exceeds PA range {pa_bits} bits"
                )
            }
            Error::VmidTooLarge(v) => write!(f, "VMID {v} does not fit the VMID width"),
            Error::Unaligned { value } => write!(f, "{value:#x} is not 4 KiB aligned"),
            Error::ZeroSize => write!(f, "size is zero"),
            Error::RangeOverflow => write!(f, "address + size overflows"),
            Error::IpaOutOfRange { ipa } => write!(f, "IPA {ipa:#x} is outside the address space"),
            Error::PaOutOfRange { pa } => write!(f, "PA {pa:#x} is outside the PA range"),
            Error::AlreadyMapped { ipa } => write!(f, "IPA {ipa:#x} is already mapped"),
            Error::NotMapped { ipa } => write!(f, "IPA {ipa:#x} is not mapped"),
            Error::NotABlock { ipa } => write!(f, "IPA {ipa:#x} is not mapped by a block"),
            Error::Overlap { ipa } => write!(f, "two updates of a batch touch IPA {ipa:#x}"),
            Error::StaleEntry { ipa } => {
                write!(
                    f,
                    "the entry walked for IPA {ipa:#x} changed since the walk"
                )
            }
            Error::NoMemory => write!(f, "out of table memory"),
            Error::BadTableMemory { pa } => {
                write!(f, "table allocator returned misaligned PA {pa:#x}")
            }
        }
    }
}

impl core::error::Error for Error {}
