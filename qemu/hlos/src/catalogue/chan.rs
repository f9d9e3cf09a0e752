//! The board's test channel (board feature `catalogue`, `qemu/board/src/testchan.rs`) and
//! the commands HLOS gives a VM's agent over it. It is board state only (no parcel,
//! capability or message queue), so the cases' checks of the RM never see it.
//!
//! A command: op (u64), a (u64), b (u64), then data. A reply: status (u64), value (u64),
//! then data.

use crate::hvc;

const POST: u64 = 0xC600_9F00;
const TAKE: u64 = 0xC600_9F01;
const REPLY: u64 = 0xC600_9F02;
const RESULT: u64 = 0xC600_9F03;
const DIGEST: u64 = 0xC600_9F04;
const CENSUS: u64 = 0xC600_9F05;
const CHECK: u64 = 0xC600_9F06;
const POP: u64 = 0xC600_9F07;
const PROTECT: u64 = 0xC600_9F08;
const PENDING: u64 = 0xC600_9F09;
const SENDER: u64 = 0xC600_9F0A;

/// Largest command or reply the board takes.
pub const MAX: usize = 8192;
/// Bytes before a command's or a reply's data.
pub const HEAD: usize = 24;

/// Send `data` (a packet) on the agent's RM queue: reply status 0, or the hypercall error.
pub const OP_SEND: u64 = 1;
/// Receive from the agent's RM queue: status `ST_DONE` with the packet, or `ST_EMPTY`.
pub const OP_RECV: u64 = 2;
/// Read `b` bytes at IPA `a`: `ST_DONE` with the bytes, `ST_FAULT` (value = the page), or
/// `ST_ABORT` (value = ESR: an abort that is not the hypervisor's injected one).
pub const OP_READ: u64 = 3;
/// Write `data` (`b` bytes) at IPA `a`: as `OP_READ`, without data.
pub const OP_WRITE: u64 = 4;

/// The command was done.
pub const ST_DONE: u64 = 0;
/// Nothing was queued.
pub const ST_EMPTY: u64 = 1;
/// The access faulted and the RM did not serve the fault.
pub const ST_FAULT: u64 = 2;
/// Another abort (value = ESR).
pub const ST_ABORT: u64 = 3;
/// A hypercall failed (value = its error).
pub const ST_HYPERCALL: u64 = 4;
/// The agent took an unexpected exception (value = ESR) or panicked.
pub const ST_FATAL: u64 = 99;
/// The IPA is one the agent's stage 1 does not map to itself (value = the IPA).
pub const ST_OUTSIDE: u64 = 97;
/// Not from the agent: its VM stopped running after it took the command (what it did
/// stopped it, e.g. VM_EXIT).
pub const ST_STOPPED: u64 = 96;
/// An unknown command.
pub const ST_UNKNOWN: u64 = 98;

/// HLOS: post `cmd` for `vmid`'s agent. Err(hypercall error).
pub fn post(vmid: u16, cmd: &[u8]) -> Result<(), u64> {
    let [err, ..] = hvc::call(POST, vmid.into(), cmd.as_ptr() as u64, cmd.len() as u64, 0);
    if err == hvc::OK {
        Ok(())
    } else {
        Err(err)
    }
}

/// HLOS: the reply of `vmid`'s agent, if there is one yet: Ok(Some(len)) with it in `buf`,
/// Ok(None) if not yet, Err((hypercall error, 1 if the agent had taken the command))
/// (ARGUMENT_INVALID: the VM stopped running).
pub fn result(vmid: u16, buf: &mut [u8]) -> Result<Option<usize>, (u64, u64)> {
    fetch(RESULT, vmid, buf)
}

/// Call `call` for `vmid`, which fills `buf`: Ok(Some(len)), Ok(None) if nothing waits,
/// Err((hypercall error, its second result)).
fn fetch(call: u64, vmid: u16, buf: &mut [u8]) -> Result<Option<usize>, (u64, u64)> {
    let [err, len, _] = hvc::call(
        call,
        vmid.into(),
        buf.as_mut_ptr() as u64,
        buf.len() as u64,
        0,
    );
    match err {
        hvc::OK => Ok(Some(len as usize)),
        hvc::MSGQUEUE_EMPTY => Ok(None),
        e => Err((e, len)),
    }
}

/// Agent: the next command, if one is posted (its length in `buf`).
pub fn take(buf: &mut [u8]) -> Option<usize> {
    let [err, len, _] = hvc::call(TAKE, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0);
    (err == hvc::OK).then_some(len as usize)
}

/// Agent: answer the command taken last.
pub fn reply(data: &[u8]) {
    hvc::call(REPLY, data.as_ptr() as u64, data.len() as u64, 0, 0);
}

/// HLOS: the digest of the RM's whole state.
pub fn digest() -> u64 {
    hvc::call(DIGEST, 0, 0, 0, 0)[1]
}

/// HLOS: census count `i` (0 VMs, 1 parcels, 2 partition data pages, 3 HLOS bytes).
pub fn census(i: u64) -> Option<u64> {
    let [err, v, _] = hvc::call(CENSUS, i, 0, 0, 0);
    (err == hvc::OK).then_some(v)
}

/// HLOS: the isolation checker's violation count; None if the board has no test channel.
pub fn check() -> Option<u64> {
    let [err, v, _] = hvc::call(CHECK, 0, 0, 0, 0);
    (err == hvc::OK).then_some(v)
}

/// HLOS: the next packet waiting for `vmid`, a VM without running vCPUs (its agent is
/// gone): Ok(Some(len)) with it in `buf`, Ok(None) if none, Err(ARGUMENT_INVALID) if the
/// VM runs (ask its agent).
pub fn pop(vmid: u16, buf: &mut [u8]) -> Result<Option<usize>, u64> {
    fetch(POP, vmid, buf).map_err(|(e, _)| e)
}

/// HLOS: how many packets wait in `vmid`'s receive queue.
pub fn pending(vmid: u16) -> Result<u64, u64> {
    let [err, n, _] = hvc::call(PENDING, vmid.into(), 0, 0, 0);
    if err == hvc::OK {
        Ok(n)
    } else {
        Err(err)
    }
}

/// HLOS: (a vCPU of `vmid` runs, the RM holds its message-queue link).
pub fn sender(vmid: u16) -> Option<(bool, bool)> {
    let [err, v, _] = hvc::call(SENDER, vmid.into(), 0, 0, 0);
    (err == hvc::OK).then_some((v & 1 != 0, v & 2 != 0))
}

/// HLOS: make `vmid` protected, accepting only golden images with these digests.
pub fn protect(vmid: u16, digests: &[[u8; 32]]) -> Result<(), u64> {
    let [err, ..] = hvc::call(
        PROTECT,
        vmid.into(),
        digests.as_ptr() as u64,
        digests.len() as u64,
        0,
    );
    if err == hvc::OK {
        Ok(())
    } else {
        Err(err)
    }
}

/// Put a u64 at `off` of `buf`.
pub fn put(buf: &mut [u8], off: usize, v: u64) {
    buf[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// The u64 at `off` of `buf` (0 if short).
pub fn get(buf: &[u8], off: usize) -> u64 {
    buf.get(off..off + 8)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
}
