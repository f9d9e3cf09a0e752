//! The virtual GICv3 each VM sees: a distributor at 0x0800_0000 and one redistributor per
//! vCPU from 0x080A_0000 (stride 0x2_0000), where QEMU virt's DT puts the physical ones,
//! emulated on stage-2 faults (every VM's stage 2 leaves them unmapped); the CPU interface
//! is the GIC's own virtual one (ICV_* registers, fed through the ICH_* list registers).
//!
//! Kept small: group 1 only, edge semantics. A VM enables SPIs in the distributor
//! (ISENABLER/ICENABLER, IROUTER picks the vCPU by Aff0) and sets their priorities
//! (IPRIORITYR) and their edge/level configuration (ICFGR, kept to read back as written;
//! delivery stays edge), SGIs and PPIs in its vCPU's redistributor (ISENABLER0/ICENABLER0,
//! IPRIORITYR0-7); IIDR, TYPER, PIDR2, WAKER and the group registers read as a GICv3 with
//! security disabled; other registers read as zero and ignore writes. A priority keeps the
//! bits the GIC's virtual CPU interface implements (ICH_VTR_EL2.PRIbits: 5 on QEMU) and is
//! [`DEFAULT_PRIORITY`] until the guest sets it. An interrupt the board raises (a
//! message-queue push, the virtual timer) is pending until it is enabled and its vCPU is
//! entered, then goes into a free list register with its priority, the highest priorities
//! first (one of higher priority takes the list register of a lower one that is only
//! pending, which goes back to pending here); the guest acknowledges and ends it through
//! ICV_IAR1/ICV_EOIR1 without trapping, and the CPU interface applies the guest's priority
//! mask, binary point, running priority and group enable (ICH_VMCR_EL2, ICH_AP1R0_EL2). The
//! scheduler wakes a vCPU in WFI only for an interrupt those let through
//! ([`CpuGic::has_work`]: an interrupt preempts the running priority only if its group
//! priority is higher, the binary point deciding which bits are group priority), whatever the
//! vCPU's PSTATE.I.
//!
//! Both run on every return to a guest, so both return at once when nothing they depend on
//! changed since their last full look: a change count per distributor and per vCPU, and the
//! list registers (and for `has_work` ICH_VMCR_EL2 and ICH_AP1R0_EL2, which the guest
//! changes without trapping) compared with what that look saw. `tests/vgic.rs` checks on
//! the host that this never changes what is delivered.
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
/// At most this many passes of a full fill (each pass that writes lowers the priority
/// values held in the list registers or fills a free one, so a few settle it).
const FILL_PASSES: usize = 8;
/// The priority of an interrupt whose VM has not set one (the priority the board gave every
/// virtual interrupt before it had IPRIORITYR; Linux's default too).
pub const DEFAULT_PRIORITY: u8 = 0xA0;

/// ICH_VTR_EL2.PRIbits and .PREbits (each + 1) of this GIC's virtual CPU interface, read at
/// `init_cpu` (0 before: every priority bit kept).
static VTR_BITS: core::sync::atomic::AtomicU16 = core::sync::atomic::AtomicU16::new(0);

/// The priority bits the virtual CPU interface implements, as a mask of a priority byte.
fn priority_mask() -> u8 {
    let bits = (VTR_BITS.load(core::sync::atomic::Ordering::Relaxed) & 0xFF) as u32;
    if bits == 0 || bits >= 8 {
        0xFF
    } else {
        !((1u8 << (8 - bits)) - 1)
    }
}

/// The preemption bits (how many active priorities ICH_AP1R<n>_EL2 tells apart).
fn preemption_bits() -> u32 {
    let bits = u32::from(VTR_BITS.load(core::sync::atomic::Ordering::Relaxed) >> 8);
    if bits == 0 {
        5
    } else {
        bits.min(7)
    }
}

/// ICH_VMCR_EL2.VCBPR: group 1 uses the group 0 binary point (VBPR0).
const VMCR_VCBPR: u64 = 1 << 4;
/// ICH_VMCR_EL2.VBPR1 and VBPR0 (3 bits each).
const VMCR_VBPR1_SHIFT: u32 = 18;
const VMCR_VBPR0_SHIFT: u32 = 21;

