//! Runs the bare-metal hardware-path self-test (`examples/qemu_el2`) under QEMU at EL2: builds
//! it for aarch64-unknown-none (in a separate target directory) and requires exit status 0 and
//! the PASS line. The guard below only stops a hung QEMU; it is not a performance threshold.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../qemu/qemu_binary.rs"]
mod qemu_binary;

#[test]
fn hardware_paths_pass_in_qemu_el2() {
    let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("qemu-selftest");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "-p",
            "gunyah-stage2",
            "--example",
            "qemu_el2_selftest",
            "--features",
            "qemu-selftest",
            "--target",
            "aarch64-unknown-none",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo");
    assert!(status.success(), "building the self-test failed");
    let image = target_dir.join("aarch64-unknown-none/debug/examples/qemu_el2_selftest");
    let out_path = target_dir.join("qemu-output.txt");
    let out = std::fs::File::create(&out_path).expect("output file");
    let mut qemu = Command::new(qemu_binary::qemu_system_aarch64())
        .args([
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
        .arg(&image)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("qemu-system-aarch64 must be installed (see the design notes)");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = qemu.try_wait().expect("wait for qemu") {
            break Some(s);
        }
        if start.elapsed() > Duration::from_secs(300) {
            let _ = qemu.kill();
            let _ = qemu.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("QEMU hung; output so far:\n{output}"));
    assert!(status.success(), "self-test failed ({status}):\n{output}");
    assert!(
        output.contains("CoW fault served at IPA 0x0000000080003008"),
        "{output}"
    );
    assert!(output.contains("stage2 selftest: PASS"), "{output}");
}
