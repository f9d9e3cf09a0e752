//! The board's physical memory layout: Gunyah's QEMU platform (`-m 2G`: RAM at
//! 0x4000_0000..0xC000_0000). The lower 1 GiB is HLOS's (IPA = PA), with QEMU's loader
//! putting the DT at 0x40F0_0000 and the HLOS image at 0x4100_0000; the board (linked at
//! 0x8000_0000, `link.ld`) lives above it. EL2 runs identity-mapped, so PA == EL2 address.

/// HLOS RAM (IPA == PA, mapped by the RM at boot).
pub const HLOS_RAM: (u64, u64) = (0x4000_0000, 0x4000_0000);
/// Where QEMU's loader puts the DT (`HLOS_DT_BASE`).
pub const HLOS_DT: u64 = 0x40F0_0000;
/// Where HLOS is entered (`HLOS_ENTRY_POINT`); the DT must end below it.
pub const HLOS_ENTRY: u64 = 0x4100_0000;
/// EL2's stacks, one per physical CPU (CPU `i`'s ends at `EL2_STACKS + (i + 1) *
/// EL2_STACK_SIZE`), outside HLOS RAM, above the board image (`link.ld`).
pub const EL2_STACKS: u64 = 0x8080_0000;
/// Bytes of stack per CPU.
pub const EL2_STACK_SIZE: u64 = 0x2_0000;
/// Physical CPUs the board runs (Gunyah's QEMU platform: `PLATFORM_MAX_CORES` 8, MPIDR
/// Aff0 only).
pub const MAX_CPUS: usize = 8;
/// EL2's heap.
pub const HEAP: (u64, u64) = (0x8100_0000, 0x0200_0000);
/// The RM's partition (stage-2 tables, gmem pages, CoW copies) starts here and runs to the
/// end of RAM the DT describes.
pub const PARTITION_BASE: u64 = 0x8400_0000;
/// RAM this board needs (0x4000_0000..0xC000_0000): Gunyah's QEMU platform runs with
/// `-m 2G`.
pub const RAM_END: u64 = 0xC000_0000;
