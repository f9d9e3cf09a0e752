//! The one place the board calls the RM, held in a `gunyah_rm::concurrent::ConcurrentRm`
//! over the board's platform (a `ConcurrentPlatform`: per-VM stage-2 table locks, the
//! partition's allocator a leaf lock, `crate::platform`).
//!
//! * A stage-2 fault ([`data_abort`]) takes no board lock: it goes to
//!   `ConcurrentRm::handle_fault`, which serves a CoW copy or a demand page under the RM
//!   lock's read side and that VM's ledger lock, so CoW faults of different VMs on different
//!   CPUs run at once (the racers' scene); what it cannot serve there it handles under the RM
//!   lock's write side. Only what the board does after an unserved fault (pump, follow the VM
//!   states) takes the board's lock, as a request does.
//! * Everything else (a hypercall, an RPC packet, a VM start, the COW_BROKEN pump, power-off)
//!   takes the board's lock (`BOARD`: the per-VM message-queue state) and then the RM through
//!   `ConcurrentRm::exclusive` ([`with_core`]): no fault is in flight while a request runs, and
//!   every fault's bookkeeping (the ledgers) is folded into the RM's records first.
//!
//! Lock order (every CPU takes them in this order, never two of one level, so no cycle):
//! 1. `BOARD` (the board's state; requests only);
//! 2. the RM lock, write side (a request, an unserved fault) or read side (a fault);
//! 3. one VM's fault ledger (a fault under the read side);
//! 4. that VM's stage-2 tables (`Stage2Spaces`' per-VM lock);
//! 5. the partition's allocator (`platform::PARTITION`), a leaf; `FAULT_SPLIT` (the timing
//!    figures) is a leaf taken with nothing else held.
//!
//! The scheduler's lock is never held while taking any of them. A CPU holding `BOARD` may wait
//! for another CPU's fault to end (below), so a fault never takes `BOARD` while it is
//! published.
//!
//! A fault does not hold the board's lock, so its VM is kept by a handshake instead: the CPU
//! publishes the fault (`percpu::begin_fault`) and then checks the VM's generation is alive;
//! every request first waits, under `BOARD`, until no CPU serves a fault of a VM generation
//! that is gone (`percpu::wait_faults_of_gone`). A VM is taken off the CPUs in one request and
//! its stage 2 freed (or its VMID reused) only in a later one, so a fault that saw its VM alive
//! walks its stage 2 (AT S1E1R) and has the RM serve it before anything frees it.
//!
//! After every RM call the board follows the RM's VM states: a VM that entered RUNNING gets
//! its vCPUs (its DT completed with `/hypervisor`), a VM that left it loses them on every
//! CPU (`percpu::evict_vm` waits until none runs in the guest) before any later request can
//! take its stage 2 away.
//!
//! COW_BROKEN is batched per VM (DESIGN.md): a served CoW fault leaves its IPA in the RM (its
//! VM's ledger, folded into the VM's batch by the next exclusive section) and the board does
//! not pump then (pumping flushed a one-IPA notification per fault, ~3 k EL2 instructions
//! each). The batch goes out when it fills (512 IPAs: the RM queues it itself, and the fault
//! that brings the board's count of copies since the last pump to 512 pumps), with anything
//! else the RM sends (every pump drains the batches first, so a reply never overtakes the
//! copies made before it), and at the first trap or interrupt from any guest on any CPU that is
//! not a stage-2 fault ([`send_cow_batch`], whose exclusive section folds the ledgers, then
//! pumps): the faulting vCPU's next hypercall, WFI or timer tick (1 ms while it runs), or any
//! trap of the receiver. So a burst of faults costs one notification, and none waits longer
//! than the faulting vCPU's next tick.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};

