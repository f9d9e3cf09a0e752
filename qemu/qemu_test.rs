//! What the tests that boot QEMU share: building a bare-metal image for
//! `aarch64-unknown-none` in a target directory of their own, and running QEMU to its end
//! (its console into a file, the exit status the guest gives through semihosting, a guard
//! that kills a hung QEMU). The guard only stops a hung QEMU; it is not a performance
//! threshold.
//!
//! Included with `#[path]` by the board's `qemu_run` and `catalogue_run` tests and by
//! stage2's `qemu_selftest`, so they build and boot alike. Uses only `std`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `cargo build <args> --target aarch64-unknown-none` from the including crate's directory,
/// into `CARGO_TARGET_TMPDIR/<dir>` (so the host build's target directory is not locked);
/// the directory the images are in (`release` if `args` has `--release`, else `debug`).
pub fn build_bare_metal(dir: &str, args: &[&str]) -> PathBuf {
    let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(dir);
    let status = Command::new(env!("CARGO"))
        .arg("build")
        .args(args)
        .args(["--target", "aarch64-unknown-none"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo build {args:?} failed");
    let profile = if args.contains(&"--release") {
        "release"
    } else {
        "debug"
    };
    target_dir.join("aarch64-unknown-none").join(profile)
}

/// Run `qemu` (stdin closed, console to `out_path`, stderr inherited) until it exits; kill
/// it after `guard`. Its exit status and console output; panics with the output so far if
/// it hung.
pub fn run_to_exit(qemu: Command, out_path: &Path, guard: Duration) -> (ExitStatus, String) {
    let (status, output) = run_for(qemu, out_path, guard);
    let status = status.unwrap_or_else(|| panic!("QEMU hung; output so far:\n{output}"));
    (status, output)
}

/// [`run_to_exit`], but a QEMU still running after `guard` is killed and gives `None` (for
/// runs that are expected to hang).
pub fn run_for(
    mut qemu: Command,
    out_path: &Path,
    guard: Duration,
) -> (Option<ExitStatus>, String) {
    let out = std::fs::File::create(out_path).expect("output file");
    let mut child = qemu
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("qemu-system-aarch64 must be installed (cargo xtask setup)");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for qemu") {
            break Some(s);
        }
        if start.elapsed() > guard {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status,
        std::fs::read_to_string(out_path).unwrap_or_default(),
    )
}
