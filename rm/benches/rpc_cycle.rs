//! RPC dispatch throughput (DESIGN.md target): one cycle of share, accept,
//! release and reclaim, sent as encoded packets through `Rm::packet_from`
//! and drained with `Rm::drain_outgoing`, with 10, 1000 or 10000 other
//! parcels live. Four requests (and four replies) per iteration. Prints
//! requests per second per size and the flatness (max/min) over the sizes.
//! Run: `cargo bench -p gunyah-rm --bench rpc_cycle`.

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput};
use gunyah_rm::sim::{sim_rm, SimConfig, SimPlatform};
use gunyah_rm::{Rm, RmConfig};

const HLOS: u16 = 3;
const VM: u16 = 0x80;

fn packet(seq: u16, id: u32, body: &[u8]) -> Vec<u8> {
    assert!(body.len() <= 232);
    let mut p = vec![0x21, 1];
    p.extend_from_slice(&seq.to_le_bytes());
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(body);
    p
}

fn share_body(page: u64) -> Vec<u8> {
    let mut v = vec![0u8, 0, 0, 0, 0, 0, 0, 0];
    v.extend_from_slice(&[2, 0, 0, 0, 3, 0, 7, 0, 0x80, 0, 6, 0]); // ACL {HLOS RWX, VM RW}
    v.extend_from_slice(&[1, 0, 0, 0]);
    v.extend_from_slice(&page.to_le_bytes());
    v.extend_from_slice(&0x1000u64.to_le_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    v
}

fn call(rm: &mut Rm<SimPlatform>, from: u16, id: u32, body: &[u8]) -> Vec<u8> {
    rm.packet_from(from, &packet(1, id, body));
    let out = rm.drain_outgoing();
    out.into_iter().last().map(|(_, p)| p).unwrap_or_default()
}

/// Live parcels besides the one each cycle makes.
const LIVE: [u64; 3] = [10, 1000, 10_000];

/// Share a page, the VM accepts, releases, HLOS reclaims.
fn cycle(rm: &mut Rm<SimPlatform>, page: u64) {
    let r = call(rm, HLOS, 0x5100_0013, &share_body(page));
    let h = u32::from_le_bytes(r[12..16].try_into().unwrap());
    let mut acc = h.to_le_bytes().to_vec();
    acc.extend_from_slice(&[0, 2, 0x80, 0, 0, 0, 0, 0]);
    acc.extend_from_slice(&[0; 12]); // empty ACL, SGL, attr lists
    call(rm, VM, 0x5100_0011, &acc);
    let mut hf = h.to_le_bytes().to_vec();
    hf.extend_from_slice(&[0; 4]);
    call(rm, VM, 0x5100_0014, &hf);
    let r = call(rm, HLOS, 0x5100_0015, &hf);
    assert_eq!(&r[8..12], &[0, 0, 0, 0]);
}

fn setup(live: u64) -> Rm<SimPlatform> {
    let cfg = RmConfig {
        max_parcels_per_vm: 20_000,
        ..RmConfig::default()
    };
    let mut rm = sim_rm(SimConfig::default(), cfg).unwrap();
    call(&mut rm, HLOS, 0x5600_0001, &[0, 0, 0, 0]);
    for i in 0..live {
        let r = call(
            &mut rm,
            HLOS,
            0x5100_0013,
            &share_body(0x4800_0000 + i * 0x1000),
        );
        assert_eq!(&r[8..12], &[0, 0, 0, 0]);
    }
    rm
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("rpc_cycle");
    g.throughput(Throughput::Elements(4));
    for live in LIVE {
        let mut rm = setup(live);
        let page = 0x4000_0000u64;
        g.bench_with_input(BenchmarkId::from_parameter(live), &live, |b, _| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    cycle(&mut rm, page);
                }
                common::record(&live.to_string(), t.elapsed(), iters)
            })
        });
    }
    g.finish();
}

fn main() {
    let mut c = common::criterion();
    bench(&mut c);
    c.final_summary();
    println!(
        "\nRPC dispatch: share + accept + release + reclaim (4 requests, 4 replies) per cycle"
    );
    let mut rates = Vec::new();
    for live in LIVE {
        if let Some(ns) = common::median(&live.to_string()) {
            let m = 4.0 * 1e3 / ns;
            println!(
                "  {live:>6} live parcels: {ns:8.0} ns per cycle = {m:.2} M requests/s (target >= 1: {})",
                if m >= 1.0 { "met" } else { "not met" }
            );
            rates.push(m);
        }
    }
    if rates.len() > 1 {
        let max = rates.iter().copied().fold(f64::MIN, f64::max);
        let min = rates.iter().copied().fold(f64::MAX, f64::min);
        println!(
            "  flatness over live parcels: max/min = {:.2} (target <= 1.5)",
            max / min
        );
    }
}
