//! The VM state machine (§5.2, §5.5, §12, §12.1): every legal transition with its
//! notifications, and every illegal one refused without a change.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::case::{case, Case, Tag::*};
use crate::dsl::*;
use crate::ids::{err::*, st, *};
use crate::tmpl::{Tmpl, Val};

/// The states a case can put T in through requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum S {
    Load,
    Init,
    Auth,
    Ready,
    Running,
    Exited,
    Reset,
    /// INIT_FAILED after a failed VM_CONFIG_IMAGE.
    FailedConfig,
    /// INIT_FAILED after a failed VM_START.
    FailedStart,
}

pub const ALL: [S; 9] = [
    S::Load,
    S::Init,
    S::Auth,
    S::Ready,
    S::Running,
    S::Exited,
    S::Reset,
    S::FailedConfig,
    S::FailedStart,
];

impl S {
    pub fn name(self) -> &'static str {
        match self {
            S::Load => "load",
            S::Init => "init",
            S::Auth => "auth",
            S::Ready => "ready",
            S::Running => "running",
            S::Exited => "exited",
            S::Reset => "reset",
            S::FailedConfig => "init_failed_after_config",
            S::FailedStart => "init_failed_after_start",
        }
    }
}

/// A handle no parcel has.
const NO_PARCEL: u32 = 0xFFFF_FF00;

/// Bring slot `s` to state `to` as HLOS, with every notification.
pub fn reach(c: Case, s: Slot, to: S) -> Case {
    let vm = s.id();
    match to {
        S::Load => c.boot(s, Upto::Load),
        S::Init => c.boot(s, Upto::Init),
        S::Ready => c.boot(s, Upto::Ready),
        S::Running => c.boot(s, Upto::Running),
        S::Exited => c.boot(s, Upto::Running).force_stop(s),
        // §12.1: READY → reset goes RESETTING → RESET with no MEM_RELEASED.
        S::Reset => c.boot(s, Upto::Ready).reset_idle(s),
        // §12: an unknown image parcel → MEM_INVALID, INIT_FAILED with VM_STATUS(8).
        S::FailedConfig => c
            .boot(s, Upto::Load)
            .send(
                HLOS,
                VM_CONFIG_IMAGE,
                config_image_raw(
                    vm,
                    0,
                    NO_PARCEL.into(),
                    (0u64.into(), 0u64.into()),
                    (0u64.into(), 0x100u64.into()),
                ),
            )
            .notif(HLOS, N_VM_STATUS, vm_status(vm, st::INIT_FAILED))
            .err_moves(MEM_INVALID),
        // §12: any failure while processing the VM's resources at VM_START → NORESOURCE,
        // INIT_FAILED. The image parcel reclaimed in READY (allowed, §12.1) is missing.
        S::FailedStart => c
            .boot(s, Upto::Ready)
            .send(HLOS, MEM_RECLAIM, handle_flags(Val::V(s.img, 0), 0))
            .ok()
            .send(HLOS, VM_START, vmid_req(vm))
            .notif(HLOS, N_VM_STATUS, vm_status(vm, st::INIT_FAILED))
            .err_moves(NORESOURCE),
        // §5.2: VM_CONFIG_IMAGE with auth PLATFORM (1) → AUTH.
        S::Auth => c
            .boot(s, Upto::Load)
            .step(crate::case::Step::Stage {
                vm,
                at: s.image_at(),
                size: s.size,
                image_size: s.image_size,
                dtb_off: s.dtb_off,
                dtb_size: s.dtb_size,
            })
            .send(
                HLOS,
                MEM_LEND,
                create(
                    0,
                    0,
                    &[(vm, rights::RWX)],
                    &[(s.image_at(), Val::V(s.size, 0))],
                ),
            )
            .ok_data(Tmpl::new().cap32(s.img))
            .send(HLOS, VM_CONFIG_IMAGE, config_image(s, 1))
            .notif(HLOS, N_VM_STATUS, vm_status(vm, 6))
            .ok(),
    }
}

/// A lifecycle request about T, with what it must do in each state (None = legal there,
/// covered by its own case).
struct Req {
    name: &'static str,
    id: u32,
    body: fn() -> Tmpl,
    /// The refusal in state `s`, if it is refused there: (code, trailing hypervisor word).
    refused: fn(S) -> Option<(u32, bool)>,
}

