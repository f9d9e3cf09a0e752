//! The virtual GIC's quick paths (`qemu/board/src/vgic.rs`), on the host: `CpuGic::fill_in`
//! and `CpuGic::has_work_in` return at once when nothing they depend on changed since their
//! last full look. These tests drive them against a stand-in for the CPU's virtual CPU
//! interface (list registers, ICH_VMCR_EL2, ICH_AP1R0_EL2, which the guest changes without
//! trapping) and check that the skip never changes which interrupts are delivered: the same
//! random operations on a copy that always takes the full scan (`fill_full`,
//! `has_work_full`) leave the same list registers, the same pending interrupts and give the
//! same answers.

extern crate alloc;

#[path = "../src/vgic.rs"]
#[allow(dead_code)]
mod vgic;

use vgic::{CpuGic, CpuIf, VmGic};

/// A vCPU's virtual CPU interface as the guest and EL2 see it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Fake {
    lrs: [u64; 4],
    vmcr: u64,
    ap1r0: u64,
    writes: u32,
}

impl CpuIf for Fake {
    fn read_lrs(&self) -> [u64; 4] {
        self.lrs
    }
    fn write_lr(&mut self, i: usize, v: u64) {
        self.lrs[i] = v;
        self.writes += 1;
    }
    fn vmcr(&self) -> u64 {
        self.vmcr
    }
    fn ap1r0(&self) -> u64 {
        self.ap1r0
    }
}

/// Group 1 enabled, priority mask fully open.
const VMCR_OPEN: u64 = (0xFF << 24) | 0b10;

const STATE_PENDING: u64 = 1;
const STATE_ACTIVE: u64 = 2;

fn state(lr: u64) -> u64 {
    lr >> 62
}

fn with_state(lr: u64, s: u64) -> u64 {
    (lr & !(3 << 62)) | (s << 62)
}

/// ICH_VMCR_EL2 with group 1 enabled, priority mask `pmr`, VBPR1 `bpr1`, and (`cbpr`)
/// VCBPR set with VBPR0 `bpr0`.
fn vmcr(pmr: u8, bpr1: u64, cbpr: bool, bpr0: u64) -> u64 {
    (u64::from(pmr) << 24) | (bpr0 << 21) | (bpr1 << 18) | (u64::from(cbpr) << 4) | 0b10
}

/// A model of the GIC's group priority for a group 1 interrupt (the architecture's
/// VGroupBits, with 5 preemption bits: VBPR0 at least 2, VBPR1 at least 3), written apart
/// from the board's: how many low bits of a priority are subpriority.
fn model_sub_bits(vmcr: u64) -> u32 {
    if vmcr & (1 << 4) != 0 {
        // Group 1 uses VBPR0: value n means group priority [7:n+1].
        (((vmcr >> 21) & 7) as u32).max(2) + 1
    } else {
        // VBPR1: value n means group priority [7:n].
        (((vmcr >> 18) & 7) as u32).max(3)
    }
}

/// The group priority of `p` under `vmcr`'s binary point (the model's).
fn model_group(p: u32, vmcr: u64) -> u32 {
    let sub = model_sub_bits(vmcr);
    p >> sub << sub
}

/// The guest acknowledges the interrupt in list register `i` (ICV_IAR1): pending becomes
/// active and its group priority (under the binary point) goes into the active priorities
/// (5 preemption bits).
fn ack(cpu: &mut Fake, i: usize) {
    let lr = cpu.lrs[i];
    if state(lr) == STATE_PENDING {
        cpu.lrs[i] = with_state(lr, STATE_ACTIVE);
        cpu.ap1r0 |= 1 << (model_group(((lr >> 48) & 0xFF) as u32, cpu.vmcr) >> 3);
    }
}

/// The guest ends the interrupt in list register `i` (ICV_EOIR1): the list register is free
/// and the highest active priority is dropped (the one it set, with EOIs in order).
fn eoi(cpu: &mut Fake, i: usize) {
    let lr = cpu.lrs[i];
    if state(lr) == STATE_ACTIVE {
        cpu.lrs[i] = 0;
        cpu.ap1r0 &= cpu.ap1r0.wrapping_sub(1);
    }
}

