//! Launching VMs from `vm-configs/*.dts` (compiled with dtc) on the
//! simulator: the template, its seal on OS RUN, its clones; failures undone.
//! The isolation checker runs after every launch step the tests take.

use std::path::PathBuf;

use gunyah_rm::config::host::load_set;
use gunyah_rm::config::{LaunchPlan, MemRange};
use gunyah_rm::launch::{Client, Launch, LaunchEvent, LaunchFailure, LaunchStep, OS_STATUS_RUN};
use gunyah_rm::sim::{sim_rm_for, SimPlatform};
use gunyah_rm::vm::VmState;
use gunyah_rm::Rm;
use gunyah_rm_abi::vm::VmSetStatusReq;
use gunyah_rm_abi::{Request, RmError};

const PAGE: u64 = 4096;
/// `zygote.dts`: the first 192 MiB of its RAM at 0x80000000 become the image.
const GOLDEN_BYTES: u64 = 0x0c00_0000;
const GOLDEN_IPA: u64 = 0x8000_0000;
/// SHA-256 of 192 MiB of zero bytes (`head -c 201326592 /dev/zero | sha256sum`).
const ZERO_DIGEST: &str = "46b23b74b0d431993099b9ccef75ac4e30dc48305089aa236b6ff1de97fed713";

fn config_paths() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../vm-configs");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dts"))
        .collect();
    v.sort();
    v
}

fn plan() -> LaunchPlan {
    load_set(&config_paths()).unwrap_or_else(|e| panic!("configs: {e:?}"))
}

fn check(rm: &Rm<SimPlatform>) {
    let v = rm.check_isolation();
    assert!(v.is_empty(), "isolation violations: {v:#?}");
}

