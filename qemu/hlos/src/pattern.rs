// The zygote's known content (shared with build.rs through `include!`, so no attributes or
// imports here): before it reports OS status RUN, the zygote's agent fills its whole seal
// range with these words, so the sealed image's SHA-256 is known at build time (build.rs
// computes it for `protected-vm-ok`) and every clone can check what it reads.

/// IPA of the board-sized zygote's seal range (`configs/zygote.dts`): the golden image.
pub const ZYGOTE_SEAL_IPA: u64 = 0x8000_0000;
/// Its size: 4 MiB (1024 pages).
pub const ZYGOTE_SEAL_SIZE: u64 = 0x40_0000;

/// The word at `word` (0..512) of page `page` of the zygote's golden image.
pub const fn zygote_word(page: u64, word: u64) -> u64 {
    0x2760_7E00_0000_0000 | (page << 16) | word
}
