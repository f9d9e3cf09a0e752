//! DESIGN.md target: CoW fault service on the RM side, from the decoded fault
//! (`gunyah_stage2::Fault`, as the platform hands it over with the IPA resolved) to
//! "resumable" (`Rm::handle_fault` returns `Copied`): quota check, page allocation, 4 KiB copy,
//! block split where the fault is inside a block, break-before-make replace, TLB invalidate,
//! records. Golden pages are cold: each fault hits a page no one has touched since setup,
//! spread over the whole image. Baselines in the same run: a plain 4 KiB memcpy from a cold
//! source (random pages of a 256 MiB buffer) and the simulator's own `PhysMem::copy` of a page.
//! Varies the VMs sharing the image (1, 8, 64) and the image size (1 MiB .. 4 GiB).
//! Prints the ratios at the end. Run: `cargo bench -p gunyah-rm --bench cow_fault`.

#[path = "common/mod.rs"]
mod common;

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
use gunyah_stage2::Fault;

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
    fault: Fault,
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
        // Spread: each fault in its own part of the image (a block split on nearly every
        // fault); dense: consecutive pages (one split per 2 MiB, as a clone dirtying a region).
        let pages: Vec<u64> = if spread {
            (0..n).map(|j| j * npages / n).collect()
        } else {
            (0..n).collect()
        };
        // Real contents on the pages that will be copied.
        for &p in &pages {
            let pa = HLOS_BASE + p * PAGE;
            rm.platform_mut().write(pa, &(p + 1).to_le_bytes());
        }
        let acl = [AclEntry::new(clones[0], rights::RWX)];
        let sgl = [SglEntry::new(HLOS_BASE, size)];
        let lend = MemCreate {
            mem_type: 0,
            flags: 0,
            label: 0,
            acl: &acl,
            sgl: &sgl,
            attrs: &[],
        };
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

    /// Unmap and map every clone again (its copies go back to its pool), untimed.
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
        self.done = 0;
    }

    /// Time `iters` faults, each on a fresh page, rotating over the clones.
    fn run(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        let mut left = iters;
        let n = self.clones.len() as u64;
        while left > 0 {
            if self.fresh() == 0 {
                self.renew();
            }
            let batch = left.min(self.fresh());
            let mut copied = 0u64;
            let t = Instant::now();
            for k in self.done..self.done + batch {
                let v = self.clones[(k % n) as usize];
                let ipa = CLONE_IPA + self.pages[(k / n) as usize] * PAGE;
                self.fault.ipa = Some(ipa);
                let o = self.rm.handle_fault(v, black_box(&self.fault));
                copied += matches!(o, FaultOutcome::Copied { .. }) as u64;
            }
            total += t.elapsed();
            assert_eq!(copied, batch, "every fault must make one copy");
            self.done += batch;
            left -= batch;
            let _ = self.rm.drain_outgoing();
        }
        total
    }
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
    (64, 64 * MIB, false),
    (64, 4 * GIB, false),
    (1, 64 * MIB, true),
    (1, 4 * GIB, true),
    (64, 4 * GIB, true),
];

fn case_id(vms: usize, size: u64, spread: bool) -> String {
    let how = if spread { "spread" } else { "dense" };
    format!("{vms}vm/{}/{how}", size_name(size))
}

