//! The transport: header checks, message types, sequence numbers, unknown IDs (§1.2–§1.5)
//! and fragmentation edges (§1.4, §12, §12.1 "Fragments", "Protocol").

use alloc::vec;
use alloc::vec::Vec;

use crate::case::{case, Case, Tag::*};
use crate::dsl::*;
use crate::ids::{err::*, *};
use crate::tmpl::{Tmpl, Val};
use crate::wire::{header, ty};

/// One raw packet: a header and a body.
fn pk(t: u8, cont: u8, seq: u16, id: u32, body: Tmpl) -> Tmpl {
    Tmpl::new().bytes(&header(t, cont, seq, id)).then(body)
}

/// VM_GET_VMID as one packet with seq `seq`.
fn get_vmid(seq: u16) -> Tmpl {
    pk(ty::REQUEST, 0, seq, VM_GET_VMID, Tmpl::new())
}

/// HLOS's VM_GET_VMID and its answer, OK with 3: the RM still answers normally.
fn still_answers(c: Case) -> Case {
    c.send(HLOS, VM_GET_VMID, Tmpl::new())
        .ok_data(Tmpl::new().u32(3u32))
}

/// MEM_LEND of `n` separate pages to `to`: 24 + 16n payload bytes.
fn lend_pages(to: Val, n: u64) -> Tmpl {
    let s: Vec<(Val, Val)> = (0..n)
        .map(|i| (ram(0x10_0000 + i * 2 * PAGE), PAGE.into()))
        .collect();
    create(0, 0, &[(to, rights::RW)], &s)
}