fn vm_t() -> Val {
    T.id()
}

fn reqs() -> Vec<Req> {
    use S::*;
    alloc::vec![
        // §12.1: VM_CONFIG_IMAGE outside LOAD/RESET → VM_STATE.
        Req {
            name: "vm_config_image",
            id: VM_CONFIG_IMAGE,
            body: || config_image_raw(
                vm_t(),
                0,
                NO_PARCEL.into(),
                (0u64.into(), 0u64.into()),
                (0u64.into(), 0x100u64.into())
            ),
            refused: |s| (!matches!(s, Load | Reset)).then_some((VM_STATE, false)),
        },
        // §12.1: VM_INIT outside INIT → VM_STATE.
        Req {
            name: "vm_init",
            id: VM_INIT,
            body: || vmid_req(vm_t()),
            refused: |s| (s != Init).then_some((VM_STATE, false)),
        },
        // §12.1: VM_START outside READY → VM_STATE.
        Req {
            name: "vm_start",
            id: VM_START,
            body: || vmid_req(vm_t()),
            refused: |s| (s != Ready).then_some((VM_STATE, false)),
        },
        // §12.1: VM_STOP (forced or not) outside RUNNING/PAUSED → VM_STATE.
        Req {
            name: "vm_stop_forced",
            id: VM_STOP,
            body: || stop(vm_t(), 1, 0),
            refused: |s| (s != Running).then_some((VM_STATE, false)),
        },
        // Not forced, of a running VM: Gunyah's RM dies (§12.1); this RM: DENIED.
        Req {
            name: "vm_stop_not_forced",
            id: VM_STOP,
            body: || stop(vm_t(), 0, 0),
            refused: |s| Some((if s == Running { DENIED } else { VM_STATE }, false)),
        },
        // §5.2: RESETTING from EXITED, READY, INIT_FAILED; §12.1: Gunyah's RM dies on
        // LOAD, RESET and INIT_FAILED after a failed VM_CONFIG_IMAGE: VM_STATE here.
        Req {
            name: "vm_reset",
            id: VM_RESET,
            body: || vmid_req(vm_t()),
            refused: |s| (!matches!(s, Exited | Ready | FailedStart)).then_some((VM_STATE, false)),
        },
        // §12.1: VM_DEALLOC_VMID outside LOAD/RESET → VM_STATE; a VM whose config failed
        // holds nothing and cannot be reset, so it may be deallocated.
        Req {
            name: "vm_dealloc_vmid",
            id: VM_DEALLOC,
            body: || vmid_req(vm_t()),
            refused: |s| (!matches!(s, Load | Reset | FailedConfig)).then_some((VM_STATE, false)),
        },
        // §5.5: VM_AUTH_IMAGE in AUTH only.
        Req {
            name: "vm_auth_image",
            id: VM_AUTH_IMAGE,
            body: || Tmpl::new().u16(vm_t()).u16(0u16),
            refused: |s| (s != Auth).then_some((VM_STATE, false)),
        },
        // §12.1: VM_SET_FIRMWARE_MEM: LOAD → VM_STATE (state INIT only, §5.5); the reply
        // carries a hypervisor error word.
        Req {
            name: "vm_set_firmware_mem",
            id: VM_SET_FIRMWARE_MEM,
            body: || Tmpl::new()
                .u16(vm_t())
                .u16(0u16)
                .u32(NO_PARCEL)
                .u64(0u64)
                .u64(0x1000u64),
            refused: |s| Some(if s == Init {
                (MEM_INVALID, true)
            } else {
                (VM_STATE, true)
            }),
        },
        // §12.1: VM_SET_TIME_BASE: LOAD or RUNNING → VM_STATE; INIT or READY →
        // ARGUMENT_INVALID with hypervisor error 30 (own cases).
        Req {
            name: "vm_set_time_base",
            id: VM_SET_TIME_BASE,
            body: || Tmpl::new().u16(vm_t()).u16(0u16).u64(1u64).u64(2u64),
            refused: |s| (!matches!(s, Init | Ready)).then_some((VM_STATE, true)),
        },
    ]
}

