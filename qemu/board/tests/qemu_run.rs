//! Builds the board and the HLOS payload for aarch64-unknown-none (in their own target
//! directory) and boots them as Gunyah is booted on QEMU (`boot_contract.rs`: QEMU's own
//! virt DTB without the ITS at 0x40F00000, the raw HLOS image at 0x41000000, `-smp 8
//! -m 2G`), with `-icount shift=0`: the run must exit 0 through semihosting and print the
//! lines below. The time guard only stops a hung QEMU; it is not a performance threshold.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[path = "../../boot_contract.rs"]
mod boot_contract;
#[path = "../../qemu_binary.rs"]
mod qemu_binary;
#[path = "../../qemu_test.rs"]
mod qemu_test;

use qemu_test::{build_bare_metal, run_to_exit};

const SMP: u32 = 8;

fn build(package: &str) -> PathBuf {
    build_bare_metal("qemu-board", &["-p", package, "--release"]).join(package)
}

/// The board and the raw HLOS image, ready to boot.
fn artifacts() -> (PathBuf, PathBuf) {
    let board = build("gunyah-qemu-board");
    let hlos_elf = build("gunyah-qemu-hlos");
    let hlos = hlos_elf.with_extension("bin");
    let base = boot_contract::elf_to_raw(&hlos_elf, &hlos).expect("HLOS image");
    assert_eq!(
        base,
        boot_contract::HLOS_ADDR,
        "HLOS must be linked at 0x41000000"
    );
    (board, hlos)
}

/// Boot; (exit status, output). Panics if it hangs.
fn boot(board: &Path, dtb: &Path, hlos: &Path) -> (std::process::ExitStatus, String) {
    let qemu = boot_contract::qemu_command(
        &qemu_binary::qemu_system_aarch64(),
        board,
        dtb,
        hlos,
        SMP,
        true,
    );
    // One output file per DTB: the tests boot in parallel.
    let out = dtb.with_extension("qemu-output.txt");
    run_to_exit(qemu, &out, Duration::from_secs(300))
}

