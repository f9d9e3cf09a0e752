//! The board: boots the RM with HLOS as Gunyah's QEMU platform does, brings up every CPU
//! QEMU gives with PSCI CPU_ON through SMC (as Gunyah does on QEMU), enters HLOS at EL1 with
//! the DT (to which it added `/hypervisor`), and on every CPU runs the vCPUs of the VMs the
//! RM starts, serving their hypercalls and stage-2 faults (`rmcore.rs`) and switching them
//! (`sched.rs`).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::{Relaxed, SeqCst};

use aarch64_cpu::registers::{Readable, ESR_EL2, FAR_EL2, HPFAR_EL2, ID_AA64MMFR0_EL1};
use gunyah_rm::platform::PhysMem;
use gunyah_rm::vm::VMID_HLOS;
use gunyah_rm::{Rm, RmConfig};
use gunyah_stage2::PaRange;
use smccc::Smc;

use crate::boot::{self, Frame};
use crate::console::fail;
use crate::hypercalls::{self, Next};
use crate::layout::*;
use crate::percpu::{self, this_cpu, CPUS};
use crate::platform::QemuPlatform;
use crate::rmcore::{self, Cap, VmCtl, MSG_SIZE, QUEUE_DEPTH, STATS};
use crate::sched::{self, After, Entry};
use crate::vcpu::Vcpu;
use crate::vm_dt::{hlos_dt, HLOS_RX_CAP, HLOS_TX_CAP, HLOS_VIRQS};
use crate::{dt, gic, heap, pmu, println};

/// HLOS's device memory, as Gunyah's QEMU platform gives it: everything below its RAM
/// (0..0x4000_0000: flash, PL011, RTC, fw-cfg, virtio-mmio, PCIe windows) but the GIC's
/// frames, which the board emulates.
fn hlos_devices(p: &dt::PlatformDt) -> Vec<(u64, u64, u64)> {
    let (gic, gic_end) = (p.gicd.min(p.gicr), p.gic_end);
    if !(p.uart >= gic_end && p.uart < HLOS_RAM.0 && gic_end <= HLOS_RAM.0) {
        fail(format_args!(
            "the PL011 ({:#x}) is not above the GIC ({gic:#x}..{gic_end:#x})",
            p.uart
        ));
    }
    alloc::vec![(0, 0, gic), (gic_end, gic_end, HLOS_RAM.0 - gic_end)]
}

#[no_mangle]
extern "C" fn el2_main() -> ! {
    boot::init_cpu();
    heap::init();
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
    let cpus = plat_dt.cpus.clamp(1, MAX_CPUS);
    println!(
        "qemu board: QEMU's DT at {HLOS_DT:#x}: {} CPUs, RAM to {:#x}",
        plat_dt.cpus, plat_dt.ram_end
    );
    gic::init(plat_dt.gicd, plat_dt.gicr, cpus).unwrap_or_else(|e| fail(format_args!("GIC: {e}")));
    CPUS[0].online.store(true, SeqCst);
    let parange =
        PaRange::from_parange((ID_AA64MMFR0_EL1.get() & 0xF) as u8).unwrap_or(PaRange::Bits40);
    // HLOS owns its RAM and the PL011 (passed through, device memory at its own address).
    let cfg = RmConfig {
        hlos_ram: Some((HLOS_RAM.0, HLOS_RAM.0, HLOS_RAM.1)),
        hlos_mmio: hlos_devices(&plat_dt),
        ..RmConfig::default()
    };
    let mut rm = Rm::new(QemuPlatform::new(parange), cfg)
        .unwrap_or_else(|e| fail(format_args!("RM boot: {e}")));
    // HLOS's DT gets /hypervisor with its RM-RPC queues, written back in place.
    // HLOS's RAM in its /memory is its 1 GiB, not the machine's 2 GiB.
    let new_dt = hlos_dt(plat_dt.blob, HLOS_RAM, QUEUE_DEPTH as u32, MSG_SIZE)
        .unwrap_or_else(|e| fail(format_args!("HLOS's DT (/hypervisor, /memory): {e}")));
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
    // HLOS: one vCPU per CPU of its DT, each pinned to that physical CPU (as Gunyah does for
    // the primary VM); vCPU 0 starts at the image with x0 = the DT, the others wait for
    // PSCI CPU_ON.
    let Some(stage2) = rm.platform().stage2_regs(VMID_HLOS) else {
        fail(format_args!("HLOS has no stage 2"));
    };
    let mut hlos = VmCtl::default();
    hlos.rx_virq = HLOS_VIRQS.1;
    hlos.caps.insert(HLOS_TX_CAP, Cap::RmTx);
    hlos.caps.insert(HLOS_RX_CAP, Cap::RmRx);
    let gen = percpu::vm_started(VMID_HLOS);
    hlos.gen = Some(gen);
    hlos.vcpus = cpus as u32;
    let mut x = [0u64; 31];
    x[0] = HLOS_DT;
    let entries: Vec<Entry> = (0..cpus as u32)
        .map(|i| {
            let v = Vcpu::new(VMID_HLOS, i, HLOS_ENTRY, &x, 0);
            Entry::new(v, gen, i == 0, Some(i as usize), stage2)
        })
        .collect();
    let mut vms = BTreeMap::new();
    vms.insert(VMID_HLOS, hlos);
    rmcore::install(rm, vms);
    rmcore::with_core_any(|c| c.pump());
    sched::add(VMID_HLOS, gen, entries);
    // Every other CPU, through PSCI CPU_ON (SMC to QEMU's PSCI, as Gunyah does on QEMU).
    for cpu in 1..cpus {
        if let Err(e) = smccc::psci::cpu_on::<Smc>(cpu as u64, boot::secondary_entry(), cpu as u64)
        {
            fail(format_args!("PSCI CPU_ON of CPU {cpu}: {e:?}"));
        }
    }
    for (cpu, c) in CPUS.iter().enumerate().take(cpus) {
        let mut spins = 0u64;
        while !c.online.load(SeqCst) {
            spins += 1;
            if spins > 100_000_000 {
                fail(format_args!("CPU {cpu} did not come up"));
            }
            percpu::cpu_relax();
        }
    }
    println!("qemu board: {cpus} physical CPUs up (PSCI CPU_ON through SMC)");
    println!("qemu board: entering HLOS at {HLOS_ENTRY:#x} (EL1, x0 = DT)");
    let mut frame = Frame::zeroed();
    sched::schedule(&mut frame);
    boot::enter(&frame)
}

