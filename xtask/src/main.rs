//! Build/run/test driver: `cargo xtask setup | run | test`.
//!
//! Kept dependency-free so it builds in seconds on a fresh machine.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};

#[path = "../../qemu/boot_contract.rs"]
mod boot_contract;
mod fuzz;
mod perf;

/// Debian packages the project needs beyond the Rust toolchain
/// (the toolchain, target and components come from rust-toolchain.toml).
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    ("dtc", "device-tree-compiler"),
    ("qemu-system-aarch64", "qemu-system-arm"),
];

/// Crates that must build for the bare-metal EL2 target, with their cargo flags.
const NO_STD_BUILDS: &[&[&str]] = &[
    &["-p", "gunyah-rm-abi"],
    // The abi's serde feature (used by `gunyah-rm decode`) must stay no_std too.
    &["-p", "gunyah-rm-abi", "--features", "serde"],
    &["-p", "gunyah-stage2"],
    &["-p", "gunyah-rm", "--no-default-features"],
    // The catalogue links into the QEMU runner's HLOS payload.
    &["-p", "gunyah-rm-catalogue"],
];

/// What `cargo clippy --workspace` never sees: the code built only for aarch64-unknown-none
/// (the EL2 board, the HLOS payloads, the stage-2 EL2 self-test, everything behind
/// `cfg(target_os = "none")` or `cfg(target_arch = "aarch64")` in the libraries), linted for
/// that target with the features its builds use: the [`NO_STD_BUILDS`] libraries, the board
/// as `cargo xtask qemu` builds it (and with the catalogue runner's test channel), both HLOS
/// payloads, the self-test example as `stage2/tests/qemu_selftest.rs` builds it. No
/// `-Zbuild-std`: none of these builds uses it (the target's prebuilt core and alloc).
const EL2_CLIPPY: &[&[&str]] = &[
    &["-p", "gunyah-qemu-board", "--bins"],
    &[
        "-p",
        "gunyah-qemu-board",
        "--bins",
        "--features",
        "catalogue",
    ],
    &["-p", "gunyah-qemu-hlos", "--bins"],
    &[
        "-p",
        "gunyah-stage2",
        "--examples",
        "--features",
        "qemu-selftest",
    ],
];

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let rest = if args.len() > 1 { &args[1..] } else { &[][..] };
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("run") => run_main_job(rest),
        Some("qemu") => setup().and_then(|_| run_qemu_board(rest)),
        Some("test") => test_all(),
        Some("clippy") => clippy_el2(),
        Some("perf") => perf::run(&root(), rest),
        Some("fuzz") => fuzz::parse_args(rest).and_then(|o| {
            setup()?;
            fuzz::run(&o)
        }),
        _ => {
            eprintln!("usage: cargo xtask <setup|run|qemu|test|clippy|perf|fuzz>");
            eprintln!(
                "  setup  install the Debian packages the project needs (dtc, qemu-system-arm)"
            );
            eprintln!("  run    run the main job (simulator scenario, then the QEMU board)");
            eprintln!(
                "  qemu   boot the QEMU board only; --hlos IMAGE boots your own primary-VM \
                 payload (raw, or an ELF linked at 0x41000000), --hlos-bootargs ARGS (its DT's \
                 /chosen/bootargs, e.g. a Linux command line), --hlos-initrd FILE (at 0x40800000, named in \
                 its DT's /chosen), --smp N (default 8), \
                 --no-icount, --rpc-log (the board prints HLOS's first RM RPC packets); \
                 --catalogue runs the message-based catalogue in QEMU (the board \
                 with its test channel, the catalogue runner as HLOS)"
            );
            eprintln!("  test   run every test of the project");
            eprintln!(
                "  clippy lint the aarch64-unknown-none builds (board, HLOS, EL2 code) with \
                 -D warnings; the workspace's host clippy does not see them"
            );
            eprintln!(
                "  perf   [--full] [--plots]: run the benchmarks of docs/PERFORMANCE.md and draw \
                 its plots into docs/perf/ (--plots: only redraw from the last run)"
            );
            eprintln!(
                "  fuzz   [--seconds N] [TARGET...] [-- LIBFUZZER-ARGS]: run the fuzz targets \
                 (docs/FUZZING.md)"
            );
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
    c.current_dir(root()).env("PATH", tool_path());
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
        .env("PATH", tool_path())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Make the machine ready: the Rust targets and components `rust-toolchain.toml` lists, then
/// the Debian packages. Each step installs only what is missing and says what it changes.
fn setup() -> Result<(), String> {
    rust_setup()?;
    debian_setup()
}

/// What `rust-toolchain.toml` asks for.
#[derive(Debug, PartialEq)]
struct Toolchain {
    channel: String,
    targets: Vec<String>,
    components: Vec<String>,
}

/// Parse the few keys of `rust-toolchain.toml` we need (`channel`, `targets`, `components`);
/// kept by hand so xtask stays dependency-free.
fn parse_toolchain(text: &str) -> Result<Toolchain, String> {
    let mut channel = None;
    let mut targets = Vec::new();
    let mut components = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let strings = || -> Vec<String> {
            value
                .trim_start_matches('[')
                .trim_end_matches(']')
                .split(',')
                .map(|s| s.trim().trim_matches('"').to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        match key.trim() {
            "channel" => channel = Some(value.trim_matches('"').to_string()),
            "targets" => targets = strings(),
            "components" => components = strings(),
            _ => {}
        }
    }
    Ok(Toolchain {
        channel: channel.ok_or("rust-toolchain.toml: no `channel`")?,
        targets,
        components,
    })
}

/// The entries of `wanted` that `installed` (rustup's `--installed` listing, where components
/// carry a host-triple suffix and targets do not) lacks.
fn missing_from(wanted: &[String], installed: &str) -> Vec<String> {
    wanted
        .iter()
        .filter(|w| {
            !installed.lines().map(str::trim).any(|line| {
                line == w.as_str()
                    || line
                        .strip_prefix(w.as_str())
                        .is_some_and(|rest| rest.starts_with('-') && rest[1..].contains("-"))
                    // rustup lists llvm-tools as llvm-tools-preview on some versions
                    || line.starts_with(&format!("{w}-preview"))
            })
        })
        .cloned()
        .collect()
}

fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{cmd:?}: cannot start: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The sysroot holds `lib/rustlib/<target>` for every installed target: the check that does
/// not trust rustup's bookkeeping (and works without rustup).
fn target_in_sysroot(sysroot: &Path, target: &str) -> bool {
    sysroot
        .join("lib/rustlib")
        .join(target)
        .join("lib")
        .is_dir()
}

/// Add the targets and components of `rust-toolchain.toml` to its toolchain. `rustup toolchain
/// install` is not enough: run inside cargo, `RUSTUP_TOOLCHAIN` is set and rustup reports
/// "using existing install" without adding a target the file lists. So ask rustup what the
/// pinned toolchain has and add exactly what is missing, then check the sysroot.
fn rust_setup() -> Result<(), String> {
    let text = std::fs::read_to_string(root().join("rust-toolchain.toml"))
        .map_err(|e| format!("rust-toolchain.toml: {e}"))?;
    let tc = parse_toolchain(&text)?;
    if have("rustup") {
        let ch = tc.channel.as_str();
        let installed = output(Command::new("rustup").args(["toolchain", "list"]))?;
        if !installed.lines().any(|l| l.starts_with(ch)) {
            status(
                &format!("rustup toolchain install {ch} (pinned by rust-toolchain.toml)"),
                Command::new("rustup").args([
                    "toolchain",
                    "install",
                    ch,
                    "--profile",
                    "minimal",
                    "--no-self-update",
                ]),
            )?;
        }
        let targets = output(Command::new("rustup").args([
            "target",
            "list",
            "--installed",
            "--toolchain",
            ch,
        ]))?;
        let missing = missing_from(&tc.targets, &targets);
        if !missing.is_empty() {
            status(
                &format!("rustup target add --toolchain {ch} {}", missing.join(" ")),
                Command::new("rustup")
                    .args(["target", "add", "--toolchain", ch])
                    .args(&missing),
            )?;
        }
        let components = output(Command::new("rustup").args([
            "component",
            "list",
            "--installed",
            "--toolchain",
            ch,
        ]))?;
        let missing = missing_from(&tc.components, &components);
        if !missing.is_empty() {
            status(
                &format!(
                    "rustup component add --toolchain {ch} {}",
                    missing.join(" ")
                ),
                Command::new("rustup")
                    .args(["component", "add", "--toolchain", ch])
                    .args(&missing),
            )?;
        }
    }
    let mut rustc = Command::new(env::var("RUSTC").unwrap_or_else(|_| "rustc".into()));
    if have("rustup") {
        rustc = Command::new("rustup");
        rustc.args(["run", &tc.channel, "rustc"]);
    }
    let sysroot = output(rustc.args(["--print", "sysroot"]))?;
    let sysroot = Path::new(sysroot.trim());
    for t in &tc.targets {
        if !target_in_sysroot(sysroot, t) {
            return Err(format!(
                "target {t} (rust-toolchain.toml) is not in {}: install it with \
                 `rustup target add --toolchain {} {t}`",
                sysroot.display(),
                tc.channel
            ));
        }
    }
    Ok(())
}

/// Where Debian packages that cannot be installed system-wide without removing something are
/// unpacked instead (see [`debian_setup`]); its `bin/` holds wrappers and goes first on the PATH
/// of every command xtask runs.
fn local_debs() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("debian-tools")
}

/// PATH with [`local_debs`]`/bin` in front.
fn tool_path() -> std::ffi::OsString {
    let mut parts = vec![local_debs().join("bin")];
    if let Some(p) = env::var_os("PATH") {
        parts.extend(env::split_paths(&p));
    }
    env::join_paths(parts).unwrap_or_default()
}

/// What `apt-get install -s` says an install would do: (package, version) to install, and the
/// names of installed packages it would remove.
type AptPlan = (Vec<(String, String)>, Vec<String>);

/// Ask apt-get for the [`AptPlan`] of installing `pkgs`.
fn apt_plan(pkgs: &[&str]) -> Result<AptPlan, String> {
    let plan = output(
        Command::new("apt-get")
            .args(["install", "-s", "--no-install-recommends"])
            .args(pkgs),
    )?;
    Ok(parse_apt_plan(&plan))
}

fn parse_apt_plan(plan: &str) -> AptPlan {
    let installs = plan
        .lines()
        .filter_map(|l| l.strip_prefix("Inst "))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?;
            // "Inst name (version release [arch])", or "Inst name [old] (version ...)" on upgrade
            let version = w.find(|t| t.starts_with('('))?.trim_start_matches('(');
            Some((name.to_string(), version.to_string()))
        })
        .collect();
    let removals = plan
        .lines()
        .filter_map(|l| l.strip_prefix("Remv "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    (installs, removals)
}

/// Install missing Debian packages, changing nothing else on the machine.
///
/// For each package whose tool is missing, apt-get's dry run says what it would change. When it
/// only adds packages, they are installed with `--no-remove`. When it would remove something (on
/// a machine with a newer `qemu-utils` from backports, Debian 12's `qemu-system-arm` 7.2 cannot
/// be installed beside it), the packages are downloaded and unpacked into
/// `target/debian-tools/` instead, with a wrapper on xtask's PATH, so the machine's own packages
/// stay as they are.
fn debian_setup() -> Result<(), String> {
    let missing: Vec<(&str, &str)> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|(tool, _)| !have(tool))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !is_root || !have("apt-get") {
        return Err(format!(
            "missing Debian packages {names:?}: install them with `apt-get install {}`",
            names.join(" ")
        ));
    }
    status(
        "apt-get update",
        Command::new("apt-get").args(["update", "-qq"]),
    )?;
    for (tool, pkg) in missing {
        let (installs, removals) = apt_plan(&[pkg])?;
        let list: Vec<&str> = installs.iter().map(|(n, _)| n.as_str()).collect();
        if removals.is_empty() {
            eprintln!(
                "xtask: `{tool}` is missing: apt-get will install {} package(s): {}",
                list.len(),
                list.join(" ")
            );
            status(
                &format!("apt-get install --no-remove {pkg}"),
                Command::new("apt-get")
                    .args([
                        "install",
                        "-y",
                        "-qq",
                        "--no-install-recommends",
                        "--no-remove",
                        pkg,
                    ])
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            )?;
        } else {
            eprintln!(
                "xtask: `{tool}` is missing, and installing {pkg} system-wide would remove {}; \
                 unpacking {} package(s) into {} instead (the machine's packages stay as they are)",
                removals.join(" "),
                list.len(),
                local_debs().display()
            );
            unpack_locally(tool, &installs)?;
        }
    }
    for (tool, pkg) in DEBIAN_PACKAGES {
        if !have(tool) {
            return Err(format!("{pkg} installed but `{tool}` is still not on PATH"));
        }
    }
    Ok(())
}