pub fn cases() -> Vec<Case> {
    let mut v = vec![
        // §12: VM_GET_VMID from HLOS → OK, 3 (and a 0-byte request payload).
        still_answers(case(
            "get_vmid_from_hlos_with_an_empty_payload",
            &[Protocol, Fragmentation, Query],
        )),
        // §1.5: unknown request IDs get a standard reply with UNIMPLEMENTED.
        case("unknown_request_id_is_unimplemented", &[Protocol])
            .send(HLOS, 0x5600_00FF, Tmpl::new())
            .err(UNIMPLEMENTED),
        case("unknown_family_is_unimplemented", &[Protocol])
            .send(HLOS, 0x1234_5678, Tmpl::new().zeros(8))
            .err(UNIMPLEMENTED),
        // §12.1: a notification ID sent as a request → UNIMPLEMENTED.
        case(
            "notification_id_as_a_request_is_unimplemented",
            &[Protocol, Observed],
        )
        .send(HLOS, N_VM_STATUS, Tmpl::new().zeros(8))
        .err(UNIMPLEMENTED),
        // §12.1 Linux-only calls: 0x5600000C (v16 boot context) → UNIMPLEMENTED.
        case(
            "v16_boot_context_id_is_unimplemented",
            &[Protocol, Observed],
        )
        .send(HLOS, VM_SET_BOOT_CONTEXT_V16, Tmpl::new().zeros(16))
        .err(UNIMPLEMENTED),
        // §1.5: the reply echoes the request's seq and msg_id, whatever the seq.
        case("reply_echoes_seq_0xffff", &[Protocol])
            .raw(HLOS, vec![get_vmid(0xFFFF)])
            .reply_seq(HLOS, 0xFFFF, VM_GET_VMID, Tmpl::new().u32(OK).u32(3u32)),
        case("reply_echoes_seq_0", &[Protocol])
            .raw(HLOS, vec![get_vmid(0)])
            .reply_seq(HLOS, 0, VM_GET_VMID, Tmpl::new().u32(OK).u32(3u32)),
        // §12.1: back-to-back requests are answered in order.
        case(
            "back_to_back_requests_are_answered_in_order",
            &[Protocol, Observed],
        )
        .raw(
            HLOS,
            vec![
                get_vmid(0x11),
                pk(ty::REQUEST, 0, 0x12, VM_GET_STATE, vmid_req(0u16)),
                get_vmid(0x13),
            ],
        )
        .reply_seq(HLOS, 0x11, VM_GET_VMID, Tmpl::new().u32(OK).u32(3u32))
        .reply_seq(
            HLOS,
            0x12,
            VM_GET_STATE,
            Tmpl::new().u32(OK).u8(st::RUNNING).any(3),
        )
        .reply_seq(HLOS, 0x13, VM_GET_VMID, Tmpl::new().u32(OK).u32(3u32)),
        // §12.1: REPLY or NOTIFICATION packets from a client get no reply.
        still_answers(
            case(
                "a_reply_packet_from_a_client_gets_nothing",
                &[Protocol, Observed],
            )
            .raw(
                HLOS,
                vec![pk(ty::REPLY, 0, 1, VM_GET_VMID, Tmpl::new().u32(0u32))],
            )
            .silent(),
        ),
        still_answers(
            case(
                "a_notification_packet_from_a_client_gets_nothing",
                &[Protocol, Observed],
            )
            .raw(
                HLOS,
                vec![pk(
                    ty::NOTIFICATION,
                    0,
                    1,
                    N_VM_STATUS,
                    Tmpl::new().zeros(8),
                )],
            )
            .silent(),
        ),
        // §1.2, §12: a header byte other than 0x21 → dropped, then normal service.
        still_answers(
            case("a_bad_api_byte_is_dropped", &[Protocol, Observed])
                .raw(
                    HLOS,
                    vec![Tmpl::new().bytes(&[0x22, 1, 1, 0]).u32(VM_GET_VMID)],
                )
                .silent(),
        ),
        still_answers(
            case("a_header_length_of_three_words_is_dropped", &[Protocol])
                .raw(
                    HLOS,
                    vec![Tmpl::new()
                        .bytes(&[0x31, 1, 1, 0])
                        .u32(VM_GET_VMID)
                        .zeros(4)],
                )
                .silent(),
        ),
        // §1.2: a packet shorter than 8 bytes is dropped.
        still_answers(
            case(
                "a_packet_shorter_than_a_header_is_dropped",
                &[Protocol, Fragmentation],
            )
            .raw(HLOS, vec![Tmpl::new().bytes(&[0x21, 1, 1, 0, 0x24, 0, 0])])
            .silent(),
        ),
        // §12: a stray continuation gets no reply.
        still_answers(
            case(
                "a_stray_continuation_is_dropped",
                &[Fragmentation, Observed],
            )
            .raw(
                HLOS,
                vec![pk(
                    ty::CONTINUATION,
                    1,
                    5,
                    VM_GET_VMID,
                    Tmpl::new().zeros(4),
                )],
            )
            .silent(),
        ),
        // §12: more than 62 continuations announced → no reply.
        still_answers(
            case(
                "a_header_announcing_63_continuations_is_dropped",
                &[Fragmentation, Observed],
            )
            .raw(HLOS, vec![pk(ty::REQUEST, 63, 7, VM_GET_VMID, Tmpl::new())])
            .silent(),
        ),
        // §1.4: 232 payload bytes fit one packet: MEM_LEND of 13 pages (24 + 16·13).
        case(
            "a_232_byte_request_is_one_packet",
            &[Fragmentation, Memparcel],
        )
        .boot(T, Upto::Load)
        .raw(
            HLOS,
            vec![pk(ty::REQUEST, 0, 0x232, MEM_LEND, lend_pages(T.id(), 13))],
        )
        .reply_seq(HLOS, 0x232, MEM_LEND, Tmpl::new().u32(OK).cap32("h"))
        .send(HLOS, MEM_RECLAIM, handle_flags("h", 0))
        .ok(),
        // 233 bytes: two packets (232 + 1); the extra byte is trailing → MSG_INVALID (§1.6).
        case(
            "a_233_byte_request_is_reassembled_from_two_packets",
            &[Fragmentation, Memparcel],
        )
        .boot(T, Upto::Load)
        .raw(
            HLOS,
            vec![
                pk(ty::REQUEST, 1, 0x233, MEM_LEND, lend_pages(T.id(), 13)),
                pk(ty::CONTINUATION, 1, 0x233, MEM_LEND, Tmpl::new().u8(0u8)),
            ],
        )
        .reply_seq(HLOS, 0x233, MEM_LEND, Tmpl::new().u32(MSG_INVALID))
        .unchanged(),
        // A request split at an odd place is still one request: 14 pages (248 bytes).
        case(
            "a_248_byte_request_in_two_packets_is_answered",
            &[Fragmentation, Memparcel],
        )
        .boot(T, Upto::Load)
        .send(HLOS, MEM_LEND, lend_pages(T.id(), 14))
        .ok_data(Tmpl::new().cap32("h")),
        // §12.1: 14 384-byte and 14 616-byte requests are reassembled (VM_GET_VMID with a
        // payload → MSG_INVALID shows the RM saw the whole request).
        case(
            "a_14384_byte_request_is_reassembled",
            &[Fragmentation, Observed],
        )
        .send(HLOS, VM_GET_VMID, Tmpl::new().zeros(14384))
        .err(MSG_INVALID),
        case(
            "a_14616_byte_request_in_63_packets_is_reassembled",
            &[Fragmentation, Observed],
        )
        .send(HLOS, VM_GET_VMID, Tmpl::new().zeros(14616))
        .err(MSG_INVALID),
        // §12.1: 14 620 bytes need 63 continuations → dropped silently; then normal service.
        still_answers(
            case(
                "a_14620_byte_request_is_dropped",
                &[Fragmentation, Observed],
            )
            .send(HLOS, VM_GET_VMID, Tmpl::new().zeros(14620))
            .silent(),
        ),
        // The same sizes with data that must arrive intact (the simulator's SIM_VM_WRITE:
        // 16 header bytes + data), read back by HLOS itself.
        case("a_14384_byte_write_arrives_intact", &[Fragmentation])
            .send(
                HLOS,
                SIM_VM_WRITE,
                sim_write(HLOS, ram(0x20_0000), &pattern(3, 14368)),
            )
            .ok_data(Tmpl::new().u32(0u32))
            .read(
                HLOS,
                ram(0x20_0000),
                14368,
                crate::Want::Data(Tmpl::new().bytes(&pattern(3, 14368))),
            ),
        case("a_14616_byte_write_arrives_intact", &[Fragmentation])
            .send(
                HLOS,
                SIM_VM_WRITE,
                sim_write(HLOS, ram(0x20_0000), &pattern(9, 14600)),
            )
            .ok_data(Tmpl::new().u32(0u32))
            .read(
                HLOS,
                ram(0x20_0000),
                14600,
                crate::Want::Data(Tmpl::new().bytes(&pattern(9, 14600))),
            ),
        // A reply that needs every fragment the RM may send: SIM_VM_READ of 14 612 bytes
        // (4 + 14 612 = 14 616 reply bytes in 63 packets).
        case("a_14616_byte_reply_comes_in_63_packets", &[Fragmentation])
            .fill(ram(0x20_0000), &pattern(5, 14612))
            .send(HLOS, SIM_VM_READ, sim_read(HLOS, 14612, ram(0x20_0000)))
            .ok_data(Tmpl::new().bytes(&pattern(5, 14612))),
    ];
    v.extend(continuation_cases());
    v
}

