//! HLOS as the catalogue's QEMU runner: a `Target` over the board's real hypercalls.
//!
//! * As HLOS: msgqueue_send / msgqueue_receive on the RM queues its DT names, reads and
//!   writes of its own RAM with its own vCPU (an access the RM does not serve comes back as
//!   the abort the board injects).
//! * As another VM: a command to that VM's agent over the board's test channel
//!   (`chan.rs`; a receive only when the board says a packet waits for that VM); a VM without running vCPUs has no agent, so acting as it is an error
//!   (the cases that need it declare `send-without-vcpu`; here they run their board form
//!   where they have one, e.g. "that VM cannot send", through the channel's `SENDER`).
//! * State: the board's digest of `Rm::snapshot`, its census and its isolation checker,
//!   through the same channel, which also marks a VM protected (`protect`, as its config's
//!   `protected` would).
//!
//! What the board does not have is not offered: SIM_VM_* requests (`sim-rpc`), acting as a
//! VM without a running vCPU (`send-without-vcpu`), starting from a fresh RM.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write as _;

use buddy_system_allocator::LockedHeap;
use gunyah_rm_catalogue::dtb::tiny_dtb;
use gunyah_rm_catalogue::{
    catalogue, run_all, Access, Image, Need, Params, Select, Sender, Target, TargetError,
};

use crate::chan::{self, HEAD, MAX};
use crate::console::Uart;
use crate::dt::DtInfo;
use crate::hvc;
use crate::start::{self, Probe};

/// HLOS's VMID.
const HLOS: u16 = 3;
/// HLOS RAM (IPA = PA): 1 GiB at 1 GiB on Gunyah's QEMU platform.
const HLOS_RAM_END: u64 = 0x8000_0000;
/// The cases' scratch area in HLOS RAM (64 MiB, nothing else of ours there).
const SCRATCH: u64 = 0x5000_0000;
/// The heap: 128 MiB of HLOS RAM between the image and the scratch area.
const HEAP: (u64, u64) = (0x4400_0000, 0x800_0000);
/// The cases' guest window (free in every VM: the RM places parcels from 4 GiB up).
const GUEST_WINDOW: u64 = 0x8000_0000;
/// The highest static VMID VM_ALLOC_VMID hands out: the RM's `vm::STATIC_VMID_LAST`, which
/// the board runs (a wrong value fails the catalogue's static-range cases).
const STATIC_VMID_LAST: u16 = 63;
/// Room after a staged DT for the `/hypervisor` node the board adds in place.
const DT_ROOM: u64 = 0x4000;
/// How long HLOS waits for an agent's answer (virtual counter time) before the step fails.
const AGENT_TIMEOUT_S: u64 = 60;

#[global_allocator]
static ALLOC: LockedHeap<32> = LockedHeap::empty();

extern "C" {
    static __image_start: u8;
    static __image_end: u8;
    static __end: u8;
}

/// The board, as the runner drives it.
struct Board {
    tx: u64,
    rx: u64,
    reply: Vec<u8>,
}

fn err(s: String) -> TargetError {
    TargetError(s)
}

fn counter() -> (u64, u64) {
    let (now, freq): (u64, u64);
    // SAFETY: reading the virtual counter and its frequency has no side effects.
    unsafe {
        core::arch::asm!("isb", "mrs {0}, cntvct_el0", out(reg) now, options(nomem, nostack));
        core::arch::asm!("mrs {0}, cntfrq_el0", out(reg) freq, options(nomem, nostack));
    }
    (now, freq)
}

