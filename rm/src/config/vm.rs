//! `/gunyah-vm-config` (or `/qcom,vm-config`): Gunyah's properties plus the extension's
//! `vmid`, `protected`, `launch`, `gmem` and `golden`.

use super::error::ConfigError;
use super::props::Node;
use super::types::*;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Properties of the config node (Gunyah's, then the extension's).
pub const VM_PROPS: &[&str] = &[
    "vm-type",
    "os-type",
    "boot-config",
    "image-name",
    "vendor",
    "vm-uri",
    "vm-guid",
    "vm-attrs",
    "kernel-entry-segment",
    "kernel-entry-offset",
    "iomemory-ranges",
    "gic-irq-ranges",
    "qcom,sensitive",
    "qcom,pasid",
    // extension
    "vmid",
    "protected",
    "launch",
    "ipa-bits",
];
/// Properties of `memory`.
pub const MEMORY_PROPS: &[&str] = &[
    "base-address",
    "size-min",
    "size-max",
    "is-direct",
    "firmware-address",
    "firmware-size-max",
    "base-mem-constraints",
    "#address-cells",
    "#size-cells",
];
/// Properties of `vcpus`.
pub const VCPUS_PROPS: &[&str] = &[
    "affinity",
    "affinity-map",
    "sched-priority",
    "sched-timeslice",
    "config",
];
/// Properties of the `rm-rpc` vdevice.
pub const RM_RPC_PROPS: &[&str] = &[
    "vdevice-type",
    "console-dev",
    "message-size",
    "queue-depth",
    "interrupts",
    "generate",
    "push-compatible",
    "label",
    "qcom,label",
];
/// Recognised `vdevice-type` values.
pub const VDEVICE_TYPES: &[&str] = &[
    "rm-rpc",
    "doorbell",
    "doorbell-source",
    "message-queue",
    "message-queue-pair",
    "shm-doorbell",
    "shm",
    "virtio-mmio",
    "iomem",
    "vsmmu-v2",
    "vrtc-pl031",
];
/// Properties of `gmem`.
pub const GMEM_PROPS: &[&str] = &["size", "demand-paging"];
/// Properties of a `golden` node with `role = "template"`.
pub const TEMPLATE_PROPS: &[&str] = &["role", "image-name", "seal-ranges", "seal-trigger"];
/// Properties of a `golden` node with `role = "clone"`.
pub const CLONE_PROPS: &[&str] = &[
    "role",
    "golden-name",
    "ipa",
    "offset",
    "size",
    "mapping",
    "quota-pages",
    "fault-action",
    "executable",
    "digest",
];

/// Longest `image-name`/`vm-uri` (Gunyah's buffers are 80 bytes with the NUL).
pub const MAX_NAME_LEN: usize = 79;
/// Largest RM RPC message (Gunyah's message-queue limit).
pub const MAX_RPC_MESSAGE_SIZE: u32 = 240;
/// `sched-timeslice` bounds in microseconds.
pub const TIMESLICE_US: core::ops::RangeInclusive<u32> = 100..=100_000;
/// Default `sched-timeslice` in microseconds.
pub const DEFAULT_TIMESLICE_US: u32 = 5_000;

fn one_of<T: Copy>(
    n: &Node,
    prop: &str,
    default: T,
    allowed: &[(&str, T)],
) -> Result<T, ConfigError> {
    let Some(s) = n.string(prop)? else {
        return Ok(default);
    };
    match allowed.iter().find(|(k, _)| *k == s) {
        Some((_, v)) => Ok(*v),
        None => {
            let list: Vec<String> = allowed.iter().map(|(k, _)| format!("\"{k}\"")).collect();
            Err(n.err(prop, format!("\"{s}\" is not one of {}", list.join(", "))))
        }
    }
}

fn check_page(n: &Node, prop: &str, v: u64) -> Result<(), ConfigError> {
    if !v.is_multiple_of(PAGE_SIZE) {
        return Err(n.err(prop, format!("{v:#x} is not 4 KiB aligned")));
    }
    Ok(())
}

fn check_size(n: &Node, prop: &str, v: u64) -> Result<(), ConfigError> {
    if v == 0 {
        return Err(n.err(prop, "size must not be zero"));
    }
    check_page(n, prop, v)
}

