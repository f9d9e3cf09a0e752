//! Gunyah's `hvc #0x6000 + n` hypercall form as the board maps it onto the SMCCC form
//! (`qemu/board/src/gunyah_hvc.rs`), on the host: the calls Qualcomm's Gunyah drivers for
//! Linux make (`hcall_msgq.h`: msgq_send 0x601B, msgq_recv 0x601C; identify 0x6000).

#[path = "../src/gunyah_hvc.rs"]
mod gunyah_hvc;

#[path = "../../hvc_abi.rs"]
#[allow(dead_code)]
mod abi;

use gunyah_hvc::{hvc_imm, to_smccc};

#[test]
fn msgq_send_and_receive_move_their_arguments_up_one_register() {
    // gh_hcall_msgq_send(cap, size, data, flags): hvc #0x601B, x0..x3.
    let mut x = [0x10, 48, 0xffff_0000_1234_5000, 1, 0, 0, 0, 0];
    assert!(to_smccc(0x601B, &mut x));
    assert_eq!(x[0], abi::MSGQ_SEND);
    assert_eq!(x[1..5], [0x10, 48, 0xffff_0000_1234_5000, 1]);
    // gh_hcall_msgq_recv(cap, buffer, max_size): hvc #0x601C, x0..x2.
    let mut x = [0x11, 0xffff_0000_4321_0000, 240, 0, 0, 0, 0, 0];
    assert!(to_smccc(0x601C, &mut x));
    assert_eq!(x[0], abi::MSGQ_RECV);
    assert_eq!(x[1..4], [0x11, 0xffff_0000_4321_0000, 240]);
    let mut x = [7; 8];
    assert!(to_smccc(0x6000, &mut x));
    assert_eq!(x[0], abi::HYP_IDENTIFY);
    let mut x = [0; 8];
    assert!(to_smccc(0x603B, &mut x));
    assert_eq!(x[0], abi::SCHED_YIELD);
}

#[test]
fn other_immediates_are_not_gunyah_calls() {
    for imm in [0u16, 1, 0x5FFF, 0x8000, 0xFFFF] {
        let mut x = [1, 2, 3, 4, 5, 6, 7, 8];
        assert!(!to_smccc(imm, &mut x), "{imm:#x}");
        assert_eq!(x, [1, 2, 3, 4, 5, 6, 7, 8]);
    }
    assert!(!to_smccc(0x601B, &mut []));
}

#[test]
fn the_immediate_is_the_low_half_of_the_iss() {
    // ESR_EL2 for `hvc #0x601b` from AArch64: EC 0x16, IL 1.
    assert_eq!(hvc_imm(0x5a00_601b), 0x601B);
    assert_eq!(hvc_imm(0x5a00_0000), 0);
}

#[test]
fn rpc_summary_reads_an_rpc_header() {
    use gunyah_hvc::rpc_summary;
    // VM_GET_HYP_RESOURCES request, seq 1, payload vmid 0.
    let req = [0x21, 0x01, 0x01, 0x00, 0x20, 0x00, 0x00, 0x56, 0, 0, 0, 0];
    assert_eq!(rpc_summary(&req), Some(("request", 0x5600_0020, 1, None)));
    // Its reply with result 0 and a payload.
    let reply = [
        0x21, 0x02, 0x01, 0x00, 0x20, 0x00, 0x00, 0x56, 0, 0, 0, 0, 2, 0, 0, 0,
    ];
    assert_eq!(
        rpc_summary(&reply),
        Some(("reply", 0x5600_0020, 1, Some(0)))
    );
    // A reply cut short has no result; shorter than a header is nothing.
    assert_eq!(
        rpc_summary(&reply[..8]),
        Some(("reply", 0x5600_0020, 1, None))
    );
    assert_eq!(rpc_summary(&reply[..7]), None);
    assert_eq!(rpc_summary(&[]), None);
    let notif = [0x21, 0x03, 0, 0, 0x08, 0x00, 0x10, 0x56];
    assert_eq!(
        rpc_summary(&notif),
        Some(("notification", 0x5610_0008, 0, None))
    );
}
