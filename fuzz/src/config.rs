//! The `vm_config` target: device-tree blobs into the VM-config loader and into a VM.
//!
//! An input that starts with the FDT magic (`d0 0d fe ed`) is one blob; it goes through
//! [`gunyah_rm::config::parse`] (and [`gunyah_rm::config::validate_set`] when it parses) and,
//! as a guest's DT, through the RM: HLOS lends it to a new VM in a parcel, then VM_CONFIG_IMAGE,
//! VM_INIT, VM_START, VM_STOP, VM_RESET and VM_DEALLOC_VMID, with the packet checks of the
//! `rm_dispatch` target after every request and the isolation checker at the end. Any other input is `u8 n` then `n` blobs of
//! `u16 len, len bytes`, parsed and validated as one set.
//!
//! Checked besides "no panic": every error names a node path (starting with `/`) and a reason;
//! a set's error names one of its configs; a plan holds each VM config once and puts every
//! template before the VMs that map its image.

use gunyah_rm::config::{parse, validate_set, Config, ConfigError};
use gunyah_rm::platform::PhysMem;
use gunyah_rm_abi::mem::{AclEntry, MemCreate, SglEntry};
use gunyah_rm_abi::vm::{VmConfigImageReq, VmInitReq, VmStopReq, VmidReq};
use gunyah_rm_abi::Request;

use crate::dispatch::{encode, msg, World, FREE_RAM, HLOS};
use crate::input::Input;

/// The FDT header magic.
const FDT_MAGIC: [u8; 4] = [0xd0, 0x0d, 0xfe, 0xed];
/// Most DT bytes put into a VM (four pages of HLOS RAM).
const MAX_GUEST_DT: usize = 0x4000;

/// Run one input.
pub fn run(data: &[u8]) {
    if data.starts_with(&FDT_MAGIC) {
        if let Ok(cfg) = checked_parse(data) {
            set(vec![cfg]);
        }
        guest_dt(data);
        return;
    }
    let mut inp = Input::new(data);
    let n = inp.u8() % 8;
    let mut cfgs = Vec::new();
    for _ in 0..n {
        let len = inp.u16() as usize;
        if let Ok(c) = checked_parse(inp.bytes(len)) {
            cfgs.push(c);
        }
    }
    set(cfgs);
}

fn check_error(e: &ConfigError) {
    assert!(e.node.starts_with('/'), "error without a node path: {e:?}");
    assert!(!e.reason.is_empty(), "error without a reason: {e:?}");
    let _ = e.to_string();
}

fn checked_parse(blob: &[u8]) -> Result<Config, ConfigError> {
    let r = parse(blob);
    if let Err(e) = &r {
        check_error(e);
    }
    if let Ok(fdt) = gunyah_rm::config::checked_fdt(blob) {
        let _ = gunyah_rm::config::cpu_count(&fdt);
    }
    r
}

fn set(cfgs: Vec<Config>) {
    let vms = cfgs.iter().filter(|c| matches!(c, Config::Vm(_))).count();
    match validate_set(&cfgs) {
        Ok(plan) => {
            assert_eq!(plan.vms.len(), vms, "the plan has every VM once");
            let mut sources: Vec<usize> = plan.vms.iter().map(|v| v.source).collect();
            sources.sort_unstable();
            sources.dedup();
            assert_eq!(sources.len(), vms);
            for (i, v) in plan.vms.iter().enumerate() {
                assert!(v.source < cfgs.len());
                for g in &v.golden {
                    assert!(g.template < i, "a template after a VM mapping its image");
                }
            }
        }
        Err(e) => {
            assert!(
                e.config < cfgs.len().max(1),
                "error names config {}",
                e.config
            );
            check_error(&e.error);
        }
    }
}

/// The blob as a guest's DT: lent to a new VM, VM_CONFIG_IMAGE, VM_INIT, VM_START, then torn
/// down again.
fn guest_dt(dtb: &[u8]) {
    let dtb = &dtb[..dtb.len().min(MAX_GUEST_DT)];
    let mut w = World::new();
    let Some(vmid) = w.call_for_id(HLOS, &msg(&Request::VmAllocVmid(VmidReq::new(0)))) else {
        panic!("VM_ALLOC_VMID failed on a fresh world");
    };
    let vmid = vmid as u16;
    assert!(w.rm.platform_mut().write(FREE_RAM, dtb));
    let size = (dtb.len() as u64).div_ceil(0x1000).max(1) * 0x1000;
    let acl = [AclEntry::new(vmid, 7)];
    let sgl = [SglEntry::new(FREE_RAM, size)];
    let lend = Request::MemLend(MemCreate::normal(&acl, &sgl));
    let Some(img) = w.call_for_id(HLOS, &msg(&lend)) else {
        panic!("lending the DT failed");
    };
    let cfg = VmConfigImageReq {
        vmid: vmid.into(),
        auth_mech: 0.into(),
        mem_handle: img.into(),
        image_offset: 0.into(),
        image_size: 0.into(),
        dtb_offset: 0.into(),
        dtb_size: (dtb.len() as u64).into(),
    };
    let v = VmidReq::new(vmid);
    for req in [
        Request::VmConfigImage(cfg),
        Request::VmInit(VmInitReq::new(vmid)),
        Request::VmStart(v),
        Request::VmStop(VmStopReq::new(vmid, 1, 0)),
        Request::VmReset(v),
        Request::VmDeallocVmid(v),
    ] {
        let payload = encode(&req);
        w.send(HLOS, req.msg_id(), &payload, usize::MAX);
        w.settle();
    }
    w.check();
}

/// Seeds: guest DTs of 1 and 4 CPUs and a truncated one (the configs of `vm-configs/` and
/// `tests/configs/` are added by `cargo xtask fuzz`, compiled with dtc).
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let one = crate::dispatch::tiny_dtb(1);
    let four = crate::dispatch::tiny_dtb(4);
    let cut = one[..one.len() - 8].to_vec();
    let mut set = vec![2u8];
    for b in [&one, &four] {
        set.extend_from_slice(&(b.len() as u16).to_le_bytes());
        set.extend_from_slice(b);
    }
    vec![
        ("guest-dt-1cpu".into(), one),
        ("guest-dt-4cpu".into(), four),
        ("guest-dt-cut".into(), cut),
        ("set-of-two".into(), set),
    ]
}
