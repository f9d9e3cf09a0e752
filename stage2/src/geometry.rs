//! Stage-2 geometry for a 4 KiB granule: start level, concatenated root tables, VTCR_EL2 and
//! VTTBR_EL2 values.
//!
//! The shallowest legal tree is used (as Hafnium does): up to 16 concatenated root tables.
//! IPA 32..=34 bits start at level 2 (4..=16 root tables), 35..=43 bits at level 1
//! (1..=16 root tables), 44..=48 bits at level 0 (one root table).

use crate::error::Error;

/// Translation granule and page size.
pub const PAGE_SIZE: u64 = 4096;
/// Descriptors per 4 KiB table.
pub const ENTRIES_PER_TABLE: usize = 512;
/// Smallest supported IPA size.
pub const MIN_IPA_BITS: u8 = 32;
/// Largest supported IPA size (no FEAT_LPA2).
pub const MAX_IPA_BITS: u8 = 48;
/// Size of a level-2 block.
pub const BLOCK_2M: u64 = 1 << 21;
/// Size of a level-1 block.
pub const BLOCK_1G: u64 = 1 << 30;

/// Bit position of the lowest IPA bit resolved by a table at `level` (0..=3).
pub const fn level_shift(level: u8) -> u32 {
    12 + 9 * (3 - level as u32)
}

/// Size of the region one descriptor at `level` maps (4 KiB at level 3).
pub const fn block_size(level: u8) -> u64 {
    1 << level_shift(level)
}

/// Physical address range, the VTCR_EL2.PS field (read from ID_AA64MMFR0_EL1.PARange).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaRange {
    /// 32 bits, 4 GiB.
    Bits32,
    /// 36 bits, 64 GiB.
    Bits36,
    /// 40 bits, 1 TiB.
    Bits40,
    /// 42 bits, 4 TiB.
    Bits42,
    /// 44 bits, 16 TiB.
    Bits44,
    /// 48 bits, 256 TiB.
    Bits48,
}

impl PaRange {
    /// Number of physical address bits.
    pub const fn bits(self) -> u8 {
        match self {
            PaRange::Bits32 => 32,
            PaRange::Bits36 => 36,
            PaRange::Bits40 => 40,
            PaRange::Bits42 => 42,
            PaRange::Bits44 => 44,
            PaRange::Bits48 => 48,
        }
    }
    /// The VTCR_EL2.PS / ID_AA64MMFR0_EL1.PARange encoding.
    pub const fn encoding(self) -> u64 {
        match self {
            PaRange::Bits32 => 0,
            PaRange::Bits36 => 1,
            PaRange::Bits40 => 2,
            PaRange::Bits42 => 3,
            PaRange::Bits44 => 4,
            PaRange::Bits48 => 5,
        }
    }
    /// From an ID_AA64MMFR0_EL1.PARange value; values above 48 bits are clamped to 48 bits
    /// (this crate does not use 52-bit output addresses).
    pub const fn from_parange(v: u8) -> Option<PaRange> {
        match v {
            0 => Some(PaRange::Bits32),
            1 => Some(PaRange::Bits36),
            2 => Some(PaRange::Bits40),
            3 => Some(PaRange::Bits42),
            4 => Some(PaRange::Bits44),
            5 | 6 => Some(PaRange::Bits48),
            _ => None,
        }
    }
}

/// VMID width (VTCR_EL2.VS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmidBits {
    /// 8-bit VMIDs.
    Eight,
    /// 16-bit VMIDs (FEAT_VMID16, VTCR_EL2.VS = 1).
    Sixteen,
}

/// Configuration of one VM's stage-2 address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage2Config {
    /// IPA size in bits, 32..=48.
    pub ipa_bits: u8,
    /// Physical address range of the system.
    pub pa_range: PaRange,
    /// The VM's VMID.
    pub vmid: u16,
    /// VMID width.
    pub vmid_bits: VmidBits,
}

