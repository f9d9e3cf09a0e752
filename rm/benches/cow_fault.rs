//! DESIGN.md target: CoW fault service on the RM side, from the decoded fault
//! (`gunyah_stage2::Fault`, as the platform hands it over with the IPA resolved) to
//! "resumable" (`Rm::handle_fault` returns `Copied`), next to the anchors of `common/anchor.rs`
//! measured the same way in the same process: a cold 4 KiB memcpy (the physical limit) and
//! Linux's own copy-on-write write faults (file-backed `MAP_PRIVATE`, fork), before and after
//! the RM's cases. The memcpy is measured twice: up to the end of its instructions (the
//! target's baseline as DESIGN.md words it) and up to its stores' completion (a full fence in
//! the timed region, `anchor::complete`), which every fault pays before it resumes the vCPU;
//! each timed fault ends with the same fence, so both sides of that ratio count the same thing.
//!
//! What each timed fault contains: quota check, page allocation, the 4 KiB copy, the block split
//! where the fault is inside a block (2 MiB, or 1 GiB and 2 MiB), break-before-make replace, TLB
//! invalidate (a counter on the host: see docs/PERFORMANCE.md), records, and its share of the
//! COW_BROKEN notification: the RM's outbox is drained (notifications built and encoded) every
//! [`DRAIN_EVERY`] faults inside the timed region, as the RM's poll loop does after a burst.
//! What is cold: every golden source page is evicted from the CPU caches before its fault, and
//! so is every destination page the allocator can hand out (the copies freed by the untimed
//! renewal of the mappings are evicted after it). Every faulted golden page holds data, so the
//! simulator really copies it. One untimed pass first gives every partition page used a host
//! page, so no host page fault is timed. The RM's own records and tables are as the workload
//! leaves them.
//!
//! Cases: 1, 8 or 64 VMs mapping a 1 MiB .. 4 GiB image (1 GiB / 2 MiB blocks where aligned);
//! faults rotate over the VMs, each VM starting at its own offset in the pages (consecutive
//! faults copy different golden pages); *dense* = consecutive pages of each VM (one split per 2 MiB),
//! *spread* = pages 8 MiB apart (a split on every fault). Run:
//! `cargo bench -p gunyah-rm --bench cow_fault` (shorter: `-- --warm-up-time 1 --measurement-time 3`).
//!
//! Diagnostics, off unless asked for (they measure less than the target counts; the report then
//! says so): `COW_FAULT_DIAG=warm-records` serves a read fault on the same page right before
//! each timed fault, untimed (the VM's records, range and table walk brought into the caches),
//! and `COW_FAULT_DIAG=untimed-drain` leaves the outbox drains out of the timed region; both:
//! `warm-records,untimed-drain`. What the many-VM cases pay for cold records and for the drain
//! is the difference to a run without (docs/PERFORMANCE.md).

#[path = "common/mod.rs"]
mod common;

#[path = "common/anchor.rs"]
mod anchor;
#[path = "common/pin.rs"]
mod pin;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::BenchmarkId;
use gunyah_rm::cow::FaultOutcome;
use gunyah_rm::launch::Client;
use gunyah_rm::sim::{sim_rm, SimConfig, SimPlatform};
use gunyah_rm::{PhysMem, Rm, RmConfig};
use gunyah_rm_abi::ext::{map_flags, GmemCreateReq, GoldenMapReq, GoldenSealReq, GoldenUnmapReq};
use gunyah_rm_abi::mem::{rights, AclEntry, MemCreate, SglEntry};
use gunyah_rm_abi::vm::VmidReq;
use gunyah_rm_abi::Request;
use gunyah_stage2::{Access, Fault};

#[global_allocator]
static ALLOC: common::Counting = common::Counting;

const HLOS: u16 = 3;
const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const HLOS_BASE: u64 = 0x4000_0000;
/// Where each clone maps the image (1 GiB aligned, so 1 GiB / 2 MiB blocks are used).
const CLONE_IPA: u64 = 0x80_0000_0000;
/// Distinct golden pages each clone faults on before its mapping is renewed.
const FAULT_PAGES: u64 = 512;
/// Faults between two drains of the RM's outbox (COW_BROKEN notifications sent).
const DRAIN_EVERY: u64 = 64;
/// ESR_EL2 of a data abort from EL1 (EC 0x24), 32-bit instruction, write (WnR), permission
/// fault level 3 (DFSC 0x0F).
const ESR_WRITE_PERM: u64 = (0x24 << 26) | (1 << 25) | (1 << 6) | 0x0F;

