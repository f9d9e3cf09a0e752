//! Spec §12.1 lines not covered by the other modules (VM_ALLOC_VMID, size and reserved
//! field errors, VM_GET_HYP_RESOURCES, VM_SET_TIME_BASE, VM_SET_FIRMWARE_MEM, the
//! Linux-only calls, HLOS queries, VM_START and parcels already lent), and the queries'
//! success paths (§5.5).

use alloc::vec;
use alloc::vec::Vec;

use crate::case::{case, Case, Tag::*};
use crate::cases::lifecycle::{reach, S};
use crate::dsl::*;
use crate::ids::{err::*, rights, st, *};
use crate::tmpl::{at, Tmpl, Val};

fn t() -> Val {
    T.id()
}

/// A VIRTUAL_CPU entry of VM_GET_HYP_RESOURCES (44 bytes, type 4).
fn vcpu_entry() -> Tmpl {
    Tmpl::new().u8(4u8).any(43)
}

fn alloc_cases() -> Vec<Case> {
    vec![
        // §12.1: free static VMIDs are 4..=last; the OK reply carries no data.
        case("alloc_the_lowest_static_vmid", &[Lifecycle, Observed])
            .send(HLOS, VM_ALLOC, vmid_req(4u16))
            .ok(),
        case("alloc_the_highest_static_vmid", &[Lifecycle, Observed])
            .send(HLOS, VM_ALLOC, vmid_req("static_last"))
            .ok(),
        // A taken or out-of-range static VMID → NORESOURCE.
        case("alloc_a_static_vmid_taken", &[Lifecycle, Observed])
            .send(HLOS, VM_ALLOC, vmid_req(5u16))
            .ok()
            .send(HLOS, VM_ALLOC, vmid_req(5u16))
            .err(NORESOURCE),
        case("alloc_the_hlos_vmid", &[Lifecycle, Observed])
            .send(HLOS, VM_ALLOC, vmid_req(HLOS))
            .err(NORESOURCE),
        case("alloc_static_vmid_1", &[Lifecycle, Observed])
            .send(HLOS, VM_ALLOC, vmid_req(1u16))
            .err(NORESOURCE),
        case("alloc_one_above_the_static_range", &[Lifecycle, Observed])
            .send(HLOS, VM_ALLOC, vmid_req(at("static_last", 1)))
            .err(NORESOURCE),
        case("alloc_vmid_64", &[Lifecycle, Observed])
            .send(HLOS, VM_ALLOC, vmid_req(64u16))
            .err(NORESOURCE),
        case("alloc_a_dynamic_vmid_by_number", &[Lifecycle, Observed])
            .send(HLOS, VM_ALLOC, vmid_req(0x80u16))
            .err(NORESOURCE),
        // §12: a freed dynamic VMID is handed out again.
        case(
            "a_freed_dynamic_vmid_is_handed_out_again",
            &[Lifecycle, Observed],
        )
        .send(HLOS, VM_ALLOC, vmid_req(0u16))
        .ok_data(Tmpl::new().u32(0x80u32))
        .send(HLOS, VM_ALLOC, vmid_req(0u16))
        .ok_data(Tmpl::new().u32(0x81u32))
        .send(HLOS, VM_DEALLOC, vmid_req(0x80u16))
        .ok()
        .send(HLOS, VM_ALLOC, vmid_req(0u16))
        .ok_data(Tmpl::new().u32(0x80u32)),
        // §5.5: exactly 4 bytes.
        case("alloc_mis_sized", &[Lifecycle])
            .send(HLOS, VM_ALLOC, Tmpl::new().zeros(3))
            .err(MSG_INVALID),
        sixty_three_dynamic_vmids(),
    ]
}

/// §12.1: 63 dynamic VMIDs (0x80..=0xBE), the 64th → NORESOURCE.
fn sixty_three_dynamic_vmids() -> Case {
    let mut c = case(
        "sixty_three_dynamic_vmids_then_noresource",
        &[Lifecycle, Observed],
    );
    for i in 0..63u32 {
        c = c
            .send(HLOS, VM_ALLOC, vmid_req(0u16))
            .ok_data(Tmpl::new().u32(0x80 + i));
    }
    c.send(HLOS, VM_ALLOC, vmid_req(0u16)).err(NORESOURCE)
}

