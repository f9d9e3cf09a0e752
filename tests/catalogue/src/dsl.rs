//! The words cases are written in: payload layouts (spec §3, §5.5, §9 and the extension's
//! layouts in `gunyah_rm_abi::ext` docs), notification bodies, and the usual sequences
//! (bring a VM up to a state, as HLOS does).
//!
//! Memory: cases use HLOS RAM only at `ram + offset` ([`ram`]) below [`IMAGE_AREA`], and
//! guest IPAs at `gw + offset` ([`gw`]). VM images are staged in per-slot areas above
//! `IMAGE_AREA`.

use alloc::vec::Vec;

use crate::case::{Case, Step, Want};
use crate::ids::{self, err, st};
use crate::tmpl::{at, Tmpl, Val, Var};

/// Offset in the scratch area where image slots start (cases use `0..IMAGE_AREA`).
pub const IMAGE_AREA: u64 = 32 << 20;
/// 4 KiB.
pub const PAGE: u64 = 0x1000;
/// 2 MiB.
pub const MIB2: u64 = 0x20_0000;

/// HLOS scratch RAM at `off`.
pub fn ram(off: u64) -> Val {
    at("ram", off)
}

/// The guest window at `off`.
pub fn gw(off: u64) -> Val {
    at("gw", off)
}

/// A VM a case creates, with the names of its variables and its image slot.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    /// Its VMID.
    pub vm: Var,
    /// Its image parcel handle.
    pub img: Var,
    /// Bytes of the image parcel.
    pub size: Var,
    /// Image bytes.
    pub image_size: Var,
    /// DT offset.
    pub dtb_off: Var,
    /// DT size.
    pub dtb_size: Var,
    /// Index of its image area.
    pub index: u64,
}

impl Slot {
    /// Where its image is staged in HLOS RAM.
    pub fn image_at(&self) -> Val {
        ram(IMAGE_AREA + self.index * crate::IMAGE_ROOM)
    }
    /// Its VMID as a value.
    pub fn id(&self) -> Val {
        Val::V(self.vm, 0)
    }
}

macro_rules! slots {
    ($($name:ident $s:literal $i:literal),*) => {$(
        #[doc = concat!("VM slot `", $s, "`.")]
        pub const $name: Slot = Slot {
            vm: $s,
            img: concat!($s, ".img"),
            size: concat!($s, ".size"),
            image_size: concat!($s, ".image_size"),
            dtb_off: concat!($s, ".dtb_off"),
            dtb_size: concat!($s, ".dtb_size"),
            index: $i,
        };
    )*};
}
slots!(T "T" 0, U "U" 1, W "W" 2, X "X" 3, Y "Y" 4, Z "Z" 5);

// ---- payloads ----

/// `u16 vmid, u16 reserved`.
pub fn vmid_req(vm: impl Into<Val>) -> Tmpl {
    Tmpl::new().u16(vm).u16(0u16)
}

/// A list header `u16 count, u16 half`.
fn list(n: usize, half: u16) -> Tmpl {
    Tmpl::new().u16(n as u16).u16(half)
}

/// An ACL list.
pub fn acl(entries: &[(Val, u8)]) -> Tmpl {
    let mut t = list(entries.len(), 0);
    for (vm, r) in entries {
        t = t.u16(*vm).u8(*r).u8(0u8);
    }
    t
}

/// An SGL list with its second half-word.
pub fn sgl_half(entries: &[(Val, Val)], half: u16) -> Tmpl {
    let mut t = list(entries.len(), half);
    for (ipa, size) in entries {
        t = t.u64(*ipa).u64(*size);
    }
    t
}

/// An SGL list.
pub fn sgl(entries: &[(Val, Val)]) -> Tmpl {
    sgl_half(entries, 0)
}

/// An attr list.
pub fn attrs(entries: &[(u16, Val)]) -> Tmpl {
    let mut t = list(entries.len(), 0);
    for (a, vm) in entries {
        t = t.u16(*a).u16(*vm);
    }
    t
}

/// MEM_SHARE/LEND/DONATE (§3.1), with an empty attr list.
pub fn create(flags: u8, label: u32, a: &[(Val, u8)], s: &[(Val, Val)]) -> Tmpl {
    create_full(0, flags, label, a, s, &[])
}

/// MEM_SHARE/LEND/DONATE with every field.
pub fn create_full(
    mem_type: u8,
    flags: u8,
    label: u32,
    a: &[(Val, u8)],
    s: &[(Val, Val)],
    at: &[(u16, Val)],
) -> Tmpl {
    Tmpl::new()
        .u8(mem_type)
        .u8(0u8)
        .u8(flags)
        .u8(0u8)
        .u32(label)
        .then(acl(a))
        .then(sgl(s))
        .then(attrs(at))
}