use gunyah_rm::concurrent::ConcurrentRm;
use gunyah_rm::config::Config;
use gunyah_rm::cow::{FaultOutcome, COW_BATCH};
use gunyah_rm::lifecycle::{RES_MSG_QUEUE_RECV, RES_MSG_QUEUE_SEND, RES_VIRTUAL_CPU};
use gunyah_rm::platform::{AddressSpaces, PhysMem, Vmid};
use gunyah_rm::vm::{BootReg, VmState, VMID_HLOS};
use gunyah_rm::Rm;
use gunyah_stage2::fault::resolve_ipa_at_s1e1r;
use gunyah_stage2::Fault;

use crate::console::{exit, fail};
use crate::layout::MAX_CPUS;
use crate::percpu::{self, Lock};
use crate::platform::{self, QemuPlatform};
use crate::sched::{self, Entry};
use crate::vcpu::Vcpu;
use crate::vm_dt::{hypervisor_node, RpcLink};
use crate::{boot, fdt_edit, heap, pmu, println};

/// RM-RPC message size and queue depth (Gunyah's defaults).
pub const MSG_SIZE: u32 = 240;
/// Depth of each receive queue (Gunyah's RM-RPC default): more packets from the RM wait
/// in the RM's transmit backlog until the VM receives.
pub const QUEUE_DEPTH: usize = 8;

/// What a capability names (per VM cspace).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    /// The VM's queue to the RM (it sends).
    RmTx,
    /// The VM's queue from the RM (it receives).
    RmRx,
    /// One of its vCPUs.
    Vcpu(u32),
}

/// The board's view of one VM.
#[derive(Default)]
pub struct VmCtl {
    /// Its cspace.
    pub caps: BTreeMap<u64, Cap>,
    /// Packets in its receive queue (at most `QUEUE_DEPTH`).
    pub rx: VecDeque<Vec<u8>>,
    /// Packets the RM sent that wait for room in the receive queue.
    backlog: VecDeque<Vec<u8>>,
    /// The RM-RPC link the queue belongs to (a new link starts empty).
    link: Option<u64>,
    /// Packets that entered `rx` since its interrupt was last raised.
    arrived: u32,
    /// Generation of its running incarnation (its vCPUs exist on the board).
    pub gen: Option<u32>,
    /// Its vCPU count.
    pub vcpus: u32,
    /// The interrupt (INTID) a packet in its receive queue raises.
    pub rx_virq: u32,
}

/// Counters for the summary (atomics: bumped outside the lock too).
pub struct Stats {
    /// Stage-2 faults the RM served.
    pub faults_served: AtomicU64,
    /// Faults the RM found already served (another vCPU of the VM copied the page first,
    /// or a break-before-make was in progress): the access retried.
    pub faults_retried: AtomicU64,
    /// Aborts injected into vCPUs.
    pub aborts_injected: AtomicU64,
    /// VMs whose vCPUs the board started.
    pub vms_started: AtomicU64,
    /// vCPUs the board had to stop.
    pub vcpus_killed: AtomicU64,
}

/// The counters.
pub static STATS: Stats = Stats {
    faults_served: AtomicU64::new(0),
    faults_retried: AtomicU64::new(0),
    aborts_injected: AtomicU64::new(0),
    vms_started: AtomicU64::new(0),
    vcpus_killed: AtomicU64::new(0),
};

/// What the board keeps beside the RM, under its lock (`BOARD`).
struct Board {
    /// Per VM: cspace and receive queue.
    vms: BTreeMap<Vmid, VmCtl>,
}

/// The RM and what the board keeps beside it, for one request: the RM through
/// `ConcurrentRm::exclusive` (no fault in flight), the board's state under `BOARD`.
pub struct Core<'a> {
    /// The RM.
    pub rm: &'a mut Rm<QemuPlatform>,
    /// Per VM: cspace and receive queue.
    pub vms: &'a mut BTreeMap<Vmid, VmCtl>,
}

/// The board's state (lock order: 1, see the module doc).
static BOARD: Lock<Option<Board>> = Lock::new(None);

/// The RM, serving faults concurrently (set once at boot).
static RM: spin::Once<ConcurrentRm<QemuPlatform>> = spin::Once::new();

