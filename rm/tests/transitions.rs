//! pKVM-style transition self-test: one parcel (one page of HLOS RAM) is
//! walked through every legal and illegal transition for its owner, its
//! acceptor and a stranger. After each step the state of all three parties
//! and of the parcel is compared with the expected one; every illegal
//! request must return the spec's error code and leave a full state dump
//! (records, counters, every VM's stage-2 leaves, partition usage)
//! identical. The isolation checker runs after every request.

mod common;
use common::*;

use gunyah_rm::memparcel::ParcelState;
use gunyah_rm::platform::{AddressSpaces, Rights};

const OWNER: u16 = HLOS;
const ACC: u16 = 0x80;
const STR: u16 = 0x81;
const PAGE: u64 = 0x4800_0000;
const ACC_IPA: u64 = 0x2_0000_0000;
const P: u64 = 0x1000;

/// (owner's rights on the page, acceptor's, stranger's, parcel state).
type State = (
    Option<Rights>,
    Option<Rights>,
    Option<Rights>,
    Option<ParcelState>,
);

fn state(h: &H, handle: u32) -> State {
    (
        common::rights_on_pa(h, OWNER, PAGE),
        common::rights_on_pa(h, ACC, PAGE),
        common::rights_on_pa(h, STR, PAGE),
        h.rm.parcels().get(handle).map(|p| p.state),
    )
}

fn setup() -> H {
    let mut h = H::new();
    // Both guests READY: their RM queues exist, so they can send requests.
    assert_eq!(h.ready_vm(), 0x80);
    assert_eq!(h.ready_vm(), 0x81);
    h
}

/// An illegal request: the error code, no notifications, identical dump.
fn illegal(h: &mut H, from: u16, id: u32, body: &[u8], err: u32, handle: u32, expect: State) {
    h.call_fails(from, id, body, err);
    assert_eq!(
        state(h, handle),
        expect,
        "state after illegal {id:#x} from {from:#x}"
    );
}

fn acc_req(
    handle: u32,
    trans: u8,
    flags: u8,
    label: u32,
    a: &[(u16, u8)],
    s: &[(u64, u64)],
) -> Vec<u8> {
    accept(handle, 0, trans, flags, label, a, s, &[])
}

const DONE: u8 = 0x80;