/// The number after `label` in `line`.
fn number_after(line: &str, label: &str) -> u64 {
    let rest = &line[line.find(label).expect(label) + label.len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().expect("a number")
}

#[test]
fn hlos_payload_boots_by_gunyahs_contract_and_drives_vms_through_rpc() {
    let (board, hlos) = artifacts();
    let dtb = board.with_file_name(format!("virt-smp{SMP}.dtb"));
    boot_contract::machine_dtb(&qemu_binary::qemu_system_aarch64(), &dtb, SMP)
        .expect("QEMU's virt DTB");
    let (status, output) = boot(&board, &dtb, &hlos);
    assert!(status.success(), "board run failed ({status}):\n{output}");
    for line in [
        "qemu board: QEMU's DT at 0x40f00000: 8 CPUs, RAM to 0xc0000000\n",
        "qemu board: 8 physical CPUs up (PSCI CPU_ON through SMC)\n",
        "qemu board: entering HLOS at 0x41000000 (EL1, x0 = DT)\n",
        // As Linux finds Gunyah before its RM driver reads the DT (`arch_is_gunyah_guest`).
        "hlos: SMCCC 1.1; the vendor hypervisor's Call UID is Gunyah's \
         (c1d58fcd-a453-5fdb-9265-ce36673d5f14), as Linux checks\n",
        "hlos: the device region below RAM is HLOS's: QEMU's flash at 0x4000000 reads\n",
        "hlos: RM RPC queues from the DT's /hypervisor node: tx cap 0x30001, rx cap 0x30002",
        "hlos: VM_GET_VMID: 3\n",
        "hlos: bad hypercalls (wrong cap, size or flags, unmapped or page-crossing buffers, \
         unknown call, malformed RPC, small receive buffer) got Gunyah error codes and changed \
         nothing; FP/SIMD registers survived a trap\n",
        // Every wait there is a WFI with IRQs masked (checked): it ends all the same.
        "hlos: a packet the RM puts in HLOS's receive queue raises its interrupt (SPI 993, \
         taken through the virtual GIC, ending its WFI with IRQs masked, PSTATE.I set) while \
         it holds packets; 12 requests sent before receiving get 12 replies in order\n",
        "hlos: VM_ALLOC_VMID: VMs 128 and 129 (clones), 130 (attacker), [131, 132, 133] \
         (racers), 134 (spinner)\n",
        "hlos: sealed golden image 0 (2 MiB of HLOS RAM); reading the source now aborts\n",
        "hlos: VM 128 got VMID 128 from VM_GET_VMID over the queues in its DT, accepted its \
         mailbox, read golden, wrote its copy, read it back\n",
        "hlos: VM 129 got VMID 129 from VM_GET_VMID over the queues in its DT, accepted its \
         mailbox, read golden, wrote its copy, read it back\n",
        "hlos: racers [131, 132, 133]: two vCPUs each (PSCI CPU_ON), on different physical \
         CPUs, wrote the same 8 golden pages at once; each sees both its vCPUs' words and the \
         golden data around them\n",
        // Scheduler priority from the VM config: the spinner's two vCPUs, one priority below
        // HLOS on its CPU, never run while HLOS computes, and both run while it sleeps.
        "hlos: spinner VM 134: two vCPUs loop without trapping on HLOS's physical CPU, one \
         priority below HLOS (affinity-map <0 0>, sched-priority -1, sched-timeslice 3000 in \
         its VM config): while HLOS slept 10 ms both ran (counted ",
        "; while HLOS computed 5 ms without trapping neither ran\n",
        // vGIC priorities and the guest's priority mask.
        "hlos: virtual interrupt priorities: with its receive SPI 993 at priority 0x40 and the \
         virtual timer's PPI 27 at 0x80 (IPRIORITYR, read back) both pending and the priority \
         mask at 0x60, HLOS took the SPI and not the timer's interrupt; with the mask open, \
         the timer's\n",
        "hlos: clones' FP/SIMD registers survived traps to EL2 (CoW faults)\n",
        // SVE switched per vCPU at 128 bits (`board/src/sve.rs`, `hlos/src/sve.rs`).
        "hlos: SVE at 128 bits: the predicates and FFR of HLOS and of every VM that reported \
         (clones, attacker, racers, the vm-configs VMs) started zero and kept their own values \
         to the end, through traps to EL2 and the spinner's vCPUs on HLOS's CPU\n",
        "hlos: attacker VM 130: 8 attacks stopped (a write to a read-only golden page, reads of \
         HLOS's and EL2's memory, MEM_ACCEPT of VM 128's mailbox, VM_STOP of VM 128, \
         GOLDEN_MAP of an image it does not own, VM_ALLOC_VMID, a capability from another \
         cspace, malformed fragments, the PMU and debug registers); the golden page is \
         unchanged\n",
        "hlos: stopped (the spinner too: VM_STOP took it off its CPU), reset and deallocated \
         the seven VMs, reclaimed the parcels, released the golden image; its source reads back \
         unchanged\n",
        "qemu board: HLOS powered the machine off (PSCI SYSTEM_OFF)\n",
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
            "qemu board: summary: physical CPUs 8; VMs started 13; faults served 292; CoW \
             copies 290; faults found already served "
        ),
        "{summary}"
    );
    let rest = &summary[summary.find("; aborts injected").expect("aborts")..];
    assert!(
        rest.starts_with(
            "; aborts injected 10; vCPUs stopped by the board 0; VMs left []; partition pages \
             in use 17 (17 stage-2 tables); isolation checker clean; virtual interrupts raised "
        ),
        "{summary}"
    );
    // Stage-2 faults go to the RM without the board's lock, on its concurrent path: every
    // served fault was served there, and the racers' (two vCPUs each, on different physical
    // CPUs, writing the same golden pages at once) came from several CPUs.
    let conc = output
        .lines()
        .find(|l| l.starts_with("qemu board: faults served on the concurrent path "))
        .unwrap_or_else(|| panic!("no concurrent-path line:\n{output}"));
    assert_eq!(
        number_after(conc, "no board lock) "),
        number_after(summary, "faults served "),
        "{conc}"
    );
    let mut racer_cpus = std::collections::BTreeSet::new();
    for racer in [131, 132, 133] {
        // Its first run (the VM-config scene reuses the VMID later).
        let label = format!("VM {racer} run ");
        let run = &conc[conc
            .find(&label)
            .unwrap_or_else(|| panic!("{label}: {conc}"))..];
        let run = &run[..run.find(']').expect("CPU list") + 1];
        let after_run = &run[label.len()..];
        let n = number_after(after_run, " ");
        assert_eq!(n, 8, "racer {racer}: one copy per race page: {run}");
        let cpus = &run[run.find('[').expect("CPUs") + 1..run.len() - 1];
        racer_cpus.extend(cpus.split(", ").map(|c| c.parse::<u32>().expect("a CPU")));
    }
    assert!(racer_cpus.len() >= 2, "{racer_cpus:?}: {conc}");
    // The spinners' vCPUs used up their slices and the tick gave the CPU to the other.
    assert!(
        number_after(summary, "preemptions by the tick ") > 0,
        "{summary}"
    );
    // HLOS (priority 32) took its CPU from the spinners (31) whenever it woke; the spinners'
    // timeslice of 3000 us from their config is 3 ticks of 1 ms, and they used such slices
    // up (HLOS's default 5 ms is 5 ticks).
    let sched = output
        .lines()
        .find(|l| l.starts_with("qemu board: scheduler: "))
        .unwrap_or_else(|| panic!("no scheduler line:\n{output}"));
    assert!(
        number_after(sched, "preemptions by a higher priority ") > 0,
        "{sched}"
    );
    assert_eq!(
        number_after(sched, "by the tick at the end of a slice "),
        number_after(summary, "preemptions by the tick "),
        "{sched}"
    );
    assert!(number_after(sched, "3 ticks: ") > 0, "{sched}");
    assert!(number_after(sched, "5 ticks: ") > 0, "{sched}");
    assert!(
        number_after(summary, "virtual interrupts raised ") > 0,
        "{summary}"
    );
    // Every copy reported to HLOS, batched: fewer COW_BROKEN notifications than copies (the
    // board does not send one per fault), and at least one per VM that copied (the two clones
    // and three racers: a batch is per VM).
    let hlos = output
        .lines()
        .find(|l| l.starts_with("hlos: summary: "))
        .unwrap_or_else(|| panic!("no HLOS summary:\n{output}"));
    assert!(
        hlos.starts_with(
            "hlos: summary: VMs launched 7; golden pages 512; CoW copies 28; COW_BROKEN to HLOS \
             28 IPAs in "
        ),
        "{hlos}"
    );
    let notifications = number_after(hlos, "28 IPAs in ");
    assert!((5..28).contains(&notifications), "{hlos}");
    assert!(
        hlos.ends_with(
            " notifications; FAULT_UNSERVED to HLOS 8; isolation probes stopped 4; attacks \
             stopped 9 (the attacker's 8, the spinner's endless loop)"
        ),
        "{hlos}"
    );
    // With -icount the PMU counts: the figures are there and not zero.
    let counts = output
        .lines()
        .find(|l| l.starts_with("hlos: EL2 instructions per CoW fault "))
        .unwrap_or_else(|| panic!("no instruction counts:\n{output}"));
    for label in ["which it splits: ", "next in that block: ", "copy at EL1: "] {
        assert!(number_after(counts, label) > 0, "{label}: {counts}");
    }
    vm_configs(&output);
    println!("{output}");
}