/// The bits of a group 1 priority that are its group priority under the binary point
/// `vmcr` (ICH_VMCR_EL2) holds (GICv3's VGroupBits): VBPR1 = n keeps bits \[7:n\]; with
/// VCBPR set group 1 uses VBPR0, and VBPR0 = n keeps \[7:n+1\]. A binary point below the
/// smallest the interface implements (7 - PREbits for VBPR0, one more for VBPR1) counts as
/// that smallest, as the GIC raises such a value when it is written.
pub fn group_priority_mask(vmcr: u64) -> u8 {
    let min0 = 7 - preemption_bits();
    let bpr = if vmcr & VMCR_VCBPR != 0 {
        ((vmcr >> VMCR_VBPR0_SHIFT) as u32 & 7).max(min0) + 1
    } else {
        ((vmcr >> VMCR_VBPR1_SHIFT) as u32 & 7).max(min0 + 1)
    };
    (0xFFu32 << bpr) as u8
}

/// Whether an interrupt of `priority` is signalled to a vCPU whose virtual CPU interface
/// holds `vmcr` (ICH_VMCR_EL2: VENG1, VPMR, the binary point) and `ap1r0` (its active
/// priorities): group 1 enabled, the whole priority below the priority mask, and, if an
/// interrupt is active, its group priority (the bits [`group_priority_mask`] keeps) above
/// the running priority's (the subpriority never preempts). PSTATE.I plays no part: a
/// masked vCPU is still signalled, which ends its WFI (it takes the interrupt once it
/// unmasks).
fn signalled(priority: u8, vmcr: u64, ap1r0: u64) -> bool {
    let eng1 = vmcr & 0b10 != 0;
    let pmr = ((vmcr >> 24) & 0xFF) as u32;
    let p = u32::from(priority);
    if !eng1 || p >= pmr {
        return false;
    }
    if ap1r0 as u32 == 0 {
        return true;
    }
    // The lowest set bit of the active priorities is the running priority (a group
    // priority: the GIC sets the bit of the group priority it acknowledges).
    let running = (ap1r0 as u32).trailing_zeros() << (8 - preemption_bits());
    let group = u32::from(group_priority_mask(vmcr));
    p & group < running & group
}

/// A VM's distributor state.
#[derive(Default, Clone)]
pub struct VmGic {
    /// GICD_CTLR.EnableGrp1A.
    enabled: bool,
    spi_enable: [u32; 32],
    spi_pending: [u32; 32],
    /// Bit `w` set: `spi_pending[w]` has a bit set (the scan skips the empty words).
    pending_words: u32,
    /// IROUTER Aff0 per SPI (absent: vCPU 0).
    route: alloc::collections::BTreeMap<u32, u32>,
    /// IPRIORITYR per SPI (absent: [`DEFAULT_PRIORITY`]).
    priority: alloc::collections::BTreeMap<u32, u8>,
    /// ICFGR<n> of the SPIs (n 2..=63; absent: 0, level): the guest's edge/level choice,
    /// kept so it reads back as written (Linux's `gic_configure_irq` refuses an SPI
    /// whose write does not stick). Delivery stays the board's edge semantics.
    config: alloc::collections::BTreeMap<u64, u32>,
    /// Bumped on every change of the above (a raise, an enable, a priority, a route, the
    /// group enable, a pending bit taken into or back from a list register): a vCPU that
    /// looked at the same count saw the same distributor.
    changes: u64,
}

/// What the virtual CPU interface of a vCPU holds: the CPU's own registers while it runs
/// there ([`Hw`]), a record otherwise (and a stand-in in the host tests).
pub trait CpuIf {
    /// ICH_LR0..3_EL2.
    fn read_lrs(&self) -> [u64; 4];
    /// Write ICH_LR<i>_EL2.
    fn write_lr(&mut self, i: usize, v: u64);
    /// ICH_VMCR_EL2.
    fn vmcr(&self) -> u64;
    /// ICH_AP1R0_EL2.
    fn ap1r0(&self) -> u64;
}

