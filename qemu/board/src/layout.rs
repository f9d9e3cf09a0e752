//! The board's physical memory layout (QEMU virt, `-m 1G`: RAM at 0x4000_0000..0x8000_0000)
//! and the guests' fixed addresses. EL2 runs identity-mapped, so PA == EL2 address.

/// HLOS RAM (IPA == PA, mapped by the RM at boot). The image (guest code, HLOS's stack and
/// EL2's statics) lies in it, because HLOS is code of this same image.
pub const HLOS_RAM: (u64, u64) = (0x4000_0000, 0x0800_0000);
/// The RM's partition: stage-2 table pages, CoW copies, pool pages.
pub const PARTITION_BASE: u64 = 0x4800_0000;
/// Pages in the partition (64 MiB).
pub const PARTITION_PAGES: usize = 16384;
/// EL2's heap.
pub const HEAP: (u64, u64) = (0x5000_0000, 0x0200_0000);
/// Top of EL2's stack (1 MiB below it), outside HLOS RAM. Also in `boot.rs`.
pub const EL2_STACK_TOP: u64 = 0x5810_0000;

/// Where HLOS writes the 2 MiB golden source (in its RAM, 2 MiB aligned).
pub const GOLDEN_SRC: u64 = 0x4400_0000;
/// Golden image size.
pub const GOLDEN_SIZE: u64 = 0x20_0000;
/// Where HLOS puts each clone's VM image (the configuration DT), lent to that clone:
/// `CLONE_IMAGE_SRC + i * CLONE_IMAGE_SIZE` for clone `i`.
pub const CLONE_IMAGE_SRC: u64 = 0x4600_0000;
/// Size of one clone's image parcel.
pub const CLONE_IMAGE_SIZE: u64 = 0x1_0000;
/// Where each clone maps the golden image (IPA).
pub const CLONE_GOLDEN_IPA: u64 = 0x8000_0000;
/// Where a clone sees it through its stage 1 (VA != IPA, so HPFAR is not valid for
/// permission faults and EL2 resolves the IPA with AT S1E1R).
pub const CLONE_GOLDEN_VA: u64 = 0x1_0000_0000;
/// A clone's stack binding (IPA == VA): a 4 KiB scratch buffer, then the stack.
pub const CLONE_STACK_IPA: u64 = 0x7FF0_0000;
/// Size of that binding.
pub const CLONE_STACK_SIZE: u64 = 0x8000;
/// The golden page each clone writes.
pub const WRITE_PAGE: u64 = 5;
/// How many words (from the start) of that page a clone writes; the rest must keep the
/// golden data the CoW copy brought.
pub const WRITTEN_WORDS: u64 = 256;
/// A second page each clone writes (one word), in the same 2 MiB block: its fault finds the
/// block already split.
pub const SECOND_WRITE_PAGE: u64 = 9;
/// The golden page each clone copies itself (for the instruction-count comparison).
pub const COPY_PAGE: u64 = 7;

/// The word at `word` of golden page `page`.
pub const fn golden_word(page: u64, word: u64) -> u64 {
    0x6010_0000_0000_0000 | (page << 16) | word
}

/// The word clone `clone` writes at `word` of its copy of the written page.
pub const fn clone_word(clone: u64, word: u64) -> u64 {
    0xC10E_0000_0000_0000 | (clone << 32) | word
}