/// MEM_ACCEPT (§3.5).
#[allow(clippy::too_many_arguments)]
pub fn accept_full(
    h: impl Into<Val>,
    mem_type: u8,
    trans: u8,
    flags: u8,
    label: u32,
    a: &[(Val, u8)],
    s: &[(Val, Val)],
    map_vmid: u16,
    at: &[(u16, Val)],
) -> Tmpl {
    Tmpl::new()
        .u32(h)
        .u8(mem_type)
        .u8(trans)
        .u8(flags)
        .u8(0u8)
        .u32(label)
        .then(acl(a))
        .then(sgl_half(s, map_vmid))
        .then(attrs(at))
}

/// MEM_ACCEPT with DONE, letting the RM pick the IPA.
pub fn accept(h: impl Into<Val>, trans: u8) -> Tmpl {
    accept_full(h, 0, trans, ids::accept::DONE, 0, &[], &[], 0, &[])
}

/// `u32 handle, u8 flags, 3 reserved` (MEM_RELEASE, MEM_RECLAIM).
pub fn handle_flags(h: impl Into<Val>, flags: u8) -> Tmpl {
    Tmpl::new().u32(h).u8(flags).zeros(3)
}

/// MEM_NOTIFY (§3.4).
pub fn notify(h: impl Into<Val>, flags: u8, tag: u32, vms: &[Val]) -> Tmpl {
    let mut t = Tmpl::new()
        .u32(h)
        .u8(flags)
        .zeros(3)
        .u32(tag)
        .then(list(vms.len(), 0));
    for v in vms {
        t = t.u16(*v).u16(0u16);
    }
    t
}

/// MEM_APPEND (§3.2).
pub fn append(h: impl Into<Val>, flags: u8, s: &[(Val, Val)]) -> Tmpl {
    Tmpl::new().u32(h).u8(flags).zeros(3).then(sgl(s))
}

/// MEM_QCOM_LOOKUP_SGL (§3.6).
pub fn lookup(label: u32, a: &[(Val, u8)], s: &[(Val, Val)]) -> Tmpl {
    Tmpl::new()
        .u8(0u8)
        .zeros(3)
        .u32(label)
        .then(acl(a))
        .then(sgl(s))
        .then(attrs(&[]))
}

/// VM_CONFIG_IMAGE (§5.5) of a slot's staged image.
pub fn config_image(s: Slot, auth: u16) -> Tmpl {
    config_image_raw(
        s.id(),
        auth,
        Val::V(s.img, 0),
        (0u64.into(), Val::V(s.image_size, 0)),
        (Val::V(s.dtb_off, 0), Val::V(s.dtb_size, 0)),
    )
}

/// VM_CONFIG_IMAGE with every field.
pub fn config_image_raw(vm: Val, auth: u16, h: Val, img: (Val, Val), dtb: (Val, Val)) -> Tmpl {
    Tmpl::new()
        .u16(vm)
        .u16(auth)
        .u32(h)
        .u64(img.0)
        .u64(img.1)
        .u64(dtb.0)
        .u64(dtb.1)
}

/// VM_STOP (§5.5).
pub fn stop(vm: impl Into<Val>, flags: u8, reason: u32) -> Tmpl {
    Tmpl::new().u16(vm).u8(flags).u8(0u8).u32(reason)
}

/// GMEM_CREATE.
pub fn gmem_create(size: u64, owner: impl Into<Val>) -> Tmpl {
    Tmpl::new().u64(size).u32(0u32).u16(owner).u16(0u16)
}

/// GMEM_BIND.
#[allow(clippy::too_many_arguments)]
pub fn gmem_bind(gmem: Val, vm: Val, perms: u8, flags: u8, off: u64, ipa: Val, size: u64) -> Tmpl {
    Tmpl::new()
        .u32(gmem)
        .u16(vm)
        .u8(perms)
        .u8(flags)
        .u64(off)
        .u64(ipa)
        .u64(size)
}

/// GMEM_UNBIND / GOLDEN_UNMAP: `u32 id, u16 vmid, u16 0, u64 ipa, u64 size`.
pub fn id_vm_range(id: Val, vm: Val, ipa: Val, size: u64) -> Tmpl {
    Tmpl::new().u32(id).u16(vm).u16(0u16).u64(ipa).u64(size)
}

