//! Who may do what (DESIGN.md "Who may do what", `rm/src/dispatch.rs` docs): every rule
//! from every kind of caller: HLOS (the manager and owner), the VM itself (T), an unrelated
//! VM (U), a VM in LOAD (L: no RM queue yet, so its requests are dropped unanswered), and
//! a deallocated VMID (D: likewise). Answers come from the rules and the spec (§5.5,
//! §7.3, §10.7, §12.1), refusals change nothing and tell nobody.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::case::{case, Case, Need, Step, Tag::*};
use crate::dsl::*;
use crate::ids::{err::*, golden as gf, notify as nf, rights, st, trans, *};
use crate::tmpl::{Tmpl, Val};

/// The VM in LOAD.
const L: Slot = W;
/// The deallocated VMID.
const D: Slot = X;

fn t() -> Val {
    T.id()
}

/// How a caller is answered.
#[derive(Clone, Copy)]
enum Ans {
    /// OK; the function adds the reply (and any notifications) for this caller.
    Ok(fn(Case, Val) -> Case),
    /// Refused with this code; nothing changes.
    Err(u32),
    /// Refused with this code and a hypervisor error word (§1.3).
    ErrHyp(u32),
}
use Ans::*;

/// A rule: its setup on top of the world, the request, and the answers to HLOS, T and U.
struct Row {
    name: &'static str,
    setup: fn(Case) -> Case,
    id: u32,
    body: fn() -> Tmpl,
    ans: [Ans; 3],
}

fn none(c: Case) -> Case {
    c
}

fn ok(c: Case, _: Val) -> Case {
    c.ok()
}

/// T and U running; L allocated; D was READY, then reset and deallocated.
fn world(c: Case) -> Case {
    c.boot(T, Upto::Running)
        .boot(U, Upto::Running)
        .boot(L, Upto::Load)
        .boot(D, Upto::Ready)
        .reset_idle(D)
        .dealloc(D, true)
}

/// Parcel `x`: a page of HLOS RAM lent to T, not accepted.
fn with_x(c: Case) -> Case {
    c.send(
        HLOS,
        MEM_LEND,
        create(0, 0, &[(t(), rights::RW)], &[(ram(0), PAGE.into())]),
    )
    .ok_data(Tmpl::new().cap32("x"))
}

/// Golden image `g`: one page HLOS shared with itself and sealed.
fn with_g(c: Case) -> Case {
    c.send(
        HLOS,
        MEM_SHARE,
        create(
            0x1,
            0,
            &[(HLOS.into(), rights::RWX)],
            &[(ram(0x10000), PAGE.into())],
        ),
    )
    .ok_data(Tmpl::new().cap32("gp"))
    .send(HLOS, GOLDEN_SEAL, seal("gp"))
    .ok_data(Tmpl::new().cap32("g").any(36))
}

/// `g` mapped read-only into T at `gw`.
fn with_g_mapped(c: Case) -> Case {
    with_g(c)
        .send(
            HLOS,
            GOLDEN_MAP,
            golden_map("g".into(), t(), 0, 0, gw(0), PAGE, gf::NO_GMEM.into()),
        )
        .ok()
}

/// Pool `p` of 4 pages charged to T.
fn with_pool(c: Case) -> Case {
    c.send(HLOS, GMEM_CREATE, gmem_create(4 * PAGE, t()))
        .ok_data(Tmpl::new().cap32("p"))
}

