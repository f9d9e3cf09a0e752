//! Build/run/test driver: `cargo xtask setup | run | test`.
//!
//! Kept dependency-free so it builds in seconds on a fresh machine.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};

/// Debian packages the project needs beyond the Rust toolchain
/// (the toolchain, target and components come from rust-toolchain.toml).
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    ("dtc", "device-tree-compiler"),
    ("qemu-system-aarch64", "qemu-system-arm"),
];

/// Crates that must build for the bare-metal EL2 target, with their cargo flags.
const NO_STD_BUILDS: &[&[&str]] = &[
    &["-p", "gunyah-rm-abi"],
    &["-p", "gunyah-stage2"],
    &["-p", "gunyah-rm", "--no-default-features"],
];

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let rest = if args.len() > 1 { &args[1..] } else { &[][..] };
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("run") => run_main_job(rest),
        Some("test") => test_all(),
        _ => {
            eprintln!("usage: cargo xtask <setup|run|test>");
            eprintln!(
                "  setup  install the Debian packages the project needs (dtc, qemu-system-arm)"
            );
            eprintln!("  run    run the main job");
            eprintln!("  test   run every test of the project");
            exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("xtask: {e}");
        exit(1);
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut c = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn status(what: &str, cmd: &mut Command) -> Result<(), String> {
    eprintln!("xtask: {what}");
    let st = cmd
        .status()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{what}: failed ({st})"))
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Install missing Debian packages with apt-get (as root), or say exactly what is missing.
fn setup() -> Result<(), String> {
    // rustup installs a rust-toolchain.toml's targets and components only when it installs the
    // toolchain itself; on a machine that already has 1.95.0 this adds the missing pieces.
    if have("rustup") {
        status(
            "rustup toolchain install (targets and components of rust-toolchain.toml)",
            Command::new("rustup")
                .args(["toolchain", "install", "--no-self-update"])
                .current_dir(root()),
        )?;
    }
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .filter(|(tool, _)| !have(tool))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !is_root || !have("apt-get") {
        return Err(format!(
            "missing Debian packages {missing:?}: install them with `apt-get install {}`",
            missing.join(" ")
        ));
    }
    status(
        "apt-get update",
        Command::new("apt-get").args(["update", "-qq"]),
    )?;
    status(
        &format!("apt-get install {}", missing.join(" ")),
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    for (tool, pkg) in DEBIAN_PACKAGES {
        if !have(tool) {
            return Err(format!("{pkg} installed but `{tool}` is still not on PATH"));
        }
    }
    Ok(())
}

/// The main job: the Android-like scenario on the host simulator, launched from the default
/// configs in `vm-configs/` (release build). Extra arguments go to `gunyah-rm simulate`
/// (e.g. `cargo xtask run --clones 32 --write-percent 2`).
fn run_main_job(rest: &[String]) -> Result<(), String> {
    setup()?;
    let mut configs: Vec<PathBuf> = std::fs::read_dir(root().join("vm-configs"))
        .map_err(|e| format!("vm-configs/: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "dts"))
        .collect();
    configs.sort();
    let names: Vec<String> = configs
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    eprintln!(
        "xtask: the template VM of vm-configs/ boots and reports OS RUN, its RAM is sealed as a \
         golden image, clones are launched from the configs and write a fraction of their pages \
         (copy-on-write through the RM's fault path); configs: {}",
        names.join(" ")
    );
    status(
        "gunyah-rm simulate (release)",
        cargo()
            .args([
                "run",
                "--quiet",
                "--release",
                "-p",
                "gunyah-rm",
                "--",
                "simulate",
                "--config",
            ])
            .args(&configs)
            .args(rest),
    )?;
    run_qemu_board()
}

/// Boot the RM on QEMU virt aarch64 (EL2, real stage-2 translation, EL1 guests): see
/// qemu/README.md for what the run does. Exits non-zero unless the board reports PASS.
fn run_qemu_board() -> Result<(), String> {
    status(
        "build the QEMU board image (aarch64-unknown-none, release)",
        cargo().args([
            "build",
            "--quiet",
            "-p",
            "gunyah-qemu-board",
            "--target",
            "aarch64-unknown-none",
            "--release",
        ]),
    )?;
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let image = target.join("aarch64-unknown-none/release/gunyah-qemu-board");
    eprintln!(
        "xtask: booting the RM at EL2 on QEMU virt aarch64 (HLOS and two clone VMs at EL1, \
         real stage-2 copy-on-write faults; -icount shift=0 for exact instruction counts)"
    );
    status(
        "qemu-system-aarch64",
        Command::new("qemu-system-aarch64")
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
                "-icount",
                "shift=0",
                "-kernel",
            ])
            .arg(&image)
            .stdin(std::process::Stdio::null()),
    )
}

fn test_all() -> Result<(), String> {
    setup()?;
    status(
        "cargo test --workspace",
        cargo().args(["test", "--workspace"]),
    )?;
    for flags in NO_STD_BUILDS {
        status(
            &format!("build {} for aarch64-unknown-none", flags[1]),
            cargo()
                .args(["build", "--target", "aarch64-unknown-none"])
                .args(*flags),
        )?;
    }
    Ok(())
}
