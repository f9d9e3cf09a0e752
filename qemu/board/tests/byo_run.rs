//! Bringing your own primary VM (qemu/README.md): the board booted with a payload given as a
//! file, through the code `cargo xtask qemu --hlos IMAGE` runs (`boot_contract::hlos_command`:
//! QEMU's DTB, the image as QEMU's loader takes it, the command line). The payload is the
//! project's own HLOS as a raw image (as a user would pass a Linux `Image`), without
//! `-icount` as `--no-icount` runs it; then images that must not boot. The time guards only
//! stop a hung QEMU; they are not performance thresholds.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

#[path = "../../boot_contract.rs"]
mod boot_contract;
#[path = "../../qemu_binary.rs"]
mod qemu_binary;
#[path = "../../qemu_test.rs"]
mod qemu_test;

use qemu_test::{build_bare_metal, run_for};

const SMP: u32 = 8;

/// The board and HLOS ELFs, built as `tests/qemu_run.rs` builds them (the same directory:
/// no second build).
fn build(package: &str) -> PathBuf {
    build_bare_metal("qemu-board", &["-p", package, "--release"]).join(package)
}

/// A directory of this test's own under the test target directory.
fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("byo")
        .join(name);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// Boot `image` as HLOS the way `cargo xtask qemu --hlos IMAGE --no-icount` does;
/// (exit status, None if QEMU was still running after `guard` and killed; output).
fn boot_image(
    image: &std::path::Path,
    dir: &std::path::Path,
    bootargs: Option<&str>,
    guard: u64,
) -> (Option<ExitStatus>, String) {
    let qemu = qemu_binary::qemu_system_aarch64();
    let board = build("gunyah-qemu-board");
    let cmd = boot_contract::hlos_command(&boot_contract::Hlos {
        qemu: &qemu,
        board: &board,
        image,
        dir,
        smp: SMP,
        icount: false,
        bootargs,
        initrd: None,
    })
    .expect("QEMU command");
    run_for(
        cmd,
        &dir.join("qemu-output.txt"),
        Duration::from_secs(guard),
    )
}

#[test]
fn the_projects_hlos_as_a_raw_image_boots_through_xtasks_path() {
    let dir = scratch("own");
    // The raw image `tests/qemu_run.rs` makes (objcopy -O binary of the ELF), as a file of
    // this test's own: the tests run at the same time.
    let raw = dir.join("gunyah-qemu-hlos.bin");
    let base = boot_contract::elf_to_raw(&build("gunyah-qemu-hlos"), &raw).expect("raw image");
    assert_eq!(base, boot_contract::HLOS_ADDR);
    // With a kernel command line, as `--hlos-bootargs` gives one: it is in the DTB QEMU
    // loads (the payload ignores it).
    let bootargs = "console=ttyAMA0 earlycon=pl011,0x9000000 panic=-1";
    let (status, output) = boot_image(&raw, &dir, Some(bootargs), 240);
    let dtb = dir.join(format!("virt-smp{SMP}.dtb"));
    let got = std::process::Command::new("fdtget")
        .arg(&dtb)
        .args(["/chosen", "bootargs"])
        .output()
        .expect("fdtget (device-tree-compiler)");
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), bootargs);
    let status = status.unwrap_or_else(|| panic!("QEMU hung:\n{output}"));
    assert!(status.success(), "board run failed ({status}):\n{output}");
    for line in [
        "qemu board: entering HLOS at 0x41000000 (EL1, x0 = DT)\n",
        "hlos: SMCCC 1.1; the vendor hypervisor's Call UID is Gunyah's \
         (c1d58fcd-a453-5fdb-9265-ce36673d5f14), as Linux checks\n",
        "hlos: RM RPC queues from the DT's /hypervisor node: tx cap 0x30001, rx cap 0x30002",
        "hlos: VM_GET_VMID: 3\n",
        "qemu board: HLOS powered the machine off (PSCI SYSTEM_OFF)\n",
        "qemu board: PASS\n",
    ] {
        assert!(output.contains(line), "missing {line:?} in:\n{output}");
    }
    // The raw image went to QEMU's loader as it is (a raw image is not rewritten).
    assert!(!dir.join("hlos-image.bin").exists());
}