#[test]
fn lend_walk() {
    let mut h = setup();
    let none: State = (Some(Rights::RWX), None, None, None);
    assert_eq!(state(&h, u32::MAX), none);

    // create: LEND {ACC, RW}, label 0x55.
    let handle = h
        .ok(
            OWNER,
            MEM_LEND,
            &create(0, 0, 0x55, &[(ACC, 6)], &[(PAGE, P)]),
        )
        .u32_at(0);
    // Handles 0 and 1 are the two guests' image parcels.
    assert_eq!(handle, 2);
    let lent: State = (None, None, None, Some(ParcelState::Sharing));
    assert_eq!(state(&h, handle), lent);

    // Illegal while lent, not accepted.
    let cases: Vec<(u16, u32, Vec<u8>, u32)> = vec![
        (
            STR,
            MEM_ACCEPT,
            acc_req(handle, 1, DONE, 0, &[], &[]),
            VMID_INVALID,
        ),
        (
            OWNER,
            MEM_ACCEPT,
            acc_req(handle, 1, DONE, 0, &[], &[]),
            VMID_INVALID,
        ),
        (
            ACC,
            MEM_ACCEPT,
            accept(handle, 1, 1, DONE, 0, &[], &[], &[]),
            ARGUMENT_INVALID,
        ),
        (
            ACC,
            MEM_ACCEPT,
            acc_req(handle, 2, DONE, 0, &[], &[]),
            ARGUMENT_INVALID,
        ),
        (
            ACC,
            MEM_ACCEPT,
            acc_req(handle, 1, DONE | 0x01, 0, &[], &[]),
            VALIDATE_FAILED,
        ),
        (
            ACC,
            MEM_ACCEPT,
            acc_req(handle, 1, DONE | 0x04, 0x56, &[], &[]),
            VALIDATE_FAILED,
        ),
        (
            ACC,
            MEM_ACCEPT,
            acc_req(handle, 1, DONE | 0x02, 0, &[(ACC, 7)], &[]),
            VALIDATE_FAILED,
        ),
        (
            ACC,
            MEM_ACCEPT,
            acc_req(handle, 1, DONE | 0x08, 0, &[], &[]),
            DENIED,
        ),
        (
            ACC,
            MEM_ACCEPT,
            acc_req(handle, 1, DONE, 0, &[], &[(ACC_IPA, 2 * P)]),
            ARGUMENT_INVALID,
        ),
        (
            ACC,
            MEM_ACCEPT,
            acc_req(handle, 1, DONE, 0, &[], &[(ACC_IPA + 1, P)]),
            ARGUMENT_INVALID,
        ),
        (
            ACC,
            MEM_ACCEPT,
            acc_req(handle, 1, DONE, 0, &[], &[(ACC_IPA, P), (ACC_IPA + P, P)]),
            ARGUMENT_INVALID,
        ),
        (
            ACC,
            MEM_ACCEPT,
            acc_req(handle + 1, 1, DONE, 0, &[], &[]),
            HANDLE_INVALID,
        ),
        (ACC, MEM_RELEASE, handle_flags(handle, 0), MEM_RELEASED),
        (STR, MEM_RELEASE, handle_flags(handle, 0), HANDLE_INVALID),
        (OWNER, MEM_RELEASE, handle_flags(handle, 0), HANDLE_INVALID),
        (ACC, MEM_RECLAIM, handle_flags(handle, 0), DENIED),
        (STR, MEM_RECLAIM, handle_flags(handle, 0), DENIED),
        (
            OWNER,
            MEM_RECLAIM,
            handle_flags(handle + 1, 0),
            HANDLE_INVALID,
        ),
        (
            OWNER,
            MEM_APPEND,
            [
                handle.to_le_bytes().to_vec(),
                vec![1, 0, 0, 0],
                sgl(&[(PAGE + P, P)]),
            ]
            .concat(),
            DENIED,
        ),
        (
            ACC,
            MEM_APPEND,
            [
                handle.to_le_bytes().to_vec(),
                vec![1, 0, 0, 0],
                sgl(&[(PAGE + P, P)]),
            ]
            .concat(),
            DENIED,
        ),
        (ACC, MEM_NOTIFY, notify(handle, 0x4, 0, &[]), MEM_RELEASED),
        (
            OWNER,
            MEM_NOTIFY,
            notify(handle, 0x2, 0, &[]),
            HANDLE_INVALID,
        ),
        (STR, MEM_NOTIFY, notify(handle, 0x1, 0, &[ACC]), DENIED),
        (
            OWNER,
            MEM_NOTIFY,
            notify(handle, 0x1, 0, &[STR]),
            ARGUMENT_INVALID,
        ),
        (
            OWNER,
            MEM_NOTIFY,
            notify(handle, 0x1, 0, &[0x99]),
            VMID_INVALID,
        ),
        (
            OWNER,
            MEM_NOTIFY,
            notify(handle, 0x1, 0, &[]),
            ARGUMENT_INVALID,
        ),
        (
            OWNER,
            MEM_NOTIFY,
            notify(handle, 0x1, 0, &[ACC, STR]),
            ARGUMENT_INVALID,
        ),
        (
            OWNER,
            MEM_NOTIFY,
            notify(handle, 0x3, 0, &[ACC]),
            ARGUMENT_INVALID,
        ),
        // The page is already in a parcel: it cannot be lent or shared again.
        (
            OWNER,
            MEM_LEND,
            create(0, 0, 0, &[(STR, 6)], &[(PAGE, P)]),
            MEM_INVALID,
        ),
        (
            OWNER,
            MEM_SHARE,
            create(0, 0, 0, &[(OWNER, 7), (STR, 6)], &[(PAGE, P)]),
            MEM_INVALID,
        ),
        // Only the owner's own memory can go in a parcel.
        (
            ACC,
            MEM_LEND,
            create(0, 0, 0, &[(STR, 6)], &[(PAGE, P)]),
            MEM_INVALID,
        ),
    ];
    for (from, id, body, err) in &cases {
        illegal(&mut h, *from, *id, body, *err, handle, lent);
    }

    // NOTIFY(SHARED) naming a VM with no RM queue yet (LOAD): Gunyah's RM
    // would stop answering (§12); here the owner gets VM_STATE and nothing
    // changes. (A READY VM such as ACC would accept it at once, §3.7.)
    let loading = h.ok(HLOS, VM_ALLOC, &vmid_pad(0)).u32_at(0) as u16;
    let other = h
        .ok(
            OWNER,
            MEM_LEND,
            &create(0, 0, 0, &[(loading, 6)], &[(PAGE + 0x10_0000, P)]),
        )
        .u32_at(0);
    h.call_fails(
        OWNER,
        MEM_NOTIFY,
        &notify(other, 0x1, 0x77, &[loading]),
        VM_STATE,
    );
    assert_eq!(state(&h, handle), lent);
    h.ok(OWNER, MEM_RECLAIM, &handle_flags(other, 0));
    h.ok(HLOS, VM_DEALLOC, &vmid_pad(loading));
    // RECALL records the tag (MEM_RECALL {handle, tag} to ACC).
    let c = h.ok(OWNER, MEM_NOTIFY, &notify(handle, 0x8, 0x77, &[ACC]));
    let mut recall = handle.to_le_bytes().to_vec();
    recall.extend(0x77u32.to_le_bytes());
    assert_eq!(c.notifs(), vec![(ACC, N_MEM_RECALL, recall)]);
    assert_eq!(state(&h, handle), lent);
    // A later notify with another tag is refused.
    illegal(
        &mut h,
        OWNER,
        MEM_NOTIFY,
        &notify(handle, 0x8, 0x78, &[ACC]),
        ARGUMENT_INVALID,
        handle,
        lent,
    );

    // Legal: ACC accepts at its chosen IPA, validating label and ACL.
    h.ok(
        ACC,
        MEM_ACCEPT,
        &acc_req(
            handle,
            1,
            DONE | 0x02 | 0x04,
            0x55,
            &[(ACC, 6)],
            &[(ACC_IPA, P)],
        ),
    );
    let accepted: State = (None, Some(Rights::RW), None, Some(ParcelState::Shared));
    assert_eq!(state(&h, handle), accepted);
    assert_eq!(
        h.rm.platform().query(ACC, ACC_IPA).map(|l| l.pa),
        Some(PAGE)
    );

    let cases: Vec<(u16, u32, Vec<u8>, u32)> = vec![
        (
            ACC,
            MEM_ACCEPT,
            acc_req(handle, 1, DONE, 0, &[], &[]),
            DENIED,
        ),
        (
            STR,
            MEM_ACCEPT,
            acc_req(handle, 1, DONE, 0, &[], &[]),
            VMID_INVALID,
        ),
        (OWNER, MEM_RECLAIM, handle_flags(handle, 0), MEM_INUSE),
        (STR, MEM_RELEASE, handle_flags(handle, 0), HANDLE_INVALID),
        (OWNER, MEM_RELEASE, handle_flags(handle, 0), HANDLE_INVALID),
        (
            ACC,
            MEM_RELEASE,
            handle_flags(handle, 0x80),
            ARGUMENT_INVALID,
        ),
        (ACC, MEM_NOTIFY, notify(handle, 0x2, 0x77, &[]), MEM_INUSE),
        (
            ACC,
            MEM_NOTIFY,
            notify(handle, 0x4, 0x1, &[]),
            ARGUMENT_INVALID,
        ),
        (
            ACC,
            MEM_NOTIFY,
            notify(handle, 0x4, 0x77, &[OWNER]),
            ARGUMENT_INVALID,
        ),
        (
            STR,
            MEM_NOTIFY,
            notify(handle, 0x4, 0x77, &[]),
            HANDLE_INVALID,
        ),
    ];
    for (from, id, body, err) in &cases {
        illegal(&mut h, *from, *id, body, *err, handle, accepted);
    }

    // Legal: ACC reports ACCEPTED → MEM_ACCEPTED {handle, ACC, tag} to the owner.
    let c = h.ok(ACC, MEM_NOTIFY, &notify(handle, 0x4, 0x77, &[]));
    let mut n = handle.to_le_bytes().to_vec();
    n.extend_from_slice(&[0x80, 0, 0, 0, 0x77, 0, 0, 0]);
    assert_eq!(c.notifs(), vec![(OWNER, N_MEM_ACCEPTED, n.clone())]);

    // Legal: release → back to lent; a second release → MEM_RELEASED.
    h.ok(ACC, MEM_RELEASE, &handle_flags(handle, 0));
    assert_eq!(state(&h, handle), lent);
    illegal(
        &mut h,
        ACC,
        MEM_RELEASE,
        &handle_flags(handle, 0),
        MEM_RELEASED,
        handle,
        lent,
    );
    // ACC reports RELEASED → MEM_RELEASED to the owner.
    let c = h.ok(ACC, MEM_NOTIFY, &notify(handle, 0x2, 0x77, &[]));
    assert_eq!(c.notifs(), vec![(OWNER, N_MEM_RELEASED, n)]);

    // Legal: accept again with RM-chosen IPAs (reply lists them).
    let c = h.ok(ACC, MEM_ACCEPT, &acc_req(handle, 1, DONE, 0, &[], &[]));
    assert_eq!(&c.data[..4], &[1, 0, 0, 0]);
    let ipa = u64::from_le_bytes(c.data[4..12].try_into().unwrap());
    assert_eq!(u64::from_le_bytes(c.data[12..20].try_into().unwrap()), P);
    assert_eq!(h.rm.platform().query(ACC, ipa).map(|l| l.pa), Some(PAGE));
    assert_eq!(state(&h, handle), accepted);
    h.ok(ACC, MEM_RELEASE, &handle_flags(handle, 0));

    // Legal: reclaim → the owner maps the page again, parcel gone.
    h.ok(OWNER, MEM_RECLAIM, &handle_flags(handle, 0));
    assert_eq!(state(&h, handle), none);
    for (from, id, body) in [
        (ACC, MEM_ACCEPT, acc_req(handle, 1, DONE, 0, &[], &[])),
        (ACC, MEM_RELEASE, handle_flags(handle, 0)),
        (OWNER, MEM_RECLAIM, handle_flags(handle, 0)),
        (OWNER, MEM_NOTIFY, notify(handle, 0x1, 0x77, &[ACC])),
        (
            OWNER,
            MEM_APPEND,
            [
                handle.to_le_bytes().to_vec(),
                vec![1, 0, 0, 0],
                sgl(&[(PAGE, P)]),
            ]
            .concat(),
        ),
    ] {
        illegal(&mut h, from, id, &body, HANDLE_INVALID, handle, none);
    }
    // Handles keep counting: the next parcel is 4 (0 and 1 are the guests'
    // image parcels, 2 was this walk's, 3 the one lent to a loading VM).
    let h2 = h
        .ok(OWNER, MEM_LEND, &create(0, 0, 0, &[(ACC, 6)], &[(PAGE, P)]))
        .u32_at(0);
    assert_eq!(h2, 4);
}

