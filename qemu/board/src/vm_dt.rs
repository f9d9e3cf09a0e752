//! The `/hypervisor` node the board adds to each VM's DT before it runs, as Gunyah's RM does
//! (spec sheet §C.4; for HLOS, `vm_dt_create_hlos` in quic/gunyah-resource-manager
//! `src/vm_dt/vm_dt.c`): the VM's identity (`qcom,gunyah-vm`) and its RM-RPC message-queue
//! pair (`qcom,resource-manager-rpc@<tx cap>`, `reg` = tx cap and rx cap as 64-bit cells,
//! `interrupts` = the tx and rx virtual interrupts, `qcom,free-irq-start`, queue sizes).
//!
//! What Linux's Gunyah drivers read from it at probe is checked on the host by
//! `tests/linux_dt.rs`.

use alloc::format;

use gunyah_rm::vm::{VMID_HLOS, VMID_RM};

use crate::fdt_edit::Subtree;

/// Capabilities of HLOS's RM-RPC queues (in its cspace; the board chooses them, as the
/// hypervisor does for the primary VM).
pub const HLOS_TX_CAP: u64 = 0x3_0001;
/// See [`HLOS_TX_CAP`].
pub const HLOS_RX_CAP: u64 = 0x3_0002;
/// HLOS's RM-RPC interrupts, tx then rx (SPI 960 and 961: above every device of QEMU virt).
pub const HLOS_VIRQS: (u32, u32) = (992, 993);
/// `qcom,free-irq-start` of the RM-RPC node: Gunyah's RM writes 960 for HLOS (`vm_dt.c`),
/// and Qualcomm's Linux RM driver (`gh_rm_drv_probe`) refuses a node without it.
pub const FREE_IRQ_START: u32 = 960;

/// A VM's RM-RPC link as its DT describes it.
pub struct RpcLink {
    /// Capability of the VM's queue to the RM.
    pub tx_cap: u64,
    /// Capability of the VM's queue from the RM.
    pub rx_cap: u64,
    /// INTID of the tx (not-full) interrupt.
    pub tx_virq: u32,
    /// INTID of the rx (not-empty) interrupt.
    pub rx_virq: u32,
    /// Queue depth.
    pub depth: u32,
    /// Message size.
    pub msg_size: u32,
}

/// A GIC interrupt specifier (3 cells) for SPI `intid`, rising edge.
fn spi(intid: u32) -> [u32; 3] {
    [0, intid.saturating_sub(32), 1]
}

/// HLOS's `/hypervisor` subtree: VMID 3, its queues [`HLOS_TX_CAP`] and [`HLOS_RX_CAP`]
/// with interrupts [`HLOS_VIRQS`], `depth` messages of `msg_size` bytes each way.
pub fn hlos_node(depth: u32, msg_size: u32) -> Subtree {
    let link = RpcLink {
        tx_cap: HLOS_TX_CAP,
        rx_cap: HLOS_RX_CAP,
        tx_virq: HLOS_VIRQS.0,
        rx_virq: HLOS_VIRQS.1,
        depth,
        msg_size,
    };
    hypervisor_node(VMID_HLOS, VMID_RM, true, &link)
}

/// HLOS's DT from the machine's (QEMU's own virt DT): `/hypervisor` added ([`hlos_node`])
/// and `/memory` cut to HLOS's RAM `ram` (base, size), as Gunyah's scripts make it (they
/// dump QEMU's DTB with `-m 1G`): Linux takes its RAM from `/memory`.
pub fn hlos_dt(
    machine_dt: &[u8],
    ram: (u64, u64),
    depth: u32,
    msg_size: u32,
) -> Result<alloc::vec::Vec<u8>, &'static str> {
    let mut dt = crate::fdt_edit::add_to_root(machine_dt, &hlos_node(depth, msg_size))?;
    crate::fdt_edit::set_memory_size(&mut dt, ram.0, ram.1)?;
    Ok(dt)
}

/// The `/hypervisor` subtree for `vmid` (owned by `owner`). HLOS's overlay omits the
/// "gunyah-hypervisor" compatible string and `qcom,owner-vmid`, as Gunyah's does
/// (`vm_dt_create_hlos`): the primary VM has no owner, and Qualcomm's Linux driver
/// (`gh_vm_probe`) takes a `qcom,owner-vmid` to mean it runs in a secondary VM.
pub fn hypervisor_node(vmid: u16, owner: u16, hlos: bool, link: &RpcLink) -> Subtree {
    let mut s = Subtree::default();
    let compat: &[&str] = if hlos {
        &[
            "qcom,gunyah-hypervisor-1.0",
            "qcom,gunyah-hypervisor",
            "simple-bus",
        ]
    } else {
        &[
            "gunyah-hypervisor",
            "qcom,gunyah-hypervisor-1.0",
            "qcom,gunyah-hypervisor",
            "simple-bus",
        ]
    };
    s.begin("hypervisor")
        .cells("#address-cells", &[2])
        .cells("#size-cells", &[0])
        .strings("compatible", compat);
    s.begin("qcom,gunyah-vm")
        .strings(
            "compatible",
            &["qcom,gunyah-vm-id-1.0", "qcom,gunyah-vm-id"],
        )
        .cells("qcom,vmid", &[vmid as u32]);
    if !hlos {
        s.cells("qcom,owner-vmid", &[owner as u32]);
    }
    s.strings("qcom,vendor", &["gunyah-rm"]).end();
    let [tx, rx] = [link.tx_cap, link.rx_cap];
    let (tv, rv) = (spi(link.tx_virq), spi(link.rx_virq));
    s.begin(&format!("qcom,resource-manager-rpc@{tx:x}"))
        .strings(
            "compatible",
            // Gunyah's RM's strings (`vm_dt.c`), which Qualcomm's Linux driver matches
            // ("qcom,resource-manager-1-0"), then the upstream Linux driver's
            // ("gunyah-resource-manager", `gunyah_rm_get_of_info`).
            &[
                "qcom,resource-manager-1-0",
                "qcom,resource-manager",
                "qcom,gunyah-message-queue",
                "qcom,gunyah-capability",
                "gunyah-resource-manager",
            ],
        )
        .cells(
            "reg",
            &[(tx >> 32) as u32, tx as u32, (rx >> 32) as u32, rx as u32],
        )
        .cells("interrupts", &[tv[0], tv[1], tv[2], rv[0], rv[1], rv[2]])
        .cells("qcom,free-irq-start", &[FREE_IRQ_START])
        .flag("qcom,is-full-duplex")
        .cells("qcom,tx-message-size", &[link.msg_size])
        .cells("qcom,rx-message-size", &[link.msg_size])
        .cells("qcom,tx-queue-depth", &[link.depth])
        .cells("qcom,rx-queue-depth", &[link.depth])
        .end();
    s.end();
    s
}
