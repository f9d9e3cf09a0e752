//! VM identity (§2.3, §9): VM_GET_ID and VM_LOOKUP_NAME / URI / GUID, with the layouts of
//! Gunyah's RM (`vm_mgnt_handle_get_id`, `vm_mgnt_handle_lookup_*` in
//! `src/vm_mgnt/vm_mgnt.c`) and Qualcomm's driver (`gh_rm_drv_private.h`): GET_ID answers
//! `u32 n` and entries {u8 type, u8 0, u16 size, bytes padded to 4}: the GUID (zero when the
//! VM has none), NAME, URI, SIGN_AUTH ("N/A" for an image not authenticated). HLOS is named
//! "HLOS". The catalogue's VMs are staged with a DT that has no VM config: no name, no URI.
//! Who may ask is in `auth.rs`.

use alloc::vec;
use alloc::vec::Vec;

use crate::case::{case, Case, Tag::*};
use crate::dsl::*;
use crate::ids::{err::*, *};
use crate::tmpl::Tmpl;

/// A lookup request: u16 size, u16 0, the bytes, zero-padded to 4.
fn chars(s: &[u8]) -> Tmpl {
    let pad = (4 - s.len() % 4) % 4;
    Tmpl::new()
        .u16(s.len() as u16)
        .u16(0u16)
        .bytes(s)
        .zeros(pad)
}

/// HLOS's identity: zero GUID, NAME "HLOS", SIGN_AUTH "N/A".
pub fn hlos_ids() -> Tmpl {
    Tmpl::new()
        .u32(3u32)
        .u8(0u8)
        .u8(0u8)
        .u16(16u16)
        .zeros(16)
        .u8(2u8)
        .u8(0u8)
        .u16(4u16)
        .bytes(b"HLOS")
        .u8(3u8)
        .u8(0u8)
        .u16(3u16)
        .bytes(b"N/A\0")
}

/// A VM without a config: zero GUID and SIGN_AUTH "N/A".
pub fn anonymous_ids() -> Tmpl {
    Tmpl::new()
        .u32(2u32)
        .u8(0u8)
        .u8(0u8)
        .u16(16u16)
        .zeros(16)
        .u8(3u8)
        .u8(0u8)
        .u16(3u16)
        .bytes(b"N/A\0")
}

pub fn cases() -> Vec<Case> {
    let t = T.id();
    vec![
        // VMID 0 is the caller; HLOS is "HLOS".
        case("get_id_of_hlos", &[Query])
            .send(HLOS, VM_GET_ID, vmid_req(0u16))
            .ok_data(hlos_ids())
            .send(HLOS, VM_GET_ID, vmid_req(HLOS))
            .ok_data(hlos_ids()),
        // A READY / RUNNING VM without a config: the zero GUID and the signing authority.
        case("get_id_of_a_vm_without_a_config", &[Query])
            .boot(T, Upto::Ready)
            .send(HLOS, VM_GET_ID, vmid_req(t))
            .ok_data(anonymous_ids())
            .send(HLOS, VM_START, vmid_req(t))
            .notif(HLOS, N_VM_STATUS, vm_status(t, st::RUNNING))
            .ok()
            .send(t, VM_GET_ID, vmid_req(0u16))
            .ok_data(anonymous_ids()),
        // Outside READY, RUNNING, PAUSED: VM_STATE. Unknown VMIDs and the RM: NORESOURCE.
        case("get_id_of_a_vm_in_load_is_vm_state", &[Query])
            .boot(T, Upto::Load)
            .send(HLOS, VM_GET_ID, vmid_req(t))
            .err(VM_STATE),
        case("get_id_of_an_unknown_vmid_is_noresource", &[Query])
            .send(HLOS, VM_GET_ID, vmid_req(0x7Fu16))
            .err(NORESOURCE)
            .send(HLOS, VM_GET_ID, vmid_req(RM))
            .err(NORESOURCE),
        // The request is exactly 4 bytes; its reserved half-word is not checked.
        case("get_id_size_must_be_4", &[Query, Protocol])
            .send(HLOS, VM_GET_ID, Tmpl::new().u16(HLOS))
            .err(MSG_INVALID)
            .send(HLOS, VM_GET_ID, vmid_req(HLOS).u32(0u32))
            .err(MSG_INVALID)
            .send(HLOS, VM_GET_ID, Tmpl::new())
            .err(MSG_INVALID)
            .send(HLOS, VM_GET_ID, Tmpl::new().u16(HLOS).u16(0xFFFFu16))
            .ok_data(hlos_ids()),
        // Lookups: u32 count, {u16 vmid, u16 0} each; nothing found is OK with 0.
        case("lookup_name_finds_hlos", &[Query])
            .send(HLOS, VM_LOOKUP_NAME, chars(b"HLOS"))
            .ok_data(Tmpl::new().u32(1u32).u16(HLOS).u16(0u16))
            .send(HLOS, VM_LOOKUP_NAME, chars(b"hlos"))
            .ok_data(Tmpl::new().u32(0u32))
            .send(HLOS, VM_LOOKUP_URI, chars(b"HLOS"))
            .ok_data(Tmpl::new().u32(0u32))
            .send(HLOS, VM_LOOKUP_GUID, Tmpl::new().zeros(16))
            .ok_data(Tmpl::new().u32(0u32)),
        // Lookup requests: size over 79 → ARGUMENT_INVALID (before the length check); a
        // length that is not 4 + size padded, or padding that is not 0 → MSG_INVALID; GUID 16.
        case("lookup_request_checks", &[Query, Protocol])
            .send(HLOS, VM_LOOKUP_NAME, Tmpl::new().u16(80u16).u16(0u16))
            .err(ARGUMENT_INVALID)
            .send(HLOS, VM_LOOKUP_URI, chars(&[b'a'; 80]))
            .err(ARGUMENT_INVALID)
            .send(HLOS, VM_LOOKUP_NAME, chars(&[b'a'; 79]))
            .ok_data(Tmpl::new().u32(0u32))
            .send(
                HLOS,
                VM_LOOKUP_NAME,
                Tmpl::new().u16(4u16).u16(0u16).bytes(b"HLO"),
            )
            .err(MSG_INVALID)
            .send(
                HLOS,
                VM_LOOKUP_URI,
                Tmpl::new()
                    .u16(1u16)
                    .u16(0u16)
                    .bytes(b"H")
                    .u8(0u8)
                    .u16(1u16),
            )
            .err(MSG_INVALID)
            .send(HLOS, VM_LOOKUP_NAME, Tmpl::new().u16(1u16))
            .err(MSG_INVALID)
            .send(HLOS, VM_LOOKUP_GUID, Tmpl::new().zeros(15))
            .err(MSG_INVALID)
            .send(HLOS, VM_LOOKUP_GUID, Tmpl::new().zeros(20))
            .err(MSG_INVALID),
    ]
}
