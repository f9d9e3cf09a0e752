//! The catalogue's test channel (board feature `catalogue`, off in the board `cargo xtask
//! run` boots): how the QEMU runner of `tests/catalogue` (HLOS payload
//! `gunyah-qemu-hlos-catalogue`) commands the guest agent in each VM a case created, and
//! looks at the RM's state the way the host runner does.
//!
//! It is a board-level mailbox, not RM state: no parcel, no capability, no message queue,
//! so nothing a case inspects (replies, notifications, the state digest, the census) sees
//! it. Vendor hypercalls outside Gunyah's numbers (SMCCC fast call, `hvc #0`):
//!
//! | x0 | who | arguments → results |
//! |---|---|---|
//! | `POST` 0xC600_9F00 | HLOS | x1 VMID, x2 buffer, x3 size: the command for that VM's agent; → x0 error (`BUSY` if one is pending, `ARGUMENT_INVALID` if the VM has no running vCPUs) |
//! | `TAKE` 0xC600_9F01 | agent | x1 buffer, x2 size → x0 error (`MSGQUEUE_EMPTY` if none), x1 size |
//! | `REPLY` 0xC600_9F02 | agent | x1 buffer, x2 size: the answer to its command |
//! | `RESULT` 0xC600_9F03 | HLOS | x1 VMID, x2 buffer, x3 size → x0 error (`MSGQUEUE_EMPTY`: not yet; `ARGUMENT_INVALID`: the VM stopped running, x1 1 if its agent had taken the command), x1 size |
//! | `DIGEST` 0xC600_9F04 | HLOS | → x1 a 64-bit digest of `Rm::snapshot` (records, every stage-2 leaf, partition usage) |
//! | `CENSUS` 0xC600_9F05 | HLOS | x1 index → x1: 0 VMs, 1 parcels, 2 partition data pages, 3 bytes HLOS owns, lends or shares |
//! | `CHECK` 0xC600_9F06 | HLOS | → x1 the isolation checker's violations (printed) |
//! | `PROTECT` 0xC600_9F08 | HLOS | x1 VMID, x2 buffer, x3 count: make the VM protected with these SHA-256 digests (32 bytes each, at most 16), as its config's `protected` would (`Rm::set_vm_protected`) → x0 error (`ARGUMENT_INVALID`: no such VM) |
//! | `POP` 0xC600_9F07 | HLOS | x1 VMID, x2 buffer, x3 size: for a VM without running vCPUs (one that exited or was stopped: its agent is gone), the next packet waiting in its receive queue, as msgqueue_receive would give it → x0 error (`ARGUMENT_INVALID` if the VM runs: ask its agent), x1 size |
//! | `PENDING` 0xC600_9F09 | HLOS | x1 VMID → x1 how many packets wait in that VM's receive queue (0: `msgqueue_receive` would find it empty), so the runner asks a VM's agent to receive only when there is something to receive |
//! | `SENDER` 0xC600_9F0A | HLOS | x1 VMID → x1 bit 0: a vCPU of it runs (something executes as it), bit 1: the RM holds a message-queue link for it; with neither, nothing can send to the RM as that VM |
//!
//! A posted command raises the agent's RM-RPC receive interrupt and a reply HLOS's, only
//! to end their WFI waits sooner (both poll; a spurious interrupt there is harmless: they
//! find their queues empty). Commands and replies are kept per (VM, generation): a VM that
//! leaves RUNNING loses what was pending for it.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use gunyah_rm::platform::{PhysMem, Vmid};
use gunyah_rm::space::State;
use gunyah_rm::vm::VMID_HLOS;

use crate::boot::Frame;
use crate::hypercalls::{
    copy_from_guest, copy_to_guest, ADDR_INVALID, ARGUMENT_INVALID, ARGUMENT_SIZE, MSGQUEUE_EMPTY,
    OK,
};
use crate::percpu::Lock;
use crate::rmcore::{self, Core, ReceiveError};
use crate::{println, sched};

/// First and last call of the channel.
const FIRST: u64 = 0xC600_9F00;
const LAST: u64 = 0xC600_9F0A;
const POST: u64 = FIRST;
const TAKE: u64 = FIRST + 1;
const REPLY: u64 = FIRST + 2;
const RESULT: u64 = FIRST + 3;
const DIGEST: u64 = FIRST + 4;
const CENSUS: u64 = FIRST + 5;
const CHECK: u64 = FIRST + 6;
const POP: u64 = FIRST + 7;
const PROTECT: u64 = FIRST + 8;
const PENDING: u64 = FIRST + 9;
const SENDER: u64 = FIRST + 10;
/// Most digests PROTECT takes.
const MAX_DIGESTS: u64 = 16;
/// A command is already pending for that VM.
const BUSY: u64 = 10;
/// Largest command or reply.
const MAX: u64 = 8192;

