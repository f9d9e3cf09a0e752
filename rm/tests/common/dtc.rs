//! dtc, for the tests that build device trees from source text.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// DTS source text compiled with dtc (a project dependency, installed by `cargo xtask setup`);
/// `/include/`s resolve from the repository root.
pub fn dtc(src: &str) -> Vec<u8> {
    let mut child = Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb", "-i"])
        .arg(repo_root())
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dtc (device-tree-compiler) must be installed: cargo xtask setup");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(src.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dtc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