/// The vINTIDs in the list registers in state `s`.
fn listed(cpu: &Fake, s: u64) -> Vec<u32> {
    let mut v: Vec<u32> = cpu
        .lrs
        .iter()
        .filter(|lr| state(**lr) == s)
        .map(|lr| *lr as u32)
        .collect();
    v.sort_unstable();
    v
}

/// Distributor write helpers (offsets of GICD_* registers).
fn enable_dist(vm: &mut VmGic) {
    vgic::distributor(0x0, 4, Some(0b10), vm);
}

fn enable_spi(vm: &mut VmGic, intid: u32) {
    let off = 0x100 + u64::from(intid / 32) * 4;
    vgic::distributor(off, 4, Some(1 << (intid % 32)), vm);
}

fn spi_pending(vm: &mut VmGic) -> Vec<u64> {
    (0..32)
        .map(|w| vgic::distributor(0x200 + w * 4, 4, None, vm))
        .collect()
}

fn ppi_pending(c: &mut CpuGic, idx: u32, vcpus: u32) -> u64 {
    vgic::redistributor(0x1_0200, 4, None, c, idx, vcpus)
}

/// A VM with group 1 on and one vCPU whose interface holds `vmcr` (ICH_VMCR_EL2).
fn one_vcpu(vmcr: u64) -> (VmGic, CpuGic, Fake) {
    let mut vm = VmGic::default();
    enable_dist(&mut vm);
    let cpu = Fake {
        vmcr,
        ..Fake::default()
    };
    (vm, CpuGic::default(), cpu)
}

/// Five SPIs pending for one vCPU with four list registers: four are listed; once the guest
/// acknowledges and ends one (a list register frees without a trap) the next fill lists the
/// fifth, although neither the distributor nor the vCPU changed since the fill before.
#[test]
fn a_list_register_freed_by_the_guest_is_filled_again() {
    let (mut vm, mut c, mut cpu) = one_vcpu(VMCR_OPEN);
    for id in 40..45 {
        enable_spi(&mut vm, id);
        vm.raise_spi(id);
    }
    c.fill_in(&mut cpu, &mut vm, 0);
    assert_eq!(listed(&cpu, STATE_PENDING), vec![40, 41, 42, 43]);
    // Nothing changed: the quick path writes no list register.
    let writes = cpu.writes;
    c.fill_in(&mut cpu, &mut vm, 0);
    assert_eq!(cpu.writes, writes);
    let i = cpu.lrs.iter().position(|lr| *lr as u32 == 40).unwrap();
    ack(&mut cpu, i);
    eoi(&mut cpu, i);
    c.fill_in(&mut cpu, &mut vm, 0);
    assert_eq!(listed(&cpu, STATE_PENDING), vec![41, 42, 43, 44]);
    assert_eq!(spi_pending(&mut vm)[1], 0, "{:?}", spi_pending(&mut vm));
}

/// An interrupt listed but masked by the guest's priority mask is no work; the guest opens
/// the mask (ICV_PMR1, no trap: only ICH_VMCR_EL2 changes) and the same vCPU has work.
#[test]
fn has_work_sees_the_guests_priority_mask_change() {
    let (mut vm, mut c, mut cpu) = one_vcpu((0x10 << 24) | 0b10);
    enable_spi(&mut vm, 50);
    vm.raise_spi(50);
    c.fill_in(&mut cpu, &mut vm, 0);
    assert_eq!(listed(&cpu, STATE_PENDING), vec![50]);
    assert!(!c.has_work_in(&cpu, &vm, 0));
    assert!(!c.has_work_in(&cpu, &vm, 0));
    cpu.vmcr = VMCR_OPEN;
    assert!(c.has_work_in(&cpu, &vm, 0));
    // The guest takes it: active, running priority 0xA0, nothing else pending.
    ack(&mut cpu, 0);
    assert!(!c.has_work_in(&cpu, &vm, 0));
    // A raise after that is seen at once, by both.
    vm.raise_spi(50);
    // 0xA0 again is not above the running priority 0xA0: no work until the guest ends it.
    assert!(!c.has_work_in(&cpu, &vm, 0));
    eoi(&mut cpu, 0);
    assert!(c.has_work_in(&cpu, &vm, 0));
    c.fill_in(&mut cpu, &mut vm, 0);
    assert_eq!(listed(&cpu, STATE_PENDING), vec![50]);
}