#[test]
fn share_walk() {
    let mut h = setup();
    let handle = h
        .ok(
            OWNER,
            MEM_SHARE,
            &create(0, 0, 0, &[(OWNER, 7), (ACC, 5)], &[(PAGE, P)]),
        )
        .u32_at(0);
    let shared: State = (Some(Rights::RWX), None, None, Some(ParcelState::Sharing));
    assert_eq!(state(&h, handle), shared);
    // The owner is in the ACL of a share, but cannot accept or release it.
    illegal(
        &mut h,
        OWNER,
        MEM_ACCEPT,
        &acc_req(handle, 2, DONE, 0, &[], &[]),
        DENIED,
        handle,
        shared,
    );
    illegal(
        &mut h,
        OWNER,
        MEM_RELEASE,
        &handle_flags(handle, 0),
        DENIED,
        handle,
        shared,
    );
    // SANITIZE on accept needs write access: ACC has RX.
    illegal(
        &mut h,
        ACC,
        MEM_ACCEPT,
        &acc_req(handle, 2, DONE | 0x20, 0, &[], &[]),
        ARGUMENT_INVALID,
        handle,
        shared,
    );
    h.ok(
        ACC,
        MEM_ACCEPT,
        &acc_req(handle, 2, DONE, 0, &[], &[(ACC_IPA, P)]),
    );
    let accepted: State = (
        Some(Rights::RWX),
        Some(Rights::RX),
        None,
        Some(ParcelState::Shared),
    );
    assert_eq!(state(&h, handle), accepted);
    illegal(
        &mut h,
        OWNER,
        MEM_RECLAIM,
        &handle_flags(handle, 0),
        MEM_INUSE,
        handle,
        accepted,
    );
    illegal(
        &mut h,
        ACC,
        MEM_RELEASE,
        &handle_flags(handle, 0x1),
        ARGUMENT_INVALID,
        handle,
        accepted,
    );
    // The stranger cannot map over ACC's accepted IPA range either.
    h.ok(ACC, MEM_RELEASE, &handle_flags(handle, 0));
    assert_eq!(state(&h, handle), shared);
    h.ok(OWNER, MEM_RECLAIM, &handle_flags(handle, 0));
    assert_eq!(state(&h, handle), (Some(Rights::RWX), None, None, None));
}