fn size_cases() -> Vec<Case> {
    // §12.1 size errors (MSG_INVALID), about a VM in LOAD so that a request that were
    // wrongly accepted would show.
    let sized = |name: &'static str, id: u32, body: Tmpl| {
        case(name, &[Lifecycle, Observed, Protocol])
            .boot(T, Upto::Load)
            .send(HLOS, id, body)
            .err(MSG_INVALID)
    };
    vec![
        sized("vm_start_of_3_bytes", VM_START, vmid_req(t()).cut(1)),
        sized("vm_start_of_5_bytes", VM_START, vmid_req(t()).u8(0u8)),
        sized("vm_stop_of_7_bytes", VM_STOP, stop(t(), 1, 0).cut(1)),
        sized("vm_stop_of_9_bytes", VM_STOP, stop(t(), 1, 0).u8(0u8)),
        sized("vm_reset_of_2_bytes", VM_RESET, vmid_req(t()).cut(2)),
        sized("vm_dealloc_of_8_bytes", VM_DEALLOC, vmid_req(t()).zeros(4)),
        sized("vm_get_state_of_0_bytes", VM_GET_STATE, Tmpl::new()),
        sized(
            "vm_get_hyp_resources_of_6_bytes",
            VM_GET_HYP_RESOURCES,
            vmid_req(t()).zeros(2),
        ),
        sized(
            "vm_get_vmid_with_a_payload",
            VM_GET_VMID,
            Tmpl::new().zeros(4),
        ),
        sized(
            "vm_host_get_type_with_a_payload",
            VM_HOST_GET_TYPE,
            Tmpl::new().zeros(4),
        ),
        sized(
            "vm_get_owner_with_a_payload",
            VM_GET_OWNER,
            Tmpl::new().zeros(4),
        ),
        sized(
            "vm_get_peers_with_a_payload",
            VM_GET_PEERS,
            Tmpl::new().zeros(4),
        ),
        // A non-zero reserved field of VM_INIT or VM_SET_FIRMWARE_MEM → MSG_INVALID.
        reach(
            case("vm_init_with_a_reserved_half_word", &[Lifecycle, Observed]),
            T,
            S::Init,
        )
        .send(HLOS, VM_INIT, Tmpl::new().u16(t()).u16(1u16))
        .err(MSG_INVALID),
        reach(
            case(
                "vm_set_firmware_mem_with_a_reserved_half_word",
                &[Lifecycle, Observed],
            ),
            T,
            S::Init,
        )
        .send(
            HLOS,
            VM_SET_FIRMWARE_MEM,
            Tmpl::new().u16(t()).u16(1u16).u32(0u32).u64(0u64).u64(PAGE),
        )
        .reply(MSG_INVALID, Tmpl::new().any(4))
        .unchanged(),
        reach(
            case("vm_set_firmware_mem_mis_sized", &[Lifecycle, Observed]),
            T,
            S::Init,
        )
        .send(
            HLOS,
            VM_SET_FIRMWARE_MEM,
            Tmpl::new().u16(t()).u16(0u16).u32(0u32).u64(0u64),
        )
        .reply(MSG_INVALID, Tmpl::new().any(4))
        .unchanged(),
        reach(
            case("vm_set_time_base_mis_sized", &[Lifecycle, Observed]),
            T,
            S::Init,
        )
        .send(
            HLOS,
            VM_SET_TIME_BASE,
            Tmpl::new().u16(t()).u16(0u16).u64(0u64),
        )
        .reply(MSG_INVALID, Tmpl::new().any(4))
        .unchanged(),
    ]
}