fn check_name(n: &Node, prop: &str) -> Result<Option<String>, ConfigError> {
    let s = n.string(prop)?;
    if let Some(s) = &s {
        if s.len() > MAX_NAME_LEN {
            return Err(n.err(
                prop,
                format!("{} bytes long, at most {MAX_NAME_LEN} allowed", s.len()),
            ));
        }
    }
    Ok(s)
}

/// Parses a `sha256:<64 hex digits>` digest.
pub fn parse_digest(s: &str) -> Option<[u8; 32]> {
    let hex = s.strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    // from_str_radix accepts a leading '+'; a digest does not.
    hex.bytes().all(|c| c.is_ascii_hexdigit()).then_some(out)
}

/// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
fn parse_guid(s: &str) -> Option<[u8; 16]> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    if groups.len() != 5 || groups.iter().zip(lens).any(|(g, l)| g.len() != l) {
        return None;
    }
    let hex: String = groups.concat();
    if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// `golden`, `golden@<unit>` or `golden-<suffix>`: a VM may map several golden images.
fn is_golden_node(name: &str) -> bool {
    match name.strip_prefix("golden") {
        Some("") => true,
        Some(rest) => rest.len() > 1 && (rest.starts_with('@') || rest.starts_with('-')),
        None => false,
    }
}