/// A raise, an enable, a priority or a route written after a fill: the next fill sees it.
#[test]
fn changes_after_a_fill_are_seen_by_the_next() {
    let mut vm = VmGic::default();
    let mut cs = [CpuGic::default(), CpuGic::default()];
    let mut cpus = [Fake {
        vmcr: VMCR_OPEN,
        ..Fake::default()
    }; 2];
    enable_dist(&mut vm);
    cs[0].fill_in(&mut cpus[0], &mut vm, 0);
    assert!(listed(&cpus[0], STATE_PENDING).is_empty());
    // Pending but not enabled, then enabled.
    vm.raise_spi(70);
    cs[0].fill_in(&mut cpus[0], &mut vm, 0);
    assert!(listed(&cpus[0], STATE_PENDING).is_empty());
    enable_spi(&mut vm, 70);
    cs[0].fill_in(&mut cpus[0], &mut vm, 0);
    assert_eq!(listed(&cpus[0], STATE_PENDING), vec![70]);
    // Routed to vCPU 1 (IROUTER Aff0 = 1): vCPU 1 gets the next one.
    vgic::distributor(0x6000 + 71 * 8, 8, Some(1), &mut vm);
    enable_spi(&mut vm, 71);
    vm.raise_spi(71);
    cs[0].fill_in(&mut cpus[0], &mut vm, 0);
    cs[1].fill_in(&mut cpus[1], &mut vm, 1);
    assert_eq!(listed(&cpus[0], STATE_PENDING), vec![70]);
    assert_eq!(listed(&cpus[1], STATE_PENDING), vec![71]);
    // A PPI of vCPU 0 enabled in its redistributor, then raised.
    vgic::redistributor(0x1_0100, 4, Some(1 << 27), &mut cs[0], 0, 2);
    cs[0].raise_ppi(&vm, 27);
    cs[0].fill_in(&mut cpus[0], &mut vm, 0);
    assert_eq!(listed(&cpus[0], STATE_PENDING), vec![27, 70]);
    assert_eq!(ppi_pending(&mut cs[0], 0, 2), 0);
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
}

const VCPUS: u32 = 2;
/// The SPIs the random operations use (a few words, the last one, one out of range).
const SPIS: [u32; 10] = [32, 33, 40, 63, 64, 100, 993, 1019, 1020, 5];
const PPIS: [u32; 5] = [0, 1, 16, 27, 31];
const PRIORITIES: [u8; 6] = [0x00, 0x40, 0x80, 0xA0, 0xA8, 0xF8];

/// One VM as the board holds it: its distributor, its vCPUs' state and their interfaces.
#[derive(Clone)]
struct World {
    vm: VmGic,
    cpus: Vec<CpuGic>,
    ifs: Vec<Fake>,
}

impl World {
    fn new() -> Self {
        World {
            vm: VmGic::default(),
            cpus: vec![CpuGic::default(); VCPUS as usize],
            ifs: vec![Fake::default(); VCPUS as usize],
        }
    }

    /// What the guest can see of it: the list registers, the interfaces, the pending state.
    fn seen(&mut self) -> (Vec<[u64; 4]>, Vec<u64>, Vec<u64>) {
        let lrs = self.ifs.iter().map(|f| f.lrs).collect();
        let ppis = (0..VCPUS)
            .map(|i| ppi_pending(&mut self.cpus[i as usize], i, VCPUS))
            .collect();
        (lrs, spi_pending(&mut self.vm), ppis)
    }
}

