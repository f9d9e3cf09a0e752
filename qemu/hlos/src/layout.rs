//! Fixed addresses of the scene. HLOS RAM is IPA = PA 0x4000_0000..0x8000_0000; a clone VM
//! sees only what the RM maps into it.

/// HLOS RAM (Gunyah's QEMU platform: 1 GiB at 0x40000000, identity-mapped).
pub const HLOS_RAM: (u64, u64) = (0x4000_0000, 0x4000_0000);
/// Where HLOS writes the 2 MiB golden source (in its RAM, 2 MiB aligned).
pub const GOLDEN_SRC: u64 = 0x4400_0000;
/// Golden image size.
pub const GOLDEN_SIZE: u64 = 0x20_0000;
/// HLOS pages it shares with clone `i` as a mailbox: `MAILBOX_SRC + i * 4096`.
pub const MAILBOX_SRC: u64 = 0x4600_0000;
/// Where HLOS builds clone `i`'s image parcel: `IMAGE_SRC + i * IMAGE_SPAN`.
pub const IMAGE_SRC: u64 = 0x4800_0000;
/// Room for one image parcel in HLOS RAM.
pub const IMAGE_SPAN: u64 = 0x40_0000;
/// Bytes reserved for the VM's DT in its image parcel (the board adds `/hypervisor` in place).
pub const DT_ROOM: u64 = 0x1_0000;
/// Where a clone maps the golden image (IPA).
pub const CLONE_GOLDEN_IPA: u64 = 0x8000_0000;
/// Where a clone sees it through its stage 1 (VA != IPA, so EL2 must resolve the IPA of a
/// permission fault with AT S1E1R).
pub const CLONE_GOLDEN_VA: u64 = 0x1_0000_0000;
/// A clone's gmem-backed scratch binding (IPA == VA).
pub const CLONE_SCRATCH_IPA: u64 = 0x7FF0_0000;
/// Size of that binding.
pub const CLONE_SCRATCH_SIZE: u64 = 0x8000;
/// Where a clone accepts its mailbox (IPA == VA).
pub const CLONE_MAILBOX_IPA: u64 = 0x7FE0_0000;
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
/// An address in the board's own RAM (EL2's heap on this board): outside HLOS RAM, never
/// mapped for a VM.
pub const EL2_RAM: u64 = 0x8100_0000;

/// The word at `word` of golden page `page`.
pub const fn golden_word(page: u64, word: u64) -> u64 {
    0x6010_0000_0000_0000 | (page << 16) | word
}

/// The word clone `clone` writes at `word` of its copy of the written page.
pub const fn clone_word(clone: u64, word: u64) -> u64 {
    0xC10E_0000_0000_0000 | (clone << 32) | word
}

/// Golden pages every racer's two vCPUs write at once: `RACE_FIRST_PAGE..+RACE_PAGES`.
pub const RACE_FIRST_PAGE: u64 = 32;
/// How many.
pub const RACE_PAGES: u64 = 8;
/// Mailbox words: a racer's vCPUs are up; HLOS says go.
pub const MB_READY: u64 = 8;
/// See [`MB_READY`].
pub const MB_GO: u64 = 9;

/// The word vCPU `vcpu` of racer `racer` writes at word `vcpu` of golden page `page`.
pub const fn race_word(racer: u64, vcpu: u64, page: u64) -> u64 {
    0xACE0_0000_0000_0000 | (racer << 32) | (vcpu << 16) | page
}
