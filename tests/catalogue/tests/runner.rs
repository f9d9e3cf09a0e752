//! The runner can fail: cases whose expectations are wrong in each way the model can
//! express are reported as failed (and the next case still starts from a clean RM).

use gunyah_rm_catalogue::case::{case, Case, Tag};
use gunyah_rm_catalogue::dsl::*;
use gunyah_rm_catalogue::host::Host;
use gunyah_rm_catalogue::ids::{err, st, *};
use gunyah_rm_catalogue::wire::{header, ty};
use gunyah_rm_catalogue::{run_case, Outcome, Tmpl, Want};

fn outcome(c: &Case) -> Outcome {
    let mut host = Host::new();
    let mut seq = 1;
    run_case(&mut host, c, &mut seq)
}

fn fails_with(c: Case, text: &str) {
    match outcome(&c) {
        Outcome::Failed(why) => assert!(why.contains(text), "{}: {why}", c.name),
        other => panic!("{} should fail, got {other:?}", c.name),
    }
}

#[test]
fn a_right_case_passes() {
    let c = case("right", &[Tag::Lifecycle])
        .boot(T, Upto::Running)
        .teardown(T);
    assert_eq!(outcome(&c), Outcome::Passed);
}

#[test]
fn a_wrong_error_code_fails() {
    let c = case("wrong_code", &[Tag::Protocol])
        .send(HLOS, 0x5600_00FF, Tmpl::new())
        .err(err::DENIED);
    fails_with(c, "bytes 0..4");
}

#[test]
fn a_missing_notification_fails() {
    let c = case("missing", &[Tag::Lifecycle])
        .boot(T, Upto::Load)
        .send(HLOS, VM_DEALLOC, vmid_req(T.id()))
        .notif(HLOS, N_VM_STATUS, vm_status(T.id(), st::RESET))
        .ok();
    fails_with(c, "did not come");
}

#[test]
fn an_unexpected_notification_fails() {
    // VM_INIT announces READY; a case that expects only the reply must fail.
    let c = case("unexpected", &[Tag::Lifecycle])
        .boot(T, Upto::Init)
        .send(HLOS, VM_INIT, vmid_req(T.id()))
        .ok();
    fails_with(c, "got 2, expected 1");
}

#[test]
fn a_change_where_none_is_expected_fails() {
    let c = case("changed", &[Tag::Lifecycle])
        .send(HLOS, VM_ALLOC, vmid_req(0u16))
        .ok_data(Tmpl::new().any(4))
        .unchanged();
    fails_with(c, "state changed");
}

#[test]
fn wrong_bytes_read_fail() {
    let c = case("bytes", &[Tag::Memparcel]).fill(ram(0), b"abc").read(
        HLOS,
        ram(0),
        3,
        Want::Data(Tmpl::new().bytes(b"abd")),
    );
    fails_with(c, "read data");
}

#[test]
fn an_access_that_should_fault_but_completes_fails() {
    let c = case("fault", &[Tag::Cow]).read(HLOS, ram(0), 3, Want::Fault(ram(0)));
    fails_with(c, "want Fault");
}

#[test]
fn a_reply_with_the_wrong_seq_fails() {
    let p = Tmpl::new().bytes(&header(ty::REQUEST, 0, 7, VM_GET_VMID));
    let c = case("seq", &[Tag::Protocol]).raw(HLOS, vec![p]).reply_seq(
        HLOS,
        8,
        VM_GET_VMID,
        Tmpl::new().u32(0u32).u32(3u32),
    );
    fails_with(c, "want 0x8");
}

#[test]
fn a_leak_the_clean_up_cannot_see_fails() {
    // A static VMID allocated by raw packets is not tracked, so it stays: the census after
    // the clean-up differs.
    let p = Tmpl::new()
        .bytes(&header(ty::REQUEST, 0, 9, VM_ALLOC))
        .u16(10u16)
        .u16(0u16);
    let c = case("leak", &[Tag::Lifecycle])
        .raw(HLOS, vec![p])
        .reply_seq(HLOS, 9, VM_ALLOC, Tmpl::new().u32(0u32));
    fails_with(c, "census differs");
}

#[test]
fn a_qemu_like_target_refuses_a_vm_without_a_running_vcpu() {
    // T is READY: it has RM queues but no running vCPU; a case that sends as it without
    // declaring `send-without-vcpu` must fail on a target like the QEMU board.
    let c = case("ready_sender", &[Tag::Authorization])
        .boot(T, Upto::Ready)
        .send(T.vm, VM_GET_VMID, Tmpl::new())
        .ok_data(Tmpl::new().u32(T.id()));
    let mut host = Host::qemu_like();
    let mut seq = 1;
    match run_case(&mut host, &c, &mut seq) {
        Outcome::Failed(why) => assert!(why.contains("no running vCPU"), "{why}"),
        other => panic!("should fail, got {other:?}"),
    }
    // Declared, it is skipped there.
    let c = c.needs(gunyah_rm_catalogue::Need::SendWithoutVcpu);
    assert!(matches!(
        run_case(&mut host, &c, &mut seq),
        Outcome::Skipped(_)
    ));
}
