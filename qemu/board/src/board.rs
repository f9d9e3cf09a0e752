//! The board: boots the RM with HLOS as Gunyah's QEMU platform does, enters HLOS at EL1 with
//! the DT (to which it added `/hypervisor`), runs the vCPUs of every VM the RM starts,
//! serves their hypercalls and stage-2 faults, and when HLOS powers the machine off checks
//! the RM's records and exits through semihosting.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use aarch64_cpu::registers::{
    Readable, Writeable, ESR_EL2, HCR_EL2, ID_AA64MMFR0_EL1, VTCR_EL2, VTTBR_EL2,
};
use gunyah_rm::cow::FaultOutcome;
use gunyah_rm::lifecycle::{RES_MSG_QUEUE_RECV, RES_MSG_QUEUE_SEND, RES_VIRTUAL_CPU};
use gunyah_rm::platform::{PhysMem, Vmid, PAGE_SIZE};
use gunyah_rm::vm::{BootReg, VmState, VMID_HLOS};
use gunyah_rm::{Rm, RmConfig};
use gunyah_stage2::fault::resolve_ipa_at_s1e1r;
use gunyah_stage2::{Fault, PaRange};

use crate::boot::{self, Frame};
use crate::console::{exit, fail};
use crate::hypercalls::{self, Next};
use crate::layout::*;
use crate::platform::QemuPlatform;
use crate::vcpu::{Power, SysRegs, Vcpu};
use crate::vm_dt::{hypervisor_node, RpcLink};
use crate::{dt, fdt_edit, heap, pmu, println};

/// Capabilities of HLOS's RM-RPC queues (in its cspace; the board chooses them, as the
/// hypervisor does for the primary VM).
const HLOS_TX_CAP: u64 = 0x3_0001;
const HLOS_RX_CAP: u64 = 0x3_0002;
/// HLOS's RM-RPC interrupts (SPI 960 and 961: above every device of QEMU virt).
const HLOS_VIRQS: (u32, u32) = (992, 993);
/// RM-RPC message size and queue depth (Gunyah's defaults).
const MSG_SIZE: u32 = 240;
const QUEUE_DEPTH: u32 = 8;

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
    /// Packets from the RM waiting in its receive queue.
    pub rx: VecDeque<Vec<u8>>,
    /// The RM-RPC link the queue belongs to (a new link starts empty).
    link: Option<u64>,
    /// Its vCPUs exist on the board.
    started: bool,
}

/// Counters for the summary.
#[derive(Default)]
struct Stats {
    faults_served: u64,
    aborts_injected: u64,
    vms_started: u64,
    vcpus_killed: u64,
    /// Per served fault: EL2 instructions inside `Rm::handle_fault`, then in draining the
    /// RM's outgoing packets (the COW_BROKEN notification) after it.
    fault_split: Vec<(u64, u64)>,
}

/// Everything EL2 keeps.
pub struct Board {
    /// The RM.
    pub rm: Rm<QemuPlatform>,
    /// Per VM: cspace and receive queue.
    pub vms: BTreeMap<Vmid, VmCtl>,
    vcpus: Vec<Vcpu>,
    current: usize,
    stats: Stats,
}

static BOARD: spin::Mutex<Option<Board>> = spin::Mutex::new(None);

impl Board {
    /// Move the RM's outgoing packets to the VMs' receive queues.
    pub fn pump(&mut self) {
        for (to, pk) in self.rm.drain_outgoing() {
            let link = self.rm.link(to);
            let vm = self.vms.entry(to).or_default();
            if vm.link != link {
                vm.rx.clear();
                vm.link = link;
            }
            vm.rx.push_back(pk);
        }
    }

    /// The VM of the running vCPU.
    pub fn current_vm(&self) -> Vmid {
        self.vcpus[self.current].vmid
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
        for vmid in &running {
            if !self.vms.get(vmid).is_some_and(|v| v.started) {
                self.start_vm(*vmid);
            }
        }
        let gone: Vec<Vmid> = self
            .vms
            .iter()
            .filter(|(id, v)| v.started && **id != VMID_HLOS && !running.contains(id))
            .map(|(id, _)| *id)
            .collect();
        for vmid in gone {
            self.stop_vm(vmid);
        }
    }

