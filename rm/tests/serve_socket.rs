//! `gunyah-rm serve` over its real Unix SOCK_SEQPACKET socket, driven from separate clients.
//!
//! Packets are written by hand from the spec (rm-rpc-abi.md §1.2, §5.5) and DESIGN.md's socket
//! transport, not produced by the crate's encoder.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    connect, recv, send, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag, SockType,
    UnixAddr,
};
use nix::sys::time::TimeVal;

const HLOS: u16 = 3;

struct Server {
    child: Child,
    path: PathBuf,
    _dir: TempDir,
}

/// A private temporary directory, removed on drop.
struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "gunyah-rm-test-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Server {
    fn start(tag: &str) -> Server {
        Server::start_with(tag, &[])
    }

    fn start_with(tag: &str, extra: &[&str]) -> Server {
        let dir = TempDir::new(tag);
        let path = dir.0.join("rm.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_gunyah-rm"))
            .arg("serve")
            .arg("--socket")
            .arg(&path)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gunyah-rm serve");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !path.exists() {
            assert!(
                Instant::now() < deadline,
                "server did not create its socket"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Server {
            child,
            path,
            _dir: dir,
        }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Client {
    fd: OwnedFd,
}

impl Client {
    fn raw(path: &Path) -> Client {
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        connect(fd.as_raw_fd(), &UnixAddr::new(path).unwrap()).unwrap();
        setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(10, 0)).unwrap();
        Client { fd }
    }

    /// Connect and say hello as `vmid`; panics unless the server answers with the same 8 bytes.
    fn hello(path: &Path, vmid: u16) -> Client {
        let c = Client::raw(path);
        let h = hello(vmid);
        c.send(&h);
        assert_eq!(c.recv().as_deref(), Some(&h[..]), "hello answer");
        c
    }

    fn send(&self, p: &[u8]) {
        send(self.fd.as_raw_fd(), p, MsgFlags::MSG_NOSIGNAL).unwrap();
    }

    /// The next packet, or `None` if the server closed the connection.
    fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = [0u8; 512];
        match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(0) => None,
            Ok(n) => Some(buf[..n].to_vec()),
            Err(nix::errno::Errno::ECONNRESET) => None,
            Err(e) => panic!("recv: {e}"),
        }
    }

    /// The next packet that is not a notification (type 3).
    fn reply(&self) -> Vec<u8> {
        loop {
            let p = self.recv().expect("server closed the connection");
            if p[1] & 3 != 3 {
                return p;
            }
        }
    }
}

fn hello(vmid: u16) -> [u8; 8] {
    let v = vmid.to_le_bytes();
    [b'G', b'R', b'M', b'1', v[0], v[1], 0, 0]
}

/// An RPC header: api 0x21, type | fragments << 2, seq, msg_id (spec §1.2).
fn header(ty: u8, fragments: u8, seq: u16, msg_id: u32) -> Vec<u8> {
    let mut h = vec![0x21, ty | (fragments << 2)];
    h.extend_from_slice(&seq.to_le_bytes());
    h.extend_from_slice(&msg_id.to_le_bytes());
    h
}

fn request(seq: u16, msg_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = header(1, 0, seq, msg_id);
    p.extend_from_slice(payload);
    p
}

const VM_GET_VMID: u32 = 0x5600_0024;
const VM_ALLOC_VMID: u32 = 0x5600_0001;
const VM_GET_STATE: u32 = 0x5600_0017;

/// The smallest flattened device tree (DTSpec §5): a header, an empty reservation map and an
/// empty root node; 72 bytes, so it fits one SIM_VM_WRITE packet.
fn minimal_dtb() -> Vec<u8> {
    let mut v = Vec::new();
    // magic, totalsize, off_dt_struct, off_dt_strings, off_mem_rsvmap, version,
    // last_comp_version, boot_cpuid_phys, size_dt_strings, size_dt_struct
    for w in [0xd00d_feedu32, 72, 56, 72, 40, 17, 16, 0, 0, 16] {
        v.extend_from_slice(&w.to_be_bytes());
    }
    v.extend_from_slice(&[0; 16]); // reservation map terminator
    for w in [1u32, 0, 2, 9] {
        // FDT_BEGIN_NODE "" (padded), FDT_END_NODE, FDT_END
        v.extend_from_slice(&w.to_be_bytes());
    }
    v
}

