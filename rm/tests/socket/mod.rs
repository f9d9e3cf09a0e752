//! A `gunyah-rm serve` child process and hand-written socket clients for the tests that drive
//! the server over its real Unix SOCK_SEQPACKET socket (DESIGN.md "Host socket transport").
//! Packets are written by hand from the spec (rm-rpc-abi.md §1.2, §5.5), not produced by the
//! crate's encoder.
#![allow(dead_code)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    connect, recv, send, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag, SockType,
    UnixAddr,
};
use nix::sys::time::TimeVal;

pub const HLOS: u16 = 3;

pub struct Server {
    pub child: Child,
    pub path: PathBuf,
    pub _dir: TempDir,
}

/// A private temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);
impl TempDir {
    pub fn new(tag: &str) -> TempDir {
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
    pub fn start(tag: &str) -> Server {
        Server::start_with(tag, &[])
    }

    pub fn start_with(tag: &str, extra: &[&str]) -> Server {
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

    /// Run `gunyah-rm serve --socket path extra…` to completion (for servers expected to refuse
    /// to start): (exit status, stderr).
    pub fn run_on(path: &Path, extra: &[&str]) -> (std::process::ExitStatus, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_gunyah-rm"))
            .arg("serve")
            .arg("--socket")
            .arg(path)
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .expect("run gunyah-rm serve");
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Stop the server with SIGTERM and wait for it to exit; true if it exited successfully.
    pub fn terminate(&mut self) -> bool {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        self.child.wait().unwrap().success()
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Client {
    pub fd: OwnedFd,
}

impl Client {
    /// A connection, if something listens on `path`.
    pub fn raw_maybe(path: &Path) -> Option<Client> {
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        connect(fd.as_raw_fd(), &UnixAddr::new(path).unwrap()).ok()?;
        setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(10, 0)).unwrap();
        Some(Client { fd })
    }

    pub fn raw(path: &Path) -> Client {
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
    pub fn hello(path: &Path, vmid: u16) -> Client {
        let c = Client::raw(path);
        let h = hello(vmid);
        c.send(&h);
        assert_eq!(c.recv().as_deref(), Some(&h[..]), "hello answer");
        c
    }

    pub fn send(&self, p: &[u8]) {
        send(self.fd.as_raw_fd(), p, MsgFlags::MSG_NOSIGNAL).unwrap();
    }

    /// The next packet, or `None` if the server closed the connection.
    pub fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = [0u8; 512];
        match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(0) => None,
            Ok(n) => Some(buf[..n].to_vec()),
            Err(nix::errno::Errno::ECONNRESET) => None,
            Err(e) => panic!("recv: {e}"),
        }
    }

    /// The next packet that is not a notification (type 3).
    pub fn reply(&self) -> Vec<u8> {
        loop {
            let p = self.recv().expect("server closed the connection");
            if p[1] & 3 != 3 {
                return p;
            }
        }
    }
}

pub fn hello(vmid: u16) -> [u8; 8] {
    let v = vmid.to_le_bytes();
    [b'G', b'R', b'M', b'1', v[0], v[1], 0, 0]
}

/// An RPC header: api 0x21, type | fragments << 2, seq, msg_id (spec §1.2).
pub fn header(ty: u8, fragments: u8, seq: u16, msg_id: u32) -> Vec<u8> {
    let mut h = vec![0x21, ty | (fragments << 2)];
    h.extend_from_slice(&seq.to_le_bytes());
    h.extend_from_slice(&msg_id.to_le_bytes());
    h
}

pub fn request(seq: u16, msg_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = header(1, 0, seq, msg_id);
    p.extend_from_slice(payload);
    p
}

pub const VM_GET_VMID: u32 = 0x5600_0024;
pub const VM_ALLOC_VMID: u32 = 0x5600_0001;
pub const VM_GET_STATE: u32 = 0x5600_0017;

/// The smallest flattened device tree (DTSpec §5): a header, an empty reservation map and an
/// empty root node; 72 bytes, so it fits one SIM_VM_WRITE packet.
pub fn minimal_dtb() -> Vec<u8> {
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
pub fn ready_vm(c: &Client, seq: u16) -> u16 {
    ready_vm_with_image(c, seq).0
}

/// [`ready_vm`], also returning the handle of the VM's image parcel (HLOS reclaims it after the
/// VM is reset).
pub fn ready_vm_with_image(c: &Client, seq: u16) -> (u16, u32) {
    let (data, _) = ok_reply(c, seq, VM_ALLOC_VMID, &[0, 0, 0, 0]);
    let vm = u16::from_le_bytes([data[0], data[1]]);
    (vm, configure_and_init(c, seq, vm))
}

/// [`ready_vm_with_image`] for the static VMID `vmid` (< 64).
pub fn ready_static_vm(c: &Client, seq: u16, vmid: u16) -> (u16, u32) {
    let mut req = vmid.to_le_bytes().to_vec();
    req.extend_from_slice(&[0, 0]);
    ok_reply(c, seq, VM_ALLOC_VMID, &req);
    (vmid, configure_and_init(c, seq, vmid))
}

/// VM_CONFIG_IMAGE and VM_INIT for `vm` (allocated, LOAD), with a minimal DT in a page of HLOS
/// RAM lent to it; returns the image parcel's handle. Uses `seq + 1..seq + 5`.
fn configure_and_init(c: &Client, seq: u16, vm: u16) -> u32 {
    let pa = 0x7F00_0000u64 + u64::from(vm & 0xFF) * 0x1_0000;
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
    u32::from_le_bytes(data[..4].try_into().unwrap())
}

/// VM_GET_VMID from `vmid`'s client answers OK with that VMID.
pub fn assert_get_vmid(c: &Client, seq: u16, vmid: u16) {
    c.send(&request(seq, VM_GET_VMID, &[]));
    let mut want = header(2, 0, seq, VM_GET_VMID);
    want.extend_from_slice(&[0, 0, 0, 0]);
    want.extend_from_slice(&(vmid as u32).to_le_bytes());
    assert_eq!(c.reply(), want);
}

pub trait WaitOutput {
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
pub fn reply_after_status(c: &Client, seq: u16) -> (Vec<u8>, Vec<Vec<u8>>) {
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

pub fn ok_reply(c: &Client, seq: u16, msg_id: u32, payload: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
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

#[path = "../common/dtc.rs"]
mod dtc_tool;
/// Compile device-tree source with dtc.
pub fn compile_dtb(dts: &str) -> Vec<u8> {
    dtc_tool::dtc(dts)
}

/// A request of any size, fragmented by hand (232 payload bytes per fragment, spec §1.4).
pub fn send_request(c: &Client, seq: u16, msg_id: u32, payload: &[u8]) {
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
pub fn reassembled_reply(c: &Client, seq: u16) -> (u32, Vec<u8>) {
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

pub fn call(c: &Client, seq: u16, msg_id: u32, payload: &[u8]) -> (u32, Vec<u8>) {
    send_request(c, seq, msg_id, payload);
    reassembled_reply(c, seq)
}

pub fn sim_write(vmid: u16, ipa: u64, bytes: &[u8]) -> Vec<u8> {
    let mut p = vmid.to_le_bytes().to_vec();
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    p.extend_from_slice(&ipa.to_le_bytes());
    p.extend_from_slice(bytes);
    p
}

pub fn sim_read(vmid: u16, ipa: u64, len: u32) -> Vec<u8> {
    let mut p = vmid.to_le_bytes().to_vec();
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&len.to_le_bytes());
    p.extend_from_slice(&ipa.to_le_bytes());
    p
}
