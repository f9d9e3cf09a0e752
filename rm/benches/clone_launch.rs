//! DESIGN.md target: clone launch with a 512 MiB golden image (config → VM running with the
//! golden mapped) against copying 512 MiB, and RM memory per clone (tables + records) before
//! any CoW. Three measurements in one run:
//! * `copy_512m`: `copy_from_slice` of 512 MiB between two pre-touched buffers (the baseline);
//! * `rm_clone`: VM_ALLOC_VMID + GMEM_CREATE + GOLDEN_MAP (copy-on-write) of a 512 MiB image
//!   sealed from a HLOS parcel (physically contiguous, so 2 MiB / 1 GiB blocks), as encoded
//!   requests through the RM's request path;
//! * `config_clone`: `Launch::launch_vm` of a clone config whose template's 512 MiB of RAM was
//!   sealed (`launch.rs`: VMID, gmem pool and binding, golden map with quota, DT image parcel,
//!   VM_CONFIG_IMAGE, VM_INIT, VM_START), from `.dts` configs compiled with dtc.
//!
//!   The template's and the clone's `ipa-bits` are those of the shipped zygote and app clone
//!   (`vm-configs/`: 39, one root table page) on a 40-bit platform;
//! * `config_clone_ipa40`: the same configs without `ipa-bits`, at the platform's 40 bits (two
//!   concatenated root table pages).
//!
//! Each clone is torn down (untimed) before the next. Prints ratios and per-clone memory.
//! Run: `cargo bench -p gunyah-rm --bench clone_launch`.

#[path = "common/clone.rs"]
mod clone;
#[path = "common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use gunyah_rm::launch::Client;
use gunyah_rm::sim::{sim_rm, SimConfig, SimPlatform};
use gunyah_rm::{PhysMem, Rm, RmConfig};
use gunyah_rm_abi::ext::{map_flags, GmemCreateReq, GoldenMapReq, GoldenSealReq};
use gunyah_rm_abi::mem::{rights, AclEntry, MemCreate, SglEntry};
use gunyah_rm_abi::vm::VmidReq;
use gunyah_rm_abi::Request;

#[global_allocator]
static ALLOC: common::Counting = common::Counting;

const HLOS: u16 = 3;
const MIB: u64 = 1 << 20;
const GOLDEN: u64 = 512 * MIB;
const CLONE_IPA: u64 = 0x80_0000_0000;

fn u32_of(d: &[u8]) -> u32 {
    u32::from_le_bytes(d[..4].try_into().unwrap())
}

/// A 512 MiB golden image sealed from HLOS RAM, and the requests that launch a clone of it.
struct RmClone {
    rm: Rm<SimPlatform>,
    c: Client,
    golden: u32,
}

impl RmClone {
    fn new() -> RmClone {
        let sim = SimConfig {
            hlos_ram: (0x4000_0000, 1 << 30),
            partition_base: 0x1_0000_0000,
            partition_pages: 65536,
            ipa_bits: 40,
        };
        let mut rm = sim_rm(sim, RmConfig::default()).unwrap();
        let mut c = Client::new();
        let r = c
            .call(&mut rm, HLOS, &Request::VmAllocVmid(VmidReq::new(0)))
            .unwrap();
        let owner = u32_of(&r) as u16;
        let acl = [AclEntry::new(owner, rights::RWX)];
        let sgl = [SglEntry::new(0x4000_0000, GOLDEN)];
        let lend = MemCreate::normal(&acl, &sgl);
        let h = u32_of(&c.call(&mut rm, HLOS, &Request::MemLend(lend)).unwrap());
        let seal = c
            .call(&mut rm, HLOS, &Request::GoldenSeal(GoldenSealReq::new(h)))
            .unwrap();
        RmClone {
            rm,
            c,
            golden: u32_of(&seal),
        }
    }

    /// VM_ALLOC_VMID, GMEM_CREATE (16 MiB CoW quota), GOLDEN_MAP of the whole image.
    fn launch(&mut self) -> u16 {
        let c = &mut self.c;
        let rm = &mut self.rm;
        let v = u32_of(
            &c.call(rm, HLOS, &Request::VmAllocVmid(VmidReq::new(0)))
                .unwrap(),
        ) as u16;
        let gm = c
            .call(
                rm,
                HLOS,
                &Request::GmemCreate(GmemCreateReq::new(16 * MIB, 0, v)),
            )
            .unwrap();
        let m = GoldenMapReq::new(
            self.golden,
            v,
            map_flags::COW,
            0,
            CLONE_IPA,
            GOLDEN,
            u32_of(&gm),
        );
        c.call(rm, HLOS, &Request::GoldenMap(m)).unwrap();
        v
    }

