//! The board's primary VM: a bare-metal EL1 payload for Gunyah on QEMU (DESIGN.md "Running
//! it", spec sheet §B.2–B.4, §C.4), and the guest agent it runs in the VMs it launches.
//!
//! QEMU loads it at 0x41000000; the hypervisor enters it at EL1 with x0 = the DT, whose
//! `/hypervisor/qcom,resource-manager-rpc@<tx cap>` node gives the RM-RPC message queues
//! (`reg` = tx cap, rx cap). Everything it does to VMs goes through RM RPC on those queues
//! (`rpc.rs`). The same image runs in each clone VM: HLOS copies itself into the VM's image
//! parcel, and a VM whose DT names another VMID than HLOS's runs the agent (`agent.rs`).
//! HLOS's scene is in `hlos.rs`; it ends with PSCI SYSTEM_OFF after every check passed, or
//! with a semihosting exit status 1 on the first failed one.
//!
//! Build for `aarch64-unknown-none`; on any other target this binary is a stub.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
mod agent;
#[cfg(target_os = "none")]
mod attacker;
#[cfg(target_os = "none")]
mod config_agent;
#[cfg(target_os = "none")]
mod configs;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod dt;
#[cfg(target_os = "none")]
mod el1;
#[cfg(target_os = "none")]
mod gic;
#[cfg(target_os = "none")]
mod hlos;
#[cfg(target_os = "none")]
mod hvc;
#[cfg(target_os = "none")]
mod layout;
#[cfg(target_os = "none")]
mod mailbox;
#[cfg(target_os = "none")]
mod pattern;
#[cfg(target_os = "none")]
mod rpc;
#[cfg(target_os = "none")]
mod start;
#[cfg(target_os = "none")]
mod sve;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "gunyah-qemu-hlos is a bare-metal EL1 payload: build it with \
         `cargo build -p gunyah-qemu-hlos --target aarch64-unknown-none --release` \
         and boot it on the QEMU board (see qemu/README.md)"
    );
    std::process::exit(2);
}
