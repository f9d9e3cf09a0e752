//! First measurement of the DESIGN.md CoW target: RM-side CoW fault service
//! (decoded fault → resumable) on the host simulator, next to a plain 4 KiB
//! memcpy between cold pages, for 1 and 64 VMs sharing the golden image and
//! for two image sizes. Prints medians; see rm/PERF.md.
//!
//! cargo run --release -p gunyah-rm --example cow_fault_cost

use std::time::Instant;

use gunyah_rm::golden::MapParams;
use gunyah_rm::sim::{sim_rm, SimConfig};
use gunyah_rm::{PhysMem, RmConfig};
use gunyah_stage2::Access;

#[path = "../tests/common/golden_setup.rs"]
mod golden_setup;
use golden_setup::{alloc_vm, seal_lent};

const HLOS: u16 = 3;
const PAGE: u64 = 4096;
const SRC: u64 = 0x4000_0000;

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Median ns of one CoW fault with `vms` clones mapping a `golden_mib` image.
fn cow(vms: u16, golden_mib: u64, faults: u64, cold: bool) -> u64 {
    // HLOS RAM large enough for the image (simulated memory is sparse).
    let sim = SimConfig {
        hlos_ram: (SRC, (golden_mib << 20).max(1 << 30)),
        partition_base: 0x80_0000_0000,
        partition_pages: 65536,
        ..SimConfig::default()
    };
    let mut rm = sim_rm(sim, RmConfig::default()).expect("simulated layout");
    let size = golden_mib << 20;
    let mut clones = Vec::new();
    // One more VM warms the simulator's page buffers up (see below).
    for _ in 0..vms + 1 {
        clones.push(alloc_vm(&mut rm));
    }
    // Non-zero golden contents (one word per page is enough to make it real data).
    // Every page gets data up to 64 MiB; beyond, every 16th (the rest reads
    // as zeros), to keep the simulator's memory small.
    let step = if size <= 64 << 20 { 1 } else { 16 };
    for p in (0..size / PAGE).step_by(step) {
        rm.vm_write(HLOS, SRC + p * PAGE, &p.to_le_bytes()).unwrap();
    }
    let g = seal_lent(&mut rm, clones[0], SRC, size);
    for &v in &clones {
        let pool = rm.gmem_create(HLOS, faults * PAGE, 0, v).unwrap();
        rm.golden_map(HLOS, MapParams::cow(g, v, 0, 0x1_0000_0000, size, pool))
            .unwrap();
    }
    let pages = size / PAGE;
    let spot = |i: u64| 0x1_0000_0000 + (i * 2654435761 % pages) * PAGE;
    // Warm-up: fault the same pages in the extra VM, then unmap it. Its
    // copies go back and their buffers are reused, so the measured faults
    // do not pay the host's first-touch page faults of new buffers.
    let warm = clones.pop().unwrap();
    for i in 0..faults {
        assert!(rm
            .handle_access_fault(warm, spot(i), Access::Write)
            .made_page());
    }
    rm.golden_unmap(HLOS, g, warm, 0x1_0000_0000, size).unwrap();
    let _ = rm.drain_outgoing();
    // Cold: evict the caches, so the golden pages are cold again (the
    // target's condition; the RM's own records and tables go cold too).
    if cold {
        evict();
    }
    let vm = clones[clones.len() / 2];
    let mut t = Vec::with_capacity(faults as usize);
    for i in 0..faults {
        // Spread over the image (a stride co-prime with the page count).
        let ipa = spot(i);
        let s = Instant::now();
        let out = rm.handle_access_fault(vm, ipa, Access::Write);
        t.push(s.elapsed().as_nanos() as u64);
        assert!(out.made_page(), "{out:?}");
        let _ = rm.drain_outgoing();
    }
    median(t)
}

/// Stream through 256 MiB so earlier data leaves the CPU caches.
fn evict() {
    let v = vec![1u8; 256 << 20];
    let sum: u64 = v.iter().step_by(64).map(|&b| b as u64).sum();
    std::hint::black_box(sum);
}

