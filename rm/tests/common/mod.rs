//! Test harness: drives the RM only with encoded RPC packets, as a client
//! would, and runs the isolation checker after every step.
#![allow(dead_code)]

pub mod counting;
pub mod golden_setup;
pub mod mutate;
pub mod seams_only;

use gunyah_rm::sim::{default_rm, SimPlatform};
use gunyah_rm::Rm;

pub const HLOS: u16 = 3;

// Message IDs typed from spec §2.
pub const MEM_DONATE: u32 = 0x5100_0010;
pub const MEM_ACCEPT: u32 = 0x5100_0011;
pub const MEM_LEND: u32 = 0x5100_0012;
pub const MEM_SHARE: u32 = 0x5100_0013;
pub const MEM_RELEASE: u32 = 0x5100_0014;
pub const MEM_RECLAIM: u32 = 0x5100_0015;
pub const MEM_NOTIFY: u32 = 0x5100_0017;
pub const MEM_APPEND: u32 = 0x5100_0018;
pub const MEM_LOOKUP_SGL: u32 = 0x5100_001A;
pub const N_MEM_SHARED: u32 = 0x5110_0011;
pub const N_MEM_RELEASED: u32 = 0x5110_0012;
pub const N_MEM_ACCEPTED: u32 = 0x5110_0013;
pub const N_MEM_RECALL: u32 = 0x5110_0014;
pub const VM_ALLOC: u32 = 0x5600_0001;
pub const VM_DEALLOC: u32 = 0x5600_0002;
pub const VM_START: u32 = 0x5600_0004;
pub const VM_STOP: u32 = 0x5600_0005;
pub const VM_RESET: u32 = 0x5600_0006;
pub const VM_CONFIG_IMAGE: u32 = 0x5600_0009;
pub const VM_AUTH_IMAGE: u32 = 0x5600_000A;
pub const VM_INIT: u32 = 0x5600_000B;
pub const VM_GET_ID: u32 = 0x5600_0010;
pub const VM_LOOKUP_URI: u32 = 0x5600_0011;
pub const VM_LOOKUP_GUID: u32 = 0x5600_0012;
pub const VM_LOOKUP_NAME: u32 = 0x5600_0013;
pub const VM_GET_STATE: u32 = 0x5600_0017;
pub const VM_GET_HYP_RESOURCES: u32 = 0x5600_0020;
pub const VM_GET_VMID: u32 = 0x5600_0024;
pub const VM_GET_OWNER: u32 = 0x5600_0015;
pub const VM_GET_PEERS: u32 = 0x5600_0025;
pub const VM_SET_TIME_BASE: u32 = 0x5600_0030;
pub const VM_HOST_GET_TYPE: u32 = 0x5600_00A0;
pub const VM_SET_BOOT_CONTEXT: u32 = 0x5600_0031;
pub const VM_SET_FIRMWARE_MEM: u32 = 0x5600_0032;
pub const VM_SET_DEMAND_PAGING: u32 = 0x5600_0033;
pub const VM_SET_ADDRESS_LAYOUT: u32 = 0x5600_0034;
pub const VM_SET_STATUS: u32 = 0x5600_0080;
pub const VM_EXIT: u32 = 0x5600_0085;
pub const N_VM_EXITED: u32 = 0x5610_0001;
pub const N_VM_SHUTDOWN: u32 = 0x5610_0002;
pub const N_VM_STATUS: u32 = 0x5610_0008;
pub const N_FAULT_UNSERVED: u32 = 0x4710_0003;

// Error codes typed from spec §4.
// gmem / golden / CoW extension (family 0x47, `gunyah_rm_abi::ext` docs).
pub const GMEM_CREATE: u32 = 0x4700_0001;
pub const GMEM_BIND: u32 = 0x4700_0002;
pub const GMEM_UNBIND: u32 = 0x4700_0003;
pub const GOLDEN_SEAL: u32 = 0x4700_0010;
pub const GOLDEN_MAP: u32 = 0x4700_0011;
pub const GOLDEN_UNMAP: u32 = 0x4700_0012;
pub const GOLDEN_RELEASE: u32 = 0x4700_0013;
pub const VM_MEM_STATS: u32 = 0x4700_0020;
pub const SIM_VM_READ: u32 = 0x4700_00F0;
pub const SIM_VM_WRITE: u32 = 0x4700_00F1;
pub const N_COW_BROKEN: u32 = 0x4710_0001;
pub const N_QUOTA_EXHAUSTED: u32 = 0x4710_0002;