/// One random operation, applied alike to both worlds: `fast` takes the quick paths, `full`
/// the full scans. The has_work answers of both, if it asked.
fn step(rng: &mut Rng, fast: &mut World, full: &mut World) -> Option<(bool, bool)> {
    let v = rng.below(u64::from(VCPUS)) as usize;
    let mut both = |f: &mut dyn FnMut(&mut World)| {
        f(fast);
        f(full);
    };
    match rng.below(14) {
        0 | 1 => {
            let id = rng.pick(&SPIS);
            both(&mut |w: &mut World| {
                w.vm.raise_spi(id);
            });
        }
        2 => {
            let id = rng.pick(&PPIS);
            both(&mut |w: &mut World| {
                let vm = w.vm.clone();
                w.cpus[v].raise_ppi(&vm, id);
            });
        }
        3 => {
            // ISENABLER / ICENABLER of an SPI.
            let id = rng.pick(&SPIS);
            let base = rng.pick(&[0x100u64, 0x180]);
            let off = base + u64::from(id / 32 % 32) * 4;
            both(&mut |w: &mut World| {
                vgic::distributor(off, 4, Some(1 << (id % 32)), &mut w.vm);
            });
        }
        4 => {
            // IPRIORITYR of an SPI (one byte).
            let id = rng.pick(&SPIS).min(1019);
            let p = rng.pick(&PRIORITIES);
            both(&mut |w: &mut World| {
                vgic::distributor(0x400 + u64::from(id), 1, Some(u64::from(p)), &mut w.vm);
            });
        }
        5 => {
            // IROUTER: Aff0 0, 1 or a vCPU that does not exist.
            let id = rng.pick(&SPIS).clamp(32, 1019);
            let aff = rng.below(3);
            both(&mut |w: &mut World| {
                vgic::distributor(0x6000 + u64::from(id) * 8, 8, Some(aff), &mut w.vm);
            });
        }
        6 => {
            // GICD_CTLR: mostly on.
            let on = rng.below(4) != 0;
            both(&mut |w: &mut World| {
                vgic::distributor(0x0, 4, Some(u64::from(on) << 1), &mut w.vm);
            });
        }
        7 => {
            // The redistributor: enable or disable a PPI, or its priority.
            let id = rng.pick(&PPIS);
            let (off, size, val) = match rng.below(3) {
                0 => (0x1_0100, 4, 1u64 << id),
                1 => (0x1_0180, 4, 1u64 << id),
                _ => (
                    0x1_0400 + u64::from(id),
                    1,
                    u64::from(rng.pick(&PRIORITIES)),
                ),
            };
            both(&mut |w: &mut World| {
                vgic::redistributor(off, size, Some(val), &mut w.cpus[v], v as u32, VCPUS);
            });
        }
        8 => {
            // The guest acknowledges or ends the interrupt in a list register.
            let i = rng.below(4) as usize;
            let end = rng.below(2) == 0;
            both(&mut |w: &mut World| {
                if end {
                    eoi(&mut w.ifs[v], i)
                } else {
                    ack(&mut w.ifs[v], i)
                }
            });
        }
        9 => {
            // The guest's priority mask, group enable and binary points (ICV_PMR1,
            // ICV_IGRPEN1, ICV_BPR1, ICV_BPR0, ICV_CTLR.CBPR).
            let vmcr = (u64::from(rng.pick(&PRIORITIES)) << 24) | (rng.below(4) & 0b10);
            let vmcr = if rng.below(3) == 0 { vmcr } else { VMCR_OPEN };
            let vmcr = vmcr | (rng.below(8) << 18) | (rng.below(8) << 21) | (rng.below(2) << 4);
            both(&mut |w: &mut World| w.ifs[v].vmcr = vmcr);
        }
        10 => {
            let live = fast.ifs[v];
            let a = fast.cpus[v].has_work_in(&live, &fast.vm, v as u32);
            let f = full.ifs[v];
            let b = full.cpus[v].has_work_full(&full.vm, v as u32, f.lrs, f.vmcr, f.ap1r0);
            return Some((a, b));
        }
        _ => {
            // A return to the guest: fill.
            let mut live = fast.ifs[v];
            fast.cpus[v].fill_in(&mut live, &mut fast.vm, v as u32);
            fast.ifs[v] = live;
            let mut f = full.ifs[v];
            let lrs = f.lrs;
            full.cpus[v].fill_full(&mut f, &mut full.vm, v as u32, lrs);
            full.ifs[v] = f;
        }
    }
    None
}

