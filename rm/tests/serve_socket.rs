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
    other.send(&request(1, VM_ALLOC_VMID, &[0, 0, 0, 0]));
    let r = other.reply();
    assert_eq!(&r[8..12], &[0, 0, 0, 0], "VM_ALLOC_VMID failed: {r:02x?}");
    let vmid = u16::from_le_bytes([r[12], r[13]]);
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
