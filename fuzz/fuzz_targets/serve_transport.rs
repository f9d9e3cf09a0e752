#![no_main]
//! `serve_transport`: see `gunyah_rm_fuzz::transport`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: gunyah_rm_fuzz::seeds::write_if_asked("serve_transport"),
    |data: &[u8]| gunyah_rm_fuzz::transport::run(data)
);