/// Median ns of a 4 KiB memcpy from a page of a 256 MiB buffer (cold) to another.
fn memcpy(n: usize) -> u64 {
    let pages = 65536usize;
    let src: Vec<u8> = (0..pages * 4096).map(|i| i as u8).collect();
    // Touched up front: the copy must not take host page faults.
    let mut dst = vec![1u8; pages * 4096];
    let mut t = Vec::with_capacity(n);
    for i in 0..n {
        let a = (i * 2654435761) % pages * 4096;
        let b = (i * 40503 + 7) % pages * 4096;
        let s = Instant::now();
        dst[b..b + 4096].copy_from_slice(&src[a..a + 4096]);
        t.push(s.elapsed().as_nanos() as u64);
        std::hint::black_box(&dst[b]);
    }
    median(t)
}

/// Median ns of the simulator's own 4 KiB page copy (`PhysMem::copy` over
/// its sparse page map): the part of a CoW fault that is simulated memory.
fn sim_copy(n: u64) -> u64 {
    let mut rm = sim_rm(SimConfig::default(), RmConfig::default()).expect("simulated layout");
    let p = rm.platform_mut();
    for i in 0..n {
        p.write(SRC + i * PAGE, &i.to_le_bytes());
    }
    let dst: Vec<u64> = (0..n).map(|_| p.alloc_page().unwrap()).collect();
    // Warm-up round, then the buffers are dropped (and reused below).
    for i in 0..n {
        p.copy(dst[i as usize], SRC + i * PAGE, PAGE);
    }
    for &d in &dst {
        p.zero(d, PAGE);
    }
    let mut t = Vec::with_capacity(n as usize);
    for i in 0..n {
        let s = Instant::now();
        p.copy(dst[i as usize], SRC + i * PAGE, PAGE);
        t.push(s.elapsed().as_nanos() as u64);
    }
    median(t)
}

/// Clone launch with a 512 MiB golden image: median ns of gmem_create +
/// golden_map per clone, stage-2 table pages per clone, and ns of one
/// 512 MiB memcpy (what launching by copying would cost at least).
fn clone_launch(clones: u16) -> (u64, f64, u64) {
    let mut rm = sim_rm(SimConfig::default(), RmConfig::default()).expect("simulated layout");
    let size = 512u64 << 20;
    let first = alloc_vm(&mut rm);
    let g = seal_lent(&mut rm, first, SRC, size);
    let mut t = Vec::new();
    let tables_before = rm.platform().partition_usage().tables;
    for _ in 0..clones {
        let v = alloc_vm(&mut rm);
        let s = Instant::now();
        let pool = rm.gmem_create(HLOS, 4096 * PAGE, 0, v).unwrap();
        rm.golden_map(HLOS, MapParams::cow(g, v, 0, 0x1_0000_0000, size, pool))
            .unwrap();
        t.push(s.elapsed().as_nanos() as u64);
    }
    let tables = (rm.platform().partition_usage().tables - tables_before) as f64 / clones as f64;
    let src = vec![1u8; size as usize];
    let mut dst = vec![2u8; size as usize];
    let s = Instant::now();
    dst.copy_from_slice(&src);
    let copy = s.elapsed().as_nanos() as u64;
    std::hint::black_box(&dst[12345]);
    (median(t), tables, copy)
}

fn main() {
    let (launch, tables, copy) = clone_launch(32);
    println!(
        "clone launch, 512 MiB golden: median {launch} ns (gmem_create + golden_map), \
         {tables:.1} table pages per clone; one 512 MiB memcpy {copy} ns ({:.0}x)",
        copy as f64 / launch as f64
    );
    let m = memcpy(20000);
    println!("4 KiB memcpy (cold source): median {m} ns");
    println!(
        "simulator PhysMem::copy of 4 KiB: median {} ns",
        sim_copy(4000)
    );
    println!(
        "{:>4} {:>10} {:>12} {:>7} {:>12} {:>7}",
        "VMs", "golden", "cold ns", "ratio", "warm ns", "ratio"
    );
    for (vms, mib) in [
        (1u16, 1u64),
        (1, 64),
        (1, 4096),
        (62, 1),
        (62, 64),
        (62, 4096),
    ] {
        let faults = (mib * 256).min(2000);
        let c = cow(vms, mib, faults, true);
        let w = cow(vms, mib, faults, false);
        println!(
            "{vms:>4} {:>6} MiB {c:>12} {:>7.2} {w:>12} {:>7.2}",
            mib,
            c as f64 / m as f64,
            w as f64 / m as f64
        );
    }
}
