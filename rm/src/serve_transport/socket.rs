//! The listening Unix `SOCK_SEQPACKET` socket, `poll` and `accept` around a [`Hub`].

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    accept4, bind, listen, recv, send, socket, AddressFamily, Backlog, MsgFlags, SockFlag,
    SockType, UnixAddr,
};

use super::hub::{Hub, Ready, Recv, Send, Sockets};
use super::{Endpoint, Event};

/// The listening socket and its connections. When dropped it removes its socket file, if the
/// file at its path is still the one it created (same device and inode): a server started
/// later on the same path keeps its own.
pub struct Server {
    listener: OwnedFd,
    path: PathBuf,
    /// (device, inode) of the socket file this server created.
    created: (u64, u64),
    hub: Hub<OwnedFd>,
}

fn err_at(path: &Path, what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("cannot listen on {}: {what}: {e}", path.display()))
}

/// Non-blocking reads and writes of whole packets on connected sockets.
struct SeqPacket;

impl Sockets<OwnedFd> for SeqPacket {
    fn recv(&mut self, fd: &OwnedFd, buf: &mut [u8]) -> Recv {
        // MSG_TRUNC: the length returned is the packet's, even when longer than `buf`.
        match recv(
            fd.as_raw_fd(),
            buf,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
        ) {
            Ok(0) => Recv::Closed,
            Ok(n) => Recv::Packet(n),
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => Recv::Empty,
            Err(_) => Recv::Closed,
        }
    }

    fn send(&mut self, fd: &OwnedFd, p: &[u8]) -> Send {
        match send(
            fd.as_raw_fd(),
            p,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        ) {
            Ok(_) => Send::Sent,
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => Send::Full,
            Err(_) => Send::Failed,
        }
    }
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
            hub: Hub::new(),
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
            self.hub.round(
                &|id| ready.get(&id).copied(),
                Instant::now(),
                &mut SeqPacket,
                ep,
                log,
            );
        }
    }

    /// Poll the stop fd, the listener and every client. Returns which are ready, the clients'
    /// readiness by connection id (so it stays with its connection when `accept_all` drops a
    /// silent one before the round).
    #[allow(clippy::type_complexity)]
    fn wait(&self, stop: RawFd) -> io::Result<(bool, bool, HashMap<u64, Ready>)> {
        // SAFETY: `stop` is a descriptor the caller keeps open for the whole `run`.
        let stop_fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(stop) };
        let clients = self.hub.clients();
        let mut fds = Vec::with_capacity(clients.len() + 2);
        fds.push(PollFd::new(stop_fd, PollFlags::POLLIN));
        fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
        for c in clients {
            let mut ev = PollFlags::POLLIN;
            if c.outbox_len() > 0 {
                ev |= PollFlags::POLLOUT;
            }
            fds.push(PollFd::new(c.sock().as_fd(), ev));
        }
        // Wake often enough to enforce the hello deadline.
        match poll(&mut fds, PollTimeout::from(250u16)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let got = |p: &PollFd| p.revents().filter(|r| !r.is_empty());
        let stop_ready = got(&fds[0]).is_some();
        let listen_ready = got(&fds[1]).is_some();
        let ready = clients
            .iter()
            .zip(&fds[2..])
            .filter_map(|(c, p)| {
                got(p).map(|f| {
                    (
                        c.id(),
                        Ready {
                            readable: f.contains(PollFlags::POLLIN),
                            hangup: f.intersects(PollFlags::POLLHUP | PollFlags::POLLERR),
                        },
                    )
                })
            })
            .collect();
        Ok((stop_ready, listen_ready, ready))
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
            self.hub.add(fd, Instant::now(), log);
        }
    }

    /// VMIDs of the connected clients.
    pub fn connected(&self) -> impl Iterator<Item = u16> + '_ {
        self.hub.connected()
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
