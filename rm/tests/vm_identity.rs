//! VM identity: VM_GET_ID (0x56000010) and VM_LOOKUP_URI / GUID / NAME (0x56000011..13),
//! answered as Gunyah's RM does (`src/vm_mgnt/vm_mgnt.c`, layouts in `gunyah_rm_abi::vm_id`),
//! from every kind of caller: HLOS (the manager), the VM itself, another VM, a VMID that does
//! not exist, and with malformed payloads. Every refusal changes nothing and notifies nobody
//! (`H::call_fails` compares full state dumps).

mod common;

#[path = "common/dtc.rs"]
mod dtc_tool;

use common::*;
use dtc_tool::dtc;

/// `vm-guid = "0f2b6a9c-3e4d-4f5a-8b7c-6d5e4f3a2b1c"` as bytes, in the order written (as
/// Gunyah's parser and Linux's `uuid_parse` give them).
const GUID: [u8; 16] = [
    0x0f, 0x2b, 0x6a, 0x9c, 0x3e, 0x4d, 0x4f, 0x5a, 0x8b, 0x7c, 0x6d, 0x5e, 0x4f, 0x3a, 0x2b, 0x1c,
];

/// A small VM config with every identity: name, URI and GUID.
fn named_config(name: &str, uri: Option<&str>, guid: bool) -> Vec<u8> {
    let uri = uri.map_or(String::new(), |u| format!("vm-uri = \"{u}\";"));
    let guid = if guid {
        "vm-guid = \"0f2b6a9c-3e4d-4f5a-8b7c-6d5e4f3a2b1c\";"
    } else {
        ""
    };
    dtc(&format!(
        r#"/dts-v1/;
/ {{
    #address-cells = <2>;
    #size-cells = <2>;
    gunyah-vm-config {{
        vm-type = "aarch64-guest";
        image-name = "{name}";
        {uri}
        {guid}
        memory {{
            base-address = <0x0 0x80000000>;
            size-min = <0x0 0x00100000>;
        }};
        vcpus {{
            affinity = "proxy";
        }};
        vdevices {{
            generate = "/hypervisor";
            rm-rpc {{ vdevice-type = "rm-rpc"; }};
        }};
        gmem {{
            size = <0x0 0x00100000>;
            demand-paging;
        }};
    }};
    cpus {{
        #address-cells = <1>;
        #size-cells = <0>;
        cpu@0 {{ device_type = "cpu"; reg = <0>; }};
    }};
}};
"#
    ))
}

/// HLOS launches a VM with `dtb` in its image parcel (VM_ALLOC_VMID, MEM_LEND, VM_CONFIG_IMAGE,
/// VM_INIT: the RM applies the config), to READY; RUNNING with `start`.
fn launch(h: &mut H, dtb: &[u8], start: bool) -> u16 {
    launch_with_image(h, dtb, start).0
}

/// [`launch`], with the image parcel's handle.
fn launch_with_image(h: &mut H, dtb: &[u8], start: bool) -> (u16, u32) {
    let vmid = h.ok(HLOS, VM_ALLOC, &vmid_pad(0)).u32_at(0) as u16;
    let pa = ready_vm_image_pa(vmid);
    assert!(dtb.len() <= 0x1000);
    use gunyah_rm::platform::PhysMem;
    assert!(h.rm.platform_mut().write(pa, dtb));
    let img = h
        .ok(
            HLOS,
            MEM_LEND,
            &create(0, 0, 0, &[(vmid, 7)], &[(pa, 0x1000)]),
        )
        .u32_at(0);
    h.ok(
        HLOS,
        VM_CONFIG_IMAGE,
        &config_image(vmid, 0, img, (0, 0), (0, dtb.len() as u64)),
    );
    h.ok(HLOS, VM_INIT, &vmid_pad(vmid));
    if start {
        h.ok(HLOS, VM_START, &vmid_pad(vmid));
    }
    (vmid, img)
}