/// Through HLOS's client `c`: allocate a VM and take it to READY (its DT written into HLOS RAM
/// with SIM_VM_WRITE, a page lent to it, VM_CONFIG_IMAGE, VM_INIT). From VM_INIT on the VM's RM
/// message queues exist, so it may connect. Uses sequence numbers `seq..seq + 5`.
fn ready_vm(c: &Client, seq: u16) -> u16 {
    let (data, _) = ok_reply(c, seq, VM_ALLOC_VMID, &[0, 0, 0, 0]);
    let vm = u16::from_le_bytes([data[0], data[1]]);
    let pa = 0x7FC0_0000u64 + u64::from(vm & 0x3F) * 0x1_0000;
    let dtb = minimal_dtb();
    let mut w = HLOS.to_le_bytes().to_vec();
    w.extend_from_slice(&[0, 0]);
    w.extend_from_slice(&(dtb.len() as u32).to_le_bytes());
    w.extend_from_slice(&pa.to_le_bytes());
    w.extend_from_slice(&dtb);
    ok_reply(c, seq + 1, 0x4700_00F1, &w);
    let mut lend = vec![0u8; 8]; // NORMAL, flags 0, label 0
    lend.extend_from_slice(&[1, 0, 0, 0]);
    lend.extend_from_slice(&vm.to_le_bytes());
    lend.extend_from_slice(&[7, 0]);
    lend.extend_from_slice(&[1, 0, 0, 0]);
    lend.extend_from_slice(&pa.to_le_bytes());
    lend.extend_from_slice(&0x1000u64.to_le_bytes());
    lend.extend_from_slice(&[0, 0, 0, 0]);
    let (data, _) = ok_reply(c, seq + 2, 0x5100_0012, &lend);
    let mut cfg = vm.to_le_bytes().to_vec();
    cfg.extend_from_slice(&[0, 0]);
    cfg.extend_from_slice(&data[..4]);
    cfg.extend_from_slice(&[0; 16]);
    cfg.extend_from_slice(&0u64.to_le_bytes());
    cfg.extend_from_slice(&(dtb.len() as u64).to_le_bytes());
    ok_reply(c, seq + 3, 0x5600_0009, &cfg);
    let mut init = vm.to_le_bytes().to_vec();
    init.extend_from_slice(&[0, 0]);
    ok_reply(c, seq + 4, 0x5600_000B, &init);
    vm
}

/// VM_GET_VMID from `vmid`'s client answers OK with that VMID.
fn assert_get_vmid(c: &Client, seq: u16, vmid: u16) {
    c.send(&request(seq, VM_GET_VMID, &[]));
    let mut want = header(2, 0, seq, VM_GET_VMID);
    want.extend_from_slice(&[0, 0, 0, 0]);
    want.extend_from_slice(&(vmid as u32).to_le_bytes());
    assert_eq!(c.reply(), want);
}

#[test]
fn hlos_gets_its_vmid_and_unknown_requests_are_unimplemented() {
    let s = Server::start("basic");
    let c = Client::hello(&s.path, HLOS);
    // Hand-written: 21 01 07 00 24 00 00 56 -> 21 02 07 00 24 00 00 56 | 00000000 | 03000000
    c.send(&[0x21, 0x01, 0x07, 0x00, 0x24, 0x00, 0x00, 0x56]);
    assert_eq!(
        c.reply(),
        [0x21, 0x02, 0x07, 0x00, 0x24, 0x00, 0x00, 0x56, 0, 0, 0, 0, 3, 0, 0, 0]
    );
    c.send(&request(8, 0x5600_00EE, &[]));
    let mut want = header(2, 0, 8, 0x5600_00EE);
    want.extend_from_slice(&[0xFF; 4]);
    assert_eq!(c.reply(), want);
}