#[derive(Default)]
struct Slot {
    gen: u32,
    cmd: Option<Vec<u8>>,
    /// The agent took the last command posted.
    taken: bool,
    reply: Option<Vec<u8>>,
}

static SLOTS: Lock<BTreeMap<Vmid, Slot>> = Lock::new(BTreeMap::new());

/// Whether `id` is one of the channel's calls.
pub fn owns(id: u64) -> bool {
    (FIRST..=LAST).contains(&id)
}

/// Handle channel call `frame.x[0]` from the running vCPU (generation `gen`) of `vmid`.
/// `false`: the VM was taken off the CPUs meanwhile.
pub fn handle(vmid: Vmid, gen: u32, frame: &mut Frame) -> bool {
    let x = frame.x;
    let r = rmcore::with_core(vmid, gen, |core| -> [u64; 3] {
        let hlos = vmid == VMID_HLOS;
        match x[0] {
            POST if hlos => post(core, x[1] as Vmid, x[2], x[3]),
            RESULT if hlos => {
                let target = x[1] as Vmid;
                let Some(g) = running(core, target) else {
                    let taken = SLOTS.lock().get(&target).is_some_and(|s| s.taken);
                    return [ARGUMENT_INVALID, u64::from(taken), 0];
                };
                let mut slots = SLOTS.lock();
                match slots.get_mut(&target).filter(|s| s.gen == g) {
                    Some(s) => match s.reply.take() {
                        Some(r) if r.len() as u64 > x[3] => {
                            s.reply = Some(r);
                            [ARGUMENT_SIZE, 0, 0]
                        }
                        Some(r) if !copy_to_guest(core, VMID_HLOS, x[2], &r) => {
                            s.reply = Some(r);
                            [ADDR_INVALID, 0, 0]
                        }
                        Some(r) => [OK, r.len() as u64, 0],
                        None => [MSGQUEUE_EMPTY, 0, 0],
                    },
                    None => [MSGQUEUE_EMPTY, 0, 0],
                }
            }
            DIGEST if hlos => [OK, digest(core), 0],
            CENSUS if hlos => match census(core, x[1]) {
                Some(v) => [OK, v, 0],
                None => [ARGUMENT_INVALID, 0, 0],
            },
            CHECK if hlos => {
                let v = core.rm.check_isolation();
                if !v.is_empty() {
                    println!("qemu board: isolation checker: {v:?}");
                }
                [OK, v.len() as u64, 0]
            }
            POP if hlos => {
                let target = x[1] as Vmid;
                if target == VMID_HLOS || running(core, target).is_some() {
                    return [ARGUMENT_INVALID, 0, 0];
                }
                let max = usize::try_from(x[3]).unwrap_or(usize::MAX);
                match core.receive(target, max, |c, m| copy_to_guest(c, VMID_HLOS, x[2], m)) {
                    Ok((len, _)) => [OK, len as u64, 0],
                    Err(ReceiveError::Empty) => [MSGQUEUE_EMPTY, 0, 0],
                    Err(ReceiveError::TooBig) => [ARGUMENT_SIZE, 0, 0],
                    Err(ReceiveError::Address) => [ADDR_INVALID, 0, 0],
                }
            }
            PENDING if hlos => [
                OK,
                core.vms
                    .get(&(x[1] as Vmid))
                    .map_or(0, |v| v.rx.len() as u64),
                0,
            ],
            SENDER if hlos => {
                let target = x[1] as Vmid;
                let runs = running(core, target).is_some();
                let link = core.rm.link(target).is_some();
                [OK, u64::from(runs) | u64::from(link) << 1, 0]
            }
            PROTECT if hlos => {
                if x[3] > MAX_DIGESTS {
                    return [ARGUMENT_SIZE, 0, 0];
                }
                let Some(raw) = copy_from_guest(core, VMID_HLOS, x[2], x[3] * 32) else {
                    return [ADDR_INVALID, 0, 0];
                };
                let digests = raw
                    .chunks_exact(32)
                    .map(|c| <[u8; 32]>::try_from(c).unwrap_or([0; 32]))
                    .collect();
                match core.rm.set_vm_protected(x[1] as Vmid, digests) {
                    Ok(()) => [OK, 0, 0],
                    Err(_) => [ARGUMENT_INVALID, 0, 0],
                }
            }
            TAKE if !hlos => {
                let mut slots = SLOTS.lock();
                let Some(s) = slots.get_mut(&vmid).filter(|s| s.gen == gen) else {
                    return [MSGQUEUE_EMPTY, 0, 0];
                };
                match s.cmd.take() {
                    Some(c) if c.len() as u64 > x[2] => {
                        s.cmd = Some(c);
                        [ARGUMENT_SIZE, 0, 0]
                    }
                    Some(c) if !copy_to_guest(core, vmid, x[1], &c) => {
                        s.cmd = Some(c);
                        [ADDR_INVALID, 0, 0]
                    }
                    Some(c) => {
                        s.taken = true;
                        [OK, c.len() as u64, 0]
                    }
                    None => [MSGQUEUE_EMPTY, 0, 0],
                }
            }
            REPLY if !hlos => {
                if x[2] > MAX {
                    return [ARGUMENT_SIZE, 0, 0];
                }
                let Some(data) = copy_from_guest(core, vmid, x[1], x[2]) else {
                    return [ADDR_INVALID, 0, 0];
                };
                let mut slots = SLOTS.lock();
                let s = slots.entry(vmid).or_default();
                if s.gen != gen {
                    *s = Slot {
                        gen,
                        ..Slot::default()
                    };
                }
                s.reply = Some(data);
                drop(slots);
                kick(core, VMID_HLOS);
                [OK, 0, 0]
            }
            _ => [ARGUMENT_INVALID, 0, 0],
        }
    });
    match r {
        Some([err, v, w]) => {
            frame.x[0] = err;
            frame.x[1] = v;
            frame.x[2] = w;
            true
        }
        None => false,
    }
}