/// §12.1: a continuation with the wrong seq, count or msg_id is ignored and the partial
/// message stays pending; §1.4: a new request abandons a pending one.
fn continuation_cases() -> Vec<Case> {
    let first = |seq| pk(ty::REQUEST, 1, seq, VM_GET_STATE, Tmpl::new().u16(0u16));
    let rest = |seq, id, cont| pk(ty::CONTINUATION, cont, seq, id, Tmpl::new().u16(0u16));
    let answered = |c: Case, seq: u16| {
        c.reply_seq(
            HLOS,
            seq,
            VM_GET_STATE,
            Tmpl::new().u32(OK).u8(st::RUNNING).any(3),
        )
    };
    vec![
        // VM_GET_STATE(0) split 2 + 2 bytes: the second half completes it.
        answered(
            case(
                "a_request_split_in_two_continuations_is_answered",
                &[Fragmentation],
            )
            .raw(HLOS, vec![first(0x40), rest(0x40, VM_GET_STATE, 1)]),
            0x40,
        ),
        answered(
            case(
                "a_continuation_with_the_wrong_seq_is_ignored",
                &[Fragmentation, Observed],
            )
            .raw(HLOS, vec![first(0x41), rest(0x99, VM_GET_STATE, 1)])
            .silent()
            .raw(HLOS, vec![rest(0x41, VM_GET_STATE, 1)]),
            0x41,
        ),
        answered(
            case(
                "a_continuation_with_the_wrong_msg_id_is_ignored",
                &[Fragmentation, Observed],
            )
            .raw(HLOS, vec![first(0x42), rest(0x42, VM_GET_VMID, 1)])
            .silent()
            .raw(HLOS, vec![rest(0x42, VM_GET_STATE, 1)]),
            0x42,
        ),
        answered(
            case(
                "a_continuation_with_the_wrong_count_is_ignored",
                &[Fragmentation, Observed],
            )
            .raw(HLOS, vec![first(0x43), rest(0x43, VM_GET_STATE, 2)])
            .silent()
            .raw(HLOS, vec![rest(0x43, VM_GET_STATE, 1)]),
            0x43,
        ),
        // Interleaved: a continuation of another message in the middle is ignored.
        answered(
            case(
                "interleaved_continuations_keep_the_pending_message",
                &[Fragmentation],
            )
            .raw(
                HLOS,
                vec![
                    pk(ty::REQUEST, 2, 0x44, VM_GET_STATE, Tmpl::new().u8(0u8)),
                    rest(0x45, VM_GET_STATE, 2),
                    pk(ty::CONTINUATION, 2, 0x44, VM_GET_STATE, Tmpl::new().u8(0u8)),
                    rest(0x46, VM_GET_VMID, 1),
                ],
            )
            .silent()
            .raw(
                HLOS,
                vec![pk(
                    ty::CONTINUATION,
                    2,
                    0x44,
                    VM_GET_STATE,
                    Tmpl::new().u16(0u16),
                )],
            ),
            0x44,
        ),
        // §1.4/§12: a new request while one is pending: the old partial is dropped, the new
        // one answered; the old one's continuation is then a stray.
        case(
            "a_new_request_while_one_is_pending_abandons_it",
            &[Fragmentation, Observed],
        )
        .raw(HLOS, vec![first(0x47), get_vmid(0x48)])
        .reply_seq(HLOS, 0x48, VM_GET_VMID, Tmpl::new().u32(OK).u32(3u32))
        .raw(HLOS, vec![rest(0x47, VM_GET_STATE, 1)])
        .silent(),
        // A continuation-carrying new request abandons the pending one too.
        answered(
            case(
                "a_new_fragmented_request_replaces_a_pending_one",
                &[Fragmentation],
            )
            .raw(
                HLOS,
                vec![first(0x49), first(0x4A), rest(0x4A, VM_GET_STATE, 1)],
            ),
            0x4A,
        ),
    ]
}
