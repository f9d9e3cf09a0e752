//! The QEMU virt aarch64 board: a small EL2 stand-in for the Gunyah hypervisor that runs the
//! RM (`gunyah-rm`) beside it at EL2 over real stage-2 tables and real physical pages, and
//! EL1 test guests that speak RM RPC through Gunyah's SMCCC hypercalls (`hvc #0`,
//! msgqueue send/receive).
//!
//! The run (see `board.rs` and `qemu/README.md`): HLOS (VMID 3) asks VM_GET_VMID, checks
//! that bad hypercalls fail cleanly, allocates two VMs, fills a 2 MiB golden source in its
//! RAM, and through RPC seals it golden, shares the image's code with the VMs, gives each a
//! pool, a stack binding and a copy-on-write golden mapping, and launches them. Each clone
//! (stage 1 on) asks its VMID, probes isolation (injected aborts), reads the golden data,
//! writes golden pages (real stage-2 permission faults served by `Rm::handle_fault`) and reads
//! its data back. HLOS then tears everything down through RPC and EL2 checks that every page
//! came back. Exit status via semihosting: 0 = every check passed.
//!
//! Build for `aarch64-unknown-none`; on any other target this binary is a stub.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod board;
#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod dt;
#[cfg(target_os = "none")]
mod fdt_edit;
#[cfg(target_os = "none")]
mod gic;
#[cfg(target_os = "none")]
mod gunyah_hvc;
#[cfg(target_os = "none")]
mod heap;
#[cfg(target_os = "none")]
mod hypercalls;
#[cfg(target_os = "none")]
mod idregs;
#[cfg(target_os = "none")]
mod layout;
#[cfg(target_os = "none")]
mod percpu;
#[cfg(target_os = "none")]
mod platform;
#[cfg(target_os = "none")]
mod pmu;
#[cfg(target_os = "none")]
mod psci;
#[cfg(target_os = "none")]
mod rmcore;
#[cfg(target_os = "none")]
mod sched;
#[cfg(target_os = "none")]
mod sched_policy;
#[cfg(target_os = "none")]
mod sve;
#[cfg(all(target_os = "none", feature = "catalogue"))]
mod testchan;
#[cfg(target_os = "none")]
mod vcpu;
#[cfg(target_os = "none")]
mod vgic;
#[cfg(target_os = "none")]
mod vm_dt;
#[cfg(target_os = "none")]
mod vpmu;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "gunyah-qemu-board is a bare-metal image: build it with \
         `cargo build -p gunyah-qemu-board --target aarch64-unknown-none --release` \
         and run it under qemu-system-aarch64 (see qemu/README.md)"
    );
    std::process::exit(2);
}
