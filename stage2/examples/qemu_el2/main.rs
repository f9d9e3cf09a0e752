//! Bare-metal self-test of the hardware paths on QEMU virt, at EL2 (`cfg(target_arch =
//! "aarch64")` code: `HwTlb`, `Fault::from_el2_registers`, `resolve_ipa_at_s1e1r`).
//!
//! EL2 builds a stage-2 address space with this crate (RAM identity-mapped, a 2 MiB golden
//! region mapped read-only as one block at IPA 0x8000_0000), and runs a guest at EL1 with its
//! stage-1 MMU on (guest VA 0x1_0000_0000 -> IPA 0x8000_0000, so VA != IPA). The guest writes
//! to a golden page: the stage-2 permission fault is decoded, its IPA resolved with
//! `AT S1E1R`, the page copied and replaced (block split, break-before-make, TLBI), and the
//! store retried. Then EL2 unmaps the region and the guest's next read must take a translation
//! fault whose IPA comes from HPFAR_EL2. Exit status through semihosting: 0 = pass.
//!
//! ```text
//! cargo build -p gunyah-stage2 --example qemu_el2_selftest --features qemu-selftest \
//!     --target aarch64-unknown-none
//! qemu-system-aarch64 -machine virt,virtualization=on,gic-version=3 -cpu max -m 1G \
//!     -nographic -nic none -semihosting -kernel <target-dir>/aarch64-unknown-none/debug/examples/qemu_el2_selftest
//! ```
#![no_std]
#![no_main]

use aarch64_cpu::registers::{
    Readable, Writeable, CPACR_EL1, ELR_EL2, ESR_EL2, HCR_EL2, ID_AA64MMFR0_EL1, MAIR_EL1,
    MAIR_EL2, SCTLR_EL1, SCTLR_EL2, SPSR_EL2, SP_EL1, TCR_EL1, TCR_EL2, TTBR0_EL1, TTBR0_EL2,
    VTCR_EL2, VTTBR_EL2,
};
use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::ptr::{read_volatile, write_volatile};
use gunyah_stage2::fault::resolve_ipa_at_s1e1r;
use gunyah_stage2::tlb::HwTlb;
use gunyah_stage2::{
    AddressSpace, Attrs, Fault, FaultKind, FaultStatus, MapFlags, PaRange, Stage2Config, SwBits,
    TableMemory, PAGE_SIZE,
};

