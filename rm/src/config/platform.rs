//! `/gunyah-rm-platform`: the HLOS VM and the partition the RM hands memory out from.

use super::error::ConfigError;
use super::props::Node;
use super::types::{MemRange, PlatformConfig, PAGE_SIZE};
use alloc::format;
use alloc::vec::Vec;

/// Properties of `/gunyah-rm-platform`.
pub const PLATFORM_PROPS: &[&str] = &["hlos-vmid", "hlos-memory", "partition", "ipa-bits"];

fn ranges(
    n: &Node,
    prop: &str,
    seen: &mut Vec<(MemRange, &'static str)>,
    what: &'static str,
) -> Result<Vec<MemRange>, ConfigError> {
    let raw = n.ranges(prop)?.ok_or_else(|| n.missing(prop))?;
    let mut out = Vec::new();
    for (base, size) in raw {
        if !base.is_multiple_of(PAGE_SIZE) || !size.is_multiple_of(PAGE_SIZE) {
            return Err(n.err(
                prop,
                format!("range {base:#x}+{size:#x} is not 4 KiB aligned"),
            ));
        }
        if size == 0 || base.checked_add(size).is_none() {
            return Err(n.err(prop, format!("range {base:#x}+{size:#x} is empty or wraps")));
        }
        let r = MemRange { base, size };
        if let Some((o, w)) = seen.iter().find(|(o, _)| o.overlaps(&r)) {
            return Err(n.err(
                prop,
                format!(
                    "range {base:#x}-{:#x} overlaps {w} range {:#x}-{:#x}",
                    r.end(),
                    o.base,
                    o.end()
                ),
            ));
        }
        seen.push((r, what));
        out.push(r);
    }
    Ok(out)
}

/// Parses the platform node.
pub fn parse_platform(n: &Node) -> Result<PlatformConfig, ConfigError> {
    n.finish(PLATFORM_PROPS)?;
    if let Some(c) = n.children()?.first() {
        return Err(ConfigError::node(&c.path, "unknown node"));
    }
    let hlos_vmid = match n.u32("hlos-vmid")?.unwrap_or(3) {
        v @ 1..=63 => v as u16,
        v => return Err(n.err("hlos-vmid", format!("{v:#x} is outside 0x1..=0x3f"))),
    };
    let ipa_bits = match n.u32("ipa-bits")?.unwrap_or(40) {
        v @ 32..=48 => v as u8,
        v => return Err(n.err("ipa-bits", format!("{v} is outside 32..=48"))),
    };
    let mut seen = Vec::new();
    let hlos_memory = ranges(n, "hlos-memory", &mut seen, "hlos-memory")?;
    let partition = ranges(n, "partition", &mut seen, "partition")?;
    let limit = 1u64 << ipa_bits;
    if let Some(r) = hlos_memory.iter().find(|r| r.end() > limit) {
        return Err(n.err(
            "hlos-memory",
            format!(
                "range ends at {:#x}, beyond the {ipa_bits}-bit IPA space",
                r.end()
            ),
        ));
    }
    Ok(PlatformConfig {
        hlos_vmid,
        hlos_memory,
        partition,
        ipa_bits,
    })
}