pub const OK: u32 = 0;
pub const UNIMPLEMENTED: u32 = 0xFFFF_FFFF;
pub const NOMEM: u32 = 1;
pub const NORESOURCE: u32 = 2;
pub const DENIED: u32 = 3;
pub const MSG_INVALID: u32 = 4;
pub const ARGUMENT_INVALID: u32 = 6;
pub const HANDLE_INVALID: u32 = 7;
pub const VALIDATE_FAILED: u32 = 8;
pub const MAP_FAILED: u32 = 9;
pub const MEM_INVALID: u32 = 0xA;
pub const MEM_INUSE: u32 = 0xB;
pub const MEM_RELEASED: u32 = 0xC;
pub const VMID_INVALID: u32 = 0xD;
pub const LOOKUP_FAILED: u32 = 0xE;
pub const VM_STATE: u32 = 0x14;

/// A message the RM sent, reassembled by the test's own decoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub to: u16,
    pub msg_type: u8,
    pub seq: u16,
    pub msg_id: u32,
    pub payload: Vec<u8>,
}

/// The outcome of one request.
#[derive(Clone, Debug)]
pub struct Call {
    /// Reply error code.
    pub err: u32,
    /// Reply data after the error code.
    pub data: Vec<u8>,
    /// Every message the RM sent, in order (the reply included).
    pub msgs: Vec<Msg>,
}

impl Call {
    /// Notifications sent, as (to, msg_id, payload).
    pub fn notifs(&self) -> Vec<(u16, u32, Vec<u8>)> {
        self.msgs
            .iter()
            .filter(|m| m.msg_type == 3)
            .map(|m| (m.to, m.msg_id, m.payload.clone()))
            .collect()
    }
    pub fn u32_at(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.data[off..off + 4].try_into().unwrap())
    }
}

/// Encode request packets by hand (spec §1.2/§1.4): header 0x21,
/// type|fragments<<2, seq, msg_id; 232 payload bytes per fragment.
pub fn request_packets(seq: u16, msg_id: u32, payload: &[u8]) -> Vec<Vec<u8>> {
    let chunks: Vec<&[u8]> = if payload.is_empty() {
        vec![&[][..]]
    } else {
        payload.chunks(232).collect()
    };
    let frags = (chunks.len() - 1) as u8;
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let ty = if i == 0 { 1 } else { 0 };
            let mut p = vec![0x21, (frags << 2) | ty];
            p.extend_from_slice(&seq.to_le_bytes());
            p.extend_from_slice(&msg_id.to_le_bytes());
            p.extend_from_slice(c);
            p
        })
        .collect()
}

/// Reassemble outgoing packets by hand.
pub fn decode_outgoing(pk: Vec<(u16, Vec<u8>)>) -> Vec<Msg> {
    let mut out: Vec<Msg> = Vec::new();
    let mut pending: Option<(Msg, u8)> = None;
    for (to, p) in pk {
        assert!(
            p.len() >= 8 && p.len() <= 240,
            "bad packet length {}",
            p.len()
        );
        assert_eq!(p[0], 0x21);
        let ty = p[1] & 3;
        let frags = p[1] >> 2;
        let seq = u16::from_le_bytes([p[2], p[3]]);
        let id = u32::from_le_bytes(p[4..8].try_into().unwrap());
        if ty == 0 {
            let (m, left) = pending
                .as_mut()
                .expect("continuation without a first fragment");
            assert_eq!((m.to, m.seq, m.msg_id), (to, seq, id));
            m.payload.extend_from_slice(&p[8..]);
            *left -= 1;
            if *left == 0 {
                out.push(pending.take().unwrap().0);
            }
        } else {
            assert!(pending.is_none(), "interleaved message");
            let m = Msg {
                to,
                msg_type: ty,
                seq,
                msg_id: id,
                payload: p[8..].to_vec(),
            };
            if frags == 0 {
                out.push(m);
            } else {
                pending = Some((m, frags));
            }
        }
    }
    assert!(pending.is_none());
    out
}