/// 200 seeds × 400 random operations: the quick paths deliver exactly what the full scans
/// deliver (the same list registers, pending state and has_work answers after every
/// operation).
#[test]
fn quick_paths_deliver_what_the_full_scan_delivers() {
    let (mut asked, mut delivered) = (0u32, 0u32);
    for seed in 1..=200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut fast = World::new();
        for f in &mut fast.ifs {
            f.vmcr = VMCR_OPEN;
        }
        enable_dist(&mut fast.vm);
        let mut full = fast.clone();
        for op in 0..400 {
            if let Some((a, b)) = step(&mut rng, &mut fast, &mut full) {
                asked += 1;
                delivered += u32::from(a);
                assert_eq!(a, b, "has_work differs: seed {seed}, operation {op}");
            }
            let (a, b) = (fast.seen(), full.seen());
            assert_eq!(a, b, "state differs: seed {seed}, operation {op}");
        }
    }
    // The operations reach both answers often (the test exercises what it compares).
    assert!(
        delivered > 1000 && asked - delivered > 1000,
        "{asked} {delivered}"
    );
}

/// One pending interrupt of priority 0x50 listed, one of 0x60 active (acknowledged under the
/// smallest binary point: running priority 0x60): whether 0x50 preempts depends on the
/// binary point the guest then sets. VBPR1 = 5 keeps [7:5] (0x40 against 0x60: it does),
/// VBPR1 = 6 keeps [7:6] (0x40 against 0x40: equal group priorities never preempt); with
/// VCBPR, VBPR0 = 5 keeps [7:6] too; a binary point below the smallest counts as it. The
/// priority mask still compares whole priorities.
#[test]
fn the_binary_point_decides_what_preempts_the_running_priority() {
    let (mut vm, mut c, mut cpu) = one_vcpu(VMCR_OPEN);
    vgic::distributor(0x400 + 40, 1, Some(0x60), &mut vm);
    vgic::distributor(0x400 + 41, 1, Some(0x50), &mut vm);
    enable_spi(&mut vm, 40);
    vm.raise_spi(40);
    c.fill_in(&mut cpu, &mut vm, 0);
    ack(&mut cpu, 0);
    assert_eq!(cpu.ap1r0, 1 << (0x60 >> 3));
    enable_spi(&mut vm, 41);
    vm.raise_spi(41);
    c.fill_in(&mut cpu, &mut vm, 0);
    assert_eq!(listed(&cpu, STATE_PENDING), vec![41]);
    let cases = [
        (vmcr(0xFF, 3, false, 0), true),
        (vmcr(0xFF, 0, false, 0), true),
        (vmcr(0xFF, 5, false, 0), true),
        (vmcr(0xFF, 6, false, 0), false),
        (vmcr(0xFF, 7, false, 0), false),
        (vmcr(0xFF, 7, true, 2), true),
        (vmcr(0xFF, 3, true, 5), false),
        (vmcr(0x51, 6, true, 2), true),
        (vmcr(0x50, 3, false, 0), false),
    ];
    for (v, want) in cases {
        cpu.vmcr = v;
        assert_eq!(c.has_work_in(&cpu, &vm, 0), want, "ICH_VMCR_EL2 {v:#x}");
        let full = c.has_work_full(&vm, 0, cpu.lrs, cpu.vmcr, cpu.ap1r0);
        assert_eq!(full, want, "ICH_VMCR_EL2 {v:#x}");
    }
}

/// A binary point set before the acknowledge and changed after it: the running priority is
/// the group priority acknowledged, compared under the current binary point.
#[test]
fn a_saved_interface_applies_the_binary_point() {
    let (mut vm, mut c, mut cpu) = one_vcpu(vmcr(0xFF, 6, false, 0));
    vgic::distributor(0x400 + 40, 1, Some(0x80), &mut vm);
    enable_spi(&mut vm, 40);
    vm.raise_spi(40);
    c.fill_in(&mut cpu, &mut vm, 0);
    // Acknowledged under VBPR1 = 6: its group priority 0x80 is the running priority.
    ack(&mut cpu, 0);
    assert_eq!(cpu.ap1r0, 1 << (0x80 >> 3));
    // Asked on that interface as saved (what `would_take` and `has_work` of a vCPU off its
    // CPU look at).
    for (p, want) in [(0x7F, true), (0x40, true), (0x81, false)] {
        assert_eq!(
            vgic_would_take(&c, p, cpu.vmcr, cpu.ap1r0),
            want,
            "priority {p:#x}"
        );
    }
    // VBPR1 = 7 after the acknowledge: 0x7F's group priority 0x00 still preempts 0x80; with
    // VCBPR and VBPR0 = 7 no bit is group priority: nothing preempts.
    assert!(vgic_would_take(
        &c,
        0x7F,
        vmcr(0xFF, 7, false, 0),
        cpu.ap1r0
    ));
    assert!(!vgic_would_take(
        &c,
        0x00,
        vmcr(0xFF, 3, true, 7),
        cpu.ap1r0
    ));
}