fn u32_of(d: &[u8]) -> u32 {
    u32::from_le_bytes(d[..4].try_into().unwrap())
}

struct Cow {
    rm: Rm<SimPlatform>,
    client: Client,
    golden: u32,
    size: u64,
    clones: Vec<u16>,
    pages: Vec<u64>,
    /// Faults taken since the mappings were last renewed.
    done: u64,
    /// Host page faults taken in `run`'s loops outside the renewals (the timed faults and
    /// drains, and the untimed evictions around them).
    loop_host_faults: i64,
    /// Copies made since then (evicted from the caches after the renewal frees them).
    copies: Vec<u64>,
    fault: Fault,
}

/// Evict the simulated page at `pa` from the CPU caches.
fn evict_pa(rm: &Rm<SimPlatform>, pa: u64) {
    if let Some(p) = rm.platform().arena().lock().host_ptr(pa) {
        anchor::evict(p, PAGE as usize);
    }
}

impl Cow {
    fn new(vms: usize, size: u64, spread: bool) -> Cow {
        let hlos = (size + 64 * MIB).div_ceil(GIB) * GIB;
        let sim = SimConfig {
            hlos_ram: (HLOS_BASE, hlos),
            partition_base: (HLOS_BASE + hlos).div_ceil(GIB) * GIB,
            // Copies plus split tables: 64 clones x 512 faults, each in its own 2 MiB block.
            partition_pages: 131072,
            ipa_bits: 40,
        };
        let mut rm = sim_rm(sim, RmConfig::default()).unwrap();
        let mut c = Client::new();
        let mut clones = Vec::new();
        for k in 0..vms {
            // 63 dynamic VMIDs; the 64th VM gets a static one.
            let want = if k < 63 { 0 } else { 0x10 };
            let r = c
                .call(&mut rm, HLOS, &Request::VmAllocVmid(VmidReq::new(want)))
                .unwrap();
            clones.push(if want == 0 { u32_of(&r) as u16 } else { want });
        }
        let npages = size / PAGE;
        let n = FAULT_PAGES.min(npages);
        // Spread: 8 MiB apart in a 4 GiB image, each fault in its own 2 MiB block (a split on
        // every fault); dense: consecutive pages (one split per 2 MiB, a clone dirtying a region).
        let pages: Vec<u64> = if spread {
            (0..n).map(|j| j * npages / n).collect()
        } else {
            (0..n).collect()
        };
        // A whole page of data on every page that will be copied.
        for &p in &pages {
            let data: Vec<u8> = (0..PAGE).map(|i| (p + i) as u8 | 1).collect();
            rm.platform_mut().write(HLOS_BASE + p * PAGE, &data);
        }
        let acl = [AclEntry::new(clones[0], rights::RWX)];
        let sgl = [SglEntry::new(HLOS_BASE, size)];
        let lend = MemCreate::normal(&acl, &sgl);
        let h = u32_of(&c.call(&mut rm, HLOS, &Request::MemLend(lend)).unwrap());
        let seal = c
            .call(&mut rm, HLOS, &Request::GoldenSeal(GoldenSealReq::new(h)))
            .unwrap();
        let golden = u32_of(&seal);
        let fault = Fault::decode(ESR_WRITE_PERM, CLONE_IPA, 0).unwrap();
        let mut s = Cow {
            rm,
            client: c,
            golden,
            size,
            clones,
            pages,
            done: 0,
            loop_host_faults: 0,
            copies: Vec::new(),
            fault,
        };
        for k in 0..s.clones.len() {
            let v = s.clones[k];
            let r = s
                .client
                .call(
                    &mut s.rm,
                    HLOS,
                    &Request::GmemCreate(GmemCreateReq::new(FAULT_PAGES * PAGE, 0, v)),
                )
                .unwrap();
            s.map(v, u32_of(&r));
        }
        // One untimed pass: every partition page the faults will use gets its host page.
        let all = s.fresh();
        s.run(all);
        s
    }

    fn map(&mut self, v: u16, gmem: u32) {
        let m = GoldenMapReq::new(
            self.golden,
            v,
            map_flags::COW,
            0,
            CLONE_IPA,
            self.size,
            gmem,
        );
        self.client
            .call(&mut self.rm, HLOS, &Request::GoldenMap(m))
            .unwrap();
    }

    /// Faults left before the mappings must be renewed.
    fn fresh(&self) -> u64 {
        self.clones.len() as u64 * self.pages.len() as u64 - self.done
    }