/// Per served fault taken while the other CPUs were idle: EL2 instructions inside the RM's
/// fault path, then in what the board does after it before returning (a leaf lock).
static FAULT_SPLIT: Lock<Vec<(u64, u64)>> = Lock::new(Vec::new());

/// A served CoW fault left COW_BROKEN IPAs in the RM (its batch or a VM's fault ledger) that
/// no pump has sent yet (set after the fault; read without a lock by [`send_cow_batch`]).
static COW_PENDING: AtomicBool = AtomicBool::new(false);

/// CoW copies since the last pump, on every VM: when they reach a batch, some VM's batch may
/// be full, and the fault that got there pumps (a superset of "a batch filled").
static COPIES_UNSENT: AtomicU64 = AtomicU64::new(0);

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);

/// VM runs (incarnations) whose concurrent faults are counted, the last this many.
const RUNS: usize = 64;

/// Per VM run (its generation modulo [`RUNS`]): its VMID + 1, the faults served (copied or
/// populated) on the RM's concurrent path, and the physical CPUs they were served on (a bit
/// each).
static RUN_VMID: [AtomicU64; RUNS] = [ZERO; RUNS];
static CONCURRENT: [AtomicU64; RUNS] = [ZERO; RUNS];
static CONCURRENT_CPUS: [AtomicU64; RUNS] = [ZERO; RUNS];

fn rm() -> &'static ConcurrentRm<QemuPlatform> {
    RM.get().unwrap_or_else(|| fail(format_args!("RM not up")))
}

/// Send the RM's pending COW_BROKEN batches, if a CoW fault left any: every trap and
/// interrupt from a guest except a stage-2 fault calls this first, before it does anything
/// else (so what that vCPU does next is ordered after the notification). One load when
/// nothing is pending.
pub fn send_cow_batch() {
    if COW_PENDING.load(Acquire) {
        with_core_any(|c| {
            if COW_PENDING.load(Relaxed) {
                c.pump();
            }
        });
    }
}

/// Install the RM (boot CPU, before any vCPU runs).
pub fn install(rm: Rm<QemuPlatform>, vms: BTreeMap<Vmid, VmCtl>) {
    RM.call_once(|| ConcurrentRm::new(rm));
    *BOARD.lock() = Some(Board { vms });
}

/// Run `f` with the RM, for the running vCPU of generation `gen` of `vmid`: None (and `f`
/// not run) if that VM was taken off the CPUs meanwhile (its stage 2 may be going).
pub fn with_core<R>(vmid: Vmid, gen: u32, f: impl FnOnce(&mut Core) -> R) -> Option<R> {
    let mut g = BOARD.lock();
    if !percpu::vm_alive(vmid, gen) {
        return None;
    }
    Some(exclusive(&mut g, f))
}

/// Run `f` with the RM (boot and power-off only).
pub fn with_core_any<R>(f: impl FnOnce(&mut Core) -> R) -> R {
    let mut g = BOARD.lock();
    exclusive(&mut g, f)
}

/// `f` with the board's state (locked by the caller) and the RM's write side, once no CPU
/// serves a fault of a VM that is gone.
fn exclusive<R>(board: &mut Option<Board>, f: impl FnOnce(&mut Core) -> R) -> R {
    let b = board
        .as_mut()
        .unwrap_or_else(|| fail(format_args!("RM not up")));
    percpu::wait_faults_of_gone();
    rm().exclusive(|rm| {
        f(&mut Core {
            rm,
            vms: &mut b.vms,
        })
    })
}

