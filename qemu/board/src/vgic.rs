//! The virtual GICv3 each VM sees: a distributor at 0x0800_0000 and one redistributor per
//! vCPU from 0x080A_0000 (stride 0x2_0000), where QEMU virt's DT puts the physical ones,
//! emulated on stage-2 faults (every VM's stage 2 leaves them unmapped); the CPU interface
//! is the GIC's own virtual one (ICV_* registers, fed through the ICH_* list registers).
//!
//! Kept small: group 1 only, one priority, edge semantics. A VM enables SPIs in the
//! distributor (ISENABLER/ICENABLER, IROUTER picks the vCPU by Aff0), SGIs and PPIs in its
//! vCPU's redistributor; IIDR, TYPER, PIDR2, WAKER and the group registers read as a
//! GICv3 with security disabled; other registers read as zero and ignore writes. An
//! interrupt the board raises (a message-queue push, the virtual timer) is pending until it
//! is enabled and its vCPU is entered, then goes into a free list register; the guest
//! acknowledges and ends it through ICV_IAR1/ICV_EOIR1 without trapping.
//!
//! `arm-gic` drives a physical GIC's distributor and CPU interface; the hypervisor side of
//! the virtual CPU interface (ICH_LR<n>_EL2, ICH_VMCR_EL2, ICH_HCR_EL2) is not in it, so
//! the few accessors it needs are here.

/// Guest-physical base of the virtual distributor.
pub const GICD_BASE: u64 = 0x0800_0000;
const GICD_SIZE: u64 = 0x1_0000;
/// Guest-physical base of the first virtual redistributor.
pub const GICR_BASE: u64 = 0x080A_0000;
const GICR_STRIDE: u64 = 0x2_0000;
/// Highest INTID the virtual distributor has (TYPER.ITLinesNumber 31: 1024 INTIDs).
const MAX_INTID: u32 = 1019;
/// Priority of every virtual interrupt.
const PRIORITY: u64 = 0xA0;

/// A VM's distributor state.
#[derive(Default)]
pub struct VmGic {
    /// GICD_CTLR.EnableGrp1A.
    enabled: bool,
    spi_enable: [u32; 32],
    spi_pending: [u32; 32],
    /// IROUTER Aff0 per SPI (absent: vCPU 0).
    route: alloc::collections::BTreeMap<u32, u32>,
}

/// One vCPU's redistributor and virtual CPU interface state.
#[derive(Clone, Copy, Default)]
pub struct CpuGic {
    ppi_enable: u32,
    ppi_pending: u32,
    /// List registers, ICH_VMCR_EL2 and ICH_AP1R0_EL2 while the vCPU is off its CPU.
    lrs: [u64; 4],
    vmcr: u64,
    ap1r0: u64,
}

fn bit(words: &[u32; 32], intid: u32) -> bool {
    words[(intid / 32) as usize] & (1 << (intid % 32)) != 0
}

fn set_bit(words: &mut [u32; 32], intid: u32, on: bool) {
    let w = &mut words[(intid / 32) as usize];
    if on {
        *w |= 1 << (intid % 32);
    } else {
        *w &= !(1 << (intid % 32));
    }
}

impl VmGic {
    /// Make SPI `intid` pending; the vCPU it is routed to, if it can be delivered now.
    pub fn raise_spi(&mut self, intid: u32) -> Option<u32> {
        if !(32..=MAX_INTID).contains(&intid) {
            return None;
        }
        set_bit(&mut self.spi_pending, intid, true);
        self.deliverable_spi(intid)
    }

    fn deliverable_spi(&self, intid: u32) -> Option<u32> {
        (self.enabled && bit(&self.spi_enable, intid) && bit(&self.spi_pending, intid))
            .then(|| self.route.get(&intid).copied().unwrap_or(0))
    }

    /// The SPIs pending, enabled and routed to vCPU `index` (a walk over the set bits).
    fn spis_for(&self, index: u32) -> impl Iterator<Item = u32> + '_ {
        let enabled = self.enabled;
        (1..32usize)
            .flat_map(move |w| {
                let mut bits = if enabled {
                    self.spi_pending[w] & self.spi_enable[w]
                } else {
                    0
                };
                core::iter::from_fn(move || {
                    (bits != 0).then(|| {
                        let b = bits.trailing_zeros();
                        bits &= bits - 1;
                        w as u32 * 32 + b
                    })
                })
            })
            .filter(move |&i| self.route.get(&i).copied().unwrap_or(0) == index)
    }

    /// Whether an SPI waits for vCPU `index`.
    fn pending_for(&self, index: u32) -> bool {
        self.spis_for(index).next().is_some()
    }
}

impl CpuGic {
    /// Make private interrupt `intid` (SGI/PPI) pending; whether it can be delivered now.
    pub fn raise_ppi(&mut self, vm: &VmGic, intid: u32) -> bool {
        if intid < 32 {
            self.ppi_pending |= 1 << intid;
        }
        self.deliverable(vm, u32::MAX)
    }

