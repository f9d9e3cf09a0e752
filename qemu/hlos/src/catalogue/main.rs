//! `gunyah-qemu-hlos-catalogue`: the QEMU runner of the RM message-based catalogue
//! (`tests/catalogue`, issue 12/13). A primary-VM payload like `gunyah-qemu-hlos` (loaded
//! at 0x41000000, entered at EL1 with x0 = the DT), and the guest agent the VMs its cases
//! create run (the same image, staged into each VM's image parcel).
//!
//! * As HLOS (`runner.rs`): builds the catalogue and runs every case whose needs this
//!   target has through the board's real hypercalls: msgqueue send/receive on its own RM
//!   queues for HLOS, guest accesses with its own vCPU, and, for another VM, commands to
//!   that VM's agent over the board's test channel (board feature `catalogue`,
//!   `qemu/board/src/testchan.rs`), which also gives the RM's state digest, census and
//!   isolation check. One line per case, then `N passed, M failed, K skipped`; PSCI
//!   SYSTEM_OFF if every case passed (the board then checks isolation and leaks), else a
//!   semihosting exit with status 1.
//! * As a VM (`agent.rs`): takes commands from the channel (send this packet on your RM
//!   queue, give me the next packet you received, read or write this IPA) and answers.
//!
//! The RM places a catalogue VM's image where it likes (the cases do not set an address
//! layout), so `start.rs` runs the image wherever it was loaded.
//!
//! Build for `aarch64-unknown-none`; on any other target this binary is a stub.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod agent;
#[cfg(target_os = "none")]
mod chan;
#[cfg(target_os = "none")]
#[path = "../console.rs"]
mod console;
#[cfg(target_os = "none")]
#[path = "../dt.rs"]
#[allow(dead_code)]
mod dt;
#[cfg(target_os = "none")]
#[path = "../el1.rs"]
mod el1;
#[cfg(target_os = "none")]
#[path = "../gic.rs"]
#[allow(dead_code)]
mod gic;
#[cfg(target_os = "none")]
#[path = "../hvc.rs"]
#[allow(dead_code)]
mod hvc;
#[cfg(target_os = "none")]
mod runner;
#[cfg(target_os = "none")]
mod start;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "gunyah-qemu-hlos-catalogue is a bare-metal EL1 payload: build it with \
         `cargo build -p gunyah-qemu-hlos --target aarch64-unknown-none --release` and boot \
         it on the QEMU board built with `--features catalogue` (see qemu/README.md)"
    );
    std::process::exit(2);
}