/// The rights `vmid`'s real stage-2 tables give on physical address `pa` (wherever it is
/// mapped), or `None` if no leaf maps it.
pub fn rights_on_pa(h: &H, vmid: u16, pa: u64) -> Option<gunyah_rm::Rights> {
    use gunyah_rm::AddressSpaces;
    let mut found = None;
    h.rm.platform().for_each_leaf(vmid, &mut |l| {
        if l.pa <= pa && pa < l.pa + l.size {
            found = Some(l.rights);
        }
    });
    found
}

pub struct H {
    pub rm: Rm<SimPlatform>,
    pub seq: u16,
}

impl Default for H {
    fn default() -> Self {
        Self::new()
    }
}

impl H {
    pub fn new() -> H {
        let h = H {
            rm: default_rm(),
            seq: 0x100,
        };
        h.check();
        h
    }

    /// The isolation checker; never switched off.
    pub fn check(&self) {
        let v = self.rm.check_isolation();
        assert!(v.is_empty(), "isolation violations: {v:#?}");
    }

    /// Send raw packets from `from`, return everything the RM sent.
    pub fn send_packets(&mut self, from: u16, pks: &[Vec<u8>]) -> Vec<Msg> {
        for p in pks {
            self.rm.packet_from(from, p);
        }
        let out = decode_outgoing(self.rm.drain_outgoing());
        self.check();
        // Everything the RM sends must decode with the abi crate's
        // independent implementation of the wire format.
        for m in &out {
            let id = gunyah_rm_abi::MsgId(m.msg_id);
            if m.msg_type == 2 {
                let r = gunyah_rm_abi::Reply::decode_detailed(id, &m.payload);
                assert!(
                    r.is_ok(),
                    "reply to {:#x} does not decode: {r:?} {:02x?}",
                    m.msg_id,
                    m.payload
                );
            } else {
                let n = gunyah_rm_abi::Notification::decode_detailed(id, &m.payload);
                assert!(
                    matches!(n, Ok(ref x) if !matches!(x, gunyah_rm_abi::Notification::Other { .. })),
                    "notification {:#x} does not decode: {n:?}",
                    m.msg_id
                );
            }
        }
        out
    }

    /// One request; asserts exactly one reply with our seq and msg_id.
    pub fn call(&mut self, from: u16, msg_id: u32, payload: &[u8]) -> Call {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let msgs = self.send_packets(from, &request_packets(seq, msg_id, payload));
        let replies: Vec<&Msg> = msgs.iter().filter(|m| m.msg_type == 2).collect();
        assert_eq!(replies.len(), 1, "expected one reply, got {msgs:#?}");
        let r = replies[0];
        assert_eq!((r.to, r.seq, r.msg_id), (from, seq, msg_id));
        assert!(r.payload.len() >= 4);
        Call {
            err: u32::from_le_bytes(r.payload[..4].try_into().unwrap()),
            data: r.payload[4..].to_vec(),
            msgs: msgs.clone(),
        }
    }

    /// A request from a VM that has no RM message queue (not yet READY, or
    /// gone): it is dropped, with no reply, no notification and no change.
    pub fn no_reply(&mut self, from: u16, msg_id: u32, payload: &[u8]) {
        let before = self.rm.snapshot();
        self.seq = self.seq.wrapping_add(1);
        let msgs = self.send_packets(from, &request_packets(self.seq, msg_id, payload));
        assert!(
            msgs.is_empty(),
            "msg {msg_id:#x} from {from:#x} (no RM queue) was answered: {msgs:?}"
        );
        assert_eq!(
            before,
            self.rm.snapshot(),
            "a dropped request changed state"
        );
    }

