//! Entry at EL1 (x0 = DT), the payload's stage 1, and the probes (the vectors and the MMU's
//! switch-on are `el1`'s, shared with the catalogue runner).
//!
//! Entry: keep x0..x4 (the DT and the boot context), zero .bss, take the stack, turn
//! FP/SIMD, the vectors and the MMU on over `PAYLOAD_STAGE1` (`el1_mmu_on`) and call
//! `payload_main`.

use core::sync::atomic::{AtomicU64, Ordering};

const STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);

#[no_mangle]
static mut PAYLOAD_STACK: Stack = Stack([0; STACK_SIZE]);

/// Stack of a VM's second vCPU (started with PSCI CPU_ON by the racer agent).
const SECONDARY_STACK_SIZE: usize = 16 * 1024;
#[repr(C, align(16))]
struct SecondaryStack([u8; SECONDARY_STACK_SIZE]);
#[no_mangle]
static mut SECONDARY_STACK: SecondaryStack = SecondaryStack([0; SECONDARY_STACK_SIZE]);

#[repr(C, align(4096))]
struct Table([u64; 512]);

/// Stage 1 (VA 39 bits, 1 GiB blocks): VA 0..1 GiB device (the PL011), 1..4 GiB normal
/// write-back, identity; VA 4..5 GiB -> IPA 2..3 GiB (a clone's golden mapping, seen at a
/// VA that differs from its IPA). AP RW at EL1, AF set.
#[no_mangle]
static PAYLOAD_STAGE1: Table = {
    let mut t = [0u64; 512];
    t[0] = 0x401; // block, AF, AttrIndx 0 (device)
    t[1] = 0x4000_0000 | 0x705; // block, AF, inner shareable, AttrIndx 1 (normal)
    t[2] = 0x8000_0000 | 0x705;
    t[3] = 0xC000_0000 | 0x705;
    t[(crate::layout::CLONE_GOLDEN_VA >> 30) as usize] = crate::layout::CLONE_GOLDEN_IPA | 0x705;
    Table(t)
};

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
    ldr x9, =__bss_start
    ldr x10, =__bss_end
1:  cmp x9, x10
    b.hs 2f
    str xzr, [x9], #8
    b 1b
2:  ldr x9, =PAYLOAD_STACK
    add x9, x9, #{stack_size}
    mov sp, x9
    ldr x0, =PAYLOAD_STAGE1
    bl el1_mmu_on
    mov x0, x19
    mov x1, x20
    mov x2, x21
    mov x3, x22
    mov x4, x23
    bl payload_main
3:  wfe
    b 3b

// A second vCPU, started by PSCI CPU_ON (x0 = its index): its own stack, the same vectors
// and stage 1 as the first (its EL1 registers start from reset), no .bss zeroing.
.global _secondary_start
_secondary_start:
    mov x19, x0
    ldr x9, =SECONDARY_STACK
    add x9, x9, #{secondary_stack_size}
    mov sp, x9
    ldr x0, =PAYLOAD_STAGE1
    bl el1_mmu_on
    mov x0, x19
    bl secondary_main
4:  wfe
    b 4b

.section .text
// u64 probe_read(u64 va): 0 if the load completed, else the ESR_EL1 of its abort.
.global probe_read
probe_read:
    mov x1, xzr
.global probe_read_access
probe_read_access:
    ldr x2, [x0]
    mov x0, x1
    ret

// u64 probe_write(u64 va): stores zero; 0 if it completed, else the abort's ESR_EL1.
.global probe_write
probe_write:
    mov x1, xzr
.global probe_write_access
probe_write_access:
    str xzr, [x0]
    mov x0, x1
    ret

// u64 fp_survives(u64 seed, u64 pk, u64 len, u64 store_va, u64 tx_cap): fill q0-q31 from
// `seed`, then (if `len` != 0) msgqueue_send `len` bytes at `pk` on `tx_cap`, then (if
// `store_va` != 0) store `seed` there (which may fault to EL2), then check every q
// register: 0 if all kept their values across the traps, else 1 + the first that changed.
.global fp_survives
fp_survives:
    mov x12, x0
    mov x13, x1
    mov x14, x2
    mov x15, x3
    mov x16, x4
