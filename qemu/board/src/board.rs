//! The board: boots the RM, runs HLOS, sets up two clone VMs sharing a golden image
//! copy-on-write, runs them, serves their stage-2 faults through `Rm::handle_fault`, checks
//! the result and prints a summary.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;

use aarch64_cpu::registers::{Readable, ESR_EL2, ID_AA64MMFR0_EL1};
use gunyah_rm::cow::FaultOutcome;
use gunyah_rm::memparcel::{AcceptReq, TransType, ACCEPT_DONE};
use gunyah_rm::platform::{AddressSpaces, PhysMem, Vmid, PAGE_SIZE};
use gunyah_rm::vm::VmState;
use gunyah_rm::{Rm, RmConfig};
use gunyah_stage2::fault::resolve_ipa_at_s1e1r;
use gunyah_stage2::{Fault, PaRange};

use crate::boot::{self, Frame};
use crate::console::{exit, fail};
use crate::hypercalls::{self, Next};
use crate::layout::*;
use crate::platform::QemuPlatform;
use crate::{guests, heap, pmu, println};

const HLOS: Vmid = 3;

/// Which vCPU runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Hlos,
    Clone(usize),
    HlosTeardown,
}

/// Everything EL2 keeps.
pub struct Board {
    /// The RM.
    pub rm: Rm<QemuPlatform>,
    /// Packets from the RM waiting in each VM's receive queue.
    pub queues: BTreeMap<Vmid, VecDeque<Vec<u8>>>,
    phase: Phase,
    clones: [Vmid; 2],
    golden: u32,
    /// HLOS's code parcel and image parcels (for the teardown).
    code_parcel: u32,
    images: u64,
    /// COW_BROKEN notifications HLOS got (counted before the teardown consumes them).
    cow_broken: usize,
    faults_served: u64,
    aborts_injected: u64,
    /// Per served fault: EL2 instructions inside `Rm::handle_fault`, then in draining the
    /// RM's outgoing packets (the COW_BROKEN notification) after it.
    fault_split: Vec<(u64, u64)>,
    /// Per clone: EL2 instructions of its first CoW fault (block split) and of its second.
    cow_el2_instructions: [[u64; 2]; 2],
    guest_copy_instructions: [u64; 2],
}

static BOARD: spin::Mutex<Option<Board>> = spin::Mutex::new(None);

extern "C" {
    static __shared_start: u8;
    static __shared_end: u8;
}

/// HLOS's vCPU stack (in HLOS RAM: part of the image).
#[repr(C, align(16))]
struct Stack([u8; 16384]);
static mut HLOS_STACK: Stack = Stack([0; 16384]);

fn hlos_stack_top() -> u64 {
    // Only the address is taken: HLOS's vCPU is the stack's only user.
    core::ptr::addr_of!(HLOS_STACK) as u64 + 16384
}

fn shared_range() -> (u64, u64) {
    // SAFETY: linker symbols; only their addresses are used.
    let (s, e) = unsafe {
        (
            &__shared_start as *const u8 as u64,
            &__shared_end as *const u8 as u64,
        )
    };
    (s, e - s)
}

impl Board {
    /// Move the RM's outgoing packets to the VMs' receive queues.
    pub fn pump(&mut self) {
        for (to, pk) in self.rm.drain_outgoing() {
            self.queues.entry(to).or_default().push_back(pk);
        }
    }

    fn stage2(&self, vmid: Vmid) -> (u64, u64) {
        self.rm
            .platform()
            .stage2_regs(vmid)
            .unwrap_or_else(|| fail(format_args!("VM {vmid} has no stage 2")))
    }

    fn current(&self) -> Vmid {
        match self.phase {
            Phase::Hlos | Phase::HlosTeardown => HLOS,
            Phase::Clone(i) => self.clones[i],
        }
    }