/// This CPU's virtual CPU interface (the vCPU loaded here).
pub struct Hw;

impl CpuIf for Hw {
    fn read_lrs(&self) -> [u64; 4] {
        read_lrs()
    }
    fn write_lr(&mut self, i: usize, v: u64) {
        write_lr(i, v)
    }
    fn vmcr(&self) -> u64 {
        ich_read_vmcr()
    }
    fn ap1r0(&self) -> u64 {
        ich_read_ap1r0()
    }
}

/// The saved virtual CPU interface of a vCPU off its CPU (read only: `has_work`).
struct Saved([u64; 4], u64, u64);

impl CpuIf for Saved {
    fn read_lrs(&self) -> [u64; 4] {
        self.0
    }
    fn write_lr(&mut self, _: usize, _: u64) {}
    fn vmcr(&self) -> u64 {
        self.1
    }
    fn ap1r0(&self) -> u64 {
        self.2
    }
}

/// What a vCPU's last full look saw: its distributor's and its own change counts and its
/// list registers (as read back after the look).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Look {
    vm: u64,
    cpu: u64,
    lrs: [u64; 4],
}

impl Look {
    /// Whether `self` is what a look at `vm`, `cpu` and `lrs` would see: the counts and the
    /// four list registers compared one by one (no generic slice compare).
    #[inline]
    fn same(&self, vm: u64, cpu: u64, lrs: &[u64; 4]) -> bool {
        self.vm == vm
            && self.cpu == cpu
            && self.lrs[0] == lrs[0]
            && self.lrs[1] == lrs[1]
            && self.lrs[2] == lrs[2]
            && self.lrs[3] == lrs[3]
    }
}

/// One vCPU's redistributor and virtual CPU interface state.
#[derive(Clone)]
pub struct CpuGic {
    ppi_enable: u32,
    ppi_pending: u32,
    /// IPRIORITYR of its SGIs and PPIs.
    ppi_priority: [u8; 32],
    /// List registers, ICH_VMCR_EL2 and ICH_AP1R0_EL2 while the vCPU is off its CPU.
    lrs: [u64; 4],
    vmcr: u64,
    ap1r0: u64,
    /// Bumped on every change of its SGIs' and PPIs' state (as [`VmGic`]'s count).
    changes: u64,
    /// The state right after the last full [`CpuGic::fill`]: a fill that finds the same
    /// returns at once (a fill on the state it left changes nothing).
    filled: Option<Look>,
    /// The last full [`CpuGic::has_work`]: what it saw (with ICH_VMCR_EL2 and
    /// ICH_AP1R0_EL2, which the guest changes without trapping) and its answer.
    worked: Option<(Look, u64, u64, bool)>,
}