impl Board {
    /// Have `vm`'s agent do `op`; its reply (status, value, data).
    fn agent(
        &mut self,
        vm: u16,
        op: u64,
        a: u64,
        b: u64,
        data: &[u8],
    ) -> Result<(u64, u64, &[u8]), TargetError> {
        let mut cmd = vec![0u8; HEAD + data.len()];
        chan::put(&mut cmd, 0, op);
        chan::put(&mut cmd, 8, a);
        chan::put(&mut cmd, 16, b);
        cmd[HEAD..].copy_from_slice(data);
        match chan::post(vm, &cmd) {
            Ok(()) => {}
            Err(hvc::ARGUMENT_INVALID) => {
                return Err(err(format!(
                    "VM {vm:#x} has no running vCPU (no agent to act as it)"
                )))
            }
            Err(e) => return Err(err(format!("test channel POST to VM {vm:#x}: error {e}"))),
        }
        let (start, freq) = counter();
        let n = loop {
            match chan::result(vm, &mut self.reply) {
                Ok(Some(n)) => break n,
                Ok(None) => {}
                Err((hvc::ARGUMENT_INVALID, 1)) => return Ok((chan::ST_STOPPED, 0, &[])),
                Err((hvc::ARGUMENT_INVALID, _)) => {
                    return Err(err(format!(
                        "VM {vm:#x} stopped running before its agent took the command"
                    )))
                }
                Err((e, _)) => return Err(err(format!("test channel RESULT: error {e}"))),
            }
            if counter().0.wrapping_sub(start) > AGENT_TIMEOUT_S * freq {
                return Err(err(format!(
                    "the agent of VM {vm:#x} did not answer in {AGENT_TIMEOUT_S} s"
                )));
            }
            crate::gic::wait_us(200);
        };
        let r = &self.reply[..n.min(MAX)];
        let (status, value) = (chan::get(r, 0), chan::get(r, 8));
        if status == chan::ST_FATAL {
            return Err(err(format!(
                "the agent of VM {vm:#x} died: ESR {value:#x} ELR {:#x} FAR {:#x}",
                chan::get(r, 16),
                chan::get(r, 24)
            )));
        }
        Ok((status, value, r.get(HEAD..).unwrap_or(&[])))
    }

    fn access(&mut self, vm: u16, op: u64, ipa: u64, len: usize, data: &[u8]) -> AccessResult {
        if vm == HLOS {
            let mut buf = vec![0u8; len];
            let p = if op == chan::OP_READ {
                start::read(ipa, &mut buf)
            } else {
                start::write(ipa, data)
            };
            return match p {
                Probe::Done if op == chan::OP_READ => Ok(Access::Done(buf)),
                Probe::Done => Ok(Access::Done(Vec::new())),
                Probe::Fault(va) => Ok(Access::Fault(va & !0xFFF)),
                Probe::Abort(esr) => Err(err(format!(
                    "HLOS's access at {ipa:#x} took an abort the hypervisor did not inject (ESR {esr:#x})"
                ))),
            };
        }
        if len > MAX - HEAD {
            return Err(err(format!("a {len}-byte access")));
        }
        let (status, value, d) = self.agent(vm, op, ipa, len as u64, data)?;
        match status {
            chan::ST_DONE => Ok(Access::Done(d.to_vec())),
            chan::ST_FAULT => Ok(Access::Fault(value & !0xFFF)),
            chan::ST_ABORT => Err(err(format!(
                "VM {vm:#x}'s access at {ipa:#x} took an abort the hypervisor did not inject (ESR {value:#x})"
            ))),
            chan::ST_STOPPED => Err(err(format!(
                "VM {vm:#x} stopped running during its access at {ipa:#x}"
            ))),
            chan::ST_OUTSIDE => Err(err(format!(
                "VM {vm:#x}'s agent cannot reach IPA {ipa:#x} (its own image window)"
            ))),
            s => Err(err(format!("VM {vm:#x}'s agent answered status {s} ({value:#x})"))),
        }
    }
}

type AccessResult = Result<Access, TargetError>;

impl Target for Board {
    fn name(&self) -> &str {
        "QEMU board"
    }