fn main() {
    let mut c = common::criterion();
    let mut g = c.benchmark_group("cow_fault");
    // Baselines: 4 KiB memcpy from DRAM. "stream": 256 MiB copied in 4 KiB steps, as
    // anchors.md C.9 measured it (prefetch-friendly); "random": random pages of 256 MiB
    // (every copy also misses the TLB, like a fault on a cold golden page).
    {
        let src = vec![0x5au8; 256 << 20];
        // Written, so no page of it faults in the timed loop.
        let mut dst = vec![1u8; 256 << 20];
        let mut pos = 0usize;
        g.bench_function("memcpy_4k_stream", |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    dst[pos..pos + 4096].copy_from_slice(black_box(&src[pos..pos + 4096]));
                    pos = (pos + 4096) % (256 << 20);
                }
                black_box(&dst);
                common::record("memcpy_4k_stream", t.elapsed(), iters)
            })
        });
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        g.bench_function("memcpy_4k_random", |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for i in 0..iters {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let s = ((x >> 33) % 65536) as usize * 4096;
                    let d = (i % 16384) as usize * 4096;
                    dst[d..d + 4096].copy_from_slice(black_box(&src[s..s + 4096]));
                }
                black_box(&dst);
                common::record("memcpy_4k_random", t.elapsed(), iters)
            })
        });
    }
    // The simulator's page copy (what the fault path's copy costs on this platform).
    {
        let mut rm = sim_rm(SimConfig::default(), RmConfig::default()).unwrap();
        let pas: Vec<u64> = (0..1024)
            .map(|_| rm.platform_mut().alloc_page().unwrap())
            .collect();
        for (i, &pa) in pas.iter().enumerate() {
            rm.platform_mut().write(HLOS_BASE + i as u64 * PAGE, &[1]);
            rm.platform_mut().write(pa, &[2]);
        }
        g.bench_function("sim_copy_4k", |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for i in 0..iters {
                    let k = (i % 1024) as usize;
                    black_box(
                        rm.platform_mut()
                            .copy(pas[k], HLOS_BASE + k as u64 * PAGE, PAGE),
                    );
                }
                common::record("sim_copy_4k", t.elapsed(), iters)
            })
        });
    }
    // Criterion's name filter (the first free argument): skip the setup of cases it excludes.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-') && a != "--bench");
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
        g.bench_with_input(BenchmarkId::new("fault", &id), &id, |b, id| {
            b.iter_custom(|iters| {
                let d = st.run(iters);
                common::record(id, d, iters)
            })
        });
        let v = st.rm.check_isolation();
        assert!(v.is_empty(), "isolation violations after {id}: {v:?}");
    }
    g.finish();
    c.final_summary();
    report();
}

/// (VMs, image size, spread, median fault ns).
type Row = (usize, u64, bool, f64);

fn report() {
    let Some(memcpy) = common::median("memcpy_4k_stream") else {
        return;
    };
    let random = common::median("memcpy_4k_random");
    println!("\nCoW fault service vs 4 KiB memcpy (medians of this run's criterion samples)");
    println!("  memcpy 4 KiB from DRAM, streaming     : {memcpy:8.0} ns  (the baseline)");
    if let Some(r) = random {
        println!("  memcpy 4 KiB from DRAM, random pages  : {r:8.0} ns");
    }
    if let Some(s) = common::median("sim_copy_4k") {
        println!(
            "  simulator PhysMem::copy of one page   : {s:8.0} ns ({:.2} x baseline)",
            s / memcpy
        );
    }
    println!(
        "  {:>4} {:>7} {:>7} {:>10} {:>12} {:>10}",
        "VMs", "golden", "faults", "fault ns", "x streaming", "x random"
    );
    let mut rows: Vec<Row> = Vec::new();
    for &(vms, size, spread) in CASES {
        if let Some(f) = common::median(&case_id(vms, size, spread)) {
            let xr = random.map_or(String::from("-"), |r| format!("{:.2}", f / r));
            let how = if spread { "spread" } else { "dense" };
            println!(
                "  {vms:>4} {:>7} {how:>7} {f:>10.0} {:>12.2} {xr:>10}",
                size_name(size),
                f / memcpy
            );
            rows.push((vms, size, spread, f));
        }
    }
    let ratio = |v: Vec<f64>| {
        let max = v.iter().copied().fold(f64::MIN, f64::max);
        let min = v.iter().copied().fold(f64::MAX, f64::min);
        max / min
    };
    let pick = |f: &dyn Fn(&Row) -> bool| -> Vec<f64> {
        rows.iter().filter(|c| f(c)).map(|c| c.3).collect()
    };
    let vms = pick(&|c| c.1 == 64 * MIB && !c.2);
    if vms.len() > 1 {
        println!(
            "  flatness over 1..64 VMs (64 MiB, dense): max/min = {:.2}",
            ratio(vms)
        );
    }
    let sizes = pick(&|c| c.0 == 1 && !c.2);
    if sizes.len() > 1 {
        println!(
            "  flatness over 1 MiB..4 GiB (1 VM, dense): max/min = {:.2}",
            ratio(sizes)
        );
    }
}