#[test]
fn bad_hellos_are_refused_and_others_carry_on() {
    let mut s = Server::start("hello");
    let good = Client::hello(&s.path, HLOS);

    // Unknown VMID: closed without an answer.
    let c = Client::raw(&s.path);
    c.send(&hello(0x1234));
    assert_eq!(c.recv(), None);
    // Already connected VMID: closed.
    let c = Client::raw(&s.path);
    c.send(&hello(HLOS));
    assert_eq!(c.recv(), None);
    // Garbage instead of a hello: dropped.
    let c = Client::raw(&s.path);
    c.send(b"GET / HTTP/1.0\r\n");
    assert_eq!(c.recv(), None);
    // Wrong reserved bytes.
    let c = Client::raw(&s.path);
    c.send(&[b'G', b'R', b'M', b'1', 3, 0, 1, 0]);
    assert_eq!(c.recv(), None);

    assert!(s.alive());
    assert_get_vmid(&good, 1, HLOS);
}

#[test]
fn malformed_packets_get_no_reply_and_the_next_request_is_served() {
    let mut s = Server::start("garbage");
    let c = Client::hello(&s.path, HLOS);
    // Bad api byte, short packet, stray continuation, >62 continuations: all dropped (spec §1.4, §12).
    c.send(&[0x11, 0x01, 0, 0, 0x24, 0, 0, 0x56]);
    c.send(&[0x21, 0x01, 0]);
    c.send(&header(0, 1, 2, VM_GET_VMID));
    c.send(&header(1, 63, 3, VM_GET_VMID));
    assert_get_vmid(&c, 4, HLOS);

    // A packet longer than a message-queue message drops the client.
    let mut big = request(5, VM_GET_VMID, &[]);
    big.resize(300, 0);
    c.send(&big);
    assert_eq!(c.recv(), None);
    assert!(s.alive());
    let c = Client::hello(&s.path, HLOS);
    assert_get_vmid(&c, 6, HLOS);
}

#[test]
fn disconnect_mid_message_abandons_it() {
    let s = Server::start("midmsg");
    let c = Client::hello(&s.path, HLOS);
    // First fragment of a request announcing one continuation, then gone.
    let mut first = header(1, 1, 9, VM_ALLOC_VMID);
    first.resize(240, 0);
    c.send(&first);
    drop(c);
    let c = Client::hello(&s.path, HLOS);
    // A continuation of the abandoned message is a stray: dropped, no reply.
    let mut cont = header(0, 1, 9, VM_ALLOC_VMID);
    cont.extend_from_slice(&[0; 4]);
    c.send(&cont);
    assert_get_vmid(&c, 10, HLOS);
}