#[test]
fn donate_walk() {
    let mut h = setup();
    // DONATE needs exactly one ACL entry with maximum rights.
    h.call_fails(
        OWNER,
        MEM_DONATE,
        &create(0, 0, 0, &[(ACC, 6)], &[(PAGE, P)]),
        DENIED,
    );
    h.call_fails(
        OWNER,
        MEM_DONATE,
        &create(0, 0, 0, &[(ACC, 7), (STR, 7)], &[(PAGE, P)]),
        ARGUMENT_INVALID,
    );
    let handle = h
        .ok(
            OWNER,
            MEM_DONATE,
            &create(0, 0, 0, &[(ACC, 7)], &[(PAGE, P)]),
        )
        .u32_at(0);
    let donating: State = (None, None, None, Some(ParcelState::Sharing));
    assert_eq!(state(&h, handle), donating);
    illegal(
        &mut h,
        STR,
        MEM_ACCEPT,
        &acc_req(handle, 0, DONE, 0, &[], &[]),
        VMID_INVALID,
        handle,
        donating,
    );
    // A non-DONE accept allocates the IPA but does not complete the donation.
    let c = h.ok(
        ACC,
        MEM_ACCEPT,
        &acc_req(handle, 0, 0, 0, &[], &[(ACC_IPA, P)]),
    );
    assert!(c.data.is_empty());
    assert_eq!(
        state(&h, handle),
        (None, None, None, Some(ParcelState::Shared))
    );
    illegal(
        &mut h,
        OWNER,
        MEM_RECLAIM,
        &handle_flags(handle, 0),
        MEM_INUSE,
        handle,
        (None, None, None, Some(ParcelState::Shared)),
    );
    // DONE completes it: ACC owns the page, the parcel is gone.
    h.ok(ACC, MEM_ACCEPT, &acc_req(handle, 0, DONE, 0, &[], &[]));
    let donated: State = (None, Some(Rights::RWX), None, None);
    assert_eq!(state(&h, handle), donated);
    illegal(
        &mut h,
        OWNER,
        MEM_RECLAIM,
        &handle_flags(handle, 0),
        HANDLE_INVALID,
        handle,
        donated,
    );
    // ACC now owns it and may lend it on (its own IPA), HLOS no longer can.
    illegal(
        &mut h,
        OWNER,
        MEM_LEND,
        &create(0, 0, 0, &[(STR, 6)], &[(PAGE, P)]),
        MEM_INVALID,
        handle,
        donated,
    );
    let h2 = h
        .ok(
            ACC,
            MEM_LEND,
            &create(0, 0, 0, &[(STR, 6)], &[(ACC_IPA, P)]),
        )
        .u32_at(0);
    h.ok(
        STR,
        MEM_ACCEPT,
        &acc_req(h2, 1, DONE, 0, &[], &[(ACC_IPA, P)]),
    );
    assert_eq!(
        state(&h, h2),
        (None, None, Some(Rights::RW), Some(ParcelState::Shared))
    );
    h.ok(STR, MEM_RELEASE, &handle_flags(h2, 0));
    h.ok(ACC, MEM_RECLAIM, &handle_flags(h2, 0));
    // Resetting and deallocating ACC gives the page back to its donor.
    h.reset_and_dealloc(ACC);
    assert_eq!(common::rights_on_pa(&h, OWNER, PAGE), Some(Rights::RWX));
    assert_eq!(
        h.rm.platform()
            .query(OWNER, PAGE)
            .map(|l| l.pa + (PAGE - l.ipa)),
        Some(PAGE)
    );
}