    /// Unmap and map every clone again (its copies go back to the partition), untimed; then
    /// evict the freed copies, which the next faults get again.
    fn renew(&mut self) {
        let _ = self.rm.drain_outgoing();
        for k in 0..self.clones.len() {
            let v = self.clones[k];
            let gmem = self
                .rm
                .golden_mappings(v)
                .next()
                .and_then(|m| m.map.pool)
                .unwrap();
            let u = GoldenUnmapReq::new(self.golden, v, CLONE_IPA, self.size);
            self.client
                .call(&mut self.rm, HLOS, &Request::GoldenUnmap(u))
                .unwrap();
            self.map(v, gmem);
        }
        for pa in std::mem::take(&mut self.copies) {
            evict_pa(&self.rm, pa);
        }
        self.done = 0;
    }

    /// Time `iters` faults, each on a page no clone faulted since the renewal, rotating over
    /// the clones, with the outbox drained every `DRAIN_EVERY` faults.
    fn run(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        let n = self.clones.len() as u64;
        let mut renewal_faults = 0;
        let f0 = anchor::host_page_faults();
        for _ in 0..iters {
            if self.fresh() == 0 {
                let r0 = anchor::host_page_faults();
                self.renew();
                renewal_faults += anchor::host_page_faults() - r0;
            }
            let k = self.done;
            let v = self.clones[(k % n) as usize];
            // Each VM starts its pages at its own offset (VM i at page i × len / n of the
            // list), so consecutive faults copy different golden pages, as with one VM: every
            // VM still faults once on every page per renewal, in its order (dense: consecutive
            // pages, the same splits), each page evicted before its fault. Before, the n VMs
            // copied the same golden page one after another, each time just flushed from the
            // caches: a re-read of a line flushed a microsecond earlier cost 50-100 ns more than
            // a cold page (docs/PERFORMANCE.md), which a real system does not pay (a page read
            // that recently is in its caches) and the one-VM case and the baseline did not.
            let len = self.pages.len() as u64;
            let p = self.pages[((k / n + (k % n) * (len / n)) % len) as usize];
            evict_pa(&self.rm, HLOS_BASE + p * PAGE);
            self.fault.ipa = Some(CLONE_IPA + p * PAGE);
            if diag().warm_records {
                black_box(
                    self.rm
                        .handle_access_fault(v, CLONE_IPA + p * PAGE, Access::Read),
                );
            }
            let t = Instant::now();
            let o = self.rm.handle_fault(v, black_box(&self.fault));
            // The same end as the completed memcpy's: the copy's stores have landed (the RM's
            // own locked instructions after the copy already waited for them, so this costs
            // only the fence itself).
            anchor::complete();
            total += t.elapsed();
            let FaultOutcome::Copied { pa } = o else {
                panic!("fault {k} on VM {v:#x} page {p}: {o:?}, not a copy");
            };
            self.copies.push(pa);
            self.done += 1;
            if self.done.is_multiple_of(DRAIN_EVERY) || self.fresh() == 0 {
                let t = Instant::now();
                black_box(self.rm.drain_outgoing());
                if !diag().untimed_drain {
                    total += t.elapsed();
                }
            }
        }
        self.loop_host_faults += anchor::host_page_faults() - f0 - renewal_faults;
        total
    }
}

/// The diagnostics `COW_FAULT_DIAG` asks for (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
struct Diag {
    warm_records: bool,
    untimed_drain: bool,
}

fn diag() -> Diag {
    static D: std::sync::OnceLock<Diag> = std::sync::OnceLock::new();
    *D.get_or_init(|| {
        let v = std::env::var("COW_FAULT_DIAG").unwrap_or_default();
        let mut d = Diag::default();
        for w in v.split(',').filter(|w| !w.is_empty()) {
            match w {
                "warm-records" => d.warm_records = true,
                "untimed-drain" => d.untimed_drain = true,
                _ => panic!("COW_FAULT_DIAG: unknown {w:?} (warm-records, untimed-drain)"),
            }
        }
        d
    })
}

fn size_name(b: u64) -> String {
    if b >= GIB {
        format!("{}GiB", b / GIB)
    } else {
        format!("{}MiB", b / MIB)
    }
}

/// (VMs sharing the image, image size, spread faults).
const CASES: &[(usize, u64, bool)] = &[
    (1, MIB, false),
    (1, 64 * MIB, false),
    (1, GIB, false),
    (1, 4 * GIB, false),
    (8, 64 * MIB, false),
    (64, MIB, false),
    (64, 64 * MIB, false),
    (64, 4 * GIB, false),
    (1, 64 * MIB, true),
    (1, GIB, true),
    (1, 4 * GIB, true),
    (64, 4 * GIB, true),
];

