//! Instructions per CoW fault that splits a block, counted (not timed) on the host: a
//! workload for callgrind, deterministic, so main and a branch compare on a shared machine.
//!
//! `VMS` clones map a golden image of `MIB` MiB (default 4096) copy-on-write (1 GiB blocks where
//! whole, else 2 MiB); each VM takes up to 512 faults spread evenly over the image, at least
//! 2 MiB apart (a 2 MiB block split on every fault, a 1 GiB split on the first fault in each
//! 1 GiB block); faults rotate over the clones; the RM's outbox is drained every 64 faults, as
//! the `cow_fault` bench does. `dense` instead writes consecutive pages (one 2 MiB split per
//! 512 faults). Sealing hashes the image, which dominates the run: 512 MiB keeps a callgrind
//! run to a minute or two. Count with:
//!
//! ```text
//! cargo build --release -p gunyah-rm --example spread_fault_count
//! valgrind --tool=callgrind --callgrind-out-file=cg.out \
//!     target/release/examples/spread_fault_count 1 spread 512
//! callgrind_annotate --inclusive=yes cg.out | grep -E 'handle_access_fault|drain_outgoing|TOTAL'
//! ```
//!
//! The example prints how many faults and drains it timed; divide `handle_access_fault`'s
//! inclusive count by the faults, `drain_outgoing`'s by the faults too (its share per fault).

use gunyah_rm::golden::MapParams;
use gunyah_rm::sim::{sim_rm, SimConfig};
use gunyah_rm::RmConfig;
use gunyah_stage2::Access;

#[path = "../tests/common/golden_setup.rs"]
mod golden_setup;
use golden_setup::{alloc_vm, seal_lent};

const HLOS: u16 = 3;
const PAGE: u64 = 4096;
const SRC: u64 = 0x4000_0000;
const IPA: u64 = 0x80_0000_0000;
const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
const DRAIN_EVERY: u64 = 64;
/// VM_ALLOC's message ID (spec §2).
const VM_ALLOC: u32 = 0x5600_0001;

fn main() {
    let mut args = std::env::args().skip(1);
    let vms: u16 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let spread = args.next().is_none_or(|a| a != "dense");
    let size = args.next().and_then(|a| a.parse().ok()).unwrap_or(4096u64) * MIB;
    let faults_per_vm: u64 = if spread {
        (size / (2 * MIB)).min(512)
    } else {
        512
    };
    let sim = SimConfig {
        hlos_ram: (SRC, 5 * GIB),
        partition_base: 0x1_8000_0000,
        partition_pages: 131072,
        ipa_bits: 40,
    };
    let mut rm = sim_rm(sim, RmConfig::default()).expect("simulated layout");
    let clones: Vec<u16> = (0..vms)
        .map(|k| {
            if k < 63 {
                alloc_vm(&mut rm)
            } else {
                // 63 dynamic VMIDs; further VMs take static ones (0x10, 0x11, ..), as the
                // `cow_fault` bench's 64th VM does.
                let v = 0x10 + (k - 63);
                rm.handle_request(HLOS, 1, VM_ALLOC, &u32::from(v).to_le_bytes());
                let _ = rm.drain_outgoing();
                v
            }
        })
        .collect();
    let g = seal_lent(&mut rm, clones[0], SRC, size);
    for &v in &clones {
        let pool = rm.gmem_create(HLOS, faults_per_vm * PAGE, 0, v).unwrap();
        rm.golden_map(HLOS, MapParams::cow(g, v, 0, IPA, size, pool))
            .unwrap();
    }
    let npages = size / PAGE;
    let mut n = 0u64;
    for j in 0..faults_per_vm {
        let p = if spread {
            j * npages / faults_per_vm
        } else {
            j
        };
        for &v in &clones {
            let out = rm.handle_access_fault(v, IPA + p * PAGE, Access::Write);
            assert!(out.made_page(), "{out:?}");
            n += 1;
            if n.is_multiple_of(DRAIN_EVERY) {
                std::hint::black_box(rm.drain_outgoing());
            }
        }
    }
    std::hint::black_box(rm.drain_outgoing());
    assert!(rm.check_isolation().is_empty());
    println!(
        "{n} faults ({faults_per_vm} per VM, {}), {vms} VMs, {} MiB image, drained every \
         {DRAIN_EVERY}",
        if spread { "spread" } else { "consecutive" },
        size / MIB
    );
}
