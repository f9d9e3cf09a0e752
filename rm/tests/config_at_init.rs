//! VMs launched through RM RPC alone with their VM-config DT in the image parcel, as a Gunyah
//! VMM does (and as the QEMU board's HLOS does): the RM applies the config at VM_INIT
//! (`gunyah_rm::launch::apply`): vCPU count, gmem pool and private RAM, golden mappings with
//! quota and fault action, protection; it seals a template when it reports OS status RUN and
//! releases that image once its template and every clone are gone. The configs are the
//! board-sized variants the QEMU board runs (`qemu/hlos/configs/`, which include
//! `vm-configs/`) and shipped ones, compiled with dtc.

use gunyah_rm::launch::{Client, OS_STATUS_RUN};
use gunyah_rm::sim::{sim_rm, SimConfig, SimPlatform};
use gunyah_rm::vm::VmState;
use gunyah_rm::{PhysMem, Rm};
use gunyah_rm_abi::mem::{rights, AclEntry, MemCreate, MemReleaseReq, SglEntry};
use gunyah_rm_abi::vm::{VmConfigImageReq, VmInitReq, VmSetStatusReq, VmStopReq, VmidReq};
use gunyah_rm_abi::{Request, RmError};
use sha2::{Digest, Sha256};

#[path = "common/dtc.rs"]
mod dtc_tool;
use dtc_tool::dtc;

const HLOS: u16 = 3;
const PAGE: u64 = 4096;
/// The board-sized zygote seals its first 4 MiB at 0x80000000.
const GOLDEN_IPA: u64 = 0x8000_0000;
const GOLDEN_BYTES: u64 = 0x40_0000;
/// HLOS RAM where the test builds image parcels: VM `k`'s at `STAGING + k * 64 KiB`.
const STAGING: u64 = 0x7000_0000;

fn config(path: &str) -> Vec<u8> {
    dtc(&format!("/include/ \"{path}\"\n"))
}

fn call(rm: &mut Rm<SimPlatform>, from: u16, req: Request<'_>) -> Result<Vec<u8>, RmError> {
    Client::new().call(rm, from, &req)
}

fn word(r: &[u8]) -> u32 {
    u32::from_le_bytes(r[..4].try_into().unwrap())
}

fn check(rm: &Rm<SimPlatform>) {
    let v = rm.check_isolation();
    assert!(v.is_empty(), "isolation violations: {v:#?}");
}

/// A VM launched by HLOS: VMID and image parcel.
#[derive(Clone, Copy, Debug)]
struct Vm {
    vmid: u16,
    image: u32,
}

/// HLOS's launch: VM_ALLOC_VMID(`want`), the image parcel (an image page, then `dtb`) lent,
/// VM_CONFIG_IMAGE, VM_INIT, VM_START. On a refused VM_INIT: its error, after the VM was
/// reset, deallocated and the parcel reclaimed.
fn launch(rm: &mut Rm<SimPlatform>, k: u64, want: u16, dtb: &[u8]) -> Result<Vm, RmError> {
    let r = call(rm, HLOS, Request::VmAllocVmid(VmidReq::new(want))).unwrap();
    let vmid = if want == 0 { word(&r) as u16 } else { want };
    let at = STAGING + k * 0x1_0000;
    assert!(dtb.len() as u64 + PAGE <= 0x1_0000);
    assert!(rm.platform_mut().write(at + PAGE, dtb));
    let acl = [AclEntry::new(vmid, rights::RWX)];
    let sgl = [SglEntry::new(at, 0x1_0000)];
    let lend = MemCreate::normal(&acl, &sgl);
    let image = word(&call(rm, HLOS, Request::MemLend(lend)).unwrap());
    let cfg = VmConfigImageReq::new(vmid, 0, image, (0, PAGE), (PAGE, dtb.len() as u64));
    call(rm, HLOS, Request::VmConfigImage(cfg)).unwrap();
    let vm = Vm { vmid, image };
    if let Err(e) = call(rm, HLOS, Request::VmInit(VmInitReq::new(vmid))) {
        assert_eq!(rm.vm_state(vmid), Some(VmState::InitFailed));
        check(rm);
        teardown(rm, vm);
        return Err(e);
    }
    call(rm, HLOS, Request::VmStart(VmidReq::new(vmid))).unwrap();
    check(rm);
    Ok(vm)
}