/// Download `debs` (name, version) with apt-get and unpack them into [`local_debs`]; put a
/// wrapper for `tool` in its `bin/` that finds the unpacked libraries and data files.
fn unpack_locally(tool: &str, debs: &[(String, String)]) -> Result<(), String> {
    let prefix = local_debs();
    let cache = prefix.join("debs");
    std::fs::create_dir_all(&cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    status(
        &format!("apt-get download ({} packages)", debs.len()),
        Command::new("apt-get")
            .arg("download")
            .args(debs.iter().map(|(n, v)| format!("{n}={v}")))
            .current_dir(&cache),
    )?;
    for entry in std::fs::read_dir(&cache).map_err(|e| e.to_string())? {
        let deb = entry.map_err(|e| e.to_string())?.path();
        if deb.extension().is_some_and(|e| e == "deb") {
            output(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&prefix))?;
        }
    }
    let arch = output(Command::new("dpkg-architecture").arg("-qDEB_HOST_MULTIARCH"))
        .or_else(|_| output(Command::new("gcc").arg("-print-multiarch")))
        .unwrap_or_else(|_| "x86_64-linux-gnu".into());
    let arch = arch.trim();
    let p = prefix.display();
    let script = format!(
        "#!/bin/sh\n# Written by `cargo xtask setup`: {tool} unpacked from Debian packages (not installed).\n\
         LD_LIBRARY_PATH={p}/usr/lib/{arch}:{p}/lib/{arch}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}} \\\n\
         exec {p}/usr/bin/{tool} -L {p}/usr/share/qemu \"$@\"\n"
    );
    let bin = prefix.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    let wrapper = bin.join(tool);
    std::fs::write(&wrapper, script).map_err(|e| format!("{}: {e}", wrapper.display()))?;
    status(
        "chmod +x wrapper",
        Command::new("chmod").arg("+x").arg(&wrapper),
    )?;
    status(
        &format!("{tool} --version (unpacked)"),
        Command::new(&wrapper).arg("--version"),
    )
}