/// Parses the config node `cfg`; `root` is the tree's root (for `/cpus`).
pub fn parse_vm(root: &Node, cfg: &Node) -> Result<VmConfig, ConfigError> {
    cfg.finish(VM_PROPS)?;
    if let Some(t) = cfg.string("vm-type")? {
        if t != "aarch64-guest" {
            return Err(cfg.err("vm-type", format!("\"{t}\" is not \"aarch64-guest\"")));
        }
    }
    let os_type = cfg.string("os-type")?;
    if let Some(t) = &os_type {
        if t != "linux" {
            return Err(cfg.err("os-type", format!("\"{t}\" is not \"linux\"")));
        }
    }
    if let Some(t) = cfg.string("boot-config")? {
        if t != "fdt,unified" {
            return Err(cfg.err("boot-config", format!("\"{t}\" is not \"fdt,unified\"")));
        }
    }
    let image_name = check_name(cfg, "image-name")?.ok_or_else(|| cfg.missing("image-name"))?;
    let vendor = cfg.string("vendor")?;
    let vm_uri = check_name(cfg, "vm-uri")?;
    let vm_guid = match cfg.string("vm-guid")? {
        None => None,
        Some(g) => Some(parse_guid(&g).ok_or_else(|| {
            cfg.err(
                "vm-guid",
                format!("\"{g}\" is not xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"),
            )
        })?),
    };
    let mut vm_attrs = Vec::new();
    for a in cfg.string_list("vm-attrs")?.unwrap_or_default() {
        let attr = VmAttr::ALL
            .iter()
            .find(|(k, _)| *k == a)
            .map(|(_, v)| *v)
            .ok_or_else(|| cfg.err("vm-attrs", format!("unknown attribute \"{a}\"")))?;
        if !vm_attrs.contains(&attr) {
            vm_attrs.push(attr);
        }
    }
    if vm_attrs.contains(&VmAttr::CrashFatal) {
        for implied in [VmAttr::NoShutdown, VmAttr::NoReset] {
            if !vm_attrs.contains(&implied) {
                vm_attrs.push(implied);
            }
        }
    }
    // Accepted Gunyah properties this RM does not use: checked for type and size only.
    cfg.string("kernel-entry-segment")?;
    cfg.u64("kernel-entry-offset")?;
    if let Some(v) = cfg.u32_list("iomemory-ranges")? {
        if !v.len().is_multiple_of(7) {
            return Err(cfg.err(
                "iomemory-ranges",
                "expected <phys(2) ipa(2) size(2) access(1)> entries",
            ));
        }
    }
    if let Some(v) = cfg.u32_list("gic-irq-ranges")? {
        if !v.len().is_multiple_of(2) {
            return Err(cfg.err("gic-irq-ranges", "expected <hw-irq virq> pairs"));
        }
    }
    cfg.u64("qcom,pasid")?;
    let sensitive = cfg.bool("qcom,sensitive")?;

    let vmid = match cfg.u32("vmid")? {
        None => VmidRequest::Dynamic,
        Some(v @ 1..=63) => VmidRequest::Fixed(v as u16),
        Some(v) => {
            return Err(cfg.err(
                "vmid",
                format!("fixed VMID {v:#x} is outside 0x1..=0x3f (0x80..=0xbf are dynamic)"),
            ))
        }
    };
    let protected = cfg.bool("protected")?;
    // The platform's bound (its own `ipa-bits`) is checked with the set (`validate_set`) and
    // by the RM when it applies the config.
    let ipa_bits = match cfg.u32("ipa-bits")? {
        None => None,
        Some(v @ 32..=48) => Some(v as u8),
        Some(v) => return Err(cfg.err("ipa-bits", format!("{v} is outside 32..=48"))),
    };
    let launch = one_of(
        cfg,
        "launch",
        LaunchMode::Boot,
        &[
            ("boot", LaunchMode::Boot),
            ("on-request", LaunchMode::OnRequest),
        ],
    )?;

    let mut memory = None;
    let mut vcpus = None;
    let mut vdevices = None;
    let mut gmem_node = None;
    let mut golden_nodes = Vec::new();
    for child in cfg.children()? {
        let name = child.node.name;
        match name {
            "memory" => memory = Some(parse_memory(&child)?),
            "vcpus" => vcpus = Some(parse_vcpus(root, &child)?),
            "vdevices" => vdevices = Some(parse_vdevices(&child)?),
            "gmem" => gmem_node = Some(child),
            "interrupts" | "segments" => {}
            _ if is_golden_node(name) => golden_nodes.push(child),
            _ => return Err(ConfigError::node(&child.path, "unknown node")),
        }
    }
    let memory = memory
        .ok_or_else(|| ConfigError::node(&cfg.path, "required node \"memory\" is missing"))?;
    let vcpus =
        vcpus.ok_or_else(|| ConfigError::node(&cfg.path, "required node \"vcpus\" is missing"))?;
    let vdevices = vdevices
        .ok_or_else(|| ConfigError::node(&cfg.path, "required node \"vdevices\" is missing"))?;

    let mut golden = GoldenRole::default();
    for g in &golden_nodes {
        parse_golden(g, protected, &memory, &mut golden)?;
    }

    let quota_bytes: u64 = golden
        .mappings
        .iter()
        .map(|m| match m.mode {
            GoldenMode::CopyOnWrite { quota_pages } => u64::from(quota_pages) * PAGE_SIZE,
            GoldenMode::ReadOnly => 0,
        })
        .fold(0u64, u64::saturating_add);
    let needed = memory.size_min.saturating_add(quota_bytes);
    let gmem = match gmem_node {
        None => Gmem {
            size: needed,
            demand_paging: false,
        },
        Some(g) => {
            g.finish(GMEM_PROPS)?;
            let size = g.u64("size")?.ok_or_else(|| g.missing("size"))?;
            check_size(&g, "size", size)?;
            if size < needed {
                return Err(g.err(
                    "size",
                    format!(
                        "{size:#x} cannot hold private memory {:#x} plus CoW quota {quota_bytes:#x}",
                        memory.size_min
                    ),
                ));
            }
            Gmem {
                size,
                demand_paging: g.bool("demand-paging")?,
            }
        }
    };

    Ok(VmConfig {
        node: cfg.path.clone(),
        image_name,
        vendor,
        os_type,
        vm_uri,
        vm_guid,
        vm_attrs,
        sensitive,
        vmid,
        protected,
        launch,
        ipa_bits,
        memory,
        vcpus,
        vdevices,
        gmem,
        golden,
    })
}