fn resource_cases() -> Vec<Case> {
    let res = |name: &'static str, s: S| {
        reach(case(name, &[Query, Observed]), T, s).send(HLOS, VM_GET_HYP_RESOURCES, vmid_req(t()))
    };
    vec![
        // §12.1 VM_GET_HYP_RESOURCES: u32 count + 44-byte entries; INIT and HLOS have 0;
        // READY and RUNNING one VIRTUAL_CPU; LOAD or RESET → NORESOURCE; unknown VMID or 0
        // → ARGUMENT_INVALID.
        res("hyp_resources_in_init_are_none", S::Init).ok_data(Tmpl::new().u32(0u32)),
        res("hyp_resources_in_ready_are_one_vcpu", S::Ready)
            .ok_data(Tmpl::new().u32(1u32).then(vcpu_entry())),
        res("hyp_resources_in_running_are_one_vcpu", S::Running)
            .ok_data(Tmpl::new().u32(1u32).then(vcpu_entry())),
        res("hyp_resources_in_load", S::Load).err(NORESOURCE),
        res("hyp_resources_in_reset", S::Reset).err(NORESOURCE),
        case("hyp_resources_of_hlos_are_none", &[Query, Observed])
            .send(HLOS, VM_GET_HYP_RESOURCES, vmid_req(HLOS))
            .ok_data(Tmpl::new().u32(0u32)),
        case("hyp_resources_of_an_unknown_vmid", &[Query, Observed])
            .send(HLOS, VM_GET_HYP_RESOURCES, vmid_req(0xB3u16))
            .err(ARGUMENT_INVALID),
        case("hyp_resources_of_vmid_0", &[Query, Observed])
            .send(HLOS, VM_GET_HYP_RESOURCES, vmid_req(0u16))
            .err(ARGUMENT_INVALID),
        // The VM asks about itself.
        reach(
            case("hyp_resources_asked_by_the_vm_itself", &[Query]),
            T,
            S::Running,
        )
        .send(T.vm, VM_GET_HYP_RESOURCES, vmid_req(t()))
        .ok_data(Tmpl::new().u32(1u32).then(vcpu_entry())),
    ]
}

fn time_firmware_cases() -> Vec<Case> {
    let tb = || Tmpl::new().u16(t()).u16(0u16).u64(100u64).u64(200u64);
    vec![
        // §12.1 VM_SET_TIME_BASE: INIT or READY on QEMU → ARGUMENT_INVALID with hypervisor
        // error 30; unknown VMID → NORESOURCE (a hypervisor error word after every failure).
        reach(
            case("set_time_base_in_init", &[Lifecycle, Observed]),
            T,
            S::Init,
        )
        .send(HLOS, VM_SET_TIME_BASE, tb())
        .reply(ARGUMENT_INVALID, Tmpl::new().u32(30u32))
        .unchanged(),
        reach(
            case("set_time_base_in_ready", &[Lifecycle, Observed]),
            T,
            S::Ready,
        )
        .send(HLOS, VM_SET_TIME_BASE, tb())
        .reply(ARGUMENT_INVALID, Tmpl::new().u32(30u32))
        .unchanged(),
        case("set_time_base_of_an_unknown_vmid", &[Lifecycle, Observed])
            .send(
                HLOS,
                VM_SET_TIME_BASE,
                Tmpl::new().u16(0xB3u16).u16(0u16).u64(0u64).u64(0u64),
            )
            .reply(NORESOURCE, Tmpl::new().any(4))
            .unchanged(),
        // §12.1 VM_SET_FIRMWARE_MEM: unknown VMID → NORESOURCE; in INIT with a lent parcel → OK.
        case(
            "set_firmware_mem_of_an_unknown_vmid",
            &[Lifecycle, Observed],
        )
        .send(
            HLOS,
            VM_SET_FIRMWARE_MEM,
            Tmpl::new()
                .u16(0xB3u16)
                .u16(0u16)
                .u32(0u32)
                .u64(0u64)
                .u64(PAGE),
        )
        .reply(NORESOURCE, Tmpl::new().any(4))
        .unchanged(),
        reach(case("set_firmware_mem_in_init", &[Lifecycle]), T, S::Init)
            .send(
                HLOS,
                MEM_LEND,
                create(0, 0, &[(t(), rights::RWX)], &[(ram(0), PAGE.into())]),
            )
            .ok_data(Tmpl::new().cap32("fw"))
            .send(
                HLOS,
                VM_SET_FIRMWARE_MEM,
                Tmpl::new().u16(t()).u16(0u16).u32("fw").u64(0u64).u64(PAGE),
            )
            .ok(),
        // §12.1: Linux-only calls: gunyah-rm implements boot context, demand paging and the
        // address layout (Linux's driver needs them to start a VM).
        reach(
            case("set_boot_context_in_ready", &[Lifecycle, Observed]),
            T,
            S::Ready,
        )
        .send(
            HLOS,
            VM_SET_BOOT_CONTEXT,
            Tmpl::new()
                .u16(t())
                .u8(1u8)
                .u8(0u8)
                .u32(0u32)
                .u64(0x8000_0000u64),
        )
        .ok(),
        reach(
            case("set_boot_context_bad_register", &[Lifecycle]),
            T,
            S::Ready,
        )
        .send(
            HLOS,
            VM_SET_BOOT_CONTEXT,
            Tmpl::new().u16(t()).u8(0u8).u8(32u8).u32(0u32).u64(0u64),
        )
        .err(ARGUMENT_INVALID),
        reach(
            case("set_demand_paging_in_init", &[Lifecycle, Observed]),
            T,
            S::Init,
        )
        .send(
            HLOS,
            VM_SET_DEMAND_PAGING,
            Tmpl::new()
                .u16(t())
                .u16(0u16)
                .u32(1u32)
                .u64(gw(0))
                .u64(MIB2),
        )
        .ok(),
        reach(case("set_address_layout_in_init", &[Lifecycle]), T, S::Init)
            .send(
                HLOS,
                VM_SET_ADDRESS_LAYOUT,
                Tmpl::new()
                    .u16(t())
                    .u16(0u16)
                    .u32(0u32)
                    .u64(gw(0))
                    .u64(MIB2),
            )
            .ok(),
        reach(
            case("set_address_layout_unknown_range", &[Lifecycle]),
            T,
            S::Init,
        )
        .send(
            HLOS,
            VM_SET_ADDRESS_LAYOUT,
            Tmpl::new()
                .u16(t())
                .u16(0u16)
                .u32(2u32)
                .u64(gw(0))
                .u64(MIB2),
        )
        .err(ARGUMENT_INVALID),
    ]
}