/// The Android-like set of `vm-configs/` HLOS launched through RPC (`hlos/src/configs.rs`),
/// the board applying each config at VM_INIT: what each VM did, and a summary whose figures
/// must add up.
fn vm_configs(output: &str) {
    for line in [
        "hlos: vm-configs: trusted-vm is VM 0x2d (the fixed VMID of its config), 1 vCPU, its 32 \
         MiB populated at VM_INIT read and written; past them its accesses abort\n",
        "hlos: vm-configs: zygote VM 128 (2 vCPUs from its config) filled its RAM and reported OS \
         status RUN: the RM sealed its first 1024 pages into zygote-golden and mapped them back \
         copy-on-write; its own write after the seal copied a page\n",
        "hlos: vm-configs: app-clone-0 launched twice (VMs 129 and 130): each read zygote-golden \
         at 0x80000000 as sealed and wrote two of its pages (stage-2 CoW faults into its own \
         gmem)\n",
        // Quota 256, stop-vm: stopped at its 257th copy, HLOS told as on the host simulator
        // (and the board did not hang in the scheduler, issue 12).
        "hlos: vm-configs: app-clone-1 (VM 131) copied its quota of 256 pages; its next write \
         was not served: the RM stopped it (fault-action stop-vm, EXITED) and told HLOS \
         QUOTA_EXHAUSTED and FAULT_UNSERVED (quota exhausted, VM stopped) for IPA 0x80100000\n",
        "hlos: vm-configs: protected-vm (VM 132) naming another digest than zygote-golden's: \
         VM_INIT refused it (VALIDATE_FAILED); reset, deallocated, nothing left\n",
        "hlos: vm-configs: protected-vm with zygote-golden's digest (VM 132) runs: read the \
         image, copied one page\n",
        "hlos: vm-configs: stopped, reset and deallocated the six VMs, reclaimed their parcels; \
         the RM released zygote-golden with the last VM that mapped it\n",
    ] {
        assert!(output.contains(line), "missing {line:?} in:\n{output}");
    }
    let summary = output
        .lines()
        .find(|l| l.starts_with("hlos: vm-configs: summary: "))
        .unwrap_or_else(|| panic!("no vm-configs summary:\n{output}"));
    let n = |label: &str| number_after(summary, label);
    assert_eq!(n("VMs launched "), 6, "{summary}");
    assert_eq!(n("launches refused "), 1, "{summary}");
    assert_eq!(n("attacks stopped "), 2, "{summary}");
    let image = n("golden image zygote-golden ");
    assert_eq!(image, 1024, "{summary}");
    // Zygote 1, two app clones 2 each, app-clone-1 its quota of 256, the protected VM 1.
    let (shared, copied, by) = (n("golden pages shared "), n("pages copied "), n(" by "));
    assert_eq!((copied, by), (262, 5), "{summary}");
    // Every VM maps the whole image: what it did not copy it shares.
    assert_eq!(shared, by * image - copied, "{summary}");
    // Without sharing each VM would hold the image: one image plus the copies exist instead.
    assert_eq!(n("memory saved "), (shared - image) * 4, "{summary}");
    let counts = output
        .lines()
        .find(|l| l.starts_with("hlos: vm-configs: EL2 instructions per CoW fault "))
        .unwrap_or_else(|| panic!("no vm-configs instruction counts:\n{output}"));
    for label in ["which it splits: ", "next in that block: ", "copy at EL1: "] {
        assert!(number_after(counts, label) > 0, "{label}: {counts}");
    }
}

#[test]
fn the_board_refuses_a_machine_without_2_gib() {
    // The board checks the DT it is given: a 1 GiB machine is not Gunyah's QEMU platform.
    let (board, hlos) = artifacts();
    let dtb = board.with_file_name("virt-1g.dtb");
    let qemu = qemu_binary::qemu_system_aarch64();
    let _ = std::fs::remove_file(&dtb);
    let out = Command::new(&qemu)
        .arg("-machine")
        .arg(format!(
            "{},dumpdtb={}",
            boot_contract::MACHINE,
            dtb.display()
        ))
        .args(["-cpu", "max", "-m", "1G", "-nographic", "-nic", "none"])
        .output()
        .expect("qemu");
    assert!(out.status.success() || dtb.exists(), "dumpdtb failed");
    let (status, output) = boot(&board, &dtb, &hlos);
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(
        output.contains(
            "qemu board: FAIL: RAM ends at 0x80000000: the board needs \
             0x40000000..0xc0000000 (QEMU -m 2G)"
        ),
        "{output}"
    );
}
