#![no_main]
//! `vm_config`: see `gunyah_rm_fuzz::config`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: gunyah_rm_fuzz::seeds::write_if_asked("vm_config"),
    |data: &[u8]| gunyah_rm_fuzz::config::run(data)
);