    /// A call that must fail with `err` and change nothing at all.
    pub fn call_fails(&mut self, from: u16, msg_id: u32, payload: &[u8], err: u32) -> Call {
        let before = self.rm.snapshot();
        let c = self.call(from, msg_id, payload);
        assert_eq!(
            c.err, err,
            "msg {msg_id:#x} from {from}: expected error {err:#x}, got {:#x}",
            c.err
        );
        assert!(
            c.notifs().is_empty(),
            "a failed call sent notifications: {:?}",
            c.notifs()
        );
        let after = self.rm.snapshot();
        assert_eq!(before, after, "failed call changed state");
        c
    }

    /// Allocate a VM as HLOS does and take it to READY (VM_CONFIG_IMAGE with a
    /// one-page DT parcel lent to it, VM_INIT), the first state in which its RM
    /// message queues exist, so it can send requests. Returns (vmid, image
    /// parcel handle). The DT page comes from the top of HLOS RAM
    /// ([`ready_vm_image_pa`]), out of the way of the ranges tests lend.
    pub fn ready_vm_with_image(&mut self) -> (u16, u32) {
        let vmid = self.ok(HLOS, VM_ALLOC, &vmid_pad(0)).u32_at(0) as u16;
        let pa = ready_vm_image_pa(vmid);
        let dtb = tiny_dtb(1);
        use gunyah_rm::platform::PhysMem;
        assert!(self.rm.platform_mut().write(pa, &dtb));
        let img = self
            .ok(
                HLOS,
                MEM_LEND,
                &create(0, 0, 0, &[(vmid, 7)], &[(pa, 0x1000)]),
            )
            .u32_at(0);
        self.ok(
            HLOS,
            VM_CONFIG_IMAGE,
            &config_image(vmid, 0, img, (0, 0), (0, dtb.len() as u64)),
        );
        self.ok(HLOS, VM_INIT, &vmid_pad(vmid));
        (vmid, img)
    }

    /// Take a VM HLOS allocated out of the way: VM_RESET (READY → RESET; the
    /// RM finishes the reset before it reads the next request) then
    /// VM_DEALLOC_VMID.
    pub fn reset_and_dealloc(&mut self, vmid: u16) {
        self.ok(HLOS, VM_RESET, &vmid_pad(vmid));
        self.ok(HLOS, VM_DEALLOC, &vmid_pad(vmid));
    }

    /// [`H::ready_vm_with_image`] without the handle.
    pub fn ready_vm(&mut self) -> u16 {
        self.ready_vm_with_image().0
    }

    pub fn ok(&mut self, from: u16, msg_id: u32, payload: &[u8]) -> Call {
        let c = self.call(from, msg_id, payload);
        assert_eq!(
            c.err, OK,
            "msg {msg_id:#x} from {from} failed with {:#x}",
            c.err
        );
        c
    }
}

// ---- extension payload encoders, written from the `gunyah_rm_abi::ext` layouts ----

pub fn gmem_create(size: u64, flags: u32, owner: u16, reserved: u16) -> Vec<u8> {
    let mut v = size.to_le_bytes().to_vec();
    v.extend_from_slice(&flags.to_le_bytes());
    v.extend_from_slice(&owner.to_le_bytes());
    v.extend_from_slice(&reserved.to_le_bytes());
    v
}