/// GOLDEN_SEAL.
pub fn seal(h: impl Into<Val>) -> Tmpl {
    Tmpl::new().u32(h).u32(0u32)
}

/// GOLDEN_MAP.
#[allow(clippy::too_many_arguments)]
pub fn golden_map(g: Val, vm: Val, flags: u16, off: u64, ipa: Val, size: u64, gmem: Val) -> Tmpl {
    Tmpl::new()
        .u32(g)
        .u16(vm)
        .u16(flags)
        .u64(off)
        .u64(ipa)
        .u64(size)
        .u32(gmem)
        .u32(0u32)
}

/// GOLDEN_RELEASE.
pub fn golden_release(g: impl Into<Val>) -> Tmpl {
    Tmpl::new().u32(g).u32(0u32)
}

/// SIM_VM_READ.
pub fn sim_read(vm: impl Into<Val>, len: u32, ipa: impl Into<Val>) -> Tmpl {
    Tmpl::new().u16(vm).u16(0u16).u32(len).u64(ipa)
}

/// SIM_VM_WRITE.
pub fn sim_write(vm: impl Into<Val>, ipa: impl Into<Val>, data: &[u8]) -> Tmpl {
    sim_read(vm, data.len() as u32, ipa).bytes(data)
}

// ---- notification bodies ----

/// VM_STATUS (§5.3) with OS and app status 0.
pub fn vm_status(vm: impl Into<Val>, status: u8) -> Tmpl {
    Tmpl::new().u16(vm).u16(0u16).u8(status).u8(0u8).u16(0u16)
}

/// VM_EXITED of a forced VM_STOP (§12: type 7, reason size 4, reason 0).
pub fn vm_exited_forced(vm: impl Into<Val>) -> Tmpl {
    Tmpl::new()
        .u16(vm)
        .u16(ids::EXIT_VM_STOP_FORCED)
        .u32(4u32)
        .u32(0u32)
}

/// MEM_ACCEPTED / MEM_RELEASED (§3.7): handle, the VM, tag.
pub fn owner_notif(h: impl Into<Val>, vm: impl Into<Val>, tag: u32) -> Tmpl {
    Tmpl::new().u32(h).u16(vm).u16(0u16).u32(tag)
}

/// FAULT_UNSERVED: vmid, why, action, page IPA.
pub fn fault_unserved(vm: impl Into<Val>, why: u8, ipa: impl Into<Val>) -> Tmpl {
    Tmpl::new()
        .u16(vm)
        .u8(why)
        .u8(ids::fault::ABORT)
        .u32(0u32)
        .u64(ipa)
}

/// COW_BROKEN: vmid, the copied pages.
pub fn cow_broken(vm: impl Into<Val>, ipas: &[Val]) -> Tmpl {
    let mut t = Tmpl::new()
        .u16(vm)
        .u16(0u16)
        .u16(ipas.len() as u16)
        .u16(0u16);
    for i in ipas {
        t = t.u64(*i);
    }
    t
}

/// QUOTA_EXHAUSTED: vmid, gmem, page IPA, quota pages.
pub fn quota_exhausted(vm: impl Into<Val>, gmem: Val, ipa: impl Into<Val>, pages: u64) -> Tmpl {
    Tmpl::new().u16(vm).u16(0u16).u32(gmem).u64(ipa).u64(pages)
}

/// `n` bytes of a recognisable pattern seeded by `seed`.
pub fn pattern(seed: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| seed.wrapping_add((i * 7) as u8)).collect()
}

// ---- sequences ----

/// How far [`Case::boot`] takes a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Upto {
    /// VM_ALLOC_VMID only.
    Load,
    /// Image staged and lent, VM_CONFIG_IMAGE.
    Init,
    /// VM_INIT: its RM message queues exist.
    Ready,
    /// VM_START.
    Running,
}