/// A stage-2 data abort of the running vCPU `index` of generation `gen` of `vmid`, served
/// without the board's lock on the RM's concurrent path (`ConcurrentRm::handle_fault`): served
/// (the access retries), or an abort injected. None if the VM was taken off the CPUs.
pub fn data_abort(vmid: Vmid, index: u32, gen: u32) -> Option<Result<(), &'static str>> {
    if !percpu::begin_fault(percpu::key(gen, vmid, index), vmid, gen) {
        return None;
    }
    let r = fault_to_rm(vmid, gen);
    percpu::end_fault();
    let (outcome, t1, rm_part) = match r {
        Ok(Some(x)) => x,
        Ok(None) => return Some(Ok(())),
        Err(why) => return Some(Err(why)),
    };
    match outcome {
        FaultOutcome::Copied { .. } | FaultOutcome::Populated { .. } => {
            STATS.faults_served.fetch_add(1, Relaxed);
            if matches!(outcome, FaultOutcome::Copied { .. }) {
                // The copy's IPA waits in the RM for its COW_BROKEN batch (see the module
                // doc); when a batch may be full, send it now.
                COW_PENDING.store(true, Release);
                if COPIES_UNSENT.fetch_add(1, Relaxed) + 1 >= COW_BATCH as u64 {
                    with_core(vmid, gen, |c| c.pump());
                }
            }
            let t2 = pmu::el2_instructions();
            // QEMU counts every CPU's instructions into the PMU: a figure is kept only
            // when no other CPU ran meanwhile.
            if percpu::others_idle() {
                FAULT_SPLIT.lock().push((rm_part, t2 - t1));
            }
            return Some(Ok(()));
        }
        // Found served (a sibling vCPU copied the page first): nothing changed, and a
        // stage-2 fault does not send the COW_BROKEN batch.
        FaultOutcome::Retry => {
            STATS.faults_retried.fetch_add(1, Relaxed);
            return Some(Ok(()));
        }
        // The RM stopped the VM (its fault action): it leaves the CPUs below.
        FaultOutcome::Stopped(_) => {}
        // Not memory the RM serves (or a refused write): the access aborts, as it would
        // on Gunyah.
        _ if boot::inject_data_abort() => {
            STATS.aborts_injected.fetch_add(1, Relaxed);
        }
        _ => {
            return Some(Err(
                "a stage-2 fault the RM does not serve and no abort can be injected",
            ))
        }
    }
    with_core(vmid, gen, |c| {
        c.pump();
        c.sync_vms();
    })?;
    Some(Ok(()))
}

/// The fault of this CPU's vCPU to the RM (between `begin_fault` and `end_fault`): its
/// outcome, the EL2 instruction count after it and the instructions it took; None when the
/// access should just retry.
#[allow(clippy::type_complexity)]
fn fault_to_rm(vmid: Vmid, gen: u32) -> Result<Option<(FaultOutcome, u64, u64)>, &'static str> {
    let fault = match Fault::from_el2_registers() {
        Ok(f) => f,
        Err(_) => return Err("undecodable stage-2 abort"),
    };
    let fault = if fault.needs_ipa_resolution() {
        let Some(far) = fault.far else {
            return Err("stage-2 abort without FAR");
        };
        // SAFETY: the faulting vCPU's EL1 registers and VTTBR_EL2 are still loaded, and
        // its VM is alive with this CPU's fault published (`percpu::begin_fault`): no
        // request frees its stage 2 until `end_fault`.
        match unsafe { resolve_ipa_at_s1e1r(far) } {
            Some(ipa) => fault.with_ipa(ipa),
            // Its stage 1 changed under us: let the access retry.
            None => return Ok(None),
        }
    } else {
        fault
    };
    let shared = platform::shared_pages_here();
    let t0 = pmu::el2_instructions();
    let outcome = rm().handle_fault(vmid, &fault);
    let t1 = pmu::el2_instructions();
    if platform::shared_pages_here() != shared {
        let i = gen as usize % RUNS;
        RUN_VMID[i].store(u64::from(vmid) + 1, Relaxed);
        CONCURRENT[i].fetch_add(1, Relaxed);
        CONCURRENT_CPUS[i].fetch_or(1 << percpu::this_cpu(), Relaxed);
    }
    Ok(Some((outcome, t1, t1 - t0)))
}