/// The main job: the Android-like scenario on the host simulator, launched from the default
/// configs in `vm-configs/` (release build). Extra arguments go to `gunyah-rm simulate`
/// (e.g. `cargo xtask run --clones 32 --write-percent 2`).
fn run_main_job(rest: &[String]) -> Result<(), String> {
    setup()?;
    let (qemu_args, rest) = split_qemu_args(rest);
    let rest = &rest[..];
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
    run_qemu_board(&qemu_args)
}

/// Split the board's options (`--hlos IMAGE`, `--hlos-bootargs ARGS`, `--hlos-initrd FILE`,
/// `--smp N`,
/// `--no-icount`, `--catalogue`, `--rpc-log`)
/// from the rest.
fn split_qemu_args(args: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut qemu, mut rest) = (Vec::new(), Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--hlos" | "--smp" | "--hlos-bootargs" | "--hlos-initrd" => {
                qemu.push(a.clone());
                qemu.extend(it.next().cloned());
            }
            "--no-icount" | "--catalogue" | "--rpc-log" => qemu.push(a.clone()),
            _ => rest.push(a.clone()),
        }
    }
    (qemu, rest)
}

/// The options of `cargo xtask qemu` (and of `cargo xtask run` for its QEMU part).
#[derive(Debug, PartialEq)]
struct QemuOptions {
    /// `--hlos IMAGE`: the user's primary-VM payload instead of the project's.
    hlos: Option<PathBuf>,
    /// `--hlos-bootargs ARGS`: `/chosen/bootargs` in the DT HLOS gets (a kernel command line).
    bootargs: Option<String>,
    /// `--hlos-initrd FILE`: an initrd at 0x40800000, named in `/chosen` of HLOS's DT.
    initrd: Option<PathBuf>,
    /// `--smp N`, 1 to 8 (default 8, the contract's).
    smp: u32,
    /// Without `--no-icount` (and `--catalogue`): `-icount shift=0`.
    icount: bool,
    /// `--catalogue`.
    catalogue: bool,
    /// `--rpc-log`: the board built with feature `rpc-log` (a line for each of HLOS's first
    /// RM RPC packets either way).
    rpc_log: bool,
}

