//! Who may do what (DESIGN.md "Who may do what"): every request, sent by every kind of caller,
//! gets exactly the answer the rules give, and a refused request changes nothing.
//!
//! The world (built fresh for every cell, so a request that succeeds cannot affect the next):
//! * HLOS (3): manages every other VM; owns the golden image `G` (sealed from its RAM), the
//!   parcel `X` (a page of its RAM lent to T, not accepted) and the pool `P` (charged to T).
//! * T (0x80), the target: RUNNING; `G` mapped copy-on-write at `CLONE_IPA` paid by `P`, a
//!   binding of `P` at `BIND_IPA`; it owns a page HLOS donated to it and has lent it to U as
//!   the parcel `Y`.
//! * U (0x81): READY, an unrelated VM (HLOS manages it; it has nothing to do with T).
//! * L (0x82): LOAD, allocated but not initialised: it has no RM message queue yet.
//! * D (0x83): was READY, then reset and deallocated: its VMID is free.
//!
//! Expected answers are written from the rules (spec §5.5, §7.3, §12.1 and DESIGN.md), not
//! read back from the RM: a VM that is not the caller's is VMID_INVALID (DENIED for requests
//! only HLOS may send), a handle that is not the caller's is DENIED or HANDLE_INVALID as the
//! spec says, and L and D, which have no RM queue, get no answer at all.

mod common;
use common::*;

const T: u16 = 0x80;
const U: u16 = 0x81;
const L: u16 = 0x82;
const D: u16 = 0x83;
const CALLERS: [(u16, &str); 5] = [
    (HLOS, "manager/owner HLOS"),
    (T, "the VM itself (T)"),
    (U, "an unrelated VM (U)"),
    (L, "a VM in LOAD (L)"),
    (D, "a deallocated VMID (D)"),
];

const P4K: u64 = 0x1000;
const MIB2: u64 = 0x20_0000;
/// HLOS RAM sealed as the golden image.
const SRC: u64 = 0x4020_0000;
/// HLOS RAM page lent to T as `X`.
const X_PA: u64 = 0x4800_0000;
/// HLOS RAM page donated to T (then lent on to U as `Y`).
const DONATED_PA: u64 = 0x4801_0000;
/// Where T maps the golden image, and where it binds pool pages.
const CLONE_IPA: u64 = 0x8000_0000;
const BIND_IPA: u64 = 0x9000_0000;

struct World {
    h: H,
    x: u32,
    y: u32,
    g: u32,
    pool: u32,
}

fn world() -> World {
    let mut h = H::new();
    assert_eq!(h.ready_vm(), T);
    assert_eq!(h.ready_vm(), U);
    assert_eq!(h.ok(HLOS, VM_ALLOC, &vmid_pad(0)).u32_at(0), L as u32);
    assert_eq!(h.ready_vm(), D);
    h.reset_and_dealloc(D);
    h.ok(HLOS, VM_START, &vmid_pad(T));
    // The golden image: HLOS RAM with known bytes, lent to T and sealed by HLOS.
    h.ok(HLOS, SIM_VM_WRITE, &sim_write(HLOS, SRC, b"golden"));
    let lent = h
        .ok(HLOS, MEM_LEND, &create(0, 0, 0, &[(T, 7)], &[(SRC, MIB2)]))
        .u32_at(0);
    let mut seal = lent.to_le_bytes().to_vec();
    seal.extend_from_slice(&[0; 4]);
    let g = h.ok(HLOS, GOLDEN_SEAL, &seal).u32_at(0);
    let pool = h
        .ok(HLOS, GMEM_CREATE, &gmem_create(16 * P4K, 0, T, 0))
        .u32_at(0);
    h.ok(
        HLOS,
        GOLDEN_MAP,
        &golden_map(g, T, 1, 0, CLONE_IPA, MIB2, pool),
    );
    h.ok(
        HLOS,
        GMEM_BIND,
        &gmem_bind(pool, T, 6, 0, 0, BIND_IPA, 2 * P4K),
    );
    let x = h
        .ok(HLOS, MEM_LEND, &create(0, 0, 0, &[(T, 6)], &[(X_PA, P4K)]))
        .u32_at(0);
    // T owns a donated page and lends it to U.
    let don = h
        .ok(
            HLOS,
            MEM_DONATE,
            &create(0, 0, 0, &[(T, 7)], &[(DONATED_PA, P4K)]),
        )
        .u32_at(0);
    let acc = h.ok(T, MEM_ACCEPT, &accept(don, 0, 0, 0x80, 0, &[], &[], &[]));
    let t_ipa = u64::from_le_bytes(acc.data[4..12].try_into().unwrap());
    let y = h
        .ok(T, MEM_LEND, &create(0, 0, 0, &[(U, 6)], &[(t_ipa, P4K)]))
        .u32_at(0);
    World { h, x, y, g, pool }
}