fn case_id(vms: usize, size: u64, spread: bool) -> String {
    let how = if spread { "spread" } else { "dense" };
    format!("{vms}vm/{}/{how}", size_name(size))
}

/// The memcpy baselines, as criterion benchmarks named `memcpy_4k_cold{suffix}` (up to the
/// copy's instructions' end) and `memcpy_4k_complete{suffix}` (up to its stores' completion).
fn memcpy_anchors(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    memcpy: &mut anchor::Memcpy,
    suffix: &str,
) {
    for (name, complete) in [("cold", false), ("complete", true)] {
        let id = format!("memcpy_4k_{name}{suffix}");
        g.bench_function(&id, |b| {
            b.iter_custom(|iters| {
                let d = if complete {
                    memcpy.run_complete(iters)
                } else {
                    memcpy.run(iters)
                };
                common::record(&id, d, iters)
            })
        });
    }
}

/// The Linux anchors, as criterion benchmarks named `linux_*_{when}`.
fn linux_anchors(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    when: &str,
) {
    let mut file = anchor::FileCow::new();
    let id = format!("linux_file_cow_{when}");
    g.bench_function(&id, |b| {
        b.iter_custom(|iters| common::record(&id, file.run(iters), iters))
    });
    drop(file);
    let mut fork = anchor::ForkCow::new();
    let id = format!("linux_fork_cow_{when}");
    g.bench_function(&id, |b| {
        b.iter_custom(|iters| common::record(&id, fork.run(iters), iters))
    });
    drop(fork);
    let mut touch = anchor::FirstTouch::new();
    let id = format!("linux_first_touch_{when}");
    g.bench_function(&id, |b| {
        b.iter_custom(|iters| common::record(&id, touch.run(iters), iters))
    });
}

