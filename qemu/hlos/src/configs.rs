//! HLOS launches the Android-like set of `vm-configs/` through RM RPC only, as a Gunyah VMM
//! does: per VM, VM_ALLOC_VMID (the config's fixed `vmid`, else a dynamic one), a mailbox
//! page shared (MEM_SHARE), this image plus the VM's config DT (compiled from the same
//! `.dts` files the host simulator runs, or their board-sized variants in `configs/`, by
//! build.rs) in an image parcel (MEM_LEND), VM_SET_ADDRESS_LAYOUT, VM_CONFIG_IMAGE, VM_INIT
//! (where the RM applies the config: vCPUs, gmem, golden mappings with quota and fault action,
//! protection), VM_GET_HYP_RESOURCES, VM_SET_BOOT_CONTEXT, VM_START. The guests run
//! `config_agent.rs`.
//!
//! The set, one VM at a time (each one's CoW faults are timed with the other CPUs idle):
//! 1. trusted-vm (fixed VMID 0x2d, eager 32 MiB, pinned to CPU 1);
//! 2. the zygote (board-sized: 16 MiB, two vCPUs): it fills its seal range with known data
//!    and reports OS status RUN, on which the RM seals its first 4 MiB into `zygote-golden`;
//! 3. app-clone-0, twice (dynamic VMIDs): the image copy-on-write at 0x80000000, quota 4096;
//!    each reads it, writes two pages (real stage-2 CoW faults) and times its own copy;
//! 4. app-clone-1 (quota 256, fault-action stop-vm): its 257th copy stops it;
//! 5. protected-vm as shipped (the digest of 192 MiB of zeros): VM_INIT refuses it
//!    (VALIDATE_FAILED) and leaves nothing; then with the sealed image's digest
//!    (`protected-vm-ok`, computed by build.rs): it runs and reads the image.
//!
//! Then VM_MEM_STATS of each (exact copies and golden pages), teardown (the RM releases the
//! golden image with its last VM), and the summary.

use gunyah_rm_abi::ext::{fault_action, fault_why};
use gunyah_rm_abi::mem::{rights, AclEntry, MemReleaseReq, SglEntry};
use gunyah_rm_abi::vm::{VmConfigImageReq, VmInitReq, VmSetAddressLayoutReq};
use gunyah_rm_abi::vm::{VmSetBootContextReq, VmStopReq, VmidReq};
use gunyah_rm_abi::{Request, RmError, VmState};

use crate::config_agent::*;
use crate::console::fail;
use crate::gic;
use crate::hlos::{image, mem_create, ok, wait_mailbox, HLOS_VMID};
use crate::layout::*;
use crate::mailbox::Mailbox;
use crate::pattern::{ZYGOTE_SEAL_IPA, ZYGOTE_SEAL_SIZE};
use crate::rpc::Rpc;
use crate::say;

macro_rules! dtb {
    ($name:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".dtb"))
    };
}

static TRUSTED_DTB: &[u8] = dtb!("trusted-vm");
static ZYGOTE_DTB: &[u8] = dtb!("zygote");
static APP_CLONE_DTB: &[u8] = dtb!("app-clone");
static APP_CLONE_STOP_DTB: &[u8] = dtb!("app-clone-stop");
static PROTECTED_DTB: &[u8] = dtb!("protected-vm");
static PROTECTED_OK_DTB: &[u8] = dtb!("protected-vm-ok");

/// Mailbox and image-parcel slots of this scene (after the hand-made scene's).
const FIRST_SLOT: usize = 8;
/// Golden image pages.
const GOLDEN_PAGES: u64 = ZYGOTE_SEAL_SIZE / 4096;

/// A VM HLOS launched from its config.
#[derive(Clone, Copy)]
struct Launched {
    name: &'static str,
    slot: usize,
    vmid: u16,
    image: u32,
    mailbox: u32,
    vcpus: u32,
}

/// The `vmid` property of the DT's config node (a trusted VM's fixed VMID), or 0.
fn fixed_vmid(dtb: &[u8]) -> u16 {
    let Ok(fdt) = fdt::Fdt::new(dtb) else {
        return 0;
    };
    ["/gunyah-vm-config", "/qcom,vm-config"]
        .iter()
        .filter_map(|n| fdt.find_node(n))
        .find_map(|n| n.property("vmid")?.as_usize())
        .map_or(0, |v| v as u16)
}