fn rows() -> Vec<Row> {
    const VI: Ans = Err(VMID_INVALID);
    const DN: Ans = Err(DENIED);
    const ST: Ans = Err(VM_STATE);
    alloc::vec![
        // §5.5: only HLOS allocates VMIDs.
        Row {
            name: "vm_alloc",
            setup: none,
            id: VM_ALLOC,
            body: || vmid_req(0u16),
            ans: [
                Ok(|c, _| c.ok_data(Tmpl::new().u32_in(DYN_FIRST.into(), DYN_LAST.into()))),
                DN,
                DN
            ]
        },
        // §5.5: VM_CONFIG_IMAGE and VM_INIT from HLOS only (DENIED); T runs (VM_STATE).
        Row {
            name: "vm_config_image_of_t",
            setup: none,
            id: VM_CONFIG_IMAGE,
            body: || config_image_raw(
                t(),
                0,
                0u32.into(),
                (0u64.into(), 0u64.into()),
                (0u64.into(), 0x100u64.into())
            ),
            ans: [ST, DN, DN]
        },
        Row {
            name: "vm_init_of_t",
            setup: none,
            id: VM_INIT,
            body: || vmid_req(t()),
            ans: [ST, DN, DN]
        },
        // §5.5, §10.7: about T, only its manager; anyone else (T itself too) VMID_INVALID.
        Row {
            name: "vm_start_of_t",
            setup: none,
            id: VM_START,
            body: || vmid_req(t()),
            ans: [ST, VI, VI]
        },
        Row {
            name: "vm_stop_of_t",
            setup: none,
            id: VM_STOP,
            body: || stop(t(), 1, 0),
            ans: [
                Ok(|c, _| c
                    .notif(HLOS, N_VM_STATUS, vm_status(t(), st::EXITED))
                    .notif(HLOS, N_VM_EXITED, vm_exited_forced(t()))
                    .ok()),
                VI,
                VI
            ]
        },
        Row {
            name: "vm_reset_of_t",
            setup: none,
            id: VM_RESET,
            body: || vmid_req(t()),
            ans: [ST, VI, VI]
        },
        Row {
            name: "vm_dealloc_of_t",
            setup: none,
            id: VM_DEALLOC,
            body: || vmid_req(t()),
            ans: [ST, VI, VI]
        },
        Row {
            name: "vm_auth_image_of_t",
            setup: none,
            id: VM_AUTH_IMAGE,
            body: || vmid_req(t()),
            ans: [ST, VI, VI]
        },
        // Queries about T: its manager and T itself; to anyone else T does not exist.
        Row {
            name: "vm_get_state_of_t",
            setup: none,
            id: VM_GET_STATE,
            body: || vmid_req(t()),
            ans: [
                Ok(|c, _| c.ok_data(Tmpl::new().u8(st::RUNNING).u8(0u8).u16(0u16))),
                Ok(|c, _| c.ok_data(Tmpl::new().u8(st::RUNNING).u8(0u8).u16(0u16))),
                Err(NORESOURCE)
            ]
        },
        Row {
            name: "vm_get_hyp_resources_of_t",
            setup: none,
            id: VM_GET_HYP_RESOURCES,
            body: || vmid_req(t()),
            ans: [
                Ok(|c, _| c.ok_data(Tmpl::new().u32(1u32).any(44))),
                Ok(|c, _| c.ok_data(Tmpl::new().u32(1u32).any(44))),
                Err(ARGUMENT_INVALID)
            ]
        },
        // §9 VM identity: T itself, its manager; to another VM T does not exist. A VM HLOS
        // manages is HLOS's peer (Gunyah's is_vm_query_allowed): it may ask who HLOS is.
        Row {
            name: "vm_get_id_of_t",
            setup: none,
            id: VM_GET_ID,
            body: || vmid_req(t()),
            ans: [
                Ok(|c, _| c.ok_data(super::identity::anonymous_ids())),
                Ok(|c, _| c.ok_data(super::identity::anonymous_ids())),
                Err(NORESOURCE)
            ]
        },
        Row {
            name: "vm_get_id_of_hlos",
            setup: none,
            id: VM_GET_ID,
            body: || vmid_req(HLOS),
            ans: [
                Ok(|c, _| c.ok_data(super::identity::hlos_ids())),
                Ok(|c, _| c.ok_data(super::identity::hlos_ids())),
                Ok(|c, _| c.ok_data(super::identity::hlos_ids()))
            ]
        },
        Row {
            name: "vm_lookup_name_hlos",
            setup: none,
            id: VM_LOOKUP_NAME,
            body: || Tmpl::new().u16(4u16).u16(0u16).bytes(b"HLOS"),
            ans: [
                Ok(|c, _| c.ok_data(Tmpl::new().u32(1u32).u16(HLOS).u16(0u16))),
                Ok(|c, _| c.ok_data(Tmpl::new().u32(1u32).u16(HLOS).u16(0u16))),
                Ok(|c, _| c.ok_data(Tmpl::new().u32(1u32).u16(HLOS).u16(0u16)))
            ]
        },
        // §12.1: NORESOURCE for a VMID the caller cannot see.
        Row {
            name: "vm_set_firmware_mem_of_t",
            setup: none,
            id: VM_SET_FIRMWARE_MEM,
            body: || Tmpl::new().u16(t()).u16(0u16).u32(0u32).u64(0u64).u64(PAGE),
            ans: [ErrHyp(VM_STATE), ErrHyp(NORESOURCE), ErrHyp(NORESOURCE)]
        },
        Row {
            name: "vm_set_time_base_of_t",
            setup: none,
            id: VM_SET_TIME_BASE,
            body: || Tmpl::new().u16(t()).u16(0u16).u64(0u64).u64(0u64),
            ans: [ErrHyp(VM_STATE), ErrHyp(VM_STATE), ErrHyp(NORESOURCE)]
        },
        Row {
            name: "vm_set_boot_context_of_t",
            setup: none,
            id: VM_SET_BOOT_CONTEXT,
            body: || Tmpl::new().u16(t()).u8(1u8).u8(0u8).u32(0u32).u64(0u64),
            ans: [ST, VI, VI]
        },
        Row {
            name: "vm_set_demand_paging_of_t",
            setup: none,
            id: VM_SET_DEMAND_PAGING,
            body: || Tmpl::new()
                .u16(t())
                .u16(0u16)
                .u32(1u32)
                .u64(gw(0))
                .u64(MIB2),
            ans: [ST, VI, VI]
        },
        Row {
            name: "vm_set_address_layout_of_t",
            setup: none,
            id: VM_SET_ADDRESS_LAYOUT,
            body: || Tmpl::new()
                .u16(t())
                .u16(0u16)
                .u32(0u32)
                .u64(gw(0))
                .u64(MIB2),
            ans: [ST, VI, VI]
        },
        // §5.3, §5.4: a VM reports its own status and exits itself; HLOS may not.
        Row {
            name: "vm_set_status",
            setup: none,
            id: VM_SET_STATUS,
            body: || Tmpl::new().u8(0u8).u8(4u8).u16(0u16),
            ans: [
                DN,
                Ok(|c, me| c
                    .notif(
                        HLOS,
                        N_VM_STATUS,
                        Tmpl::new()
                            .u16(me)
                            .u16(0u16)
                            .u8(st::RUNNING)
                            .u8(4u8)
                            .u16(0u16)
                    )
                    .ok()),
                Ok(|c, me| c
                    .notif(
                        HLOS,
                        N_VM_STATUS,
                        Tmpl::new()
                            .u16(me)
                            .u16(0u16)
                            .u8(st::RUNNING)
                            .u8(4u8)
                            .u16(0u16)
                    )
                    .ok())
            ]
        },
        Row {
            name: "vm_exit",
            setup: none,
            id: VM_EXIT,
            body: || Tmpl::new().u16(0u16).u8(0u8).u8(0u8),
            ans: [
                DN,
                Ok(|c, me| c
                    .notif(HLOS, N_VM_STATUS, vm_status(me, st::EXITED))
                    .notif(
                        HLOS,
                        N_VM_EXITED,
                        Tmpl::new().u16(me).u16(0u16).u32(4u32).u32(0u32)
                    )
                    .ok()),
                Ok(|c, me| c
                    .notif(HLOS, N_VM_STATUS, vm_status(me, st::EXITED))
                    .notif(
                        HLOS,
                        N_VM_EXITED,
                        Tmpl::new().u16(me).u16(0u16).u32(4u32).u32(0u32)
                    )
                    .ok())
            ]
        },
        // Queries about the caller itself: anyone with an RM queue.
        Row {
            name: "vm_get_vmid",
            setup: none,
            id: VM_GET_VMID,
            body: Tmpl::new,
            ans: [
                Ok(|c, me| c.ok_data(Tmpl::new().u32(me))),
                Ok(|c, me| c.ok_data(Tmpl::new().u32(me))),
                Ok(|c, me| c.ok_data(Tmpl::new().u32(me)))
            ]
        },
        Row {
            name: "vm_get_owner",
            setup: none,
            id: VM_GET_OWNER,
            body: Tmpl::new,
            ans: [
                Ok(|c, _| c.ok_data(Tmpl::new().u32(RM))),
                Ok(|c, _| c.ok_data(Tmpl::new().u32(HLOS))),
                Ok(|c, _| c.ok_data(Tmpl::new().u32(HLOS)))
            ]
        },
        Row {
            name: "vm_host_get_type",
            setup: none,
            id: VM_HOST_GET_TYPE,
            body: Tmpl::new,
            ans: [
                Ok(|c, _| c.ok_data(Tmpl::new().u32(HOST_TYPE))),
                Ok(|c, _| c.ok_data(Tmpl::new().u32(HOST_TYPE))),
                Ok(|c, _| c.ok_data(Tmpl::new().u32(HOST_TYPE)))
            ]
        },
        // Extension: VM_MEM_STATS for the VM itself or its manager.
        Row {
            name: "vm_mem_stats_of_t",
            setup: none,
            id: VM_MEM_STATS,
            body: || vmid_req(t()),
            ans: [
                Ok(|c, _| c.ok_data(Tmpl::new().any(32))),
                Ok(|c, _| c.ok_data(Tmpl::new().any(32))),
                VI
            ]
        },
        // SIM_VM_READ/WRITE (simulator): the target VM itself or its manager only.
        Row {
            name: "sim_vm_read_of_hlos",
            setup: none,
            id: SIM_VM_READ,
            body: || sim_read(HLOS, 4, ram(0)),
            ans: [Ok(|c, _| c.ok_data(Tmpl::new().any(4))), VI, VI]
        },
        Row {
            name: "sim_vm_write_of_hlos",
            setup: none,
            id: SIM_VM_WRITE,
            body: || sim_write(HLOS, ram(0), b"x"),
            ans: [Ok(|c, _| c.ok_data(Tmpl::new().u32(0u32))), VI, VI]
        },
        Row {
            name: "sim_vm_read_of_t",
            setup: with_g_mapped,
            id: SIM_VM_READ,
            body: || sim_read(t(), 4, gw(0)),
            ans: [
                Ok(|c, _| c.ok_data(Tmpl::new().zeros(4))),
                Ok(|c, _| c.ok_data(Tmpl::new().zeros(4))),
                VI
            ]
        },
        // gmem: a VM's manager sets its quota; a VM may not give itself a pool.
        Row {
            name: "gmem_create_for_t",
            setup: none,
            id: GMEM_CREATE,
            body: || gmem_create(PAGE, t()),
            ans: [Ok(|c, _| c.ok_data(Tmpl::new().any(4))), DN, VI]
        },
        Row {
            name: "gmem_create_for_the_caller",
            setup: none,
            id: GMEM_CREATE,
            body: || gmem_create(PAGE, 0u16),
            ans: [DN, DN, DN]
        },
        // A pool is bound by its VM or that VM's manager.
        Row {
            name: "gmem_bind_of_ts_pool",
            setup: with_pool,
            id: GMEM_BIND,
            body: || gmem_bind("p".into(), t(), rights::RW, 0, 0, gw(0), PAGE),
            ans: [
                Ok(|c, _| c.ok_data(Tmpl::new().any(4))),
                Ok(|c, _| c.ok_data(Tmpl::new().any(4))),
                DN
            ]
        },
        // §7.3: parcels are created from the caller's own memory only.
        Row {
            name: "mem_lend_of_hlos_ram",
            setup: none,
            id: MEM_LEND,
            body: || create(
                0,
                0,
                &[(Val::V(L.vm, 0), rights::RW)],
                &[(ram(0x20000), PAGE.into())]
            ),
            ans: [
                Ok(|c, _| c.ok_data(Tmpl::new().any(4))),
                Err(MEM_INVALID),
                Err(MEM_INVALID)
            ]
        },
        // §7.3, §12.1 parcel x (HLOS lent it to T; not accepted).
        Row {
            name: "mem_accept_of_x",
            setup: with_x,
            id: MEM_ACCEPT,
            body: || accept("x", trans::LEND),
            ans: [
                VI,
                Ok(|c, _| c.ok_data(Tmpl::new().u16(1u16).u16(0u16).any(16))),
                VI
            ]
        },
        Row {
            name: "mem_release_of_x",
            setup: with_x,
            id: MEM_RELEASE,
            body: || handle_flags("x", 0),
            ans: [Err(HANDLE_INVALID), Err(MEM_RELEASED), Err(HANDLE_INVALID)]
        },
        Row {
            name: "mem_reclaim_of_x",
            setup: with_x,
            id: MEM_RECLAIM,
            body: || handle_flags("x", 0),
            ans: [Ok(ok), DN, DN]
        },
        Row {
            name: "mem_notify_recall_of_x",
            setup: with_x,
            id: MEM_NOTIFY,
            body: || notify("x", nf::RECALL, 1, &[t()]),
            ans: [
                Ok(|c, _| c
                    .notif(t(), N_MEM_RECALL, Tmpl::new().u32("x").u32(1u32))
                    .ok()),
                DN,
                DN
            ]
        },
        Row {
            name: "mem_notify_accepted_of_x",
            setup: with_x,
            id: MEM_NOTIFY,
            body: || notify("x", nf::ACCEPTED, 1, &[]),
            ans: [Err(HANDLE_INVALID), Err(MEM_RELEASED), Err(HANDLE_INVALID)]
        },
        Row {
            name: "mem_append_of_x",
            setup: with_x,
            id: MEM_APPEND,
            body: || append("x", 1, &[(ram(0x30000), PAGE.into())]),
            ans: [DN, DN, DN]
        },
        Row {
            name: "mem_lookup_sgl_of_x",
            setup: with_x,
            id: MEM_LOOKUP_SGL,
            body: || lookup(0, &[(t(), rights::RW)], &[(ram(0), PAGE.into())]),
            ans: [
                Ok(|c, _| c.ok_data(Tmpl::new().u32("x"))),
                Err(LOOKUP_FAILED),
                Err(LOOKUP_FAILED)
            ]
        },
        // Golden images belong to the VM that sealed them (HLOS here): only it maps, unmaps
        // or releases one; a clone cannot map an image into itself on its own.
        Row {
            name: "golden_seal_of_x",
            setup: with_x,
            id: GOLDEN_SEAL,
            body: || seal("x"),
            ans: [Ok(|c, _| c.ok_data(Tmpl::new().any(40))), DN, DN]
        },
        Row {
            name: "golden_map_into_t",
            setup: with_g,
            id: GOLDEN_MAP,
            body: || golden_map("g".into(), t(), 0, 0, gw(0), PAGE, gf::NO_GMEM.into()),
            ans: [Ok(ok), DN, DN]
        },
        Row {
            name: "golden_map_into_u",
            setup: with_g,
            id: GOLDEN_MAP,
            body: || golden_map("g".into(), U.id(), 0, 0, gw(0), PAGE, gf::NO_GMEM.into()),
            ans: [Ok(ok), DN, DN]
        },
        Row {
            name: "golden_unmap_from_t",
            setup: with_g_mapped,
            id: GOLDEN_UNMAP,
            body: || id_vm_range("g".into(), t(), gw(0), PAGE),
            ans: [Ok(ok), DN, DN]
        },
        Row {
            name: "golden_release",
            setup: with_g,
            id: GOLDEN_RELEASE,
            body: || golden_release("g"),
            ans: [Ok(ok), DN, DN]
        },
    ]
}

