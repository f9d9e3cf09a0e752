//! Validation of a whole set of configs together, producing the order in which to launch them.

use super::error::{ConfigError, SetError};
use super::types::*;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Gunyah's dynamic VMID range 0x80..=0xBF holds this many VMs.
pub const DYNAMIC_VMIDS: usize = 64;

/// A validated set: the platform and every VM, in launch order (each template before the VMs
/// that map its golden image).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
pub struct LaunchPlan {
    /// The platform config of the set, or [`PlatformConfig::default`] when the set has none.
    pub platform: PlatformConfig,
    /// VMs in launch order.
    pub vms: Vec<PlannedVm>,
}

impl LaunchPlan {
    /// The VMs to launch at RM boot, in launch order.
    pub fn at_boot(&self) -> impl Iterator<Item = &PlannedVm> {
        self.vms
            .iter()
            .filter(|v| v.config.launch == LaunchMode::Boot)
    }

    /// The planned VM whose `image-name` is `name`.
    pub fn vm(&self, name: &str) -> Option<&PlannedVm> {
        self.vms.iter().find(|v| v.config.image_name == name)
    }
}

/// One VM of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
pub struct PlannedVm {
    /// Index of this VM's config in the slice given to [`validate_set`].
    pub source: usize,
    /// The VM's description.
    pub config: VmConfig,
    /// Its golden mappings with references resolved (same order as `config.golden.mappings`).
    pub golden: Vec<ResolvedMapping>,
}

/// A golden mapping whose template is known and whose size is final.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
pub struct ResolvedMapping {
    /// Index in [`LaunchPlan::vms`] of the template that provides the image (always earlier).
    pub template: usize,
    /// The golden image's name.
    pub golden_name: String,
    /// Size of the whole golden image.
    pub golden_size: u64,
    /// Offset into the image.
    pub offset: u64,
    /// Bytes mapped.
    pub size: u64,
    /// IPA of the first mapped byte.
    pub ipa: u64,
    /// CoW (with quota) or read-only.
    pub mode: GoldenMode,
    /// What an unserved write does.
    pub fault_action: FaultAction,
    /// Map executable.
    pub executable: bool,
    /// Digest the sealed image must have (protected VMs always have one).
    #[cfg_attr(feature = "std", serde(serialize_with = "super::types::hex_json::opt"))]
    pub digest: Option<[u8; 32]>,
}

impl ResolvedMapping {
    /// The IPA range this mapping occupies.
    pub fn ipa_range(&self) -> MemRange {
        MemRange {
            base: self.ipa,
            size: self.size,
        }
    }
}

fn at(config: usize, error: ConfigError) -> SetError {
    SetError { config, error }
}

fn range_str(r: &MemRange) -> String {
    format!("{:#x}-{:#x}", r.base, r.end())
}

