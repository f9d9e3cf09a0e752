//! The host socket transport of DESIGN.md: a Unix `SOCK_SEQPACKET` socket, a `GRM1` hello naming
//! the client's VMID, then one RM message-queue message (at most 240 bytes) per packet.
//!
//! The transport knows nothing of RM RPC: it moves packets between sockets and an [`Endpoint`].
//! A misbehaving client (bad hello, oversized packet, not reading its replies, too many
//! connections) is dropped; the server and the other clients carry on.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    accept4, bind, listen, recv, send, socket, AddressFamily, Backlog, MsgFlags, SockFlag,
    SockType, UnixAddr,
};

/// Largest RM message-queue message (spec §1.1).
pub const MAX_PACKET: usize = 240;
/// The hello packet: `GRM1`, u16 VMID (LE), two zero bytes.
pub const HELLO_LEN: usize = 8;
const HELLO_MAGIC: &[u8; 4] = b"GRM1";
/// Connected clients served at once: one for every VM that may exist (HLOS, the 62 static
/// VMIDs below 64 other than 0 and 3, the 63 dynamic ones), so no VM is ever locked out.
pub const MAX_CONNECTED: usize = 1
    + (gunyah_rm::vm::STATIC_VMID_LIMIT as usize - 2)
    + gunyah_rm::vm::DYNAMIC_VMID_COUNT as usize;
/// Connections that have not said hello yet, with a budget of their own: when it is full the
/// oldest silent connection is dropped to make room, so silent connections can neither use up
/// the connected clients' places nor keep a real client out.
pub const MAX_PENDING: usize = 16;
/// A client must say hello within this time.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(2);
/// Packets read from one client per poll round, so one flooding client cannot starve others.
const READ_BUDGET: usize = 64;
/// Outgoing packets held for a client that does not read; past this it is dropped.
pub const MAX_OUTBOX: usize = 4096;

/// The RM side of the transport.
///
/// A connection is bound to one RM-RPC link of its VM (`Rm::link`): it may connect only while
/// the VM's message queues exist, and it is closed as soon as that link is gone (the VM was
/// reset or deallocated), so it can never act for a later VM given the same VMID.
pub trait Endpoint {
    /// The link a client connecting as `vmid` is bound to, if `vmid` may connect now.
    fn link(&self, vmid: u16) -> Option<u64>;
    /// A client is now connected as `vmid`: start from a clean reassembly state.
    fn connected(&mut self, vmid: u16);
    /// The client of `vmid` went away (any partial message it sent is abandoned).
    fn disconnected(&mut self, vmid: u16);
    /// One message-queue message received from `vmid`.
    fn packet(&mut self, vmid: u16, packet: &[u8]);
    /// The next packet the RM has for `vmid`, if any.
    fn pop_outgoing(&mut self, vmid: u16) -> Option<Vec<u8>>;
}

/// Parse a hello packet; `None` if it is not exactly `GRM1`, VMID, 0, 0.
pub fn parse_hello(p: &[u8]) -> Option<u16> {
    if p.len() != HELLO_LEN || &p[..4] != HELLO_MAGIC || p[6] != 0 || p[7] != 0 {
        return None;
    }
    Some(u16::from_le_bytes([p[4], p[5]]))
}

/// The hello packet for `vmid`.
pub fn hello(vmid: u16) -> [u8; HELLO_LEN] {
    let v = vmid.to_le_bytes();
    [b'G', b'R', b'M', b'1', v[0], v[1], 0, 0]
}

