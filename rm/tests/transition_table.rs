//! The transition table: every memory request, from every party, in every state one page can
//! be in, checked against a model of the rules written from the spec (§7.2–§7.3) and DESIGN.md.
//!
//! One page of HLOS RAM and three parties: its owner (HLOS), an acceptor A (in the ACL of any
//! parcel of it) and a stranger S (never in an ACL). Each *state* is reached from a fresh RM by
//! a short sequence of requests; in it, each *request* (from each party it makes sense for) is
//! sent, and the test compares the exact reply code and the state every party is in afterwards
//! — what its real stage-2 tables map for the page and with which rights, and the parcel's state —
//! with the model's answer. The isolation checker runs after every request; a refused request
//! must leave the full state dump byte for byte unchanged; the stranger's tables never map the
//! page.
//!
//! A second table does the same for a golden page: a clone's range over it in every state
//! (golden mapped copy-on-write, copied, read-only) against GOLDEN_MAP, GOLDEN_UNMAP,
//! GOLDEN_RELEASE and guest writes.

mod common;
use common::*;

use gunyah_rm::memparcel::ParcelState;
use gunyah_rm::platform::{AddressSpaces, Rights};

const OWNER: u16 = HLOS;
const A: u16 = 0x80;
const S: u16 = 0x81;
const PAGE: u64 = 0x4800_0000;
const P: u64 = 0x1000;
const DONE: u8 = 0x80;

/// How a parcel of the page moves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trans {
    Share,
    Lend,
    Donate,
}

impl Trans {
    fn id(self) -> u32 {
        match self {
            Trans::Share => MEM_SHARE,
            Trans::Lend => MEM_LEND,
            Trans::Donate => MEM_DONATE,
        }
    }
    fn wire(self) -> u8 {
        match self {
            Trans::Donate => 0,
            Trans::Lend => 1,
            Trans::Share => 2,
        }
    }
    /// The ACL: SHARE names the owner too; DONATE gives all rights.
    fn acl(self) -> Vec<(u16, u8)> {
        match self {
            Trans::Share => vec![(OWNER, 7), (A, 6)],
            Trans::Lend => vec![(A, 6)],
            Trans::Donate => vec![(A, 7)],
        }
    }
}

/// The state of the page: which parcel of it exists, and who holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    /// HLOS owns it, no parcel.
    Owned,
    /// A parcel of it exists, nobody accepted.
    Offered(Trans),
    /// A accepted the parcel (SHARE or LEND; an accepted DONATE is `Donated`).
    Accepted(Trans),
    /// A owns it (a donation completed).
    Donated,
    /// HLOS sealed it golden: nobody may write it, HLOS no longer maps it.
    Sealed,
}

/// What the parties' tables map for the page, and the parcel's state, as the real RM has it.
type Seen = (
    Option<Rights>,
    Option<Rights>,
    Option<Rights>,
    Option<ParcelState>,
);

fn seen(h: &H, handle: Option<u32>) -> Seen {
    (
        common::rights_on_pa(h, OWNER, PAGE),
        common::rights_on_pa(h, A, PAGE),
        common::rights_on_pa(h, S, PAGE),
        handle.and_then(|x| h.rm.parcels().get(x).map(|p| p.state)),
    )
}

/// What each state looks like (the model).
fn looks(st: St) -> Seen {
    use ParcelState::{Shared, Sharing};
    let rwx = Some(Rights::RWX);
    match st {
        St::Owned => (rwx, None, None, None),
        St::Offered(Trans::Share) => (rwx, None, None, Some(Sharing)),
        St::Offered(_) => (None, None, None, Some(Sharing)),
        St::Accepted(Trans::Share) => (rwx, Some(Rights::RW), None, Some(Shared)),
        St::Accepted(_) => (None, Some(Rights::RW), None, Some(Shared)),
        St::Donated => (None, rwx, None, None),
        St::Sealed => (None, None, None, None),
    }
}

fn world() -> H {
    let mut h = H::new();
    assert_eq!(h.ready_vm(), A);
    assert_eq!(h.ready_vm(), S);
    h
}

fn accept_body(handle: u32, t: Trans) -> Vec<u8> {
    accept(handle, 0, t.wire(), DONE, 0, &[], &[], &[])
}

