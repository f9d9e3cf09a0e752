//! The runner can fail: cases whose expectations are wrong in each way the model can
//! express are reported as failed (and the next case still starts from a clean RM).

use gunyah_rm_catalogue::case::{case, Case, Tag};
use gunyah_rm_catalogue::dsl::*;
use gunyah_rm_catalogue::host::Host;
use gunyah_rm_catalogue::ids::{err, st, *};
use gunyah_rm_catalogue::wire::{header, ty};
use gunyah_rm_catalogue::{
    run_all, run_case, Access, Image, Need, Outcome, Params, Select, Target, TargetError, Tmpl,
    Want,
};

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
    let c = c.needs(Need::SendWithoutVcpu);
    assert!(matches!(
        run_case(&mut host, &c, &mut seq),
        Outcome::Skipped(_)
    ));
}

/// The host target, counting the VM_ALLOC_VMID requests HLOS sends (one per world built).
struct Counting {
    host: Host,
    allocs: usize,
}

impl Target for Counting {
    fn name(&self) -> &str {
        "counting host"
    }
    fn params(&self) -> Params {
        self.host.params()
    }
    fn has(&self, need: Need) -> bool {
        self.host.has(need)
    }
    fn send(&mut self, from: u16, packet: &[u8]) -> Result<(), TargetError> {
        if from == HLOS && packet.get(4..8) == Some(&VM_ALLOC.to_le_bytes()[..]) {
            self.allocs += 1;
        }
        self.host.send(from, packet)
    }
    fn recv(&mut self, to: u16) -> Result<Option<Vec<u8>>, TargetError> {
        self.host.recv(to)
    }
    fn read(&mut self, vm: u16, ipa: u64, len: usize) -> Result<Access, TargetError> {
        self.host.read(vm, ipa, len)
    }
    fn write(&mut self, vm: u16, ipa: u64, data: &[u8]) -> Result<Access, TargetError> {
        self.host.write(vm, ipa, data)
    }
    fn stage_image(&mut self, vm: u16, ipa: u64) -> Result<Image, TargetError> {
        self.host.stage_image(vm, ipa)
    }
    fn digest(&mut self) -> Option<u64> {
        self.host.digest()
    }
    fn census(&mut self) -> Option<Vec<(&'static str, u64)>> {
        self.host.census()
    }
    fn check(&mut self) -> Result<(), String> {
        self.host.check()
    }
}

/// Run `cases` in order; (passed, worlds built).
fn run_counting(cases: &[Case]) -> (usize, usize) {
    let mut t = Counting {
        host: Host::new(),
        allocs: 0,
    };
    let s = run_all(&mut t, cases, &Select::default(), &mut |_| {});
    assert_eq!(s.failed, 0);
    (s.passed, t.allocs)
}

/// A world of one running VM T, shared; then T asks to allocate a VMID (DENIED: refused,
/// nothing changes).
fn on_world(name: &'static str) -> Case {
    case(name, &[Tag::Authorization])
        .boot(T, Upto::Running)
        .shared_world()
}

#[test]
fn cases_that_leave_a_shared_world_as_it_was_run_in_one_instance_of_it() {
    let refused = |name| {
        on_world(name)
            .send(T.vm, VM_ALLOC, vmid_req(0u16))
            .err(err::DENIED)
    };
    let cases = [refused("first"), refused("second"), refused("third")];
    assert_eq!(run_counting(&cases), (3, 1));
}

#[test]
fn a_case_that_changes_a_shared_world_does_not_pass_it_on() {
    // HLOS gives T a gmem pool: granted, a change the clean-up does not track (only the
    // state digest shows it), so the next case builds the world again.
    let changes = on_world("changes")
        .send(HLOS, GMEM_CREATE, gmem_create(PAGE, T.id()))
        .ok_data(Tmpl::new().any(4));
    let refused = on_world("refused")
        .send(T.vm, VM_ALLOC, vmid_req(0u16))
        .err(err::DENIED);
    assert_eq!(run_counting(&[changes, refused.clone()]), (2, 2));
    // A case that does not start with the same steps never gets the world either: it
    // allocates T and U itself (3 allocations in all).
    let other = case("other", &[Tag::Authorization])
        .boot(T, Upto::Running)
        .boot(U, Upto::Load)
        .shared_world()
        .send(T.vm, VM_ALLOC, vmid_req(0u16))
        .err(err::DENIED);
    assert_eq!(run_counting(&[refused, other]), (2, 3));
}