    fn params(&self) -> Params {
        Params {
            scratch: SCRATCH,
            hlos_ram_end: HLOS_RAM_END,
            guest_window: GUEST_WINDOW,
            static_vmid_last: STATIC_VMID_LAST,
        }
    }

    fn has(&self, need: Need) -> bool {
        // Only what the board has: VMs act through running vCPUs, no SIM_VM_* requests;
        // the test channel marks a VM protected.
        need == Need::Protect
    }

    fn send(&mut self, from: u16, packet: &[u8]) -> Result<(), TargetError> {
        if packet.len() > gunyah_rm_catalogue::wire::MAX_PACKET {
            return Err(err(format!("a {}-byte packet", packet.len())));
        }
        if from == HLOS {
            let [e, ..] = hvc::call(
                hvc::MSGQ_SEND,
                self.tx,
                packet.len() as u64,
                packet.as_ptr() as u64,
                1,
            );
            return match e {
                hvc::OK => Ok(()),
                e => Err(err(format!("HLOS's msgqueue_send: error {e}"))),
            };
        }
        match self.agent(from, chan::OP_SEND, 0, 0, packet)? {
            // The packet stopped the VM (VM_EXIT): the RM handled it.
            (chan::ST_DONE | chan::ST_STOPPED, ..) => Ok(()),
            (_, e, _) => Err(err(format!("VM {from:#x}'s msgqueue_send: error {e}"))),
        }
    }

    fn recv(&mut self, to: u16) -> Result<Option<Vec<u8>>, TargetError> {
        if to == HLOS {
            let mut pk = [0u8; 240];
            let [e, size, _] = hvc::call(hvc::MSGQ_RECV, self.rx, pk.as_mut_ptr() as u64, 240, 0);
            return match e {
                hvc::OK => Ok(Some(pk[..(size as usize).min(240)].to_vec())),
                hvc::MSGQUEUE_EMPTY => Ok(None),
                e => Err(err(format!("HLOS's msgqueue_receive: error {e}"))),
            };
        }
        // Nothing waits: the agent would find its queue empty (asking it costs a round
        // trip through the scheduler).
        match chan::pending(to) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) => {
                return Err(err(format!(
                    "test channel PENDING for VM {to:#x}: error {e}"
                )))
            }
        }
        // A VM without running vCPUs has no agent: the board hands over what waits in its
        // receive queue (e.g. the reply to its own VM_EXIT).
        let mut pk = [0u8; 240];
        match chan::pop(to, &mut pk) {
            Ok(Some(n)) => return Ok(Some(pk[..n.min(240)].to_vec())),
            Ok(None) => return Ok(None),
            Err(hvc::ARGUMENT_INVALID) => {}
            Err(e) => return Err(err(format!("test channel POP for VM {to:#x}: error {e}"))),
        }
        match self.agent(to, chan::OP_RECV, 0, 0, &[])? {
            (chan::ST_DONE, _, d) => Ok(Some(d.to_vec())),
            (chan::ST_EMPTY, ..) => Ok(None),
            (_, e, _) => Err(err(format!("VM {to:#x}'s msgqueue_receive: error {e}"))),
        }
    }

    fn read(&mut self, vm: u16, ipa: u64, len: usize) -> AccessResult {
        self.access(vm, chan::OP_READ, ipa, len, &[])
    }

    fn write(&mut self, vm: u16, ipa: u64, data: &[u8]) -> AccessResult {
        self.access(vm, chan::OP_WRITE, ipa, data.len(), data)
    }

    /// This very image (the agent in it runs wherever the RM places it), then the DT with
    /// room for the board's `/hypervisor` node.
    fn stage_image(&mut self, _vm: u16, ipa: u64) -> Result<Image, TargetError> {
        // SAFETY: linker symbols; only their addresses are used.
        let (start, end, bss_end) = unsafe {
            (
                &__image_start as *const u8 as u64,
                &__image_end as *const u8 as u64,
                &__end as *const u8 as u64,
            )
        };
        let image_size = end - start;
        let dtb_offset = (bss_end - start).next_multiple_of(0x1000);
        let dtb = tiny_dtb(1);
        let size = (dtb_offset + dtb.len() as u64 + DT_ROOM).next_multiple_of(0x1000);
        if size > gunyah_rm_catalogue::IMAGE_ROOM {
            return Err(err(format!("the image needs {size:#x} bytes")));
        }
        // HLOS must own every page it writes (a case's earlier parcel may still hold one).
        for page in (ipa..ipa + size).step_by(0x1000) {
            if start::write(page, &[0]) != Probe::Done {
                return Err(err(format!("HLOS cannot write {page:#x}")));
            }
        }
        // SAFETY: `[start, end)` is this image (code and read-only data); `ipa..ipa+size` is
        // HLOS RAM in the cases' scratch area, each page just written.
        unsafe {
            core::ptr::copy_nonoverlapping(start as *const u8, ipa as *mut u8, image_size as usize);
            core::ptr::write_bytes(
                (ipa + image_size) as *mut u8,
                0,
                (size - image_size) as usize,
            );
            core::ptr::copy_nonoverlapping(dtb.as_ptr(), (ipa + dtb_offset) as *mut u8, dtb.len());
        }
        Ok(Image {
            size,
            image_size,
            dtb_offset,
            dtb_size: dtb.len() as u64,
        })
    }

    fn protect(&mut self, vm: u16, digests: &[[u8; 32]]) -> Result<(), TargetError> {
        chan::protect(vm, digests)
            .map_err(|e| err(format!("test channel PROTECT of VM {vm:#x}: error {e}")))
    }

    fn digest(&mut self) -> Option<u64> {
        Some(chan::digest())
    }

    fn sender(&mut self, vm: u16) -> Option<Sender> {
        chan::sender(vm).map(|(runs, link)| Sender { runs, link })
    }

    fn census(&mut self) -> Option<Vec<(&'static str, u64)>> {
        let names = ["vms", "parcels", "partition data pages", "HLOS bytes"];
        let mut v = Vec::new();
        for (i, n) in names.into_iter().enumerate() {
            v.push((n, chan::census(i as u64)?));
        }
        Some(v)
    }

    fn check(&mut self) -> Result<(), String> {
        match chan::check() {
            Some(0) => Ok(()),
            Some(n) => Err(format!(
                "isolation checker: {n} violations (the board printed them)"
            )),
            None => Err(String::from("the board has no test channel")),
        }
    }
}

