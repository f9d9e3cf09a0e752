//! What the payload reads from the DT the hypervisor entered it with: its RM-RPC queues
//! (the child of `/hypervisor` compatible with "gunyah-resource-manager" or
//! "qcom,resource-manager-1-0", found by compatible as Linux's drivers find it, whatever its
//! name: Gunyah's RM calls it `qcom,resource-manager-rpc@<tx cap>` for HLOS and
//! `qcom,resource-mgr@<rx cap>` for other VMs; `reg` = tx cap, rx cap as 64-bit cells,
//! `interrupts` = tx, rx), its VMID (`/hypervisor/qcom,gunyah-vm`) and the PL011
//! (`arm,pl011`).

/// What the DT says.
pub struct DtInfo {
    /// Capability of the queue to the RM.
    pub tx_cap: u64,
    /// Capability of the queue from the RM.
    pub rx_cap: u64,
    /// INTID of the receive queue's interrupt (the second of the node's `interrupts`, an
    /// SPI), if it has one.
    pub rx_virq: Option<u32>,
    /// `qcom,vmid` of `/hypervisor/qcom,gunyah-vm`, if present.
    pub vmid: Option<u16>,
    /// The PL011's data register, if the DT has one.
    pub uart: Option<u64>,
    /// The DT's address and size.
    pub dt: (u64, u64),
}

fn be_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

fn be_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

/// Read the DT at `addr`; a DT without the RM-RPC node ends the run (nothing can be done
/// without the RM).
pub fn read(addr: u64) -> DtInfo {
    // SAFETY: the hypervisor handed us a DT at `addr` in our RAM; the header's totalsize
    // (read first, at most 1 MiB) bounds what we look at.
    let size = unsafe {
        let hdr = core::slice::from_raw_parts(addr as *const u8, 8);
        be_u32(&hdr[4..8]).unwrap_or(0).min(1 << 20) as usize
    };
    // SAFETY: as above.
    let blob = unsafe { core::slice::from_raw_parts(addr as *const u8, size) };
    let Ok(fdt) = fdt::Fdt::new(blob) else {
        fatal("the DT in x0 is not a device tree");
    };
    let mut tx_rx = None;
    let mut rx_virq = None;
    let mut vmid = None;
    if let Some(hyp) = fdt.find_node("/hypervisor") {
        for node in hyp.children() {
            let rm = node.compatible().is_some_and(|c| {
                c.all()
                    .any(|s| s == "gunyah-resource-manager" || s == "qcom,resource-manager-1-0")
            });
            if rm {
                let reg = node.property("reg").map(|p| p.value);
                tx_rx = reg.and_then(|r| Some((be_u64(r)?, be_u64(r.get(8..)?)?)));
                // Two GIC specifiers <type number flags>: tx, rx; type 0 is an SPI.
                let irq = node.property("interrupts").map(|p| p.value);
                rx_virq = irq.and_then(|v| {
                    let (ty, n) = (be_u32(v.get(12..)?)?, be_u32(v.get(16..)?)?);
                    (ty == 0).then_some(n + 32)
                });
            }
            if node.name == "qcom,gunyah-vm" {
                vmid = node
                    .property("qcom,vmid")
                    .and_then(|p| be_u32(p.value))
                    .map(|v| v as u16);
            }
        }
    }
    let uart = fdt
        .find_compatible(&["arm,pl011"])
        .and_then(|n| n.reg()?.next())
        .map(|r| r.starting_address as u64);
    let Some((tx_cap, rx_cap)) = tx_rx else {
        fatal("no RM node (compatible \"gunyah-resource-manager\") with tx and rx caps under /hypervisor in the DT");
    };
    DtInfo {
        tx_cap,
        rx_cap,
        rx_virq,
        vmid,
        uart,
        dt: (addr, size as u64),
    }
}

fn fatal(what: &str) -> ! {
    // The UART is not known yet: try QEMU virt's, then exit.
    crate::console::init(Some(0x0900_0000));
    crate::console::fail(format_args!("{what}"))
}
