//! The `abi_decode` target: the wire format of `gunyah_rm_abi` on untrusted bytes.
//!
//! The first byte picks a mode:
//! * 0 — packets: `(u8 len, len bytes)*` pushed through one [`Reassembler`]; every complete
//!   message is decoded as a request, a reply and a notification of its ID and fragmented again.
//! * 1 — one payload: a message ID (`u8` index into [`MsgId::ALL`], or `0xFF` then a raw `u32`)
//!   and the rest as its payload, through every decoder.
//! * 2 — lists: the rest read as consecutive RM lists (§1.6) of one entry type (`u8` selector).
//! * 3 — fragments: type, seq, message ID, then the rest as a logical payload, fragmented and
//!   reassembled.
//!
//! Checked besides "no panic": a dropped packet leaves a pending partial message as it was; a
//! message is at most 14616 bytes; a decode error carries an error code other than OK and an
//! offset inside the payload; whatever decodes encodes to exactly `encoded_len()` bytes that
//! decode to the same value; lists written back read back the same; fragmenting then
//! reassembling gives the same message.

use gunyah_rm_abi::header::{MAX_MESSAGE_PAYLOAD, MAX_PACKET_SIZE};
use gunyah_rm_abi::mem::{AclEntry, AttrEntry, SglEntry, VmidEntry};
use gunyah_rm_abi::vm::{AuthParam, HypResourceEntry};
use gunyah_rm_abi::wire::{DecodeError, Reader, Writer};
use gunyah_rm_abi::{
    DropReason, Encode, Fragmenter, Message, MsgId, MsgType, Notification, Reassembler, Received,
    Reply, Request, RmError,
};
use zerocopy::{FromBytes, Immutable, IntoBytes, Unaligned};

use crate::input::{Input, Script};

/// Run one input.
pub fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    match inp.u8() % 4 {
        0 => packets(&mut inp),
        1 => {
            let id = msg_id(&mut inp);
            decode_all(id, inp.rest());
        }
        2 => lists(&mut inp),
        _ => fragments(&mut inp),
    }
}

/// A message ID: an index into [`MsgId::ALL`], or `0xFF` (any index past the table) and a raw
/// `u32`.
pub fn msg_id(inp: &mut Input<'_>) -> MsgId {
    let sel = inp.u8() as usize;
    match MsgId::ALL.get(sel) {
        Some((id, _)) => *id,
        None => MsgId(inp.u32()),
    }
}

/// The selector [`msg_id`] reads for `id` (for seeds).
pub fn msg_id_selector(s: &mut Script, id: MsgId) {
    match MsgId::ALL.iter().position(|(m, _)| *m == id) {
        Some(i) if i < 0xFF => s.u8(i as u8),
        _ => s.u8(0xFF).u32(id.0),
    };
}

fn packets(inp: &mut Input<'_>) {
    let mut r = Reassembler::new();
    while !inp.is_empty() {
        let len = inp.u8() as usize;
        let p = inp.bytes(len);
        let before = r.pending();
        let out = r.push(p);
        match out.received {
            Received::Complete(m) => {
                assert!(m.payload.len() <= MAX_MESSAGE_PAYLOAD);
                assert_ne!(m.ty, MsgType::Continuation);
                let m: Message<'_> = m;
                let payload = m.payload.to_vec();
                let (ty, seq, id) = (m.ty, m.seq, m.msg_id);
                assert!(
                    r.pending().is_none(),
                    "a message completed but one is pending"
                );
                decode_all(id, &payload);
                refragment(ty, seq, id, &payload);
            }
            Received::Partial(pd) => {
                assert!(pd.remaining > 0 && pd.remaining <= pd.fragments);
                assert!(pd.received <= MAX_MESSAGE_PAYLOAD);
                assert_eq!(r.pending(), Some(pd));
            }
            Received::Dropped(why) => {
                assert!(out.abandoned.is_none());
                assert_eq!(
                    r.pending(),
                    before,
                    "a dropped packet ({why}) changed the partial"
                );
                let _ = (why.offset(), format!("{why}"));
                if let DropReason::TooLong { len } = why {
                    assert!(len > MAX_PACKET_SIZE);
                }
            }
        }
    }
}

