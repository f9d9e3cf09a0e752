#![no_main]
//! `abi_decode`: see `gunyah_rm_fuzz::abi`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: gunyah_rm_fuzz::seeds::write_if_asked("abi_decode"),
    |data: &[u8]| gunyah_rm_fuzz::abi::run(data)
);