#[test]
fn a_flooding_client_does_not_stop_the_others() {
    let mut s = Server::start("flood");
    let other = Client::hello(&s.path, HLOS);
    // A second VM to flood from.
    let vmid = ready_vm(&other, 1);
    let flood = Client::hello(&s.path, vmid);
    flood.send(&request(2, VM_GET_VMID, &[]));
    assert_eq!(&flood.reply()[8..14], &[0, 0, 0, 0, vmid as u8, 0]);

    // 20 000 requests without reading a reply: the server must keep serving `other`.
    let req = request(3, VM_GET_STATE, &[0, 0, 0, 0]);
    for _ in 0..20_000 {
        if send(
            flood.fd.as_raw_fd(),
            &req,
            MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
        )
        .is_err()
        {
            // Our socket buffer is full or the server dropped us: both are acceptable.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert!(s.alive());
    assert_get_vmid(&other, 4, HLOS);
}

#[test]
fn sigterm_shuts_down_cleanly_and_removes_the_socket() {
    let mut s = Server::start("sigterm");
    let c = Client::hello(&s.path, HLOS);
    assert_get_vmid(&c, 1, HLOS);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "server ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    assert!(!s.path.exists(), "socket file left behind");
    assert_eq!(c.recv(), None);
}

#[test]
fn log_shows_each_decoded_message() {
    let mut s = Server::start_with("log", &["--log"]);
    let c = Client::hello(&s.path, HLOS);
    assert_get_vmid(&c, 0x42, HLOS);
    drop(c);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = s.child.wait_with_output_ref();
    assert!(out.contains("[vm 0x3] connected"), "{out}");
    assert!(
        out.contains("[vm 0x3] -> rm  request seq=66 msg_id=0x56000024 VM_GET_VMID"),
        "{out}"
    );
    assert!(
        out.contains("[vm 0x3] <- rm  reply seq=66 msg_id=0x56000024 VM_GET_VMID"),
        "{out}"
    );
    assert!(out.contains("error: OK"), "{out}");
}

trait WaitOutput {
    /// Wait for exit and return everything written to stderr.
    fn wait_with_output_ref(&mut self) -> String;
}

impl WaitOutput for Child {
    fn wait_with_output_ref(&mut self) -> String {
        use std::io::Read;
        let mut err = String::new();
        self.stderr
            .take()
            .expect("stderr is piped")
            .read_to_string(&mut err)
            .unwrap();
        self.wait().unwrap();
        err
    }
}
/// Read packets until the reply to `seq`; return it and the VM_STATUS notifications seen first.
fn reply_after_status(c: &Client, seq: u16) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut status = Vec::new();
    loop {
        let p = c.recv().expect("server closed the connection");
        if p[1] & 3 == 3 {
            if p[4..8] == 0x5610_0008u32.to_le_bytes() {
                status.push(p[8..].to_vec());
            }
            continue;
        }
        assert_eq!(p[1] & 3, 2, "not a reply: {p:02x?}");
        assert_eq!(u16::from_le_bytes([p[2], p[3]]), seq, "reply seq");
        return (p, status);
    }
}

fn ok_reply(c: &Client, seq: u16, msg_id: u32, payload: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    c.send(&request(seq, msg_id, payload));
    let (r, st) = reply_after_status(c, seq);
    assert_eq!(&r[4..8], &msg_id.to_le_bytes(), "reply msg_id");
    assert_eq!(
        &r[8..12],
        &[0, 0, 0, 0],
        "error code of {msg_id:#x}: {r:02x?}"
    );
    (r[12..].to_vec(), st)
}

#[test]
fn hlos_launches_a_vm_through_the_socket() {
    let s = Server::start("launch");
    let c = Client::hello(&s.path, HLOS);

    // VM_ALLOC_VMID(0): dynamic VMID 0x80 first (spec §12).
    let (data, _) = ok_reply(&c, 1, VM_ALLOC_VMID, &[0, 0, 0, 0]);
    assert_eq!(data, [0x80, 0, 0, 0]);
    let vm = 0x80u8;

    // MEM_LEND 2 MiB of HLOS RAM at 0x48000000 to the VM with RWX (spec §3.1 offsets).
    #[rustfmt::skip]
    let lend = [
        0, 0, 0, 0,             // mem_type NORMAL, res, flags 0, res
        0, 0, 0, 0,             // label
        1, 0, 0, 0,             // acl count 1
        vm, 0, 7, 0,            // {vmid, RWX}
        1, 0, 0, 0,             // sgl count 1
        0, 0, 0, 0x48, 0, 0, 0, 0, // ipa 0x48000000
        0, 0, 0x20, 0, 0, 0, 0, 0, // size 0x200000
        0, 0, 0, 0,             // attr count 0
    ];
    // The VM's DT goes into that memory first, through the simulator's SIM_VM_WRITE
    // (0x470000F1: u16 vmid, u16 res, u32 length, u64 ipa, bytes; DESIGN.md). It is larger
    // than one fragment, so this also sends a multi-fragment request over the socket.
    let dtb = compile_dtb(
        &s._dir.0,
        "/dts-v1/; / { #address-cells = <2>; #size-cells = <2>; model = \"socket-test-guest\"; \
         cpus { #address-cells = <1>; #size-cells = <0>; \
         cpu@0 { device_type = \"cpu\"; reg = <0>; }; cpu@1 { device_type = \"cpu\"; reg = <1>; }; }; };",
    );
    assert!(
        dtb.len() > 232,
        "DTB of {} bytes would not need fragments",
        dtb.len()
    );
    let mut w = vec![3, 0, 0, 0];
    w.extend_from_slice(&(dtb.len() as u32).to_le_bytes());
    w.extend_from_slice(&0x4800_0000u64.to_le_bytes());
    w.extend_from_slice(&dtb);
    for (i, chunk) in w.chunks(232).enumerate() {
        let frags = (w.len() - 1) / 232;
        let ty = if i == 0 { 1 } else { 0 };
        let mut p = header(ty, frags as u8, 20, 0x4700_00F1);
        p.extend_from_slice(chunk);
        c.send(&p);
    }
    let (r, _) = reply_after_status(&c, 20);
    assert_eq!(&r[8..12], &[0, 0, 0, 0], "SIM_VM_WRITE: {r:02x?}");

    let (data, _) = ok_reply(&c, 2, 0x5100_0012, &lend);
    let handle: [u8; 4] = data[..4].try_into().unwrap();

    // VM_CONFIG_IMAGE: vmid, auth NONE, handle, image 0/0, the DTB at offset 0 (§5.5).
    let mut cfg = vec![vm, 0, 0, 0];
    cfg.extend_from_slice(&handle);
    cfg.extend_from_slice(&[0; 16]);
    cfg.extend_from_slice(&0u64.to_le_bytes());
    cfg.extend_from_slice(&(dtb.len() as u64).to_le_bytes());
    let (_, st) = ok_reply(&c, 3, 0x5600_0009, &cfg);
    // VM_STATUS {vmid, res, INIT = 1, ...} comes before the reply.
    assert_eq!(st.last().map(|s| (s[0], s[4])), Some((vm, 1)));

    let (_, st) = ok_reply(&c, 4, 0x5600_000B, &[vm, 0, 0, 0]);
    assert_eq!(st.last().map(|s| (s[0], s[4])), Some((vm, 2)), "READY");
    let (_, st) = ok_reply(&c, 5, 0x5600_0004, &[vm, 0, 0, 0]);
    assert_eq!(st.last().map(|s| (s[0], s[4])), Some((vm, 3)), "RUNNING");

    // VM_GET_STATE: bits[7:0] vm_status = RUNNING (3).
    let (data, _) = ok_reply(&c, 6, VM_GET_STATE, &[vm, 0, 0, 0]);
    assert_eq!(data[0], 3);

    // The new VM can connect as itself and learn its VMID.
    let g = Client::hello(&s.path, vm as u16);
    assert_get_vmid(&g, 1, vm as u16);

    // While it runs, the lent image parcel cannot be reclaimed (MEM_INUSE, 0xB).
    let mut reclaim = handle.to_vec();
    reclaim.extend_from_slice(&[0; 4]);
    c.send(&request(7, 0x5100_0015, &reclaim));
    let (r, _) = reply_after_status(&c, 7);
    assert_eq!(&r[8..12], &[0xB, 0, 0, 0]);
}

/// Compile device-tree source with dtc (a project dependency, installed by `cargo xtask setup`).
fn compile_dtb(dir: &Path, dts: &str) -> Vec<u8> {
    let src = dir.join("guest.dts");
    let out = dir.join("guest.dtb");
    std::fs::write(&src, dts).unwrap();
    let st = Command::new("dtc")
        .args(["-I", "dts", "-O", "dtb", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("run dtc (install device-tree-compiler: cargo xtask setup)");
    assert!(st.success(), "dtc failed");
    std::fs::read(out).unwrap()
}

/// A request of any size, fragmented by hand (232 payload bytes per fragment, spec §1.4).
fn send_request(c: &Client, seq: u16, msg_id: u32, payload: &[u8]) {
    let frags = payload.len().saturating_sub(1) / 232;
    if payload.is_empty() {
        c.send(&header(1, 0, seq, msg_id));
        return;
    }
    for (i, chunk) in payload.chunks(232).enumerate() {
        let mut p = header(if i == 0 { 1 } else { 0 }, frags as u8, seq, msg_id);
        p.extend_from_slice(chunk);
        c.send(&p);
    }
}

/// The reply to `seq` (skipping notifications), reassembled: (error code, data).
fn reassembled_reply(c: &Client, seq: u16) -> (u32, Vec<u8>) {
    let first = c.reply();
    assert_eq!(u16::from_le_bytes([first[2], first[3]]), seq);
    let mut data = first[8..].to_vec();
    for _ in 0..(first[1] >> 2) {
        let p = c.reply();
        assert_eq!(p[1] & 3, 0, "continuation expected");
        data.extend_from_slice(&p[8..]);
    }
    let err = u32::from_le_bytes(data[..4].try_into().unwrap());
    (err, data[4..].to_vec())
}

fn call(c: &Client, seq: u16, msg_id: u32, payload: &[u8]) -> (u32, Vec<u8>) {
    send_request(c, seq, msg_id, payload);
    reassembled_reply(c, seq)
}

fn sim_write(vmid: u16, ipa: u64, bytes: &[u8]) -> Vec<u8> {
    let mut p = vmid.to_le_bytes().to_vec();
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    p.extend_from_slice(&ipa.to_le_bytes());
    p.extend_from_slice(bytes);
    p
}

fn sim_read(vmid: u16, ipa: u64, len: u32) -> Vec<u8> {
    let mut p = vmid.to_le_bytes().to_vec();
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&len.to_le_bytes());
    p.extend_from_slice(&ipa.to_le_bytes());
    p
}

#[test]
fn socket_clients_drive_copy_on_write_of_a_golden_image() {
    use sha2::{Digest, Sha256};
    const SIM_VM_READ: u32 = 0x4700_00F0;
    const SIM_VM_WRITE: u32 = 0x4700_00F1;
    let s = Server::start("cow");
    let c = Client::hello(&s.path, HLOS);

    // Two clone VMs.
    let (a, _) = ok_reply(&c, 1, VM_ALLOC_VMID, &[0, 0, 0, 0]);
    let (b, _) = ok_reply(&c, 2, VM_ALLOC_VMID, &[0, 0, 0, 0]);
    let (a, b) = (
        a[0] as u16 | (a[1] as u16) << 8,
        b[0] as u16 | (b[1] as u16) << 8,
    );

    // HLOS fills two pages of its RAM at 0x48000000: 'A' * 4096, 'B' * 4096.
    let mut image = vec![b'A'; 4096];
    image.extend_from_slice(&[b'B'; 4096]);
    for (i, chunk) in image.chunks(1024).enumerate() {
        let ipa = 0x4800_0000 + i as u64 * 1024;
        let (err, _) = call(
            &c,
            10 + i as u16,
            SIM_VM_WRITE,
            &sim_write(HLOS, ipa, chunk),
        );
        assert_eq!(err, 0, "HLOS SIM_VM_WRITE");
    }

    // Lend them (ACL {a, R}) and seal the parcel golden: the digest is SHA-256 of the contents.
    let mut lend = vec![
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        1,
        0,
        0,
        0,
        a as u8,
        (a >> 8) as u8,
        4,
        0,
        1,
        0,
        0,
        0,
    ];
    lend.extend_from_slice(&0x4800_0000u64.to_le_bytes());
    lend.extend_from_slice(&0x2000u64.to_le_bytes());
    lend.extend_from_slice(&[0, 0, 0, 0]);
    let (h, _) = ok_reply(&c, 20, 0x5100_0012, &lend);
    let mut seal = h[..4].to_vec();
    seal.extend_from_slice(&[0; 4]);
    let (sealed, _) = ok_reply(&c, 21, 0x4700_0010, &seal);
    assert_eq!(sealed.len(), 40);
    let golden: [u8; 4] = sealed[..4].try_into().unwrap();
    assert_eq!(&sealed[8..40], Sha256::digest(&image).as_slice(), "digest");

    // The lent pages left HLOS's stage 2: its read faults (MEM_INVALID + the page's IPA).
    let (err, data) = call(&c, 22, SIM_VM_READ, &sim_read(HLOS, 0x4800_1000, 16));
    assert_eq!(err, 0xA);
    assert_eq!(data, 0x4800_1000u64.to_le_bytes());

    // Each clone gets a gmem pool of 4 pages and the golden image copy-on-write at 0x80000000.
    for (i, vm) in [a, b].into_iter().enumerate() {
        let mut create = 0x4000u64.to_le_bytes().to_vec();
        create.extend_from_slice(&[0, 0, 0, 0]);
        create.extend_from_slice(&vm.to_le_bytes());
        create.extend_from_slice(&[0, 0]);
        let (gmem, _) = ok_reply(&c, 30 + i as u16, 0x4700_0001, &create);
        let mut map = golden.to_vec();
        map.extend_from_slice(&vm.to_le_bytes());
        map.extend_from_slice(&1u16.to_le_bytes()); // COW
        map.extend_from_slice(&0u64.to_le_bytes());
        map.extend_from_slice(&0x8000_0000u64.to_le_bytes());
        map.extend_from_slice(&0x2000u64.to_le_bytes());
        map.extend_from_slice(&gmem[..4]);
        map.extend_from_slice(&[0; 4]);
        ok_reply(&c, 40 + i as u16, 0x4700_0011, &map);
    }

    // Clone a writes "hello" into the second page: exactly one fault served (one CoW copy).
    let (err, data) = call(&c, 50, SIM_VM_WRITE, &sim_write(a, 0x8000_1000, b"hello"));
    assert_eq!((err, data), (0, vec![1, 0, 0, 0]));
    // Writing the same page again needs no fault.
    let (err, data) = call(&c, 51, SIM_VM_WRITE, &sim_write(a, 0x8000_1005, b"!"));
    assert_eq!((err, data), (0, vec![0, 0, 0, 0]));

    let (err, data) = call(&c, 52, SIM_VM_READ, &sim_read(a, 0x8000_0ffe, 10));
    assert_eq!(err, 0);
    assert_eq!(data, b"AAhello!BB");
    // Clone b still sees the golden contents, across the whole image (a 2-fragment reply).
    let (err, data) = call(&c, 53, SIM_VM_READ, &sim_read(b, 0x8000_0000, 0x2000));
    assert_eq!(err, 0);
    assert_eq!(data, image);

    // VM_MEM_STATS of a: 2 golden-mapped... of which 1 copied; quota 4 pages.
    let (st, _) = ok_reply(&c, 54, 0x4700_0020, &[a as u8, (a >> 8) as u8, 0, 0]);
    let word = |i: usize| u64::from_le_bytes(st[i * 8..i * 8 + 8].try_into().unwrap());
    assert_eq!(word(2), 1, "cow_copied_pages: {st:02x?}");
    assert_eq!(word(3), 4, "quota_pages: {st:02x?}");

    // The golden image cannot be released while mapped (MEM_INUSE).
    let mut release = golden.to_vec();
    release.extend_from_slice(&[0; 4]);
    let (err, _) = call(&c, 55, 0x4700_0013, &release);
    assert_eq!(err, 0xB);
}
