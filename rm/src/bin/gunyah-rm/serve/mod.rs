//! `gunyah-rm serve`: the RM over the simulated platform, reachable through a Unix socket.

pub mod transport;

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;

use gunyah_rm::launch::{sim_rm_for, Launch, LaunchEvent};
use gunyah_rm::sim::SimPlatform;
use gunyah_rm::Rm;
use gunyah_rm_abi::reassemble::{Reassembler, Received};
use transport::{Endpoint, Event, Server};

use crate::decode;

#[derive(clap::Args)]
pub struct Args {
    /// Path of the Unix SOCK_SEQPACKET socket to listen on.
    #[arg(long)]
    pub socket: PathBuf,
    /// Print every message received and sent, decoded, on stderr.
    #[arg(long)]
    pub log: bool,
    /// File mode of the socket, in octal. The default 0600 lets only the user running the server
    /// connect: any client that can connect may claim any VMID that is not connected, so widen it
    /// only for users you would trust with every VM.
    #[arg(long, default_value = "600", value_parser = parse_mode)]
    pub mode: u32,
    /// VM configs (`.dts` through dtc, or `.dtb`): the simulator is built from their platform
    /// and their `launch = "boot"` VMs are launched before serving; a template is sealed when it
    /// reports OS status RUN, and the VMs waiting for its image are launched then.
    #[arg(long = "config", num_args = 1..)]
    pub config: Vec<PathBuf>,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("{s:?} is not an octal file mode (e.g. 600 or 660)"))
}

pub fn run(args: Args) -> ExitCode {
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gunyah-rm serve: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &Args) -> io::Result<()> {
    // SIGINT/SIGTERM write to this pipe, which wakes the server's poll.
    let (stop_rx, stop_tx) = std::os::unix::net::UnixStream::pair()?;
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::low_level::pipe::register(sig, stop_tx.try_clone()?)?;
    }
    let mut rm = if args.config.is_empty() {
        RmEndpoint::new()
    } else {
        RmEndpoint::from_configs(&args.config)?
    };
    let mut server = Server::bind(&args.socket, args.mode)?;
    eprintln!(
        "gunyah-rm serve: listening on {} (HLOS is VMID 3)",
        args.socket.display()
    );
    let mut log = Log {
        verbose: args.log,
        rx: HashMap::new(),
    };
    server.run(&mut rm, stop_rx.as_raw_fd(), &mut |ev| log.event(ev))?;
    eprintln!("gunyah-rm serve: shutting down");
    Ok(())
}

/// The server's log on stderr; with `--log`, every message decoded as `gunyah-rm decode` does.
struct Log {
    verbose: bool,
    /// One reassembler per (VMID, direction: true = to the RM).
    rx: HashMap<(u16, bool), Reassembler>,
}

impl Log {
    fn event(&mut self, ev: Event<'_>) {
        let line = match ev {
            Event::Connected(v) => format!("[vm {v:#x}] connected"),
            Event::Disconnected(v) => format!("[vm {v:#x}] disconnected"),
            Event::Refused { vmid, why } => format!("[vm {}] refused: {why}", vm_name(vmid)),
            Event::Dropped { vmid, why } => format!("[vm {}] dropped: {why}", vm_name(vmid)),
            Event::Rx(v, p) if self.verbose => self.message(v, true, p),
            Event::Tx(v, p) if self.verbose => self.message(v, false, p),
            Event::Rx(..) | Event::Tx(..) => return,
        };
        let _ = writeln!(io::stderr().lock(), "{}", line.trim_end());
    }

    fn message(&mut self, vmid: u16, to_rm: bool, p: &[u8]) -> String {
        let arrow = if to_rm { "->" } else { "<-" };
        let r = self.rx.entry((vmid, to_rm)).or_default();
        match r.push(p).received {
            Received::Complete(m) => match decode::message_val(&m) {
                Ok(v) => format!("[vm {vmid:#x}] {arrow} rm  {}", decode::human(&m, &v)),
                Err(e) => format!("[vm {vmid:#x}] {arrow} rm  undecodable message: {e}"),
            },
            Received::Partial(_) => format!("[vm {vmid:#x}] {arrow} rm  (fragment)"),
            Received::Dropped(why) => format!("[vm {vmid:#x}] {arrow} rm  dropped packet: {why}"),
        }
    }
}

fn vm_name(vmid: Option<u16>) -> String {
    vmid.map_or_else(|| "?".to_string(), |v| format!("{v:#x}"))
}

