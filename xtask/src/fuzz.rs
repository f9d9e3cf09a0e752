//! `cargo xtask fuzz [--seconds N] [TARGET...] [-- LIBFUZZER-ARGS]`: build the cargo-fuzz
//! targets of `fuzz/` and run each for N seconds (docs/FUZZING.md).
//!
//! cargo-fuzz needs a nightly toolchain: the first `nightly*` toolchain rustup lists is used
//! (one is installed with `rustup toolchain install nightly --profile minimal` when there is
//! none), and `cargo install cargo-fuzz --locked` runs when `cargo fuzz` is missing. The
//! `fuzz/` crate is not a member of the main workspace, so the stable build never sees it.
//!
//! Each run reads three corpus directories and writes new inputs into the first:
//! `fuzz/corpus/TARGET/` (kept between runs, not committed), the seeds the harness writes itself
//! into `target/fuzz/seeds/TARGET/` (from its own scenarios and every case of the catalogue;
//! for `vm_config` also every `.dts` of `vm-configs/` and `tests/configs/` compiled with dtc) and `fuzz/regressions/TARGET/` (committed inputs that once
//! crashed, replayed on every run). A crash fails the command; its input is in
//! `fuzz/artifacts/TARGET/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{output, root, status};

/// Every fuzz target, in the order they run.
pub const TARGETS: &[&str] = &["abi_decode", "rm_dispatch", "vm_config", "serve_transport"];

/// Seconds each target runs in `cargo xtask test`: all of them together stay under a minute.
pub const CI_SECONDS: u64 = 12;

/// What to fuzz and for how long.
#[derive(Debug, PartialEq)]
pub struct Options {
    /// Seconds per target.
    pub seconds: u64,
    /// Targets to run (all when empty on the command line).
    pub targets: Vec<String>,
    /// Extra libFuzzer arguments (after `--`), e.g. `-jobs=1`.
    pub libfuzzer: Vec<String>,
}

impl Options {
    /// The short run of `cargo xtask test`: every target for [`CI_SECONDS`].
    pub fn ci() -> Options {
        Options {
            seconds: CI_SECONDS,
            targets: TARGETS.iter().map(|t| t.to_string()).collect(),
            libfuzzer: Vec::new(),
        }
    }
}

/// Parse `[--seconds N] [TARGET...] [-- ARGS...]`.
pub fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options::ci();
    o.targets.clear();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                let v = it.next().ok_or("--seconds needs a number")?;
                o.seconds = v
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("--seconds {v:?}: not a positive number"))?;
            }
            "--" => {
                o.libfuzzer = it.by_ref().cloned().collect();
            }
            t if TARGETS.contains(&t) => o.targets.push(t.to_string()),
            other => {
                return Err(format!(
                    "unknown fuzz argument {other:?} (targets: {})",
                    TARGETS.join(", ")
                ))
            }
        }
    }
    if o.targets.is_empty() {
        o.targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    Ok(o)
}

/// The toolchain name in one line of `rustup toolchain list` (`nightly-x86_64-... (default)`).
fn toolchain_name(line: &str) -> &str {
    line.split_whitespace().next().unwrap_or("")
}

/// The first nightly toolchain in `rustup toolchain list` output.
pub fn find_nightly(list: &str) -> Option<String> {
    list.lines()
        .map(toolchain_name)
        .find(|n| n.starts_with("nightly"))
        .map(String::from)
}

fn nightly() -> Result<String, String> {
    if !crate::have("rustup") {
        return Err("cargo fuzz needs a nightly toolchain, installed with rustup".into());
    }
    let list = output(Command::new("rustup").args(["toolchain", "list"]))?;
    if let Some(n) = find_nightly(&list) {
        return Ok(n);
    }
    status(
        "rustup toolchain install nightly --profile minimal (cargo fuzz needs nightly)",
        Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--no-self-update",
        ]),
    )?;
    Ok("nightly".into())
}

/// `rustup run TOOLCHAIN cargo ...` from the project root, without the variables of the cargo
/// that runs xtask (they name the pinned stable toolchain's tools).
fn nightly_cargo(tc: &str) -> Command {
    let mut c = Command::new("rustup");
    c.args(["run", tc, "cargo"])
        .current_dir(root())
        .env("PATH", crate::tool_path());
    for v in [
        "CARGO",
        "RUSTC",
        "RUSTDOC",
        "RUSTUP_TOOLCHAIN",
        "RUSTC_WRAPPER",
    ] {
        c.env_remove(v);
    }
    c
}

