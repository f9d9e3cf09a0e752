//! Randomised request sequences over three parties. After every request the
//! isolation checker must find nothing, and every request that fails must
//! leave the full state dump unchanged and send no notification.

mod common;
use common::mutate::Rng;
use common::*;

const A: u16 = 0x80;
const B: u16 = 0x81;
const PARTIES: [u16; 3] = [HLOS, A, B];
const P: u64 = 0x1000;

/// An IPA a party might name: HLOS RAM pages, or IPAs in the VMs' spaces.
fn some_ipa(r: &mut Rng) -> u64 {
    match r.below(6) {
        0..=4 => 0x4800_0000 + r.below(24) * P,
        _ => 0x2_0000_0000 + r.below(8) * P,
    }
}

fn run(seed: u64, steps: usize) {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut h = H::new();
    // Both guests READY, so they can send requests.
    assert_eq!(h.ready_vm(), A);
    assert_eq!(h.ready_vm(), B);
    // Known handles with their trans_type (plus one that never existed).
    let mut handles: Vec<(u32, u8)> = vec![(77, 0)];
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..steps {
        let any = r.pick(&PARTIES);
        let guest = r.pick(&[A, B]);
        // Mostly one of the last few handles.
        let (handle, known_trans) = if r.below(4) == 0 {
            r.pick(&handles)
        } else {
            r.pick(&handles[handles.len().saturating_sub(3)..])
        };
        let (from, id, body) = match r.below(10) {
            0..=2 => {
                let from = if r.below(4) == 0 { any } else { HLOS };
                let id = r.pick(&[MEM_SHARE, MEM_LEND, MEM_DONATE]);
                let rights = r.pick(&[4u8, 5, 6, 7, 7, 7, 2]);
                // Mostly well-formed ACLs for the transaction type, sometimes not.
                let a: Vec<(u16, u8)> = match (id, r.below(8)) {
                    (_, 0) => vec![(any, rights), (guest, rights)],
                    (MEM_SHARE, _) => vec![(from, 7), (guest, rights)],
                    (MEM_LEND, _) => vec![(guest, rights)],
                    _ => vec![(guest, 7)],
                };
                let n = 1 + r.below(3);
                let start = some_ipa(&mut r);
                let s: Vec<(u64, u64)> = (0..n)
                    .map(|k| (start + 3 * k * P, P * (1 + r.below(2))))
                    .collect();
                (from, id, create(0, r.pick(&[0u8, 0, 0, 1, 2]), 0, &a, &s))
            }
            3..=5 => {
                let from = if r.below(5) == 0 { any } else { guest };
                let flags = r.pick(&[0x80u8, 0x80, 0x80, 0x90, 0x00, 0x10, 0xA0, 0x82]);
                let s: Vec<(u64, u64)> = if r.below(3) == 0 {
                    vec![(some_ipa(&mut r), P)]
                } else {
                    vec![]
                };
                let trans = if r.below(6) == 0 {
                    r.pick(&[0u8, 1, 2])
                } else {
                    known_trans
                };
                (
                    from,
                    MEM_ACCEPT,
                    accept(handle, 0, trans, flags, 0, &[(from, 6)], &s, &[]),
                )
            }
            6 => {
                let from = if r.below(5) == 0 { any } else { guest };
                (
                    from,
                    MEM_RELEASE,
                    handle_flags(handle, r.pick(&[0u8, 0, 1])),
                )
            }
            7 => {
                let from = if r.below(5) == 0 { any } else { HLOS };
                (
                    from,
                    MEM_RECLAIM,
                    handle_flags(handle, r.pick(&[0u8, 0, 1])),
                )
            }
            8 => {
                let f = r.pick(&[1u8, 2, 4, 8, 3]);
                let v: Vec<u16> = if f == 1 || f == 8 {
                    vec![guest]
                } else {
                    vec![]
                };
                (any, MEM_NOTIFY, notify(handle, f, r.below(2) as u32, &v))
            }
            _ => {
                let mut ap = handle.to_le_bytes().to_vec();
                ap.extend_from_slice(&[r.below(2) as u8, 0, 0, 0]);
                ap.extend(sgl(&[(some_ipa(&mut r), P)]));
                (HLOS, MEM_APPEND, ap)
            }
        };
        let before = h.rm.snapshot();
        let c = h.call(from, id, &body); // runs the isolation checker
        if c.err == OK {
            ok += 1;
            if matches!(id, MEM_SHARE | MEM_LEND | MEM_DONATE) {
                let t = match id {
                    MEM_DONATE => 0,
                    MEM_LEND => 1,
                    _ => 2,
                };
                handles.push((c.u32_at(0), t));
            }
        } else {
            failed += 1;
            assert!(
                c.notifs().is_empty(),
                "seed {seed}: failed {id:#x} notified"
            );
            assert_eq!(
                before,
                h.rm.snapshot(),
                "seed {seed}: failed {id:#x} ({:#x}) changed state",
                c.err
            );
        }
    }
    // Both outcomes must actually be exercised.
    assert!(
        ok > steps / 10 && failed > steps / 10,
        "seed {seed}: ok {ok}, failed {failed}"
    );
}

#[test]
fn random_sequences_keep_isolation_and_atomicity() {
    for seed in 1..=16 {
        run(seed, 150);
    }
}