    fn teardown(&mut self, v: u16) {
        self.c
            .call(&mut self.rm, HLOS, &Request::VmDeallocVmid(VmidReq::new(v)))
            .unwrap();
        let _ = self.rm.drain_outgoing();
    }
}

/// Table pages and heap bytes one clone adds, averaged over `n` clones kept alive.
fn per_clone_memory(
    n: usize,
    tables: &dyn Fn() -> u64,
    launch: &mut dyn FnMut() -> u16,
) -> (f64, f64, Vec<u16>) {
    let (t0, h0) = (tables(), common::live_bytes());
    let vs: Vec<u16> = (0..n).map(|_| launch()).collect();
    let (t1, h1) = (tables(), common::live_bytes());
    ((t1 - t0) as f64 / n as f64, (h1 - h0) as f64 / n as f64, vs)
}

fn main() {
    let mut c = common::criterion();
    let mut g = c.benchmark_group("clone_launch");
    {
        let src = vec![0x5au8; GOLDEN as usize];
        let mut dst = vec![1u8; GOLDEN as usize];
        g.bench_function("copy_512m", |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    dst.copy_from_slice(black_box(&src));
                    black_box(&dst);
                }
                common::record("copy_512m", t.elapsed(), iters)
            })
        });
    }
    let mut mem = Vec::new();
    {
        let mut st = RmClone::new();
        g.bench_function("rm_clone", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let v = st.launch();
                    total += t.elapsed();
                    st.teardown(v);
                }
                common::record("rm_clone", total, iters)
            })
        });
        let tables = |rm: &Rm<SimPlatform>| rm.platform().partition_usage().tables;
        let st = std::cell::RefCell::new(st);
        let (tp, heap, vs) = per_clone_memory(16, &|| tables(&st.borrow().rm), &mut || {
            st.borrow_mut().launch()
        });
        let mut st = st.into_inner();
        assert!(st.rm.check_isolation().is_empty());
        for v in vs {
            st.teardown(v);
        }
        mem.push(("rm_clone", tp, heap));
    }
    let shipped = clone::shipped_ipa_bits();
    for (id, ipa_bits) in [
        ("config_clone", shipped),
        ("config_clone_ipa40", (None, None)),
    ] {
        let t = Instant::now();
        let mut st = clone::ConfigClone::with(ipa_bits, GOLDEN);
        eprintln!(
            "clone_launch: template launched and 512 MiB sealed in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let v = st.launch();
                    total += t.elapsed();
                    st.teardown(v);
                }
                common::record(id, total, iters)
            })
        });
        let st = std::cell::RefCell::new(st);
        let (tp, heap, vs) = per_clone_memory(
            16,
            &|| st.borrow().rm.platform().partition_usage().tables,
            &mut || st.borrow_mut().launch(),
        );
        let mut st = st.into_inner();
        assert!(st.rm.check_isolation().is_empty());
        for v in vs {
            st.teardown(v);
        }
        mem.push((id, tp, heap));
    }
    g.finish();
    c.final_summary();

    println!("\nClone launch with a 512 MiB golden image vs copying 512 MiB (medians, this run)");
    let copy = common::median("copy_512m");
    if let Some(cp) = copy {
        println!("  copy 512 MiB (copy_from_slice): {:>12.0} ns", cp);
    }
    for id in ["rm_clone", "config_clone", "config_clone_ipa40"] {
        if let Some(t) = common::median(id) {
            let ratio = copy.map_or(String::new(), |cp| {
                format!("  copy / launch = {:.0} x", cp / t)
            });
            println!("  {id:<31} {t:>12.0} ns{ratio}");
        }
    }
    println!(
        "RM memory per clone before any CoW (16 clones alive; heap = RM records + launcher; \
         config_clone: ipa-bits {:?} as shipped)",
        shipped.1
    );
    for (id, tp, heap) in mem {
        println!(
            "  {id:<18} stage-2 tables {tp:6.1} pages ({:7.1} KiB) + heap {:7.1} KiB = {:7.1} KiB",
            tp * 4.0,
            heap / 1024.0,
            tp * 4.0 + heap / 1024.0
        );
    }
}