fn parse_memory(m: &Node) -> Result<MemoryLayout, ConfigError> {
    m.finish(MEMORY_PROPS)?;
    for cells in ["#address-cells", "#size-cells"] {
        if let Some(v) = m.u32(cells)? {
            if v != 2 {
                return Err(m.err(
                    cells,
                    "addresses and sizes are read as 2 cells; only <2> is allowed",
                ));
            }
        }
    }
    let base = m
        .u64("base-address")?
        .ok_or_else(|| m.missing("base-address"))?;
    if !base.is_multiple_of(BLOCK_2M) {
        return Err(m.err("base-address", format!("{base:#x} is not 2 MiB aligned")));
    }
    let size_min = m.u64("size-min")?.ok_or_else(|| m.missing("size-min"))?;
    check_size(m, "size-min", size_min)?;
    let size_max = m.u64("size-max")?.unwrap_or(size_min);
    check_page(m, "size-max", size_max)?;
    if size_max < size_min {
        return Err(m.err(
            "size-max",
            format!("{size_max:#x} is smaller than size-min {size_min:#x}"),
        ));
    }
    if base.checked_add(size_max).is_none() {
        return Err(m.err("size-max", "base-address + size-max overflows"));
    }
    let ram = MemRange {
        base,
        size: size_min,
    };
    let firmware_address = m.u64("firmware-address")?;
    let firmware_size_max = m.u64("firmware-size-max")?;
    if let Some(fw) = firmware_address {
        check_page(m, "firmware-address", fw)?;
        let size = firmware_size_max.unwrap_or(PAGE_SIZE);
        if !ram.contains(&MemRange { base: fw, size }) {
            return Err(m.err(
                "firmware-address",
                format!(
                    "firmware {fw:#x}+{size:#x} is outside private memory {:#x}-{:#x}",
                    ram.base,
                    ram.end()
                ),
            ));
        }
    }
    if let Some(s) = firmware_size_max {
        check_size(m, "firmware-size-max", s)?;
        if firmware_address.is_none() {
            return Err(m.err("firmware-size-max", "needs firmware-address"));
        }
    }
    if let Some(v) = m.u32_list("base-mem-constraints")? {
        if v.len() != 2 {
            return Err(m.err("base-mem-constraints", "expected a <u32 u32> pair"));
        }
    }
    Ok(MemoryLayout {
        base_address: base,
        size_min,
        size_max,
        is_direct: m.bool("is-direct")?,
        firmware_address,
        firmware_size_max,
    })
}

fn parse_vcpus(root: &Node, v: &Node) -> Result<Vcpus, ConfigError> {
    v.finish(VCPUS_PROPS)?;
    let affinity = one_of(
        v,
        "affinity",
        Affinity::Static,
        &[
            ("static", Affinity::Static),
            ("sticky", Affinity::Sticky),
            ("pinned", Affinity::Pinned),
            ("proxy", Affinity::Proxy),
        ],
    )?;
    let cpus_path = v.string("config")?.unwrap_or_else(|| String::from("/cpus"));
    let cpu_nodes = match cpus_path.strip_prefix('/') {
        Some(name) if !name.is_empty() && !name.contains('/') => match root.child(name)? {
            Some(c) => c
                .node
                .children()
                .filter(|n| n.name == "cpu" || n.name.starts_with("cpu@"))
                .count(),
            None if cpus_path == "/cpus" => 0,
            None => return Err(v.err("config", format!("node \"{cpus_path}\" does not exist"))),
        },
        _ => {
            return Err(v.err(
                "config",
                format!("\"{cpus_path}\" is not a top-level node path"),
            ))
        }
    };
    let priority = v.u32("sched-priority")?.map(|p| p as i32);
    let timeslice = v.u32("sched-timeslice")?;
    if affinity == Affinity::Proxy {
        // Gunyah ignores the map and scheduling for proxy-scheduled VMs.
        return Ok(Vcpus {
            affinity,
            affinity_map: Vec::new(),
            count: (cpu_nodes as u32).max(1),
            sched_priority: 0,
            sched_timeslice_us: DEFAULT_TIMESLICE_US,
        });
    }
    let map = v
        .u32_list("affinity-map")?
        .ok_or_else(|| v.missing("affinity-map"))?;
    if cpu_nodes != 0 && cpu_nodes != map.len() {
        return Err(v.err(
            "affinity-map",
            format!(
                "{} entries but {cpus_path} has {cpu_nodes} cpu nodes",
                map.len()
            ),
        ));
    }
    let sched_priority = priority.unwrap_or(0);
    if !(-63..=63).contains(&sched_priority) {
        return Err(v.err(
            "sched-priority",
            format!("{sched_priority} is outside -63..=63"),
        ));
    }
    let sched_timeslice_us = timeslice.unwrap_or(DEFAULT_TIMESLICE_US);
    if !TIMESLICE_US.contains(&sched_timeslice_us) {
        return Err(v.err(
            "sched-timeslice",
            format!(
                "{sched_timeslice_us} us is outside {}..={} us",
                TIMESLICE_US.start(),
                TIMESLICE_US.end()
            ),
        ));
    }
    Ok(Vcpus {
        affinity,
        count: map.len() as u32,
        affinity_map: map,
        sched_priority,
        sched_timeslice_us,
    })
}

