//! Builds the board image for aarch64-unknown-none (in its own target directory) and runs it
//! under QEMU virt at EL2 with `-icount shift=0`: the run must exit 0 through semihosting and
//! print the summary lines below. The time guard only stops a hung QEMU; it is not a
//! performance threshold.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../qemu_binary.rs"]
mod qemu_binary;

fn build_image() -> PathBuf {
    let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("qemu-board");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "-p",
            "gunyah-qemu-board",
            "--target",
            "aarch64-unknown-none",
            "--release",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo");
    assert!(status.success(), "building the board image failed");
    target_dir.join("aarch64-unknown-none/release/gunyah-qemu-board")
}

/// Run QEMU on `image`; (exit status, output). Panics if it hangs.
fn run_qemu(image: &PathBuf) -> (std::process::ExitStatus, String) {
    let out_path = image.with_extension("qemu-output.txt");
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
            "-icount",
            "shift=0",
            "-kernel",
        ])
        .arg(image)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("qemu-system-aarch64 must be installed (cargo xtask setup)");
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
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("QEMU hung; output so far:\n{output}"));
    (status, output)
}

/// The number after `label` in `line`.
fn number_after(line: &str, label: &str) -> u64 {
    let rest = &line[line.find(label).expect(label) + label.len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().expect("a number")
}

#[test]
fn rm_serves_rpc_and_real_cow_faults_on_qemu() {
    let image = build_image();
    let (status, output) = run_qemu(&image);
    assert!(status.success(), "board run failed ({status}):\n{output}");
    for line in [
        "qemu board: HLOS got VMID 3 from VM_GET_VMID\n",
        "qemu board: HLOS's bad hypercalls (wrong cap, size or flags, unmapped or page-crossing \
         buffers, unknown call, malformed RPC, small receive buffer) got Gunyah error codes and \
         changed nothing\n",
        "qemu board: HLOS allocated VMs 128 and 129 with VM_ALLOC_VMID\n",
        "qemu board: HLOS sealed golden image 0 and mapped it copy-on-write into both VMs \
         through RPC\n",
        "qemu board: VMs 128 and 129 RUNNING (VM_CONFIG_IMAGE, VM_INIT, VM_START through RPC)\n",
        "qemu board: clone VM 128 got VMID 128 from VM_GET_VMID, read golden, wrote its copy, \
         read it back\n",
        "qemu board: clone VM 129 got VMID 129 from VM_GET_VMID, read golden, wrote its copy, \
         read it back\n",
        "qemu board: guests' FP/SIMD registers survived traps to EL2 (an RPC, CoW faults)\n",
        "qemu board: HLOS stopped, reset and deallocated both VMs, reclaimed the parcels, \
         released the golden image and reads its source again\n",
        "qemu board: PASS\n",
    ] {
        assert!(output.contains(line), "missing {line:?} in:\n{output}");
    }
    let summary = output
        .lines()
        .find(|l| l.starts_with("qemu board: summary: "))
        .unwrap_or_else(|| panic!("no summary:\n{output}"));
    assert!(
        summary.starts_with(
            "qemu board: summary: VMs [3, 128, 129]; golden pages 512; faults served 4; \
             CoW copies 4; COW_BROKEN to HLOS 4; aborts injected 7 (isolation \
             probes); isolation checker clean; after teardown 4 partition pages in use, all \
             HLOS's stage-2 tables;"
        ),
        "{summary}"
    );
    // With -icount the PMU counts: the figures are there and not zero.
    let counts = output
        .lines()
        .find(|l| l.starts_with("qemu board: EL2 instructions per CoW fault "))
        .unwrap_or_else(|| panic!("no instruction counts:\n{output}"));
    for label in ["which it splits: ", "next in that block: ", "copy at EL1: "] {
        assert!(number_after(counts, label) > 0, "{label}: {counts}");
    }
    println!("{output}");
}
