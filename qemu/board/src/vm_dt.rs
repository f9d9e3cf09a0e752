//! The `/hypervisor` node the board adds to each VM's DT before it runs, as Gunyah's RM does
//! (spec sheet §C.4): the VM's identity (`qcom,gunyah-vm`) and its RM-RPC message-queue pair
//! (`qcom,resource-manager-rpc@<tx cap>`, `reg` = tx cap and rx cap as 64-bit cells,
//! `interrupts` = the tx and rx virtual interrupts, queue sizes).

use alloc::format;

use crate::fdt_edit::Subtree;

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

/// The `/hypervisor` subtree for `vmid` (owned by `owner`). HLOS's overlay omits the
/// "gunyah-hypervisor" compatible string, as Gunyah's does.
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
        .cells("qcom,vmid", &[vmid as u32])
        .cells("qcom,owner-vmid", &[owner as u32])
        .strings("qcom,vendor", &["gunyah-rm"])
        .end();
    let [tx, rx] = [link.tx_cap, link.rx_cap];
    let (tv, rv) = (spi(link.tx_virq), spi(link.rx_virq));
    s.begin(&format!("qcom,resource-manager-rpc@{tx:x}"))
        .strings(
            "compatible",
            &[
                "qcom,resource-manager-1-0",
                "qcom,resource-manager",
                "gunyah-resource-manager",
            ],
        )
        .cells(
            "reg",
            &[(tx >> 32) as u32, tx as u32, (rx >> 32) as u32, rx as u32],
        )
        .cells("interrupts", &[tv[0], tv[1], tv[2], rv[0], rv[1], rv[2]])
        .flag("qcom,is-full-duplex")
        .cells("qcom,tx-message-size", &[link.msg_size])
        .cells("qcom,rx-message-size", &[link.msg_size])
        .cells("qcom,tx-queue-depth", &[link.depth])
        .cells("qcom,rx-queue-depth", &[link.depth])
        .end();
    s.end();
    s
}