    /// HLOS set everything up through RPC; as the clones' loader, accept the shared code
    /// into each (at its own address) and check what they will run on.
    fn accept_code(&mut self, code_parcel: u32) {
        let (code, code_size) = shared_range();
        let rm = &mut self.rm;
        for vm in self.clones {
            let accept = AcceptReq {
                handle: code_parcel,
                mem_type: 0,
                trans_type: TransType::Share as u8,
                flags: ACCEPT_DONE,
                label: 0,
                acl: vec![],
                sgl: vec![(code, code_size)],
                map_vmid: 0,
                attrs: vec![],
            };
            rm.mem_accept(vm, &accept)
                .unwrap_or_else(|e| fail(format_args!("MEM_ACCEPT of the code by {vm}: {e:?}")));
            let l = rm.platform().query(vm, code);
            check(
                l.is_some_and(|l| l.pa == code && !l.rights.writable() && l.rights.executable()),
                "a clone maps the shared code read/execute at its own address",
            );
            let g = rm
                .platform()
                .query(vm, CLONE_GOLDEN_IPA + WRITE_PAGE * PAGE_SIZE);
            check(
                g.is_some_and(|g| g.pa == GOLDEN_SRC && !g.rights.writable()),
                "a clone maps the golden image read-only",
            );
        }
        check(
            rm.platform().query(HLOS, GOLDEN_SRC).is_none(),
            "HLOS lost its mapping of the sealed golden source",
        );
        self.pump();
    }

    fn start_clone(&mut self, i: usize, frame: &mut Frame) {
        // Only a VM the RM has started gets its vCPU run.
        let vm = self.clones[i];
        if self.rm.vm_state(vm) != Some(VmState::Running) {
            fail(format_args!("VM {vm} is not RUNNING in the RM"));
        }
        self.phase = Phase::Clone(i);
        let s2 = self.stage2(self.clones[i]);
        boot::load_vcpu(
            frame,
            s2,
            guests::clone_main as *const () as u64,
            CLONE_STACK_IPA + CLONE_STACK_SIZE,
            [i as u64, shared_range().0, 0],
        );
    }

    /// A vCPU powered off: check what it reports, then run the next one or finish.
    fn powered_off(&mut self, status: u64, r: [u64; 5], frame: &mut Frame) {
        let who = self.current();
        if status != 0 {
            fail(format_args!(
                "guest VM {who} failed check {status} ({:#x} {:#x} {:#x})",
                r[0], r[1], r[2]
            ));
        }
        match self.phase {
            Phase::Hlos => {
                check(r[0] == HLOS as u64, "VM_GET_VMID answers HLOS with 3");
                println!("qemu board: HLOS got VMID {} from VM_GET_VMID", r[0]);
                println!(
                    "qemu board: HLOS's bad hypercalls (wrong cap, size or flags, unmapped or \
                     page-crossing buffers, unknown call, malformed RPC, small receive buffer) \
                     got Gunyah error codes and changed nothing"
                );
                let (a, b) = (r[1] as Vmid, r[2] as Vmid);
                check(
                    a != b && self.rm.vm_exists(a) && self.rm.vm_exists(b),
                    "VM_ALLOC_VMID made two VMs",
                );
                println!("qemu board: HLOS allocated VMs {a} and {b} with VM_ALLOC_VMID");
                self.clones = [a, b];
                self.golden = (r[3] >> 32) as u32;
                self.code_parcel = r[3] as u32;
                self.images = r[4];
                check(
                    self.rm.golden(self.golden).is_some(),
                    "GOLDEN_SEAL made a golden image",
                );
                println!(
                    "qemu board: HLOS sealed golden image {} and mapped it copy-on-write into both \
                     VMs through RPC",
                    self.golden
                );
                self.accept_code(self.code_parcel);
                let running = [a, b].map(|v| self.rm.vm_state(v) == Some(VmState::Running));
                check(running == [true, true], "VM_START left both VMs RUNNING");
                println!(
                    "qemu board: VMs {a} and {b} RUNNING (VM_CONFIG_IMAGE, VM_INIT, VM_START \
                     through RPC)"
                );
                self.start_clone(0, frame);
            }
            Phase::Clone(i) => {
                if r[3] != who as u64 {
                    fail(format_args!("VM {who} got VMID {} from VM_GET_VMID", r[3]));
                }
                self.cow_el2_instructions[i] = [r[0], r[2]];
                self.guest_copy_instructions[i] = r[1];
                println!(
                    "qemu board: clone VM {who} got VMID {who} from VM_GET_VMID, read golden, \
                     wrote its copy, read it back"
                );
                if i == 0 {
                    self.start_clone(1, frame);
                } else {
                    println!(
                        "qemu board: guests' FP/SIMD registers survived traps to EL2 (an RPC, \
                         CoW faults)"
                    );
                    self.verify_clones();
                    self.start_teardown(frame);
                }
            }
            Phase::HlosTeardown => {
                println!(
                    "qemu board: HLOS stopped, reset and deallocated both VMs, reclaimed the \
                     parcels, released the golden image and reads its source again"
                );
                self.finish();
            }
        }
    }