/// Launch `name` from `dtb` in `slot` with boot-context role `role`; VM_INIT's refusal is
/// returned after the VM was reset and deallocated and its parcels reclaimed.
fn launch(
    rpc: &mut Rpc,
    slot: usize,
    name: &'static str,
    dtb: &[u8],
    role: u64,
) -> Result<Launched, (u16, RmError)> {
    let want = fixed_vmid(dtb);
    let r = ok(
        rpc,
        Request::VmAllocVmid(VmidReq::new(want)),
        "VM_ALLOC_VMID",
    );
    let vmid = if want == 0 { r.word(0) as u16 } else { want };
    // The mailbox, shared read/write; the VM accepts it itself.
    let mb_ipa = MAILBOX_SRC + slot as u64 * 4096;
    Mailbox::at(mb_ipa).clear();
    let acl = [
        AclEntry::new(HLOS_VMID, rights::RW),
        AclEntry::new(vmid, rights::RW),
    ];
    let sgl = [SglEntry::new(mb_ipa, 4096)];
    let mailbox = ok(rpc, Request::MemShare(mem_create(&acl, &sgl)), "MEM_SHARE").word(0);
    // The image parcel: this image, room for .bss and the stack, then the config DT.
    let (img_start, img_loaded, img_total) = image();
    let dt_off = img_total;
    let parcel_size = (dt_off + DT_ROOM).next_multiple_of(4096);
    if parcel_size > IMAGE_SPAN || dtb.len() as u64 > DT_ROOM {
        fail(format_args!("{name}: image parcel too large"));
    }
    let src = IMAGE_SRC + slot as u64 * IMAGE_SPAN;
    // SAFETY: HLOS RAM (the staging area of this slot) and our own loaded image; no overlap.
    unsafe {
        core::ptr::copy_nonoverlapping(img_start as *const u8, src as *mut u8, img_loaded as usize);
        core::ptr::write_bytes(
            (src + img_loaded) as *mut u8,
            0,
            (parcel_size - img_loaded) as usize,
        );
        core::ptr::copy_nonoverlapping(dtb.as_ptr(), (src + dt_off) as *mut u8, dtb.len());
    }
    let acl = [AclEntry::new(vmid, rights::RWX)];
    let sgl = [SglEntry::new(src, parcel_size)];
    let image = ok(
        rpc,
        Request::MemLend(mem_create(&acl, &sgl)),
        "MEM_LEND (image)",
    )
    .word(0);
    let layout = VmSetAddressLayoutReq::new(vmid, 0, img_start, parcel_size);
    ok(
        rpc,
        Request::VmSetAddressLayout(layout),
        "VM_SET_ADDRESS_LAYOUT",
    );
    let cfg = VmConfigImageReq::new(vmid, 0, image, (0, img_total), (dt_off, dtb.len() as u64));
    ok(rpc, Request::VmConfigImage(cfg), "VM_CONFIG_IMAGE");
    let mut vm = Launched {
        name,
        slot,
        vmid,
        image,
        mailbox,
        vcpus: 0,
    };
    match rpc.call(&Request::VmInit(VmInitReq::new(vmid))) {
        Ok(r) if r.err == RmError::Ok => {}
        Ok(r) => {
            teardown(rpc, &vm, false);
            return Err((vmid, r.err));
        }
        Err(e) => fail(format_args!("{name}: VM_INIT: no reply ({e:?})")),
    }
    // One VIRTUAL_CPU resource per vCPU its config gave it.
    let res = ok(
        rpc,
        Request::VmGetHypResources(VmidReq::new(vmid)),
        "VM_GET_HYP_RESOURCES",
    );
    vm.vcpus = res.word(0);
    for (reg, value) in [(1, mailbox as u64), (2, slot as u64), (3, role)] {
        let ctx = VmSetBootContextReq::new(vmid, 0, reg, value);
        ok(rpc, Request::VmSetBootContext(ctx), "VM_SET_BOOT_CONTEXT");
    }
    ok(rpc, Request::VmStart(VmidReq::new(vmid)), "VM_START");
    Ok(vm)
}

/// VM_STOP (if `running`), VM_RESET, MEM_RECLAIM of its parcels, VM_DEALLOC_VMID.
fn teardown(rpc: &mut Rpc, vm: &Launched, running: bool) {
    if running {
        let stop = VmStopReq::new(vm.vmid, 1, 0);
        ok(rpc, Request::VmStop(stop), "VM_STOP");
    }
    ok(rpc, Request::VmReset(VmidReq::new(vm.vmid)), "VM_RESET");
    for h in [vm.image, vm.mailbox] {
        let r = MemReleaseReq::new(h, 0);
        ok(rpc, Request::MemReclaim(r), "MEM_RECLAIM");
    }
    ok(
        rpc,
        Request::VmDeallocVmid(VmidReq::new(vm.vmid)),
        "VM_DEALLOC_VMID",
    );
}

fn must(r: Result<Launched, (u16, RmError)>, name: &str) -> Launched {
    r.unwrap_or_else(|(v, e)| fail(format_args!("{name} (VM {v}): VM_INIT refused: {e:?}")))
}