#[test]
fn donation_chain_returns_to_the_first_donor() {
    let mut h = setup();
    let d1 = h
        .ok(
            OWNER,
            MEM_DONATE,
            &create(0, 0, 0, &[(ACC, 7)], &[(PAGE, P)]),
        )
        .u32_at(0);
    h.ok(
        ACC,
        MEM_ACCEPT,
        &acc_req(d1, 0, DONE, 0, &[], &[(ACC_IPA, P)]),
    );
    // ACC passes the page on to the stranger.
    let d2 = h
        .ok(
            ACC,
            MEM_DONATE,
            &create(0, 0, 0, &[(STR, 7)], &[(ACC_IPA, P)]),
        )
        .u32_at(0);
    assert_eq!(
        state(&h, d2),
        (None, None, None, Some(ParcelState::Sharing))
    );
    h.ok(
        STR,
        MEM_ACCEPT,
        &acc_req(d2, 0, DONE, 0, &[], &[(0x3_0000_0000, P)]),
    );
    assert_eq!(state(&h, d2), (None, None, Some(Rights::RWX), None));
    // When the stranger goes away the page returns to HLOS, where it began.
    h.reset_and_dealloc(STR);
    assert_eq!(common::rights_on_pa(&h, OWNER, PAGE), Some(Rights::RWX));
    assert_eq!(
        h.rm.platform()
            .query(OWNER, PAGE)
            .map(|l| l.pa + (PAGE - l.ipa)),
        Some(PAGE)
    );
    assert_eq!(common::rights_on_pa(&h, ACC, PAGE), None);
}
