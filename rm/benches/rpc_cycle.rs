//! RPC dispatch throughput (DESIGN.md target): one cycle of share, accept,
//! release and reclaim (`common/rpc.rs`: HLOS and a READY VM, every reply
//! checked OK), sent as encoded packets through `Rm::packet_from` and
//! drained with `Rm::drain_outgoing`, with 10, 1000 or 10000 other parcels
//! live. Four requests (and four replies) per iteration. Prints
//! requests per second per size and the flatness (max/min) over the sizes.
//! Run: `cargo bench -p gunyah-rm --bench rpc_cycle`.

#[path = "common/mod.rs"]
mod common;
#[path = "common/rpc.rs"]
mod rpc;

use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput};

/// Live parcels besides the one each cycle makes.
const LIVE: [u64; 3] = [10, 1000, 10_000];

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("rpc_cycle");
    g.throughput(Throughput::Elements(4));
    for live in LIVE {
        let (mut rm, vm) = rpc::setup(live);
        g.bench_with_input(BenchmarkId::from_parameter(live), &live, |b, _| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    rpc::cycle(&mut rm, vm, rpc::CYCLE_PAGE);
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