    fn deliverable(&self, vm: &VmGic, index: u32) -> bool {
        (vm.enabled && self.ppi_pending & self.ppi_enable != 0)
            || (index != u32::MAX && vm.pending_for(index))
    }

    /// Whether vCPU `index` has an interrupt to take: pending and enabled, or already in a
    /// list register (`live`: its list registers are in the CPU).
    pub fn has_work(&self, vm: &VmGic, index: u32, live: bool) -> bool {
        let lrs = if live { read_lrs() } else { self.lrs };
        self.deliverable(vm, index) || lrs.iter().any(|lr| lr >> 62 == 1)
    }

    /// Load the vCPU's list registers and virtual interface into the CPU.
    pub fn restore(&self) {
        for (i, lr) in self.lrs.iter().enumerate() {
            write_lr(i, *lr);
        }
        ich_write_vmcr(self.vmcr);
        ich_write_ap1r0(self.ap1r0);
    }

    /// Save them from the CPU and clear the list registers.
    pub fn save(&mut self) {
        self.lrs = read_lrs();
        self.vmcr = ich_read_vmcr();
        self.ap1r0 = ich_read_ap1r0();
        for i in 0..self.lrs.len() {
            write_lr(i, 0);
        }
    }

    /// Move the interrupts pending for vCPU `index` into free list registers (live ones).
    pub fn fill(&mut self, vm: &mut VmGic, index: u32) {
        if !self.deliverable(vm, index) {
            return;
        }
        let mut lrs = read_lrs();
        let listed =
            |lrs: &[u64; 4], id: u32| lrs.iter().any(|lr| lr >> 62 != 0 && *lr as u32 == id);
        let mut wanted = alloc::vec::Vec::new();
        let mut ppis = self.ppi_pending & self.ppi_enable;
        while ppis != 0 {
            wanted.push(ppis.trailing_zeros());
            ppis &= ppis - 1;
        }
        wanted.extend(vm.spis_for(index));
        for id in wanted {
            if listed(&lrs, id) {
                continue;
            }
            let Some(free) = lrs.iter().position(|lr| lr >> 62 == 0) else {
                break;
            };
            // State pending, group 1, priority, vINTID.
            lrs[free] = (1 << 62) | (1 << 60) | (PRIORITY << 48) | u64::from(id);
            write_lr(free, lrs[free]);
            if id < 32 {
                self.ppi_pending &= !(1 << id);
            } else {
                set_bit(&mut vm.spi_pending, id, false);
            }
        }
    }
}

/// Which register frame a guest access hits.
pub enum Frame {
    /// The distributor, at this offset.
    Dist(u64),
    /// Redistributor `index` (a vCPU's), at this offset.
    Redist(u32, u64),
}

/// The frame of the virtual GIC `ipa` is in, for a VM with `vcpus` vCPUs.
pub fn decode(ipa: u64, vcpus: u32) -> Option<Frame> {
    if (GICD_BASE..GICD_BASE + GICD_SIZE).contains(&ipa) {
        return Some(Frame::Dist(ipa - GICD_BASE));
    }
    let rel = ipa.checked_sub(GICR_BASE)?;
    let idx = rel / GICR_STRIDE;
    (idx < u64::from(vcpus)).then_some(Frame::Redist(idx as u32, rel % GICR_STRIDE))
}

fn reg_bits(off: u64, base: u64) -> u32 {
    ((off - base) / 4 * 32) as u32
}

/// A read (`write` None) or write of distributor register `off`; what a read returns.
pub fn distributor(off: u64, write: Option<u64>, vm: &mut VmGic) -> u64 {
    match (off, write) {
        // CTLR: EnableGrp1A (bit 1); ARE_NS (bit 4) reads as one.
        (0x0, None) => (u64::from(vm.enabled) << 1) | (1 << 4),
        (0x0, Some(v)) => {
            vm.enabled = v & 0b10 != 0;
            0
        }
        // TYPER: ITLinesNumber 31, IDbits 9 (10-bit INTIDs), no LPIs, no security.
        (0x4, None) => 31 | (9 << 19),
        (0x8, None) => 0x43B,      // IIDR: Arm
        (0xFFE8, None) => 0x3B,    // PIDR2: GICv3
        (0x80..=0xFC, None) => !0, // IGROUPR: all group 1
        (0x100..=0x17C, w) | (0x180..=0x1FC, w) => {
            let base = if off < 0x180 { 0x100 } else { 0x180 };
            let first = reg_bits(off, base);
            let word = (first / 32) as usize;
            match w {
                None if first >= 32 => u64::from(vm.spi_enable[word]),
                Some(v) if first >= 32 => {
                    if base == 0x100 {
                        vm.spi_enable[word] |= v as u32;
                    } else {
                        vm.spi_enable[word] &= !(v as u32);
                    }
                    0
                }
                _ => 0,
            }
        }
        (0x200..=0x27C, None) => {
            let word = (reg_bits(off, 0x200) / 32) as usize;
            if word > 0 {
                u64::from(vm.spi_pending[word])
            } else {
                0
            }
        }
        (0x6100..=0x7FD8, w) => {
            let intid = ((off - 0x6000) / 8) as u32;
            match w {
                None => u64::from(vm.route.get(&intid).copied().unwrap_or(0)),
                Some(v) => {
                    vm.route.insert(intid, (v & 0xFF) as u32);
                    0
                }
            }
        }
        _ => 0,
    }
}