fn parse_vdevices(vd: &Node) -> Result<Vec<Vdevice>, ConfigError> {
    vd.finish(&["generate"])?;
    vd.string("generate")?;
    let mut out = Vec::new();
    for d in vd.children()? {
        let ty = d
            .string("vdevice-type")?
            .ok_or_else(|| d.missing("vdevice-type"))?;
        if !VDEVICE_TYPES.contains(&ty.as_str()) {
            return Err(d.err("vdevice-type", format!("unknown vdevice type \"{ty}\"")));
        }
        let label = match d.u32("qcom,label")? {
            Some(l) => Some(l),
            None => d.u32("label")?,
        };
        let generate = d.string("generate")?;
        let kind = if ty == "rm-rpc" {
            d.finish(RM_RPC_PROPS)?;
            let message_size = d.u32("message-size")?.unwrap_or(MAX_RPC_MESSAGE_SIZE);
            if !(1..=MAX_RPC_MESSAGE_SIZE).contains(&message_size) {
                return Err(d.err(
                    "message-size",
                    format!("{message_size} is outside 1..={MAX_RPC_MESSAGE_SIZE}"),
                ));
            }
            let queue_depth = d.u32("queue-depth")?.unwrap_or(8);
            if !(1..=256).contains(&queue_depth) {
                return Err(d.err("queue-depth", format!("{queue_depth} is outside 1..=256")));
            }
            if let Some(irqs) = d.u32_list("interrupts")? {
                if irqs.len() != 6 {
                    return Err(d.err("interrupts", "expected 2 interrupts of 3 cells (tx, rx)"));
                }
            }
            d.string_list("push-compatible")?;
            VdeviceKind::RmRpc {
                console_dev: d.bool("console-dev")?,
                message_size,
                queue_depth,
            }
        } else {
            VdeviceKind::Other(ty)
        };
        out.push(Vdevice {
            name: d.node.name.into(),
            kind,
            label,
            generate,
        });
    }
    match out
        .iter()
        .filter(|d| matches!(d.kind, VdeviceKind::RmRpc { .. }))
        .count()
    {
        0 => Err(ConfigError::node(
            &vd.path,
            "no vdevice with vdevice-type = \"rm-rpc\"",
        )),
        1 => Ok(out),
        _ => Err(ConfigError::node(&vd.path, "more than one rm-rpc vdevice")),
    }
}

fn wrong_role(
    g: &Node,
    known: &[&str],
    other: &[&str],
    other_role: &str,
) -> Result<(), ConfigError> {
    for p in g.node.properties() {
        if !known.contains(&p.name) && other.contains(&p.name) {
            return Err(g.err(p.name, format!("only allowed with role = \"{other_role}\"")));
        }
    }
    g.finish(known)
}