/// What a caller must get.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    Ok,
    Err(u32),
    /// The caller has no RM queue: the request is dropped unanswered.
    Nothing,
}
use Want::*;

/// One row: a request (built from the world's handles) and the answer for each caller, in the
/// order of [`CALLERS`].
struct Row {
    name: &'static str,
    msg_id: u32,
    body: fn(&World) -> Vec<u8>,
    want: [Want; 3],
}

fn row(name: &'static str, msg_id: u32, body: fn(&World) -> Vec<u8>, want: [Want; 3]) -> Row {
    Row {
        name,
        msg_id,
        body,
        want,
    }
}

fn x_flags(w: &World, flags: u8) -> Vec<u8> {
    handle_flags(w.x, flags)
}

fn rows() -> Vec<Row> {
    const VI: Want = Err(VMID_INVALID);
    const DN: Want = Err(DENIED);
    const ST: Want = Err(VM_STATE);
    vec![
        // --- requests about no VM in particular ---
        row("VM_GET_VMID", VM_GET_VMID, |_| vec![], [Ok, Ok, Ok]),
        // Only HLOS allocates VMIDs (§5.5).
        row("VM_ALLOC_VMID", VM_ALLOC, |_| vmid_pad(0), [Ok, DN, DN]),
        // A secondary VM reports its own status; HLOS may not (§5.3).
        row(
            "VM_SET_STATUS",
            VM_SET_STATUS,
            |_| vec![0, 4, 0, 0],
            [DN, Ok, Ok],
        ),
        // A VM exits itself; HLOS may not; U is READY, not running.
        row("VM_EXIT", VM_EXIT, |_| vec![0, 0, 0, 0], [DN, Ok, ST]),
        // --- requests about T: its manager only (VMID_INVALID for anyone else, §10.7) ---
        row(
            "VM_DEALLOC_VMID(T)",
            VM_DEALLOC,
            |_| vmid_pad(T),
            [ST, VI, VI],
        ),
        // HLOS-only requests: DENIED for any other caller, before the owner check.
        row(
            "VM_CONFIG_IMAGE(T)",
            VM_CONFIG_IMAGE,
            |w| config_image(T, 0, w.x, (0, 0), (0, 0x100)),
            [ST, DN, DN],
        ),
        row("VM_INIT(T)", VM_INIT, |_| vmid_pad(T), [ST, DN, DN]),
        row(
            "VM_AUTH_IMAGE(T)",
            VM_AUTH_IMAGE,
            |_| vmid_pad(T),
            [ST, VI, VI],
        ),
        row("VM_START(T)", VM_START, |_| vmid_pad(T), [ST, VI, VI]),
        row("VM_STOP(T)", VM_STOP, |_| stop(T, 1, 0), [Ok, VI, VI]),
        row("VM_RESET(T)", VM_RESET, |_| vmid_pad(T), [ST, VI, VI]),
        // Queries: the VM itself and its manager; to anyone else T does not exist.
        row(
            "VM_GET_STATE(T)",
            VM_GET_STATE,
            |_| vmid_pad(T),
            [Ok, Ok, Err(NORESOURCE)],
        ),
        // To anyone else T does not exist: ARGUMENT_INVALID, Gunyah's answer for an
        // unknown VMID (§12.1; was VMID_INVALID).
        row(
            "VM_GET_HYP_RESOURCES(T)",
            VM_GET_HYP_RESOURCES,
            |_| vmid_pad(T),
            [Ok, Ok, Err(ARGUMENT_INVALID)],
        ),
        // VM identity (§9): T itself and its manager; to another VM T does not exist
        // (NORESOURCE, Gunyah's answer). A VM HLOS manages is HLOS's peer: it may ask about
        // HLOS (Gunyah's is_vm_query_allowed).
        row(
            "VM_GET_ID(T)",
            VM_GET_ID,
            |_| vmid_pad(T),
            [Ok, Ok, Err(NORESOURCE)],
        ),
        row(
            "VM_GET_ID(HLOS)",
            VM_GET_ID,
            |_| vmid_pad(HLOS),
            [Ok, Ok, Ok],
        ),
        row(
            "VM_LOOKUP_NAME(HLOS)",
            VM_LOOKUP_NAME,
            |_| vec![4, 0, 0, 0, b'H', b'L', b'O', b'S'],
            [Ok, Ok, Ok],
        ),
        row(
            "VM_LOOKUP_URI(vm://x)",
            VM_LOOKUP_URI,
            |_| vec![6, 0, 0, 0, b'v', b'm', b':', b'/', b'/', b'x', 0, 0],
            [Ok, Ok, Ok],
        ),
        row(
            "VM_LOOKUP_GUID(1…)",
            VM_LOOKUP_GUID,
            |_| vec![1; 16],
            [Ok, Ok, Ok],
        ),
        row(
            "VM_SET_DEMAND_PAGING(T)",
            VM_SET_DEMAND_PAGING,
            |_| {
                let mut v = vmid_pad(T);
                v.extend_from_slice(&1u32.to_le_bytes());
                v.extend_from_slice(&0xA000_0000u64.to_le_bytes());
                v.extend_from_slice(&MIB2.to_le_bytes());
                v
            },
            [ST, VI, VI],
        ),
        row(
            "VM_SET_ADDRESS_LAYOUT(T)",
            VM_SET_ADDRESS_LAYOUT,
            |_| {
                let mut v = vmid_pad(T);
                v.extend_from_slice(&0u32.to_le_bytes());
                v.extend_from_slice(&0x8000_0000u64.to_le_bytes());
                v.extend_from_slice(&MIB2.to_le_bytes());
                v
            },
            [ST, VI, VI],
        ),
        row(
            "VM_SET_BOOT_CONTEXT(T)",
            VM_SET_BOOT_CONTEXT,
            |_| {
                let mut v = T.to_le_bytes().to_vec();
                v.extend_from_slice(&[1, 0, 0, 0, 0, 0]);
                v.extend_from_slice(&0x8000_0000u64.to_le_bytes());
                v
            },
            [ST, VI, VI],
        ),
        row(
            "VM_SET_FIRMWARE_MEM(T)",
            VM_SET_FIRMWARE_MEM,
            |w| {
                let mut v = vmid_pad(T);
                v.extend_from_slice(&w.x.to_le_bytes());
                v.extend_from_slice(&0u64.to_le_bytes());
                v.extend_from_slice(&P4K.to_le_bytes());
                v
            },
            // Only the manager; to anyone else T does not exist: NORESOURCE, Gunyah's
            // answer for an unknown VMID (§12.1; was VMID_INVALID).
            [ST, Err(NORESOURCE), Err(NORESOURCE)],
        ),
        // The VM itself or its manager; to anyone else NORESOURCE (§12.1). T runs:
        // VM_STATE.
        row(
            "VM_SET_TIME_BASE(T)",
            VM_SET_TIME_BASE,
            |_| {
                let mut v = vmid_pad(T);
                v.extend_from_slice(&[0; 16]);
                v
            },
            [ST, ST, Err(NORESOURCE)],
        ),
        // Queries about the caller itself: anyone with an RM queue (§12.1).
        row("VM_GET_OWNER", VM_GET_OWNER, |_| vec![], [Ok, Ok, Ok]),
        row("VM_GET_PEERS", VM_GET_PEERS, |_| vec![], [Ok, Ok, Ok]),
        row(
            "VM_HOST_GET_TYPE",
            VM_HOST_GET_TYPE,
            |_| vec![],
            [Ok, Ok, Ok],
        ),
        // --- requests about VMs in other states ---
        row(
            "VM_GET_STATE(L)",
            VM_GET_STATE,
            |_| vmid_pad(L),
            [Ok, Err(NORESOURCE), Err(NORESOURCE)],
        ),
        row(
            "VM_GET_STATE(D)",
            VM_GET_STATE,
            |_| vmid_pad(D),
            [Err(NORESOURCE); 3],
        ),
        row("VM_START(D)", VM_START, |_| vmid_pad(D), [VI; 3]),
        row("VM_START(U)", VM_START, |_| vmid_pad(U), [Ok, VI, VI]),
        // --- parcel X: HLOS lent a page to T; T has not accepted it (§7.3) ---
        // The owner is not in a LEND's ACL, nor is U: VMID_INVALID; T accepts.
        row(
            "MEM_ACCEPT(X)",
            MEM_ACCEPT,
            |w| accept(w.x, 0, 1, 0x80, 0, &[], &[], &[]),
            [VI, Ok, VI],
        ),
        // Not in the ACL → HANDLE_INVALID (checked before "the owner → DENIED", so a LEND's
        // owner, who is not in its ACL, gets HANDLE_INVALID too); T has not accepted →
        // MEM_RELEASED.
        row(
            "MEM_RELEASE(X)",
            MEM_RELEASE,
            |w| x_flags(w, 0),
            [Err(HANDLE_INVALID), Err(MEM_RELEASED), Err(HANDLE_INVALID)],
        ),
        // Only the owner reclaims.
        row(
            "MEM_RECLAIM(X)",
            MEM_RECLAIM,
            |w| x_flags(w, 0),
            [Ok, DN, DN],
        ),
        // Only the owner notifies SHARED/RECALL.
        row(
            "MEM_NOTIFY(X, RECALL)",
            MEM_NOTIFY,
            |w| notify(w.x, 0x8, 1, &[T]),
            [Ok, DN, DN],
        ),
        // Only an acceptor notifies ACCEPTED; it must have accepted.
        row(
            "MEM_NOTIFY(X, ACCEPTED)",
            MEM_NOTIFY,
            |w| notify(w.x, 0x4, 1, &[]),
            [Err(HANDLE_INVALID), Err(MEM_RELEASED), Err(HANDLE_INVALID)],
        ),
        // X is final: nobody may append (owner: finalised; others: not the owner).
        row(
            "MEM_APPEND(X)",
            MEM_APPEND,
            |w| {
                let mut v = w.x.to_le_bytes().to_vec();
                v.extend_from_slice(&[1, 0, 0, 0]);
                v.extend(sgl(&[(X_PA + P4K, P4K)]));
                v
            },
            [DN, DN, DN],
        ),
        // Lookup finds only the caller's own parcels.
        row(
            "MEM_QCOM_LOOKUP_SGL(X)",
            MEM_LOOKUP_SGL,
            |_| {
                let mut v = vec![0u8, 0, 0, 0];
                v.extend_from_slice(&0u32.to_le_bytes());
                v.extend(acl(&[(T, 6)]));
                v.extend(sgl(&[(X_PA, P4K)]));
                v.extend(attrs(&[]));
                v
            },
            [Ok, Err(LOOKUP_FAILED), Err(LOOKUP_FAILED)],
        ),
        // --- parcel Y: T lent its donated page to U. T owns it, not HLOS ---
        row(
            "MEM_RECLAIM(Y)",
            MEM_RECLAIM,
            |w| handle_flags(w.y, 0),
            [DN, Ok, DN],
        ),
        row(
            "MEM_ACCEPT(Y)",
            MEM_ACCEPT,
            |w| accept(w.y, 0, 1, 0x80, 0, &[], &[], &[]),
            [VI, VI, Ok],
        ),
        // --- creating parcels: only from the caller's own memory (HLOS RAM is HLOS's) ---
        row(
            "MEM_SHARE(HLOS RAM)",
            MEM_SHARE,
            |_| create(0, 0, 0, &[(HLOS, 7), (T, 6), (U, 6)], &[(0x4900_0000, P4K)]),
            [Ok, Err(MEM_INVALID), Err(MEM_INVALID)],
        ),
        // --- gmem pools: the manager sets a VM's quota; a VM may not ---
        row(
            "GMEM_CREATE(owner T)",
            GMEM_CREATE,
            |_| gmem_create(4 * P4K, 0, T, 0),
            [Ok, DN, VI],
        ),
        row(
            "GMEM_CREATE(owner caller)",
            GMEM_CREATE,
            |_| gmem_create(4 * P4K, 0, 0, 0),
            [DN, DN, DN],
        ),
        row(
            "GMEM_CREATE(owner D)",
            GMEM_CREATE,
            |_| gmem_create(4 * P4K, 0, D, 0),
            [VI; 3],
        ),
        // A pool is bound into its own VM by that VM or its manager.
        row(
            "GMEM_BIND(P into T)",
            GMEM_BIND,
            |w| gmem_bind(w.pool, T, 6, 0, 4 * P4K, 0xA000_0000, P4K),
            [Ok, Ok, DN],
        ),
        row(
            "GMEM_UNBIND(P from T)",
            GMEM_UNBIND,
            |w| id_vmid_range(w.pool, T, BIND_IPA, 2 * P4K),
            [Ok, Ok, DN],
        ),
        // --- the golden image G: only its owner (HLOS, which sealed it) ---
        row(
            "GOLDEN_SEAL(X)",
            GOLDEN_SEAL,
            |w| x_flags(w, 0),
            [Ok, DN, DN],
        ),
        row(
            "GOLDEN_MAP(G into T)",
            GOLDEN_MAP,
            |w| golden_map(w.g, T, 0, 0, 0xB000_0000, MIB2, NO_GMEM),
            [Ok, DN, DN],
        ),
        // A clone cannot map an image into itself on its own.
        row(
            "GOLDEN_MAP(G into U)",
            GOLDEN_MAP,
            |w| golden_map(w.g, U, 0, 0, 0xB000_0000, MIB2, NO_GMEM),
            [Ok, DN, DN],
        ),
        row(
            "GOLDEN_UNMAP(G from T)",
            GOLDEN_UNMAP,
            |w| id_vmid_range(w.g, T, CLONE_IPA, MIB2),
            [Ok, DN, DN],
        ),
        row(
            "GOLDEN_RELEASE(G)",
            GOLDEN_RELEASE,
            |w| {
                let mut v = w.g.to_le_bytes().to_vec();
                v.extend_from_slice(&[0; 4]);
                v
            },
            [Err(MEM_INUSE), DN, DN],
        ),
        row(
            "VM_MEM_STATS(T)",
            VM_MEM_STATS,
            |_| vmid_pad(T),
            [Ok, Ok, VI],
        ),
        // --- guest memory through the simulator: the VM itself and its manager only ---
        row(
            "SIM_VM_READ(T)",
            SIM_VM_READ,
            |_| sim_read(T, 6, CLONE_IPA),
            [Ok, Ok, VI],
        ),
        row(
            "SIM_VM_WRITE(T)",
            SIM_VM_WRITE,
            |_| sim_write(T, CLONE_IPA, b"mine"),
            [Ok, Ok, VI],
        ),
        row(
            "SIM_VM_READ(HLOS)",
            SIM_VM_READ,
            |_| sim_read(HLOS, 6, 0x4A00_0000),
            [Ok, VI, VI],
        ),
        row(
            "SIM_VM_WRITE(HLOS)",
            SIM_VM_WRITE,
            |_| sim_write(HLOS, 0x4A00_0000, b"x"),
            [Ok, VI, VI],
        ),
        row(
            "SIM_VM_READ(U)",
            SIM_VM_READ,
            |_| sim_read(U, 4, 0x4000_0000),
            [Err(MEM_INVALID), VI, Err(MEM_INVALID)],
        ),
        row(
            "SIM_VM_READ(D)",
            SIM_VM_READ,
            |_| sim_read(D, 4, 0),
            [VI; 3],
        ),
    ]
}