#[test]
fn cannot_send_fails_for_a_vm_that_could_send() {
    // READY: no vCPU runs, but the RM holds its link; RUNNING: both.
    let c = case("ready", &[Tag::Authorization])
        .boot(T, Upto::Ready)
        .cannot_send(T.vm);
    fails_with(c, "could send");
    let c = case("running", &[Tag::Authorization])
        .boot(T, Upto::Running)
        .cannot_send(T.vm);
    fails_with(c, "could send");
    let c = case("load", &[Tag::Authorization])
        .boot(T, Upto::Load)
        .cannot_send(T.vm);
    assert_eq!(outcome(&c), Outcome::Passed);
}

#[test]
fn a_target_lacking_a_need_runs_the_cases_other_form() {
    let load = || case("load_sender", &[Tag::Authorization]).boot(T, Upto::Load);
    let c = load()
        .needs(Need::SendWithoutVcpu)
        .dropped(T.vm, VM_GET_VMID, Tmpl::new())
        .otherwise(
            Need::SendWithoutVcpu,
            "cannot send",
            load().cannot_send(T.vm),
        );
    let mut seq = 1;
    // The simulator sends as T: dropped.
    assert_eq!(run_case(&mut Host::new(), &c, &mut seq), Outcome::Passed);
    // A QEMU-like target runs the other form, and it can fail there.
    assert_eq!(
        run_case(&mut Host::qemu_like(), &c, &mut seq),
        Outcome::PassedAs("cannot send")
    );
    let ready = || case("ready_sender", &[Tag::Authorization]).boot(T, Upto::Ready);
    let wrong = ready()
        .needs(Need::SendWithoutVcpu)
        .send(T.vm, VM_GET_VMID, Tmpl::new())
        .ok_data(Tmpl::new().u32(T.id()))
        .otherwise(
            Need::SendWithoutVcpu,
            "cannot send",
            ready().cannot_send(T.vm),
        );
    match run_case(&mut Host::qemu_like(), &wrong, &mut seq) {
        Outcome::Failed(why) => assert!(why.contains("could send"), "{why}"),
        other => panic!("should fail, got {other:?}"),
    }
}

#[test]
fn consecutive_cow_broken_about_one_vm_are_matched_as_one() {
    use gunyah_rm_catalogue::run::merge_cow_broken;
    use gunyah_rm_catalogue::wire::Msg;
    let cow = |vmid: u16, ipas: &[u64]| {
        let mut payload = vmid.to_le_bytes().to_vec();
        payload.extend_from_slice(&[0, 0]);
        payload.extend_from_slice(&(ipas.len() as u16).to_le_bytes());
        payload.extend_from_slice(&[0, 0]);
        for ipa in ipas {
            payload.extend_from_slice(&ipa.to_le_bytes());
        }
        Msg {
            msg_type: ty::NOTIFICATION,
            seq: 0,
            msg_id: N_COW_BROKEN,
            payload,
        }
    };
    let other = Msg {
        msg_type: ty::NOTIFICATION,
        seq: 0,
        msg_id: N_FAULT_UNSERVED,
        payload: vec![0; 16],
    };
    // Two about VM 0x80 to HLOS, one to another recipient between them: joined, in order.
    let got = vec![
        (3, cow(0x80, &[0x1000])),
        (4, cow(0x80, &[0x5000])),
        (3, cow(0x80, &[0x2000, 0x3000])),
    ];
    assert_eq!(
        merge_cow_broken(&got),
        vec![
            (3, cow(0x80, &[0x1000, 0x2000, 0x3000])),
            (4, cow(0x80, &[0x5000])),
        ]
    );
    // About another VM, or with something else to the recipient in between: kept apart.
    let apart = vec![
        (3, cow(0x80, &[0x1000])),
        (3, cow(0x81, &[0x2000])),
        (3, other.clone()),
        (3, cow(0x81, &[0x3000])),
    ];
    assert_eq!(merge_cow_broken(&apart), apart);
}