/// Reach `st` from a fresh world; returns the world and the parcel's handle (if one was made).
fn reach(st: St) -> (H, Option<u32>) {
    let mut h = world();
    let create = |h: &mut H, t: Trans| {
        h.ok(OWNER, t.id(), &create(0, 0, 0, &t.acl(), &[(PAGE, P)]))
            .u32_at(0)
    };
    let handle = match st {
        St::Owned => None,
        St::Offered(t) => Some(create(&mut h, t)),
        St::Accepted(t) => {
            let x = create(&mut h, t);
            h.ok(A, MEM_ACCEPT, &accept_body(x, t));
            Some(x)
        }
        St::Donated => {
            let x = create(&mut h, Trans::Donate);
            h.ok(A, MEM_ACCEPT, &accept_body(x, Trans::Donate));
            Some(x)
        }
        St::Sealed => {
            let x = create(&mut h, Trans::Lend);
            let mut seal = x.to_le_bytes().to_vec();
            seal.extend_from_slice(&[0; 4]);
            h.ok(OWNER, GOLDEN_SEAL, &seal);
            Some(x)
        }
    };
    assert_eq!(seen(&h, handle), looks(st), "reaching {st:?}");
    (h, handle)
}

fn t_of(st: St) -> Trans {
    match st {
        St::Offered(t) | St::Accepted(t) => t,
        _ => Trans::Lend,
    }
}

/// A request of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Req {
    Create(Trans),
    Accept,
    Release,
    Reclaim,
    Seal,
}

/// The model: the reply code and the state after `req` from `from` in `st`.
fn model(st: St, req: Req, from: u16) -> (u32, St) {
    let has_parcel = matches!(st, St::Offered(_) | St::Accepted(_));
    let t = t_of(st);
    // The ACL of the parcel (if any): A, plus the owner for a SHARE.
    let in_acl = has_parcel && (from == A || (from == OWNER && t == Trans::Share));
    match req {
        // Only memory the sender owns and has not put in a parcel (MEM_INVALID otherwise).
        Req::Create(new) => match (st, from) {
            (St::Owned, OWNER) => (OK, St::Offered(new)),
            _ => (MEM_INVALID, st),
        },
        Req::Accept => {
            if !has_parcel {
                (HANDLE_INVALID, st)
            } else if !in_acl {
                (VMID_INVALID, st)
            } else if from == OWNER || matches!(st, St::Accepted(_)) {
                (DENIED, st)
            } else if t == Trans::Donate {
                (OK, St::Donated)
            } else {
                (OK, St::Accepted(t))
            }
        }
        Req::Release => {
            if !has_parcel || !in_acl {
                (HANDLE_INVALID, st)
            } else if from == OWNER {
                (DENIED, st)
            } else if let St::Accepted(t) = st {
                (OK, St::Offered(t))
            } else {
                (MEM_RELEASED, st)
            }
        }
        Req::Reclaim => {
            if !has_parcel {
                (HANDLE_INVALID, st)
            } else if from != OWNER {
                (DENIED, st)
            } else if matches!(st, St::Accepted(_)) {
                (MEM_INUSE, st)
            } else {
                (OK, St::Owned)
            }
        }
        Req::Seal => {
            if !has_parcel {
                (HANDLE_INVALID, st)
            } else if from != OWNER {
                (DENIED, st)
            } else if matches!(st, St::Accepted(_)) {
                (MEM_INUSE, st)
            } else {
                (OK, St::Sealed)
            }
        }
    }
}

fn body(req: Req, st: St, handle: Option<u32>, from: u16) -> (u32, Vec<u8>) {
    // Requests about the parcel name its handle, or one that does not exist.
    let x = handle
        .filter(|_| st != St::Donated && st != St::Sealed)
        .unwrap_or(0xDEAD);
    match req {
        // A create is well formed for its sender (a SHARE names the sender, a LEND or DONATE
        // another VM): what decides is whether the sender owns the page at that IPA.
        Req::Create(t) => {
            let other = if from == OWNER { A } else { OWNER };
            let acl = match t {
                Trans::Share => vec![(from, 7), (other, 6)],
                Trans::Lend => vec![(other, 6)],
                Trans::Donate => vec![(other, 7)],
            };
            (t.id(), create(0, 0, 0, &acl, &[(PAGE, P)]))
        }
        Req::Accept => (MEM_ACCEPT, accept_body(x, t_of(st))),
        Req::Release => (MEM_RELEASE, handle_flags(x, 0)),
        Req::Reclaim => (MEM_RECLAIM, handle_flags(x, 0)),
        Req::Seal => {
            let mut v = x.to_le_bytes().to_vec();
            v.extend_from_slice(&[0; 4]);
            (GOLDEN_SEAL, v)
        }
    }
}

