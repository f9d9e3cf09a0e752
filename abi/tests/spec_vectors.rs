//! Whole messages written byte by byte from the spec's offset tables (not by
//! the encoder under test), sent through the reassembler and decoded; then
//! the encoder and fragmenter must reproduce the same packets.

use gunyah_rm_abi::mem::{rights, AclEntry, SglEntry};
use gunyah_rm_abi::{
    Encode, Fragmenter, MsgId, MsgType, Reassembler, Received, Reply, ReplyData, Request, RmError,
};

fn le16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn le32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn le64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

/// Header per §1.2: 0x21, (fragments << 2) | type, seq, msg_id.
fn header(ty: u8, fragments: u8, seq: u16, id: u32) -> Vec<u8> {
    let mut h = vec![0x21, (fragments << 2) | ty];
    le16(&mut h, seq);
    le32(&mut h, id);
    h
}

fn reassemble(packets: &[Vec<u8>]) -> (MsgType, u16, MsgId, Vec<u8>) {
    let mut r = Reassembler::new();
    let mut done = None;
    for (i, p) in packets.iter().enumerate() {
        match r.push(p).received {
            Received::Partial(_) => assert!(i + 1 < packets.len()),
            Received::Complete(m) => {
                assert_eq!(i + 1, packets.len());
                done = Some((m.ty, m.seq, m.msg_id, m.payload.to_vec()));
            }
            Received::Dropped(d) => panic!("packet {i} dropped: {d}"),
        }
    }
    done.expect("message completed")
}

#[test]
fn multi_fragment_mem_share_request() {
    // §3.1 MEM_SHARE: NORMAL, no flags, label 7; ACL {3 RWX}, {0x80 RW};
    // 15 SGL entries of 4 KiB at 0x4000_0000 + i * 0x2000; attr header 0.
    let mut p = vec![0, 0, 0, 0];
    le32(&mut p, 7);
    le16(&mut p, 2);
    le16(&mut p, 0);
    p.extend_from_slice(&[3, 0, 7, 0, 0x80, 0, 6, 0]);
    le16(&mut p, 15);
    le16(&mut p, 0);
    for i in 0..15u64 {
        le64(&mut p, 0x4000_0000 + i * 0x2000);
        le64(&mut p, 0x1000);
    }
    le32(&mut p, 0);
    assert_eq!(p.len(), 8 + 12 + 4 + 240 + 4); // 268 bytes → 232 + 36

    // Two packets by hand: request with 1 continuation, then a continuation.
    let mut first = header(1, 1, 0x0102, 0x5100_0013);
    first.extend_from_slice(&p[..232]);
    let mut second = header(0, 1, 0x0102, 0x5100_0013);
    second.extend_from_slice(&p[232..]);
    let packets = vec![first, second];

    let (ty, seq, id, payload) = reassemble(&packets);
    assert_eq!((ty, seq, id), (MsgType::Request, 0x0102, MsgId::MEM_SHARE));
    assert_eq!(payload, p);
    let req = Request::decode(id, &payload).unwrap();
    let Request::MemShare(c) = req else {
        panic!("{req:?}")
    };
    assert_eq!(c.label, 7);
    assert_eq!(
        c.acl,
        &[
            AclEntry::new(3, rights::RWX),
            AclEntry::new(0x80, rights::RW)
        ]
    );
    assert_eq!(c.sgl.len(), 15);
    assert_eq!(c.sgl[14], SglEntry::new(0x4000_0000 + 14 * 0x2000, 0x1000));

    // Encoder + fragmenter reproduce the packets exactly.
    let mut buf = [0u8; 512];
    let n = req.encode(&mut buf).unwrap();
    let again: Vec<Vec<u8>> = Fragmenter::request(0x0102, MsgId::MEM_SHARE, &buf[..n])
        .unwrap()
        .map(|p| p.to_vec())
        .collect();
    assert_eq!(again, packets);
}