    /// Create `vmid`'s vCPUs: vCPU 0 on at the image's entry (or the boot context's PC) with
    /// x0 = its DT, to which the board adds `/hypervisor` in place; the others off.
    fn start_vm(&mut self, vmid: Vmid) {
        let Some(vm) = self.rm.vms().get(vmid).cloned() else {
            return;
        };
        let ctl = self.vms.entry(vmid).or_default();
        ctl.started = true;
        ctl.caps.clear();
        let (mut tx, mut rx, mut virqs) = (None, None, (0, 0));
        for r in &vm.resources {
            match r.rtype {
                RES_MSG_QUEUE_SEND => {
                    tx = Some(r.cap_id);
                    virqs.0 = r.virq;
                    ctl.caps.insert(r.cap_id, Cap::RmTx);
                }
                RES_MSG_QUEUE_RECV => {
                    rx = Some(r.cap_id);
                    virqs.1 = r.virq;
                    ctl.caps.insert(r.cap_id, Cap::RmRx);
                }
                RES_VIRTUAL_CPU => {
                    ctl.caps.insert(r.cap_id, Cap::Vcpu(r.label));
                }
                _ => {}
            }
        }
        let (Some(tx), Some(rx), Some(img)) = (tx, rx, vm.image) else {
            println!("qemu board: VM {vmid} RUNNING without RM-RPC queues or image: not run");
            return;
        };
        // Where the VM sees its image parcel.
        let Some(p) = self.rm.parcels().get(img.mem_handle) else {
            println!("qemu board: VM {vmid}: image parcel gone: not run");
            return;
        };
        let Some(base) = p.accepted.get(&vmid).map(|a| p.acceptor_ipa(a, 0)) else {
            println!("qemu board: VM {vmid}: image parcel not mapped: not run");
            return;
        };
        let regions: Vec<(u64, u64)> = p.regions.iter().map(|r| (r.pa, r.size)).collect();
        let total: u64 = regions.iter().map(|r| r.1).sum();
        let link = RpcLink {
            tx_cap: tx,
            rx_cap: rx,
            tx_virq: virqs.0,
            rx_virq: virqs.1,
            depth: QUEUE_DEPTH,
            msg_size: MSG_SIZE,
        };
        let dt_ok = self.patch_vm_dt(
            vmid,
            vm.owner,
            &regions,
            img.dtb_offset,
            img.dtb_size,
            total,
            &link,
        );
        if let Err(why) = dt_ok {
            println!("qemu board: VM {vmid}: its DT cannot be completed ({why}): not run");
            return;
        }
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
        for i in 0..vm.vcpus.max(1) {
            let power = if i == 0 { Power::On } else { Power::Off };
            self.vcpus.push(Vcpu::new(vmid, i, power, entry, &x, sp));
        }
        self.stats.vms_started += 1;
    }