/// VM_GET_ID reply data built by hand: `u32 n`, then {u8 type, u8 0, u16 size, bytes, pad}.
fn ids(entries: &[(u8, &[u8])]) -> Vec<u8> {
    let mut v = (entries.len() as u32).to_le_bytes().to_vec();
    for (ty, id) in entries {
        v.extend_from_slice(&[*ty, 0]);
        v.extend_from_slice(&(id.len() as u16).to_le_bytes());
        v.extend_from_slice(id);
        while !v.len().is_multiple_of(4) {
            v.push(0);
        }
    }
    v
}

const GUID_T: u8 = 0;
const URI_T: u8 = 1;
const NAME_T: u8 = 2;
const SIGN_AUTH_T: u8 = 3;

/// What Gunyah's RM answers for a VM with no GUID, name or URI: the zero GUID and the
/// signing authority (`"N/A"`: no image authenticated, its QEMU platform's string).
fn anonymous() -> Vec<u8> {
    ids(&[(GUID_T, &[0; 16]), (SIGN_AUTH_T, b"N/A")])
}

/// Lookup request: u16 size, u16 0, chars padded to 4.
fn chars(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u16).to_le_bytes().to_vec();
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(s);
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
    v
}

/// Lookup reply data: u32 count, {u16 vmid, u16 0} each.
fn found(vmids: &[u16]) -> Vec<u8> {
    let mut v = (vmids.len() as u32).to_le_bytes().to_vec();
    for id in vmids {
        v.extend_from_slice(&id.to_le_bytes());
        v.extend_from_slice(&[0, 0]);
    }
    v
}

#[test]
fn hlos_is_named_hlos() {
    let mut h = H::new();
    let hlos = ids(&[(GUID_T, &[0; 16]), (NAME_T, b"HLOS"), (SIGN_AUTH_T, b"N/A")]);
    // VMID 0 is the caller; the reply is the 44 bytes the Linux driver checks the sizes of.
    let c = h.ok(HLOS, VM_GET_ID, &vmid_pad(0));
    assert_eq!(c.data, hlos);
    assert_eq!(c.data.len(), 40);
    assert_eq!(h.ok(HLOS, VM_GET_ID, &vmid_pad(HLOS)).data, hlos);
    assert!(c.notifs().is_empty());
    assert_eq!(
        h.ok(HLOS, VM_LOOKUP_NAME, &chars(b"HLOS")).data,
        found(&[HLOS])
    );
}

#[test]
fn a_vm_launched_from_its_config_has_its_configs_ids() {
    let mut h = H::new();
    let t = launch(
        &mut h,
        &named_config("trusted-vm", Some("vm://trusted/keystore"), true),
        true,
    );
    let want = ids(&[
        (GUID_T, &GUID),
        (NAME_T, b"trusted-vm"),
        (URI_T, b"vm://trusted/keystore"),
        (SIGN_AUTH_T, b"N/A"),
    ]);
    // Its manager, and the VM itself (by VMID and by 0).
    assert_eq!(h.ok(HLOS, VM_GET_ID, &vmid_pad(t)).data, want);
    assert_eq!(h.ok(t, VM_GET_ID, &vmid_pad(t)).data, want);
    assert_eq!(h.ok(t, VM_GET_ID, &vmid_pad(0)).data, want);
    // The reply decodes with the abi crate and says the same.
    let mut payload = vec![0; 4];
    payload.extend_from_slice(&want);
    let r = gunyah_rm_abi::Reply::decode(gunyah_rm_abi::MsgId::VM_GET_ID, &payload).unwrap();
    let gunyah_rm_abi::ReplyData::VmIds(v) = r.data else {
        panic!("{r:?}")
    };
    assert_eq!(v.get(NAME_T), Some(&b"trusted-vm"[..]));
    // A VM HLOS manages is HLOS's peer: it may ask who HLOS is (Gunyah's is_vm_query_allowed).
    assert_eq!(
        h.ok(t, VM_GET_ID, &vmid_pad(HLOS)).data,
        ids(&[(GUID_T, &[0; 16]), (NAME_T, b"HLOS"), (SIGN_AUTH_T, b"N/A")])
    );
    // Only what the config has: no URI, no GUID → zero GUID, name, sign auth.
    let u = launch(&mut h, &named_config("app-0", None, false), true);
    assert_eq!(
        h.ok(HLOS, VM_GET_ID, &vmid_pad(u)).data,
        ids(&[
            (GUID_T, &[0; 16]),
            (NAME_T, b"app-0"),
            (SIGN_AUTH_T, b"N/A")
        ])
    );
    // READY answers too.
    let r = launch(&mut h, &named_config("ready-vm", None, false), false);
    assert_eq!(
        h.ok(HLOS, VM_GET_ID, &vmid_pad(r)).data,
        ids(&[
            (GUID_T, &[0; 16]),
            (NAME_T, b"ready-vm"),
            (SIGN_AUTH_T, b"N/A")
        ])
    );
}