/// Validates `configs` together: at most one platform, unique names, URIs and fixed VMIDs,
/// golden references that resolve to a template in the set, no overlapping memory, the
/// partition big enough for eagerly populated memory. Returns the launch plan, or the first
/// error (in input order) with the index of the config it is in. Nothing is partially returned.
pub fn validate_set(configs: &[Config]) -> Result<LaunchPlan, SetError> {
    let mut platform = None;
    let mut vms: Vec<(usize, &VmConfig)> = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        match c {
            Config::Platform(_) if platform.is_some() => {
                return Err(at(
                    i,
                    ConfigError::node(
                        "/gunyah-rm-platform",
                        "more than one platform config in the set",
                    ),
                ));
            }
            Config::Platform(p) => platform = Some(p.clone()),
            Config::Vm(v) => vms.push((i, v)),
        }
    }
    let platform = platform.unwrap_or_default();
    let partition_total = platform
        .partition
        .iter()
        .fold(0u64, |a, r| a.saturating_add(r.size));

    let mut resolved: Vec<Vec<(usize, ResolvedMapping)>> = Vec::new();
    let mut direct: Vec<(MemRange, &str)> = Vec::new();
    // Bytes the partition must supply at launch: direct RAM plus eagerly populated gmem.
    let mut committed: u64 = 0;
    let mut dynamic = 0usize;
    for (k, &(i, vm)) in vms.iter().enumerate() {
        let earlier = &vms[..k];
        let name_err = |p: &str, r: String| at(i, ConfigError::prop(&vm.node, p, r));
        if let Some((_, o)) = earlier.iter().find(|(_, o)| o.image_name == vm.image_name) {
            return Err(name_err(
                "image-name",
                format!("\"{}\" is already used by another VM", o.image_name),
            ));
        }
        if let Some(uri) = &vm.vm_uri {
            if let Some((_, o)) = earlier.iter().find(|(_, o)| o.vm_uri.as_ref() == Some(uri)) {
                return Err(name_err(
                    "vm-uri",
                    format!("\"{uri}\" is already used by \"{}\"", o.image_name),
                ));
            }
        }
        match vm.vmid {
            VmidRequest::Fixed(id) if id == platform.hlos_vmid => {
                return Err(name_err("vmid", format!("VMID {id:#x} is the HLOS VMID")));
            }
            VmidRequest::Fixed(id) => {
                if let Some((_, o)) = earlier
                    .iter()
                    .find(|(_, o)| o.vmid == VmidRequest::Fixed(id))
                {
                    return Err(name_err(
                        "vmid",
                        format!("VMID {id:#x} is already used by \"{}\"", o.image_name),
                    ));
                }
            }
            VmidRequest::Dynamic => {
                dynamic += 1;
                if dynamic > DYNAMIC_VMIDS {
                    return Err(at(
                        i,
                        ConfigError::node(
                            &vm.node,
                            format!("more than {DYNAMIC_VMIDS} VMs need a dynamic VMID"),
                        ),
                    ));
                }
            }
        }
        if let Some(t) = &vm.golden.template {
            let dup = earlier.iter().find(|(_, o)| {
                o.golden
                    .template
                    .as_ref()
                    .is_some_and(|ot| ot.image_name == t.image_name)
            });
            if let Some((_, o)) = dup {
                return Err(at(
                    i,
                    ConfigError::prop(
                        &t.node,
                        "image-name",
                        format!(
                            "golden image \"{}\" is already provided by \"{}\"",
                            t.image_name, o.image_name
                        ),
                    ),
                ));
            }
        }

        // The VM's own IPA space (`ipa-bits`), at most the platform's; every range below must
        // end within it.
        let ipa_bits = vm.ipa_bits.unwrap_or(platform.ipa_bits);
        if ipa_bits > platform.ipa_bits {
            return Err(name_err(
                "ipa-bits",
                format!(
                    "{ipa_bits} is outside 32..={} (the platform's ipa-bits)",
                    platform.ipa_bits
                ),
            ));
        }
        // Saturating: the types have public fields, so a caller may hand in values parse()
        // never makes.
        let ipa_limit = 1u64.checked_shl(ipa_bits.into()).unwrap_or(u64::MAX);
        let mem_node = format!("{}/memory", vm.node);
        let ram = vm.private_ram();
        let window = MemRange {
            base: vm.memory.base_address,
            size: vm.memory.size_max,
        };
        if window.end() > ipa_limit {
            return Err(at(
                i,
                ConfigError::prop(
                    &mem_node,
                    "size-max",
                    format!(
                        "RAM window ends at {:#x}, beyond the {}-bit IPA space",
                        window.end(),
                        ipa_bits
                    ),
                ),
            ));
        }
        if vm.memory.is_direct {
            let inside = platform.partition.iter().any(|p| p.contains(&ram));
            if !inside {
                return Err(at(
                    i,
                    ConfigError::prop(
                        &mem_node,
                        "base-address",
                        format!(
                            "direct-mapped memory {} is not inside the partition",
                            range_str(&ram)
                        ),
                    ),
                ));
            }
            if let Some((o, n)) = direct.iter().find(|(o, _)| o.overlaps(&ram)) {
                return Err(at(
                    i,
                    ConfigError::prop(
                        &mem_node,
                        "base-address",
                        format!(
                            "direct-mapped memory {} overlaps \"{n}\" at {}",
                            range_str(&ram),
                            range_str(o)
                        ),
                    ),
                ));
            }
            direct.push((ram, &vm.image_name));
            committed = committed.saturating_add(ram.size);
        } else if !vm.gmem.demand_paging {
            committed = committed.saturating_add(ram.size);
        }
        if committed > partition_total {
            return Err(at(
                i,
                ConfigError::prop(
                    &mem_node,
                    "size-min",
                    format!(
                        "the set needs {committed:#x} bytes of eagerly populated memory but the partition has {partition_total:#x}"
                    ),
                ),
            ));
        }

        // Resolve golden references against templates anywhere in the set.
        let mut mine: Vec<(usize, ResolvedMapping)> = Vec::new();
        for m in &vm.golden.mappings {
            let err = |p: &str, r: String| at(i, ConfigError::prop(&m.node, p, r));
            let found = vms.iter().enumerate().find(|(_, (_, o))| {
                o.golden
                    .template
                    .as_ref()
                    .is_some_and(|t| t.image_name == m.golden_name)
            });
            let Some((tk, (_, tvm))) = found else {
                return Err(err(
                    "golden-name",
                    format!(
                        "no template in the set provides golden image \"{}\"",
                        m.golden_name
                    ),
                ));
            };
            if tk == k {
                return Err(err(
                    "golden-name",
                    String::from("a VM cannot map its own golden image"),
                ));
            }
            if tvm.launch == LaunchMode::OnRequest && vm.launch == LaunchMode::Boot {
                return Err(err(
                    "golden-name",
                    format!(
                        "template \"{}\" is launched on request, so a VM launched at boot cannot map its golden image",
                        tvm.image_name
                    ),
                ));
            }
            let golden_size = tvm.golden.template.as_ref().map_or(0, GoldenTemplate::size);
            if m.offset >= golden_size {
                return Err(err(
                    "offset",
                    format!(
                        "{:#x} is past the end of golden image \"{}\" ({golden_size:#x} bytes)",
                        m.offset, m.golden_name
                    ),
                ));
            }
            let size = m.size.unwrap_or(golden_size - m.offset);
            if size > golden_size - m.offset {
                return Err(err(
                    "size",
                    format!(
                        "offset {:#x} + size {size:#x} exceeds golden image \"{}\" ({golden_size:#x} bytes)",
                        m.offset, m.golden_name
                    ),
                ));
            }
            let r = ResolvedMapping {
                template: tk,
                golden_name: m.golden_name.clone(),
                golden_size,
                offset: m.offset,
                size,
                ipa: m.ipa,
                mode: m.mode,
                fault_action: m.fault_action,
                executable: m.executable,
                digest: m.digest,
            };
            let ipa = r.ipa_range();
            if ipa.base.checked_add(ipa.size).is_none_or(|e| e > ipa_limit) {
                return Err(err(
                    "ipa",
                    format!(
                        "mapping {} ends beyond the {}-bit IPA space",
                        range_str(&ipa),
                        ipa_bits
                    ),
                ));
            }
            if ipa.overlaps(&ram) {
                return Err(err(
                    "ipa",
                    format!(
                        "mapping {} overlaps private memory {}",
                        range_str(&ipa),
                        range_str(&ram)
                    ),
                ));
            }
            if let Some((_, o)) = mine.iter().find(|(_, o)| o.ipa_range().overlaps(&ipa)) {
                return Err(err(
                    "ipa",
                    format!(
                        "mapping {} overlaps the mapping of \"{}\" at {}",
                        range_str(&ipa),
                        o.golden_name,
                        range_str(&o.ipa_range())
                    ),
                ));
            }
            mine.push((tk, r));
        }
        resolved.push(mine);
    }

    // Launch order: Kahn's algorithm, lowest input index first, so the order is stable.
    let n = vms.len();
    let mut placed = alloc::vec![false; n];
    let mut order: Vec<usize> = Vec::with_capacity(n);
    while order.len() < n {
        let next = (0..n).find(|&k| !placed[k] && resolved[k].iter().all(|(t, _)| placed[*t]));
        match next {
            Some(k) => {
                placed[k] = true;
                order.push(k);
            }
            None => {
                let k = (0..n).find(|&k| !placed[k]).unwrap_or(0);
                let (i, vm) = vms[k];
                let node = vm
                    .golden
                    .mappings
                    .first()
                    .map_or(vm.node.as_str(), |m| m.node.as_str());
                return Err(at(
                    i,
                    ConfigError::prop(
                        node,
                        "golden-name",
                        "golden images depend on each other in a cycle",
                    ),
                ));
            }
        }
    }
    let mut position = alloc::vec![0usize; n];
    for (pos, &k) in order.iter().enumerate() {
        position[k] = pos;
    }
    let planned = order
        .iter()
        .map(|&k| PlannedVm {
            source: vms[k].0,
            config: vms[k].1.clone(),
            golden: resolved[k]
                .iter()
                .map(|(t, r)| ResolvedMapping {
                    template: position[*t],
                    ..r.clone()
                })
                .collect(),
        })
        .collect();
    Ok(LaunchPlan {
        platform,
        vms: planned,
    })
}