/// Packets held for one VM that has no client connected; past this the oldest are dropped.
const MAX_HELD: usize = 4096;

/// The RM behind the socket: the host simulator's RM, the packets it has for each VM, and the
/// launcher of the configs it was started with.
struct RmEndpoint {
    rm: Rm<SimPlatform>,
    /// Packets for each VM not yet taken by its client, each with the link it was produced for:
    /// a packet for an earlier link of the VMID is discarded, never delivered.
    outgoing: HashMap<u16, VecDeque<(u64, Vec<u8>)>>,
    launch: Option<Launch>,
}

impl RmEndpoint {
    fn new() -> RmEndpoint {
        RmEndpoint {
            rm: gunyah_rm::sim::default_rm(),
            outgoing: HashMap::new(),
            launch: None,
        }
    }

    /// The simulator of the configs' platform with their boot VMs launched.
    fn from_configs(files: &[PathBuf]) -> io::Result<RmEndpoint> {
        let plan = gunyah_rm::config::host::load_set(files).map_err(|errs| {
            let msg: Vec<String> = errs.iter().map(ToString::to_string).collect();
            io::Error::new(io::ErrorKind::InvalidInput, msg.join("; "))
        })?;
        let rm = sim_rm_for(&plan.platform)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("platform: {e}")))?;
        let mut ep = RmEndpoint {
            launch: Some(Launch::new(&rm, plan)),
            rm,
            outgoing: HashMap::new(),
        };
        let ev = match ep.launch.as_mut() {
            Some(l) => l.boot(&mut ep.rm),
            None => Vec::new(),
        };
        ep.launched(&ev);
        Ok(ep)
    }

    /// Log launch events and queue what the RM sent meanwhile.
    fn launched(&mut self, ev: &[LaunchEvent]) {
        for e in ev {
            match e {
                LaunchEvent::Launched { name, vmid } => {
                    eprintln!("gunyah-rm serve: launched {name} as VM {vmid:#x}")
                }
                LaunchEvent::Sealed(s) => eprintln!(
                    "gunyah-rm serve: sealed {} from VM {:#x} as golden {} ({} bytes)",
                    s.name, s.template, s.id, s.size
                ),
                LaunchEvent::Failed(f) => eprintln!("gunyah-rm serve: launch refused: {f}"),
            }
        }
        if let Some(l) = self.launch.as_mut() {
            let others = l.take_other_packets();
            self.queue(others);
        }
        self.collect();
    }

    fn queue(&mut self, packets: Vec<(u16, Vec<u8>)>) {
        for (to, p) in packets {
            // The RM produces packets only for VMs with a link; one that has none now was
            // reset or deallocated since, and its packets go with it.
            let Some(link) = self.rm.link(to) else {
                continue;
            };
            let q = self.outgoing.entry(to).or_default();
            if q.len() >= MAX_HELD {
                q.pop_front();
            }
            q.push_back((link, p));
        }
        // Forget what is held for VMIDs whose link has gone.
        let rm = &self.rm;
        self.outgoing.retain(|&vmid, q| {
            let link = rm.link(vmid);
            q.retain(|(l, _)| Some(*l) == link);
            !q.is_empty()
        });
    }

    fn collect(&mut self) {
        let out = self.rm.drain_outgoing();
        self.queue(out);
    }
}

impl Endpoint for RmEndpoint {
    fn link(&self, vmid: u16) -> Option<u64> {
        self.rm.link(vmid)
    }
    fn connected(&mut self, vmid: u16) {
        self.rm.client_disconnected(vmid);
    }
    fn disconnected(&mut self, vmid: u16) {
        self.rm.client_disconnected(vmid);
    }
    fn packet(&mut self, vmid: u16, packet: &[u8]) {
        self.rm.packet_from(vmid, packet);
        self.collect();
        // A template's seal trigger (OS status RUN) may have fired.
        let ev = match self.launch.as_mut() {
            Some(l) => l.poll(&mut self.rm),
            None => return,
        };
        if !ev.is_empty() {
            self.launched(&ev);
        }
    }
    fn pop_outgoing(&mut self, vmid: u16) -> Option<Vec<u8>> {
        let link = self.rm.link(vmid)?;
        let q = self.outgoing.get_mut(&vmid)?;
        while let Some((l, p)) = q.pop_front() {
            if l == link {
                return Some(p);
            }
        }
        None
    }
}