fn teardown(rm: &mut Rm<SimPlatform>, vm: Vm) {
    if rm.vm_state(vm.vmid) == Some(VmState::Running) {
        call(rm, HLOS, Request::VmStop(VmStopReq::new(vm.vmid, 1, 0))).unwrap();
    }
    call(rm, HLOS, Request::VmReset(VmidReq::new(vm.vmid))).unwrap();
    call(rm, HLOS, Request::VmDeallocVmid(VmidReq::new(vm.vmid))).unwrap();
    call(
        rm,
        HLOS,
        Request::MemReclaim(MemReleaseReq::new(vm.image, 0)),
    )
    .unwrap();
    check(rm);
}

fn pattern(page: u64) -> Vec<u8> {
    (0..PAGE).map(|i| (page * 7 + i) as u8).collect()
}

/// The simulator with a 128 MiB partition (the trusted VM's and app-clone-1's 32 MiB and the
/// zygote's 16 MiB are populated at launch).
fn rm() -> Rm<SimPlatform> {
    let sim = SimConfig {
        partition_pages: 32768,
        ..SimConfig::default()
    };
    sim_rm(sim, gunyah_rm::RmConfig::default()).unwrap()
}

/// Partition pages in use, stage-2 tables aside.
fn used(rm: &Rm<SimPlatform>) -> u64 {
    let u = rm.platform().partition_usage();
    u.total - u.free - u.tables
}

fn pools(rm: &Rm<SimPlatform>, vmid: u16) -> usize {
    rm.vm_space(vmid).map_or(0, |s| s.pools.len())
}