#[test]
fn a_vm_without_a_config_has_only_the_zero_guid_and_sign_auth() {
    let mut h = H::new();
    let v = h.ready_vm();
    assert_eq!(h.ok(HLOS, VM_GET_ID, &vmid_pad(v)).data, anonymous());
    assert_eq!(h.ok(v, VM_GET_ID, &vmid_pad(0)).data, anonymous());
}

#[test]
fn other_vms_and_unknown_vmids_do_not_exist() {
    let mut h = H::new();
    let t = launch(&mut h, &named_config("t", Some("vm://t"), true), true);
    let u = launch(&mut h, &named_config("u", None, false), true);
    // Another VM (same manager, not a peer): NORESOURCE, as for a VMID that does not exist.
    h.call_fails(u, VM_GET_ID, &vmid_pad(t), NORESOURCE);
    h.call_fails(t, VM_GET_ID, &vmid_pad(u), NORESOURCE);
    // Unknown VMIDs, from HLOS and from a VM; the RM's own VMID.
    for who in [HLOS, t] {
        for vmid in [0x7F, 0x80 + 60, 0xBE, 0xFFFF, 0xFF, 1] {
            h.call_fails(who, VM_GET_ID, &vmid_pad(vmid), NORESOURCE);
        }
    }
    // Lookups do not list what the caller may not see.
    assert_eq!(h.ok(u, VM_LOOKUP_NAME, &chars(b"t")).data, found(&[]));
    assert_eq!(h.ok(u, VM_LOOKUP_URI, &chars(b"vm://t")).data, found(&[]));
    assert_eq!(h.ok(u, VM_LOOKUP_GUID, &GUID).data, found(&[]));
    // Its manager and the VM itself find it.
    for who in [HLOS, t] {
        assert_eq!(h.ok(who, VM_LOOKUP_NAME, &chars(b"t")).data, found(&[t]));
        assert_eq!(
            h.ok(who, VM_LOOKUP_URI, &chars(b"vm://t")).data,
            found(&[t])
        );
        assert_eq!(h.ok(who, VM_LOOKUP_GUID, &GUID).data, found(&[t]));
    }
    // A peer finds its manager by name.
    assert_eq!(
        h.ok(u, VM_LOOKUP_NAME, &chars(b"HLOS")).data,
        found(&[HLOS])
    );
}