/// Fragment `payload` as a message of type `ty` and reassemble it: the same message comes back.
fn refragment(ty: MsgType, seq: u16, id: MsgId, payload: &[u8]) {
    let f = match ty {
        MsgType::Reply => match gunyah_rm_abi::reassemble::split_reply(payload) {
            Ok((err, data)) => Fragmenter::reply(seq, id, err, data),
            Err(_) => return,
        },
        _ => Fragmenter::new(ty, seq, id, None, payload),
    };
    let f = f.expect("a reassembled message always fits 63 fragments");
    let mut r = Reassembler::new();
    let count = f.packet_count();
    for (i, p) in f.enumerate() {
        assert!(p.len() <= MAX_PACKET_SIZE);
        match r.push(&p).received {
            Received::Complete(m) => {
                assert_eq!(i + 1, count);
                assert_eq!((m.ty, m.seq, m.msg_id, m.payload), (ty, seq, id, payload));
            }
            Received::Partial(_) => assert!(i + 1 < count),
            Received::Dropped(why) => panic!("own fragment {i} dropped: {why}"),
        }
    }
}

fn check_err(e: &DecodeError, len: usize) {
    assert_ne!(e.error, RmError::Ok, "{e}");
    assert!(
        e.offset <= len,
        "offset {} past a {len}-byte payload: {e}",
        e.offset
    );
    let _ = format!("{e}");
}

/// Encode `v` into exactly `encoded_len()` bytes.
fn encode<E: Encode + ?Sized>(v: &E) -> Vec<u8> {
    let n = v.encoded_len();
    let mut buf = vec![0u8; n];
    let m = v.encode(&mut buf).expect("what decoded must encode");
    assert_eq!(m, n, "encode wrote {m} bytes, encoded_len said {n}");
    // One byte short is an error, never a panic or a truncated payload.
    if n > 0 {
        assert!(v.encode(&mut buf[..n - 1]).is_err());
    }
    buf
}

/// Decode `payload` under `id` as a request, a reply and a notification.
pub fn decode_all(id: MsgId, payload: &[u8]) {
    let _ = (id.name(), id.family(), id.is_notification_id());
    match Request::decode_detailed(id, payload) {
        Ok(req) => {
            assert_eq!(req.msg_id(), id);
            assert_eq!(Request::decode(id, payload), Ok(req));
            let bytes = encode(&req);
            assert_eq!(
                Request::decode_detailed(id, &bytes),
                Ok(req),
                "request round trip"
            );
        }
        Err(e) => {
            check_err(&e, payload.len());
            assert_eq!(Request::decode(id, payload), Err(e.error));
        }
    }
    match Reply::decode_detailed(id, payload) {
        Ok(rep) => {
            let n = rep.encoded_len();
            let mut buf = vec![0u8; n];
            assert_eq!(rep.encode(&mut buf), Ok(n));
            assert_eq!(
                Reply::decode_detailed(id, &buf),
                Ok(rep),
                "reply round trip"
            );
            let mut scratch = vec![0u8; n];
            if let Ok(f) = rep.packets(7, id, &mut scratch) {
                assert!(f.packet_count() <= 63);
            }
        }
        Err(e) => check_err(&e, payload.len()),
    }
    match Notification::decode_detailed(id, payload) {
        Ok(n) => {
            assert_eq!(n.msg_id(), id);
            let bytes = encode(&n);
            assert_eq!(
                Notification::decode_detailed(id, &bytes),
                Ok(n),
                "notification round trip"
            );
        }
        Err(e) => check_err(&e, payload.len()),
    }
}

/// Read the rest as lists of `T` until it ends or a list fails; write the lists back and read
/// them again.
fn lists_of<T>(bytes: &[u8])
where
    T: FromBytes + IntoBytes + Immutable + Unaligned + PartialEq + core::fmt::Debug,
{
    let mut r = Reader::new(bytes);
    let mut got = Vec::new();
    for _ in 0..64 {
        let at = r.pos();
        match r.list::<T>("list") {
            Ok(l) => {
                assert!(l.entries.len() <= gunyah_rm_abi::MAX_LIST_ENTRIES);
                assert_eq!(r.pos() % 4, 0, "the next item starts 4-byte aligned");
                if l.omitted {
                    assert_eq!(at, bytes.len());
                    assert!(l.entries.is_empty());
                    break;
                }
                assert!(r.pos() > at);
                got.push((l.entries, l.aux));
            }
            Err(e) => {
                check_err(&e, bytes.len());
                break;
            }
        }
        if r.remaining() == 0 {
            break;
        }
    }
    let _ = r.finish();
    let mut buf = vec![0u8; bytes.len() + 4 * got.len() + 4];
    let mut w = Writer::new(&mut buf);
    for (entries, aux) in &got {
        w.list(entries, *aux)
            .expect("a list that was read can be written");
    }
    let n = w.finish();
    let mut r = Reader::new(&buf[..n]);
    for (entries, aux) in &got {
        let l = r.list::<T>("again").expect("a written list reads back");
        assert_eq!((l.entries, l.aux), (*entries, *aux));
    }
    assert!(r.finish().is_ok());
}