    /// Write the VM's DT back into its image parcel with `/hypervisor` added.
    #[allow(clippy::too_many_arguments)]
    fn patch_vm_dt(
        &mut self,
        vmid: Vmid,
        owner: Vmid,
        regions: &[(u64, u64)],
        off: u64,
        size: u64,
        total: u64,
        link: &RpcLink,
    ) -> Result<(), &'static str> {
        let size = usize::try_from(size).map_err(|_| "DT size")?;
        if size > 1 << 20 {
            return Err("DT over 1 MiB");
        }
        let mut old = alloc::vec![0u8; size];
        if !parcel_io(self.rm.platform_mut(), regions, off, &mut old, false) {
            return Err("DT outside the image parcel");
        }
        let new = fdt_edit::add_to_root(&old, &hypervisor_node(vmid, owner, false, link))?;
        if off + new.len() as u64 > total {
            return Err("no room in the image parcel for the DT with /hypervisor");
        }
        let mut new = new;
        if !parcel_io(self.rm.platform_mut(), regions, off, &mut new, true) {
            return Err("DT outside the image parcel");
        }
        Ok(())
    }

    /// Take `vmid`'s vCPUs away (it left RUNNING). If the running vCPU was one of them,
    /// the trap handler schedules another before returning.
    fn stop_vm(&mut self, vmid: Vmid) {
        if let Some(ctl) = self.vms.get_mut(&vmid) {
            ctl.started = false;
            ctl.caps.clear();
        }
        self.vcpus.retain(|v| v.vmid != vmid);
        self.current = self
            .vcpus
            .iter()
            .position(|v| v.running)
            .unwrap_or(usize::MAX);
    }

    /// A stage-2 data abort of the running vCPU.
    fn data_abort(&mut self, frame: &mut Frame) {
        let vmid = self.current_vm();
        let fault = match Fault::from_el2_registers() {
            Ok(f) => f,
            Err(e) => return self.kill_current(frame, format_args!("undecodable abort: {e:?}")),
        };
        let fault = if fault.needs_ipa_resolution() {
            let Some(far) = fault.far else {
                return self.kill_current(frame, format_args!("no FAR: {fault:?}"));
            };
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
                self.stats.faults_served += 1;
                self.pump();
                let t2 = pmu::el2_instructions();
                self.stats.fault_split.push((t1 - t0, t2 - t1));
                return;
            }
            FaultOutcome::Retry => {}
            // Not memory the RM serves (or a refused write): the access aborts, as it would
            // on Gunyah.
            _ if boot::inject_data_abort() => {
                self.stats.aborts_injected += 1;
            }
            other => {
                return self.kill_current(
                    frame,
                    format_args!(
                        "fault at IPA {:#x} not served ({other:?}) and no abort can be injected",
                        fault.ipa.unwrap_or(0)
                    ),
                )
            }
        }
        self.pump();
        self.sync_vms();
    }

    /// The running vCPU did something the board cannot let it go on from: it stops.
    fn kill_current(&mut self, frame: &mut Frame, why: core::fmt::Arguments<'_>) {
        let Some(v) = self.vcpus.get_mut(self.current) else {
            return;
        };
        println!("qemu board: VM {} vCPU {} stopped: {why}", v.vmid, v.index);
        v.power = Power::Off;
        self.stats.vcpus_killed += 1;
        self.schedule(frame);
    }

    /// Run the next powered-on vCPU after the current one (round robin; the current one
    /// again if it is the only one). With none at all, the machine has nothing left to do.
    pub fn schedule(&mut self, frame: &mut Frame) {
        let n = self.vcpus.len();
        let cur = self.current;
        let start = if cur < n { cur } else { n.saturating_sub(1) };
        let next = (1..=n)
            .map(|k| (start + k) % n)
            .find(|&i| self.vcpus[i].power == Power::On);
        let Some(next) = next else {
            fail(format_args!("no vCPU left to run"));
        };
        if next == cur && self.vcpus[cur].running {
            return;
        }
        if cur < n && self.vcpus[cur].running {
            self.switch_out(cur, frame);
        }
        self.switch_in(next, frame);
    }

    /// Whether a vCPU is loaded (the running one may have been taken away).
    fn has_current(&self) -> bool {
        self.vcpus.get(self.current).is_some_and(|v| v.running)
    }

    fn switch_out(&mut self, i: usize, frame: &Frame) {
        let v = &mut self.vcpus[i];
        v.frame.clone_from(frame);
        v.sys = SysRegs::save();
        v.running = false;
    }

    fn switch_in(&mut self, i: usize, frame: &mut Frame) {
        let vmid = self.vcpus[i].vmid;
        let Some((vtcr, vttbr)) = self.rm.platform().stage2_regs(vmid) else {
            fail(format_args!("VM {vmid} has a vCPU but no stage 2"));
        };
        let v = &mut self.vcpus[i];
        frame.clone_from(&v.frame);
        v.sys.restore();
        v.running = true;
        VTCR_EL2.set(vtcr);
        VTTBR_EL2.set(vttbr);
        // RW: EL1 is AArch64; TSC: SMC traps (PSCI through SMC); VM: stage 2 on.
        HCR_EL2.set((1 << 31) | (1 << 19) | 1);
        #[cfg(target_arch = "aarch64")]
        // SAFETY: synchronise the new translation regime before the ERET that uses it.
        unsafe {
            core::arch::asm!("isb")
        };
        self.current = i;
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
        println!(
            "qemu board: summary: VMs started {}; faults served {}; CoW copies {}; aborts \
             injected {}; vCPUs stopped by the board {}; VMs left {:?}; partition pages in \
             use {} ({} stage-2 tables); isolation checker clean; EL2 heap used {} KiB",
            self.stats.vms_started,
            self.stats.faults_served,
            counters.cow_copies,
            self.stats.aborts_injected,
            self.stats.vcpus_killed,
            others,
            u.total - u.free,
            u.tables,
            heap::used() / 1024
        );
        if !self.stats.fault_split.is_empty() {
            let (rm, drain): (Vec<u64>, Vec<u64>) = self.stats.fault_split.iter().copied().unzip();
            println!(
                "qemu board: EL2 instructions of each served fault inside Rm::handle_fault: \
                 {rm:?}; Rm::drain_outgoing after it: {drain:?}"
            );
        }
        if self.stats.vcpus_killed != 0 {
            fail(format_args!("a vCPU had to be stopped"));
        }
        println!("qemu board: PASS");
        exit(0)
    }
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

