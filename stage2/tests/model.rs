//! Property test: random sequences of map, unmap, protect, software-bit changes, split, merge
//! and copy-on-write replace (some with an injected allocation failure) against a page-granular
//! model. After every step each page of the window walks to what the model says, nothing is
//! mapped outside it, no table page leaks or stays empty, and break-before-make held.

mod common;
use common::*;
use gunyah_stage2::{Attrs, Error, MapFlags, MemAttr, S2Ap, SwBits};
use proptest::prelude::*;

/// The window straddles a 1 GiB boundary: a root-table boundary for a 32-bit IPA (level-2
/// root), a level-1 entry boundary for a 40-bit IPA.
const BASE: u64 = 0x3FC0_0000;
const PAGES: usize = 2048;
const PA_BASE: u64 = 0x10_0000_0000;

#[derive(Clone, Debug)]
enum Op {
    Map {
        start: usize,
        len: usize,
        shift: usize,
        attrs: usize,
        blocks: bool,
        replace: bool,
    },
    Unmap {
        start: usize,
        len: usize,
    },
    Protect {
        start: usize,
        len: usize,
        s2ap: usize,
        xn: bool,
    },
    SetSw {
        start: usize,
        len: usize,
        sw: u8,
    },
    SetSwMapped {
        start: usize,
        len: usize,
        sw: u8,
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
        attrs: usize,
    },
}

fn attrs(i: usize) -> Attrs {
    match i % 4 {
        0 => Attrs::normal_rw(),
        1 => Attrs::normal_ro().with_sw(SwBits::SW2),
        2 => Attrs::normal_rw().with_sw(SwBits::SW3).with_xn(true),
        _ => Attrs {
            mem: MemAttr::NormalNonCacheable,
            ..Attrs::normal_ro()
        },
    }
}

fn s2ap(i: usize) -> S2Ap {
    [S2Ap::None, S2Ap::ReadOnly, S2Ap::WriteOnly, S2Ap::ReadWrite][i % 4]
}

fn start() -> impl Strategy<Value = usize> {
    prop_oneof![
        0..PAGES,
        (0..4usize).prop_map(|k| k * 512),
        (1..4usize).prop_map(|k| k * 512 - 1)
    ]
}

fn len() -> impl Strategy<Value = usize> {
    prop_oneof![1..40usize, (1..4usize).prop_map(|k| k * 512), 1..PAGES]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (start(), len(), 0..4usize, 0..4usize, any::<bool>(), any::<bool>()).prop_map(
            |(start, len, shift, attrs, blocks, replace)| Op::Map { start, len, shift, attrs, blocks, replace }
        ),
        2 => (start(), len()).prop_map(|(start, len)| Op::Unmap { start, len }),
        2 => (start(), len(), 0..4usize, any::<bool>()).prop_map(|(start, len, s2ap, xn)| Op::Protect { start, len, s2ap, xn }),
        1 => (start(), len(), 0..16u8).prop_map(|(start, len, sw)| Op::SetSw { start, len, sw }),
        1 => (start(), len(), 0..16u8).prop_map(|(start, len, sw)| Op::SetSwMapped { start, len, sw }),
        1 => (0..PAGES).prop_map(|page| Op::Split { page }),
        1 => (start(), len()).prop_map(|(start, len)| Op::Merge { start, len }),
        2 => (0..PAGES, 0..4096usize, 0..4usize).prop_map(|(page, target, attrs)| Op::Replace { page, target, attrs }),
    ]
}

type Model = Vec<Option<(u64, Attrs)>>;

fn ipa(page: usize) -> u64 {
    BASE + page as u64 * K4
}

fn clip(start: usize, len: usize) -> (usize, usize) {
    (start, len.min(PAGES - start))
}