const NO_GMEM: u32 = 0xFFFF_FFFF;

#[test]
fn every_request_from_every_kind_of_caller() {
    let rows = rows();
    // Every cell builds its own world; two threads share the rows.
    let cells: usize = std::thread::scope(|s| {
        let (a, b) = rows.split_at(rows.len() / 2);
        let ha = s.spawn(|| check_rows(a));
        let hb = s.spawn(|| check_rows(b));
        ha.join().unwrap() + hb.join().unwrap()
    });
    assert_eq!(cells, rows.len() * CALLERS.len());
    assert!(rows.len() >= 45, "the table covers every request");
}

fn check_rows(rows: &[Row]) -> usize {
    let mut cells = 0;
    for r in rows {
        for (i, &(caller, who)) in CALLERS.iter().enumerate() {
            let want = if i < 3 { r.want[i] } else { Nothing };
            let mut w = world();
            let body = (r.body)(&w);
            let ctx = format!("{} from {who}", r.name);
            match want {
                Nothing => w.h.no_reply(caller, r.msg_id, &body),
                Err(e) => {
                    let before = w.h.rm.snapshot();
                    let c = w.h.call(caller, r.msg_id, &body);
                    assert_eq!(c.err, e, "{ctx}: error {:#x}, want {e:#x}", c.err);
                    // A refused request changes nothing and tells nobody. (A simulated access
                    // that was allowed but faulted is an event: the fault is counted and the
                    // VM's manager told, FAULT_UNSERVED.)
                    let faulted =
                        e == MEM_INVALID && (r.msg_id == SIM_VM_READ || r.msg_id == SIM_VM_WRITE);
                    assert!(
                        faulted || before == w.h.rm.snapshot(),
                        "{ctx}: a refused request changed state"
                    );
                    let told = c.notifs();
                    assert!(
                        told.is_empty() || told.iter().all(|n| n.1 == N_FAULT_UNSERVED),
                        "{ctx}: refused, yet sent {told:?}"
                    );
                }
                Ok => {
                    let c = w.h.call(caller, r.msg_id, &body);
                    assert_eq!(c.err, OK, "{ctx}: error {:#x}, want OK", c.err);
                }
            }
            cells += 1;
        }
    }
    cells
}

