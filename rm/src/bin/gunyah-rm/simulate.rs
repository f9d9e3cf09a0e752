//! `gunyah-rm simulate`: the Android-like scenario on the host simulator, launched from VM
//! configs alone. The template VM boots and reports OS status RUN, its memory is sealed golden,
//! N clones of the clone config (dynamic VMID, not protected, maps the image copy-on-write;
//! one launched at boot preferred) are launched on request, and each writes a
//! fraction of its golden pages through SIM_VM_WRITE (the RM's real fault path, so every such
//! page is a copy-on-write fault). Prints what happened and a table of figures measured in this
//! run; `--json` prints the same as one JSON object.
//!
//! Exit status: 0 the scenario ran and checked out; 1 it could not run (no template, a clone
//! failed to launch, a read-back mismatch, an isolation violation); 2 the configs could not be
//! loaded or the simulator cannot model their platform.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use gunyah_rm::config::{host, GoldenMode, LaunchMode, LaunchPlan, SealTrigger, VmidRequest};
use gunyah_rm::launch::{Client, Launch, LaunchEvent, OS_STATUS_RUN};
use gunyah_rm::sim::sim_rm_for;
use gunyah_rm::sim::SimPlatform;
use gunyah_rm::vm::{DYNAMIC_VMID_COUNT, DYNAMIC_VMID_FIRST};
use gunyah_rm::{PhysMem, Rm};
use gunyah_rm_abi::ext::{SimVmReadReq, SimVmWrite, VmMemStatsReply};
use gunyah_rm_abi::vm::{VmSetStatusReq, VmidReq};
use gunyah_rm_abi::{Request, RmError};
use serde_json::json;

const PAGE: u64 = 4096;
const HLOS: u16 = 3;

#[derive(clap::Args)]
pub struct Args {
    /// VM configs (`.dts` through dtc, or `.dtb`); default: every `.dts` in `vm-configs/`.
    #[arg(long = "config", num_args = 1..)]
    pub config: Vec<PathBuf>,
    /// Clones to launch on request and let write: a count from 1, or `max` for as many as the
    /// RM has dynamic VMIDs left after the boot VMs and the template (a larger count is refused
    /// before any clone launches).
    #[arg(long, default_value = "8")]
    pub clones: Clones,
    /// Percentage of its golden pages each clone writes (one CoW fault per page).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub write_percent: u32,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// How many clones `--clones` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clones {
    /// Exactly this many (≥ 1).
    Count(u32),
    /// As many as the RM has VMIDs for.
    Max,
}

impl std::str::FromStr for Clones {
    type Err = String;
    fn from_str(s: &str) -> Result<Clones, String> {
        if s == "max" {
            return Ok(Clones::Max);
        }
        match s.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(Clones::Count(n)),
            _ => Err(format!("`{s}`: a count from 1, or `max`")),
        }
    }
}