/// A read or write of register `off` of redistributor `idx` (of `vcpus`).
pub fn redistributor(off: u64, write: Option<u64>, c: &mut CpuGic, idx: u32, vcpus: u32) -> u64 {
    match (off, write) {
        // TYPER: Aff0 = the vCPU's index, processor number, Last.
        (0x8, None) => {
            let last = u64::from(idx + 1 == vcpus) << 4;
            (u64::from(idx) << 32) | (u64::from(idx) << 8) | last
        }
        (0xC, None) => u64::from(idx), // TYPER's upper half (Aff0)
        (0x4, None) => 0x43B,          // IIDR
        (0xFFE8, None) => 0x3B,        // PIDR2
        (0x1_0080, None) => !0,        // IGROUPR0: all group 1
        (0x1_0100, None) | (0x1_0180, None) => u64::from(c.ppi_enable),
        (0x1_0100, Some(v)) => {
            c.ppi_enable |= v as u32;
            0
        }
        (0x1_0180, Some(v)) => {
            c.ppi_enable &= !(v as u32);
            0
        }
        (0x1_0200, None) => u64::from(c.ppi_pending),
        _ => 0,
    }
}

macro_rules! ich_lr {
    ($($n:literal),*) => {
        fn read_lr_n(i: usize) -> u64 {
            let v: u64;
            match i {
                $($n => {
                    #[cfg(target_arch = "aarch64")]
                    // SAFETY: reading a list register at EL2 has no side effects.
                    unsafe { core::arch::asm!(concat!("mrs {0}, ich_lr", $n, "_el2"), out(reg) v, options(nomem, nostack)) };
                    #[cfg(not(target_arch = "aarch64"))]
                    { v = 0; }
                })*
                _ => v = 0,
            }
            v
        }
        fn write_lr(i: usize, v: u64) {
            match i {
                $($n => {
                    #[cfg(target_arch = "aarch64")]
                    // SAFETY: list registers belong to the vCPU loaded on this CPU (or to none).
                    unsafe { core::arch::asm!(concat!("msr ich_lr", $n, "_el2, {0}"), in(reg) v, options(nomem, nostack)) };
                    #[cfg(not(target_arch = "aarch64"))]
                    { let _ = v; }
                })*
                _ => {}
            }
        }
    };
}
ich_lr!(0, 1, 2, 3);

fn read_lrs() -> [u64; 4] {
    core::array::from_fn(read_lr_n)
}

macro_rules! ich_reg {
    ($read:ident, $write:ident, $reg:literal) => {
        fn $read() -> u64 {
            let v: u64;
            #[cfg(target_arch = "aarch64")]
            // SAFETY: reading an ICH register at EL2 has no side effects.
            unsafe {
                core::arch::asm!(concat!("mrs {0}, ", $reg), out(reg) v, options(nomem, nostack))
            };
            #[cfg(not(target_arch = "aarch64"))]
            {
                v = 0;
            }
            v
        }
        fn $write(v: u64) {
            #[cfg(target_arch = "aarch64")]
            // SAFETY: the virtual CPU interface belongs to the vCPU loaded on this CPU.
            unsafe {
                core::arch::asm!(concat!("msr ", $reg, ", {0}"), in(reg) v, options(nomem, nostack))
            };
            #[cfg(not(target_arch = "aarch64"))]
            {
                let _ = v;
            }
        }
    };
}
ich_reg!(ich_read_vmcr, ich_write_vmcr, "ich_vmcr_el2");
ich_reg!(ich_read_ap1r0, ich_write_ap1r0, "ich_ap1r0_el2");
ich_reg!(ich_read_hcr, ich_write_hcr, "ich_hcr_el2");

/// No vCPU is loaded on this CPU: empty its list registers and active priorities (what a
/// vCPU whose VM was taken away while it ran, and so never saved, left there). A pending
/// list register keeps the virtual IRQ asserted while ICH_HCR_EL2.En is on, and a pending
/// virtual IRQ ends WFI even at EL2: the idle CPU would never sleep but spin through the
/// scheduler, taking its lock again and again (on QEMU's round-robin TCG, so often that
/// another CPU waiting for that lock never got it).
pub fn discard_cpu() {
    for i in 0..4 {
        write_lr(i, 0);
    }
    ich_write_ap1r0(0);
}

/// This CPU's virtual CPU interface on (ICH_HCR_EL2.En), with no list register in use.
pub fn init_cpu() {
    let _ = ich_read_hcr();
    ich_write_hcr(1);
    for i in 0..4 {
        write_lr(i, 0);
    }
}