impl Default for CpuGic {
    fn default() -> Self {
        CpuGic {
            ppi_enable: 0,
            ppi_pending: 0,
            ppi_priority: [DEFAULT_PRIORITY; 32],
            lrs: [0; 4],
            vmcr: 0,
            ap1r0: 0,
            changes: 0,
            filled: None,
            worked: None,
        }
    }
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
        self.set_pending(intid, true);
        self.deliverable_spi(intid)
    }

    /// SPI `intid` pending or not (counted as a change if it was not so).
    fn set_pending(&mut self, intid: u32, on: bool) {
        let w = (intid / 32) as usize;
        let before = self.spi_pending[w];
        set_bit(&mut self.spi_pending, intid, on);
        if self.spi_pending[w] != before {
            self.changes = self.changes.wrapping_add(1);
            if self.spi_pending[w] != 0 {
                self.pending_words |= 1 << w;
            } else {
                self.pending_words &= !(1 << w);
            }
        }
    }

    fn deliverable_spi(&self, intid: u32) -> Option<u32> {
        (self.enabled && bit(&self.spi_enable, intid) && bit(&self.spi_pending, intid))
            .then(|| self.route.get(&intid).copied().unwrap_or(0))
    }

    /// The SPIs pending, enabled and routed to vCPU `index` (a walk over the set bits).
    fn spis_for(&self, index: u32) -> impl Iterator<Item = u32> + '_ {
        // Only the words with a pending SPI (word 0 holds none: INTIDs 0-31 are private).
        let mut words = if self.enabled {
            self.pending_words & !1
        } else {
            0
        };
        core::iter::from_fn(move || {
            (words != 0).then(|| {
                let w = words.trailing_zeros() as usize;
                words &= words - 1;
                w
            })
        })
        .flat_map(move |w| {
            let mut bits = self.spi_pending[w] & self.spi_enable[w];
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

    /// SPI `intid`'s priority.
    pub fn spi_priority(&self, intid: u32) -> u8 {
        self.priority
            .get(&intid)
            .copied()
            .unwrap_or(DEFAULT_PRIORITY)
    }
}

impl CpuGic {
    /// Make private interrupt `intid` (SGI/PPI) pending; whether it can be delivered now.
    pub fn raise_ppi(&mut self, vm: &VmGic, intid: u32) -> bool {
        if intid < 32 {
            self.set_ppi_pending(intid, true);
        }
        self.deliverable(vm, u32::MAX)
    }

    /// SGI or PPI `intid` (< 32) pending or not (counted as a change if it was not so).
    fn set_ppi_pending(&mut self, intid: u32, on: bool) {
        let before = self.ppi_pending;
        if on {
            self.ppi_pending |= 1 << intid;
        } else {
            self.ppi_pending &= !(1 << intid);
        }
        if self.ppi_pending != before {
            self.changed();
        }
    }

    /// Something that decides delivery changed here.
    fn changed(&mut self) {
        self.changes = self.changes.wrapping_add(1);
    }

    fn deliverable(&self, vm: &VmGic, index: u32) -> bool {
        self.wanted(vm, index).next().is_some()
    }

    /// The interrupts pending and enabled for vCPU `index` (its SGIs and PPIs, then the
    /// SPIs routed to it), with their priorities.
    fn wanted<'a>(&'a self, vm: &'a VmGic, index: u32) -> impl Iterator<Item = (u32, u8)> + 'a {
        let mut ppis = if vm.enabled {
            self.ppi_pending & self.ppi_enable
        } else {
            0
        };
        let ppis = core::iter::from_fn(move || {
            (ppis != 0).then(|| {
                let b = ppis.trailing_zeros();
                ppis &= ppis - 1;
                b
            })
        })
        .map(|id| (id, self.ppi_priority[id as usize]));
        let spis = (index != u32::MAX)
            .then(|| vm.spis_for(index).map(|id| (id, vm.spi_priority(id))))
            .into_iter()
            .flatten();
        ppis.chain(spis)
    }

    /// SGI or PPI `intid`'s priority.
    pub fn ppi_priority(&self, intid: u32) -> u8 {
        self.ppi_priority[(intid % 32) as usize]
    }

    /// Whether this vCPU, off its CPU, would take an interrupt of `priority` now (its saved
    /// priority mask, binary point, running priority and group enable).
    pub fn would_take(&self, priority: u8) -> bool {
        signalled(priority, self.vmcr, self.ap1r0)
    }

    /// Whether vCPU `index` has an interrupt it would take: pending and enabled, or already
    /// pending in a list register (`live`: its list registers and virtual CPU interface are
    /// in the CPU), and let through by its priority mask, binary point, running priority and group enable.
    pub fn has_work(&mut self, vm: &VmGic, index: u32, live: bool) -> bool {
        if live {
            self.has_work_in(&Hw, vm, index)
        } else {
            let saved = Saved(self.lrs, self.vmcr, self.ap1r0);
            self.has_work_in(&saved, vm, index)
        }
    }

    /// [`CpuGic::has_work`] with the virtual CPU interface `cpu`: the last answer at once if
    /// nothing it depends on changed since (the distributor's and this vCPU's counts, the
    /// list registers, ICH_VMCR_EL2 and ICH_AP1R0_EL2, all compared), else
    /// [`CpuGic::has_work_full`].
    pub fn has_work_in(&mut self, cpu: &impl CpuIf, vm: &VmGic, index: u32) -> bool {
        let (lrs, vmcr, ap1r0) = (cpu.read_lrs(), cpu.vmcr(), cpu.ap1r0());
        if let Some((look, v, a, work)) = &self.worked {
            if look.same(vm.changes, self.changes, &lrs) && *v == vmcr && *a == ap1r0 {
                return *work;
            }
        }
        let work = self.has_work_full(vm, index, lrs, vmcr, ap1r0);
        let look = Look {
            vm: vm.changes,
            cpu: self.changes,
            lrs,
        };
        self.worked = Some((look, vmcr, ap1r0, work));
        work
    }

    /// [`CpuGic::has_work`] from scratch, on list registers `lrs` and the interface's
    /// `vmcr` and `ap1r0`.
    pub fn has_work_full(
        &self,
        vm: &VmGic,
        index: u32,
        lrs: [u64; 4],
        vmcr: u64,
        ap1r0: u64,
    ) -> bool {
        let listed = lrs
            .iter()
            .filter(|lr| *lr >> 62 == 1)
            .map(|lr| ((lr >> 48) & 0xFF) as u8);
        self.wanted(vm, index)
            .map(|(_, p)| p)
            .chain(listed)
            .any(|p| signalled(p, vmcr, ap1r0))
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

    /// Make `id` pending here again (it leaves a list register before the guest took it).
    fn unlist(&mut self, vm: &mut VmGic, id: u32) {
        if id < 32 {
            self.set_ppi_pending(id, true);
        } else {
            vm.set_pending(id, true);
        }
    }

    /// Move the interrupts pending for vCPU `index` into its list registers (live ones),
    /// highest priority first, each with its priority: into a free one, else into one that
    /// holds an interrupt of lower priority that is only pending (which becomes pending
    /// here again).
    pub fn fill(&mut self, vm: &mut VmGic, index: u32) {
        self.fill_in(&mut Hw, vm, index);
    }

    /// [`CpuGic::fill`] of the list registers of `cpu`: nothing at once if the distributor,
    /// this vCPU's interrupts and the list registers are as the last full fill left them
    /// (the guest's acknowledge or end of an interrupt changes a list register: looked at
    /// anew), else [`CpuGic::fill_full`]. The state a full fill settled on is one on which a
    /// full fill writes nothing, so skipping it there changes nothing.
    pub fn fill_in(&mut self, cpu: &mut impl CpuIf, vm: &mut VmGic, index: u32) {
        let lrs = cpu.read_lrs();
        if let Some(look) = &self.filled {
            if look.same(vm.changes, self.changes, &lrs) {
                return;
            }
        }
        self.filled = self.fill_full(cpu, vm, index, lrs).map(|lrs| Look {
            vm: vm.changes,
            cpu: self.changes,
            lrs,
        });
    }

    /// [`CpuGic::fill`] from scratch, the list registers of `cpu` holding `lrs`: passes
    /// until one writes nothing (an interrupt a pass takes out of a list register for one of
    /// higher priority goes back to pending, and its priority may have been raised since it
    /// was listed: the next pass may list it again). The list registers it settled on, or
    /// None if it did not within `FILL_PASSES`.
    pub fn fill_full(
        &mut self,
        cpu: &mut impl CpuIf,
        vm: &mut VmGic,
        index: u32,
        mut lrs: [u64; 4],
    ) -> Option<[u64; 4]> {
        for _ in 0..FILL_PASSES {
            if !self.fill_pass(cpu, vm, index, lrs) {
                return Some(lrs);
            }
            lrs = cpu.read_lrs();
        }
        None
    }

    /// One pass of [`CpuGic::fill_full`]: whether it wrote a list register.
    fn fill_pass(
        &mut self,
        cpu: &mut impl CpuIf,
        vm: &mut VmGic,
        index: u32,
        mut lrs: [u64; 4],
    ) -> bool {
        if !self.deliverable(vm, index) {
            return false;
        }
        let mut wrote = false;
        let listed =
            |lrs: &[u64; 4], id: u32| lrs.iter().any(|lr| lr >> 62 != 0 && *lr as u32 == id);
        // The four of highest priority not listed yet (no more can go in), best first.
        let mut best = [(u8::MAX, u32::MAX); 4];
        for (id, p) in self.wanted(vm, index) {
            if listed(&lrs, id) || (p, id) >= best[3] {
                continue;
            }
            best[3] = (p, id);
            best.sort_unstable();
        }
        for (priority, id) in best.into_iter().take_while(|&(_, id)| id != u32::MAX) {
            let slot = lrs.iter().position(|lr| lr >> 62 == 0).or_else(|| {
                // The only-pending list register of the lowest priority, if below this one.
                (0..lrs.len())
                    .filter(|&i| lrs[i] >> 62 == 1)
                    .max_by_key(|&i| (lrs[i] >> 48) & 0xFF)
                    .filter(|&i| ((lrs[i] >> 48) & 0xFF) as u8 > priority)
            });
            let Some(slot) = slot else {
                break;
            };
            if lrs[slot] >> 62 == 1 {
                self.unlist(vm, lrs[slot] as u32);
            }
            // State pending, group 1, priority, vINTID.
            lrs[slot] = (1 << 62) | (1 << 60) | (u64::from(priority) << 48) | u64::from(id);
            cpu.write_lr(slot, lrs[slot]);
            wrote = true;
            if id < 32 {
                self.set_ppi_pending(id, false);
            } else {
                vm.set_pending(id, false);
            }
        }
        wrote
    }
}

/// A read (`write` None) or write of `size` bytes of the byte-wide priority registers
/// starting at INTID `first`: `get`/`set` reach one INTID's priority.
fn priority_bytes(
    first: u32,
    size: u64,
    write: Option<u64>,
    get: impl Fn(u32) -> u8,
    mut set: impl FnMut(u32, u8),
) -> u64 {
    let mut v = 0u64;
    for b in 0..size.min(8) as u32 {
        match write {
            None => v |= u64::from(get(first + b)) << (8 * b),
            Some(w) => set(first + b, (w >> (8 * b)) as u8 & priority_mask()),
        }
    }
    v
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

/// A trapped write of a guest's SGI generation register (with HCR_EL2.IMO set, EL1's
/// writes to ICC_SGI0R_EL1, ICC_SGI1R_EL1 and ICC_ASGI1R_EL1 trap to EL2), from the ISS of
/// an ESR_EL2 with EC 0x18: (group 1 SGI, the register holding the value), or None if the
/// access is to another register. A VM has group 1 only: a group 0 or other-security-state
/// SGI (`false`) is ignored, as the GIC ignores it.
pub fn sgi_write(iss: u64) -> Option<(bool, u8)> {
    let (op0, op2, op1) = ((iss >> 20) & 3, (iss >> 17) & 7, (iss >> 14) & 7);
    let (crn, rt, crm) = (
        (iss >> 10) & 0xF,
        ((iss >> 5) & 0x1F) as u8,
        (iss >> 1) & 0xF,
    );
    let write = iss & 1 == 0;
    (write && op0 == 3 && op1 == 0 && crn == 12 && crm == 11 && (5..=7).contains(&op2))
        .then_some((op2 == 5, rt))
}

/// The SGI an ICC_SGI1R_EL1 value written by vCPU `me` of a VM with `vcpus` vCPUs raises,
/// and on which vCPUs (bit n: vCPU n, whose MPIDR is Aff0 = n, Aff1-3 = 0): IRM (bit 40)
/// every vCPU but `me`; else the TargetList (bits 15:0) of Aff0 values RS * 16 + bit (RS,
/// bits 47:44) at Aff3.Aff2.Aff1 (bits 55:48, 39:32, 23:16), which must be 0.0.0 to name
/// any of them. vCPUs that do not exist are left out.
pub fn sgi_targets(v: u64, me: u32, vcpus: u32) -> (u32, u64) {
    let intid = ((v >> 24) & 0xF) as u32;
    let all = if vcpus >= 64 {
        u64::MAX
    } else {
        (1u64 << vcpus) - 1
    };
    if v & (1 << 40) != 0 {
        let me = if me < 64 { 1u64 << me } else { 0 };
        return (intid, all & !me);
    }
    let aff321 = v & 0x00FF_00FF_00FF_0000;
    if aff321 != 0 {
        return (intid, 0);
    }
    let rs = (v >> 44) & 0xF;
    let list = v & 0xFFFF;
    let mask = if rs * 16 < 64 { list << (rs * 16) } else { 0 };
    (intid, mask & all)
}

/// A read (`write` None) or write of `size` bytes at distributor offset `off`; what a read
/// returns.
pub fn distributor(off: u64, size: u64, write: Option<u64>, vm: &mut VmGic) -> u64 {
    if write.is_some() {
        // Any write may change delivery (an enable, a priority, a route, the group enable).
        vm.changes = vm.changes.wrapping_add(1);
    }
    match (off, write) {
        // IPRIORITYR of the SPIs (those of SGIs and PPIs are in the redistributors).
        (0x400..=0x7FB, w) => {
            let first = (off - 0x400) as u32;
            let spi = |id: u32| (32..=MAX_INTID).contains(&id);
            let get = |id: u32| if spi(id) { vm.spi_priority(id) } else { 0 };
            let v = priority_bytes(first, size, None, get, |_, _| {});
            if w.is_some() {
                priority_bytes(
                    first,
                    size,
                    w,
                    |_| 0,
                    |id, p| {
                        if spi(id) {
                            vm.priority.insert(id, p);
                        }
                    },
                );
            }
            v
        }
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
        // ICFGR of the SPIs: Int_config[1] (the odd bits, 1 = edge) is programmable, the
        // even bits are RES0; ICFGR0/1 (SGIs, PPIs) are RAZ/WI with affinity routing.
        (0xC08..=0xCFC, w) if off.is_multiple_of(4) => {
            let n = (off - 0xC00) / 4;
            match w {
                None => u64::from(vm.config.get(&n).copied().unwrap_or(0)),
                Some(v) => {
                    let v = v as u32 & 0xAAAA_AAAA;
                    if v == 0 {
                        vm.config.remove(&n);
                    } else {
                        vm.config.insert(n, v);
                    }
                    0
                }
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

/// A read or write of `size` bytes at offset `off` of redistributor `idx` (of `vcpus`).
pub fn redistributor(
    off: u64,
    size: u64,
    write: Option<u64>,
    c: &mut CpuGic,
    idx: u32,
    vcpus: u32,
) -> u64 {
    if write.is_some() {
        // Any write may change delivery (an enable, a priority).
        c.changed();
    }
    match (off, write) {
        // IPRIORITYR0-7: the SGIs' and PPIs' priorities.
        (0x1_0400..=0x1_041F, w) => {
            let first = (off - 0x1_0400) as u32;
            let size = size.min(u64::from(32 - first));
            let prio = c.ppi_priority;
            let get = |id: u32| prio[id as usize];
            priority_bytes(first, size, w, get, |id, p| c.ppi_priority[id as usize] = p)
        }
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

/// ICH_VTR_EL2 (read-only): what the virtual CPU interface implements.
fn ich_read_vtr() -> u64 {
    let v: u64;
    #[cfg(target_arch = "aarch64")]
    // SAFETY: reading an ICH register at EL2 has no side effects.
    unsafe {
        core::arch::asm!("mrs {0}, ich_vtr_el2", out(reg) v, options(nomem, nostack))
    };
    #[cfg(not(target_arch = "aarch64"))]
    {
        v = 0;
    }
    v
}

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
    let vtr = ich_read_vtr();
    // PRIbits [31:29] and PREbits [28:26], each one less than the count.
    let (pri, pre) = (((vtr >> 29) & 7) + 1, ((vtr >> 26) & 7) + 1);
    VTR_BITS.store(
        (pre << 8 | pri) as u16,
        core::sync::atomic::Ordering::Relaxed,
    );
    let _ = ich_read_hcr();
    ich_write_hcr(1);
    for i in 0..4 {
        write_lr(i, 0);
    }
}
