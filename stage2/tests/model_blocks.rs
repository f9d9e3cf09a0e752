//! Property test at 1 GiB scale: random map/unmap/protect/split/merge/replace over a 2 GiB
//! window of a 40-bit address space, so 1 GiB and 2 MiB blocks, their splits and merges, and
//! level-1/level-2 table freeing all occur. The model is page-granular but stored compactly per
//! 2 MiB chunk; after each step every leaf of the real tables is compared page by page with it
//! and the mapped page counts must agree (so the two describe the same mapping).

mod common;
use common::*;
use gunyah_stage2::{Attrs, Error, MapFlags, S2Ap, SwBits};
use proptest::prelude::*;

const BASE: u64 = G1;
const CHUNKS: usize = 1024; // 2 GiB of 2 MiB chunks
const PAGES: usize = CHUNKS * 512;
const PA_BASE: u64 = 0x40_0000_0000;

type Val = Option<(u64, Attrs)>;

#[derive(Clone, Debug, PartialEq)]
enum Chunk {
    Empty,
    /// All 512 pages map linearly from this PA with these attributes.
    Linear(u64, Attrs),
    Pages(Vec<Val>),
}

impl Chunk {
    fn get(&self, i: usize) -> Val {
        match self {
            Chunk::Empty => None,
            Chunk::Linear(pa, a) => Some((pa + i as u64 * K4, *a)),
            Chunk::Pages(v) => v[i],
        }
    }
    fn pages(&mut self) -> &mut Vec<Val> {
        if !matches!(self, Chunk::Pages(_)) {
            let v = (0..512).map(|i| self.get(i)).collect();
            *self = Chunk::Pages(v);
        }
        match self {
            Chunk::Pages(v) => v,
            _ => unreachable!(),
        }
    }
    fn count(&self) -> usize {
        match self {
            Chunk::Empty => 0,
            Chunk::Linear(..) => 512,
            Chunk::Pages(v) => v.iter().filter(|p| p.is_some()).count(),
        }
    }
}

#[derive(Clone)]
struct Model(Vec<Chunk>);

impl Model {
    fn get(&self, p: usize) -> Val {
        self.0[p / 512].get(p % 512)
    }
    /// Visit chunk pieces of `[start, start+len)`: (chunk, first index, count).
    fn pieces(start: usize, len: usize) -> impl Iterator<Item = (usize, usize, usize)> {
        let end = start + len;
        (start / 512..(end - 1) / 512 + 1).map(move |c| {
            let s = start.max(c * 512);
            let e = end.min(c * 512 + 512);
            (c, s - c * 512, e - s)
        })
    }
    fn find(&self, start: usize, len: usize, mapped: bool) -> Option<usize> {
        Self::pieces(start, len).find_map(|(c, i, n)| {
            (i..i + n)
                .find(|&k| self.0[c].get(k).is_some() == mapped)
                .map(|k| c * 512 + k)
        })
    }
    fn map(&mut self, start: usize, len: usize, pa: u64, a: Attrs) {
        for (c, i, n) in Self::pieces(start, len) {
            let pa_c = pa + ((c * 512 + i - start) as u64) * K4;
            if n == 512 {
                self.0[c] = Chunk::Linear(pa_c, a);
            } else {
                let v = self.0[c].pages();
                for k in 0..n {
                    v[i + k] = Some((pa_c + k as u64 * K4, a));
                }
            }
        }
    }
    fn unmap(&mut self, start: usize, len: usize) {
        for (c, i, n) in Self::pieces(start, len) {
            if n == 512 {
                self.0[c] = Chunk::Empty;
            } else {
                self.0[c].pages()[i..i + n]
                    .iter_mut()
                    .for_each(|p| *p = None);
            }
        }
    }
    fn modify(&mut self, start: usize, len: usize, f: impl Fn(Attrs) -> Attrs) {
        for (c, i, n) in Self::pieces(start, len) {
            match &mut self.0[c] {
                Chunk::Linear(_, a) if n == 512 => *a = f(*a),
                chunk => {
                    for p in &mut chunk.pages()[i..i + n] {
                        let (pa, a) = p.unwrap();
                        *p = Some((pa, f(a)));
                    }
                }
            }
        }
    }
    fn count(&self) -> usize {
        self.0.iter().map(Chunk::count).sum()
    }
}

#[derive(Clone, Debug)]
enum Op {
    Map {
        start: usize,
        len: usize,
        shift: usize,
        ro: bool,
        replace: bool,
    },
    Unmap {
        start: usize,
        len: usize,
    },
    Protect {
        start: usize,
        len: usize,
        ro: bool,
    },
    Split {
        page: usize,
    },
    Merge {
        start: usize,
        len: usize,
    },
    Replace {
        page: usize,
        target: usize,
    },
}

fn start() -> impl Strategy<Value = usize> {
    prop_oneof![
        (0..CHUNKS).prop_map(|c| c * 512),
        (0..2usize).prop_map(|g| g * PAGES / 2),
        (0..CHUNKS, 0..3usize).prop_map(|(c, k)| c * 512 + k),
        0..PAGES,
    ]
}

fn len() -> impl Strategy<Value = usize> {
    prop_oneof![
        (1..CHUNKS).prop_map(|c| c * 512),
        Just(PAGES / 2),
        1..20usize,
        1..PAGES
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (start(), len(), 0..4usize, any::<bool>(), any::<bool>())
            .prop_map(|(start, len, shift, ro, replace)| Op::Map { start, len, shift, ro, replace }),
        2 => (start(), len()).prop_map(|(start, len)| Op::Unmap { start, len }),
        2 => (start(), len(), any::<bool>()).prop_map(|(start, len, ro)| Op::Protect { start, len, ro }),
        1 => start().prop_map(|page| Op::Split { page: page.min(PAGES - 1) }),
        1 => (start(), len()).prop_map(|(start, len)| Op::Merge { start, len }),
        2 => (0..PAGES, 0..PAGES).prop_map(|(page, target)| Op::Replace { page, target }),
    ]
}