/// Apply `op` to the VM, and return what the model says the result and new state must be.
fn step(vm: &mut Vm, model: &Model, op: &Op) -> (Result<(), Error>, Result<(), Error>, Model) {
    let mut next = model.clone();
    let (got, want) = match *op {
        Op::Map {
            start,
            len,
            shift,
            attrs: a,
            blocks,
            replace,
        } => {
            let (start, len) = clip(start, len);
            let shift_pages = [0usize, 512, 7, 2048][shift];
            let pa = PA_BASE + (start + shift_pages) as u64 * K4;
            let mut flags = if blocks {
                MapFlags::BLOCKS
            } else {
                MapFlags::PAGES
            };
            if replace {
                flags = flags.union(MapFlags::REPLACE);
            }
            let got = vm.map(ipa(start), len as u64 * K4, pa, attrs(a), flags);
            let first_mapped = (start..start + len).find(|&p| model[p].is_some());
            let want = match first_mapped {
                Some(p) if !replace => Err(Error::AlreadyMapped { ipa: ipa(p) }),
                _ => {
                    for k in 0..len {
                        next[start + k] = Some((pa + k as u64 * K4, attrs(a)));
                    }
                    Ok(())
                }
            };
            (got, want)
        }
        Op::Unmap { start, len } => {
            let (start, len) = clip(start, len);
            let got = vm.unmap(ipa(start), len as u64 * K4);
            next[start..start + len].iter_mut().for_each(|e| *e = None);
            (got, Ok(()))
        }
        Op::Protect {
            start,
            len,
            s2ap: s,
            xn,
        } => {
            let (start, len) = clip(start, len);
            let got = vm.protect(ipa(start), len as u64 * K4, s2ap(s), xn);
            let want = modify(&mut next, start, len, |a| a.with_s2ap(s2ap(s)).with_xn(xn));
            (got, want)
        }
        Op::SetSw { start, len, sw } => {
            let (start, len) = clip(start, len);
            let sw = SwBits::new(sw).unwrap();
            let got = vm.modify_attrs(ipa(start), len as u64 * K4, &|a| a.with_sw(sw));
            let want = modify(&mut next, start, len, |a| a.with_sw(sw));
            (got, want)
        }
        Op::SetSwMapped { start, len, sw } => {
            let (start, len) = clip(start, len);
            let sw = SwBits::new(sw).unwrap();
            let got = vm.modify_mapped_attrs(ipa(start), len as u64 * K4, &|a| a.with_sw(sw));
            for (_, a) in next[start..start + len].iter_mut().flatten() {
                *a = a.with_sw(sw);
            }
            (got, Ok(()))
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
            let (start, len) = clip(start, len);
            (vm.merge(ipa(start), len as u64 * K4).map(|_| ()), Ok(()))
        }
        Op::Replace {
            page,
            target,
            attrs: a,
        } => {
            let pa = PA_BASE + target as u64 * K4;
            let got = vm.replace_page(ipa(page), pa, attrs(a));
            let got = match got {
                Ok(old) => {
                    assert_eq!(
                        old.and_then(|l| l.pa_of(ipa(page)).map(|pa| (pa, l.attrs))),
                        model[page],
                        "replace_page returns the old mapping"
                    );
                    Ok(())
                }
                Err(e) => Err(e),
            };
            next[page] = Some((pa, attrs(a)));
            (got, Ok(()))
        }
    };
    (got, want, next)
}

fn modify(
    next: &mut Model,
    start: usize,
    len: usize,
    f: impl Fn(Attrs) -> Attrs,
) -> Result<(), Error> {
    if let Some(p) = (start..start + len).find(|&p| next[p].is_none()) {
        return Err(Error::NotMapped { ipa: ipa(p) });
    }
    for e in &mut next[start..start + len] {
        let (pa, a) = e.unwrap();
        *e = Some((pa, f(a)));
    }
    Ok(())
}

fn check_against_model(vm: &Vm, model: &Model) {
    for (p, want) in model.iter().enumerate() {
        assert_eq!(vm.translate(ipa(p)), *want, "page {p} (ipa {:#x})", ipa(p));
    }
    let mut pages = 0u64;
    vm.for_each_leaf(&mut |l| {
        assert!(
            l.ipa >= BASE && l.ipa + l.size() <= ipa(PAGES),
            "leaf outside the window: {l:?}"
        );
        pages += l.size() / K4;
    });
    assert_eq!(pages, model.iter().filter(|e| e.is_some()).count() as u64);
}

fn run(ipa_bits: u8, ops: Vec<(Op, Option<u64>)>) {
    let mut vm = vm_with(ipa_bits, 1024);
    let mut model: Model = vec![None; PAGES];
    for (op, fail) in ops {
        let before = snapshot(&vm);
        take_trace(&mut vm);
        let live = live_tables(&vm);
        if let Some(n) = fail {
            vm.memory_mut().fail_nth_allocation(n);
        }
        let (got, want, next) = step(&mut vm, &model, &op);
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
        check_against_model(&vm, &model);
    }
    let (arena, _) = vm.destroy();
    assert_eq!(arena.pages_in_use(), 0);
}

fn ops() -> impl Strategy<Value = Vec<(Op, Option<u64>)>> {
    proptest::collection::vec((op(), proptest::option::weighted(0.15, 1..4u64)), 1..30)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_ops_match_page_model_ipa32(ops in ops()) {
        run(32, ops);
    }

    #[test]
    fn random_ops_match_page_model_ipa40(ops in ops()) {
        run(40, ops);
    }
}