fn parse_qemu_options(args: &[String]) -> Result<QemuOptions, String> {
    let mut o = QemuOptions {
        hlos: None,
        bootargs: None,
        initrd: None,
        smp: 8,
        icount: true,
        catalogue: false,
        rpc_log: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--hlos" => o.hlos = Some(PathBuf::from(it.next().ok_or("--hlos needs an IMAGE")?)),
            "--hlos-initrd" => {
                o.initrd = Some(PathBuf::from(
                    it.next().ok_or("--hlos-initrd needs a FILE")?,
                ))
            }
            "--hlos-bootargs" => {
                o.bootargs = Some(it.next().ok_or("--hlos-bootargs needs ARGS")?.clone())
            }
            "--smp" => {
                o.smp = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| (1..=8).contains(n))
                    .ok_or("--smp needs a CPU count from 1 to 8")?
            }
            "--no-icount" => o.icount = false,
            "--rpc-log" => o.rpc_log = true,
            "--catalogue" => {
                o.catalogue = true;
                o.icount = false;
            }
            other => return Err(format!("qemu: unknown option {other}")),
        }
    }
    Ok(o)
}

/// Boot the board on QEMU virt aarch64 as Gunyah is booted there (qemu/README.md): QEMU's own
/// virt DTB without the ITS at 0x40F00000, the HLOS image at 0x41000000 (the project's
/// payload, or `--hlos IMAGE`), `-smp 8 -m 2G`, `-icount shift=0` unless `--no-icount`.
/// `--catalogue`: the board with its test channel (feature `catalogue`) and the catalogue
/// runner (`gunyah-qemu-hlos-catalogue`) as HLOS, without -icount.
/// Exits non-zero unless the run ends with status 0.
fn run_qemu_board(args: &[String]) -> Result<(), String> {
    let QemuOptions {
        hlos,
        bootargs,
        initrd,
        smp,
        icount,
        catalogue,
        rpc_log,
    } = parse_qemu_options(args)?;
    let mut packages = vec!["gunyah-qemu-board"];
    if hlos.is_none() {
        packages.push("gunyah-qemu-hlos");
    }
    for p in &packages {
        let mut c = cargo();
        c.args([
            "build",
            "--quiet",
            "-p",
            p,
            "--target",
            "aarch64-unknown-none",
        ])
        .arg("--release");
        if *p == "gunyah-qemu-board" {
            let features: Vec<&str> = [(catalogue, "catalogue"), (rpc_log, "rpc-log")]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, f)| *f)
                .collect();
            if !features.is_empty() {
                c.args(["--features", &features.join(",")]);
            }
        }
        status(
            &format!("build {p} (aarch64-unknown-none, release)"),
            &mut c,
        )?;
    }
    let out = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("aarch64-unknown-none/release");
    let board = out.join("gunyah-qemu-board");
    let payload = if catalogue {
        "gunyah-qemu-hlos-catalogue"
    } else {
        "gunyah-qemu-hlos"
    };
    let hlos_src = hlos.unwrap_or_else(|| out.join(payload));
    let qemu = PathBuf::from("qemu-system-aarch64");
    let qemu = env::split_paths(&tool_path())
        .map(|d| d.join(&qemu))
        .find(|p| p.is_file())
        .ok_or("qemu-system-aarch64 not found (cargo xtask setup)")?;
    let h = boot_contract::Hlos {
        qemu: &qemu,
        board: &board,
        image: &hlos_src,
        dir: &out,
        smp,
        icount,
        bootargs: bootargs.as_deref(),
        initrd: initrd.as_deref(),
    };
    let mut cmd = with_tool_path(&mut || boot_contract::hlos_command(&h))?;
    eprintln!(
        "xtask: booting the board on QEMU virt as Gunyah's QEMU platform: board at EL2, \
         QEMU's DTB (ITS removed) at {:#x}, HLOS image {} at {:#x}, {smp} CPUs{}",
        boot_contract::DTB_ADDR,
        hlos_src.display(),
        boot_contract::HLOS_ADDR,
        if icount {
            ", -icount shift=0 for exact instruction counts"
        } else {
            ""
        }
    );
    cmd.env("PATH", tool_path())
        .stdin(std::process::Stdio::null());
    status("qemu-system-aarch64", &mut cmd)
}