fn callers() -> [(Val, &'static str); 3] {
    [
        (HLOS.into(), "hlos"),
        (t(), "t_itself"),
        (U.id(), "unrelated_u"),
    ]
}

pub fn cases() -> Vec<Case> {
    // (case, whether the RM grants it: a granted request may change the world).
    let mut v: Vec<(Case, bool)> = Vec::new();
    for r in rows() {
        let start = |name| (r.setup)(world(case(name, &[Authorization]))).shared_world();
        for (i, (who, tag)) in callers().into_iter().enumerate() {
            let name: &'static str = String::leak(format!("who_{}_from_{tag}", r.name));
            let c = start(name).send(who, r.id, (r.body)());
            v.push(match r.ans[i] {
                Ok(f) => (f(c, who), true),
                Err(code) => (c.err(code), false),
                ErrHyp(code) => (c.reply(code, Tmpl::new().any(4)).unchanged(), false),
            });
        }
        // L (LOAD) and D (deallocated) have no RM queue: dropped, nothing changes. Where
        // only running vCPUs send (the board), the same rule shows as: they cannot send.
        for (s, tag) in [(L, "a_vm_in_load"), (D, "a_deallocated_vmid")] {
            let name: &'static str = String::leak(format!("who_{}_from_{tag}", r.name));
            v.push((
                start(name)
                    .needs(Need::SendWithoutVcpu)
                    .dropped(s.id(), r.id, (r.body)())
                    .otherwise(
                        Need::SendWithoutVcpu,
                        CANNOT_SEND,
                        start(name).cannot_send(s.id()),
                    ),
                false,
            ));
        }
    }
    // Cases on the same world next to each other, refusals (which leave it as it was)
    // before grants: a runner builds each world once per run of cases that keep it.
    let mut worlds: Vec<Vec<Step>> = Vec::new();
    let mut keyed: Vec<(usize, bool, Case)> = v
        .into_iter()
        .map(|(c, granted)| {
            let w = &c.steps[..c.world];
            let k = match worlds.iter().position(|x| x == w) {
                Some(k) => k,
                None => {
                    worlds.push(w.to_vec());
                    worlds.len() - 1
                }
            };
            (k, granted, c)
        })
        .collect();
    keyed.sort_by_key(|(k, granted, _)| (*k, *granted));
    let mut v: Vec<Case> = keyed.into_iter().map(|(_, _, c)| c).collect();
    v.extend(links());
    v
}

/// How the cases whose sender has no RM queue check it where only running vCPUs send.
const CANNOT_SEND: &str = "it cannot send: no vCPU of it runs and the RM holds no queue for it";

/// A VM's RM queues exist from VM_INIT until its reset (`rm/src/vm.rs` `links_in`):
/// READY and EXITED VMs are answered; LOAD, INIT, INIT_FAILED and RESET VMs are not.
fn links() -> Vec<Case> {
    let asks = |c: Case| {
        c.needs(Need::SendWithoutVcpu)
            .send(T.vm, VM_GET_VMID, Tmpl::new())
    };
    let answered = |c: Case| c.ok_data(Tmpl::new().u32(t()));
    alloc::vec![
        answered(asks(
            case("a_ready_vm_is_answered", &[Authorization, Lifecycle]).boot(T, Upto::Ready)
        )),
        answered(asks(
            case("an_exited_vm_is_answered", &[Authorization, Lifecycle])
                .boot(T, Upto::Running)
                .force_stop(T)
        )),
        {
            let c = || {
                case("a_vm_in_init_is_not_answered", &[Authorization, Lifecycle])
                    .boot(T, Upto::Init)
            };
            asks(c())
                .silent()
                .otherwise(Need::SendWithoutVcpu, CANNOT_SEND, c().cannot_send(T.vm))
        },
        {
            let c = || {
                case("a_reset_vm_is_not_answered", &[Authorization, Lifecycle])
                    .boot(T, Upto::Ready)
                    .reset_idle(T)
            };
            asks(c())
                .silent()
                .otherwise(Need::SendWithoutVcpu, CANNOT_SEND, c().cannot_send(T.vm))
        },
        // Notifications go only to VMs with a link: MEM_SHARED for a VM in LOAD is refused
        // (covered in memparcel); a recall to a running VM arrives (above). §12.1 guest
        // clients: VM_STOP of a VM by a VM that does not own it → VMID_INVALID.
        case("a_vm_stopping_its_sibling", &[Authorization, Observed])
            .boot(T, Upto::Running)
            .boot(U, Upto::Running)
            .send(U.vm, VM_STOP, stop(t(), 1, 0))
            .err(VMID_INVALID),
        // §12.1 guest clients: MEM_ACCEPT by a VM not in the ACL → VMID_INVALID.
        case(
            "a_vm_accepting_a_parcel_not_for_it",
            &[Authorization, Observed, Memparcel]
        )
        .boot(T, Upto::Running)
        .boot(U, Upto::Running)
        .send(
            HLOS,
            MEM_LEND,
            create(0, 0, &[(t(), rights::RW)], &[(ram(0), PAGE.into())])
        )
        .ok_data(Tmpl::new().cap32("x"))
        .send(U.vm, MEM_ACCEPT, accept("x", trans::LEND))
        .err(VMID_INVALID),
    ]
}