/// Every refused (state, request) pair: the refusal, and nothing changes.
fn illegal() -> Vec<Case> {
    let mut v = Vec::new();
    for r in reqs() {
        for s in ALL {
            let Some((code, hyp)) = (r.refused)(s) else {
                continue;
            };
            let name: &'static str = String::leak(format!("{}_in_{}_is_refused", r.name, s.name()));
            let c = reach(case(name, &[Lifecycle, Observed]), T, s).send(HLOS, r.id, (r.body)());
            let c = if hyp {
                c.reply(code, Tmpl::new().any(4)).unchanged()
            } else {
                c.err(code)
            };
            v.push(c);
        }
    }
    v
}

pub fn cases() -> Vec<Case> {
    let vm = T.id();
    let mut v = alloc::vec![
        // §5.6, §12: the whole Linux sequence, each change announced before the reply.
        case("boot_and_teardown_as_linux_does", &[Lifecycle])
            .boot(T, Upto::Running)
            .teardown(T),
        // §12.1: in READY the image parcel is not accepted yet: reclaim OK; VM_RESET goes
        // RESETTING → RESET without MEM_RELEASED.
        reach(
            case(
                "ready_image_parcel_can_be_reclaimed",
                &[Lifecycle, Memparcel, Observed]
            ),
            T,
            S::Ready
        )
        .send(HLOS, MEM_RECLAIM, handle_flags(Val::V(T.img, 0), 0))
        .ok()
        .reset_idle(T)
        .dealloc(T, false),
        // §12: while the VM runs its image parcel is in use; deallocation is VM_STATE.
        reach(
            case(
                "running_image_parcel_is_in_use",
                &[Lifecycle, Memparcel, Observed]
            ),
            T,
            S::Running
        )
        .send(HLOS, MEM_RECLAIM, handle_flags(Val::V(T.img, 0), 0))
        .err(MEM_INUSE),
        // §12.1: in EXITED the image parcel is still accepted: reclaim → MEM_INUSE.
        reach(
            case(
                "exited_image_parcel_is_in_use",
                &[Lifecycle, Memparcel, Observed]
            ),
            T,
            S::Exited
        )
        .send(HLOS, MEM_RECLAIM, handle_flags(Val::V(T.img, 0), 0))
        .err(MEM_INUSE),
        // §12: VM_RESET → OK at once with RESETTING before it, then MEM_RELEASED of each
        // accepted parcel and RESET; then reclaim and dealloc succeed, and the VMID is gone.
        reach(
            case(
                "reset_after_exit_releases_the_image_then_dealloc",
                &[Lifecycle, Observed]
            ),
            T,
            S::Exited
        )
        .reset_after_run(T)
        .dealloc(T, true)
        .send(HLOS, VM_GET_STATE, vmid_req(vm))
        .err(NORESOURCE),
        // A failed start can be reset (INIT_FAILED → RESETTING is legal).
        reach(
            case("reset_after_a_failed_start", &[Lifecycle]),
            T,
            S::FailedStart
        )
        .reset_idle(T)
        .dealloc(T, false),
        // A failed config cannot be reset (Gunyah's RM dies; VM_STATE here), but the VM
        // can be deallocated and the VMID used again.
        reach(
            case("dealloc_after_a_failed_config", &[Lifecycle, Observed]),
            T,
            S::FailedConfig
        )
        .send(HLOS, VM_DEALLOC, vmid_req(vm))
        .ok()
        .send(HLOS, VM_ALLOC, vmid_req(0u16))
        .ok_data(Tmpl::new().u32(vm)),
        // §5.2: RESET → INIT by VM_CONFIG_IMAGE (the VM can be used again).
        reach(case("config_again_after_reset", &[Lifecycle]), T, S::Reset)
            .send(HLOS, VM_CONFIG_IMAGE, config_image(T, 0))
            .notif(HLOS, N_VM_STATUS, vm_status(vm, st::INIT))
            .ok()
            .send(HLOS, VM_INIT, vmid_req(vm))
            .notif(HLOS, N_VM_STATUS, vm_status(vm, st::READY))
            .ok()
            .send(HLOS, VM_START, vmid_req(vm))
            .notif(HLOS, N_VM_STATUS, vm_status(vm, st::RUNNING))
            .ok(),
        // §5.2: AUTH → INIT by VM_AUTH_IMAGE (PAS_ID parameter).
        reach(
            case("auth_image_moves_auth_to_init", &[Lifecycle]),
            T,
            S::Auth
        )
        .send(
            HLOS,
            VM_AUTH_IMAGE,
            Tmpl::new().u16(vm).u16(1u16).u32(0u32).u32(7u32)
        )
        .notif(HLOS, N_VM_STATUS, vm_status(vm, st::INIT))
        .ok(),
        // §12: VM_STOP with FORCE ignores the stop_reason word.
        reach(
            case("forced_stop_ignores_the_reason", &[Lifecycle, Observed]),
            T,
            S::Running
        )
        .send(HLOS, VM_STOP, stop(vm, 1, 0xDEAD_BEEF))
        .notif(HLOS, N_VM_STATUS, vm_status(vm, st::EXITED))
        .notif(HLOS, N_VM_EXITED, vm_exited_forced(vm))
        .ok(),
        // §5.4: a guest's own VM_EXIT: flags | code << 16, VM_STATUS then VM_EXITED.
        reach(
            case("guest_exit_is_reported_to_the_owner", &[Lifecycle]),
            T,
            S::Running
        )
        .send(vm, VM_EXIT, Tmpl::new().u16(1u16).u8(1u8).u8(0u8))
        .notif(HLOS, N_VM_STATUS, vm_status(vm, st::EXITED))
        .notif(
            HLOS,
            N_VM_EXITED,
            Tmpl::new().u16(vm).u16(0u16).u32(4u32).u32(0x0001_0001u32)
        )
        .ok(),
        // §5.4: exit code 2 (UNKNOWN_ERROR) is refused in VM_EXIT.
        reach(
            case("guest_exit_with_code_2_is_refused", &[Lifecycle]),
            T,
            S::Running
        )
        .send(vm, VM_EXIT, Tmpl::new().u16(0u16).u8(2u8).u8(0u8))
        .err(ARGUMENT_INVALID),
        // §5.3: VM_SET_STATUS from the guest → VM_STATUS to the owner with its os status.
        reach(
            case("guest_set_status_is_announced", &[Lifecycle, Query]),
            T,
            S::Running
        )
        .send(vm, VM_SET_STATUS, Tmpl::new().u8(0u8).u8(4u8).u16(7u16))
        .notif(
            HLOS,
            N_VM_STATUS,
            Tmpl::new()
                .u16(vm)
                .u16(0u16)
                .u8(st::RUNNING)
                .u8(4u8)
                .u16(7u16)
        )
        .ok()
        .send(HLOS, VM_GET_STATE, vmid_req(vm))
        .ok_data(Tmpl::new().u8(st::RUNNING).u8(4u8).u16(7u16)),
        // §12.1 VM_CONFIG_IMAGE failures after the argument checks: INIT_FAILED with
        // VM_STATUS(8) before the reply.
        config_failure(
            "config_image_with_an_unknown_auth_type_fails_the_vm",
            9,
            (0, 0),
            (0, 0x100),
            ARGUMENT_INVALID
        ),
        config_failure(
            "config_image_with_a_dt_beyond_the_parcel_fails_the_vm",
            0,
            (0, 0),
            (0, 0x2000),
            ARGUMENT_INVALID
        ),
        config_failure(
            "config_image_with_an_image_beyond_the_parcel_fails_the_vm",
            0,
            (0x800, 0x1000),
            (0, 0x100),
            ARGUMENT_INVALID
        ),
        config_failure(
            "config_image_with_a_wrapping_offset_fails_the_vm",
            0,
            (0, 0),
            (u64::MAX - 0x10, 0x20),
            ARGUMENT_INVALID
        ),
        config_not_lent(),
        // §12: a mis-sized VM_CONFIG_IMAGE or an unknown VMID does not fail the VM.
        reach(
            case(
                "config_image_mis_sized_is_msg_invalid_and_changes_nothing",
                &[Lifecycle, Observed]
            ),
            T,
            S::Load
        )
        .send(
            HLOS,
            VM_CONFIG_IMAGE,
            config_image_raw(
                vm,
                0,
                0u32.into(),
                (0u64.into(), 0u64.into()),
                (0u64.into(), 0u64.into())
            )
            .cut(1)
        )
        .err(MSG_INVALID),
        reach(
            case(
                "config_image_of_an_unknown_vmid_changes_nothing",
                &[Lifecycle, Observed]
            ),
            T,
            S::Load
        )
        .send(
            HLOS,
            VM_CONFIG_IMAGE,
            config_image_raw(
                Val::V(T.vm, 0x10),
                0,
                0u32.into(),
                (0u64.into(), 0u64.into()),
                (0u64.into(), 0u64.into())
            )
        )
        .err(VMID_INVALID),
        // §12.1: VM_START/STOP/RESET/INIT of an unallocated VMID → VMID_INVALID.
        case("vm_start_of_an_unallocated_vmid", &[Lifecycle, Observed])
            .send(HLOS, VM_START, vmid_req(0xB0u16))
            .err(VMID_INVALID),
        case("vm_stop_of_an_unallocated_vmid", &[Lifecycle, Observed])
            .send(HLOS, VM_STOP, stop(0xB0u16, 1, 0))
            .err(VMID_INVALID),
        case("vm_reset_of_an_unallocated_vmid", &[Lifecycle, Observed])
            .send(HLOS, VM_RESET, vmid_req(0xB0u16))
            .err(VMID_INVALID),
        case("vm_init_of_an_unallocated_vmid", &[Lifecycle, Observed])
            .send(HLOS, VM_INIT, vmid_req(0xB0u16))
            .err(VMID_INVALID),
        // §12: VM_DEALLOC_VMID of a VMID never allocated (Gunyah's RM asserts): an error.
        case("vm_dealloc_of_an_unallocated_vmid", &[Lifecycle, Observed])
            .send(HLOS, VM_DEALLOC, vmid_req(0xB0u16))
            .err(VMID_INVALID),
    ];
    v.extend(illegal());
    v
}