/// Run the catalogue, then power off (every case passed) or exit with status 1.
pub fn main(info: &DtInfo, delta: u64) -> ! {
    if delta != 0 {
        crate::console::fail(format_args!("HLOS must run where it is linked"));
    }
    // SAFETY: `HEAP` is HLOS RAM nothing else uses (above the image and its .bss, below the
    // scratch area the cases use); handed over once, before anything allocates.
    unsafe { ALLOC.lock().init(HEAP.0 as usize, HEAP.1 as usize) };
    crate::gic::init(info.rx_virq);
    if chan::check().is_none() {
        crate::console::fail(format_args!(
            "the board has no test channel: boot the board built with --features catalogue"
        ));
    }
    let cases = catalogue();
    crate::say!(
        "catalogue runner: {} cases; HLOS sends on its RM queues, other VMs through their agents",
        cases.len()
    );
    let mut board = Board {
        tx: info.tx_cap,
        rx: info.rx_cap,
        reply: vec![0u8; MAX],
    };
    let s = run_all(&mut board, &cases, &Select::default(), &mut |line| {
        let _ = writeln!(Uart, "{line}");
    });
    if s.failed != 0 {
        crate::console::fail(format_args!("{} catalogue cases failed", s.failed));
    }
    crate::say!("catalogue runner: every case passed; powering off");
    hvc::system_off()
}