fn running(core: &Core, vmid: Vmid) -> Option<u32> {
    core.vms.get(&vmid).and_then(|v| v.gen)
}

fn kick(core: &Core, vmid: Vmid) {
    if let Some(v) = core.vms.get(&vmid) {
        if let Some(g) = v.gen {
            sched::raise_spi(vmid, g, v.rx_virq);
        }
    }
}

fn post(core: &Core, target: Vmid, buf: u64, len: u64) -> [u64; 3] {
    if target == VMID_HLOS {
        return [ARGUMENT_INVALID, 0, 0];
    }
    let Some(g) = running(core, target) else {
        return [ARGUMENT_INVALID, 0, 0];
    };
    if len == 0 || len > MAX {
        return [ARGUMENT_SIZE, 0, 0];
    }
    let Some(data) = copy_from_guest(core, VMID_HLOS, buf, len) else {
        return [ADDR_INVALID, 0, 0];
    };
    let mut slots = SLOTS.lock();
    let s = slots.entry(target).or_default();
    if s.gen != g {
        *s = Slot {
            gen: g,
            ..Slot::default()
        };
    }
    if s.cmd.is_some() {
        return [BUSY, 0, 0];
    }
    s.cmd = Some(data);
    s.taken = false;
    s.reply = None;
    drop(slots);
    kick(core, target);
    [OK, 0, 0]
}

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Fnv {
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0100_0000_01B3);
        }
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
}

/// The RM's whole state, as the host runner's digest takes it.
fn digest(core: &Core) -> u64 {
    let s = core.rm.snapshot();
    let mut h = Fnv(0xCBF2_9CE4_8422_2325);
    h.bytes(s.records.as_bytes());
    for (vm, leaves) in &s.tables {
        h.u64(u64::from(*vm));
        for l in leaves {
            h.u64(l.ipa);
            h.u64(l.pa);
            h.u64(l.size);
            h.u64(u64::from(l.rights.0));
            h.u64(u64::from(l.kind == gunyah_rm::MemKind::Normal));
        }
    }
    h.u64(s.partition.total);
    h.u64(s.partition.free);
    h.u64(s.partition.tables);
    h.0
}

/// The counts the host runner compares before and after each case.
fn census(core: &Core, i: u64) -> Option<u64> {
    let u = core.rm.platform().partition_usage();
    Some(match i {
        0 => core.rm.vms().vms.len() as u64,
        1 => core.rm.parcels().parcels.len() as u64,
        2 => u.total - u.free - u.tables,
        3 => core
            .rm
            .vm_space(VMID_HLOS)
            .map(|s| {
                s.ranges()
                    .filter(|r| {
                        matches!(
                            r.state,
                            State::Owned(_) | State::Lent { .. } | State::Shared { .. }
                        )
                    })
                    .map(|r| r.size)
                    .sum()
            })
            .unwrap_or(0),
        _ => return None,
    })
}

/// [`crate::percpu::Lock::most_overtaken`] of the test channel's lock, for the board's summary.
pub fn lock_most_overtaken() -> u64 {
    SLOTS.most_overtaken()
}