#[no_mangle]
extern "C" fn el2_main() -> ! {
    boot::init_cpu();
    println!("qemu board: EL2 up, MMU on");
    pmu::init();
    let plat_dt = dt::read_platform(HLOS_DT)
        .unwrap_or_else(|e| fail(format_args!("the DT at {HLOS_DT:#x}: {e}")));
    if plat_dt.ram_end < RAM_END {
        fail(format_args!(
            "RAM ends at {:#x}: the board needs 0x40000000..{RAM_END:#x} (QEMU -m 2G)",
            plat_dt.ram_end
        ));
    }
    println!(
        "qemu board: QEMU's DT at {HLOS_DT:#x}: {} CPUs, RAM to {:#x}",
        plat_dt.cpus, plat_dt.ram_end
    );
    let parange =
        PaRange::from_parange((ID_AA64MMFR0_EL1.get() & 0xF) as u8).unwrap_or(PaRange::Bits40);
    // HLOS owns its RAM and the PL011 (passed through, device memory at its own address).
    let cfg = RmConfig {
        hlos_ram: Some((HLOS_RAM.0, HLOS_RAM.0, HLOS_RAM.1)),
        hlos_mmio: Some((plat_dt.uart, plat_dt.uart, PAGE_SIZE)),
        ..RmConfig::default()
    };
    let mut rm = Rm::new(QemuPlatform::new(parange), cfg)
        .unwrap_or_else(|e| fail(format_args!("RM boot: {e}")));
    // HLOS's DT gets /hypervisor with its RM-RPC queues, written back in place.
    let link = RpcLink {
        tx_cap: HLOS_TX_CAP,
        rx_cap: HLOS_RX_CAP,
        tx_virq: HLOS_VIRQS.0,
        rx_virq: HLOS_VIRQS.1,
        depth: QUEUE_DEPTH,
        msg_size: MSG_SIZE,
    };
    let node = hypervisor_node(VMID_HLOS, gunyah_rm::vm::VMID_RM, true, &link);
    let new_dt = fdt_edit::add_to_root(plat_dt.blob, &node)
        .unwrap_or_else(|e| fail(format_args!("adding /hypervisor to HLOS's DT: {e}")));
    if HLOS_DT + new_dt.len() as u64 > HLOS_ENTRY {
        fail(format_args!(
            "HLOS's DT with /hypervisor does not fit below {HLOS_ENTRY:#x}"
        ));
    }
    if !rm.platform_mut().write(HLOS_DT, &new_dt) {
        fail(format_args!("writing HLOS's DT"));
    }
    println!(
        "qemu board: RM up; HLOS (VMID 3) has 1 GiB at {:#x} and the PL011 at {:#x}; its DT \
         has /hypervisor/qcom,resource-manager-rpc@{HLOS_TX_CAP:x}",
        HLOS_RAM.0, plat_dt.uart
    );
    let mut vms = BTreeMap::new();
    let mut hlos = VmCtl {
        started: true,
        ..VmCtl::default()
    };
    hlos.caps.insert(HLOS_TX_CAP, Cap::RmTx);
    hlos.caps.insert(HLOS_RX_CAP, Cap::RmRx);
    hlos.link = rm.link(VMID_HLOS);
    vms.insert(VMID_HLOS, hlos);
    let mut x = [0u64; 31];
    x[0] = HLOS_DT;
    let hlos_vcpu = Vcpu::new(VMID_HLOS, 0, Power::On, HLOS_ENTRY, &x, 0);
    let mut board = Board {
        rm,
        vms,
        vcpus: alloc::vec![hlos_vcpu],
        current: 0,
        stats: Stats::default(),
    };
    let mut frame = Frame::zeroed();
    board.switch_in(0, &mut frame);
    *BOARD.lock() = Some(board);
    println!("qemu board: entering HLOS at {HLOS_ENTRY:#x} (EL1, x0 = DT)");
    boot::enter(&frame)
}

#[no_mangle]
extern "C" fn el2_lower_sync_rust(frame: &mut Frame) {
    let mut guard = BOARD.lock();
    let Some(board) = guard.as_mut() else {
        fail(format_args!("trap before the board is up"))
    };
    let esr = ESR_EL2.get();
    match (esr >> 26) & 0x3F {
        // HVC, or SMC (trapped by HCR_EL2.TSC: the return address is the SMC itself).
        ec @ (0x16 | 0x17) => {
            if ec == 0x17 {
                let elr = aarch64_cpu::registers::ELR_EL2.get();
                aarch64_cpu::registers::ELR_EL2.set(elr + 4);
            }
            match hypercalls::handle(board, frame) {
                Next::Resume => {}
                Next::Yield => board.schedule(frame),
                Next::Off => {
                    let cur = board.current;
                    board.vcpus[cur].power = Power::Off;
                    board.schedule(frame);
                }
                Next::SystemOff => board.system_off(),
            }
        }
        0x24 => board.data_abort(frame),
        ec => {
            let what = format_args!("unexpected trap EC {ec:#x} ESR {esr:#x}");
            board.kill_current(frame, what)
        }
    }
    if !board.has_current() {
        board.schedule(frame);
    }
}