#[test]
fn every_memory_request_in_every_state_from_every_party() {
    let states = [
        St::Owned,
        St::Offered(Trans::Share),
        St::Offered(Trans::Lend),
        St::Offered(Trans::Donate),
        St::Accepted(Trans::Share),
        St::Accepted(Trans::Lend),
        St::Donated,
        St::Sealed,
    ];
    let reqs = [
        Req::Create(Trans::Share),
        Req::Create(Trans::Lend),
        Req::Create(Trans::Donate),
        Req::Accept,
        Req::Release,
        Req::Reclaim,
        Req::Seal,
    ];
    // Every cell builds its own world; two threads share the states.
    let (first, second) = states.split_at(states.len() / 2);
    let cells: usize = std::thread::scope(|sc| {
        let a = sc.spawn(|| memory_cells(first, &reqs));
        let b = sc.spawn(|| memory_cells(second, &reqs));
        a.join().unwrap() + b.join().unwrap()
    });
    assert_eq!(cells, 8 * 7 * 3);
}

fn memory_cells(states: &[St], reqs: &[Req]) -> usize {
    let mut cells = 0;
    for &st in states {
        for &req in reqs {
            for from in [OWNER, A, S] {
                let (mut h, handle) = reach(st);
                let (want_code, want_st) = model(st, req, from);
                let (id, b) = body(req, st, handle, from);
                let ctx = format!("{req:?} from {from:#x} in {st:?}");
                let before = h.rm.snapshot();
                let c = h.call(from, id, &b);
                assert_eq!(
                    c.err, want_code,
                    "{ctx}: code {:#x}, want {want_code:#x}",
                    c.err
                );
                if want_code != OK {
                    assert!(
                        before == h.rm.snapshot(),
                        "{ctx}: refused, yet state changed"
                    );
                    assert!(c.notifs().is_empty(), "{ctx}: refused, yet notified");
                }
                let handle = match req {
                    Req::Create(_) if want_code == OK => Some(c.u32_at(0)),
                    _ => handle,
                };
                assert_eq!(
                    seen(&h, handle),
                    looks(want_st),
                    "{ctx}: now in the wrong state"
                );
                assert_eq!(
                    common::rights_on_pa(&h, S, PAGE),
                    None,
                    "{ctx}: the stranger maps the page"
                );
                cells += 1;
            }
        }
    }
    cells
}

// ---- the golden page ----

const CLONE_IPA: u64 = 0x9000_0000;
const SRC: u64 = 0x4020_0000;
const MIB2: u64 = 0x20_0000;

/// The clone's range over golden page 1 of the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum G {
    /// Nothing mapped at the clone's IPA.
    Unmapped,
    /// Mapped copy-on-write, page not written.
    Cow,
    /// Mapped copy-on-write, page written: the clone has its copy.
    Copied,
    /// Mapped read-only.
    ReadOnly,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GReq {
    MapCow,
    Unmap,
    Release,
    Write,
}

struct GWorld {
    h: H,
    g: u32,
    pool: u32,
}

fn golden_world(st: G) -> GWorld {
    let mut h = world();
    h.ok(HLOS, SIM_VM_WRITE, &sim_write(HLOS, SRC + P, b"golden"));
    let lent = h
        .ok(HLOS, MEM_LEND, &create(0, 0, 0, &[(A, 7)], &[(SRC, MIB2)]))
        .u32_at(0);
    let mut seal = lent.to_le_bytes().to_vec();
    seal.extend_from_slice(&[0; 4]);
    let g = h.ok(HLOS, GOLDEN_SEAL, &seal).u32_at(0);
    let pool = h
        .ok(HLOS, GMEM_CREATE, &gmem_create(8 * P, 0, A, 0))
        .u32_at(0);
    match st {
        G::Unmapped => {}
        G::Cow | G::Copied => {
            h.ok(
                HLOS,
                GOLDEN_MAP,
                &golden_map(g, A, 1, 0, CLONE_IPA, MIB2, pool),
            );
        }
        G::ReadOnly => {
            h.ok(
                HLOS,
                GOLDEN_MAP,
                &golden_map(g, A, 0, 0, CLONE_IPA, MIB2, 0xFFFF_FFFF),
            );
        }
    }
    if st == G::Copied {
        h.ok(HLOS, SIM_VM_WRITE, &sim_write(A, CLONE_IPA + P, b"mine"));
    }
    GWorld { h, g, pool }
}

