//! Transport behaviour seen through `packet_from` / `drain_outgoing`
//! without draining in between: notifications queue per VM up to 256 and
//! the oldest are dropped (spec §1.5); replies are never dropped; each
//! reply echoes its request's seq and msg_id.

mod common;
use common::*;

use gunyah_rm::sim::default_rm;

#[test]
fn notification_queue_is_bounded_per_vm() {
    // VM 0x80 READY: its RM queue exists (a VM without one is sent nothing).
    let mut h = H::new();
    assert_eq!(h.ready_vm(), 0x80);
    let mut rm = h.rm;
    let handle_req = create(0, 0, 0, &[(0x80, 6)], &[(0x4800_0000, 0x1000)]);
    rm.packet_from(HLOS, &request_packets(2, MEM_LEND, &handle_req)[0]);
    let first = decode_outgoing(rm.drain_outgoing());
    let reply = first.iter().find(|m| m.msg_id == MEM_LEND).unwrap();
    let handle = u32::from_le_bytes(reply.payload[4..8].try_into().unwrap());
    // 300 RECALLs to 0x80, which never reads its queue.
    for seq in 0..300u16 {
        let p = request_packets(1000 + seq, MEM_NOTIFY, &notify(handle, 0x8, 5, &[0x80]));
        rm.packet_from(HLOS, &p[0]);
    }
    let out = decode_outgoing(rm.drain_outgoing());
    let replies: Vec<&Msg> = out.iter().filter(|m| m.msg_type == 2).collect();
    let recalls: Vec<&Msg> = out
        .iter()
        .filter(|m| m.to == 0x80 && m.msg_type == 3)
        .collect();
    assert_eq!(replies.len(), 300);
    for (i, r) in replies.iter().enumerate() {
        assert_eq!((r.to, r.seq, r.msg_id), (HLOS, 1000 + i as u16, MEM_NOTIFY));
        assert_eq!(&r.payload, &[0, 0, 0, 0]);
    }
    // Only the newest 256 notifications survive, in order.
    assert_eq!(recalls.len(), 256);
    assert_eq!(rm.notifications_dropped(), 44);
    for w in recalls.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
    }
    // After draining, the queue holds 256 again.
    for seq in 0..10u16 {
        let p = request_packets(seq, MEM_NOTIFY, &notify(handle, 0x8, 5, &[0x80]));
        rm.packet_from(HLOS, &p[0]);
    }
    let out = decode_outgoing(rm.drain_outgoing());
    assert_eq!(out.iter().filter(|m| m.to == 0x80).count(), 10);
}

#[test]
fn packets_from_unknown_vms_are_ignored() {
    let mut rm = default_rm();
    rm.packet_from(0x42, &request_packets(1, VM_GET_VMID, &[])[0]);
    assert!(rm.drain_outgoing().is_empty());
    assert!(rm.vm_exists(HLOS));
    assert!(!rm.vm_exists(0x42));
}

#[test]
fn a_client_disconnecting_mid_message_loses_only_that_message() {
    let mut rm = default_rm();
    let big = request_packets(7, MEM_SHARE, &[0u8; 400]);
    rm.packet_from(HLOS, &big[0]);
    rm.client_disconnected(HLOS);
    // The continuation now has no partial message: dropped.
    rm.packet_from(HLOS, &big[1]);
    assert!(rm.drain_outgoing().is_empty());
    rm.packet_from(HLOS, &request_packets(8, VM_GET_VMID, &[])[0]);
    let out = decode_outgoing(rm.drain_outgoing());
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].seq, out[0].payload.clone()),
        (8, vec![0, 0, 0, 0, 3, 0, 0, 0])
    );
}