impl Core<'_> {
    /// Move the RM's outgoing packets to the VMs' receive queues (or their backlogs); the
    /// pending COW_BROKEN batches go with them (`Rm::drain_outgoing` flushes them first).
    pub fn pump(&mut self) {
        COW_PENDING.store(false, Relaxed);
        COPIES_UNSENT.store(0, Relaxed);
        for (to, pk) in self.rm.drain_outgoing() {
            let link = self.rm.link(to);
            let vm = self.vms.entry(to).or_default();
            if vm.link != link {
                vm.rx.clear();
                vm.backlog.clear();
                vm.link = link;
            }
            vm.backlog.push_back(pk);
            vm.refill();
        }
        self.raise_rx();
    }

    /// A packet entered a receive queue: raise the receiver's interrupt (as Gunyah's
    /// msgqueue does for a push), once per packet.
    fn raise_rx(&mut self) {
        for (vmid, vm) in self.vms.iter_mut() {
            let (Some(gen), n) = (vm.gen, core::mem::take(&mut vm.arrived)) else {
                continue;
            };
            for _ in 0..n {
                sched::raise_spi(*vmid, gen, vm.rx_virq);
            }
        }
    }

    /// A packet from `vmid` to the RM; then follow what it changed.
    pub fn packet_from(&mut self, vmid: Vmid, msg: &[u8]) {
        self.rm.packet_from(vmid, msg);
        self.pump();
        self.sync_vms();
    }

    /// The next packet in `vmid`'s receive queue, if it fits `max` bytes and `deliver`
    /// accepts it (false: it stays queued). Returns (packet length, more queued).
    pub fn receive(
        &mut self,
        vmid: Vmid,
        max: usize,
        deliver: impl FnOnce(&mut Self, &[u8]) -> bool,
    ) -> Result<(usize, bool), ReceiveError> {
        let m = match self.vms.get(&vmid).and_then(|v| v.rx.front()) {
            Some(m) => m.clone(),
            None => return Err(ReceiveError::Empty),
        };
        if m.len() > max {
            return Err(ReceiveError::TooBig);
        }
        if !deliver(self, &m) {
            return Err(ReceiveError::Address);
        }
        let vm = self.vms.entry(vmid).or_default();
        vm.rx.pop_front();
        vm.refill();
        let more = !vm.rx.is_empty();
        // The interrupt stays asserted while the queue is not empty (Gunyah's receive
        // threshold of one): raised again for the packet now at its head.
        if more {
            vm.arrived = vm.arrived.max(1);
        }
        self.raise_rx();
        Ok((m.len(), more))
    }

    /// After the RM handled something: start the vCPUs of VMs it moved to RUNNING, take
    /// away those of VMs that left it (before their stage 2 can go).
    pub fn sync_vms(&mut self) {
        let running: Vec<Vmid> = self
            .rm
            .vms()
            .vms
            .values()
            .filter(|v| v.state == VmState::Running && v.vmid != VMID_HLOS)
            .map(|v| v.vmid)
            .collect();
        let gone: Vec<Vmid> = self
            .vms
            .iter()
            .filter(|(id, v)| v.gen.is_some() && **id != VMID_HLOS && !running.contains(id))
            .map(|(id, _)| *id)
            .collect();
        for vmid in gone {
            self.stop_vm(vmid);
        }
        for vmid in running {
            if self.vms.get(&vmid).is_none_or(|v| v.gen.is_none()) {
                self.start_vm(vmid);
            }
        }
    }

    /// Take `vmid`'s vCPUs off every CPU and away.
    fn stop_vm(&mut self, vmid: Vmid) {
        let Some(ctl) = self.vms.get_mut(&vmid) else {
            return;
        };
        let Some(gen) = ctl.gen.take() else { return };
        ctl.caps.clear();
        percpu::evict_vm(vmid, gen);
        sched::remove_vm(vmid, gen);
    }

    /// Create `vmid`'s vCPUs: vCPU 0 on at the image's entry (or the boot context's PC) with
    /// x0 = its DT, to which the board adds `/hypervisor` in place; the others off until
    /// PSCI CPU_ON.
    fn start_vm(&mut self, vmid: Vmid) {
        let Some(vm) = self.rm.vms().get(vmid).cloned() else {
            return;
        };
        let mut caps = BTreeMap::new();
        let (mut tx, mut rx, mut virqs) = (None, None, (0, 0));
        for r in &vm.resources {
            match r.rtype {
                RES_MSG_QUEUE_SEND => {
                    tx = Some(r.cap_id);
                    virqs.0 = r.virq;
                    caps.insert(r.cap_id, Cap::RmTx);
                }
                RES_MSG_QUEUE_RECV => {
                    rx = Some(r.cap_id);
                    virqs.1 = r.virq;
                    caps.insert(r.cap_id, Cap::RmRx);
                }
                RES_VIRTUAL_CPU => {
                    caps.insert(r.cap_id, Cap::Vcpu(r.label));
                }
                _ => {}
            }
        }
        let (Some(tx), Some(rx), Some(img)) = (tx, rx, vm.image) else {
            println!("qemu board: VM {vmid} RUNNING without RM-RPC queues or image: not run");
            return;
        };
        let Some(p) = self.rm.parcels().get(img.mem_handle) else {
            println!("qemu board: VM {vmid}: image parcel gone: not run");
            return;
        };
        let Some(base) = p.accepted.get(&vmid).map(|a| p.acceptor_ipa(a, 0)) else {
            println!("qemu board: VM {vmid}: image parcel not mapped: not run");
            return;
        };
        let regions: Vec<(u64, u64)> = p.regions.iter().map(|r| (r.pa, r.size)).collect();
        let link = RpcLink {
            tx_cap: tx,
            rx_cap: rx,
            tx_virq: virqs.0,
            rx_virq: virqs.1,
            depth: QUEUE_DEPTH as u32,
            msg_size: MSG_SIZE,
        };
        let dt = patch_vm_dt(
            self.rm.platform_mut(),
            vmid,
            vm.owner,
            &regions,
            (img.dtb_offset, img.dtb_size),
            &link,
        );
        let dt = match dt {
            Ok(dt) => dt,
            Err(why) => {
                println!("qemu board: VM {vmid}: its DT cannot be completed ({why}): not run");
                return;
            }
        };
        // A VM-config DT (the RM's own loader reads it) pins each vCPU to the physical CPU
        // its `vcpus/affinity-map` names, with its priority (an offset from its owner's,
        // HLOS's) and timeslice; a proxy-scheduled VM's run anywhere with the lowest
        // priority and shortest timeslice, as Gunyah's RM gives them (`sched::vcpu_sched`).
        let config = gunyah_rm::config::parse(&dt).ok();
        let vcpus = match &config {
            Some(Config::Vm(c)) => Some(&c.vcpus),
            _ => None,
        };
        let sched::VcpuSched {
            affinity,
            priority,
            timeslice_us: timeslice,
        } = sched::vcpu_sched(vcpus, sched::DEFAULT_PRIORITY);
        let Some(stage2) = self.rm.platform().stage2_regs(vmid) else {
            println!("qemu board: VM {vmid}: no stage 2: not run");
            return;
        };
        let ctx = |set: u8, index: u8| vm.boot_context.get(&BootReg { set, index }).copied();
        let mut x = [0u64; 31];
        x[0] = base + img.dtb_offset;
        for (i, v) in x.iter_mut().enumerate() {
            if let Some(val) = ctx(0, i as u8) {
                *v = val;
            }
        }
        let entry = ctx(1, 0).unwrap_or(base + img.image_offset);
        let sp = ctx(2, 1).unwrap_or(0);
        let gen = percpu::vm_started(vmid);
        let n = vm.vcpus.max(1);
        let entries = (0..n)
            .map(|i| {
                let pin = affinity
                    .get(i as usize)
                    .map(|&c| c as usize)
                    .filter(|&c| c < MAX_CPUS);
                Entry::new(Vcpu::new(vmid, i, entry, &x, sp), gen, i == 0, pin, stage2)
                    .with_sched(priority, timeslice)
            })
            .collect();
        let ctl = self.vms.entry(vmid).or_default();
        ctl.caps = caps;
        ctl.gen = Some(gen);
        ctl.vcpus = n;
        ctl.rx_virq = virqs.1;
        sched::add(vmid, gen, entries);
        STATS.vms_started.fetch_add(1, Relaxed);
    }

    /// PSCI SYSTEM_OFF from HLOS: check the RM's records, print the summary, exit.
    pub fn system_off(&mut self) -> ! {
        println!("qemu board: HLOS powered the machine off (PSCI SYSTEM_OFF)");
        let violations = self.rm.check_isolation();
        if !violations.is_empty() {
            fail(format_args!("isolation checker: {violations:?}"));
        }
        let others: Vec<Vmid> = self
            .rm
            .vms()
            .vms
            .keys()
            .copied()
            .filter(|v| *v != VMID_HLOS)
            .collect();
        let u = self.rm.platform().partition_usage();
        if others.is_empty() && u.total - u.free != u.tables {
            fail(format_args!(
                "partition pages leaked: {} in use, {} of them stage-2 tables",
                u.total - u.free,
                u.tables
            ));
        }
        let counters = self.rm.fault_counters();
        let online = percpu::CPUS
            .iter()
            .filter(|c| c.online.load(Relaxed))
            .count();
        println!(
            "qemu board: summary: physical CPUs {online}; VMs started {}; faults served {}; CoW \
             copies {}; faults found already served {}; aborts injected {}; vCPUs stopped by the board {}; VMs left {:?}; \
             partition pages in use {} ({} stage-2 tables); isolation checker clean; virtual \
             interrupts raised {}; preemptions by the tick {}; EL2 heap used {} KiB",
            STATS.vms_started.load(Relaxed),
            STATS.faults_served.load(Relaxed),
            counters.cow_copies,
            STATS.faults_retried.load(Relaxed),
            STATS.aborts_injected.load(Relaxed),
            STATS.vcpus_killed.load(Relaxed),
            others,
            u.total - u.free,
            u.tables,
            sched::VIRQS_RAISED.load(Relaxed),
            sched::PREEMPTIONS.load(Relaxed),
            heap::used() / 1024
        );
        sched::report();
        let excl = rm().exclusive_faults();
        let per_run: Vec<String> = (1..=RUNS)
            .map(|g| g % RUNS)
            .filter(|&i| CONCURRENT[i].load(Relaxed) != 0)
            .map(|i| {
                let cpus = CONCURRENT_CPUS[i].load(Relaxed);
                let list: Vec<usize> = (0..MAX_CPUS).filter(|c| cpus & (1 << c) != 0).collect();
                format!(
                    "VM {} run {i} {} on CPUs {list:?}",
                    RUN_VMID[i].load(Relaxed).wrapping_sub(1),
                    CONCURRENT[i].load(Relaxed)
                )
            })
            .collect();
        println!(
            "qemu board: faults served on the concurrent path (the RM lock's read side and the \
             VM's ledger, no board lock) {}; faults handled under the RM's exclusive lock {}; \
             served concurrently per VM run: {}",
            CONCURRENT.iter().map(|n| n.load(Relaxed)).sum::<u64>(),
            excl,
            per_run.join(", ")
        );
        // How unfair the test-and-set locks were (percpu::Lock): not checked, a figure.
        #[cfg(feature = "catalogue")]
        let chan = format!("; test channel {}", crate::testchan::lock_most_overtaken());
        #[cfg(not(feature = "catalogue"))]
        let chan = String::new();
        println!(
            "qemu board: locks (test-and-set), the most times others took one while a CPU \
             waited: board {}; scheduler {}; partition {}; GIC {}; console {}; fault figures \
             {}{chan}",
            BOARD.most_overtaken(),
            sched::lock_most_overtaken(),
            crate::platform::lock_most_overtaken(),
            crate::gic::lock_most_overtaken(),
            crate::console::lock_most_overtaken(),
            FAULT_SPLIT.most_overtaken(),
        );
        let split = FAULT_SPLIT.lock().clone();
        if !split.is_empty() {
            let (rm, drain): (Vec<u64>, Vec<u64>) = split.iter().copied().unzip();
            println!(
                "qemu board: EL2 instructions of each served fault taken while the other CPUs \
                 were idle, inside ConcurrentRm::handle_fault: {rm:?}; the board after it (COW_BROKEN \
                 batched): {drain:?}"
            );
        }
        if STATS.vcpus_killed.load(Relaxed) != 0 {
            fail(format_args!("a vCPU had to be stopped"));
        }
        println!("qemu board: PASS");
        exit(0)
    }

    /// The PA behind guest IPA `ipa` of `vmid` if its stage 2 lets it `write` (or read) and
    /// it is normal memory.
    pub fn guest_pa(&self, vmid: Vmid, ipa: u64, write: bool) -> Option<u64> {
        let leaf = self.rm.platform().query(vmid, ipa)?;
        let ok = if write {
            leaf.rights.writable()
        } else {
            leaf.rights.readable()
        };
        (ok && leaf.kind == gunyah_rm::MemKind::Normal).then_some(leaf.pa + (ipa - leaf.ipa))
    }
}