/// What the clone's tables map at the page and what it reads there; the golden page's own
/// contents; the pool's charge.
fn golden_seen(w: &mut GWorld) -> (Option<Rights>, Option<Vec<u8>>, Vec<u8>, u64) {
    let leaf = w.h.rm.platform().query(A, CLONE_IPA + P);
    let reads = leaf.is_some().then(|| {
        w.h.ok(HLOS, SIM_VM_READ, &sim_read(A, 6, CLONE_IPA + P))
            .data
    });
    let golden_pa = w.h.rm.golden(w.g).map(|g| g.pa_of(P).unwrap());
    let mut own = vec![0u8; 6];
    if let Some(pa) = golden_pa {
        use gunyah_rm::platform::PhysMem;
        assert!(w.h.rm.platform().read(pa, &mut own));
    }
    let used = w.h.rm.gmem(w.pool).map_or(0, |p| p.used_pages());
    (leaf.map(|l| l.rights), reads, own, used)
}

fn golden_looks(st: G) -> (Option<Rights>, Option<Vec<u8>>, Vec<u8>, u64) {
    let golden = b"golden".to_vec();
    match st {
        G::Unmapped => (None, None, golden, 0),
        G::Cow => (Some(Rights::R), Some(golden.clone()), golden, 0),
        G::Copied => (Some(Rights::RW), Some(b"mineen".to_vec()), golden, 1),
        G::ReadOnly => (Some(Rights::R), Some(golden.clone()), golden, 0),
    }
}

/// The model for the golden table: code and new state; for writes, the SIM_VM_WRITE code.
fn golden_model(st: G, req: GReq, from: u16) -> (u32, G) {
    let owner = from == HLOS;
    match req {
        // Only the image's owner maps, unmaps or releases it (DENIED for anyone else).
        GReq::MapCow | GReq::Unmap | GReq::Release if !owner => (DENIED, st),
        GReq::MapCow => match st {
            G::Unmapped => (OK, G::Cow),
            _ => (MEM_INVALID, st),
        },
        GReq::Unmap => match st {
            G::Unmapped => (MEM_INVALID, st),
            _ => (OK, G::Unmapped),
        },
        GReq::Release => match st {
            G::Unmapped => (OK, G::Unmapped),
            _ => (MEM_INUSE, st),
        },
        // The VM itself or its manager writes the page through the clone's stage 2.
        GReq::Write => match (st, from) {
            (_, S) => (VMID_INVALID, st),
            (G::Unmapped | G::ReadOnly, _) => (MEM_INVALID, st),
            (G::Cow | G::Copied, _) => (OK, G::Copied),
        },
    }
}

#[test]
fn every_golden_request_in_every_state_from_every_party() {
    let mut cells = 0;
    for st in [G::Unmapped, G::Cow, G::Copied, G::ReadOnly] {
        for req in [GReq::MapCow, GReq::Unmap, GReq::Release, GReq::Write] {
            for from in [HLOS, A, S] {
                let mut w = golden_world(st);
                assert_eq!(golden_seen(&mut w), golden_looks(st), "reaching {st:?}");
                let (want, want_st) = golden_model(st, req, from);
                let (id, b) = match req {
                    GReq::MapCow => (
                        GOLDEN_MAP,
                        golden_map(w.g, A, 1, 0, CLONE_IPA, MIB2, w.pool),
                    ),
                    GReq::Unmap => (GOLDEN_UNMAP, id_vmid_range(w.g, A, CLONE_IPA, MIB2)),
                    GReq::Release => {
                        let mut v = w.g.to_le_bytes().to_vec();
                        v.extend_from_slice(&[0; 4]);
                        (GOLDEN_RELEASE, v)
                    }
                    GReq::Write => (SIM_VM_WRITE, sim_write(A, CLONE_IPA + P, b"mine")),
                };
                let ctx = format!("{req:?} from {from:#x} in {st:?}");
                let c = w.h.call(from, id, &b);
                assert_eq!(c.err, want, "{ctx}: code {:#x}, want {want:#x}", c.err);
                if req == GReq::Release && want == OK {
                    assert!(w.h.rm.golden(w.g).is_none(), "{ctx}: the image is gone");
                    continue;
                }
                assert_eq!(
                    golden_seen(&mut w),
                    golden_looks(want_st),
                    "{ctx}: wrong state after"
                );
                assert_eq!(
                    common::rights_on_pa(&w.h, S, SRC + P),
                    None,
                    "{ctx}: the stranger maps it"
                );
                cells += 1;
            }
        }
    }
    assert!(cells >= 40, "{cells} cells");
}
