//! What the board reads from the DT QEMU's loader put at 0x40F00000 (QEMU's own virt DT,
//! as Gunyah's QEMU platform expects): the CPUs, where RAM ends, the PL011, the GICv3.

use crate::fdt_edit;

/// The platform as the DT describes it.
pub struct PlatformDt {
    /// The blob (its header's totalsize).
    pub blob: &'static [u8],
    /// Number of `/cpus/cpu@N` nodes.
    pub cpus: usize,
    /// One past the last byte of the RAM of the `/memory` node at 0x40000000.
    pub ram_end: u64,
    /// The PL011's base address.
    pub uart: u64,
    /// The GICv3 distributor's base address.
    pub gicd: u64,
    /// The GICv3 redistributors' base address.
    pub gicr: u64,
    /// One past the GICv3's last register frame (its `reg` ranges' end).
    pub gic_end: u64,
}

/// Read the DT at `addr` (in RAM, at most 1 MiB).
pub fn read_platform(addr: u64) -> Result<PlatformDt, &'static str> {
    // SAFETY: RAM identity-mapped at EL2; the 40-byte header is read first and its
    // totalsize (at most 1 MiB, below the HLOS image) bounds the rest.
    let header = unsafe { core::slice::from_raw_parts(addr as *const u8, 40) };
    let size = fdt_edit::total_size(header).ok_or("no device tree there (bad magic)")?;
    if size > 1 << 20 {
        return Err("totalsize over 1 MiB");
    }
    // SAFETY: as above; nothing writes the DT while the board reads it.
    let blob: &'static [u8] = unsafe { core::slice::from_raw_parts(addr as *const u8, size) };
    let fdt = gunyah_rm::config::checked_fdt(blob).map_err(|_| "malformed device tree")?;
    let cpus = gunyah_rm::config::cpu_count(&fdt);
    let ram_end = fdt
        .all_nodes()
        .filter(|n| n.name.starts_with("memory"))
        .filter_map(|n| n.reg()?.next())
        .filter(|r| r.starting_address as u64 == 0x4000_0000)
        .filter_map(|r| Some(0x4000_0000u64 + r.size? as u64))
        .max()
        .ok_or("no /memory node at 0x40000000")?;
    let uart = fdt
        .find_compatible(&["arm,pl011"])
        .and_then(|n| n.reg()?.next())
        .map(|r| r.starting_address as u64)
        .ok_or("no arm,pl011 node")?;
    let gic_node = fdt
        .find_compatible(&["arm,gic-v3"])
        .ok_or("no arm,gic-v3 node")?;
    let gic_end = gic_node
        .reg()
        .ok_or("no arm,gic-v3 node")?
        .map(|r| r.starting_address as u64 + r.size.unwrap_or(0) as u64)
        .max()
        .unwrap_or(0);
    let mut gic = gic_node.reg().ok_or("no arm,gic-v3 node")?;
    let gicd = gic
        .next()
        .ok_or("GICv3 without a distributor")?
        .starting_address as u64;
    let gicr = gic
        .next()
        .ok_or("GICv3 without redistributors")?
        .starting_address as u64;
    Ok(PlatformDt {
        blob,
        cpus,
        ram_end,
        uart,
        gicd,
        gicr,
        gic_end,
    })
}