#[test]
fn vm_init_applies_the_config_in_the_vm_dt() {
    let mut rm = rm();
    let before = used(&rm);

    // A clone before its template sealed: nothing to map, refused, nothing left.
    let clone_dtb = config("qemu/hlos/configs/app-clone.dts");
    assert_eq!(
        launch(&mut rm, 0, 0, &clone_dtb).err(),
        Some(RmError::HandleInvalid)
    );
    assert_eq!(used(&rm), before);

    // The trusted VM: its fixed VMID only, eager 32 MiB of gmem, one vCPU.
    let trusted_dtb = config("vm-configs/trusted-vm.dts");
    assert_eq!(
        launch(&mut rm, 1, 0, &trusted_dtb).err(),
        Some(RmError::ArgumentInvalid)
    );
    let trusted = launch(&mut rm, 1, 0x2d, &trusted_dtb).unwrap();
    let st = rm.mem_stats(0x2d).unwrap();
    assert_eq!(st.private_pages, 0x200_0000 / PAGE);
    assert_eq!(rm.vms().get(0x2d).unwrap().vcpus, 1);

    // The zygote: two vCPUs, 16 MiB; it writes its first and last sealed pages and reports
    // RUN: the RM seals the first 4 MiB and maps them back copy-on-write.
    let zygote = launch(&mut rm, 2, 0, &config("qemu/hlos/configs/zygote.dts")).unwrap();
    let z = zygote.vmid;
    assert_eq!(rm.vms().get(z).unwrap().vcpus, 2);
    assert_eq!(rm.mem_stats(z).unwrap().private_pages, 0x100_0000 / PAGE);
    let last = GOLDEN_BYTES / PAGE - 1;
    for p in [0, last] {
        rm.vm_write(z, GOLDEN_IPA + p * PAGE, &pattern(p)).unwrap();
    }
    assert_eq!(rm.config_image_by_name("zygote-golden"), None);
    let status = VmSetStatusReq {
        vm_status: 0,
        os_status: OS_STATUS_RUN,
        app_status: 0.into(),
    };
    call(&mut rm, z, Request::VmSetStatus(status)).unwrap();
    let (id, digest) = rm
        .config_image_by_name("zygote-golden")
        .expect("sealed at OS RUN");
    let mut want = Sha256::new();
    for p in 0..GOLDEN_BYTES / PAGE {
        want.update(if p == 0 || p == last {
            pattern(p)
        } else {
            vec![0; PAGE as usize]
        });
    }
    assert_eq!(digest, <[u8; 32]>::from(want.finalize()));
    assert_eq!(rm.golden(id).unwrap().size, GOLDEN_BYTES);
    check(&rm);
    // The template keeps running on its image: it reads it, and a write copies.
    let mut buf = vec![0; PAGE as usize];
    rm.vm_read(z, GOLDEN_IPA, &mut buf).unwrap();
    assert_eq!(buf, pattern(0));
    assert_eq!(rm.vm_write(z, GOLDEN_IPA + PAGE, &[1]).unwrap(), 1);
    // A second RUN does not seal again.
    call(&mut rm, z, Request::VmSetStatus(status)).unwrap();
    assert_eq!(rm.config_image_by_name("zygote-golden"), Some((id, digest)));

    // The app clone: the image copy-on-write at 0x80000000, quota 4096, 64 MiB demand-paged.
    let clone = launch(&mut rm, 0, 0, &clone_dtb).unwrap();
    let c = clone.vmid;
    rm.vm_read(c, GOLDEN_IPA + last * PAGE, &mut buf).unwrap();
    assert_eq!(buf, pattern(last));
    assert_eq!(rm.vm_write(c, GOLDEN_IPA + 3 * PAGE, &[9; 8]).unwrap(), 1);
    let st = rm.mem_stats(c).unwrap();
    assert_eq!(
        (
            st.golden_mapped_pages,
            st.cow_copied_pages,
            st.private_pages
        ),
        (GOLDEN_BYTES / PAGE - 1, 1, 0)
    );
    let m = rm.golden_mappings(c).next().unwrap();
    assert_eq!((m.golden(), m.cow_quota()), (id, Some(4096)));

    // app-clone-1: 256-page quota, stop-vm: the 257th copy stops the VM.
    let stop = launch(&mut rm, 3, 0, &config("vm-configs/app-clone-stop.dts")).unwrap();
    for p in 0..256 {
        rm.vm_write(stop.vmid, GOLDEN_IPA + p * PAGE, &[1]).unwrap();
    }
    assert!(rm
        .vm_write(stop.vmid, GOLDEN_IPA + 256 * PAGE, &[1])
        .is_err());
    assert_eq!(rm.vm_state(stop.vmid), Some(VmState::Exited));
    check(&rm);

    // The protected VM as shipped names the digest of 192 MiB of zeros: refused, nothing left.
    let mapped = rm.golden(id).unwrap().mappings;
    let prot = config("qemu/hlos/configs/protected-vm.dts");
    assert_eq!(
        launch(&mut rm, 4, 0, &prot).err(),
        Some(RmError::ValidateFailed)
    );
    assert_eq!(rm.golden(id).unwrap().mappings, mapped);
    // With the sealed image's digest it runs and reads the image.
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let ok = dtc(&format!(
        "/include/ \"qemu/hlos/configs/protected-vm.dts\"\n/ {{ gunyah-vm-config {{ golden {{ \
         digest = \"sha256:{hex}\"; }}; }}; }};\n"
    ));
    let protected = launch(&mut rm, 4, 0, &ok).unwrap();
    rm.vm_read(protected.vmid, GOLDEN_IPA, &mut buf).unwrap();
    assert_eq!(buf, pattern(0));
    assert_eq!(pools(&rm, protected.vmid), 1);

    // Teardown: the image goes when its template and the last VM mapping it are gone.
    teardown(&mut rm, zygote);
    assert!(rm.golden(id).is_some(), "still mapped by clones");
    for vm in [clone, stop, protected, trusted] {
        teardown(&mut rm, vm);
    }
    assert!(rm.golden(id).is_none());
    assert_eq!(rm.config_image_by_name("zygote-golden"), None);
    assert_eq!(used(&rm), before);
}

#[test]
fn a_config_the_rm_cannot_apply_fails_vm_init_and_leaves_nothing() {
    let mut rm = rm();
    let u0 = used(&rm);
    // Not a valid config (a golden CoW mapping without quota): ARGUMENT_INVALID.
    let bad = dtc(
        "/include/ \"vm-configs/app-clone.dts\"\n/ { gunyah-vm-config { golden { \
         /delete-property/ quota-pages; }; }; };\n",
    );
    assert_eq!(
        launch(&mut rm, 0, 0, &bad).err(),
        Some(RmError::ArgumentInvalid)
    );
    // A pool larger than the partition: the eager binding fails after GMEM_CREATE, which is
    // undone.
    let huge = dtc(
        "/include/ \"vm-configs/trusted-vm.dts\"\n/ { qcom,vm-config { memory { size-min = \
         <0x0 0x80000000>; }; gmem { size = <0x0 0x80000000>; }; }; };\n",
    );
    let r = launch(&mut rm, 1, 0x2d, &huge);
    assert!(r.is_err(), "{r:?}");
    assert_eq!(used(&rm), u0);
    // A DT without a config is not touched (the vCPU count comes from /cpus).
    let plain = dtc("/dts-v1/;\n/ { cpus { cpu@0 { }; cpu@1 { }; cpu@2 { }; }; };\n");
    let vm = launch(&mut rm, 2, 0, &plain).unwrap();
    assert_eq!(rm.vms().get(vm.vmid).unwrap().vcpus, 3);
    assert_eq!(pools(&rm, vm.vmid), 0);
    teardown(&mut rm, vm);
}