/// §12.1: a VM_CONFIG_IMAGE failing past its argument checks: INIT_FAILED. The image
/// parcel is one page lent to T; `img` and `dtb` are (offset, size) in it.
fn config_failure(
    name: &'static str,
    auth: u16,
    img: (u64, u64),
    dtb: (u64, u64),
    code: u32,
) -> Case {
    let vm = T.id();
    reach(case(name, &[Lifecycle, Observed]), T, S::Load)
        .send(
            HLOS,
            MEM_LEND,
            create(0, 0, &[(vm, rights::RWX)], &[(T.image_at(), PAGE.into())]),
        )
        .ok_data(Tmpl::new().cap32(T.img))
        .send(
            HLOS,
            VM_CONFIG_IMAGE,
            config_image_raw(
                vm,
                auth,
                Val::V(T.img, 0),
                (img.0.into(), img.1.into()),
                (dtb.0.into(), dtb.1.into()),
            ),
        )
        .notif(HLOS, N_VM_STATUS, vm_status(vm, st::INIT_FAILED))
        .err_moves(code)
        .send(HLOS, VM_GET_STATE, vmid_req(vm))
        .ok_data(Tmpl::new().u8(st::INIT_FAILED).any(3))
}

/// §12.1: a parcel not lent to that VM (shared with it) → MEM_INVALID, INIT_FAILED.
fn config_not_lent() -> Case {
    let vm = T.id();
    reach(
        case(
            "config_image_with_a_parcel_not_lent_to_the_vm_fails_it",
            &[Lifecycle, Observed],
        ),
        T,
        S::Load,
    )
    .send(
        HLOS,
        MEM_SHARE,
        create(
            0,
            0,
            &[(HLOS.into(), rights::RWX), (vm, rights::RWX)],
            &[(ram(0), PAGE.into())],
        ),
    )
    .ok_data(Tmpl::new().cap32("sh"))
    .send(
        HLOS,
        VM_CONFIG_IMAGE,
        config_image_raw(
            vm,
            0,
            "sh".into(),
            (0u64.into(), 0u64.into()),
            (0u64.into(), 0x100u64.into()),
        ),
    )
    .notif(HLOS, N_VM_STATUS, vm_status(vm, st::INIT_FAILED))
    .err_moves(MEM_INVALID)
}