/// The default config directory: `./vm-configs` if it exists, else the source tree's.
fn default_configs() -> Vec<PathBuf> {
    let here = PathBuf::from("vm-configs");
    let dir = if here.is_dir() {
        here
    } else {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../vm-configs"))
    };
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "dts"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn run(args: Args) -> ExitCode {
    let files = if args.config.is_empty() {
        default_configs()
    } else {
        args.config.clone()
    };
    if files.is_empty() {
        eprintln!(
            "gunyah-rm simulate: no configs (no vm-configs/*.dts here; pass --config FILE...)"
        );
        return ExitCode::from(2);
    }
    let plan = match host::load_set(&files) {
        Ok(p) => p,
        Err(errs) => {
            for e in errs {
                eprintln!("gunyah-rm simulate: {e}");
            }
            return ExitCode::from(2);
        }
    };
    let rm = match sim_rm_for(&plan.platform) {
        Ok(rm) => rm,
        Err(e) => {
            eprintln!("gunyah-rm simulate: platform: {e}");
            return ExitCode::from(2);
        }
    };
    let mut sc = Scenario {
        rm,
        client: Client::new(),
        log: Vec::new(),
    };
    match sc.run(plan, &args) {
        Ok(fig) => {
            if args.json {
                println!("{}", fig.json(&sc.log));
            } else {
                for l in &sc.log {
                    println!("{l}");
                }
                print!("{}", fig.table());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            for l in &sc.log {
                eprintln!("{l}");
            }
            eprintln!("gunyah-rm simulate: {}", e.0);
            ExitCode::from(e.1)
        }
    }
}

/// Why the scenario stopped.
enum Stop {
    /// The arguments ask for what the RM cannot do.
    Args(String),
    /// It could not run.
    Failed(String),
}

impl From<String> for Stop {
    fn from(m: String) -> Stop {
        Stop::Failed(m)
    }
}

impl From<&str> for Stop {
    fn from(m: &str) -> Stop {
        Stop::Failed(m.into())
    }
}

struct Scenario {
    rm: Rm<SimPlatform>,
    client: Client,
    log: Vec<String>,
}

/// Figures of one run.
struct Figures {
    template: String,
    image: String,
    digest: String,
    clone_config: String,
    clones: u64,
    image_pages: u64,
    mapped_pages_per_clone: u64,
    write_percent: u32,
    written_per_clone: u64,
    pages_shared: u64,
    pages_copied: u64,
    faults_served: u64,
    unserved_writes: u64,
    write_time: Duration,
    launch_times: Vec<Duration>,
    table_pages_per_clone: f64,
    partition_used_pages: u64,
    table_pages: u64,
    /// Simulated memory pages with host memory behind them (written at least once).
    backed_pages: u64,
    /// The process's peak resident memory (Linux `VmHWM`), if known.
    peak_resident_kib: Option<u64>,
}

/// This process's peak resident set (`VmHWM` of `/proc/self/status`), in KiB.
fn peak_resident_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    l.split_whitespace().nth(1)?.parse().ok()
}

impl Figures {
    /// Pages the golden-backed memory of the clones takes: the image once plus the copies.
    fn used_pages(&self) -> u64 {
        self.image_pages + self.pages_copied
    }
    /// The same without sharing: every clone holds its own copy of what it maps.
    fn unshared_pages(&self) -> u64 {
        self.clones * self.mapped_pages_per_clone
    }
    fn faults_per_sec(&self) -> f64 {
        let s = self.write_time.as_secs_f64();
        if s > 0.0 {
            self.faults_served as f64 / s
        } else {
            0.0
        }
    }
    fn launch_median(&self) -> Duration {
        let mut v = self.launch_times.clone();
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    }

    fn table(&self) -> String {
        let mib = |p: u64| p as f64 * PAGE as f64 / (1 << 20) as f64;
        let mut lt = self.launch_times.clone();
        lt.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let rows = [
            ("clones", format!("{} × {}", self.clones, self.clone_config)),
            (
                "golden image",
                format!(
                    "{} ({} pages, {:.1} MiB), sealed from {}",
                    self.image,
                    self.image_pages,
                    mib(self.image_pages),
                    self.template
                ),
            ),
            (
                "pages written per clone",
                format!(
                    "{} ({}% of {} mapped)",
                    self.written_per_clone, self.write_percent, self.mapped_pages_per_clone
                ),
            ),
            (
                "pages shared",
                format!("{} (golden pages still mapped, all clones)", self.pages_shared),
            ),
            ("pages copied", format!("{} (CoW copies, all clones)", self.pages_copied)),
            (
                "memory used",
                format!(
                    "{:.1} MiB (image once + copies)",
                    mib(self.used_pages())
                ),
            ),
            (
                "without sharing",
                format!(
                    "{:.1} MiB ({} clones × {:.1} MiB); sharing saves {:.1}×",
                    mib(self.unshared_pages()),
                    self.clones,
                    mib(self.mapped_pages_per_clone),
                    self.unshared_pages() as f64 / self.used_pages().max(1) as f64
                ),
            ),
            (
                "faults served",
                format!(
                    "{} in {:.3} s = {:.0}/s (SIM_VM_WRITE requests through the RM); {} writes not served",
                    self.faults_served,
                    self.write_time.as_secs_f64(),
                    self.faults_per_sec(),
                    self.unserved_writes
                ),
            ),
            (
                "clone launch time",
                format!(
                    "median {:.1} µs (min {:.1}, max {:.1}; VM_ALLOC_VMID .. VM_START with the image mapped)",
                    us(self.launch_median()),
                    us(lt.first().copied().unwrap_or_default()),
                    us(lt.last().copied().unwrap_or_default())
                ),
            ),
            (
                "RM tables per clone",
                format!(
                    "{:.1} stage-2 table pages ({:.1} KiB) before any write",
                    self.table_pages_per_clone,
                    self.table_pages_per_clone * 4.0
                ),
            ),
            (
                "partition in use",
                format!(
                    "{} pages ({:.1} MiB), {} of them stage-2 tables",
                    self.partition_used_pages,
                    mib(self.partition_used_pages),
                    self.table_pages
                ),
            ),
            (
                "host memory",
                format!(
                    "{:.1} MiB of simulated memory backed (pages ever written) + {:.1} MiB of tables; peak resident {}",
                    mib(self.backed_pages),
                    mib(self.table_pages),
                    self.peak_resident_kib
                        .map_or("unknown".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
                ),
            ),
        ];
        let mut out = String::from("\n");
        for (k, v) in rows {
            out.push_str(&format!("  {k:<24} {v}\n"));
        }
        out
    }

    fn json(&self, log: &[String]) -> serde_json::Value {
        json!({
            "events": log,
            "template": self.template,
            "golden_image": self.image,
            "golden_digest": self.digest,
            "clone_config": self.clone_config,
            "clones": self.clones,
            "image_pages": self.image_pages,
            "mapped_pages_per_clone": self.mapped_pages_per_clone,
            "write_percent": self.write_percent,
            "written_pages_per_clone": self.written_per_clone,
            "pages_shared": self.pages_shared,
            "pages_copied": self.pages_copied,
            "memory_used_bytes": self.used_pages() * PAGE,
            "memory_without_sharing_bytes": self.unshared_pages() * PAGE,
            "faults_served": self.faults_served,
            "unserved_writes": self.unserved_writes,
            "write_seconds": self.write_time.as_secs_f64(),
            "faults_per_second": self.faults_per_sec(),
            "clone_launch_ns": self.launch_times.iter().map(|d| d.as_nanos() as u64).collect::<Vec<_>>(),
            "clone_launch_median_ns": self.launch_median().as_nanos() as u64,
            "table_pages_per_clone": self.table_pages_per_clone,
            "partition_used_pages": self.partition_used_pages,
            "table_pages": self.table_pages,
            "backed_pages": self.backed_pages,
            "peak_resident_bytes": self.peak_resident_kib.map(|k| k * 1024),
        })
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl Scenario {
    fn note_events(&mut self, ev: &[LaunchEvent]) {
        for e in ev {
            self.log.push(match e {
                LaunchEvent::Launched { name, vmid } => format!("launched {name} as VM {vmid:#x}"),
                LaunchEvent::Sealed(s) => format!(
                    "sealed {} from VM {:#x}: golden {}, {} MiB, sha256:{}",
                    s.name,
                    s.template,
                    s.id,
                    s.size >> 20,
                    hex(&s.digest)
                ),
                LaunchEvent::Failed(f) => format!("refused {f}"),
            });
        }
    }

    /// The scenario, or why it could not run (with the exit status: 2 for a `--clones` the RM
    /// cannot serve, 1 for everything else).
    fn run(&mut self, plan: LaunchPlan, args: &Args) -> Result<Figures, (String, u8)> {
        self.scenario(plan, args).map_err(|e| match e {
            Stop::Args(m) => (m, 2),
            Stop::Failed(m) => (m, 1),
        })
    }

    fn scenario(&mut self, plan: LaunchPlan, args: &Args) -> Result<Figures, Stop> {
        // The template and its image.
        let (tpl, tmpl) = plan
            .vms
            .iter()
            .enumerate()
            .find_map(|(i, v)| v.config.golden.template.clone().map(|t| (i, t)))
            .ok_or("no template VM (golden role = \"template\") in the configs")?;
        let tname = plan.vms[tpl].config.image_name.clone();
        // The clone config: a VM with a dynamic VMID, not protected, that maps this image
        // copy-on-write; one launched at boot (the everyday clone) is preferred.
        let candidates: Vec<_> = plan
            .vms
            .iter()
            .filter(|v| {
                v.config.vmid == VmidRequest::Dynamic
                    && !v.config.protected
                    && v.golden.iter().any(|m| {
                        m.template == tpl && matches!(m.mode, GoldenMode::CopyOnWrite { .. })
                    })
            })
            .collect();
        let clone = candidates
            .iter()
            .find(|v| v.config.launch == LaunchMode::Boot)
            .or(candidates.first())
            .copied()
            .ok_or("no clone config mapping the template's image copy-on-write")?;
        let cname = clone.config.image_name.clone();
        let cmap = clone
            .golden
            .iter()
            .find(|m| m.template == tpl)
            .cloned()
            .ok_or("clone mapping vanished")?;
        let mut l = Launch::new(&self.rm, plan);

        // Boot, then the template boots its OS (or its owner seals it).
        let ev = l.boot(&mut self.rm);
        self.note_events(&ev);
        let booted = l.instances_of(&tname).next().map(|i| i.vmid);
        let tvmid = match booted {
            Some(v) => v,
            None => {
                let v = l
                    .launch_vm(&mut self.rm, &tname)
                    .map_err(|e| e.to_string())?;
                self.log
                    .push(format!("launched {tname} as VM {v:#x} (on request)"));
                v
            }
        };
        let ev = if tmpl.seal_trigger == SealTrigger::OsRun {
            let req = VmSetStatusReq {
                vm_status: 0,
                os_status: OS_STATUS_RUN,
                app_status: 0.into(),
            };
            self.client
                .call(&mut self.rm, tvmid, &Request::VmSetStatus(req))
                .map_err(|e| format!("{tname}: VM_SET_STATUS: {e}"))?;
            self.log.push(format!("{tname} reports OS status RUN"));
            l.poll(&mut self.rm)
        } else {
            self.log
                .push(format!("{tname}: owner seals {}", tmpl.image_name));
            l.seal(&mut self.rm, &tname)
        };
        self.note_events(&ev);
        let img = l
            .sealed(&tmpl.image_name)
            .cloned()
            .ok_or_else(|| format!("{} was not sealed", tmpl.image_name))?;
        self.check("after the seal")?;

        // How many clones the RM can hold: its dynamic VMIDs not yet taken (by the boot VMs,
        // the template). Checked before any launch, so a count above it changes nothing.
        let room = (DYNAMIC_VMID_FIRST..DYNAMIC_VMID_FIRST + DYNAMIC_VMID_COUNT)
            .filter(|&v| !self.rm.vms().exists(v))
            .count() as u32;
        let count = match args.clones {
            Clones::Max => room,
            Clones::Count(n) if n > room => {
                return Err(Stop::Args(format!(
                    "--clones {n}: the RM has {room} dynamic VMIDs left for clones \
                     ({DYNAMIC_VMID_COUNT} in all, {} taken by the VMs running now); \
                     use --clones {room} or --clones max",
                    DYNAMIC_VMID_COUNT as u32 - room
                )))
            }
            Clones::Count(n) => n,
        };
        if count == 0 {
            return Err(Stop::Failed(
                "the RM has no dynamic VMID left for a clone".into(),
            ));
        }

        // Launch the clones on request, timed.
        let tables_before = self.rm.platform().partition_usage().tables;
        let mut clones = Vec::new();
        let mut launch_times = Vec::new();
        for _ in 0..count {
            let t = Instant::now();
            let r = l.launch_vm(&mut self.rm, &cname);
            launch_times.push(t.elapsed());
            clones.push(r.map_err(|e| format!("clone {}: {e}", clones.len()))?);
        }
        let tables_after = self.rm.platform().partition_usage().tables;
        self.log.push(format!(
            "launched {} clones of {cname}: VMs {}",
            clones.len(),
            clones
                .iter()
                .map(|v| format!("{v:#x}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        self.check("after the clone launches")?;

        // Each clone writes `write_percent` of its golden pages, spread evenly.
        let mapped = cmap.size / PAGE;
        let written = mapped * args.write_percent as u64 / 100;
        let pages: Vec<u64> = (0..written).map(|j| j * mapped / written.max(1)).collect();
        let mut served = 0u64;
        let mut unserved = 0u64;
        let t = Instant::now();
        for (k, &v) in clones.iter().enumerate() {
            for &p in &pages {
                let data = stamp(k, p);
                let w = SimVmWrite {
                    vmid: v,
                    ipa: cmap.ipa + p * PAGE,
                    data: &data,
                };
                match self
                    .client
                    .call(&mut self.rm, HLOS, &Request::SimVmWrite(w))
                {
                    Ok(r) => served += u32_at(&r) as u64,
                    Err(RmError::MemInvalid) => unserved += 1,
                    Err(e) => return Err(format!("SIM_VM_WRITE to VM {v:#x}: {e}").into()),
                }
            }
        }
        let write_time = t.elapsed();
        self.log.push(format!(
            "each clone wrote {written} of its {mapped} golden pages ({}%)",
            args.write_percent
        ));

        // Read back: the first and last written pages hold the clone's stamp, an
        // unwritten page still holds the golden contents.
        let image_off = |p: u64| cmap.offset + p * PAGE;
        for (k, &v) in clones.iter().enumerate() {
            for &p in pages.first().iter().chain(pages.last().iter()) {
                let got = self.read(v, cmap.ipa + p * PAGE)?;
                if got != stamp(k, *p) && unserved == 0 {
                    return Err(format!("VM {v:#x} page {p}: read back {got:?}").into());
                }
            }
            if let Some(p) = (0..mapped).find(|p| !pages.contains(p)) {
                let got = self.read(v, cmap.ipa + p * PAGE)?;
                let mut want = [0u8; 16];
                self.golden_bytes(&img, image_off(p), &mut want);
                if got != want {
                    return Err(
                        format!("VM {v:#x} unwritten page {p} differs from the image").into(),
                    );
                }
            }
        }
        self.check("after the writes")?;

        // The RM's own figures, through VM_MEM_STATS.
        let mut shared = 0;
        let mut copied = 0;
        for &v in &clones {
            let r = self
                .client
                .call(&mut self.rm, HLOS, &Request::VmMemStats(VmidReq::new(v)))
                .map_err(|e| format!("VM_MEM_STATS {v:#x}: {e}"))?;
            let s =
                VmMemStatsReply::decode(&r).map_err(|e| format!("VM_MEM_STATS reply: {e:?}"))?;
            shared += s.golden_mapped_pages.get();
            copied += s.cow_copied_pages.get();
        }
        let usage = self.rm.platform().partition_usage();
        Ok(Figures {
            template: tname,
            image: img.name.clone(),
            digest: hex(&img.digest),
            clone_config: cname,
            clones: clones.len() as u64,
            image_pages: img.size / PAGE,
            mapped_pages_per_clone: mapped,
            write_percent: args.write_percent,
            written_per_clone: written,
            pages_shared: shared,
            pages_copied: copied,
            faults_served: served,
            unserved_writes: unserved,
            write_time,
            launch_times,
            table_pages_per_clone: (tables_after - tables_before) as f64 / clones.len() as f64,
            partition_used_pages: usage.total - usage.free,
            table_pages: usage.tables,
            backed_pages: self.rm.platform().arena().lock().backed_pages(),
            peak_resident_kib: peak_resident_kib(),
        })
    }

    /// 16 bytes of VM `vmid`'s memory at `ipa`, through SIM_VM_READ.
    fn read(&mut self, vmid: u16, ipa: u64) -> Result<[u8; 16], String> {
        let r = self
            .client
            .call(
                &mut self.rm,
                HLOS,
                &Request::SimVmRead(SimVmReadReq::new(vmid, 16, ipa)),
            )
            .map_err(|e| format!("SIM_VM_READ VM {vmid:#x} at {ipa:#x}: {e}"))?;
        r.as_slice()
            .try_into()
            .map_err(|_| format!("SIM_VM_READ returned {} bytes", r.len()))
    }

    /// The golden image's bytes at `off` (straight from its pages, for the comparison).
    fn golden_bytes(&self, img: &gunyah_rm::launch::SealedImage, off: u64, out: &mut [u8]) {
        if let Some(pa) = self.rm.golden(img.id).and_then(|g| g.pa_of(off)) {
            self.rm.platform().read(pa, out);
        }
    }

    fn check(&mut self, when: &str) -> Result<(), String> {
        let v = self.rm.check_isolation();
        if v.is_empty() {
            self.log.push(format!("isolation check {when}: ok"));
            Ok(())
        } else {
            Err(format!(
                "isolation check {when}: {} violations: {v:?}",
                v.len()
            ))
        }
    }
}

/// What clone `k` writes at the start of golden page `p`.
fn stamp(k: usize, p: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(k as u64 + 1).to_le_bytes());
    b[8..].copy_from_slice(&p.to_le_bytes());
    b
}

fn u32_at(d: &[u8]) -> u32 {
    d.get(..4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}