#[no_mangle]
extern "C" fn el2_secondary_main() -> ! {
    boot::init_cpu();
    pmu::init();
    let cpu = this_cpu();
    gic::init_cpu(cpu);
    CPUS[cpu].online.store(true, SeqCst);
    let mut frame = Frame::zeroed();
    sched::schedule(&mut frame);
    boot::enter(&frame)
}

/// A trap (`kind` 0) or a physical interrupt (`kind` 1) from the vCPU running on this CPU.
#[no_mangle]
extern "C" fn el2_lower_rust(frame: &mut Frame, kind: u64) {
    percpu::left_guest();
    // Anything but a stage-2 data abort sends the COW_BROKEN batch CoW faults left (the
    // faults themselves let it fill: `rmcore` module doc), and but a PMU or debug register
    // access: it reaches only the vCPU's own state (`vpmu.rs`), so nothing another VM sees
    // has to come after the batch (the guest agents read the counters around each fault).
    let esr = ESR_EL2.get();
    if kind == 1 || !((esr >> 26) & 0x3F == 0x24 || own_register(esr)) {
        rmcore::send_cow_batch();
    }
    let Some((vmid, index, gen)) = sched::current() else {
        fail(format_args!("a trap with no vCPU loaded"));
    };
    let after = if !percpu::vm_alive(vmid, gen) {
        // Its VM was taken away while it ran.
        After::Off
    } else if kind == 1 {
        // A kick needs nothing more: the way back to the guest fills its list registers
        // (or lets a vCPU of higher priority run), and a VM taken away was seen above.
        gic::drain(|id| {
            if id == gic::TICK {
                gic::arm_tick(sched::TICK_HZ);
                sched::tick();
            } else if id == gic::VTIMER {
                sched::vtimer_fired();
            }
        });
        After::Resume
    } else {
        sync_trap(vmid, index, gen, frame)
    };
    sched::after_trap(frame, after);
}

/// Whether `esr` is a trapped PMU or debug register access (EC 0x18).
fn own_register(esr: u64) -> bool {
    let iss = esr & 0x1FF_FFFF;
    (esr >> 26) & 0x3F == 0x18 && crate::vpmu::own_access(iss).is_some()
}

/// Resume the trapping vCPU after the instruction it trapped on (an SMC, a WFI/WFE, an
/// emulated vGIC or system register access).
fn skip_instruction() {
    let elr = aarch64_cpu::registers::ELR_EL2.get();
    aarch64_cpu::registers::ELR_EL2.set(elr + 4);
}