fn main() {
    let cpu = pin::pin_to_current_cpu();
    let mut c = common::criterion();
    let mut g = c.benchmark_group("cow_fault");
    g.bench_function("timer", |b| {
        b.iter_custom(|iters| common::record("timer", anchor::timer_overhead(iters), iters))
    });
    let mut memcpy = anchor::Memcpy::new();
    memcpy_anchors(&mut g, &mut memcpy, "");
    linux_anchors(&mut g, "before");
    let filter = common::name_filter();
    for &(vms, size, spread) in CASES {
        let id = case_id(vms, size, spread);
        if filter
            .as_ref()
            .is_some_and(|f| !format!("cow_fault/fault/{id}").contains(f.as_str()))
        {
            continue;
        }
        let t = Instant::now();
        let mut st = Cow::new(vms, size, spread);
        eprintln!(
            "cow_fault: {id} set up in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        // The baseline again right before the case (the shared machine's load drifts over a
        // run): 64 batches of 256 cold copies, median per copy.
        let f0 = anchor::host_page_faults();
        let mut near: Vec<f64> = (0..64)
            .map(|_| memcpy.run(256).as_nanos() as f64 / 256.0)
            .collect();
        near.sort_by(f64::total_cmp);
        NEAR.lock()
            .unwrap()
            .insert(id.clone(), near[near.len() / 2]);
        eprintln!(
            "cow_fault: {id}: {} host page faults while its memcpy baseline was measured",
            anchor::host_page_faults() - f0
        );
        let f0 = anchor::host_page_faults();
        st.loop_host_faults = 0;
        g.bench_with_input(BenchmarkId::new("fault", &id), &id, |b, id| {
            b.iter_custom(|iters| {
                let d = st.run(iters);
                common::record(id, d, iters)
            })
        });
        // Host page faults are not the RM's work: there should be none in the loop of timed
        // faults. The count for the whole measurement also has the untimed renewals and
        // criterion's own analysis.
        eprintln!(
            "cow_fault: {id}: {} host page faults in the loops of timed faults (renewals \
             excluded), {} while measured in all",
            st.loop_host_faults,
            anchor::host_page_faults() - f0
        );
        let v = st.rm.check_isolation();
        assert!(v.is_empty(), "isolation violations after {id}: {v:?}");
    }
    // The baseline again, and Linux, after the RM's cases (the machine is shared: a drift
    // between the two shows in the report).
    memcpy_anchors(&mut g, &mut memcpy, "_after");
    linux_anchors(&mut g, "after");
    g.finish();
    c.final_summary();
    report(cpu);
}

/// The cold memcpy measured right before each case, by case id.
static NEAR: std::sync::Mutex<std::collections::BTreeMap<String, f64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// (VMs, image size, spread, median fault ns).
type Row = (usize, u64, bool, f64);

fn report(cpu: Option<usize>) {
    let m = |id: &str| common::median(id);
    let both = |a: &str, b: &str| match (m(a), m(b)) {
        (Some(x), Some(y)) => Some((x + y) / 2.0),
        (x, y) => x.or(y),
    };
    let Some(memcpy) = both("memcpy_4k_cold", "memcpy_4k_cold_after") else {
        return;
    };
    let linux = both("linux_file_cow_before", "linux_file_cow_after");
    let complete = both("memcpy_4k_complete", "memcpy_4k_complete_after");
    println!(
        "\nCoW fault service vs a cold 4 KiB memcpy and Linux's CoW faults (medians of this run's \
         criterion samples; pinned to CPU {})",
        cpu.map_or("none".into(), |c| c.to_string())
    );
    let d = diag();
    if d.warm_records || d.untimed_drain {
        println!("  DIAGNOSTIC RUN, not the target's figure: {d:?} (COW_FAULT_DIAG)");
    }
    let show = |name: &str, a: &str, b: &str| {
        if let (Some(x), Some(y)) = (m(a), m(b)) {
            println!(
                "  {name:<38} before {x:7.0} ns  after {y:7.0} ns  ({:.2} x memcpy)",
                (x + y) / 2.0 / memcpy
            );
        }
    };
    if let Some(t) = m("timer") {
        println!(
            "  {:<38} {t:7.0} ns (in every figure)",
            "empty timed region"
        );
    }
    show(
        "memcpy 4 KiB, cold source and dest",
        "memcpy_4k_cold",
        "memcpy_4k_cold_after",
    );
    show(
        "the same, completed (fence)",
        "memcpy_4k_complete",
        "memcpy_4k_complete_after",
    );
    show(
        "Linux MAP_PRIVATE file CoW fault",
        "linux_file_cow_before",
        "linux_file_cow_after",
    );
    show(
        "Linux fork CoW fault",
        "linux_fork_cow_before",
        "linux_fork_cow_after",
    );
    show(
        "Linux first touch (zero fill)",
        "linux_first_touch_before",
        "linux_first_touch_after",
    );
    println!(
        "  {:>4} {:>7} {:>7} {:>10} {:>10} {:>10} {:>10} {:>12} {:>10}",
        "VMs",
        "golden",
        "faults",
        "fault ns",
        "x memcpy",
        "x complete",
        "x Linux",
        "memcpy next",
        "x next"
    );
    let mut rows: Vec<Row> = Vec::new();
    for &(vms, size, spread) in CASES {
        if let Some(f) = m(&case_id(vms, size, spread)) {
            let how = if spread { "spread" } else { "dense" };
            let xl = linux.map_or("-".into(), |l| format!("{:.2}", f / l));
            let xc = complete.map_or("-".into(), |c| format!("{:.2}", f / c));
            let near = NEAR
                .lock()
                .unwrap()
                .get(&case_id(vms, size, spread))
                .copied();
            let (nn, xn) = near.map_or(("-".into(), "-".into()), |n| {
                (format!("{n:.0}"), format!("{:.2}", f / n))
            });
            println!(
                "  {vms:>4} {:>7} {how:>7} {f:>10.0} {:>10.2} {xc:>10} {xl:>10} {nn:>12} {xn:>10}",
                size_name(size),
                f / memcpy
            );
            rows.push((vms, size, spread, f));
        }
    }
    let flat = |name: &str, v: Vec<f64>| {
        if v.len() > 1 {
            let max = v.iter().copied().fold(f64::MIN, f64::max);
            let min = v.iter().copied().fold(f64::MAX, f64::min);
            println!("  flatness {name}: max/min = {:.2}", max / min);
        }
    };
    let pick = |f: &dyn Fn(&Row) -> bool| -> Vec<f64> {
        rows.iter().filter(|c| f(c)).map(|c| c.3).collect()
    };
    flat(
        "over 1..64 VMs (64 MiB, dense)",
        pick(&|c| c.1 == 64 * MIB && !c.2),
    );
    flat(
        "over 1 MiB..4 GiB (1 VM, dense)",
        pick(&|c| c.0 == 1 && !c.2),
    );
    flat("over every case", pick(&|_| true));
}