fn ipa(p: usize) -> u64 {
    BASE + p as u64 * K4
}

fn attrs(ro: bool) -> Attrs {
    if ro {
        Attrs::normal_ro().with_sw(SwBits::SW2)
    } else {
        Attrs::normal_rw()
    }
}

fn check(vm: &Vm, model: &Model) {
    let mut pages = 0usize;
    vm.for_each_leaf(&mut |l| {
        assert!(
            l.ipa >= BASE && l.ipa + l.size() <= ipa(PAGES),
            "leaf outside window {l:?}"
        );
        let first = ((l.ipa - BASE) / K4) as usize;
        let n = (l.size() / K4) as usize;
        for (c, i, cnt) in Model::pieces(first, n) {
            let pa_c = l.pa + ((c * 512 + i - first) as u64) * K4;
            match &model.0[c] {
                Chunk::Linear(pa, a) if cnt == 512 => {
                    assert_eq!((*pa, *a), (pa_c, l.attrs), "chunk {c} vs leaf {l:?}")
                }
                chunk => {
                    for k in 0..cnt {
                        assert_eq!(
                            chunk.get(i + k),
                            Some((pa_c + k as u64 * K4, l.attrs)),
                            "page {} vs leaf {l:?}",
                            c * 512 + i + k
                        );
                    }
                }
            }
        }
        pages += n;
    });
    assert_eq!(pages, model.count(), "mapped page count");
}

fn run(ops: Vec<(Op, Option<u64>)>) {
    let mut vm = vm_with(40, 4096);
    vm.memory_mut().take_trace();
    let mut model = Model(vec![Chunk::Empty; CHUNKS]);
    for (op, fail) in ops {
        let before = snapshot(&vm);
        take_trace(&mut vm);
        let live = live_tables(&vm);
        if let Some(n) = fail {
            vm.memory_mut().fail_nth_allocation(n);
        }
        let mut next = model.clone();
        let (got, want) = match op {
            Op::Map {
                start,
                len,
                shift,
                ro,
                replace,
            } => {
                let len = len.min(PAGES - start);
                let pa = PA_BASE + (start + [0, PAGES / 2, 512, 3][shift]) as u64 * K4;
                let flags = if replace {
                    MapFlags::BLOCKS.union(MapFlags::REPLACE)
                } else {
                    MapFlags::BLOCKS
                };
                let got = vm.map(ipa(start), len as u64 * K4, pa, attrs(ro), flags);
                let want = match model.find(start, len, true) {
                    Some(p) if !replace => Err(Error::AlreadyMapped { ipa: ipa(p) }),
                    _ => {
                        next.map(start, len, pa, attrs(ro));
                        Ok(())
                    }
                };
                (got, want)
            }
            Op::Unmap { start, len } => {
                let len = len.min(PAGES - start);
                next.unmap(start, len);
                (vm.unmap(ipa(start), len as u64 * K4), Ok(()))
            }
            Op::Protect { start, len, ro } => {
                let len = len.min(PAGES - start);
                let s = if ro { S2Ap::ReadOnly } else { S2Ap::ReadWrite };
                let got = vm.protect(ipa(start), len as u64 * K4, s, false);
                let want = match model.find(start, len, false) {
                    Some(p) => Err(Error::NotMapped { ipa: ipa(p) }),
                    None => {
                        next.modify(start, len, |a| a.with_s2ap(s).with_xn(false));
                        Ok(())
                    }
                };
                (got, want)
            }
            Op::Split { page } => {
                let want = match vm.query(ipa(page)) {
                    None => Err(Error::NotMapped { ipa: ipa(page) }),
                    Some(l) if l.level == 3 => Err(Error::NotABlock { ipa: ipa(page) }),
                    Some(_) => Ok(()),
                };
                (vm.split_block(ipa(page)), want)
            }
            Op::Merge { start, len } => {
                let len = len.min(PAGES - start);
                (vm.merge(ipa(start), len as u64 * K4).map(|_| ()), Ok(()))
            }
            Op::Replace { page, target } => {
                let pa = PA_BASE + target as u64 * K4;
                let got = vm.replace_page(ipa(page), pa, Attrs::normal_rw().with_sw(SwBits::SW3));
                if let Ok(old) = got {
                    assert_eq!(
                        old.and_then(|l| l.pa_of(ipa(page)).map(|p| (p, l.attrs))),
                        model.get(page)
                    );
                }
                next.map(page, 1, pa, Attrs::normal_rw().with_sw(SwBits::SW3));
                (got.map(|_| ()), Ok(()))
            }
        };
        vm.memory_mut().clear_failure();
        let trace = take_trace(&mut vm);
        check_bbm(&trace, &live, vm.vmid());
        if fail.is_some() && got == Err(Error::NoMemory) {
            assert_eq!(
                snapshot(&vm),
                before,
                "{op:?}: failed allocation changed the tables"
            );
        } else {
            assert_eq!(got, want, "{op:?}");
            if got.is_ok() {
                model = next;
            } else {
                assert_eq!(
                    snapshot(&vm),
                    before,
                    "{op:?}: refused operation changed the tables"
                );
            }
        }
        check_invariants(&vm);
        check(&vm, &model);
    }
    let (arena, _) = vm.destroy();
    assert_eq!(arena.pages_in_use(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_block_scale_ops_match_model(
        ops in proptest::collection::vec((op(), proptest::option::weighted(0.15, 1..4u64)), 1..20)
    ) {
        run(ops);
    }
}
