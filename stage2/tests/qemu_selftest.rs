//! Runs the bare-metal hardware-path self-test (`examples/qemu_el2`) under QEMU at EL2: builds
//! it for aarch64-unknown-none (in a separate target directory) and requires exit status 0 and
//! the PASS line. The guard below only stops a hung QEMU; it is not a performance threshold.

use std::process::Command;
use std::time::Duration;

#[path = "../../qemu/qemu_binary.rs"]
mod qemu_binary;
#[path = "../../qemu/qemu_test.rs"]
mod qemu_test;

use qemu_test::{build_bare_metal, run_to_exit};

#[test]
fn hardware_paths_pass_in_qemu_el2() {
    let dir = build_bare_metal(
        "qemu-selftest",
        &[
            "-p",
            "gunyah-stage2",
            "--example",
            "qemu_el2_selftest",
            "--features",
            "qemu-selftest",
        ],
    );
    let image = dir.join("examples/qemu_el2_selftest");
    let mut qemu = Command::new(qemu_binary::qemu_system_aarch64());
    qemu.args([
        "-machine",
        "virt,virtualization=on,gic-version=3",
        "-cpu",
        "max",
        "-m",
        "1G",
        "-nographic",
        "-nic",
        "none",
        "-semihosting",
        "-kernel",
    ])
    .arg(&image);
    let out = dir.join("qemu-output.txt");
    let (status, output) = run_to_exit(qemu, &out, Duration::from_secs(300));
    assert!(status.success(), "self-test failed ({status}):\n{output}");
    assert!(
        output.contains("CoW fault served at IPA 0x0000000080003008"),
        "{output}"
    );
    assert!(output.contains("stage2 selftest: PASS"), "{output}");
}
