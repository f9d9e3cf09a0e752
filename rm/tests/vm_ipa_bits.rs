//! A VM config's `ipa-bits`: the VM's stage 2 is built for its own IPA size (one root table page
//! at 39 bits where the platform's 40 bits need two), everything it maps must lie below
//! `1 << ipa-bits` (refused with the RM's error code, never a panic), and a config the RM cannot
//! apply changes nothing. Launched through RM RPC with the config in the VM's DT (the RM applies
//! it at VM_INIT, `launch::apply`), on the simulator's 40-bit platform.

use gunyah_rm::launch::Client;
use gunyah_rm::platform::AddressSpaces;
use gunyah_rm::sim::{sim_rm, SimConfig, SimPlatform};
use gunyah_rm::stage2_spaces::Stage2Backed;
use gunyah_rm::vm::VmState;
use gunyah_rm::{PhysMem, Rm};
use gunyah_rm_abi::ext::{bind_flags, GmemBindReq, GmemCreateReq};
use gunyah_rm_abi::mem::{
    accept_flags, rights, trans_type, AclEntry, MemAccept, MemCreate, MemReleaseReq, SglEntry,
};
use gunyah_rm_abi::vm::{VmConfigImageReq, VmInitReq, VmSetAddressLayoutReq, VmStopReq, VmidReq};
use gunyah_rm_abi::{Request, RmError};

#[path = "common/dtc.rs"]
mod dtc_tool;
use dtc_tool::dtc;

const HLOS: u16 = 3;
const PAGE: u64 = 4096;
/// HLOS RAM where the tests build image parcels: parcel `k` at `STAGING + k * 64 KiB`.
const STAGING: u64 = 0x7000_0000;
/// One past the highest IPA of a 39-bit space.
const IPA39: u64 = 1 << 39;

fn call(rm: &mut Rm<SimPlatform>, from: u16, req: Request<'_>) -> Result<Vec<u8>, RmError> {
    Client::new().call(rm, from, &req)
}

fn word(r: &[u8]) -> u32 {
    u32::from_le_bytes(r[..4].try_into().unwrap())
}

fn rm() -> Rm<SimPlatform> {
    let sim = SimConfig {
        partition_pages: 16384,
        ..SimConfig::default()
    };
    sim_rm(sim, gunyah_rm::RmConfig::default()).unwrap()
}