/// The line of the RM's state dump that starts with `label`.
fn record(rm: &Rm<SimPlatform>, label: &str) -> String {
    let s = rm.snapshot();
    let line = s.records.lines().find(|l| l.starts_with(label));
    line.unwrap_or_else(|| panic!("no {label:?} in the dump"))
        .to_string()
}

#[test]
fn vm_reset_releases_what_vm_init_applied_from_the_config() {
    let mut rm = rm();
    let before = used(&rm);
    // A zygote sealed at OS RUN, so that a protected VM has an image to map.
    let zygote = launch(&mut rm, 0, 0, &config("qemu/hlos/configs/zygote.dts")).unwrap();
    let status = VmSetStatusReq {
        vm_status: 0,
        os_status: OS_STATUS_RUN,
        app_status: 0.into(),
    };
    call(&mut rm, zygote.vmid, Request::VmSetStatus(status)).unwrap();
    let (id, digest) = rm.config_image_by_name("zygote-golden").unwrap();
    let mapped = rm.golden(id).unwrap().mappings;
    let with_zygote = used(&rm);
    let unprotected = record(&rm, "protected: ");

    // The protected VM: VM_INIT gave it a pool with its RAM bound, protection and a
    // copy-on-write mapping of the image.
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let dtb = dtc(&format!(
        "/include/ \"qemu/hlos/configs/protected-vm.dts\"\n/ {{ gunyah-vm-config {{ golden {{ \
         digest = \"sha256:{hex}\"; }}; }}; }};\n"
    ));
    let vm = launch(&mut rm, 1, 0, &dtb).unwrap();
    let v = vm.vmid;
    assert_eq!(pools(&rm, v), 1);
    assert_ne!(record(&rm, "protected: "), unprotected);
    for round in 0..2 {
        assert_eq!(rm.vm_write(v, GOLDEN_IPA, &[round]).unwrap(), 1);
        call(&mut rm, HLOS, Request::VmStop(VmStopReq::new(v, 1, 0))).unwrap();
        call(&mut rm, HLOS, Request::VmReset(VmidReq::new(v))).unwrap();
        assert_eq!(rm.vm_state(v), Some(VmState::Reset));
        // Everything the config's application created is gone: the pool (a re-init would
        // otherwise add a second one), the protection, the mapping, the copies and RAM.
        assert_eq!(
            pools(&rm, v),
            0,
            "round {round}: the config's pool outlived VM_RESET"
        );
        assert_eq!(record(&rm, "protected: "), unprotected, "round {round}");
        assert_eq!(rm.golden(id).unwrap().mappings, mapped, "round {round}");
        assert_eq!(used(&rm), with_zygote, "round {round}");
        check(&rm);
        // Re-initialised from the same config (its DT still in the image parcel): as the
        // first time, one pool.
        let cfg = VmConfigImageReq::new(v, 0, vm.image, (0, PAGE), (PAGE, dtb.len() as u64));
        call(&mut rm, HLOS, Request::VmConfigImage(cfg)).unwrap();
        call(&mut rm, HLOS, Request::VmInit(VmInitReq::new(v))).unwrap();
        call(&mut rm, HLOS, Request::VmStart(VmidReq::new(v))).unwrap();
        assert_eq!(pools(&rm, v), 1, "round {round}");
        assert_ne!(record(&rm, "protected: "), unprotected, "round {round}");
        let mut buf = vec![0; PAGE as usize];
        rm.vm_read(v, GOLDEN_IPA, &mut buf).unwrap();
        assert_eq!(
            buf,
            vec![0; PAGE as usize],
            "round {round}: the image as sealed"
        );
        check(&rm);
    }
    teardown(&mut rm, vm);
    teardown(&mut rm, zygote);
    assert_eq!(used(&rm), before);
}