impl Case {
    /// HLOS brings a new VM up to `upto` as Linux does (§5.6): VM_ALLOC_VMID(0), the image
    /// lent to it alone with RWX, VM_CONFIG_IMAGE, VM_INIT, VM_START; each state change is
    /// announced to HLOS with VM_STATUS before the reply (§12).
    pub fn boot(self, s: Slot, upto: Upto) -> Case {
        let vm = s.id();
        let mut c = self
            .send(ids::HLOS, ids::VM_ALLOC, vmid_req(0u16))
            .ok_data(Tmpl::new().cap32(s.vm));
        if upto == Upto::Load {
            return c;
        }
        c = c
            .step(Step::Stage {
                vm,
                at: s.image_at(),
                size: s.size,
                image_size: s.image_size,
                dtb_off: s.dtb_off,
                dtb_size: s.dtb_size,
            })
            .send(
                ids::HLOS,
                ids::MEM_LEND,
                create(
                    0,
                    0,
                    &[(vm, ids::rights::RWX)],
                    &[(s.image_at(), Val::V(s.size, 0))],
                ),
            )
            .ok_data(Tmpl::new().cap32(s.img))
            .send(ids::HLOS, ids::VM_CONFIG_IMAGE, config_image(s, 0))
            .notif(ids::HLOS, ids::N_VM_STATUS, vm_status(vm, st::INIT))
            .ok();
        if upto == Upto::Init {
            return c;
        }
        c = c
            .send(ids::HLOS, ids::VM_INIT, vmid_req(vm))
            .notif(ids::HLOS, ids::N_VM_STATUS, vm_status(vm, st::READY))
            .ok();
        if upto == Upto::Ready {
            return c;
        }
        c.send(ids::HLOS, ids::VM_START, vmid_req(vm))
            .notif(ids::HLOS, ids::N_VM_STATUS, vm_status(vm, st::RUNNING))
            .ok()
    }

    /// HLOS stops a RUNNING VM with FORCE: VM_STATUS(EXITED) and VM_EXITED before the reply.
    pub fn force_stop(self, s: Slot) -> Case {
        let vm = s.id();
        self.send(ids::HLOS, ids::VM_STOP, stop(vm, 1, 0))
            .notif(ids::HLOS, ids::N_VM_STATUS, vm_status(vm, st::EXITED))
            .notif(ids::HLOS, ids::N_VM_EXITED, vm_exited_forced(vm))
            .ok()
    }

    /// HLOS resets a VM whose only accepted parcel is its image (EXITED after a start):
    /// RESETTING before the reply, then MEM_RELEASED of the image and RESET (§12).
    pub fn reset_after_run(self, s: Slot) -> Case {
        let vm = s.id();
        self.send(ids::HLOS, ids::VM_RESET, vmid_req(vm))
            .notif(ids::HLOS, ids::N_VM_STATUS, vm_status(vm, st::RESETTING))
            .ok()
            .notif(
                ids::HLOS,
                ids::N_MEM_RELEASED,
                owner_notif(Val::V(s.img, 0), vm, 0),
            )
            .notif(ids::HLOS, ids::N_VM_STATUS, vm_status(vm, st::RESET))
    }

    /// HLOS resets a VM that holds no accepted parcel (READY, or INIT_FAILED after VM_INIT).
    pub fn reset_idle(self, s: Slot) -> Case {
        let vm = s.id();
        self.send(ids::HLOS, ids::VM_RESET, vmid_req(vm))
            .notif(ids::HLOS, ids::N_VM_STATUS, vm_status(vm, st::RESETTING))
            .ok()
            .notif(ids::HLOS, ids::N_VM_STATUS, vm_status(vm, st::RESET))
    }

    /// HLOS deallocates a VM (LOAD or RESET) and reclaims its image parcel.
    pub fn dealloc(self, s: Slot, reclaim_image: bool) -> Case {
        let c = self.send(ids::HLOS, ids::VM_DEALLOC, vmid_req(s.id())).ok();
        if reclaim_image {
            c.send(
                ids::HLOS,
                ids::MEM_RECLAIM,
                handle_flags(Val::V(s.img, 0), 0),
            )
            .ok()
        } else {
            c
        }
    }

    /// The whole way back from RUNNING, as Linux's teardown (§5.6).
    pub fn teardown(self, s: Slot) -> Case {
        self.force_stop(s).reset_after_run(s).dealloc(s, true)
    }

    /// A request that must be refused with `code`, changing nothing.
    pub fn refused(self, from: impl Into<Val>, msg_id: u32, body: Tmpl, code: u32) -> Case {
        self.send(from, msg_id, body).err(code)
    }

    /// A request that must be dropped unanswered, changing nothing (the sender has no
    /// RM message queue).
    pub fn dropped(self, from: impl Into<Val>, msg_id: u32, body: Tmpl) -> Case {
        self.send(from, msg_id, body).silent()
    }

    /// HLOS writes `data` into its own RAM at `ipa`.
    pub fn fill(self, ipa: impl Into<Val>, data: &[u8]) -> Case {
        self.write(ids::HLOS, ipa, data, Want::Done)
    }
}

/// OK reply to MEM_* creates: the new handle captured into `v`.
pub fn handle_into(v: Var) -> Tmpl {
    Tmpl::new().cap32(v)
}

/// The standard OK code alone.
pub fn ok_code() -> u32 {
    err::OK
}