impl Stage2Config {
    /// A configuration with 16-bit VMIDs.
    pub const fn new(ipa_bits: u8, pa_range: PaRange, vmid: u16) -> Stage2Config {
        Stage2Config {
            ipa_bits,
            pa_range,
            vmid,
            vmid_bits: VmidBits::Sixteen,
        }
    }

    /// Check the configuration and compute its geometry.
    pub fn geometry(&self) -> Result<Geometry, Error> {
        let g = Geometry::new(self.ipa_bits)?;
        if self.ipa_bits > self.pa_range.bits() {
            return Err(Error::IpaExceedsPaRange {
                ipa_bits: self.ipa_bits,
                pa_bits: self.pa_range.bits(),
            });
        }
        if self.vmid_bits == VmidBits::Eight && self.vmid > 0xFF {
            return Err(Error::VmidTooLarge(self.vmid));
        }
        Ok(g)
    }

    /// The VTCR_EL2 value: T0SZ, SL0, IRGN0/ORGN0 write-back, SH0 inner shareable, TG0 4 KiB,
    /// PS, VS, and the RES1 bit 31.
    pub fn vtcr(&self) -> Result<u64, Error> {
        let g = self.geometry()?;
        let t0sz = 64 - self.ipa_bits as u64;
        let sl0 = match g.start_level {
            2 => 0,
            1 => 1,
            _ => 2,
        };
        let vs = match self.vmid_bits {
            VmidBits::Eight => 0,
            VmidBits::Sixteen => 1,
        };
        Ok((1 << 31)
            | (vs << 19)
            | (self.pa_range.encoding() << 16)
            // TG0 = 0b00 (4 KiB) at bits 15:14.
            | (0b11 << 12) // SH0 inner shareable
            | (0b01 << 10) // ORGN0 write-back read/write-allocate
            | (0b01 << 8) // IRGN0 write-back read/write-allocate
            | (sl0 << 6)
            | t0sz)
    }
}

/// VTTBR_EL2 value: root table base and VMID in bits 63:48 (CnP = 0).
pub const fn vttbr(root_pa: u64, vmid: u16) -> u64 {
    ((vmid as u64) << 48) | (root_pa & 0x0000_FFFF_FFFF_FFFE)
}

/// The shape of the stage-2 tree for one IPA size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    ipa_bits: u8,
    start_level: u8,
    root_tables: usize,
}

impl Geometry {
    /// The shallowest tree for `ipa_bits` (32..=48) with at most 16 concatenated root tables.
    pub const fn new(ipa_bits: u8) -> Result<Geometry, Error> {
        if ipa_bits < MIN_IPA_BITS || ipa_bits > MAX_IPA_BITS {
            return Err(Error::InvalidIpaBits(ipa_bits));
        }
        let start_level = if ipa_bits <= 34 {
            2
        } else if ipa_bits <= 43 {
            1
        } else {
            0
        };
        let index_bits = ipa_bits as u32 - level_shift(start_level);
        let root_tables = if index_bits > 9 {
            1 << (index_bits - 9)
        } else {
            1
        };
        Ok(Geometry {
            ipa_bits,
            start_level,
            root_tables,
        })
    }
    /// IPA size in bits.
    pub const fn ipa_bits(&self) -> u8 {
        self.ipa_bits
    }
    /// Level of the root table(s): 0, 1 or 2.
    pub const fn start_level(&self) -> u8 {
        self.start_level
    }
    /// Number of concatenated root tables (1, 2, 4, 8 or 16); they are physically contiguous
    /// and the first is aligned to their total size.
    pub const fn root_tables(&self) -> usize {
        self.root_tables
    }
    /// Number of used descriptors across the root tables.
    pub const fn root_entries(&self) -> usize {
        1 << (self.ipa_bits as u32 - level_shift(self.start_level))
    }
    /// One past the largest IPA (2^ipa_bits).
    pub const fn ipa_limit(&self) -> u64 {
        1 << self.ipa_bits
    }
}
