//! RPC dispatch throughput (DESIGN.md target): one cycle of share, accept,
//! release and reclaim, sent as encoded packets through `Rm::packet_from`
//! and drained with `Rm::drain_outgoing`, with 10, 1000 or 10000 other
//! parcels live. Four requests (and four replies) per iteration.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
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
    for live in [10u64, 1000, 10_000] {
        let mut rm = setup(live);
        let page = 0x4000_0000u64;
        g.bench_with_input(BenchmarkId::from_parameter(live), &live, |b, _| {
            b.iter(|| {
                let r = call(&mut rm, HLOS, 0x5100_0013, &share_body(page));
                let h = u32::from_le_bytes(r[12..16].try_into().unwrap());
                let mut acc = h.to_le_bytes().to_vec();
                acc.extend_from_slice(&[0, 2, 0x80, 0, 0, 0, 0, 0]);
                acc.extend_from_slice(&[0; 12]); // empty ACL, SGL, attr lists
                call(&mut rm, VM, 0x5100_0011, &acc);
                let mut hf = h.to_le_bytes().to_vec();
                hf.extend_from_slice(&[0; 4]);
                call(&mut rm, VM, 0x5100_0014, &hf);
                let r = call(&mut rm, HLOS, 0x5100_0015, &hf);
                assert_eq!(&r[8..12], &[0, 0, 0, 0]);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