    /// A stage-2 data abort of the running vCPU.
    fn data_abort(&mut self) {
        let vmid = self.current();
        let fault = Fault::from_el2_registers()
            .unwrap_or_else(|e| fail(format_args!("undecodable abort from VM {vmid}: {e:?}")));
        let fault = if fault.needs_ipa_resolution() {
            let far = fault
                .far
                .unwrap_or_else(|| fail(format_args!("no FAR: {fault:?}")));
            // SAFETY: the faulting vCPU's EL1 registers and VTTBR_EL2 are still loaded.
            match unsafe { resolve_ipa_at_s1e1r(far) } {
                Some(ipa) => fault.with_ipa(ipa),
                // Its stage 1 changed under us: let the access retry.
                None => return,
            }
        } else {
            fault
        };
        let t0 = pmu::el2_instructions();
        let outcome = self.rm.handle_fault(vmid, &fault);
        let t1 = pmu::el2_instructions();
        match outcome {
            FaultOutcome::Copied { .. } | FaultOutcome::Populated { .. } => {
                self.faults_served += 1;
                self.pump();
                let t2 = pmu::el2_instructions();
                self.fault_split.push((t1 - t0, t2 - t1));
                return;
            }
            FaultOutcome::Retry => {}
            // Not memory the RM serves (or a refused write): the access aborts, as it would
            // on Gunyah.
            FaultOutcome::Report | FaultOutcome::Abort(_) if boot::inject_data_abort() => {
                self.aborts_injected += 1;
            }
            other => fail(format_args!(
                "VM {vmid}: fault at IPA {:#x} not served: {other:?} ({fault:?})",
                fault.ipa.unwrap_or(0)
            )),
        }
        self.pump();
    }