fn ensure_cargo_fuzz(tc: &str) -> Result<(), String> {
    let works = nightly_cargo(tc)
        .args(["fuzz", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if works {
        return Ok(());
    }
    status(
        "cargo install cargo-fuzz --locked (from crates.io)",
        nightly_cargo(tc).args(["install", "cargo-fuzz", "--locked"]),
    )
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("fuzz")
}

/// The cargo-fuzz flags every build and run shares (so a run never rebuilds): release with
/// debug assertions (overflow checks), AddressSanitizer, our target directory.
fn common_flags(cmd: &mut Command) {
    cmd.args(["--fuzz-dir", "fuzz", "--debug-assertions", "--target-dir"])
        .arg(target_dir());
}

fn host_triple(tc: &str) -> Result<String, String> {
    let v = output(Command::new("rustup").args(["run", tc, "rustc", "-vV"]))?;
    v.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_string())
        .ok_or_else(|| "rustc -vV printed no host".into())
}

/// Write every target's seeds into fresh directories `target/fuzz/seeds/TARGET/`: a target
/// binary writes them all (see `gunyah_rm_fuzz::seeds`: the harness's own and the catalogue's);
/// `vm_config` also gets every config of the project, compiled with dtc.
fn seeds(tc: &str) -> Result<PathBuf, String> {
    let root_dir = target_dir().join("seeds");
    let _ = std::fs::remove_dir_all(&root_dir);
    let bin = target_dir()
        .join(host_triple(tc)?)
        .join("release")
        .join(TARGETS[0]);
    // The catalogue leaks its case names on purpose (`&'static str` built at run time): no leak
    // check for this one-off pass.
    status(
        "write the seeds of every target",
        Command::new(&bin)
            .env("GUNYAH_RM_FUZZ_SEEDS", &root_dir)
            .env("ASAN_OPTIONS", "detect_leaks=0"),
    )?;
    let dir = root_dir.join("vm_config");
    let mut set = Vec::new();
    for sub in ["vm-configs", "tests/configs"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(sub))
            .map_err(|e| format!("{sub}: {e}"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "dts"))
            .collect();
        files.sort();
        for f in files {
            let stem = f.file_stem().unwrap_or_default().to_string_lossy();
            let out = dir.join(format!("dts-{}-{stem}", sub.replace('/', "-")));
            let ok = Command::new("dtc")
                .env("PATH", crate::tool_path())
                .args(["-q", "-I", "dts", "-O", "dtb", "-o"])
                .arg(&out)
                .arg(&f)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                return Err(format!("dtc cannot compile {}", f.display()));
            }
            if sub == "vm-configs" {
                set.push(std::fs::read(&out).map_err(|e| e.to_string())?);
            }
        }
    }
    // All of vm-configs/ as one set: `u8 n` then `u16 len, blob` each.
    let mut blob = vec![set.len() as u8];
    for b in &set {
        blob.extend_from_slice(&(b.len() as u16).to_le_bytes());
        blob.extend_from_slice(b);
    }
    std::fs::write(dir.join("set-vm-configs"), blob).map_err(|e| e.to_string())?;
    Ok(root_dir)
}

/// Build every target, then run the chosen ones.
pub fn run(o: &Options) -> Result<(), String> {
    let tc = nightly()?;
    ensure_cargo_fuzz(&tc)?;
    let mut build = nightly_cargo(&tc);
    build.args(["fuzz", "build"]);
    common_flags(&mut build);
    status(
        &format!("cargo fuzz build ({tc}, release + debug assertions, AddressSanitizer)"),
        &mut build,
    )?;
    let seeds = seeds(&tc)?;
    for t in &o.targets {
        let seeds = seeds.join(t);
        let corpus = root().join("fuzz/corpus").join(t);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        let mut cmd = nightly_cargo(&tc);
        cmd.args(["fuzz", "run", t]);
        common_flags(&mut cmd);
        cmd.arg(&corpus).arg(&seeds);
        let regressions = root().join("fuzz/regressions").join(t);
        if regressions.is_dir() {
            cmd.arg(&regressions);
        }
        cmd.arg("--")
            .arg(format!("-max_total_time={}", o.seconds))
            .args(["-timeout=30", "-rss_limit_mb=4096", "-print_final_stats=1"])
            .args(&o.libfuzzer);
        status(&format!("fuzz {t} for {} s", o.seconds), &mut cmd).map_err(|e| {
            format!(
                "{e}: a crash's input is in {} (docs/FUZZING.md: reproduce, minimise, \
                 add a regression)",
                relative(&root().join("fuzz/artifacts").join(t))
            )
        })?;
    }
    Ok(())
}

fn relative(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_nightly_is_chosen() {
        let list = "stable-x86_64-unknown-linux-gnu (default)\n\
                    nightly-2026-05-15-x86_64-unknown-linux-gnu\n\
                    nightly-x86_64-unknown-linux-gnu (active)\n\
                    1.95.0-x86_64-unknown-linux-gnu\n";
        assert_eq!(
            find_nightly(list).as_deref(),
            Some("nightly-2026-05-15-x86_64-unknown-linux-gnu")
        );
        assert_eq!(find_nightly("1.95.0-x86_64-unknown-linux-gnu\n"), None);
    }

    #[test]
    fn arguments_choose_targets_seconds_and_libfuzzer_flags() {
        let args = |s: &str| -> Vec<String> { s.split_whitespace().map(String::from).collect() };
        assert_eq!(parse_args(&[]).unwrap(), Options::ci());
        let o = parse_args(&args("--seconds 600 rm_dispatch -- -jobs=1")).unwrap();
        assert_eq!(o.seconds, 600);
        assert_eq!(o.targets, ["rm_dispatch"]);
        assert_eq!(o.libfuzzer, ["-jobs=1"]);
        assert!(parse_args(&args("no_such_target")).is_err());
        assert!(parse_args(&args("--seconds 0")).is_err());
        assert!(parse_args(&args("--seconds")).is_err());
    }

    #[test]
    fn every_target_has_a_cargo_fuzz_bin_and_ci_stays_under_a_minute() {
        let manifest = std::fs::read_to_string(root().join("fuzz/Cargo.toml")).unwrap();
        for t in TARGETS {
            assert!(
                manifest.contains(&format!("name = \"{t}\"")),
                "fuzz/Cargo.toml has no bin {t}"
            );
        }
        assert!(CI_SECONDS * (TARGETS.len() as u64) < 60);
    }
}