pub fn gmem_bind(
    gmem: u32,
    vmid: u16,
    perms: u8,
    flags: u8,
    off: u64,
    ipa: u64,
    size: u64,
) -> Vec<u8> {
    let mut v = gmem.to_le_bytes().to_vec();
    v.extend_from_slice(&vmid.to_le_bytes());
    v.extend_from_slice(&[perms, flags]);
    for x in [off, ipa, size] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

pub fn id_vmid_range(id: u32, vmid: u16, ipa: u64, size: u64) -> Vec<u8> {
    let mut v = id.to_le_bytes().to_vec();
    v.extend_from_slice(&vmid.to_le_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&ipa.to_le_bytes());
    v.extend_from_slice(&size.to_le_bytes());
    v
}

#[allow(clippy::too_many_arguments)]
pub fn golden_map(
    g: u32,
    vmid: u16,
    flags: u16,
    off: u64,
    ipa: u64,
    size: u64,
    gmem: u32,
) -> Vec<u8> {
    let mut v = g.to_le_bytes().to_vec();
    v.extend_from_slice(&vmid.to_le_bytes());
    v.extend_from_slice(&flags.to_le_bytes());
    for x in [off, ipa, size] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.extend_from_slice(&gmem.to_le_bytes());
    v.extend_from_slice(&[0; 4]);
    v
}

pub fn sim_read(vmid: u16, len: u32, ipa: u64) -> Vec<u8> {
    let mut v = vmid.to_le_bytes().to_vec();
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(&ipa.to_le_bytes());
    v
}

pub fn sim_write(vmid: u16, ipa: u64, data: &[u8]) -> Vec<u8> {
    let mut v = sim_read(vmid, data.len() as u32, ipa);
    v.extend_from_slice(data);
    v
}

// ---- payload encoders, written from spec §3 and §5.5 ----

pub fn acl(entries: &[(u16, u8)]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    v.extend_from_slice(&[0, 0]);
    for &(vmid, rights) in entries {
        v.extend_from_slice(&vmid.to_le_bytes());
        v.extend_from_slice(&[rights, 0]);
    }
    v
}

pub fn sgl_with_half(entries: &[(u64, u64)], half: u16) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    v.extend_from_slice(&half.to_le_bytes());
    for &(ipa, size) in entries {
        v.extend_from_slice(&ipa.to_le_bytes());
        v.extend_from_slice(&size.to_le_bytes());
    }
    v
}

pub fn sgl(entries: &[(u64, u64)]) -> Vec<u8> {
    sgl_with_half(entries, 0)
}

pub fn attrs(entries: &[(u16, u16)]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    v.extend_from_slice(&[0, 0]);
    for &(attr, vmid) in entries {
        v.extend_from_slice(&attr.to_le_bytes());
        v.extend_from_slice(&vmid.to_le_bytes());
    }
    v
}

/// MEM_SHARE/LEND/DONATE body (§3.1), with LNX's empty attr list.
pub fn create(mem_type: u8, flags: u8, label: u32, a: &[(u16, u8)], s: &[(u64, u64)]) -> Vec<u8> {
    let mut v = vec![mem_type, 0, flags, 0];
    v.extend_from_slice(&label.to_le_bytes());
    v.extend(acl(a));
    v.extend(sgl(s));
    v.extend(attrs(&[]));
    v
}

/// MEM_ACCEPT body (§3.5).
#[allow(clippy::too_many_arguments)]
pub fn accept(
    handle: u32,
    mem_type: u8,
    trans: u8,
    flags: u8,
    label: u32,
    a: &[(u16, u8)],
    s: &[(u64, u64)],
    at: &[(u16, u16)],
) -> Vec<u8> {
    let mut v = handle.to_le_bytes().to_vec();
    v.extend_from_slice(&[mem_type, trans, flags, 0]);
    v.extend_from_slice(&label.to_le_bytes());
    v.extend(acl(a));
    v.extend(sgl(s));
    v.extend(attrs(at));
    v
}

pub fn handle_flags(handle: u32, flags: u8) -> Vec<u8> {
    let mut v = handle.to_le_bytes().to_vec();
    v.extend_from_slice(&[flags, 0, 0, 0]);
    v
}

pub fn notify(handle: u32, flags: u8, tag: u32, vmids: &[u16]) -> Vec<u8> {
    let mut v = handle.to_le_bytes().to_vec();
    v.extend_from_slice(&[flags, 0, 0, 0]);
    v.extend_from_slice(&tag.to_le_bytes());
    v.extend_from_slice(&(vmids.len() as u16).to_le_bytes());
    v.extend_from_slice(&[0, 0]);
    for &id in vmids {
        v.extend_from_slice(&id.to_le_bytes());
        v.extend_from_slice(&[0, 0]);
    }
    v
}

/// Where [`H::ready_vm_with_image`] puts `vmid`'s DT: one page per VMID in
/// the last 16 MiB of HLOS RAM (0x7F00_0000..0x8000_0000).
pub fn ready_vm_image_pa(vmid: u16) -> u64 {
    0x7F00_0000 + u64::from(vmid & 0xFF) * 0x1_0000
}