#[test]
fn vm_get_id_outside_ready_running_paused_is_vm_state() {
    let mut h = H::new();
    // LOAD: allocated only.
    let l = h.ok(HLOS, VM_ALLOC, &vmid_pad(0)).u32_at(0) as u16;
    h.call_fails(HLOS, VM_GET_ID, &vmid_pad(l), VM_STATE);
    // A VM in LOAD has no RM queue: its own request is dropped unanswered.
    h.no_reply(l, VM_GET_ID, &vmid_pad(0));
    // EXITED (forced stop): VM_STATE; RESET: identity gone, VM_STATE; lookups find nothing.
    let (t, img) = launch_with_image(&mut h, &named_config("t", None, true), true);
    // VM_STOP: u16 vmid, u8 flags (FORCE), u8 reserved, u32 stop_reason.
    let [lo, hi] = t.to_le_bytes();
    h.ok(HLOS, VM_STOP, &[lo, hi, 1, 0, 0, 0, 0, 0]);
    h.call_fails(HLOS, VM_GET_ID, &vmid_pad(t), VM_STATE);
    assert_eq!(h.ok(HLOS, VM_LOOKUP_NAME, &chars(b"t")).data, found(&[t]));
    h.ok(HLOS, VM_RESET, &vmid_pad(t));
    h.call_fails(HLOS, VM_GET_ID, &vmid_pad(t), VM_STATE);
    assert_eq!(h.ok(HLOS, VM_LOOKUP_NAME, &chars(b"t")).data, found(&[]));
    assert_eq!(h.ok(HLOS, VM_LOOKUP_GUID, &GUID).data, found(&[]));
    // A VM given the same VMID later starts with no name.
    h.ok(HLOS, VM_DEALLOC, &vmid_pad(t));
    h.ok(HLOS, MEM_RECLAIM, &[img.to_le_bytes(), [0; 4]].concat());
    let again = h.ready_vm();
    assert_eq!(again, t);
    assert_eq!(h.ok(HLOS, VM_GET_ID, &vmid_pad(t)).data, anonymous());
}

#[test]
fn malformed_requests_are_refused_and_change_nothing() {
    let mut h = H::new();
    let t = launch(&mut h, &named_config("t", Some("vm://t"), true), true);
    for who in [HLOS, t] {
        // VM_GET_ID: exactly 4 bytes.
        for p in [
            &[][..],
            &[3][..],
            &[3, 0, 0][..],
            &[3, 0, 0, 0, 0][..],
            &[0; 8][..],
        ] {
            h.call_fails(who, VM_GET_ID, p, MSG_INVALID);
        }
        // VM_LOOKUP_GUID: exactly 16 bytes.
        h.call_fails(who, VM_LOOKUP_GUID, &GUID[..15], MSG_INVALID);
        h.call_fails(who, VM_LOOKUP_GUID, &[GUID, GUID].concat(), MSG_INVALID);
        h.call_fails(who, VM_LOOKUP_GUID, &[], MSG_INVALID);
        for id in [VM_LOOKUP_NAME, VM_LOOKUP_URI] {
            // Short head, unpadded, padding not zero, trailing word.
            h.call_fails(who, id, &[1, 0, 0], MSG_INVALID);
            h.call_fails(who, id, &[1, 0, 0, 0, b't'], MSG_INVALID);
            h.call_fails(who, id, &[1, 0, 0, 0, b't', 0, 0, 1], MSG_INVALID);
            h.call_fails(
                who,
                id,
                &[1, 0, 0, 0, b't', 0, 0, 0, 0, 0, 0, 0],
                MSG_INVALID,
            );
            // size over 79 → ARGUMENT_INVALID, checked before the length.
            h.call_fails(who, id, &[80, 0, 0, 0], ARGUMENT_INVALID);
            h.call_fails(who, id, &chars(&[b'a'; 80]), ARGUMENT_INVALID);
            // 79 bytes is fine (and matches nothing).
            assert_eq!(h.ok(who, id, &chars(&[b'a'; 79])).data, found(&[]));
        }
    }
    // An empty name / URI, the zero GUID: no VM (Gunyah's RM would list unnamed peers).
    let _anon = h.ready_vm();
    assert_eq!(h.ok(HLOS, VM_LOOKUP_NAME, &chars(b"")).data, found(&[]));
    assert_eq!(h.ok(HLOS, VM_LOOKUP_URI, &chars(b"")).data, found(&[]));
    assert_eq!(h.ok(HLOS, VM_LOOKUP_GUID, &[0; 16]).data, found(&[]));
    // A name is not a URI and case matters.
    assert_eq!(h.ok(HLOS, VM_LOOKUP_URI, &chars(b"t")).data, found(&[]));
    assert_eq!(h.ok(HLOS, VM_LOOKUP_NAME, &chars(b"T")).data, found(&[]));
}