fn query_cases() -> Vec<Case> {
    vec![
        // §12.1 HLOS queries.
        case("host_get_type", &[Query, Observed])
            .send(HLOS, VM_HOST_GET_TYPE, Tmpl::new())
            .ok_data(Tmpl::new().u32(HOST_TYPE)),
        case("get_state_0_from_hlos_is_running", &[Query, Observed])
            .send(HLOS, VM_GET_STATE, vmid_req(0u16))
            .ok_data(Tmpl::new().u8(st::RUNNING).any(3)),
        case(
            "set_status_from_hlos_is_denied",
            &[Query, Observed, Authorization],
        )
        .send(HLOS, VM_SET_STATUS, Tmpl::new().u8(0u8).u8(4u8).u16(0u16))
        .err(DENIED),
        case("get_owner_of_hlos_is_the_rm", &[Query, Observed])
            .send(HLOS, VM_GET_OWNER, Tmpl::new())
            .ok_data(Tmpl::new().u32(RM)),
        case(
            "get_peers_of_hlos_lists_the_vms_it_allocated",
            &[Query, Observed],
        )
        .send(HLOS, VM_GET_PEERS, Tmpl::new())
        .ok_data(Tmpl::new().u32(0u32))
        .boot(T, Upto::Load)
        .boot(U, Upto::Load)
        .send(HLOS, VM_GET_PEERS, Tmpl::new())
        .ok_data(Tmpl::new().u32(2u32).u32(T.id()).u32(U.id())),
        // A VM's own queries: its VMID, its state (0 = itself), its owner, its peers.
        reach(case("a_vm_asks_its_vmid", &[Query]), T, S::Running)
            .send(T.vm, VM_GET_VMID, Tmpl::new())
            .ok_data(Tmpl::new().u32(t())),
        reach(case("a_vm_asks_its_state", &[Query]), T, S::Running)
            .send(T.vm, VM_GET_STATE, vmid_req(0u16))
            .ok_data(Tmpl::new().u8(st::RUNNING).u8(0u8).u16(0u16)),
        reach(case("a_vm_asks_its_owner", &[Query]), T, S::Running)
            .send(T.vm, VM_GET_OWNER, Tmpl::new())
            .ok_data(Tmpl::new().u32(HLOS)),
        reach(case("a_vm_asks_its_peers", &[Query]), T, S::Running)
            .send(T.vm, VM_GET_PEERS, Tmpl::new())
            .ok_data(Tmpl::new().u32(1u32).u32(HLOS)),
        reach(case("hlos_asks_a_vms_state", &[Query]), T, S::Ready)
            .send(HLOS, VM_GET_STATE, vmid_req(t()))
            .ok_data(Tmpl::new().u8(st::READY).u8(0u8).u16(0u16)),
        reach(
            case("a_vm_asks_its_mem_stats", &[Query, Gmem]),
            T,
            S::Running,
        )
        .send(T.vm, VM_MEM_STATS, vmid_req(0u16))
        .ok_data(Tmpl::new().u64(0u64).u64(0u64).u64(0u64).u64(0u64)),
    ]
}