    /// Both clones are done: check their memory and the RM's records.
    fn verify_clones(&mut self) {
        let [a, b] = self.clones;
        let page = WRITE_PAGE * PAGE_SIZE;
        let plat = self.rm.platform();
        let golden_pa = self
            .rm
            .golden(self.golden)
            .and_then(|g| g.pa_of(page))
            .unwrap_or_else(|| fail(format_args!("golden image lost")));
        let mut copies = [0u64; 2];
        for (i, vm) in [a, b].into_iter().enumerate() {
            let l = plat
                .query(vm, CLONE_GOLDEN_IPA + page)
                .unwrap_or_else(|| fail(format_args!("VM {vm}: written page unmapped")));
            check(
                l.size == PAGE_SIZE && l.rights.writable() && l.pa != golden_pa,
                "each clone's written page is its own writable copy",
            );
            copies[i] = l.pa;
            let mut w = [0u8; 8];
            for word in [0, 1, WRITTEN_WORDS - 1, WRITTEN_WORDS, 511] {
                let want = if word < WRITTEN_WORDS {
                    clone_word(i as u64, word)
                } else {
                    golden_word(WRITE_PAGE, word)
                };
                check(plat.read(l.pa + word * 8, &mut w), "copy readable");
                check(
                    u64::from_le_bytes(w) == want,
                    "each copy holds its clone's data over the golden data",
                );
            }
            let n = plat.query(vm, CLONE_GOLDEN_IPA + page + PAGE_SIZE);
            check(
                n.is_some_and(|n| n.pa == golden_pa + PAGE_SIZE && !n.rights.writable()),
                "the neighbouring page still maps golden read-only",
            );
        }
        check(
            copies[0] != copies[1],
            "the clones' copies are different pages",
        );
        let mut w = [0u8; 8];
        for word in [0, 511] {
            check(plat.read(golden_pa + word * 8, &mut w), "golden readable");
            check(
                u64::from_le_bytes(w) == golden_word(WRITE_PAGE, word),
                "the golden page is unchanged",
            );
        }
        let counters = self.rm.fault_counters();
        check(
            counters.cow_copies == 4,
            "the RM made exactly four CoW copies",
        );
        check(self.faults_served == 4, "exactly four faults were served");
        // HLOS's probe of the sealed source, three probes per clone.
        if self.aborts_injected != 7 {
            fail(format_args!(
                "{} aborts injected; the isolation probes take exactly 7",
                self.aborts_injected
            ));
        }
        let violations = self.rm.check_isolation();
        if !violations.is_empty() {
            fail(format_args!("isolation checker: {:?}", violations));
        }
        // COW_BROKEN notifications (type 3, msg_id 0x47100001) waiting for HLOS.
        let cow_broken = self.queues.get(&HLOS).map_or(0, |q| {
            q.iter()
                .filter(|p| {
                    p.len() >= 8 && p[1] & 3 == 3 && p[4..8] == 0x4710_0001u32.to_le_bytes()
                })
                .count()
        });
        self.cow_broken = cow_broken;
        check(
            cow_broken == 4,
            "HLOS got one COW_BROKEN notification per copy",
        );
        let g = self
            .rm
            .golden(self.golden)
            .unwrap_or_else(|| fail(format_args!("golden image lost")));
        check(
            g.share_count(WRITE_PAGE) == 0
                && g.share_count(SECOND_WRITE_PAGE) == 0
                && g.share_count(WRITE_PAGE + 1) == 2,
            "golden share counts: written pages copied by both, a neighbour shared by both",
        );
    }

    /// Re-enter HLOS (fresh stack) at its teardown code.
    fn start_teardown(&mut self, frame: &mut Frame) {
        self.phase = Phase::HlosTeardown;
        let s2 = self.stage2(HLOS);
        let [a, b] = self.clones;
        boot::load_vcpu(
            frame,
            s2,
            guests::hlos_teardown as *const () as u64,
            hlos_stack_top(),
            [
                a as u64 | (b as u64) << 16,
                self.code_parcel as u64 | (self.golden as u64) << 32,
                self.images,
            ],
        );
    }