fn lists(inp: &mut Input<'_>) {
    let sel = inp.u8();
    let rest = inp.rest();
    match sel % 7 {
        0 => lists_of::<AclEntry>(rest),
        1 => lists_of::<SglEntry>(rest),
        2 => lists_of::<AttrEntry>(rest),
        3 => lists_of::<VmidEntry>(rest),
        4 => lists_of::<AuthParam>(rest),
        5 => lists_of::<HypResourceEntry>(rest),
        _ => lists_of::<u8>(rest),
    }
}

fn fragments(inp: &mut Input<'_>) {
    let ty = MsgType::from_bits(inp.u8());
    let seq = inp.u16();
    let id = msg_id(inp);
    let payload = inp.rest();
    let Ok(f) = Fragmenter::new(ty, seq, id, None, payload) else {
        assert!(ty == MsgType::Continuation || payload.len() > MAX_MESSAGE_PAYLOAD - 4);
        return;
    };
    let mut r = Reassembler::new();
    let mut done = false;
    for p in f {
        assert!(!done);
        match r.push(&p).received {
            Received::Complete(m) => {
                let expect_len = payload.len() + if ty == MsgType::Reply { 4 } else { 0 };
                assert_eq!(m.payload.len(), expect_len);
                assert_eq!(&m.payload[m.payload.len() - payload.len()..], payload);
                done = true;
            }
            Received::Partial(_) => {}
            Received::Dropped(why) => panic!("own fragment dropped: {why}"),
        }
    }
    assert!(done);
}

/// Seeds: real requests of every kind (encoded with the abi crate, as the tests send them), as
/// whole packet streams and as bare payloads; the RM's replies and notifications; lists.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, id, payload) in crate::dispatch::sample_requests() {
        // Mode 0: the request's packets.
        let mut s = Script::new();
        s.u8(0);
        for p in Fragmenter::request(1, id, &payload).expect("sample fits") {
            s.u8(p.len() as u8).bytes(&p);
        }
        out.push((format!("packets-{name}"), s.finish()));
        // Mode 1: the bare payload.
        let mut s = Script::new();
        s.u8(1);
        msg_id_selector(&mut s, id);
        s.bytes(&payload);
        out.push((format!("payload-{name}"), s.finish()));
    }
    // Replies and notifications the RM really sent while the fuzz world was built.
    for (i, (id, ty, payload)) in crate::dispatch::sample_outgoing().into_iter().enumerate() {
        let mut s = Script::new();
        s.u8(0);
        let f = match ty {
            MsgType::Reply => {
                let (err, data) = gunyah_rm_abi::reassemble::split_reply(&payload).expect("reply");
                Fragmenter::reply(9, id, err, data)
            }
            _ => Fragmenter::notification(9, id, &payload),
        };
        for p in f.expect("fits") {
            s.u8(p.len() as u8).bytes(&p);
        }
        out.push((format!("outgoing-{i:02}-{:08x}", id.0), s.finish()));
    }
    // A long message in many fragments, and list streams.
    let big = vec![0x5A; 3000];
    let mut s = Script::new();
    s.u8(3).u8(MsgType::Request.raw()).u16(4);
    msg_id_selector(&mut s, MsgId::MEM_SHARE);
    s.bytes(&big);
    out.push(("fragments-3000".into(), s.finish()));
    let mut s = Script::new();
    s.u8(2)
        .u8(1)
        .bytes(&[2, 0, 0, 0])
        .bytes(&[0x11; 32])
        .bytes(&[0, 0, 0, 0]);
    out.push(("lists-sgl".into(), s.finish()));
    out
}