fn parse_golden(
    g: &Node,
    protected: bool,
    memory: &MemoryLayout,
    out: &mut GoldenRole,
) -> Result<(), ConfigError> {
    let role = g.string("role")?.ok_or_else(|| g.missing("role"))?;
    match role.as_str() {
        "template" => {
            wrong_role(g, TEMPLATE_PROPS, CLONE_PROPS, "clone")?;
            if protected {
                return Err(g.err("role", "a protected VM cannot be a golden template"));
            }
            if out.template.is_some() {
                return Err(g.err("role", "more than one golden template in this VM"));
            }
            let image_name = check_name(g, "image-name")?.ok_or_else(|| g.missing("image-name"))?;
            let raw = g
                .ranges("seal-ranges")?
                .ok_or_else(|| g.missing("seal-ranges"))?;
            let ram = MemRange {
                base: memory.base_address,
                size: memory.size_min,
            };
            let mut seal_ranges: Vec<MemRange> = Vec::new();
            for (base, size) in raw {
                check_page(g, "seal-ranges", base)?;
                check_size(g, "seal-ranges", size)?;
                let r = MemRange { base, size };
                if base.checked_add(size).is_none() || !ram.contains(&r) {
                    return Err(g.err(
                        "seal-ranges",
                        format!(
                            "range {base:#x}+{size:#x} is outside private memory {:#x}-{:#x}",
                            ram.base,
                            ram.end()
                        ),
                    ));
                }
                if let Some(o) = seal_ranges.iter().find(|o| o.overlaps(&r)) {
                    return Err(g.err(
                        "seal-ranges",
                        format!(
                            "range {base:#x}+{size:#x} overlaps range {:#x}+{:#x}",
                            o.base, o.size
                        ),
                    ));
                }
                seal_ranges.push(r);
            }
            let seal_trigger = one_of(
                g,
                "seal-trigger",
                SealTrigger::OsRun,
                &[
                    ("os-run", SealTrigger::OsRun),
                    ("owner-request", SealTrigger::OwnerRequest),
                ],
            )?;
            out.template = Some(GoldenTemplate {
                node: g.path.clone(),
                image_name,
                seal_ranges,
                seal_trigger,
            });
        }
        "clone" => {
            wrong_role(g, CLONE_PROPS, TEMPLATE_PROPS, "template")?;
            let golden_name =
                check_name(g, "golden-name")?.ok_or_else(|| g.missing("golden-name"))?;
            let ipa = g.u64("ipa")?.ok_or_else(|| g.missing("ipa"))?;
            check_page(g, "ipa", ipa)?;
            let offset = g.u64("offset")?.unwrap_or(0);
            check_page(g, "offset", offset)?;
            let size = g.u64("size")?;
            if let Some(s) = size {
                check_size(g, "size", s)?;
                if ipa.checked_add(s).is_none() {
                    return Err(g.err("size", "ipa + size overflows"));
                }
            }
            let cow = one_of(
                g,
                "mapping",
                true,
                &[("copy-on-write", true), ("read-only", false)],
            )?;
            let quota = g.u32("quota-pages")?;
            let mode = match (cow, quota) {
                (true, None) => return Err(g.missing("quota-pages")),
                (true, Some(0)) => {
                    return Err(g.err(
                        "quota-pages",
                        "CoW mapping needs a quota of at least 1 page",
                    ))
                }
                (true, Some(q)) => GoldenMode::CopyOnWrite { quota_pages: q },
                (false, None) => GoldenMode::ReadOnly,
                (false, Some(_)) => {
                    return Err(g.err(
                        "quota-pages",
                        "only allowed with mapping = \"copy-on-write\"",
                    ))
                }
            };
            let fault_action = one_of(
                g,
                "fault-action",
                FaultAction::InjectAbort,
                &[
                    ("inject-abort", FaultAction::InjectAbort),
                    ("stop-vm", FaultAction::StopVm),
                ],
            )?;
            let digest = match g.string("digest")? {
                None if protected => {
                    return Err(g.err(
                        "digest",
                        "a protected VM accepts a golden image only by digest",
                    ))
                }
                None => None,
                Some(d) => Some(parse_digest(&d).ok_or_else(|| {
                    g.err(
                        "digest",
                        "malformed digest: expected \"sha256:\" and 64 hex digits",
                    )
                })?),
            };
            out.mappings.push(GoldenMapping {
                node: g.path.clone(),
                golden_name,
                offset,
                size,
                ipa,
                mode,
                fault_action,
                executable: g.bool("executable")?,
                digest,
            });
        }
        other => {
            return Err(g.err(
                "role",
                format!("\"{other}\" is not one of \"template\", \"clone\""),
            ))
        }
    }
    Ok(())
}
