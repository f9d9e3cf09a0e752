//! Property tests for payload decoding and encoding: arbitrary bytes never
//! panic any decoder, and encode-then-decode gives back the same message.

use gunyah_rm_abi::ext::{CowBroken, SimVmWrite};
use gunyah_rm_abi::mem::{
    AclEntry, AttrEntry, MemAccept, MemAcceptReply, MemAppend, MemCreate, MemLookupSgl, MemNotify,
    MemShared, SglEntry, VmidEntry,
};
use gunyah_rm_abi::vm::{
    AuthParam, ConsoleChars, HypResourceEntry, HypResources, VmAuthImage, VmExited, VmIrqNotify,
    VmSetDemandPaging,
};
use gunyah_rm_abi::{
    Encode, MsgId, Notification, Reply, ReplyData, Request, RmError, MAX_LIST_ENTRIES,
};
use proptest::prelude::*;
use zerocopy::little_endian::U64;
use zerocopy::FromBytes;

/// Every named ID plus a few unknown ones.
fn any_id() -> impl Strategy<Value = MsgId> {
    prop_oneof![
        proptest::sample::select(MsgId::ALL.iter().map(|(id, _)| *id).collect::<Vec<_>>()),
        any::<u32>().prop_map(MsgId),
    ]
}

/// Owned storage for the borrowed lists of a message.
#[derive(Debug, Clone)]
struct Store {
    a: u8,
    b: u8,
    c: u8,
    h16: u16,
    w: u32,
    w2: u32,
    q: u64,
    acl: Vec<AclEntry>,
    sgl: Vec<SglEntry>,
    attrs: Vec<AttrEntry>,
    vmids: Vec<VmidEntry>,
    sizes: Vec<U64>,
    bytes: Vec<u8>,
    params: Vec<AuthParam>,
    res: Vec<HypResourceEntry>,
}

fn entries<T: FromBytes + Clone + std::fmt::Debug + 'static>(
    max: usize,
) -> impl Strategy<Value = Vec<T>> {
    let size = std::mem::size_of::<T>();
    proptest::collection::vec(proptest::collection::vec(any::<u8>(), size), 0..max)
        .prop_map(|v| v.iter().map(|b| T::read_from_bytes(b).unwrap()).collect())
}

fn store() -> impl Strategy<Value = Store> {
    (
        (
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
        ),
        (
            entries::<AclEntry>(12),
            entries::<SglEntry>(12),
            entries::<AttrEntry>(6),
        ),
        (entries::<VmidEntry>(6), entries::<U64>(12)),
        (
            proptest::collection::vec(any::<u8>(), 0..300),
            entries::<AuthParam>(6),
            entries::<HypResourceEntry>(5),
        ),
    )
        .prop_map(
            |(
                (a, b, c, h16, w, w2, q),
                (acl, sgl, attrs),
                (vmids, sizes),
                (bytes, params, res),
            )| {
                Store {
                    a,
                    b,
                    c,
                    h16,
                    w,
                    w2,
                    q,
                    acl,
                    sgl,
                    attrs,
                    vmids,
                    sizes,
                    bytes,
                    params,
                    res,
                }
            },
        )
}

fn requests(s: &Store) -> Vec<Request<'_>> {
    let create = MemCreate {
        mem_type: s.a,
        flags: s.b,
        label: s.w,
        acl: &s.acl,
        sgl: &s.sgl,
        attrs: &s.attrs,
    };
    vec![
        Request::MemLend(create),
        Request::MemShare(create),
        Request::MemDonate(create),
        Request::MemAppend(MemAppend {
            handle: s.w,
            flags: s.a,
            sgl: &s.sgl,
        }),
        Request::MemAccept(MemAccept {
            handle: s.w,
            mem_type: s.a,
            trans_type: s.b,
            flags: s.c,
            label: s.w2,
            acl: &s.acl,
            map_vmid: s.h16,
            sgl: &s.sgl,
            attrs: &s.attrs,
        }),
        Request::MemNotify(MemNotify {
            handle: s.w,
            flags: s.a,
            mem_info_tag: s.w2,
            vmids: &s.vmids,
        }),
        Request::MemLookupSgl(MemLookupSgl {
            mem_type: s.a,
            label: s.w,
            acl: &s.acl,
            sgl: &s.sgl,
            attrs: &s.attrs,
        }),
        Request::VmAuthImage(VmAuthImage {
            vmid: s.h16,
            params: &s.params,
        }),
        Request::VmSetDemandPaging(VmSetDemandPaging {
            vmid: s.h16,
            ranges: &s.sgl,
        }),
        Request::VmConsoleWrite(ConsoleChars {
            vmid: s.h16,
            bytes: &s.bytes,
        }),
        Request::VmIrqNotify(VmIrqNotify {
            virq_handle: s.w,
            flags: s.w2,
            vmids: &s.vmids,
        }),
        Request::SimVmWrite(SimVmWrite {
            vmid: s.h16,
            ipa: s.q,
            data: &s.bytes,
        }),
    ]
}