#[test]
fn multi_fragment_mem_accept_reply() {
    // §3.5 reply to an accept with no SGL: err 0, u16 count 20, u8 flags
    // INCOMPLETE, u8 reserved, 20 × {ipa, size}.
    let mut p = Vec::new();
    le32(&mut p, 0);
    le16(&mut p, 20);
    p.extend_from_slice(&[1, 0]);
    for i in 0..20u64 {
        le64(&mut p, 0x8000_0000 + i * 0x20_0000);
        le64(&mut p, 0x20_0000);
    }
    assert_eq!(p.len(), 328); // 232 + 96

    let mut first = header(2, 1, 77, 0x5100_0011);
    first.extend_from_slice(&p[..232]);
    let mut second = header(0, 1, 77, 0x5100_0011);
    second.extend_from_slice(&p[232..]);
    assert_eq!(first.len(), 240);
    let packets = vec![first, second];

    let (ty, seq, id, payload) = reassemble(&packets);
    assert_eq!((ty, seq, id), (MsgType::Reply, 77, MsgId::MEM_ACCEPT));
    let reply = Reply::decode(id, &payload).unwrap();
    assert_eq!(reply.error, RmError::Ok);
    let ReplyData::MemAccept(a) = reply.data else {
        panic!("{reply:?}")
    };
    assert_eq!(a.flags, 1);
    assert_eq!(a.sgl.len(), 20);
    assert_eq!(
        a.sgl[19],
        SglEntry::new(0x8000_0000 + 19 * 0x20_0000, 0x20_0000)
    );

    // Data without the error code, through the reply fragmenter.
    let mut buf = [0u8; 512];
    let n = reply.data.encode(&mut buf).unwrap();
    let again: Vec<Vec<u8>> = Fragmenter::reply(77, MsgId::MEM_ACCEPT, RmError::Ok, &buf[..n])
        .unwrap()
        .map(|p| p.to_vec())
        .collect();
    assert_eq!(again, packets);
}

#[test]
fn one_message_of_each_family_by_hand() {
    // 0x51 memory: MEM_RECLAIM handle 0x12, flags 0 (§3.3).
    let r = Request::decode(MsgId(0x5100_0015), &[0x12, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    assert!(matches!(r, Request::MemReclaim(m) if m.handle.get() == 0x12));

    // 0x56 VM: VM_SET_ADDRESS_LAYOUT vmid 0x80, IMAGE, base 0x8000_0000,
    // size 0x10_0000 (§5.5).
    let mut b = Vec::new();
    le16(&mut b, 0x80);
    le16(&mut b, 0);
    le32(&mut b, 0);
    le64(&mut b, 0x8000_0000);
    le64(&mut b, 0x10_0000);
    let r = Request::decode(MsgId(0x5600_0034), &b).unwrap();
    let Request::VmSetAddressLayout(l) = r else {
        panic!("{r:?}")
    };
    assert_eq!(
        (l.vmid.get(), l.base.get(), l.size.get()),
        (0x80, 0x8000_0000, 0x10_0000)
    );

    // 0x47 extension: GMEM_CREATE 16 MiB for VM 0x80 (crate docs table).
    let mut b = Vec::new();
    le64(&mut b, 16 << 20);
    le32(&mut b, 0);
    le16(&mut b, 0x80);
    le16(&mut b, 0);
    let r = Request::decode(MsgId(0x4700_0001), &b).unwrap();
    let Request::GmemCreate(g) = r else {
        panic!("{r:?}")
    };
    assert_eq!((g.size.get(), g.owner_vmid.get()), (16 << 20, 0x80));
    // GMEM_CREATE reply: err 0, gmem id 4.
    let reply = Reply::decode(MsgId::GMEM_CREATE, &[0, 0, 0, 0, 4, 0, 0, 0]).unwrap();
    assert!(matches!(reply.data, ReplyData::GmemId(i) if i.id.get() == 4));
}