/// Whether the vCPU would take an interrupt of priority `p` with interface `vmcr`/`ap1r0`:
/// asked through `has_work_full` with one list register holding it pending.
fn vgic_would_take(c: &CpuGic, p: u8, vmcr: u64, ap1r0: u64) -> bool {
    let lr = (1u64 << 62) | (1 << 60) | (u64::from(p) << 48) | 99;
    c.has_work_full(&VmGic::default(), 0, [lr, 0, 0, 0], vmcr, ap1r0)
}

/// Random priorities, priority masks, binary points and active priorities: `has_work_full`
/// answers as the architecture's model (CanSignalVirtualInt: group 1 enabled, the priority
/// below the mask, and its group priority above the running priority's, both under the
/// current binary point); and the binary point changes the answer in many of the cases
/// (an implementation that ignores it fails).
#[test]
fn preemption_follows_the_architectures_model() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let c = CpuGic::default();
    let (mut differs, mut yes) = (0u32, 0u32);
    for _ in 0..20_000 {
        let p = rng.below(256) as u32;
        let v = vmcr(
            rng.below(256) as u8,
            rng.below(8),
            rng.below(4) == 0,
            rng.below(8),
        ) & !(u64::from(rng.below(16) == 0) << 1);
        // Up to two active priorities (the GIC's own bits: group priorities >> 3).
        let ap1r0 = match rng.below(3) {
            0 => 0,
            1 => 1 << rng.below(32),
            _ => (1 << rng.below(32)) | (1 << rng.below(32)),
        };
        let pmr = ((v >> 24) & 0xFF) as u32;
        let running = (ap1r0 != 0).then(|| (ap1r0 as u32).trailing_zeros() << 3);
        let model = v & 0b10 != 0
            && p < pmr
            && running.is_none_or(|r| model_group(p, v) < model_group(r, v));
        let got = vgic_would_take(&c, p as u8, v, ap1r0);
        assert_eq!(
            got, model,
            "priority {p:#x}, ICH_VMCR_EL2 {v:#x}, AP1R0 {ap1r0:#x}"
        );
        yes += u32::from(model);
        let ignoring = v & 0b10 != 0 && p < pmr && running.is_none_or(|r| p >> 3 << 3 < r);
        differs += u32::from(ignoring != model);
    }
    assert!(yes > 2000 && differs > 500, "{yes} {differs}");
}

/// The ISS of a trapped MSR/MRS (EC 0x18) of S3_0_C<crn>_C<crm>_<op2> with Rt `rt`.
fn sysreg_iss(crn: u64, crm: u64, op2: u64, rt: u64, read: bool) -> u64 {
    (3 << 20) | (op2 << 17) | (crn << 10) | (rt << 5) | (crm << 1) | read as u64
}

#[test]
fn sgi_register_writes_are_decoded() {
    // msr icc_sgi1r_el1, x2 (S3_0_C12_C11_5): what Linux's gic_ipi_send_mask traps with
    // (ESR 0x623a3016: x0).
    assert_eq!(
        vgic::sgi_write(sysreg_iss(12, 11, 5, 2, false)),
        Some((true, 2))
    );
    assert_eq!(vgic::sgi_write(0x623a3016 & 0x1FF_FFFF), Some((true, 0)));
    // ICC_ASGI1R_EL1 and ICC_SGI0R_EL1: recognised, not group 1 of this security state.
    assert_eq!(
        vgic::sgi_write(sysreg_iss(12, 11, 6, 3, false)),
        Some((false, 3))
    );
    assert_eq!(
        vgic::sgi_write(sysreg_iss(12, 11, 7, 31, false)),
        Some((false, 31))
    );
    // A read, another GIC register (ICC_IAR1_EL1 S3_0_C12_C12_0), an ID register.
    assert_eq!(vgic::sgi_write(sysreg_iss(12, 11, 5, 2, true)), None);
    assert_eq!(vgic::sgi_write(sysreg_iss(12, 12, 0, 2, false)), None);
    assert_eq!(vgic::sgi_write(sysreg_iss(0, 4, 0, 2, true)), None);
}

