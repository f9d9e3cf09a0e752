//! `gunyah-rm check-config FILE...`: parse VM launch configs (`.dts` through dtc, or `.dtb`),
//! validate them together as one set and print the launch plan, or the error.
//!
//! Exit status: 0 valid; 1 a config is invalid; 2 a file could not be read or compiled.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use gunyah_rm::config::host::LoadError;
use gunyah_rm::config::{self, GoldenMode, LaunchPlan, PlannedVm, VdeviceKind, VmidRequest};

#[derive(clap::Args)]
pub struct Args {
    /// Config files: `.dts` (compiled with dtc, or the program named by $DTC) or `.dtb`.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print JSON (the launch plan, or the error) instead of the human-readable description.
    #[arg(long)]
    pub json: bool,
}

/// `writeln!` into a String, which cannot fail.
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

pub fn run(args: Args) -> ExitCode {
    let errors = match config::host::load_set(&args.files) {
        Ok(plan) => {
            let mut out = if args.json {
                plan_json(&plan, &args.files).to_string()
            } else {
                let mut out = String::new();
                print_plan(&mut out, &plan, &args.files);
                out
            };
            if args.json {
                out.push('\n');
            }
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = std::io::stdout().write_all(out.as_bytes());
            return ExitCode::SUCCESS;
        }
        Err(errors) => errors,
    };
    if args.json {
        let list: Vec<_> = errors
            .iter()
            .map(|e| {
                let (node, property, reason) = match e {
                    LoadError::Config { error, .. } => (
                        Some(error.node.clone()),
                        error.property.clone(),
                        error.reason.clone(),
                    ),
                    LoadError::Io { reason, .. } => (None, None, reason.clone()),
                };
                serde_json::json!({
                    "file": e.file().display().to_string(),
                    "message": e.to_string(),
                    "io": matches!(e, LoadError::Io { .. }),
                    "node": node,
                    "property": property,
                    "reason": reason,
                })
            })
            .collect();
        let _ = writeln!(
            std::io::stdout(),
            "{}",
            serde_json::json!({ "errors": list })
        );
    }
    for e in &errors {
        eprintln!("gunyah-rm check-config: {e}");
    }
    let io = errors.iter().any(|e| matches!(e, LoadError::Io { .. }));
    ExitCode::from(if io { 2 } else { 1 })
}

fn plan_json(plan: &LaunchPlan, files: &[PathBuf]) -> serde_json::Value {
    let mut v = serde_json::to_value(plan).unwrap_or_default();
    if let Some(vms) = v.get_mut("vms").and_then(|v| v.as_array_mut()) {
        for (vm, p) in vms.iter_mut().zip(&plan.vms) {
            vm["file"] = files[p.source].display().to_string().into();
        }
    }
    v
}

fn size(n: u64) -> String {
    const MIB: u64 = 1 << 20;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n:#x} bytes")
    }
}

fn range(base: u64, len: u64) -> String {
    format!("{base:#x}-{:#x} ({})", base.saturating_add(len), size(len))
}

fn print_plan(out: &mut String, plan: &LaunchPlan, files: &[PathBuf]) {
    let p = &plan.platform;
    let ranges = |rs: &[config::MemRange]| {
        rs.iter()
            .map(|r| range(r.base, r.size))
            .collect::<Vec<_>>()
            .join(", ")
    };
    w!(
        out,
        "platform: HLOS VMID {}, HLOS memory {}, partition {}, {}-bit IPA",
        p.hlos_vmid,
        ranges(&p.hlos_memory),
        ranges(&p.partition),
        p.ipa_bits
    );
    w!(out, "launch order:");
    for (i, vm) in plan.vms.iter().enumerate() {
        print_vm(out, i, vm, plan, &files[vm.source]);
    }
}

fn print_vm(out: &mut String, i: usize, vm: &PlannedVm, plan: &LaunchPlan, file: &Path) {
    let c = &vm.config;
    w!(
        out,
        "{}. {} ({}, {})",
        i + 1,
        c.image_name,
        c.node,
        file.display()
    );
    let vmid = match c.vmid {
        VmidRequest::Fixed(id) => format!("{id:#x} (fixed)"),
        VmidRequest::Dynamic => "dynamic".into(),
    };
    w!(
        out,
        "   vmid {vmid}, launch {}, protected {}, sensitive {}",
        c.launch.as_str(),
        c.protected,
        c.sensitive
    );
    if let Some(uri) = &c.vm_uri {
        w!(out, "   uri {uri}");
    }
    if let Some(g) = &c.vm_guid {
        let h = hex::encode(g);
        w!(
            out,
            "   guid {}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        );
    }
    if !c.vm_attrs.is_empty() {
        let attrs: Vec<&str> = c.vm_attrs.iter().map(|a| a.as_str()).collect();
        w!(out, "   attrs {}", attrs.join(", "));
    }
    let m = &c.memory;
    w!(
        out,
        "   memory: private {}, window {}{}{}",
        range(m.base_address, m.size_min),
        size(m.size_max),
        if m.is_direct {
            ", direct (IPA = PA)"
        } else {
            ""
        },
        c.ipa_bits
            .map(|b| format!(", {b}-bit IPA"))
            .unwrap_or_default()
    );
    if let Some(fw) = m.firmware_address {
        w!(out, "   firmware at {fw:#x}");
    }
    let v = &c.vcpus;
    w!(
        out,
        "   vcpus: {} ({}, map {:?}), priority {:+}, timeslice {} us",
        v.count,
        v.affinity.as_str(),
        v.affinity_map,
        v.sched_priority,
        v.sched_timeslice_us
    );
    for d in &c.vdevices {
        match &d.kind {
            VdeviceKind::RmRpc {
                console_dev,
                message_size,
                queue_depth,
            } => {
                w!(out,
                "   vdevice {}: rm-rpc, message size {message_size}, queue depth {queue_depth}{}",
                d.name,
                if *console_dev { ", console" } else { "" }
            )
            }
            VdeviceKind::Other(t) => w!(out, "   vdevice {}: {t}", d.name),
        }
    }
    w!(
        out,
        "   gmem: {}, {}",
        size(c.gmem.size),
        if c.gmem.demand_paging {
            "demand-paged"
        } else {
            "populated at launch"
        }
    );
    if let Some(t) = &c.golden.template {
        let rs: Vec<String> = t
            .seal_ranges
            .iter()
            .map(|r| range(r.base, r.size))
            .collect();
        w!(
            out,
            "   golden template \"{}\" ({}): seals {} on {}",
            t.image_name,
            size(t.size()),
            rs.join(" + "),
            t.seal_trigger.as_str()
        );
    }
    for g in &vm.golden {
        let mode = match g.mode {
            GoldenMode::CopyOnWrite { quota_pages } => {
                format!("copy-on-write, quota {quota_pages} pages")
            }
            GoldenMode::ReadOnly => "read-only".into(),
        };
        let mode = if g.executable {
            format!("{mode}, executable")
        } else {
            mode
        };
        w!(
            out,
            "   golden map \"{}\" from {} [offset {:#x}] at {}: {mode}, on unserved write {}",
            g.golden_name,
            plan.vms[g.template].config.image_name,
            g.offset,
            range(g.ipa, g.size),
            g.fault_action.as_str()
        );
        if let Some(d) = &g.digest {
            w!(out, "     requires digest sha256:{}", hex::encode(d));
        }
    }
}