fn sync_trap(vmid: u16, index: u32, gen: u32, frame: &mut Frame) -> After {
    let esr = ESR_EL2.get();
    match (esr >> 26) & 0x3F {
        // HVC, or SMC (trapped by HCR_EL2.TSC: the return address is the SMC itself).
        ec @ (0x16 | 0x17) => {
            if ec == 0x17 {
                skip_instruction();
            }
            // Gunyah's own form, `hvc #0x6000 + n` (its RM's and Qualcomm's Linux drivers'):
            // the same call in the SMCCC form. Any other non-zero immediate is no call.
            let imm = crate::gunyah_hvc::hvc_imm(esr);
            if ec == 0x16 && imm != 0 && !crate::gunyah_hvc::to_smccc(imm, &mut frame.x[..8]) {
                frame.x[0] = hypercalls::UNIMPLEMENTED;
                return After::Resume;
            }
            match hypercalls::handle(vmid, index, gen, frame) {
                Next::Sched(a) => a,
                Next::SystemOff => rmcore::with_core_any(|c| c.system_off()),
                Next::SystemReset => {
                    // Gunyah would reset the machine; the board ends the run instead (the
                    // same image would boot again, and a panicking kernel again and again).
                    println!(
                        "qemu board: HLOS asked for a system reset (PSCI SYSTEM_RESET): the run \
                         ends here with status 2"
                    );
                    crate::console::exit(2)
                }
            }
        }
        // WFI (sleep until an interrupt is pending) or WFE (yield).
        0x01 => {
            skip_instruction();
            if esr & 1 == 0 {
                After::Wfi
            } else {
                After::Yield
            }
        }
        // MSR/MRS/system instruction trapped.
        0x18 => sysreg(vmid, index, gen, esr, frame),
        0x24 if vgic_access(vmid, gen, esr, frame) => After::Resume,
        0x24 => match rmcore::data_abort(vmid, index, gen) {
            Some(Ok(())) => After::Resume,
            Some(Err(why)) => kill(vmid, index, why),
            None => After::Off,
        },
        ec => {
            println!("qemu board: unexpected trap EC {ec:#x} ESR {esr:#x}");
            kill(vmid, index, "a trap the board does not handle")
        }
    }
}

/// A data abort on the virtual GIC (an unmapped IPA in its frames, a single load or store
/// with a valid syndrome): emulated, the access done. False if it is not one.
fn vgic_access(vmid: u16, gen: u32, esr: u64, frame: &mut Frame) -> bool {
    let (hpfar, far) = (HPFAR_EL2.get(), FAR_EL2.get());
    let dfsc = esr & 0x3F;
    // A translation fault (the IPA is in HPFAR_EL2) with ISV set.
    if dfsc & 0b11_1100 != 0b00_0100 || esr & (1 << 24) == 0 {
        return false;
    }
    let ipa = ((hpfar >> 4) << 12) | (far & 0xFFF);
    let size = 1u64 << ((esr >> 22) & 3);
    let srt = ((esr >> 16) & 0x1F) as usize;
    let reg = |f: &Frame| if srt == 31 { 0 } else { f.x[srt] };
    let mask = if size == 8 {
        u64::MAX
    } else {
        (1 << (size * 8)) - 1
    };
    let write = (esr & (1 << 6) != 0).then(|| reg(frame) & mask);
    let Some(v) = sched::vgic_access(vmid, gen, ipa, size, write) else {
        return false;
    };
    if write.is_none() && srt != 31 {
        frame.x[srt] = v & mask;
    }
    skip_instruction();
    true
}

/// A trapped system register access: an SGI (HCR_EL2.IMO) is sent to the vCPUs of the VM it
/// names (`sched::send_sgi`); a PMU or debug register access (MDCR_EL2) reaches the vCPU's
/// own counters or nothing (`vpmu.rs`); an ID register read (HCR_EL2.TID3) gets the CPU's
/// value with what the board does not switch hidden (`idregs.rs`); anything else is
/// UNDEFINED for the vCPU, as Gunyah makes a system register access it does not emulate.
fn sysreg(vmid: u16, index: u32, gen: u32, esr: u64, frame: &mut Frame) -> After {
    let iss = esr & 0x1FF_FFFF;
    if let Some((group1, rt)) = crate::vgic::sgi_write(iss) {
        // An SGI (Linux's IPIs): to the vCPUs it names; group 0 and the other security
        // state's do not exist for a VM.
        if group1 {
            let v = if rt == 31 {
                0
            } else {
                frame.x[usize::from(rt)]
            };
            sched::send_sgi(vmid, gen, index, v);
        }
        skip_instruction();
        return After::Resume;
    }
    // The PMU and the debug registers (MDCR_EL2 traps them): the vCPU's own two counters,
    // the rest read as zero and writes ignored (`vpmu.rs`).
    if let Some(a) = crate::vpmu::own_access(iss) {
        if a.read && a.rt != 31 {
            frame.x[usize::from(a.rt)] = crate::vpmu::value(&a, crate::sched::vpmu_counts());
        }
        skip_instruction();
        return After::Resume;
    }
    if let Some(r) = crate::idregs::decode(iss) {
        let v = crate::idregs::vm_value(r.crm, r.op2, crate::idregs::read_hw(r.crm, r.op2));
        if r.rt != 31 {
            frame.x[usize::from(r.rt)] = v;
        }
        skip_instruction();
        return After::Resume;
    }
    if crate::boot::inject_undef() {
        println!(
            "qemu board: VM {vmid} vCPU {index}: system register access trapped (ESR \
             {esr:#x}): UNDEFINED for it"
        );
        After::Resume
    } else {
        kill(
            vmid,
            index,
            "a system register access from no AArch64 EL1/EL0",
        )
    }
}

/// The running vCPU did something the board cannot let it go on from: it stops.
fn kill(vmid: u16, index: u32, why: &str) -> After {
    println!("qemu board: VM {vmid} vCPU {index} stopped: {why}");
    STATS.vcpus_killed.fetch_add(1, Relaxed);
    After::Off
}

use aarch64_cpu::registers::Writeable as _;