/// Run `f` with xtask's PATH (the unpacked Debian tools first) for the commands it starts.
fn with_tool_path<T>(f: &mut dyn FnMut() -> Result<T, String>) -> Result<T, String> {
    let old = env::var_os("PATH");
    // xtask starts no threads, so changing its environment is fine; the old PATH comes back.
    env::set_var("PATH", tool_path());
    let r = f();
    match old {
        Some(p) => env::set_var("PATH", p),
        None => env::remove_var("PATH"),
    }
    r
}

/// Clippy with `-D warnings` over every aarch64-unknown-none build ([`EL2_CLIPPY`], the
/// libraries of [`NO_STD_BUILDS`]).
fn clippy_el2() -> Result<(), String> {
    rust_setup()?;
    let libs = NO_STD_BUILDS.iter().map(|f| {
        let mut v = f.to_vec();
        v.push("--lib");
        v
    });
    for flags in libs.chain(EL2_CLIPPY.iter().map(|f| f.to_vec())) {
        status(
            &format!("clippy {} for aarch64-unknown-none", flags[1..].join(" ")),
            cargo()
                .args(["clippy", "--quiet", "--target", "aarch64-unknown-none"])
                .args(&flags)
                .args(["--", "-D", "warnings"]),
        )?;
    }
    Ok(())
}