#[test]
fn garbage_as_hlos_stops_its_vcpu_and_never_passes() {
    let dir = scratch("garbage");
    // 64 KiB of pseudo-random bytes: its first word is no instruction, the exception goes to
    // EL1's vector table at VBAR_EL1 (0 out of reset, device memory that cannot be executed):
    // a stage-2 instruction abort the board does not serve.
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let garbage: Vec<u8> = (0..65536)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let image = dir.join("garbage.bin");
    std::fs::write(&image, &garbage).expect("garbage image");
    // Nothing ends the run (the board does not power off when HLOS dies, as Gunyah would
    // not): the guard does, well before the good run's time.
    let (status, output) = boot_image(&image, &dir, None, 20);
    assert!(
        !status.is_some_and(|s| s.success()),
        "garbage passed ({status:?}):\n{output}"
    );
    assert!(
        output.contains("qemu board: entering HLOS at 0x41000000 (EL1, x0 = DT)\n"),
        "{output}"
    );
    assert!(
        output.contains("qemu board: VM 3 vCPU 0 stopped: a trap the board does not handle\n"),
        "{output}"
    );
    assert!(!output.contains("hlos: "), "{output}");
    assert!(!output.contains("qemu board: PASS"), "{output}");
}

#[test]
fn an_elf_linked_elsewhere_is_refused_before_qemu_starts() {
    // The board's own ELF is linked at its EL2 address, not 0x41000000: QEMU's loader would
    // put it at the wrong place, so `cargo xtask qemu --hlos` refuses it with a clear error.
    let dir = scratch("elsewhere");
    let board = build("gunyah-qemu-board");
    let err = boot_contract::hlos_command(&boot_contract::Hlos {
        qemu: &qemu_binary::qemu_system_aarch64(),
        board: &board,
        image: &board,
        dir: &dir,
        smp: SMP,
        icount: false,
        bootargs: None,
        initrd: None,
    })
    .map(|_| ())
    .unwrap_err();
    assert!(
        err.contains("; an HLOS image must be linked at 0x41000000"),
        "{err}"
    );
}

#[test]
fn an_initrd_is_loaded_below_the_dtb_and_named_in_chosen() {
    // As Gunyah's run-qemu.sh: loaded at HLOS_RAM_FS_BASE, `/chosen linux,initrd-start/-end`
    // in the DTB. Checked on the command and the DTB (no boot: the project's payload has no
    // use for an initrd; qemu/README.md boots Linux with one).
    let dir = scratch("initrd");
    let qemu = qemu_binary::qemu_system_aarch64();
    let board = build("gunyah-qemu-board");
    let raw = dir.join("gunyah-qemu-hlos.bin");
    boot_contract::elf_to_raw(&build("gunyah-qemu-hlos"), &raw).expect("raw image");
    let initrd = dir.join("initrd.cpio");
    std::fs::write(&initrd, vec![0u8; 0x1234]).expect("initrd");
    let h = |initrd| boot_contract::Hlos {
        qemu: &qemu,
        board: &board,
        image: &raw,
        dir: &dir,
        smp: SMP,
        icount: false,
        bootargs: None,
        initrd,
    };
    let cmd = boot_contract::hlos_command(&h(Some(&initrd))).expect("QEMU command");
    let loader = format!("loader,file={},addr=0x40800000", initrd.display());
    assert!(
        cmd.get_args().any(|a| a.to_string_lossy() == loader),
        "{cmd:?}"
    );
    let dtb = dir.join(format!("virt-smp{SMP}.dtb"));
    let prop = |name: &str| {
        let out = std::process::Command::new("fdtget")
            .args(["-t", "x"])
            .arg(&dtb)
            .args(["/chosen", name])
            .output()
            .expect("fdtget (device-tree-compiler)");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(prop("linux,initrd-start"), "0 40800000");
    assert_eq!(prop("linux,initrd-end"), "0 40801234");
    // One that would run into the DTB at 0x40f00000 is refused.
    std::fs::write(&initrd, vec![0u8; 0x70_0001]).expect("initrd");
    let err = boot_contract::hlos_command(&h(Some(&initrd)))
        .map(|_| ())
        .unwrap_err();
    assert!(
        err.contains("an initrd must fit in 0x40800000..0x40f00000"),
        "{err}"
    );
}
