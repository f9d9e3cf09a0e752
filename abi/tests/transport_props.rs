//! Property tests for the header, fragmenter and reassembler.

use gunyah_rm_abi::header::MAX_MESSAGE_PAYLOAD;
use gunyah_rm_abi::{Fragmenter, MsgId, MsgType, Reassembler, Received, RmError, RpcHeader};
use proptest::prelude::*;

fn msg_type() -> impl Strategy<Value = MsgType> {
    prop_oneof![
        Just(MsgType::Request),
        Just(MsgType::Reply),
        Just(MsgType::Notification)
    ]
}

proptest! {
    #[test]
    fn header_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
        let _ = RpcHeader::parse(&bytes);
    }

    #[test]
    fn reassembler_never_panics(packets in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..260), 0..40)) {
        let mut r = Reassembler::new();
        for p in &packets {
            // Bias towards valid api bytes so that the state machine is exercised.
            let mut p = p.clone();
            if p.len() > 1 && p[0] & 1 == 0 {
                p[0] = 0x21;
                p[1] &= 0xF3; // ≤ 60 continuations, any type
            }
            let before = r.pending();
            let out = r.push(&p);
            match out.received {
                // A dropped packet changes nothing.
                Received::Dropped(_) => {
                    prop_assert!(out.abandoned.is_none());
                    prop_assert_eq!(r.pending(), before);
                }
                Received::Complete(m) => {
                    prop_assert!(m.payload.len() <= MAX_MESSAGE_PAYLOAD);
                    prop_assert!(r.pending().is_none());
                }
                Received::Partial(p) => prop_assert_eq!(r.pending(), Some(p)),
            }
        }
    }

    #[test]
    fn fragment_then_reassemble(ty in msg_type(), seq: u16, id: u32,
                                len in 0usize..=MAX_MESSAGE_PAYLOAD - 4, fill: u8) {
        let payload: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_add(fill)).collect();
        let err = if ty == MsgType::Reply { Some(RmError::Busy) } else { None };
        let f = Fragmenter::new(ty, seq, MsgId(id), err, &payload).unwrap();
        let mut r = Reassembler::new();
        let n = f.packet_count();
        for (i, p) in f.enumerate() {
            prop_assert!(p.len() <= 240);
            match r.push(&p).received {
                Received::Partial(_) => prop_assert!(i + 1 < n),
                Received::Complete(m) => {
                    prop_assert_eq!(i + 1, n);
                    prop_assert_eq!(m.ty, ty);
                    prop_assert_eq!(m.seq, seq);
                    prop_assert_eq!(m.msg_id, MsgId(id));
                    if ty == MsgType::Reply {
                        let (e, data) = m.reply_parts().unwrap();
                        prop_assert_eq!(e, RmError::Busy);
                        prop_assert_eq!(data, &payload[..]);
                    } else {
                        prop_assert_eq!(m.payload, &payload[..]);
                    }
                }
                Received::Dropped(d) => prop_assert!(false, "dropped: {}", d),
            }
        }
    }
}
