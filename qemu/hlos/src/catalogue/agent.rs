//! The catalogue's guest agent: what a VM a case created runs. It takes HLOS's commands from
//! the board's test channel and does them with its own vCPU and its own RM queues (the
//! capabilities its DT names): send a packet, receive the next one, read or write an IPA.
//! It allocates nothing (the heap is HLOS's).

use crate::chan::{self, HEAD, MAX};
use crate::dt::DtInfo;
use crate::hvc;
use crate::start::{self, Probe};

/// The agent's main: wait for a command (WFI; a posted command raises the receive
/// interrupt, a 2 ms timer is the fallback), do it, answer, again. `delta`: how far from
/// its link address the image runs (`start.rs`): if not 0, VA 1..2 GiB is not IPA 1..2 GiB
/// and accesses there are refused.
pub fn main(info: &DtInfo, delta: u64) -> ! {
    crate::gic::init(info.rx_virq);
    let queues = (info.tx_cap, info.rx_cap);
    let mut cmd = [0u8; MAX];
    let mut rep = [0u8; MAX];
    loop {
        let Some(n) = chan::take(&mut cmd) else {
            crate::gic::wait_us(2000);
            continue;
        };
        let len = serve(queues, delta, &cmd[..n.min(MAX)], &mut rep);
        chan::reply(&rep[..len]);
    }
}

/// Do one command; the reply's length in `rep`.
fn serve(queues: (u64, u64), delta: u64, cmd: &[u8], rep: &mut [u8; MAX]) -> usize {
    let (op, a, b) = (chan::get(cmd, 0), chan::get(cmd, 8), chan::get(cmd, 16));
    let data = cmd.get(HEAD..).unwrap_or(&[]);
    let remapped =
        |ipa: u64| delta != 0 && ipa < 0x8000_0000 && ipa.saturating_add(b) > 0x4000_0000;
    let (status, value, len) = match op {
        chan::OP_READ | chan::OP_WRITE if remapped(a) => (chan::ST_OUTSIDE, a, 0),
        chan::OP_SEND => {
            let [err, ..] = hvc::call(
                hvc::MSGQ_SEND,
                queues.0,
                data.len() as u64,
                data.as_ptr() as u64,
                1,
            );
            if err == hvc::OK {
                (chan::ST_DONE, 0, 0)
            } else {
                (chan::ST_HYPERCALL, err, 0)
            }
        }
        chan::OP_RECV => {
            let mut pk = [0u8; 240];
            let [err, size, _] =
                hvc::call(hvc::MSGQ_RECV, queues.1, pk.as_mut_ptr() as u64, 240, 0);
            match err {
                hvc::OK => {
                    let n = (size as usize).min(240);
                    rep[HEAD..HEAD + n].copy_from_slice(&pk[..n]);
                    (chan::ST_DONE, 0, n)
                }
                hvc::MSGQUEUE_EMPTY => (chan::ST_EMPTY, 0, 0),
                e => (chan::ST_HYPERCALL, e, 0),
            }
        }
        chan::OP_READ if b as usize <= MAX - HEAD => {
            let n = b as usize;
            match start::read(a, &mut rep[HEAD..HEAD + n]) {
                Probe::Done => (chan::ST_DONE, 0, n),
                Probe::Fault(va) => (chan::ST_FAULT, va, 0),
                Probe::Abort(esr) => (chan::ST_ABORT, esr, 0),
            }
        }
        chan::OP_WRITE if b == data.len() as u64 => match start::write(a, data) {
            Probe::Done => (chan::ST_DONE, 0, 0),
            Probe::Fault(va) => (chan::ST_FAULT, va, 0),
            Probe::Abort(esr) => (chan::ST_ABORT, esr, 0),
        },
        _ => (chan::ST_UNKNOWN, op, 0),
    };
    chan::put(rep, 0, status);
    chan::put(rep, 8, value);
    HEAD + len
}

/// An unexpected exception or a panic: tell HLOS (its next result is this) and stop.
pub fn fatal(esr: u64, elr: u64, far: u64) -> ! {
    let mut rep = [0u8; HEAD + 16];
    chan::put(&mut rep, 0, chan::ST_FATAL);
    chan::put(&mut rep, 8, esr);
    chan::put(&mut rep, 16, elr);
    chan::put(&mut rep, 24, far);
    chan::reply(&rep);
    hvc::cpu_off()
}