impl VmCtl {
    fn refill(&mut self) {
        while self.rx.len() < QUEUE_DEPTH {
            match self.backlog.pop_front() {
                Some(p) => {
                    self.rx.push_back(p);
                    self.arrived += 1;
                }
                None => break,
            }
        }
    }
}

/// Why a receive did not deliver.
pub enum ReceiveError {
    /// Nothing queued.
    Empty,
    /// The next packet is larger than the buffer.
    TooBig,
    /// The buffer is not writable guest memory.
    Address,
}

/// Write the VM's DT back into its image parcel (`regions`, at `dt` = (offset, size)) with
/// `/hypervisor` added; the DT as it was.
fn patch_vm_dt(
    plat: &mut QemuPlatform,
    vmid: Vmid,
    owner: Vmid,
    regions: &[(u64, u64)],
    dt: (u64, u64),
    link: &RpcLink,
) -> Result<Vec<u8>, &'static str> {
    let (off, size) = dt;
    let total: u64 = regions.iter().map(|r| r.1).sum();
    let size = usize::try_from(size).map_err(|_| "DT size")?;
    if size > 1 << 20 {
        return Err("DT over 1 MiB");
    }
    let mut old = alloc::vec![0u8; size];
    if !parcel_io(plat, regions, off, &mut old, false) {
        return Err("DT outside the image parcel");
    }
    let mut new = fdt_edit::add_to_root(&old, &hypervisor_node(vmid, owner, false, link))?;
    if off + new.len() as u64 > total {
        return Err("no room in the image parcel for the DT with /hypervisor");
    }
    if !parcel_io(plat, regions, off, &mut new, true) {
        return Err("DT outside the image parcel");
    }
    Ok(old)
}

/// Read (`write` false) or write `buf` at byte `off` of a parcel made of `regions` (PA,
/// size), through the platform's checked memory access.
fn parcel_io(
    plat: &mut QemuPlatform,
    regions: &[(u64, u64)],
    off: u64,
    buf: &mut [u8],
    write: bool,
) -> bool {
    let mut off = off;
    let mut done = 0usize;
    for &(pa, size) in regions {
        if done == buf.len() {
            break;
        }
        if off >= size {
            off -= size;
            continue;
        }
        let n = ((size - off) as usize).min(buf.len() - done);
        let ok = if write {
            plat.write(pa + off, &buf[done..done + n])
        } else {
            plat.read(pa + off, &mut buf[done..done + n])
        };
        if !ok {
            return false;
        }
        done += n;
        off = 0;
    }
    done == buf.len()
}