fn notifications(s: &Store) -> Vec<Notification<'_>> {
    vec![
        Notification::MemShared(MemShared {
            handle: s.w,
            mem_type: s.a,
            trans_type: s.b,
            flags: s.c,
            owner_vmid: s.h16,
            label: s.w2,
            mem_info_tag: s.w ^ 0x5555,
            acl: &s.acl,
            region_sizes: &s.sizes,
            attrs: &s.attrs,
        }),
        Notification::VmExited(VmExited {
            vmid: s.h16,
            exit_type: s.a as u16,
            reason: &s.bytes,
        }),
        Notification::VmConsoleChars(ConsoleChars {
            vmid: s.h16,
            bytes: &s.bytes,
        }),
        Notification::CowBroken(CowBroken {
            vmid: s.h16,
            ipas: &s.sizes,
        }),
    ]
}

fn replies(s: &Store) -> Vec<(MsgId, Reply<'_>)> {
    let ok = |data| Reply {
        error: RmError::Ok,
        data,
    };
    vec![
        (
            MsgId::MEM_ACCEPT,
            ok(ReplyData::MemAccept(MemAcceptReply {
                flags: s.a,
                sgl: &s.sgl,
            })),
        ),
        (
            MsgId::VM_GET_HYP_RESOURCES,
            ok(ReplyData::HypResources(HypResources { entries: &s.res })),
        ),
        (MsgId::SIM_VM_READ, ok(ReplyData::SimRead(&s.bytes))),
        (
            MsgId::MEM_RECLAIM,
            Reply {
                error: RmError::from_code(s.w),
                data: ReplyData::Empty,
            },
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes_never_panic(id in any_id(),
                                   bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Request::decode_detailed(id, &bytes);
        let _ = Notification::decode_detailed(id, &bytes);
        let _ = Reply::decode_detailed(id, &bytes);
    }

    #[test]
    fn every_known_id_with_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        for (id, _) in MsgId::ALL {
            let _ = Request::decode(*id, &bytes);
            let _ = Notification::decode(*id, &bytes);
            let _ = Reply::decode(*id, &bytes);
        }
    }

    #[test]
    fn mutated_valid_messages_never_panic(s in store(), pos: usize, val: u8, cut: usize) {
        let mut buf = vec![0u8; 20000];
        for r in requests(&s) {
            let n = r.encode(&mut buf).unwrap();
            let mut m = buf[..n].to_vec();
            if !m.is_empty() {
                let i = pos % m.len();
                m[i] = val;
                m.truncate(n - cut % (n + 1) / 2);
            }
            let _ = Request::decode_detailed(r.msg_id(), &m);
        }
    }

    #[test]
    fn requests_round_trip(s in store()) {
        let mut buf = vec![0u8; 20000];
        for r in requests(&s) {
            let n = r.encode(&mut buf).unwrap();
            prop_assert_eq!(n, r.encoded_len());
            let back = Request::decode_detailed(r.msg_id(), &buf[..n]);
            prop_assert_eq!(back, Ok(r));
        }
    }

    #[test]
    fn notifications_round_trip(s in store()) {
        let mut buf = vec![0u8; 20000];
        for r in notifications(&s) {
            let n = r.encode(&mut buf).unwrap();
            prop_assert_eq!(n, r.encoded_len());
            prop_assert_eq!(Notification::decode_detailed(r.msg_id(), &buf[..n]), Ok(r));
        }
    }

    #[test]
    fn replies_round_trip(s in store()) {
        let mut buf = vec![0u8; 20000];
        for (id, r) in replies(&s) {
            let n = r.encode(&mut buf).unwrap();
            prop_assert_eq!(n, r.encoded_len());
            let back = Reply::decode_detailed(id, &buf[..n]).unwrap();
            // An accept reply with no entries still has its 4-byte list header.
            prop_assert_eq!(back, r);
        }
    }

    #[test]
    fn every_message_that_decodes_round_trips(bytes in proptest::collection::vec(any::<u8>(), 64)) {
        // Every known ID and every length up to 64 bytes: whatever decodes
        // (in particular every fixed-size message at its exact size) encodes
        // to bytes that decode to the same message.
        let mut buf = vec![0u8; 128];
        let mut decoded = 0;
        for (id, _) in MsgId::ALL {
            for n in 0..=bytes.len() {
                if let Ok(r) = Request::decode(*id, &bytes[..n]) {
                    decoded += 1;
                    let m = r.encode(&mut buf).unwrap();
                    prop_assert_eq!(m, r.encoded_len());
                    prop_assert_eq!(Request::decode(*id, &buf[..m]), Ok(r));
                }
                if let Ok(r) = Notification::decode(*id, &bytes[..n]) {
                    let m = r.encode(&mut buf).unwrap();
                    prop_assert_eq!(Notification::decode(*id, &buf[..m]), Ok(r));
                }
                if let Ok(r) = Reply::decode(*id, &bytes[..n]) {
                    let m = r.encode(&mut buf).unwrap();
                    prop_assert_eq!(Reply::decode(*id, &buf[..m]), Ok(r));
                }
            }
        }
        // At least every fixed-size request decoded at its size.
        prop_assert!(decoded >= 30, "only {} decoded", decoded);
    }

    #[test]
    fn oversized_lists_are_noresource(extra in 1usize..100, id in proptest::sample::select(vec![
        MsgId::MEM_LEND, MsgId::MEM_SHARE, MsgId::MEM_DONATE, MsgId::MEM_QCOM_LOOKUP_SGL])) {
        // Fixed part then an ACL count above 512 with no entries.
        let count = (MAX_LIST_ENTRIES + extra) as u16;
        let mut b = vec![0u8; 8];
        b.extend_from_slice(&count.to_le_bytes());
        b.extend_from_slice(&[0; 14]);
        prop_assert_eq!(Request::decode(id, &b), Err(RmError::NoResource));
    }
}

#[test]
fn too_large_messages_are_refused_not_truncated() {
    let data = vec![0u8; 14616 - 16 + 1];
    let r = Request::SimVmWrite(SimVmWrite {
        vmid: 3,
        ipa: 0,
        data: &data,
    });
    let mut buf = vec![0u8; 20000];
    assert!(matches!(
        r.packets(1, &mut buf),
        Err(gunyah_rm_abi::EncodeError::Fragment(_))
    ));
    let r = Request::SimVmWrite(SimVmWrite {
        vmid: 3,
        ipa: 0,
        data: &data[1..],
    });
    assert_eq!(r.packets(1, &mut buf).unwrap().count(), 63);
}

#[test]
fn encoder_refuses_too_many_entries() {
    let sgl = vec![SglEntry::new(0, 0x1000); MAX_LIST_ENTRIES + 1];
    let r = Request::MemAppend(MemAppend {
        handle: 1,
        flags: 0,
        sgl: &sgl,
    });
    let mut buf = vec![0u8; 20000];
    assert!(r.encode(&mut buf).is_err());
    // Exactly 512 is fine and decodes.
    let r = Request::MemAppend(MemAppend {
        handle: 1,
        flags: 0,
        sgl: &sgl[..MAX_LIST_ENTRIES],
    });
    let n = r.encode(&mut buf).unwrap();
    assert_eq!(n, 8 + 4 + 16 * 512);
    assert_eq!(Request::decode(MsgId::MEM_APPEND, &buf[..n]), Ok(r));
}