    /// HLOS tore everything down: check that every clone page and table came back, print the
    /// summary, exit.
    fn finish(&mut self) -> ! {
        let [a, b] = self.clones;
        for vm in [a, b] {
            check(
                !self.rm.vm_exists(vm) && self.rm.platform().stage2_regs(vm).is_none(),
                "VM_DEALLOC removed the VM and its stage 2",
            );
        }
        check(
            self.rm.golden(self.golden).is_none(),
            "GOLDEN_RELEASE removed the image",
        );
        let u = self.rm.platform().partition_usage();
        if u.total - u.free != u.tables {
            fail(format_args!(
                "partition pages leaked: {} in use, {} of them stage-2 tables",
                u.total - u.free,
                u.tables
            ));
        }
        let violations = self.rm.check_isolation();
        if !violations.is_empty() {
            fail(format_args!(
                "isolation checker after teardown: {:?}",
                violations
            ));
        }
        let counters = self.rm.fault_counters();
        let cow_broken = self.cow_broken;
        let golden_pages = GOLDEN_SIZE / PAGE_SIZE;
        println!(
            "qemu board: summary: VMs [{HLOS}, {a}, {b}]; golden pages {golden_pages}; faults served {}; \
             CoW copies {}; COW_BROKEN to HLOS {cow_broken}; aborts injected {} (isolation \
             probes); isolation checker clean; after teardown {} partition pages in use, all \
             HLOS's stage-2 tables; EL2 heap used {} KiB",
            self.faults_served,
            counters.cow_copies,
            self.aborts_injected,
            u.total - u.free,
            heap::used() / 1024
        );
        let [[f0, n0], [f1, n1]] = self.cow_el2_instructions;
        let [g0, g1] = self.guest_copy_instructions;
        if f0 == 0 && g0 == 0 {
            println!("qemu board: instruction counts unavailable (run QEMU with -icount shift=0)");
        } else {
            println!(
                "qemu board: EL2 instructions per CoW fault (trap to ERET, RM included): first \
                 in the 2 MiB golden block, which it splits: {f0} (VM {a}), {f1} (VM {b}); next \
                 in that block: {n0} (VM {a}), {n1} (VM {b}); guest's own 4 KiB copy at EL1: \
                 {g0} (VM {a}), {g1} (VM {b})"
            );
            let (rm, drain): (Vec<u64>, Vec<u64>) = self.fault_split.iter().copied().unzip();
            println!(
                "qemu board: of which inside Rm::handle_fault: {rm:?}; Rm::drain_outgoing \
                 after it: {drain:?} (faults in order)"
            );
        }
        println!("qemu board: PASS");
        exit(0)
    }
}

fn check(ok: bool, what: &str) {
    if !ok {
        fail(format_args!("check failed: {what}"));
    }
}

#[no_mangle]
extern "C" fn el2_main() -> ! {
    boot::init_cpu();
    println!("qemu board: EL2 up, MMU on");
    pmu::init();
    let parange =
        PaRange::from_parange((ID_AA64MMFR0_EL1.get() & 0xF) as u8).unwrap_or(PaRange::Bits40);
    let cfg = RmConfig {
        hlos_ram: Some((HLOS_RAM.0, HLOS_RAM.0, HLOS_RAM.1)),
        ..RmConfig::default()
    };
    let rm = Rm::new(QemuPlatform::new(parange), cfg)
        .unwrap_or_else(|e| fail(format_args!("RM boot: {e}")));
    println!("qemu board: RM up, HLOS RAM mapped by stage 2");
    let board = Board {
        rm,
        queues: BTreeMap::new(),
        phase: Phase::Hlos,
        clones: [0; 2],
        golden: 0,
        code_parcel: 0,
        images: 0,
        cow_broken: 0,
        faults_served: 0,
        aborts_injected: 0,
        fault_split: Vec::new(),
        cow_el2_instructions: [[0; 2]; 2],
        guest_copy_instructions: [0; 2],
    };
    let s2 = board.stage2(HLOS);
    *BOARD.lock() = Some(board);
    let stack_top = hlos_stack_top();
    let (code, code_size) = shared_range();
    boot::run_first_vcpu(
        s2,
        guests::hlos_main as *const () as u64,
        stack_top,
        [code, code_size, 0],
    )
}

#[no_mangle]
extern "C" fn el2_lower_sync_rust(frame: &mut Frame) {
    let mut guard = BOARD.lock();
    let Some(board) = guard.as_mut() else {
        fail(format_args!("trap before the board is up"))
    };
    let esr = ESR_EL2.get();
    match (esr >> 26) & 0x3F {
        0x16 => {
            let vmid = board.current();
            if let Next::PoweredOff(status, r) = hypercalls::handle(board, vmid, frame) {
                board.powered_off(status, r, frame);
            }
        }
        0x24 => board.data_abort(),
        ec => fail(format_args!(
            "VM {}: unexpected trap EC {ec:#x} ESR {esr:#x}",
            board.current()
        )),
    }
}