/// What the server tells its log.
pub enum Event<'a> {
    Connected(u16),
    Refused { vmid: Option<u16>, why: &'a str },
    Dropped { vmid: Option<u16>, why: &'a str },
    Disconnected(u16),
    Rx(u16, &'a [u8]),
    Tx(u16, &'a [u8]),
}

struct Client {
    fd: OwnedFd,
    vmid: Option<u16>,
    /// The link the connection is bound to (set with `vmid`).
    link: u64,
    since: Instant,
    outbox: VecDeque<Vec<u8>>,
}

enum Fate {
    Keep,
    Close,
    Drop(&'static str),
}

/// The listening socket. When dropped it removes its socket file, if the file at its path is
/// still the one it created (same device and inode): a server started later on the same path
/// keeps its own.
pub struct Server {
    listener: OwnedFd,
    path: PathBuf,
    /// (device, inode) of the socket file this server created.
    created: (u64, u64),
    clients: Vec<Client>,
}

fn err_at(path: &Path, what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("cannot listen on {}: {what}: {e}", path.display()))
}

impl Server {
    /// Listen on `path` with file mode `mode`.
    ///
    /// A socket file at `path` that a server still answers on is an error (two servers never
    /// share a path); one that nobody answers on is stale and is replaced; any other file is an
    /// error. Errors name `path` and what is wrong with it.
    pub fn bind(path: &Path, mode: u32) -> io::Result<Server> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(err_at(path, "not a directory", dir.display())),
            Err(e) => return Err(err_at(path, &format!("directory {}", dir.display()), e)),
        }
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(err_at(path, "exists", "it is not a socket"));
            }
            if server_answers(path) {
                return Err(err_at(
                    path,
                    "in use",
                    "another server is listening there (stop it or choose another path)",
                ));
            }
            std::fs::remove_file(path).map_err(|e| err_at(path, "removing a stale socket", e))?;
        }
        let listener = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(|e| err_at(path, "socket", e))?;
        // The address must fit sun_path (108 bytes with its NUL).
        UnixAddr::new(path).map_err(|e| err_at(path, "path too long for a Unix socket", e))?;
        // Bind under a temporary name in the same directory and rename once listening, so the
        // socket file appears only when connections are accepted (a client that waits for the
        // file and connects at once would otherwise be refused between bind and listen).
        let staging = dir.join(format!(".grm-{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&staging);
        let addr = UnixAddr::new(&staging).map_err(|e| err_at(path, "temporary name", e))?;
        bind(listener.as_raw_fd(), &addr).map_err(|e| err_at(path, "bind", e))?;
        let ready = std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(mode))
            .map_err(|e| err_at(path, "chmod", e))
            .and_then(|()| {
                listen(&listener, Backlog::new(64).expect("64 is a valid backlog"))
                    .map_err(|e| err_at(path, "listen", e))
            })
            .and_then(|()| std::fs::rename(&staging, path).map_err(|e| err_at(path, "rename", e)))
            .and_then(|()| std::fs::symlink_metadata(path).map_err(|e| err_at(path, "stat", e)));
        let meta = match ready {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_file(&staging);
                return Err(e);
            }
        };
        Ok(Server {
            listener,
            path: path.to_path_buf(),
            created: (meta.dev(), meta.ino()),
            clients: Vec::new(),
        })
    }

    /// Serve until `stop` (a file descriptor that becomes readable, e.g. a signal pipe) fires.
    pub fn run(
        &mut self,
        ep: &mut dyn Endpoint,
        stop: RawFd,
        log: &mut dyn FnMut(Event<'_>),
    ) -> io::Result<()> {
        loop {
            let (stop_ready, listen_ready, ready) = self.wait(stop)?;
            if stop_ready {
                return Ok(());
            }
            if listen_ready {
                self.accept_all(log)?;
            }
            let mut online: HashSet<u16> = self.connected().collect();
            let mut fates = Vec::with_capacity(self.clients.len());
            for (i, c) in self.clients.iter_mut().enumerate() {
                let fate = match ready.get(i).copied().flatten() {
                    Some(flags) => serve_input(c, flags, ep, &mut online, log),
                    None => Fate::Keep,
                };
                // A client that hung up frees its VMID at once: a reconnect later in this
                // round (clients are served oldest first) is then accepted.
                if let (Some(v), Fate::Close | Fate::Drop(_)) = (c.vmid, &fate) {
                    online.remove(&v);
                }
                fates.push(fate);
            }
            // Hello timeouts, links that went away, and output; then retire the clients
            // that are done.
            for (c, fate) in self.clients.iter_mut().zip(fates.iter_mut()) {
                if matches!(fate, Fate::Keep) {
                    *fate = match c.vmid {
                        None if c.since.elapsed() > HELLO_TIMEOUT => Fate::Drop("no hello in time"),
                        None => Fate::Keep,
                        Some(vmid) if ep.link(vmid) != Some(c.link) => {
                            Fate::Drop("its VM was reset or deallocated")
                        }
                        Some(vmid) => flush(c, vmid, ep, log),
                    };
                }
            }
            let mut fates = fates.into_iter();
            self.clients.retain(|c| {
                let fate = fates.next().unwrap_or(Fate::Keep);
                let vmid = c.vmid;
                match fate {
                    Fate::Keep => true,
                    Fate::Close => {
                        if let Some(v) = vmid {
                            ep.disconnected(v);
                            log(Event::Disconnected(v));
                        }
                        false
                    }
                    Fate::Drop(why) => {
                        if let Some(v) = vmid {
                            ep.disconnected(v);
                        }
                        log(Event::Dropped { vmid, why });
                        false
                    }
                }
            });
        }
    }

    /// Poll the stop fd, the listener and every client. Returns which are ready.
    #[allow(clippy::type_complexity)]
    fn wait(&self, stop: RawFd) -> io::Result<(bool, bool, Vec<Option<PollFlags>>)> {
        // SAFETY: `stop` is a descriptor the caller keeps open for the whole `run`.
        let stop_fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(stop) };
        let mut fds = Vec::with_capacity(self.clients.len() + 2);
        fds.push(PollFd::new(stop_fd, PollFlags::POLLIN));
        fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
        for c in &self.clients {
            let mut ev = PollFlags::POLLIN;
            if !c.outbox.is_empty() {
                ev |= PollFlags::POLLOUT;
            }
            fds.push(PollFd::new(c.fd.as_fd(), ev));
        }
        // Wake often enough to enforce the hello deadline.
        match poll(&mut fds, PollTimeout::from(250u16)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let got = |p: &PollFd| p.revents().filter(|r| !r.is_empty());
        let stop_ready = got(&fds[0]).is_some();
        let listen_ready = got(&fds[1]).is_some();
        Ok((stop_ready, listen_ready, fds[2..].iter().map(got).collect()))
    }

    fn accept_all(&mut self, log: &mut dyn FnMut(Event<'_>)) -> io::Result<()> {
        loop {
            let raw = match accept4(
                self.listener.as_raw_fd(),
                SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            ) {
                Ok(fd) => fd,
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => return Ok(()),
                // A connection that died before we took it, or a descriptor limit: not fatal.
                Err(Errno::ECONNABORTED) | Err(Errno::EMFILE) | Err(Errno::ENFILE) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            // SAFETY: accept4 just returned this descriptor; nothing else owns it.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let pending = self.clients.iter().filter(|c| c.vmid.is_none()).count();
            if pending >= MAX_PENDING {
                // Make room: the oldest connection that has not said hello goes.
                if let Some(i) = self.clients.iter().position(|c| c.vmid.is_none()) {
                    self.clients.remove(i);
                    log(Event::Dropped {
                        vmid: None,
                        why: "silent connection dropped to make room for a new one",
                    });
                }
            }
            self.clients.push(Client {
                fd,
                vmid: None,
                since: Instant::now(),
                outbox: VecDeque::new(),
                link: 0,
            });
        }
    }

    /// VMIDs of the connected clients.
    pub fn connected(&self) -> impl Iterator<Item = u16> + '_ {
        self.clients.iter().filter_map(|c| c.vmid)
    }
}

/// Read what a ready client sent (hello, then message-queue messages).
fn serve_input(
    c: &mut Client,
    flags: PollFlags,
    ep: &mut dyn Endpoint,
    online: &mut HashSet<u16>,
    log: &mut dyn FnMut(Event<'_>),
) -> Fate {
    // One byte more than the largest packet: MSG_TRUNC reports a longer one's real length.
    let mut buf = [0u8; MAX_PACKET + 1];
    for _ in 0..READ_BUDGET {
        let n = match recv(
            c.fd.as_raw_fd(),
            &mut buf,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
        ) {
            Ok(0) => return Fate::Close,
            Ok(n) => n,
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => break,
            Err(_) => return Fate::Close,
        };
        if n > MAX_PACKET {
            return Fate::Drop("packet longer than 240 bytes");
        }
        let packet = &buf[..n];
        match c.vmid {
            None => {
                let Some(vmid) = parse_hello(packet) else {
                    return Fate::Drop("first packet is not a GRM1 hello");
                };
                let Some(link) = ep.link(vmid) else {
                    log(Event::Refused {
                        vmid: Some(vmid),
                        why:
                            "no such VM, or its RM message queues do not exist yet (before VM_INIT)",
                    });
                    return Fate::Close;
                };
                if !online.insert(vmid) {
                    log(Event::Refused {
                        vmid: Some(vmid),
                        why: "VMID already connected",
                    });
                    return Fate::Close;
                }
                if online.len() > MAX_CONNECTED {
                    online.remove(&vmid);
                    log(Event::Refused {
                        vmid: Some(vmid),
                        why: "too many connected clients",
                    });
                    return Fate::Close;
                }
                // The answer goes out first, before anything the RM queues for this VM.
                c.outbox.push_back(hello(vmid).to_vec());
                c.vmid = Some(vmid);
                c.link = link;
                ep.connected(vmid);
                log(Event::Connected(vmid));
            }
            Some(vmid) => {
                // Another client's request (HLOS deallocating this VM) may have ended the
                // link since the last packet.
                if ep.link(vmid) != Some(c.link) {
                    return Fate::Drop("its VM was reset or deallocated");
                }
                log(Event::Rx(vmid, packet));
                ep.packet(vmid, packet);
            }
        }
    }
    if flags.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)
        && !flags.contains(PollFlags::POLLIN)
    {
        return Fate::Close;
    }
    Fate::Keep
}

/// Move the RM's packets for `vmid` to the client's outbox and send what the socket takes.
fn flush(c: &mut Client, vmid: u16, ep: &mut dyn Endpoint, log: &mut dyn FnMut(Event<'_>)) -> Fate {
    while let Some(p) = ep.pop_outgoing(vmid) {
        if c.outbox.len() >= MAX_OUTBOX {
            return Fate::Drop("client does not read its replies");
        }
        c.outbox.push_back(p);
    }
    while let Some(p) = c.outbox.front() {
        match send_now(&c.fd, p) {
            Ok(true) => {
                if p[..] != hello(vmid) {
                    log(Event::Tx(vmid, p));
                }
                c.outbox.pop_front();
            }
            Ok(false) => break,
            Err(_) => return Fate::Close,
        }
    }
    Fate::Keep
}

/// Send one packet without blocking: `Ok(false)` if the socket is full.
fn send_now(fd: &OwnedFd, p: &[u8]) -> Result<bool, Errno> {
    match send(
        fd.as_raw_fd(),
        p,
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
    ) {
        Ok(_) => Ok(true),
        Err(Errno::EAGAIN) | Err(Errno::EINTR) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether a server accepts connections on the socket file at `path`.
fn server_answers(path: &Path) -> bool {
    let Ok(fd) = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    ) else {
        return false;
    };
    UnixAddr::new(path)
        .and_then(|a| nix::sys::socket::connect(fd.as_raw_fd(), &a))
        .is_ok()
}

impl Drop for Server {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        // Only the file this server created: another server may have taken the path since.
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if (m.dev(), m.ino()) == self.created {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}