/// VM_MEM_STATS: (golden pages mapped, CoW copies).
fn mem_stats(rpc: &mut Rpc, vmid: u16) -> (u64, u64) {
    let st = ok(rpc, Request::VmMemStats(VmidReq::new(vmid)), "VM_MEM_STATS");
    let w = |i| u64::from(st.word(i)) | u64::from(st.word(i + 1)) << 32;
    (w(2), w(4))
}

/// The scene; everything it launched is gone when it returns.
pub fn scene(rpc: &mut Rpc) {
    let mut slot = FIRST_SLOT;
    let mut next = || {
        slot += 1;
        slot - 1
    };
    // 1. The trusted VM.
    let trusted = must(
        launch(rpc, next(), "trusted-vm", TRUSTED_DTB, ROLE_TRUSTED),
        "trusted-vm",
    );
    wait_mailbox(trusted.slot, trusted.vmid);
    say!(
        "vm-configs: trusted-vm is VM {:#x} (the fixed VMID of its config), {} vCPU, its 32 MiB \
         populated at VM_INIT read and written; past them its accesses abort",
        trusted.vmid,
        trusted.vcpus
    );
    // 2. The zygote, sealed at OS RUN.
    let zygote = must(
        launch(rpc, next(), "zygote", ZYGOTE_DTB, ROLE_ZYGOTE),
        "zygote",
    );
    wait_mailbox(zygote.slot, zygote.vmid);
    say!(
        "vm-configs: zygote VM {} ({} vCPUs from its config) filled its RAM and reported OS \
         status RUN: the RM sealed its first {GOLDEN_PAGES} pages into zygote-golden and mapped \
         them back copy-on-write; its own write after the seal copied a page",
        zygote.vmid,
        zygote.vcpus
    );
    // 3. Two app clones, one at a time.
    let mut clones = [zygote; 2];
    let mut timing = [[0u64; 6]; 2];
    for (k, c) in clones.iter_mut().enumerate() {
        *c = must(
            launch(rpc, next(), "app-clone-0", APP_CLONE_DTB, ROLE_APP_CLONE),
            "app-clone-0",
        );
        timing[k] = wait_mailbox(c.slot, c.vmid);
    }
    say!(
        "vm-configs: app-clone-0 launched twice (VMs {} and {}): each read zygote-golden at \
         0x80000000 as sealed and wrote two of its pages (stage-2 CoW faults into its own gmem)",
        clones[0].vmid,
        clones[1].vmid
    );
    // 4. app-clone-1: quota 256, stop-vm. Its 257th copy is not served: the RM stops it and
    // tells HLOS, its owner, QUOTA_EXHAUSTED, then FAULT_UNSERVED (quota exhausted, VM
    // stopped), then VM_EXITED; HLOS waits until VM_GET_STATE says EXITED (the replies come
    // after those notifications, in order, on the same queue).
    let unserved_before = rpc.fault_unserved;
    rpc.last_unserved = None;
    rpc.last_quota = None;
    let stopped = must(
        launch(
            rpc,
            next(),
            "app-clone-1",
            APP_CLONE_STOP_DTB,
            ROLE_QUOTA_CLONE,
        ),
        "app-clone-1",
    );
    let mb = Mailbox::at(MAILBOX_SRC + stopped.slot as u64 * 4096);
    let mut waits = 0u64;
    loop {
        if let Some((status, r)) = mb.poll() {
            fail(format_args!(
                "app-clone-1 (VM {}) went past its quota: check {status} ({:#x})",
                stopped.vmid, r[0]
            ));
        }
        let st = ok(
            rpc,
            Request::VmGetState(VmidReq::new(stopped.vmid)),
            "VM_GET_STATE",
        );
        if st.word(0) & 0xFF == u32::from(VmState::Exited.raw()) {
            break;
        }
        waits += 1;
        if waits > 100_000 {
            fail(format_args!(
                "app-clone-1 (VM {}) was never stopped (state {:#x}, {} pages copied)",
                stopped.vmid,
                st.word(0),
                mb.get(MB_PROGRESS)
            ));
        }
        gic::wait_us(1000);
    }
    let progress = mb.get(MB_PROGRESS);
    if progress != QUOTA_PAGES {
        fail(format_args!(
            "app-clone-1 copied {progress} pages before it was stopped, want {QUOTA_PAGES}"
        ));
    }
    // The app-clone configs map the image where the zygote sealed it from.
    let over = ZYGOTE_SEAL_IPA + QUOTA_PAGES * 4096;
    let le = |b: &[u8]| b.iter().rev().fold(0u64, |v, x| v << 8 | u64::from(*x));
    match rpc.last_quota {
        Some(q)
            if le(&q[0..2]) == u64::from(stopped.vmid)
                && le(&q[8..16]) == over
                && le(&q[16..24]) == QUOTA_PAGES => {}
        q => fail(format_args!(
            "app-clone-1 (VM {}): QUOTA_EXHAUSTED for VM {}, IPA {over:#x}, quota \
             {QUOTA_PAGES} expected, got {q:?}",
            stopped.vmid, stopped.vmid
        )),
    }
    match rpc.last_unserved {
        Some(u)
            if rpc.fault_unserved == unserved_before + 1
                && le(&u[0..2]) == u64::from(stopped.vmid)
                && u[2] == fault_why::QUOTA_EXHAUSTED
                && u[3] == fault_action::VM_STOPPED
                && le(&u[8..16]) == over => {}
        u => fail(format_args!(
            "app-clone-1 (VM {}): one FAULT_UNSERVED (quota exhausted, VM stopped, IPA \
             {over:#x}) expected, got {} ({u:?})",
            stopped.vmid,
            rpc.fault_unserved - unserved_before
        )),
    }
    say!(
        "vm-configs: app-clone-1 (VM {}) copied its quota of {QUOTA_PAGES} pages; its next \
         write was not served: the RM stopped it (fault-action stop-vm, EXITED) and told HLOS \
         QUOTA_EXHAUSTED and FAULT_UNSERVED (quota exhausted, VM stopped) for IPA {over:#x}",
        stopped.vmid
    );
    // 5. The protected VM: as shipped, refused; with the sealed image's digest, it runs.
    let protected_slot = next();
    let refused = match launch(
        rpc,
        protected_slot,
        "protected-vm",
        PROTECTED_DTB,
        ROLE_PROTECTED,
    ) {
        Err((v, RmError::ValidateFailed)) => v,
        Err((v, e)) => fail(format_args!("protected-vm (VM {v}) refused with {e:?}")),
        Ok(vm) => fail(format_args!(
            "protected-vm (VM {}) ran with a wrong digest",
            vm.vmid
        )),
    };
    say!(
        "vm-configs: protected-vm (VM {refused}) naming another digest than zygote-golden's: \
         VM_INIT refused it (VALIDATE_FAILED); reset, deallocated, nothing left"
    );
    let protected = must(
        launch(
            rpc,
            protected_slot,
            "protected-vm",
            PROTECTED_OK_DTB,
            ROLE_PROTECTED,
        ),
        "protected-vm",
    );
    wait_mailbox(protected.slot, protected.vmid);
    say!(
        "vm-configs: protected-vm with zygote-golden's digest (VM {}) runs: read the image, \
         copied one page",
        protected.vmid
    );

    // VM_MEM_STATS: exactly the copies each made; the rest of the image stays shared.
    let expect = [
        (zygote, 1),
        (clones[0], 2),
        (clones[1], 2),
        (stopped, QUOTA_PAGES),
        (protected, 1),
    ];
    let (mut shared, mut copied) = (0, 0);
    for (vm, want) in expect {
        let (golden, copies) = mem_stats(rpc, vm.vmid);
        if copies != want || golden + copies != GOLDEN_PAGES {
            fail(format_args!(
                "{} (VM {}): VM_MEM_STATS says {golden} golden pages and {copies} copies, want \
                 {} and {want}",
                vm.name,
                vm.vmid,
                GOLDEN_PAGES - want
            ));
        }
        shared += golden;
        copied += copies;
    }
    // Without sharing, each of these VMs would hold the whole image; with it, one image and
    // the copies exist.
    let saved = expect.len() as u64 * GOLDEN_PAGES - GOLDEN_PAGES - copied;

    let all = [trusted, zygote, clones[0], clones[1], stopped, protected];
    for vm in &all {
        teardown(rpc, vm, vm.vmid != stopped.vmid);
    }
    say!(
        "vm-configs: stopped, reset and deallocated the six VMs, reclaimed their parcels; the RM \
         released zygote-golden with the last VM that mapped it"
    );
    let [[f0, g0, n0, ..], [f1, g1, n1, ..]] = timing;
    say!(
        "vm-configs: EL2 instructions per CoW fault (trap to ERET, RM included): first in the \
         2 MiB golden block, which it splits: {f0} (VM {}), {f1} (VM {}); next in that block: \
         {n0}, {n1}; the guest's own 4 KiB copy at EL1: {g0}, {g1}",
        clones[0].vmid,
        clones[1].vmid
    );
    say!(
        "vm-configs: summary: VMs launched {}; launches refused 1; golden image zygote-golden \
         {GOLDEN_PAGES} pages sealed at OS RUN; golden pages shared {shared} by {} VMs; pages \
         copied {copied}; memory saved {} KiB; attacks stopped 2 (a wrong digest, a quota \
         overrun)",
        all.len(),
        expect.len(),
        saved * 4
    );
}
