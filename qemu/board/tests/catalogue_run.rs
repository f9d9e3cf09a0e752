//! The RM message-based catalogue (`tests/catalogue`) in QEMU: builds the board with its
//! test channel (feature `catalogue`) and the catalogue runner payload
//! (`gunyah-qemu-hlos-catalogue`), boots them as Gunyah is booted on QEMU
//! (`boot_contract.rs`) and reads the runner's lines: one per case, then `N passed, M
//! failed, K skipped`.
//!
//! It fails on any failed case, if the run did not end with the board's own checks passing
//! (isolation checker, no leaked partition page), if the cases QEMU ran are not exactly
//! those the QEMU-like host target runs (`Host::qemu_like`: the same cases on the
//! simulator with only what the board has), and if fewer golden/CoW or authorization cases
//! ran than the floors below. The time guard only stops a hung QEMU; it is not a
//! performance threshold.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gunyah_rm_catalogue::host::Host;
use gunyah_rm_catalogue::{catalogue, run_all, Select, Tag};

#[path = "../../boot_contract.rs"]
mod boot_contract;
#[path = "../../qemu_binary.rs"]
mod qemu_binary;
#[path = "../../qemu_test.rs"]
mod qemu_test;

use qemu_test::{build_bare_metal, run_to_exit};

/// Every CPU of the command line (`-smp 8`): the cases' VMs run on several physical
/// CPUs under multi-threaded TCG (no -icount), so the board's locks are contended for real.
const SMP: u32 = 8;
/// At least this many golden or copy-on-write cases, and authorization cases, must pass in
/// QEMU (what the catalogue had when the runner landed: a change that skips more of them
/// in QEMU must say so here).
const MIN_GOLDEN_COW: usize = 33;
const MIN_AUTHORIZATION: usize = 205;

/// The board with the test channel, the raw runner image.
fn artifacts() -> (PathBuf, PathBuf) {
    // Built in the board's QEMU test directory (its dependencies are shared); the board
    // with the channel is copied aside at once, since the same path holds the board without.
    let dir = build_bare_metal(
        "qemu-board",
        &[
            "-p",
            "gunyah-qemu-board",
            "--features",
            "catalogue",
            "--release",
        ],
    );
    let board = dir.join("gunyah-qemu-board-catalogue");
    std::fs::copy(dir.join("gunyah-qemu-board"), &board).expect("copy the board");
    let dir = build_bare_metal(
        "qemu-board",
        &[
            "-p",
            "gunyah-qemu-hlos",
            "--bin",
            "gunyah-qemu-hlos-catalogue",
            "--release",
        ],
    );
    let elf = dir.join("gunyah-qemu-hlos-catalogue");
    let raw = elf.with_extension("bin");
    let base = boot_contract::elf_to_raw(&elf, &raw).expect("runner image");
    assert_eq!(base, boot_contract::HLOS_ADDR, "linked at 0x41000000");
    (board, raw)
}

fn boot(board: &Path, dtb: &Path, hlos: &Path) -> (std::process::ExitStatus, String) {
    let qemu = boot_contract::qemu_command(
        &qemu_binary::qemu_system_aarch64(),
        board,
        dtb,
        hlos,
        SMP,
        false,
    );
    let out = dtb.with_extension("catalogue-output.txt");
    run_to_exit(qemu, &out, Duration::from_secs(1500))
}

/// Names of the cases a runner's lines say passed, failed and were skipped, and its totals
/// line.
fn outcomes(lines: &[String]) -> (BTreeSet<String>, Vec<String>, BTreeSet<String>, String) {
    let (mut ok, mut failed, mut skipped) = (BTreeSet::new(), Vec::new(), BTreeSet::new());
    let mut total = String::new();
    for l in lines {
        if let Some(n) = l.strip_prefix("ok      ") {
            // `ok      name` or `ok      name (as: how this target checks it)`.
            ok.insert(n.split(' ').next().unwrap_or_default().to_string());
        } else if l.starts_with("FAILED  ") {
            failed.push(l.clone());
        } else if let Some(n) = l.strip_prefix("skipped ") {
            skipped.insert(n.split(' ').next().unwrap_or_default().to_string());
        } else if l.contains(" passed, ") && l.ends_with(" skipped") {
            total = l.clone();
        }
    }
    (ok, failed, skipped, total)
}

#[test]
fn the_catalogue_runs_in_qemu_through_the_boards_hypercalls() {
    let (board, hlos) = artifacts();
    let dtb = board.with_file_name(format!("virt-smp{SMP}.dtb"));
    boot_contract::machine_dtb(&qemu_binary::qemu_system_aarch64(), &dtb, SMP)
        .expect("QEMU's virt DTB");
    let (status, output) = boot(&board, &dtb, &hlos);
    println!("{output}");
    let lines: Vec<String> = output.lines().map(str::to_string).collect();
    let (ok, failed, skipped, total) = outcomes(&lines);
    assert!(
        failed.is_empty(),
        "cases failed in QEMU:\n{}",
        failed.join("\n")
    );
    assert!(status.success(), "the run failed ({status}):\n{output}");
    assert!(output.contains("qemu board: PASS\n"), "{output}");
    assert!(
        output.contains(&format!(
            "qemu board: {SMP} physical CPUs up (PSCI CPU_ON through SMC)\n"
        )),
        "{output}"
    );
    assert_eq!(
        total,
        format!("{} passed, 0 failed, {} skipped", ok.len(), skipped.len()),
        "totals"
    );

    // The same cases on the QEMU-like host target: QEMU must run exactly those.
    let cases = catalogue();
    let mut host_lines = Vec::new();
    run_all(
        &mut Host::qemu_like(),
        &cases,
        &Select::default(),
        &mut |l| host_lines.push(l.to_string()),
    );
    let (host_ok, host_failed, host_skipped, _) = outcomes(&host_lines);
    assert!(host_failed.is_empty(), "{host_failed:?}");
    assert_eq!(
        ok.symmetric_difference(&host_ok).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "cases QEMU ran differ from those the QEMU-like host target runs"
    );
    assert_eq!(skipped, host_skipped);

    let ran = |tags: &[Tag]| {
        cases
            .iter()
            .filter(|c| ok.contains(c.name) && c.tags.iter().any(|t| tags.contains(t)))
            .count()
    };
    let golden_cow = ran(&[Tag::Golden, Tag::Cow]);
    let auth = ran(&[Tag::Authorization]);
    println!(
        "catalogue in QEMU: {total}; golden/CoW cases passed {golden_cow}, authorization cases \
         passed {auth}"
    );
    assert!(
        golden_cow >= MIN_GOLDEN_COW,
        "golden/CoW cases: {golden_cow}"
    );
    assert!(auth >= MIN_AUTHORIZATION, "authorization cases: {auth}");
}