/// A VM config with 2 MiB of eager RAM at `ram`, and `extra` in its config node.
fn config(extra: &str, ram: u64) -> Vec<u8> {
    dtc(&format!(
        r#"/dts-v1/;
/ {{ #address-cells = <2>; #size-cells = <2>;
    gunyah-vm-config {{
        image-name = "ipa-test";
        {extra}
        memory {{ base-address = <{:#x} {:#x}>; size-min = <0x0 0x200000>; }};
        vcpus {{ affinity-map = <0>; }};
        vdevices {{ rm-rpc {{ vdevice-type = "rm-rpc"; }}; }};
    }};
}};"#,
        ram >> 32,
        ram & 0xffff_ffff
    ))
}

/// HLOS lends `pages` pages of its RAM at parcel slot `k` to `vmid`; the handle.
fn lend(rm: &mut Rm<SimPlatform>, k: u64, vmid: u16, pages: u64) -> u32 {
    let acl = [AclEntry::new(vmid, rights::RWX)];
    let sgl = [SglEntry::new(STAGING + k * 0x1_0000, pages * PAGE)];
    let lend = MemCreate::normal(&acl, &sgl);
    word(&call(rm, HLOS, Request::MemLend(lend)).unwrap())
}

/// VM_ALLOC_VMID, then the image parcel with `dtb` lent and VM_CONFIG_IMAGE: (VMID, parcel).
fn configure(rm: &mut Rm<SimPlatform>, k: u64, dtb: &[u8]) -> (u16, u32) {
    let r = call(rm, HLOS, Request::VmAllocVmid(VmidReq::new(0))).unwrap();
    let vmid = word(&r) as u16;
    assert!(rm.platform_mut().write(STAGING + k * 0x1_0000 + PAGE, dtb));
    let image = lend(rm, k, vmid, 16);
    let cfg = VmConfigImageReq::new(vmid, 0, image, (0, PAGE), (PAGE, dtb.len() as u64));
    call(rm, HLOS, Request::VmConfigImage(cfg)).unwrap();
    (vmid, image)
}

fn init(rm: &mut Rm<SimPlatform>, vmid: u16) -> Result<Vec<u8>, RmError> {
    call(rm, HLOS, Request::VmInit(VmInitReq::new(vmid)))
}

/// `vmid`'s IPA size in bits and its stage-2 tables per level (0..=3).
fn tables(rm: &Rm<SimPlatform>, vmid: u16) -> (u8, [usize; 4]) {
    let s = rm.platform().stage2().get(vmid).expect("the VM's space");
    let mut levels = [0; 4];
    s.for_each_table(&mut |_, level| levels[level as usize] += 1);
    (s.geometry().ipa_bits(), levels)
}

/// Stage-2 table pages in the partition.
fn table_pages(rm: &Rm<SimPlatform>) -> u64 {
    rm.platform().partition_usage().tables
}

/// MEM_ACCEPT of parcel `handle` by `vmid` at `ipa`.
fn accept_at(rm: &mut Rm<SimPlatform>, vmid: u16, handle: u32, ipa: u64, size: u64) -> RmError {
    let sgl = [SglEntry::new(ipa, size)];
    let req = Request::MemAccept(MemAccept {
        handle,
        mem_type: 0,
        trans_type: trans_type::LEND,
        flags: accept_flags::DONE,
        label: 0,
        acl: &[],
        map_vmid: 0,
        sgl: &sgl,
        attrs: &[],
    });
    call(rm, vmid, req).err().unwrap_or(RmError::Ok)
}

#[test]
fn a_39_bit_vm_has_one_root_page_and_nothing_maps_at_or_above_2_pow_39() {
    let mut rm = rm();
    let (v, _) = configure(&mut rm, 0, &config("ipa-bits = <39>;", 0x8000_0000));
    // Until VM_INIT applies the config the VM has the platform's 40 bits: two root pages.
    assert_eq!(tables(&rm, v), (40, [0, 2, 0, 0]));
    assert_eq!(rm.platform().vm_ipa_limit(v), 1 << 40);
    init(&mut rm, v).unwrap();
    let (bits, levels) = tables(&rm, v);
    assert_eq!((bits, levels[1]), (39, 1), "one level-1 root page");
    assert_eq!(rm.platform().vm_ipa_limit(v), IPA39);
    assert_eq!(
        rm.platform().ipa_limit(),
        1 << 40,
        "the platform's is unchanged"
    );
    call(&mut rm, HLOS, Request::VmStart(VmidReq::new(v))).unwrap();
    assert_eq!(rm.vm_state(v), Some(VmState::Running));

    // A 40-bit VM beside it (no `ipa-bits`): the same IPAs are fine there.
    let (w, _) = configure(&mut rm, 1, &config("", 0x8000_0000));
    init(&mut rm, w).unwrap();
    assert_eq!(tables(&rm, w).0, 40);

    // MEM_ACCEPT at or across 2^39: ARGUMENT_INVALID, and the parcel stays unaccepted.
    let h = lend(&mut rm, 2, v, 2);
    let before = table_pages(&rm);
    for (ipa, size) in [
        (IPA39, 2 * PAGE),
        (IPA39 - PAGE, 2 * PAGE),
        (1 << 40, 2 * PAGE),
    ] {
        assert_eq!(
            accept_at(&mut rm, v, h, ipa, size),
            RmError::ArgumentInvalid,
            "accept at {ipa:#x}"
        );
    }
    assert_eq!(table_pages(&rm), before);
    assert_eq!(rm.platform().query(v, IPA39 - 2 * PAGE), None);
    // Right below it, it is accepted.
    assert_eq!(
        accept_at(&mut rm, v, h, IPA39 - 2 * PAGE, 2 * PAGE),
        RmError::Ok
    );
    assert!(rm.platform().query(v, IPA39 - PAGE).is_some());
    // The 40-bit VM accepts at 2^39.
    let h2 = lend(&mut rm, 3, w, 2);
    assert_eq!(accept_at(&mut rm, w, h2, IPA39, 2 * PAGE), RmError::Ok);

    // GMEM_BIND at 2^39 into the 39-bit VM: ARGUMENT_INVALID; below it, bound.
    let r = call(
        &mut rm,
        HLOS,
        Request::GmemCreate(GmemCreateReq::new(4 << 20, 0, v)),
    )
    .unwrap();
    let pool = word(&r);
    let bind = |ipa| Request::GmemBind(GmemBindReq::new(pool, v, 6, 0, 0, ipa, 2 << 20));
    let before = table_pages(&rm);
    assert_eq!(
        call(&mut rm, HLOS, bind(IPA39)).err(),
        Some(RmError::ArgumentInvalid)
    );
    assert_eq!(table_pages(&rm), before);
    call(&mut rm, HLOS, bind(IPA39 - (4 << 20))).unwrap();

    // VM_RESET gives the VM the platform's size back; a VM_INIT from a config without
    // `ipa-bits` then leaves it there.
    call(&mut rm, HLOS, Request::VmStop(VmStopReq::new(v, 1, 0))).unwrap();
    call(&mut rm, HLOS, Request::VmReset(VmidReq::new(v))).unwrap();
    assert_eq!(tables(&rm, v), (40, [0, 2, 0, 0]));
    assert!(rm.check_isolation().is_empty());
}

/// A VM configured with `dtb` whose VM_INIT must fail with `want` and leave its address space
/// and the partition's table pages as they were.
fn refused(
    rm: &mut Rm<SimPlatform>,
    k: u64,
    dtb: &[u8],
    before_init: &dyn Fn(&mut Rm<SimPlatform>, u16),
    want: RmError,
) {
    let (v, image) = configure(rm, k, dtb);
    before_init(rm, v);
    let (space, pages) = (tables(rm, v), table_pages(rm));
    assert_eq!(init(rm, v).err(), Some(want));
    assert_eq!(rm.vm_state(v), Some(VmState::InitFailed));
    assert_eq!(tables(rm, v), space, "the VM's space is unchanged");
    assert_eq!(table_pages(rm), pages, "no table page taken or freed");
    assert_eq!(rm.platform().vm_ipa_limit(v), 1 << 40);
    call(rm, HLOS, Request::VmReset(VmidReq::new(v))).unwrap();
    call(rm, HLOS, Request::VmDeallocVmid(VmidReq::new(v))).unwrap();
    call(rm, HLOS, Request::MemReclaim(MemReleaseReq::new(image, 0))).unwrap();
}

#[test]
fn an_ipa_bits_the_rm_cannot_apply_fails_vm_init_and_changes_nothing() {
    let mut rm = rm();
    let nothing = |_: &mut Rm<SimPlatform>, _: u16| {};
    // Above the platform's 40 bits.
    let above = config("ipa-bits = <41>;", 0x8000_0000);
    refused(&mut rm, 0, &above, &nothing, RmError::ArgumentInvalid);
    // 32 bits, but the RAM at 4 GiB: GMEM_BIND refuses it, the size goes back to 40.
    let ram_beyond = config("ipa-bits = <32>;", 0x1_0000_0000);
    refused(&mut rm, 1, &ram_beyond, &nothing, RmError::ArgumentInvalid);
    // 39 bits, but the VMM placed the image at 2^39 (VM_SET_ADDRESS_LAYOUT).
    let at39 = config("ipa-bits = <39>;", 0x8000_0000);
    let layout = |rm: &mut Rm<SimPlatform>, v: u16| {
        let r = VmSetAddressLayoutReq {
            vmid: v.into(),
            reserved: 0.into(),
            range_id: 0.into(),
            base: IPA39.into(),
            size: (16 * PAGE).into(),
        };
        call(rm, HLOS, Request::VmSetAddressLayout(r)).unwrap();
    };
    refused(&mut rm, 2, &at39, &layout, RmError::ArgumentInvalid);
    // 39 bits, but the VMM bound memory into the VM before VM_INIT, eagerly (mapped) or
    // demand-paged (nothing in the tables yet): its space is not rebuilt (MEM_INUSE).
    for (k, flags) in [(3, 0), (4, bind_flags::DEMAND_PAGED)] {
        let bound = |rm: &mut Rm<SimPlatform>, v: u16| {
            let r = call(
                rm,
                HLOS,
                Request::GmemCreate(GmemCreateReq::new(2 << 20, 0, v)),
            );
            let b = GmemBindReq::new(word(&r.unwrap()), v, 6, flags, 0, 0x1000_0000, 2 << 20);
            call(rm, HLOS, Request::GmemBind(b)).unwrap();
        };
        refused(&mut rm, k, &at39, &bound, RmError::MemInuse);
    }
    assert!(rm.check_isolation().is_empty());
}

#[test]
fn only_the_vms_owner_sets_its_ipa_bits_and_only_before_it_runs() {
    let mut rm = rm();
    let (v, _) = configure(&mut rm, 0, &config("", 0x8000_0000));
    assert_eq!(rm.vm_set_ipa_bits(v, v, 39), Err(RmError::VmidInvalid));
    assert_eq!(
        rm.vm_set_ipa_bits(HLOS, v, 31),
        Err(RmError::ArgumentInvalid)
    );
    assert_eq!(
        rm.vm_set_ipa_bits(HLOS, v, 41),
        Err(RmError::ArgumentInvalid)
    );
    assert_eq!(tables(&rm, v), (40, [0, 2, 0, 0]));
    // Smaller is not always fewer pages: 32 bits start at level 2, four concatenated roots.
    assert_eq!(rm.vm_set_ipa_bits(HLOS, v, 32), Ok(40));
    assert_eq!(tables(&rm, v), (32, [0, 0, 4, 0]));
    assert_eq!(rm.vm_set_ipa_bits(HLOS, v, 35), Ok(32));
    assert_eq!(tables(&rm, v), (35, [0, 1, 0, 0]));
    assert_eq!(rm.vm_set_ipa_bits(HLOS, v, 40), Ok(35));
    init(&mut rm, v).unwrap();
    call(&mut rm, HLOS, Request::VmStart(VmidReq::new(v))).unwrap();
    assert_eq!(rm.vm_set_ipa_bits(HLOS, v, 39), Err(RmError::VmState));
    assert_eq!(tables(&rm, v).0, 40);
}