/// The table names every request the RM implements (Gunyah's and the extension's).
#[test]
fn the_table_covers_every_implemented_request() {
    let covered: std::collections::BTreeSet<u32> = rows().iter().map(|r| r.msg_id).collect();
    for id in [
        VM_GET_VMID,
        VM_ALLOC,
        VM_DEALLOC,
        VM_CONFIG_IMAGE,
        VM_AUTH_IMAGE,
        VM_INIT,
        VM_START,
        VM_STOP,
        VM_RESET,
        VM_GET_STATE,
        VM_GET_HYP_RESOURCES,
        VM_GET_ID,
        VM_LOOKUP_NAME,
        VM_LOOKUP_URI,
        VM_LOOKUP_GUID,
        VM_SET_DEMAND_PAGING,
        VM_SET_ADDRESS_LAYOUT,
        VM_SET_BOOT_CONTEXT,
        VM_SET_FIRMWARE_MEM,
        VM_SET_TIME_BASE,
        VM_GET_OWNER,
        VM_GET_PEERS,
        VM_HOST_GET_TYPE,
        VM_SET_STATUS,
        VM_EXIT,
        MEM_ACCEPT,
        MEM_RELEASE,
        MEM_RECLAIM,
        MEM_NOTIFY,
        MEM_APPEND,
        MEM_LOOKUP_SGL,
        MEM_SHARE,
        GMEM_CREATE,
        GMEM_BIND,
        GMEM_UNBIND,
        GOLDEN_SEAL,
        GOLDEN_MAP,
        GOLDEN_UNMAP,
        GOLDEN_RELEASE,
        VM_MEM_STATS,
        SIM_VM_READ,
        SIM_VM_WRITE,
    ] {
        assert!(covered.contains(&id), "{id:#x} has no row");
    }
}
