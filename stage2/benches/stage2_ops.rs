//! Cost of the stage-2 operations on the copy-on-write and clone-launch paths (host, table
//! memory in a simulated arena, TLB maintenance a no-op), next to a plain 4 KiB copy.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use gunyah_stage2::host::HostArena;
use gunyah_stage2::{AddressSpace, Attrs, MapFlags, PaRange, Stage2Config, TlbMaintenance};

struct NopTlb;
impl TlbMaintenance for NopTlb {
    fn invalidate_ipas(&mut self, _: u64, ipas: &[u64]) {
        black_box(ipas);
    }
    fn invalidate_vmid(&mut self, _: u64) {}
}

type Vm = AddressSpace<HostArena, NopTlb>;

const GOLDEN_PA: u64 = 0x10_0000_0000;
const M2: u64 = 0x20_0000;

fn vm() -> Vm {
    let cfg = Stage2Config::new(40, PaRange::Bits40, 1);
    AddressSpace::new(HostArena::new(0x8000_0000, 1024), NopTlb, cfg).unwrap()
}

fn benches(c: &mut Criterion) {
    let src = vec![0xA5u8; 4096];
    let mut dst = vec![0u8; 4096];
    c.bench_function("memcpy_4k", |b| {
        b.iter(|| dst.copy_from_slice(black_box(&src)));
    });

    // CoW on a page that is already page-mapped (the block was split by an earlier fault).
    let mut v = vm();
    v.map(
        0x4000_0000,
        M2,
        GOLDEN_PA,
        Attrs::normal_ro(),
        MapFlags::PAGES,
    )
    .unwrap();
    let mut flip = 0u64;
    c.bench_function("replace_page_page_level", |b| {
        b.iter(|| {
            flip ^= 1;
            v.replace_page(
                black_box(0x4000_3000),
                0x20_0000_0000 + flip * 4096,
                Attrs::normal_rw(),
            )
            .unwrap()
        });
    });

    // First CoW fault in a 2 MiB golden block: split + replace.
    c.bench_function("replace_page_splitting_2m_block", |b| {
        b.iter_batched(
            || {
                let mut v = vm();
                v.map(
                    0x4000_0000,
                    M2,
                    GOLDEN_PA,
                    Attrs::normal_ro(),
                    MapFlags::BLOCKS,
                )
                .unwrap();
                v
            },
            |mut v| {
                v.replace_page(0x4000_3000, 0x20_0000_0000, Attrs::normal_rw())
                    .unwrap();
                v
            },
            BatchSize::SmallInput,
        );
    });

    // Clone launch: map 512 MiB of golden image read-only with 2 MiB blocks, then unmap it.
    let mut v = vm();
    c.bench_function("map_unmap_512m_golden_2m_blocks", |b| {
        b.iter(|| {
            v.map(
                0x8000_0000,
                512 << 20,
                GOLDEN_PA,
                Attrs::normal_ro(),
                MapFlags::BLOCKS,
            )
            .unwrap();
            v.unmap(0x8000_0000, 512 << 20).unwrap();
        });
    });
}

criterion_group!(stage2, benches);
criterion_main!(stage2);