pub fn vmid_pad(vmid: u16) -> Vec<u8> {
    let mut v = vmid.to_le_bytes().to_vec();
    v.extend_from_slice(&[0, 0]);
    v
}

pub fn le32(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// VM_CONFIG_IMAGE body (§5.5).
pub fn config_image(
    vmid: u16,
    auth: u16,
    handle: u32,
    img: (u64, u64),
    dtb: (u64, u64),
) -> Vec<u8> {
    let mut v = vmid.to_le_bytes().to_vec();
    v.extend_from_slice(&auth.to_le_bytes());
    v.extend_from_slice(&handle.to_le_bytes());
    for x in [img.0, img.1, dtb.0, dtb.1] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

pub fn stop(vmid: u16, flags: u8, reason: u32) -> Vec<u8> {
    let mut v = vmid.to_le_bytes().to_vec();
    v.extend_from_slice(&[flags, 0]);
    v.extend_from_slice(&reason.to_le_bytes());
    v
}

/// FAULT_UNSERVED payload (`gunyah_rm_abi::ext` docs): u16 vmid, u8 why
/// (1 no CoW, 2 unmapped, 3 not permitted, 4 quota, 5 no memory), u8 action
/// (1 abort injected, 2 VM stopped), u32 reserved, u64 page IPA.
pub fn fault_unserved(vmid: u16, why: u8, action: u8, ipa: u64) -> Vec<u8> {
    let mut v = vmid.to_le_bytes().to_vec();
    v.extend_from_slice(&[why, action, 0, 0, 0, 0]);
    v.extend_from_slice(&ipa.to_le_bytes());
    v
}

/// VM_STATUS payload (§5.3).
pub fn vm_status(vmid: u16, status: u8, os: u8, app: u16) -> Vec<u8> {
    let mut v = vmid.to_le_bytes().to_vec();
    v.extend_from_slice(&[0, 0, status, os]);
    v.extend_from_slice(&app.to_le_bytes());
    v
}

/// A minimal flattened device tree, built by hand from the DTSpec layout:
/// a root node with `compatible` and one `/cpus/cpu@N` per vCPU.
pub fn tiny_dtb(cpus: u32) -> Vec<u8> {
    fn be(v: u32) -> [u8; 4] {
        v.to_be_bytes()
    }
    let strings = b"compatible\0device_type\0".to_vec();
    let mut st = Vec::new();
    let name = |st: &mut Vec<u8>, n: &str| {
        st.extend_from_slice(&be(1));
        st.extend_from_slice(n.as_bytes());
        st.push(0);
        while !st.len().is_multiple_of(4) {
            st.push(0);
        }
    };
    let prop = |st: &mut Vec<u8>, nameoff: u32, val: &[u8]| {
        st.extend_from_slice(&be(3));
        st.extend_from_slice(&be(val.len() as u32));
        st.extend_from_slice(&be(nameoff));
        st.extend_from_slice(val);
        while !st.len().is_multiple_of(4) {
            st.push(0);
        }
    };
    name(&mut st, "");
    prop(&mut st, 0, b"linux,dummy-virt\0");
    name(&mut st, "cpus");
    for i in 0..cpus {
        name(&mut st, &format!("cpu@{i}"));
        prop(&mut st, 11, b"cpu\0");
        st.extend_from_slice(&be(2));
    }
    st.extend_from_slice(&be(2)); // end cpus
    st.extend_from_slice(&be(2)); // end root
    st.extend_from_slice(&be(9)); // FDT_END
    let off_rsv = 40u32;
    let off_struct = off_rsv + 16;
    let off_strings = off_struct + st.len() as u32;
    let total = off_strings + strings.len() as u32;
    let mut v = Vec::new();
    for x in [
        0xd00d_feed,
        total,
        off_struct,
        off_strings,
        off_rsv,
        17,
        16,
        0,
        strings.len() as u32,
        st.len() as u32,
    ] {
        v.extend_from_slice(&be(x));
    }
    v.extend_from_slice(&[0u8; 16]);
    v.extend_from_slice(&st);
    v.extend_from_slice(&strings);
    v
}
