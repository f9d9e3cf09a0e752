//! Where the QEMU tests find `qemu-system-aarch64`: on PATH, or where `cargo xtask setup`
//! unpacked it (`<target dir>/debian-tools/bin`, used when a system-wide install would have
//! removed another package). Included with `#[path]` by the tests that boot QEMU.

use std::path::{Path, PathBuf};

/// The `qemu-system-aarch64` to run (a bare name resolved through PATH if none is unpacked).
pub fn qemu_system_aarch64() -> PathBuf {
    let name = "qemu-system-aarch64";
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    if !on_path {
        // The workspace root is the ancestor of the crate that holds rust-toolchain.toml.
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .find(|a| a.join("rust-toolchain.toml").is_file())
            .map(Path::to_path_buf);
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .or_else(|| workspace.map(|w| w.join("target")));
        if let Some(t) = target {
            let unpacked = t.join("debian-tools/bin").join(name);
            if unpacked.is_file() {
                return unpacked;
            }
        }
    }
    PathBuf::from(name)
}