fn hex(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Two state dumps hold the same mappings and the same partition use.
/// Leaves are compared merged into runs, and table pages count as used pages:
/// a lend splits HLOS's 1 GiB block and the reclaim maps the pages back
/// without merging the block again, which keeps a few more table pages
/// (same translations, same memory in use).
fn assert_same(before: &gunyah_rm::snapshot::Snapshot, after: &gunyah_rm::snapshot::Snapshot) {
    /// (IPA, PA, size, rights) of a run of leaves.
    type Run = (u64, u64, u64, u8);
    fn runs(s: &gunyah_rm::snapshot::Snapshot) -> Vec<(u16, Vec<Run>)> {
        s.tables
            .iter()
            .map(|(v, leaves)| {
                let mut out: Vec<Run> = Vec::new();
                for l in leaves {
                    match out.last_mut() {
                        Some(r) if r.0 + r.2 == l.ipa && r.1 + r.2 == l.pa && r.3 == l.rights.0 => {
                            r.2 += l.size
                        }
                        _ => out.push((l.ipa, l.pa, l.size, l.rights.0)),
                    }
                }
                (*v, out)
            })
            .collect()
    }
    assert_eq!(runs(after), runs(before), "mappings differ");
    let used = |s: &gunyah_rm::snapshot::Snapshot| s.partition.total - s.partition.free;
    let data = |s: &gunyah_rm::snapshot::Snapshot| used(s) - s.partition.tables;
    assert_eq!(
        data(after),
        data(before),
        "partition pages other than tables differ"
    );
    assert!(
        used(after) - used(before) <= 4,
        "more than a split's table pages kept"
    );
}

/// The guest of `vmid` reports OS status RUN (VM_SET_STATUS as itself).
fn report_running(rm: &mut Rm<SimPlatform>, vmid: u16) {
    let req = VmSetStatusReq {
        vm_status: 0,
        os_status: OS_STATUS_RUN,
        app_status: 0.into(),
    };
    let mut c = Client::new();
    assert_eq!(c.call(rm, vmid, &Request::VmSetStatus(req)), Ok(vec![]));
}

fn launched(ev: &[LaunchEvent]) -> Vec<(String, u16)> {
    ev.iter()
        .filter_map(|e| match e {
            LaunchEvent::Launched { name, vmid } => Some((name.clone(), *vmid)),
            _ => None,
        })
        .collect()
}

/// Boot the default set: returns the RM, the launcher and the boot events.
fn boot() -> (Rm<SimPlatform>, Launch, Vec<LaunchEvent>) {
    let plan = plan();
    let mut rm = sim_rm_for(&plan.platform).unwrap();
    let mut l = Launch::new(&rm, plan);
    let ev = l.boot(&mut rm);
    check(&rm);
    (rm, l, ev)
}

#[test]
fn template_boots_seals_on_os_run_and_clones_follow() {
    let (mut rm, mut l, ev) = boot();
    // Boot VMs that need no golden image launch now, in plan order (input
    // order, templates first): the trusted VM (fixed 0x2d), then the zygote
    // (first dynamic VMID).
    assert_eq!(
        launched(&ev),
        vec![
            ("trusted-vm".to_string(), 0x2d),
            ("zygote".to_string(), 0x80)
        ]
    );
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(l.waiting().len(), 2, "app-clone-0 and protected-vm wait");
    assert_eq!(rm.vm_state(0x80), Some(VmState::Running));
    assert_eq!(rm.vm_state(0x2d), Some(VmState::Running));
    // Booting again launches nothing; nothing seals before the trigger.
    assert!(l.boot(&mut rm).is_empty());
    assert!(l.poll(&mut rm).is_empty());
    assert!(l.sealed("zygote-golden").is_none());

    report_running(&mut rm, 0x80);
    let ev = l.poll(&mut rm);
    check(&rm);
    let LaunchEvent::Sealed(img) = &ev[0] else {
        panic!("expected the seal first: {ev:?}")
    };
    assert_eq!(img.name, "zygote-golden");
    assert_eq!(img.size, GOLDEN_BYTES);
    assert_eq!(img.template, 0x80);
    // Nothing wrote the template's RAM: the digest of 192 MiB of zeros,
    // which protected-vm.dts names, so the protected VM launches too.
    assert_eq!(hex(&img.digest), ZERO_DIGEST);
    assert_eq!(
        launched(&ev[1..]),
        vec![
            ("app-clone-0".to_string(), 0x81),
            ("protected-vm".to_string(), 0x82)
        ]
    );
    assert!(l.waiting().is_empty());
    // The clone maps all 49152 golden pages, has copied none, and its gmem
    // quota is the config's 80 MiB; demand-paged RAM holds nothing yet.
    let s = rm.mem_stats(0x81).unwrap();
    assert_eq!(
        (s.golden_mapped_pages, s.cow_copied_pages, s.private_pages),
        (GOLDEN_BYTES / PAGE, 0, 0)
    );
    assert_eq!(s.quota_pages, 0x0500_0000 / PAGE);
    // A clone write makes one private copy; the template and the other
    // clone still read the golden contents.
    assert_eq!(rm.vm_write(0x81, GOLDEN_IPA + 5 * PAGE, b"clone"), Ok(1));
    check(&rm);
    let mut b = [0xffu8; 5];
    rm.vm_read(0x82, GOLDEN_IPA + 5 * PAGE, &mut b).unwrap();
    assert_eq!(b, [0; 5]);
    rm.vm_read(0x80, GOLDEN_IPA + 5 * PAGE, &mut b).unwrap();
    assert_eq!(b, [0; 5]);
    rm.vm_read(0x81, GOLDEN_IPA + 5 * PAGE, &mut b).unwrap();
    assert_eq!(&b, b"clone");
    assert_eq!(rm.mem_stats(0x81).unwrap().cow_copied_pages, 1);
    // The template keeps running on its image (mapped back copy-on-write).
    assert_eq!(rm.vm_write(0x80, GOLDEN_IPA, b"zygote"), Ok(1));
    // Its RAM beyond the sealed ranges is still its own pool's.
    assert_eq!(rm.vm_write(0x80, GOLDEN_IPA + GOLDEN_BYTES, b"own"), Ok(0));
    check(&rm);
    // A second trigger does nothing.
    assert!(l.poll(&mut rm).is_empty());
}

#[test]
fn clones_on_request_get_their_own_vmids_and_copies() {
    let (mut rm, mut l, _) = boot();
    // Before the seal, an on-request clone is refused and leaves nothing.
    let before = rm.snapshot();
    let e = l.launch_vm(&mut rm, "app-clone-1").unwrap_err();
    assert_eq!(e.step, LaunchStep::GoldenMap("zygote-golden".into()));
    assert_eq!(e.failure, LaunchFailure::NotSealed);
    assert_eq!(e.undo, None);
    assert_same(&before, &rm.snapshot());
    assert!(!rm.vm_exists(0x81));
    check(&rm);

    report_running(&mut rm, 0x80);
    l.poll(&mut rm);
    let mut vmids = Vec::new();
    for _ in 0..3 {
        vmids.push(l.launch_vm(&mut rm, "app-clone-1").unwrap());
        check(&rm);
    }
    // 0x81, 0x82 went to app-clone-0 and protected-vm at the seal.
    assert_eq!(vmids, vec![0x83, 0x84, 0x85]);
    assert_eq!(l.instances_of("app-clone-1").count(), 3);
    // Each clone's write copies one page into its own gmem.
    for (k, &v) in vmids.iter().enumerate() {
        assert_eq!(
            rm.vm_write(v, GOLDEN_IPA + 7 * PAGE, &[k as u8 + 1; 8]),
            Ok(1)
        );
    }
    for (k, &v) in vmids.iter().enumerate() {
        let mut b = [0u8; 8];
        rm.vm_read(v, GOLDEN_IPA + 7 * PAGE, &mut b).unwrap();
        assert_eq!(b, [k as u8 + 1; 8]);
        assert_eq!(rm.mem_stats(v).unwrap().cow_copied_pages, 1);
    }
    check(&rm);
    // app-clone-1's quota is 256 copies with fault-action stop-vm: the
    // 257th write is not served and stops the VM.
    let v = vmids[0];
    for p in 8..8 + 255 {
        assert_eq!(
            rm.vm_write(v, GOLDEN_IPA + p * PAGE, b"q"),
            Ok(1),
            "page {p}"
        );
    }
    assert!(rm.vm_write(v, GOLDEN_IPA + 300 * PAGE, b"q").is_err());
    assert_eq!(rm.vm_state(v), Some(VmState::Exited));
    check(&rm);
}

#[test]
fn protected_vm_is_refused_when_the_image_digest_differs() {
    let (mut rm, mut l, _) = boot();
    // The template writes its RAM before it reports RUN: another digest.
    assert_eq!(rm.vm_write(0x80, GOLDEN_IPA, b"booted"), Ok(0));
    report_running(&mut rm, 0x80);
    let ev = l.poll(&mut rm);
    check(&rm);
    assert_eq!(launched(&ev), vec![("app-clone-0".to_string(), 0x81)]);
    let fail: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            LaunchEvent::Failed(f) => Some(f.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(fail.len(), 1, "{ev:?}");
    assert_eq!(fail[0].vm, "protected-vm");
    assert_eq!(fail[0].step, LaunchStep::GoldenMap("zygote-golden".into()));
    assert_eq!(fail[0].failure, LaunchFailure::Rm(RmError::ValidateFailed));
    assert_eq!(fail[0].undo, None);
    assert_eq!(
        fail[0].to_string(),
        "protected-vm: GOLDEN_MAP zygote-golden: VALIDATE_FAILED (0x8)"
    );
    // Undone: its VMID is free again and a retry changes nothing.
    assert!(!rm.vm_exists(0x82));
    let before = rm.snapshot();
    assert!(l.launch_vm(&mut rm, "protected-vm").is_err());
    assert_same(&before, &rm.snapshot());
    check(&rm);
    // The clone sees what the template wrote.
    let mut b = [0u8; 6];
    rm.vm_read(0x81, GOLDEN_IPA, &mut b).unwrap();
    assert_eq!(&b, b"booted");
}

#[test]
fn fixed_vmid_in_use_fails_at_alloc_and_changes_nothing() {
    let (mut rm, mut l, _) = boot();
    let before = rm.snapshot();
    let e = l.launch_vm(&mut rm, "trusted-vm").unwrap_err();
    assert_eq!(e.step, LaunchStep::AllocVmid);
    // A taken static VMID is NORESOURCE (§12.1; was VMID_INVALID).
    assert_eq!(e.rm_error(), Some(RmError::NoResource));
    assert_same(&before, &rm.snapshot());
    let e = l.launch_vm(&mut rm, "no-such-vm").unwrap_err();
    assert_eq!(e.failure, LaunchFailure::UnknownVm);
    check(&rm);
}

#[test]
fn eager_bind_out_of_memory_is_undone() {
    let mut plan = plan();
    // A partition with room for the zygote's tables but not its 256 MiB.
    plan.platform.partition = vec![MemRange {
        base: 0x8000_0000,
        size: 0x0800_0000,
    }];
    let mut rm = sim_rm_for(&plan.platform).unwrap();
    let mut l = Launch::new(&rm, plan);
    let before = rm.snapshot();
    let e = l.launch_vm(&mut rm, "zygote").unwrap_err();
    assert_eq!(e.step, LaunchStep::GmemBind);
    assert_eq!(e.rm_error(), Some(RmError::NoMem));
    assert_eq!(e.undo, None);
    assert!(!rm.vm_exists(0x80));
    assert_same(&before, &rm.snapshot());
    check(&rm);
    // The trusted VM (32 MiB) still fits and launches.
    assert_eq!(l.launch_vm(&mut rm, "trusted-vm"), Ok(0x2d));
    check(&rm);
}

#[test]
fn owner_request_seal_and_dt_reaches_vm_init() {
    let (mut rm, mut l, _) = boot();
    // VM_INIT counted the CPUs of the DT the launcher wrote: the zygote's
    // affinity-map has 2 entries, the trusted VM's 1.
    assert_eq!(rm.vms().get(0x80).unwrap().vcpus, 2);
    assert_eq!(rm.vms().get(0x2d).unwrap().vcpus, 1);
    // Sealing on the owner's request works whatever the trigger.
    let ev = l.seal(&mut rm, "zygote");
    assert!(matches!(&ev[0], LaunchEvent::Sealed(s) if s.name == "zygote-golden"));
    assert_eq!(launched(&ev[1..]).len(), 2);
    check(&rm);
    // Only once.
    let ev = l.seal(&mut rm, "zygote");
    assert!(matches!(&ev[0], LaunchEvent::Failed(e) if e.failure == LaunchFailure::NotSealable));
    // And a VM that is no template cannot be sealed.
    let ev = l.seal(&mut rm, "trusted-vm");
    assert!(matches!(&ev[0], LaunchEvent::Failed(_)));
    check(&rm);
}

#[test]
fn platform_the_simulator_cannot_model_is_named() {
    let mut plan = plan();
    plan.platform.partition.push(MemRange {
        base: 0x1_0000_0000,
        size: 0x10_0000,
    });
    assert_eq!(
        sim_rm_for(&plan.platform).err().as_deref(),
        Some("partition: the simulator takes exactly one range")
    );
}

#[test]
fn stop_returns_everything_a_clone_held() {
    let (mut rm, mut l, _) = boot();
    report_running(&mut rm, 0x80);
    l.poll(&mut rm);
    let before = rm.snapshot();
    let v = l.launch_vm(&mut rm, "app-clone-1").unwrap();
    assert_eq!(rm.vm_write(v, GOLDEN_IPA + 3 * PAGE, b"x"), Ok(1));
    // app-clone-stop.dts has no gmem node: its RAM is populated at launch.
    assert_eq!(rm.vm_write(v, 0x8c00_0000, b"ram"), Ok(0));
    check(&rm);
    l.stop(&mut rm, v).unwrap();
    check(&rm);
    assert!(!rm.vm_exists(v));
    assert_eq!(l.instances_of("app-clone-1").count(), 0);
    let after = rm.snapshot();
    // Same tables (HLOS has its staging pages back) and the same partition use.
    assert_eq!(
        (after.tables, after.partition),
        (before.tables, before.partition)
    );
    // The VMID and the staging pages are reused.
    assert_eq!(l.launch_vm(&mut rm, "app-clone-1"), Ok(v));
    check(&rm);
    let e = l.stop(&mut rm, 0x99).unwrap_err();
    assert_eq!(e.failure, LaunchFailure::UnknownVm);
}

#[test]
fn vm_init_failure_resets_and_deallocates() {
    let mut plan = plan();
    // More vCPUs than the RM creates (256): VM_INIT fails with NORESOURCE and
    // moves the VM to INIT_FAILED, after the image parcel (a 257-CPU DT spans
    // several pages) was lent and configured.
    let k = plan
        .vms
        .iter()
        .position(|v| v.config.image_name == "trusted-vm")
        .unwrap();
    plan.vms[k].config.vcpus.count = 257;
    let mut rm = sim_rm_for(&plan.platform).unwrap();
    let mut l = Launch::new(&rm, plan);
    let before = rm.snapshot();
    let e = l.launch_vm(&mut rm, "trusted-vm").unwrap_err();
    assert_eq!(e.step, LaunchStep::Init);
    assert_eq!(e.rm_error(), Some(RmError::NoResource));
    assert_eq!(e.undo, None, "{e}");
    // Reset, deallocated, image parcel reclaimed: nothing is left.
    assert!(!rm.vm_exists(0x2d));
    assert!(rm.parcels().parcels.is_empty());
    assert_same(&before, &rm.snapshot());
    check(&rm);
}

/// `vmid`'s stage-2 leaves inside `[ipa, ipa + size)`.
fn leaves_in(
    rm: &Rm<SimPlatform>,
    vmid: u16,
    ipa: u64,
    size: u64,
) -> Vec<gunyah_rm::platform::Leaf> {
    use gunyah_rm::platform::AddressSpaces;
    let mut v = Vec::new();
    rm.platform().for_each_leaf(vmid, &mut |l| {
        if l.ipa >= ipa && l.ipa < ipa + size {
            v.push(*l);
        }
    });
    v
}

#[test]
fn eager_ram_and_the_golden_sealed_from_it_map_with_2mib_blocks() {
    const BLOCK: u64 = 2 << 20;
    let (mut rm, mut l, _) = boot();
    // The zygote's 256 MiB eager RAM at 0x80000000 (2 MiB aligned): 128
    // read-write 2 MiB blocks, each over a 2 MiB-aligned physical run.
    let t = leaves_in(&rm, 0x80, GOLDEN_IPA, 0x1000_0000);
    assert_eq!(t.len(), 128, "{:x?}", &t[..t.len().min(4)]);
    for b in &t {
        assert_eq!(b.size, BLOCK, "{b:x?}");
        assert_eq!(b.pa % BLOCK, 0, "{b:x?}");
        assert!(b.rights.writable(), "{b:x?}");
    }
    report_running(&mut rm, 0x80);
    let ev = l.poll(&mut rm);
    assert!(matches!(ev[0], LaunchEvent::Sealed(_)), "{ev:?}");
    check(&rm);
    // The config-launched clone maps the 192 MiB golden image with 96
    // read-only 2 MiB blocks (not 49152 page entries), onto the very blocks
    // the template was populated with.
    let c = leaves_in(&rm, 0x81, GOLDEN_IPA, GOLDEN_BYTES);
    assert_eq!(c.len(), 96, "{:x?}", &c[..c.len().min(4)]);
    for (k, b) in c.iter().enumerate() {
        assert_eq!(
            (b.ipa, b.size, b.pa),
            (GOLDEN_IPA + k as u64 * BLOCK, BLOCK, t[k].pa),
            "{b:x?}"
        );
        assert!(!b.rights.writable(), "{b:x?}");
    }
    // A write splits one block: 511 golden pages stay read-only, one
    // becomes the clone's private read-write copy.
    assert_eq!(rm.vm_write(0x81, GOLDEN_IPA + 3 * PAGE, b"x"), Ok(1));
    let c = leaves_in(&rm, 0x81, GOLDEN_IPA, BLOCK);
    assert_eq!(c.len(), 512);
    assert_eq!(c.iter().filter(|l| l.rights.writable()).count(), 1);
    assert_eq!(
        leaves_in(&rm, 0x81, GOLDEN_IPA + BLOCK, GOLDEN_BYTES - BLOCK).len(),
        95
    );
    check(&rm);
}

#[test]
fn a_cow_copy_holds_exactly_the_golden_page() {
    let (mut rm, mut l, _) = boot();
    // The template fills one page with a pattern before the seal.
    let page: Vec<u8> = (0..PAGE as usize).map(|i| (i * 7 + 3) as u8).collect();
    let at = GOLDEN_IPA + 0x20_1000;
    assert_eq!(rm.vm_write(0x80, at, &page), Ok(0));
    report_running(&mut rm, 0x80);
    l.poll(&mut rm);
    check(&rm);
    // The clone's first write copies the page: every other byte is the
    // golden's, and the golden itself (read through the template, mapped
    // back copy-on-write) is unchanged.
    assert_eq!(rm.vm_write(0x81, at + 100, &[0xEE]), Ok(1));
    let mut got = vec![0u8; PAGE as usize];
    rm.vm_read(0x81, at, &mut got).unwrap();
    let mut want = page.clone();
    want[100] = 0xEE;
    assert_eq!(got, want);
    rm.vm_read(0x80, at, &mut got).unwrap();
    assert_eq!(got, page);
    // A copy of an all-zero golden page reads as zeros but for the write.
    assert_eq!(rm.vm_write(0x81, at + PAGE, &[0x11]), Ok(1));
    rm.vm_read(0x81, at + PAGE, &mut got).unwrap();
    let mut want = vec![0u8; PAGE as usize];
    want[0] = 0x11;
    assert_eq!(got, want);
    check(&rm);
}

#[test]
fn the_image_parcel_sits_next_to_the_ram_in_a_region_with_tables_already() {
    use gunyah_rm::stage2_spaces::Stage2Backed;
    const GIB: u64 = 1 << 30;
    let (mut rm, mut l, _) = boot();
    report_running(&mut rm, 0x80);
    l.poll(&mut rm);
    let v = l.launch_vm(&mut rm, "app-clone-1").unwrap();
    check(&rm);
    let inst = l.instances().iter().find(|i| i.vmid == v).unwrap().clone();
    let cfg = &l.plan().vms[inst.plan_index].config;
    let (base, size_max) = (cfg.memory.base_address, cfg.memory.size_max);
    // HLOS RAM is identity-mapped: the staging IPA is the parcel's PA.
    let mut at = None;
    {
        use gunyah_rm::platform::AddressSpaces;
        rm.platform().for_each_leaf(v, &mut |lf| {
            if lf.pa == inst.image_staging {
                at = Some(lf.ipa);
            }
        });
    }
    let at = at.expect("the image parcel is mapped in the VM");
    let len = inst.image_pages * PAGE;
    // Right after the RAM window, outside it and the golden mapping, in the same 1 GiB.
    assert_eq!(at, base + size_max);
    assert!(at >= GOLDEN_IPA + GOLDEN_BYTES || at + len <= GOLDEN_IPA);
    assert_eq!(at / GIB, base / GIB);
    // So the VM has one level-2 table (RAM, golden and image all in 2..3 GiB), not two.
    let mut l2 = 0;
    rm.platform()
        .stage2()
        .get(v)
        .unwrap()
        .for_each_table(&mut |_, level| l2 += usize::from(level == 2));
    assert_eq!(l2, 1);
    // The VM reads its DT there: VM_INIT took its vCPU count from it, and it starts.
    assert_eq!(rm.vm_state(v), Some(VmState::Running));
    l.stop(&mut rm, v).unwrap();
    check(&rm);
}

/// The launcher records each VM's `image-name`, `vm-uri` and `vm-guid` (`apply::prepare`):
/// VM_GET_ID and VM_LOOKUP_* answer them to HLOS, the manager of the VMs it launched.
#[test]
fn launched_vms_answer_vm_get_id_and_lookups_with_their_config_ids() {
    use gunyah_rm_abi::mem::VmidEntry;
    use gunyah_rm_abi::vm::VmidReq;
    use gunyah_rm_abi::vm_id::{vm_id_type, VmGuidReq, VmIdChars, VmIds, VmLookupReply};
    let (mut rm, _l, _ev) = boot();
    let hlos = 3;
    let r = Client::new()
        .call(&mut rm, hlos, &Request::VmGetId(VmidReq::new(0x80)))
        .unwrap();
    let ids = VmIds::decode(&r).unwrap();
    let got: Vec<(u8, Vec<u8>)> = ids.iter().map(|e| (e.id_type, e.id.to_vec())).collect();
    // zygote.dts: vm-guid = "6a0c2f4e-1d3b-4c5a-9e8f-0b1c2d3e4f50".
    let guid = [
        0x6a, 0x0c, 0x2f, 0x4e, 0x1d, 0x3b, 0x4c, 0x5a, 0x9e, 0x8f, 0x0b, 0x1c, 0x2d, 0x3e, 0x4f,
        0x50,
    ];
    assert_eq!(
        got,
        vec![
            (vm_id_type::GUID, guid.to_vec()),
            (vm_id_type::NAME, b"zygote".to_vec()),
            (vm_id_type::URI, b"vm://android/zygote".to_vec()),
            (vm_id_type::SIGN_AUTH, b"N/A".to_vec()),
        ]
    );
    let lookup = |rm: &mut Rm<SimPlatform>, req: Request<'_>| {
        let r = Client::new().call(rm, hlos, &req).unwrap();
        VmLookupReply::decode(&r).unwrap().vmids.to_vec()
    };
    assert_eq!(
        lookup(
            &mut rm,
            Request::VmLookupName(VmIdChars::new(b"trusted-vm"))
        ),
        vec![VmidEntry::new(0x2d)]
    );
    assert_eq!(
        lookup(
            &mut rm,
            Request::VmLookupUri(VmIdChars::new(b"vm://android/zygote"))
        ),
        vec![VmidEntry::new(0x80)]
    );
    assert_eq!(
        lookup(&mut rm, Request::VmLookupGuid(VmGuidReq::new(guid))),
        vec![VmidEntry::new(0x80)]
    );
    // The trusted VM and the zygote are both HLOS's: not peers of each other.
    assert_eq!(
        Client::new().call(&mut rm, 0x2d, &Request::VmGetId(VmidReq::new(0x80))),
        Err(RmError::NoResource)
    );
}
