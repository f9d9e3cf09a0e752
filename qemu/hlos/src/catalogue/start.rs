//! Entry at EL1 (x0 = DT) wherever the image was loaded, stage 1, and the byte probes the
//! runner and the agent access memory with (the vectors and the MMU's switch-on are
//! `el1`'s, shared with the HLOS payload).
//!
//! The image is linked at 0x41000000 (HLOS's entry). The RM puts a VM's image where it
//! likes (2 MiB aligned: the first thing mapped in a new VM), so `_start` works out the
//! distance `delta` from the link address to where it runs (0 for HLOS) and builds a stage
//! 1 in which the link addresses work: VA 1..2 GiB -> IPA 1 GiB + delta in 2 MiB blocks;
//! VA 0..1 GiB device (the PL011, the GIC), VA 2..512 GiB normal and identity (the
//! cases' guest window is at 2 GiB; the image runs at 4 GiB or above in a VM, so the
//! instructions after the MMU comes on are mapped, and so are the VM's DT beside the image
//! and the parcels the RM places there). An agent can therefore reach every IPA but 1..2
//! GiB. Before the MMU is on, only PC-relative addresses and link addresses plus
//! `delta` are used.

use core::sync::atomic::{AtomicBool, Ordering};

const STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);

#[no_mangle]
static mut CAT_STACK: Stack = Stack([0; STACK_SIZE]);

#[repr(C, align(4096))]
struct Table([u64; 512]);

/// Stage 1's level-1 table and the level-2 table of VA 1..2 GiB, filled by `_start`.
#[no_mangle]
static mut CAT_L1: Table = Table([0; 512]);
#[no_mangle]
static mut CAT_L2: Table = Table([0; 512]);

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    r#"
.section .text.boot, "ax"
.global _start
_start:
    mov x19, x0
    mov x20, x1
    mov x21, x2
    mov x22, x3
    mov x23, x4
    // delta = where we run - where we are linked; it must be a multiple of 2 MiB.
    adr x24, _start
    ldr x9, =_start
    sub x24, x24, x9
    tst x24, #0x1FFFFF
    b.ne 9f
    // Zero .bss where it is now.
    ldr x9, =__bss_start
    add x9, x9, x24
    ldr x10, =__bss_end
    add x10, x10, x24
1:  cmp x9, x10
    b.hs 2f
    str xzr, [x9], #8
    b 1b
2:  ldr x9, =CAT_L1
    add x9, x9, x24
    ldr x10, =CAT_L2
    add x10, x10, x24
    mov x11, #0x401                 // VA 0..1 GiB: device block, AF
    str x11, [x9]
    orr x11, x10, #3                // VA 1..2 GiB: the level-2 table
    str x11, [x9, #8]
    ldr x11, =0x80000705            // VA 2..3 GiB, 3..4 GiB: normal, identity
    str x11, [x9, #16]
    ldr x11, =0xC0000705
    str x11, [x9, #24]
    mov x12, #4                     // VA 4..512 GiB: normal, identity (the image runs there
    mov x14, #0x705                 // in a VM; parcels the RM places are there)
6:  lsl x11, x12, #30
    orr x11, x11, x14
    str x11, [x9, x12, lsl #3]
    add x12, x12, #1
    cmp x12, #512
    b.lo 6b
3:  ldr x11, =0x40000000            // level 2: VA 1 GiB + i * 2 MiB -> IPA 1 GiB + delta + i * 2 MiB
    add x11, x11, x24
    mov x14, #0x705
    orr x11, x11, x14
    mov x12, #0
4:  str x11, [x10, x12, lsl #3]
    add x11, x11, #0x200000
    add x12, x12, #1
    cmp x12, #512
    b.lo 4b
    dsb sy
    ldr x0, =CAT_L1
    add x0, x0, x24
    bl el1_mmu_on
    ldr x9, =5f                     // on at the link address
    br x9
5:  ldr x9, =CAT_STACK
    add x9, x9, #{stack_size}
    mov sp, x9
    mov x0, x19
    mov x1, x24
    bl cat_main
9:  wfe
    b 9b

.section .text
// u64 cat_probe_read(u64 va, u8 *out): 0 and the byte in *out, or the abort's ESR_EL1.
.global cat_probe_read
cat_probe_read:
    mov x3, x1
    mov x1, xzr
.global probe_read_access
probe_read_access:
    ldrb w2, [x0]
    cbnz x1, 1f
    strb w2, [x3]
1:  mov x0, x1
    ret

// u64 cat_probe_write(u64 va, u64 byte): 0, or the abort's ESR_EL1.
.global cat_probe_write
cat_probe_write:
    mov x3, x1
    mov x1, xzr
.global probe_write_access
probe_write_access:
    strb w3, [x0]
    mov x0, x1
    ret
"#,
    stack_size = const STACK_SIZE,
);

extern "C" {
    fn cat_probe_read(va: u64, out: *mut u8) -> u64;
    fn cat_probe_write(va: u64, byte: u64) -> u64;
}

/// What a probed access did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// It completed.
    Done,
    /// It aborted at this VA: the hypervisor's injected external abort (the RM did not
    /// serve the stage-2 fault).
    Fault(u64),
    /// Another abort (its ESR).
    Abort(u64),
}

fn outcome(esr: u64, va: u64) -> Option<Probe> {
    match esr {
        0 => None,
        e if crate::el1::is_injected_abort(e) => Some(Probe::Fault(va)),
        e => Some(Probe::Abort(e)),
    }
}

/// Read `out.len()` bytes at `va`, a byte at a time; stops at the first abort.
pub fn read(va: u64, out: &mut [u8]) -> Probe {
    for (i, b) in out.iter_mut().enumerate() {
        let a = va + i as u64;
        // SAFETY: the probe loads one byte at `a`; an abort comes back as its ESR.
        let esr = unsafe { cat_probe_read(a, b) };
        if let Some(p) = outcome(esr, a) {
            return p;
        }
    }
    Probe::Done
}

/// Write `data` at `va`, a byte at a time; stops at the first abort.
pub fn write(va: u64, data: &[u8]) -> Probe {
    for (i, b) in data.iter().enumerate() {
        let a = va + i as u64;
        // SAFETY: the probe stores one byte at `a`, memory the case chose; an abort comes
        // back as its ESR.
        let esr = unsafe { cat_probe_write(a, u64::from(*b)) };
        if let Some(p) = outcome(esr, a) {
            return p;
        }
    }
    Probe::Done
}

/// Set once the payload knows it is an agent (a fatal exception is then answered on the
/// test channel instead of ending the run).
pub static AGENT: AtomicBool = AtomicBool::new(false);

#[no_mangle]
extern "C" fn el1_fatal(esr: u64, elr: u64, far: u64) -> ! {
    if AGENT.load(Ordering::Relaxed) {
        crate::agent::fatal(esr, elr, far)
    }
    crate::console::fail(format_args!(
        "unexpected exception at EL1: ESR {esr:#x} ELR {elr:#x} FAR {far:#x}"
    ))
}

#[no_mangle]
extern "C" fn cat_main(dt: u64, delta: u64) -> ! {
    let info = crate::dt::read(dt);
    if info.vmid == Some(3) || info.vmid.is_none() {
        crate::console::init(info.uart);
        crate::runner::main(&info, delta)
    } else {
        AGENT.store(true, Ordering::Relaxed);
        crate::agent::main(&info, delta)
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    if AGENT.load(Ordering::Relaxed) {
        crate::agent::fatal(0, 0, 0)
    }
    crate::console::fail(format_args!("panic: {info}"))
}