global_asm!(
    r#"
.section .text.boot, "ax"
.global _start
_start:
    ldr x1, =__stack_top
    mov sp, x1
    ldr x1, =__bss_start
    ldr x2, =__bss_end
1:  cmp x1, x2
    b.hs 2f
    str xzr, [x1], #8
    b 1b
2:  adr x1, el2_vectors
    msr vbar_el2, x1
    isb
    bl el2_main
3:  wfe
    b 3b

.section .text
.balign 2048
el2_vectors:
.rept 8
.balign 0x80
    b el2_unexpected
.endr
.balign 0x80
    b el2_lower_sync
.rept 7
.balign 0x80
    b el2_unexpected
.endr

el2_unexpected:
    mrs x0, esr_el2
    mrs x1, elr_el2
    bl el2_unexpected_rust

el2_lower_sync:
    sub sp, sp, #256
    stp x0, x1, [sp, #0]
    stp x2, x3, [sp, #16]
    stp x4, x5, [sp, #32]
    stp x6, x7, [sp, #48]
    stp x8, x9, [sp, #64]
    stp x10, x11, [sp, #80]
    stp x12, x13, [sp, #96]
    stp x14, x15, [sp, #112]
    stp x16, x17, [sp, #128]
    stp x18, x19, [sp, #144]
    stp x20, x21, [sp, #160]
    stp x22, x23, [sp, #176]
    stp x24, x25, [sp, #192]
    stp x26, x27, [sp, #208]
    stp x28, x29, [sp, #224]
    str x30, [sp, #240]
    mov x0, sp
    bl el2_lower_sync_rust
    ldp x0, x1, [sp, #0]
    ldp x2, x3, [sp, #16]
    ldp x4, x5, [sp, #32]
    ldp x6, x7, [sp, #48]
    ldp x8, x9, [sp, #64]
    ldp x10, x11, [sp, #80]
    ldp x12, x13, [sp, #96]
    ldp x14, x15, [sp, #112]
    ldp x16, x17, [sp, #128]
    ldp x18, x19, [sp, #144]
    ldp x20, x21, [sp, #160]
    ldp x22, x23, [sp, #176]
    ldp x24, x25, [sp, #192]
    ldp x26, x27, [sp, #208]
    ldp x28, x29, [sp, #224]
    ldr x30, [sp, #240]
    add sp, sp, #256
    eret
"#
);

/// A static the single-core test mutates through raw pointers.
struct Racy<T>(UnsafeCell<T>);
// SAFETY: one CPU, and exception handlers never nest.
unsafe impl<T> Sync for Racy<T> {}
impl<T> Racy<T> {
    const fn new(v: T) -> Self {
        Racy(UnsafeCell::new(v))
    }
    fn get(&self) -> *mut T {
        self.0.get()
    }
}

#[repr(C, align(4096))]
struct Page([u64; 512]);
const ZERO_PAGE: Page = Page([0; 512]);

const POOL_PAGES: usize = 32;
#[repr(C, align(65536))]
struct PoolPages([Page; POOL_PAGES]);

#[repr(C, align(0x200000))]
struct Golden([Page; 512]);

static POOL: Racy<PoolPages> = Racy::new(PoolPages([ZERO_PAGE; POOL_PAGES]));
static GOLDEN: Racy<Golden> = Racy::new(Golden([ZERO_PAGE; 512]));
static PRIVATE: Racy<Page> = Racy::new(ZERO_PAGE);
static EL2_L1: Racy<Page> = Racy::new(ZERO_PAGE);
static GUEST_L1: Racy<Page> = Racy::new(ZERO_PAGE);
static GUEST_STACK: Racy<[Page; 4]> = Racy::new([ZERO_PAGE; 4]);

/// Table pages from a static pool; EL2 runs identity-mapped, so PA == address.
struct Pool {
    used: [bool; POOL_PAGES],
}

impl Pool {
    fn base() -> u64 {
        POOL.get() as u64
    }
}

// SAFETY: pages are zeroed when handed out, used once until freed, aligned as requested (the
// pool is 64 KiB aligned), and `table_ptr` returns the identity-mapped address.
unsafe impl TableMemory for Pool {
    fn alloc_table(&mut self) -> Option<u64> {
        self.alloc_root(1)
    }
    fn alloc_root(&mut self, count: usize) -> Option<u64> {
        let i = (0..POOL_PAGES.saturating_sub(count - 1))
            .step_by(count)
            .find(|&i| self.used[i..i + count].iter().all(|u| !u))?;
        self.used[i..i + count].iter_mut().for_each(|u| *u = true);
        let pa = Pool::base() + i as u64 * PAGE_SIZE;
        for k in 0..count as u64 * 512 {
            // SAFETY: inside the pages just allocated.
            unsafe { write_volatile((pa as *mut u64).add(k as usize), 0) };
        }
        Some(pa)
    }
    fn free_table(&mut self, pa: u64) {
        self.used[((pa - Pool::base()) / PAGE_SIZE) as usize] = false;
    }
    fn table_ptr(&self, pa: u64) -> *mut u64 {
        pa as *mut u64
    }
}

type Vm = AddressSpace<Pool, HwTlb>;
static VM: Racy<Option<Vm>> = Racy::new(None);
static PHASE: Racy<u32> = Racy::new(0);
static FAULTS: Racy<u32> = Racy::new(0);

const GOLDEN_IPA: u64 = 0x8000_0000;
const GUEST_GOLDEN_VA: u64 = 0x1_0000_0000;
const COW: SwBits = SwBits::SW3;

fn pattern(page: u64, word: u64) -> u64 {
    0x6010_0000_0000_0000 | (page << 16) | word
}

fn uart_puts(s: &str) {
    for b in s.bytes() {
        // SAFETY: PL011 data register of QEMU virt, mapped as device memory at EL2.
        unsafe { write_volatile(0x0900_0000 as *mut u32, b as u32) };
    }
}

fn uart_hex(v: u64) {
    let mut buf = [0u8; 18];
    buf[0] = b'0';
    buf[1] = b'x';
    for i in 0..16 {
        let d = ((v >> (60 - 4 * i)) & 0xF) as u8;
        buf[2 + i] = if d < 10 { b'0' + d } else { b'a' + d - 10 };
    }
    uart_puts(core::str::from_utf8(&buf).unwrap_or("?"));
}

fn semihosting_exit(code: u32) -> ! {
    let block = [0x20026u64, code as u64];
    // SAFETY: semihosting SYS_EXIT; QEMU runs with -semihosting.
    unsafe { asm!("hlt #0xf000", in("x0") 0x18u64, in("x1") block.as_ptr(), options(noreturn)) }
}

fn fail(what: &str, v: u64) -> ! {
    uart_puts("stage2 selftest FAIL: ");
    uart_puts(what);
    uart_puts(" ");
    uart_hex(v);
    uart_puts("\n");
    semihosting_exit(1)
}

fn check(ok: bool, what: &str, v: u64) {
    if !ok {
        fail(what, v);
    }
}

fn vm() -> &'static mut Vm {
    // SAFETY: single CPU; set once in `el2_main` before the guest runs.
    match unsafe { &mut *VM.get() } {
        Some(vm) => vm,
        None => fail("no VM", 0),
    }
}

/// EL2 stage 1: 0..1 GiB device, 1..2 GiB normal write-back (RAM), identity.
fn enable_el2_mmu() {
    let l1 = EL2_L1.get() as *mut u64;
    // SAFETY: our own table page.
    unsafe {
        write_volatile(l1, 0x401); // block, AF, AttrIndx 0 (device)
        write_volatile(l1.add(1), 0x4000_0000 | 0x705); // block, AF, SH inner, AttrIndx 1
    }
    MAIR_EL2.set(0xFF00);
    // T0SZ 25, IRGN0/ORGN0 WB, SH0 inner, TG0 4K, PS 40-bit, RES1 bits 23 and 31.
    TCR_EL2.set(0x8082_3519);
    TTBR0_EL2.set(l1 as u64);
    // SAFETY: invalidate EL2 TLBs, then turn on M, C, I (plus RES1 bits).
    unsafe { asm!("tlbi alle2", "dsb sy", "isb") };
    SCTLR_EL2.set(0x30C5_1835);
    // SAFETY: context synchronisation.
    unsafe { asm!("isb") };
}

#[no_mangle]
extern "C" fn el2_main() -> ! {
    uart_puts("stage2 selftest: EL2 up\n");
    enable_el2_mmu();
    // FP/SIMD usable at EL2 and EL1 (CPTR_EL2.TFP = 0 with RES1 bits; CPACR_EL1.FPEN = 0b11).
    // SAFETY: plain system-register writes at EL2.
    unsafe { asm!("msr cptr_el2, {0}", "isb", in(reg) 0x33FFu64) };
    CPACR_EL1.set(3 << 20);

    // Golden contents.
    let golden_pa = GOLDEN.get() as u64;
    for page in 0..512u64 {
        for word in 0..512u64 {
            // SAFETY: inside the golden region.
            unsafe {
                write_volatile(
                    (golden_pa as *mut u64).add((page * 512 + word) as usize),
                    pattern(page, word),
                )
            };
        }
    }

    let parange =
        PaRange::from_parange((ID_AA64MMFR0_EL1.get() & 0xF) as u8).unwrap_or(PaRange::Bits40);
    let cfg = Stage2Config::new(40, parange, 1);
    // SAFETY: we run at EL2 and nothing else touches VTTBR_EL2 concurrently.
    let tlb = unsafe { HwTlb::new() };
    let mut vm = match AddressSpace::new(
        Pool {
            used: [false; POOL_PAGES],
        },
        tlb,
        cfg,
    ) {
        Ok(vm) => vm,
        Err(_) => fail("AddressSpace::new", 0),
    };
    // Guest RAM (code, stacks, its stage-1 tables) identity-mapped, 64 MiB, 2 MiB blocks.
    check(
        vm.map(
            0x4000_0000,
            0x400_0000,
            0x4000_0000,
            Attrs::normal_rw(),
            MapFlags::BLOCKS,
        )
        .is_ok(),
        "map RAM",
        0,
    );
    // The golden region: one read-only 2 MiB block.
    let golden = Attrs::normal_ro().with_sw(SwBits::SW2);
    check(
        vm.map(GOLDEN_IPA, 0x20_0000, golden_pa, golden, MapFlags::BLOCKS)
            .is_ok(),
        "map golden",
        golden_pa,
    );
    check(
        vm.query(GOLDEN_IPA + 0x3000).map(|l| l.level) == Some(2),
        "golden is a block",
        0,
    );

    // Guest stage 1: VA 1..2 GiB -> IPA identity; VA 0x1_0000_0000 -> IPA 0x8000_0000.
    let g1 = GUEST_L1.get() as *mut u64;
    // SAFETY: our own table page.
    unsafe {
        write_volatile(g1.add(1), 0x4000_0000 | 0x701);
        write_volatile(g1.add(4), GOLDEN_IPA | 0x701);
    }
    MAIR_EL1.set(0xFF);
    TCR_EL1.set(0x2_0080_3519); // T0SZ 25, WB, inner, 4K, EPD1, IPS 40-bit
    TTBR0_EL1.set(g1 as u64);
    SCTLR_EL1.set(0x30D0_1805); // M, C, I + RES1

    VTCR_EL2.set(vm.vtcr());
    VTTBR_EL2.set(vm.vttbr());
    HCR_EL2.set((1 << 31) | 1); // RW (EL1 is AArch64), VM (stage 2 on)
                                // SAFETY: start the VM with clean TLBs.
    unsafe { asm!("isb", "tlbi vmalls12e1is", "dsb ish", "isb") };
    // SAFETY: single CPU, before the guest runs.
    unsafe { *VM.get() = Some(vm) };

    uart_puts("stage2 selftest: entering guest\n");
    let stack_top = GUEST_STACK.get() as u64 + 4 * PAGE_SIZE;
    SP_EL1.set(stack_top);
    ELR_EL2.set(guest_main as *const () as u64);
    SPSR_EL2.set(0x3C5); // EL1h, DAIF masked
                         // SAFETY: enter the guest; it comes back through the exception vectors.
    unsafe { asm!("eret", options(noreturn)) }
}

/// Guest code, run at EL1 with its MMU on.
extern "C" fn guest_main() -> ! {
    let p = (GUEST_GOLDEN_VA + 0x3008) as *mut u64;
    // SAFETY: guest accesses to its own mappings; the write faults to EL2 and is retried.
    let ok = unsafe {
        let before = read_volatile(p);
        write_volatile(p, 0x1234_5678);
        let after = read_volatile(p);
        let neighbour = read_volatile((GUEST_GOLDEN_VA + 0x4000) as *const u64);
        before == pattern(3, 1) && after == 0x1234_5678 && neighbour == pattern(4, 0)
    };
    // SAFETY: report to EL2 (phase 1 done).
    unsafe { asm!("hvc #0", in("x0") if ok { 0u64 } else { 1u64 }) };
    // EL2 has unmapped the golden region: this read must fault (translation) and never return.
    // SAFETY: as above.
    let v = unsafe { read_volatile(p) };
    // SAFETY: reaching here means the unmap did not take effect.
    unsafe { asm!("hvc #0", in("x0") 0xBAD0_0000u64 | (v & 0xFFFF), options(noreturn)) }
}

#[no_mangle]
extern "C" fn el2_lower_sync_rust(frame: *mut [u64; 32]) {
    let esr = ESR_EL2.get();
    let ec = (esr >> 26) & 0x3F;
    // SAFETY: single CPU, handlers do not nest.
    let (phase, faults) = unsafe { (&mut *PHASE.get(), &mut *FAULTS.get()) };
    match (ec, *phase) {
        (0x24, 0) => {
            *faults += 1;
            check(
                *faults == 1,
                "more than one CoW fault (stale TLB?)",
                *faults as u64,
            );
            let fault = Fault::from_el2_registers().unwrap_or_else(|_| fail("decode", esr));
            check(
                fault.is_write_permission_fault(),
                "not a write permission fault",
                esr,
            );
            check(
                fault.status == FaultStatus::new(FaultKind::Permission, Some(2)),
                "status",
                esr,
            );
            check(
                fault.ipa.is_none(),
                "HPFAR used for a permission fault",
                fault.ipa.unwrap_or(0),
            );
            let far = fault.far.unwrap_or_else(|| fail("no FAR", esr));
            check(far == GUEST_GOLDEN_VA + 0x3008, "FAR", far);
            // SAFETY: at EL2, the guest's EL1 context and VTTBR_EL2 are still loaded.
            let ipa = unsafe { resolve_ipa_at_s1e1r(far) }.unwrap_or_else(|| fail("AT S1E1R", far));
            check(ipa == GOLDEN_IPA + 0x3008, "resolved IPA", ipa);
            let page = ipa & !(PAGE_SIZE - 1);
            let vm = vm();
            let src = vm
                .translate(page)
                .map(|(pa, _)| pa)
                .unwrap_or_else(|| fail("golden unmapped", page));
            let dst = PRIVATE.get() as u64;
            for w in 0..512 {
                // SAFETY: both pages are identity-mapped RAM.
                unsafe {
                    write_volatile(
                        (dst as *mut u64).add(w),
                        read_volatile((src as *const u64).add(w)),
                    )
                };
            }
            let old = vm.replace_page(page, dst, Attrs::normal_rw().with_sw(COW));
            check(
                matches!(old, Ok(Some(l)) if l.level == 2),
                "replace_page",
                0,
            );
            uart_puts("stage2 selftest: CoW fault served at IPA ");
            uart_hex(ipa);
            uart_puts("\n");
        }
        (0x16, 0) => {
            // SAFETY: the saved guest registers.
            let status = unsafe { (*frame)[0] };
            check(status == 0, "guest saw wrong data after CoW", status);
            let golden_pa = GOLDEN.get() as u64;
            // SAFETY: identity-mapped RAM.
            let (g, pv) = unsafe {
                (
                    read_volatile((golden_pa + 0x3008) as *const u64),
                    read_volatile((PRIVATE.get() as u64 + 8) as *const u64),
                )
            };
            check(g == pattern(3, 1), "golden page modified", g);
            check(pv == 0x1234_5678, "private page", pv);
            let vm = vm();
            check(
                vm.query(GOLDEN_IPA + 0x3000).map(|l| (l.level, l.pa))
                    == Some((3, PRIVATE.get() as u64)),
                "leaf",
                0,
            );
            check(
                vm.query(GOLDEN_IPA + 0x4000).map(|l| l.pa) == Some(golden_pa + 0x4000),
                "neighbour",
                0,
            );
            check(vm.unmap(GOLDEN_IPA, 0x20_0000).is_ok(), "unmap", 0);
            *phase = 1;
            uart_puts("stage2 selftest: CoW verified, golden unmapped\n");
        }
        (0x24, 1) => {
            let fault = Fault::from_el2_registers().unwrap_or_else(|_| fail("decode", esr));
            check(
                fault.status == FaultStatus::new(FaultKind::Translation, Some(1)),
                "status after unmap",
                esr,
            );
            check(
                fault.ipa == Some(GOLDEN_IPA + 0x3008),
                "HPFAR IPA",
                fault.ipa.unwrap_or(0),
            );
            // Tear down: frees every table and invalidates the whole VMID.
            // SAFETY: single CPU.
            let vm = unsafe { (*VM.get()).take() }.unwrap_or_else(|| fail("no VM", 0));
            let (pool, _) = vm.destroy();
            check(pool.used.iter().all(|u| !u), "table pages leaked", 0);
            uart_puts("stage2 selftest: PASS\n");
            semihosting_exit(0);
        }
        _ => {
            // SAFETY: the saved guest registers.
            let x0 = unsafe { (*frame)[0] };
            uart_puts("stage2 selftest: unexpected exit, x0 ");
            uart_hex(x0);
            uart_puts("\n");
            fail("unexpected EC/phase", esr)
        }
    }
}

#[no_mangle]
extern "C" fn el2_unexpected_rust(esr: u64, elr: u64) -> ! {
    uart_puts("stage2 selftest: unexpected EL2 exception at ");
    uart_hex(elr);
    uart_puts("\n");
    fail("esr", esr)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    fail("panic", 0)
}
