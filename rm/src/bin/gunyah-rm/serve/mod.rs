//! `gunyah-rm serve`: the RM over the simulated platform, reachable through a Unix socket
//! (the transport is the library's `gunyah_rm::serve_transport`).

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;

use gunyah_rm::launch::{Launch, LaunchEvent};
use gunyah_rm::serve_transport::endpoint::RmEndpoint;
use gunyah_rm::serve_transport::socket::Server;
use gunyah_rm::serve_transport::{Endpoint, Event};
use gunyah_rm::sim::{sim_rm_for, SimPlatform};
use gunyah_rm_abi::reassemble::{Reassembler, Received};

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
        ServeEndpoint::new()
    } else {
        ServeEndpoint::from_configs(&args.config)?
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

/// The RM behind the socket (the library's [`RmEndpoint`]: packets held per VM and link) and the
/// launcher of the configs it was started with.
struct ServeEndpoint {
    ep: RmEndpoint<SimPlatform>,
    launch: Option<Launch>,
}

impl ServeEndpoint {
    fn new() -> ServeEndpoint {
        ServeEndpoint {
            ep: RmEndpoint::new(gunyah_rm::sim::default_rm()),
            launch: None,
        }
    }

    /// The simulator of the configs' platform with their boot VMs launched.
    fn from_configs(files: &[PathBuf]) -> io::Result<ServeEndpoint> {
        let plan = gunyah_rm::config::host::load_set(files).map_err(|errs| {
            let msg: Vec<String> = errs.iter().map(ToString::to_string).collect();
            io::Error::new(io::ErrorKind::InvalidInput, msg.join("; "))
        })?;
        let rm = sim_rm_for(&plan.platform)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("platform: {e}")))?;
        let mut s = ServeEndpoint {
            launch: Some(Launch::new(&rm, plan)),
            ep: RmEndpoint::new(rm),
        };
        let ev = match s.launch.as_mut() {
            Some(l) => l.boot(&mut s.ep.rm),
            None => Vec::new(),
        };
        s.launched(&ev);
        Ok(s)
    }

    /// Log launch events and hold what the RM sent meanwhile.
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
        // What the launches sent (VM_STATUS to HLOS, ...) is in the RM's outbox.
        self.ep.collect();
    }
}

impl Endpoint for ServeEndpoint {
    fn link(&self, vmid: u16) -> Option<u64> {
        self.ep.link(vmid)
    }
    fn connected(&mut self, vmid: u16) {
        self.ep.connected(vmid);
    }
    fn disconnected(&mut self, vmid: u16) {
        self.ep.disconnected(vmid);
    }
    fn packet(&mut self, vmid: u16, packet: &[u8]) {
        self.ep.packet(vmid, packet);
        // The launcher acts on status changes (a template reporting OS RUN), when there are any.
        if !self.ep.rm.has_events() {
            return;
        }
        let ev = match self.launch.as_mut() {
            Some(l) => l.poll(&mut self.ep.rm),
            None => return,
        };
        if !ev.is_empty() {
            self.launched(&ev);
        }
    }
    fn pop_outgoing(&mut self, vmid: u16) -> Option<Vec<u8>> {
        self.ep.pop_outgoing(vmid)
    }
}
