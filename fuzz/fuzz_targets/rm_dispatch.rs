#![no_main]
//! `rm_dispatch`: see `gunyah_rm_fuzz::dispatch`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: gunyah_rm_fuzz::seeds::write_if_asked("rm_dispatch"),
    |data: &[u8]| gunyah_rm_fuzz::dispatch::run(data)
);