fn test_all() -> Result<(), String> {
    setup()?;
    // First, as it fails fast: lints the host clippy cannot see.
    clippy_el2()?;
    status(
        "cargo test --workspace",
        cargo().args(["test", "--workspace"]),
    )?;
    // The loom model of the concurrent fault path (rm/tests/loom_fault.rs): the RM's locks
    // become loom's under --cfg loom. Its own target directory, so this build does not
    // invalidate the normal one.
    status(
        "loom model of the concurrent fault path",
        cargo()
            .env("RUSTFLAGS", "--cfg loom")
            .env("CARGO_TARGET_DIR", root().join("target").join("loom"))
            .args([
                "test",
                "-p",
                "gunyah-rm",
                "--release",
                "--test",
                "loom_fault",
            ]),
    )?;
    // The message-based catalogue on the host simulator: one line per case, then
    // `N passed, M failed`; any failure fails the run. Then the runner's own tests
    // (cases with wrong expectations must fail).
    status(
        "catalogue on the host simulator",
        cargo().args([
            "run",
            "-p",
            "gunyah-rm-catalogue",
            "--features",
            "host",
            "--bin",
            "catalogue-host",
        ]),
    )?;
    // The same cases on a host target with only what the QEMU board has: checks that
    // every case a QEMU runner selects acts only through running vCPUs.
    status(
        "catalogue, the subset a QEMU target runs",
        cargo().args([
            "run",
            "-p",
            "gunyah-rm-catalogue",
            "--features",
            "host",
            "--bin",
            "catalogue-host",
            "--",
            "--qemu-like",
        ]),
    )?;
    status(
        "catalogue runner tests",
        cargo().args([
            "test",
            "-p",
            "gunyah-rm-catalogue",
            "--features",
            "host",
            "--test",
            "runner",
        ]),
    )?;
    for flags in NO_STD_BUILDS {
        status(
            &format!("build {} for aarch64-unknown-none", flags[1]),
            cargo()
                .args(["build", "--target", "aarch64-unknown-none"])
                .args(*flags),
        )?;
    }
    // Every fuzz target for a short time (fuzz/, nightly + cargo-fuzz, installed if missing).
    fuzz::run(&fuzz::Options::ci())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_projects_toolchain_file() {
        let text = std::fs::read_to_string(root().join("rust-toolchain.toml")).unwrap();
        let tc = parse_toolchain(&text).unwrap();
        assert_eq!(tc.channel, "1.95.0");
        assert!(tc.targets.contains(&"aarch64-unknown-none".to_string()));
        assert!(tc.components.contains(&"rust-src".to_string()));
    }

    #[test]
    fn a_toolchain_without_the_target_needs_it_added() {
        let wanted = vec!["aarch64-unknown-none".to_string()];
        // What `rustup target list --installed` prints on a machine with only the host target.
        assert_eq!(
            missing_from(&wanted, "x86_64-unknown-linux-gnu\n"),
            wanted,
            "setup would not add the missing target"
        );
        assert!(
            missing_from(&wanted, "aarch64-unknown-none\nx86_64-unknown-linux-gnu\n").is_empty()
        );
    }

    #[test]
    fn components_match_with_their_host_suffix() {
        let wanted: Vec<String> = ["rust-src", "llvm-tools", "clippy", "rustfmt"]
            .map(String::from)
            .to_vec();
        let listed = "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\n\
                      rust-std-x86_64-unknown-linux-gnu\nrustfmt-x86_64-unknown-linux-gnu\n";
        assert_eq!(missing_from(&wanted, listed), ["rust-src", "llvm-tools"]);
        let listed = format!("{listed}rust-src\nllvm-tools-x86_64-unknown-linux-gnu\n");
        assert!(missing_from(&wanted, &listed).is_empty());
        // `rust` is not `rust-src`, and `rust-std-...` does not satisfy `rust`.
        assert_eq!(
            missing_from(&["rust-src".into()], "rust-std-x86_64-unknown-linux-gnu"),
            ["rust-src"]
        );
    }

    #[test]
    fn apt_plans_list_installs_and_removals() {
        let plan = "NOTE: This is only a simulation!\n\
                    Remv qemu-utils [1:10.0.2+ds-2+deb13u1~bpo12+1]\n\
                    Inst libfdt1 (1.6.1-4+b1 Debian:12.15/oldstable [amd64])\n\
                    Inst qemu-system-arm (1:7.2+dfsg-7+deb12u18+b3 Debian:12.15/oldstable [amd64])\n\
                    Conf libfdt1 (1.6.1-4+b1 Debian:12.15/oldstable [amd64])\n";
        let (inst, remv) = parse_apt_plan(plan);
        assert_eq!(
            inst,
            [
                ("libfdt1".to_string(), "1.6.1-4+b1".to_string()),
                ("qemu-system-arm".into(), "1:7.2+dfsg-7+deb12u18+b3".into())
            ]
        );
        assert_eq!(remv, ["qemu-utils"]);
    }

    #[test]
    fn the_sysroot_check_sees_a_missing_target() {
        let dir = std::env::temp_dir().join(format!("xtask-sysroot-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("lib/rustlib/x86_64-unknown-linux-gnu/lib")).unwrap();
        assert!(!target_in_sysroot(&dir, "aarch64-unknown-none"));
        std::fs::create_dir_all(dir.join("lib/rustlib/aarch64-unknown-none/lib")).unwrap();
        assert!(target_in_sysroot(&dir, "aarch64-unknown-none"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn run_passes_the_boards_options_to_qemu_and_the_rest_to_the_simulator() {
        let args = strings(&[
            "--clones",
            "32",
            "--hlos",
            "my.img",
            "--hlos-bootargs",
            "console=ttyAMA0 panic=-1",
            "--hlos-initrd",
            "initrd.cpio",
            "--smp",
            "4",
            "--no-icount",
            "--write-percent",
            "2",
        ]);
        let (qemu, rest) = split_qemu_args(&args);
        assert_eq!(
            qemu,
            strings(&[
                "--hlos",
                "my.img",
                "--hlos-bootargs",
                "console=ttyAMA0 panic=-1",
                "--hlos-initrd",
                "initrd.cpio",
                "--smp",
                "4",
                "--no-icount"
            ])
        );
        assert_eq!(rest, strings(&["--clones", "32", "--write-percent", "2"]));
        assert_eq!(
            parse_qemu_options(&qemu),
            Ok(QemuOptions {
                hlos: Some(PathBuf::from("my.img")),
                bootargs: Some("console=ttyAMA0 panic=-1".into()),
                initrd: Some(PathBuf::from("initrd.cpio")),
                smp: 4,
                icount: false,
                catalogue: false,
                rpc_log: false,
            })
        );
    }

    #[test]
    fn qemu_options_default_to_the_contract_and_refuse_bad_ones() {
        assert_eq!(
            parse_qemu_options(&[]),
            Ok(QemuOptions {
                hlos: None,
                bootargs: None,
                initrd: None,
                smp: 8,
                icount: true,
                catalogue: false,
                rpc_log: false,
            })
        );
        assert!(parse_qemu_options(&strings(&["--catalogue"])).is_ok_and(|o| !o.icount));
        assert!(parse_qemu_options(&strings(&["--rpc-log"])).is_ok_and(|o| o.rpc_log && o.icount));
        assert_eq!(
            split_qemu_args(&strings(&["--rpc-log", "--clones", "2"])),
            (strings(&["--rpc-log"]), strings(&["--clones", "2"]))
        );
        for bad in [
            &["--hlos"][..],
            &["--hlos-bootargs"],
            &["--hlos-initrd"],
            &["--smp", "9"],
            &["--smp", "0"],
            &["--smp"],
            &["--smp", "two"],
            &["--hlso", "x"],
        ] {
            assert!(parse_qemu_options(&strings(bad)).is_err(), "{bad:?}");
        }
    }

    /// An aarch64 ELF64 executable with one PT_LOAD of `data` at `paddr`.
    fn elf(paddr: u64, data: &[u8]) -> Vec<u8> {
        let mut e = vec![0u8; 64 + 56];
        e[..8].copy_from_slice(&[0x7F, b'E', b'L', b'F', 2, 1, 1, 0]);
        e[0x10..0x12].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        e[0x12..0x14].copy_from_slice(&0xB7u16.to_le_bytes()); // EM_AARCH64
        e[0x14..0x18].copy_from_slice(&1u32.to_le_bytes());
        e[0x18..0x20].copy_from_slice(&paddr.to_le_bytes()); // entry
        e[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // phoff
        e[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
        e[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        e[0x38..0x3A].copy_from_slice(&1u16.to_le_bytes());
        let ph = 64;
        e[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        e[ph + 8..ph + 16].copy_from_slice(&120u64.to_le_bytes()); // offset
        e[ph + 16..ph + 24].copy_from_slice(&paddr.to_le_bytes());
        e[ph + 24..ph + 32].copy_from_slice(&paddr.to_le_bytes());
        let len = (data.len() as u64).to_le_bytes();
        e[ph + 32..ph + 40].copy_from_slice(&len);
        e[ph + 40..ph + 48].copy_from_slice(&len);
        e.extend_from_slice(data);
        e
    }

    #[test]
    fn an_hlos_elf_is_flattened_and_a_raw_image_goes_as_it_is() {
        let dir = env::temp_dir().join(format!("xtask-hlos-image-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let raw = dir.join("hlos-image.bin");
        // An ELF linked at 0x41000000: its segment's bytes, flattened.
        let linked = dir.join("linked.elf");
        std::fs::write(
            &linked,
            elf(boot_contract::HLOS_ADDR, b"\x1f\x20\x03\xd5payload"),
        )
        .unwrap();
        assert_eq!(boot_contract::hlos_image(&linked, &raw), Ok(raw.clone()));
        assert_eq!(std::fs::read(&raw).unwrap(), b"\x1f\x20\x03\xd5payload");
        // An ELF linked elsewhere is refused (QEMU's loader would put it at 0x41000000).
        let elsewhere = dir.join("elsewhere.elf");
        std::fs::write(&elsewhere, elf(0x4008_0000, b"payload!")).unwrap();
        let err = boot_contract::hlos_image(&elsewhere, &raw).unwrap_err();
        assert!(err.contains("must be linked at 0x41000000"), "{err}");
        // A raw image (a Linux Image starts with a branch, then its header) is used unchanged.
        let image = dir.join("Image");
        std::fs::write(&image, b"MZ\x00\x91raw image bytes").unwrap();
        assert_eq!(boot_contract::hlos_image(&image, &raw), Ok(image.clone()));
        // A tiny file, and a missing one.
        let tiny = dir.join("tiny");
        std::fs::write(&tiny, b"\x7f").unwrap();
        assert_eq!(boot_contract::hlos_image(&tiny, &raw), Ok(tiny.clone()));
        assert!(boot_contract::hlos_image(&dir.join("missing"), &raw).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