/// §12.1: VM_START accepts every parcel lent to the VM so far, one still open for
/// MEM_APPEND included; then the owner's MEM_APPEND → DENIED and MEM_RECLAIM →
/// MEM_INUSE; after the VM's reset the parcels are released (MEM_RELEASED each) and the
/// open one stays final.
fn start_accepts_lent_parcels() -> Case {
    let vm = t();
    reach(
        case(
            "vm_start_accepts_every_parcel_lent_so_far",
            &[Lifecycle, Memparcel, Observed],
        ),
        T,
        S::Ready,
    )
    .send(
        HLOS,
        MEM_LEND,
        create(0, 0, &[(vm, rights::RWX)], &[(ram(0), PAGE.into())]),
    )
    .ok_data(Tmpl::new().cap32("private"))
    .send(
        HLOS,
        MEM_LEND,
        create(0, 7, &[(vm, rights::R)], &[(ram(0x10000), PAGE.into())]),
    )
    .ok_data(Tmpl::new().cap32("labelled"))
    .send(
        HLOS,
        MEM_LEND,
        create(0x2, 0, &[(vm, rights::RW)], &[(ram(0x20000), PAGE.into())]),
    )
    .ok_data(Tmpl::new().cap32("open"))
    .send(HLOS, VM_START, vmid_req(vm))
    .notif(HLOS, N_VM_STATUS, vm_status(vm, st::RUNNING))
    .ok()
    .send(
        HLOS,
        MEM_APPEND,
        append("open", 1, &[(ram(0x30000), PAGE.into())]),
    )
    .err(DENIED)
    .send(HLOS, MEM_RECLAIM, handle_flags("open", 0))
    .err(MEM_INUSE)
    .send(HLOS, MEM_RECLAIM, handle_flags("labelled", 0))
    .err(MEM_INUSE)
    .force_stop(T)
    .send(HLOS, VM_RESET, vmid_req(vm))
    .notif(HLOS, N_VM_STATUS, vm_status(vm, st::RESETTING))
    .ok()
    .notif(
        HLOS,
        N_MEM_RELEASED,
        Tmpl::new().any(4).u16(vm).u16(0u16).u32(0u32),
    )
    .notif(
        HLOS,
        N_MEM_RELEASED,
        Tmpl::new().any(4).u16(vm).u16(0u16).u32(0u32),
    )
    .notif(
        HLOS,
        N_MEM_RELEASED,
        Tmpl::new().any(4).u16(vm).u16(0u16).u32(0u32),
    )
    .notif(
        HLOS,
        N_MEM_RELEASED,
        Tmpl::new().any(4).u16(vm).u16(0u16).u32(0u32),
    )
    .notif(HLOS, N_VM_STATUS, vm_status(vm, st::RESET))
    .send(
        HLOS,
        MEM_APPEND,
        append("open", 1, &[(ram(0x30000), PAGE.into())]),
    )
    .err(DENIED)
    .send(HLOS, MEM_RECLAIM, handle_flags("open", 0))
    .ok()
}

/// §12.1 "the handle counter also advances on failed creates": gunyah-rm does not follow
/// this line: a failed request changes nothing (TEAM.md), so the next handle is the
/// next number.
fn failed_create_takes_no_handle() -> Case {
    case(
        "a_failed_create_takes_no_handle_number",
        &[Memparcel, Observed],
    )
    .boot(T, Upto::Load)
    .send(
        HLOS,
        MEM_LEND,
        create(0, 0, &[(t(), rights::RW)], &[(ram(0), PAGE.into())]),
    )
    .ok_data(Tmpl::new().cap32("h1"))
    .send(
        HLOS,
        MEM_LEND,
        create(0, 0, &[(t(), 0x2)], &[(ram(0x10000), PAGE.into())]),
    )
    .err(ARGUMENT_INVALID)
    .send(
        HLOS,
        MEM_LEND,
        create(0, 0, &[(t(), rights::RW)], &[(ram(0x20000), PAGE.into())]),
    )
    .ok_data(Tmpl::new().u32(at("h1", 1)))
}

pub fn cases() -> Vec<Case> {
    let mut v = alloc_cases();
    v.extend(size_cases());
    v.extend(resource_cases());
    v.extend(time_firmware_cases());
    v.extend(query_cases());
    v.push(start_accepts_lent_parcels());
    v.push(failed_create_takes_no_handle());
    v
}