#[test]
fn sgi_targets_are_the_named_vcpus_that_exist() {
    let sgi = |intid: u64| intid << 24;
    // Linux's IPI 1 from vCPU 0 to vCPU 1 (TargetList bit 1, Aff1-3 0, RS 0).
    assert_eq!(vgic::sgi_targets(sgi(1) | 0b10, 0, 8), (1, 0b10));
    // Several targets, the sender among them.
    assert_eq!(vgic::sgi_targets(sgi(3) | 0b1011, 1, 8), (3, 0b1011));
    // Targets past the VM's vCPUs are dropped.
    assert_eq!(vgic::sgi_targets(sgi(0) | 0xFF00, 0, 10), (0, 0x300));
    // IRM: everyone but the sender.
    assert_eq!(vgic::sgi_targets(sgi(2) | (1 << 40), 2, 4), (2, 0b1011));
    assert_eq!(vgic::sgi_targets(sgi(2) | (1 << 40) | 0xFFFF, 0, 1), (2, 0));
    // RS selects Aff0 16..31: none of a VM's 8 vCPUs.
    assert_eq!(vgic::sgi_targets(sgi(5) | (1 << 44) | 1, 0, 8), (5, 0));
    assert_eq!(
        vgic::sgi_targets(sgi(5) | (1 << 44) | 1, 0, 64),
        (5, 1 << 16)
    );
    // A cluster other than 0.0.0 (Aff1, Aff2, Aff3) names no vCPU of the VM.
    for aff in [1u64 << 16, 1 << 32, 1 << 48] {
        assert_eq!(
            vgic::sgi_targets(sgi(1) | aff | 1, 0, 8),
            (1, 0),
            "{aff:#x}"
        );
    }
    // Garbage from a guest: never a panic, never a vCPU that does not exist.
    for v in [u64::MAX, 0, 0xF0F0_F0F0_F0F0_F0F0] {
        for vcpus in [0, 1, 8, 64] {
            let (intid, mask) = vgic::sgi_targets(v, 63, vcpus);
            assert!(intid < 16);
            if vcpus < 64 {
                assert_eq!(mask >> vcpus, 0, "{v:#x} {vcpus}");
            }
        }
    }
}

/// Linux's `gic_configure_irq` writes an SPI's ICFGR bit and reads it back: an edge SPI
/// whose write does not stick is refused (request_irq fails with -EINVAL; Qualcomm's RM
/// driver asks for the RM-RPC interrupts, SPI 960/961, as edge).
#[test]
fn spi_edge_configuration_reads_back_as_written() {
    let mut vm = VmGic::default();
    // ICFGR60 holds INTIDs 960..975; INTID 992 (SPI 960) is ICFGR62, field 0.
    let off = 0xC00 + (992 / 16) * 4;
    assert_eq!(vgic::distributor(off, 4, None, &mut vm), 0);
    vgic::distributor(off, 4, Some(0b10 | 0b1000), &mut vm);
    assert_eq!(vgic::distributor(off, 4, None, &mut vm), 0b1010);
    // The even bits are RES0; back to level.
    vgic::distributor(off, 4, Some(0xFFFF_FFFF), &mut vm);
    assert_eq!(vgic::distributor(off, 4, None, &mut vm), 0xAAAA_AAAA);
    vgic::distributor(off, 4, Some(0), &mut vm);
    assert_eq!(vgic::distributor(off, 4, None, &mut vm), 0);
    // ICFGR0 and ICFGR1 (SGIs, PPIs: in the redistributors) read as zero, ignore writes.
    for off in [0xC00, 0xC04] {
        vgic::distributor(off, 4, Some(0xAAAA_AAAA), &mut vm);
        assert_eq!(vgic::distributor(off, 4, None, &mut vm), 0);
    }
    // An unaligned access is no ICFGR access.
    assert_eq!(vgic::distributor(0xC0A, 2, Some(0xAAAA), &mut vm), 0);
    assert_eq!(vgic::distributor(0xC08, 4, None, &mut vm), 0);
}