.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    add x9, x12, #\n
    fmov d\n, x9
    mvn x10, x9
    mov v\n\().d[1], x10
.endr
    cbz x14, 1f
    ldr x0, ={send}
    mov x1, x16
    mov x2, x14
    mov x3, x13
    mov x4, #1
    hvc #0
1:  cbz x15, 2f
    str x12, [x15]
2:
.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    mov x0, #(\n + 1)
    add x9, x12, #\n
    fmov x10, d\n
    cmp x9, x10
    b.ne 3f
    mvn x9, x9
    mov x10, v\n\().d[1]
    cmp x9, x10
    b.ne 3f
.endr
    mov x0, xzr
3:  ret
"#,
    stack_size = const STACK_SIZE,
    secondary_stack_size = const SECONDARY_STACK_SIZE,
    send = const crate::hvc::MSGQ_SEND,
);

extern "C" {
    fn _secondary_start();
    fn probe_read(va: u64) -> u64;
    fn probe_write(va: u64) -> u64;
    fn fp_survives(seed: u64, pk: u64, len: u64, store_va: u64, tx_cap: u64) -> u64;
}

/// Load from `va` (`write` false) or store zero there: 0, or the ESR_EL1 of the abort the
/// access took (the vectors skip it).
pub fn probe(va: u64, write: bool) -> u64 {
    // SAFETY: the probes touch only `va`; an abort comes back as its ESR, a completed store
    // writes zero to memory the caller chose.
    unsafe {
        if write {
            probe_write(va)
        } else {
            probe_read(va)
        }
    }
}

/// Fill q0-q31, send `pk` on `tx_cap` (if not empty), store `seed` at `store_va` (if not
/// 0), check q0-q31: 0, or 1 + the first register that changed across the traps.
pub fn fp_regs_survive(seed: u64, pk: &[u8], store_va: u64, tx_cap: u64) -> u64 {
    // SAFETY: the routine touches only q0-q31, x0-x16 (caller-saved), the bytes of `pk`
    // (handed to msgqueue_send) and `store_va`, which the caller chose.
    unsafe { fp_survives(seed, pk.as_ptr() as u64, pk.len() as u64, store_va, tx_cap) }
}

/// Where PSCI CPU_ON starts a second vCPU of this image.
pub fn secondary_entry() -> u64 {
    _secondary_start as *const () as u64
}

#[no_mangle]
extern "C" fn secondary_main(index: u64) -> ! {
    crate::agent::secondary(index)
}

/// Where a fatal exception is reported: 0 = HLOS (print and exit), else the agent's mailbox.
pub static FATAL_MAILBOX: AtomicU64 = AtomicU64::new(0);

#[no_mangle]
extern "C" fn el1_fatal(esr: u64, elr: u64, far: u64) -> ! {
    let mb = FATAL_MAILBOX.load(Ordering::Relaxed);
    if mb != 0 {
        crate::mailbox::Mailbox::at(mb).finish(99, [esr, elr, far, 0, 0, 0]);
        crate::hvc::cpu_off()
    }
    crate::console::fail(format_args!(
        "unexpected exception at EL1: ESR {esr:#x} ELR {elr:#x} FAR {far:#x}"
    ))
}

#[no_mangle]
extern "C" fn payload_main(dt: u64, x1: u64, x2: u64, x3: u64, x4: u64) -> ! {
    let info = crate::dt::read(dt);
    if info.vmid == Some(crate::hlos::HLOS_VMID) || info.vmid.is_none() {
        crate::console::init(info.uart);
        crate::hlos::main(&info)
    } else {
        crate::agent::main(&info, x1, x2, x3, x4)
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mb = FATAL_MAILBOX.load(Ordering::Relaxed);
    if mb != 0 {
        crate::mailbox::Mailbox::at(mb).finish(98, [0; 6]);
        crate::hvc::cpu_off()
    }
    crate::console::fail(format_args!("panic: {info}"))
}
