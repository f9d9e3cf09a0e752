//! VMSAv8-64 stage-2 translation tables (4 KiB granule) and stage-2 fault decoding.
//!
//! This is the only code in gunyah-rm that writes stage-2 descriptors or issues TLB
//! maintenance. The RM asks an [`AddressSpace`] (one per VM) to map, unmap, protect and
//! copy-on-write-replace IPA ranges; the address space allocates table pages through a
//! [`TableMemory`] and invalidates TLBs through a [`TlbMaintenance`]. On hardware those are a
//! page allocator and `tlb::HwTlb` (aarch64 only); on the host, the `host` feature
//! provides `host::HostArena` (a simulated physical arena), `host::SharedArena` (one arena
//! shared by several VMs) and `host::RecordingTlb`.
//!
//! Guarantees:
//! * every operation is all-or-nothing: arguments are checked and every table page it needs is
//!   allocated before the first descriptor write; errors leave the tables byte-identical;
//! * break-before-make whenever a valid descriptor is replaced by a valid one with another
//!   output address, block size or memory type; permission-only changes are written in place;
//! * descriptor writes are single 64-bit atomic stores;
//! * TLB invalidation is batched per operation: one `TLBI IPAS2E1IS` per removed or changed leaf,
//!   then `TLBI VMALLE1IS`, or one whole-VMID invalidation above 512 leaves;
//! * empty tables are freed, after the invalidation that makes them unreachable.
//!
//! # Example: how the RM maps, copy-on-write-replaces and unmaps a page
//!
//! ```
//! use gunyah_stage2::host::{HostArena, RecordingTlb};
//! use gunyah_stage2::{Access, AddressSpace, Attrs, Fault, MapFlags, PaRange, Stage2Config, SwBits};
//!
//! // The RM's meaning for the software bits (the crate gives them none).
//! const GOLDEN: SwBits = SwBits::SW2;
//! const COW_COPY: SwBits = SwBits::SW3;
//!
//! // A VM with a 40-bit IPA space and VMID 5; table pages come from a simulated arena.
//! let arena = HostArena::new(0x8000_0000, 64);
//! let config = Stage2Config::new(40, PaRange::Bits40, 5);
//! let mut vm = AddressSpace::new(arena, RecordingTlb::new(), config)?;
//!
//! // Map 2 MiB of a golden image read-only; alignment allows one level-2 block.
//! let golden_pa = 0x1_0000_0000;
//! vm.map(0x4000_0000, 0x20_0000, golden_pa, Attrs::normal_ro().with_sw(GOLDEN), MapFlags::BLOCKS)?;
//! assert_eq!(vm.query(0x4000_3000).unwrap().level, 2);
//!
//! // The guest writes to the page at IPA 0x4000_3000: the MMU raises a stage-2 permission fault.
//! let status = vm.simulate_access(0x4000_3008, Access::Write).unwrap_err();
//! let fault = Fault::decode(status.esr_for(Access::Write), 0x4000_3008, 0).unwrap();
//! assert!(fault.is_write_permission_fault());
//! // HPFAR_EL2 is not valid for a permission fault: the IPA must be resolved from FAR_EL2
//! // (`resolve_ipa_at_s1e1r` at EL2; here the guest's stage 1 is off, so VA == IPA).
//! assert_eq!(fault.ipa, None);
//! let ipa = fault.far.unwrap() & !0xFFF;
//!
//! // Copy-on-write: the RM copies the golden page into a private page, then replaces only that
//! // page's descriptor. The block is split; the other 511 pages keep the golden mapping.
//! let private_pa = 0x2_0000_0000;
//! let old = vm.replace_page(ipa, private_pa, Attrs::normal_rw().with_sw(COW_COPY))?;
//! assert_eq!(old.unwrap().pa_of(ipa), Some(golden_pa + 0x3000));
//! assert_eq!(vm.translate(0x4000_3008).unwrap().0, private_pa + 8);
//! assert_eq!(vm.translate(0x4000_4000).unwrap().0, golden_pa + 0x4000);
//! assert_eq!(vm.simulate_access(0x4000_3008, Access::Write), Ok(private_pa + 8));
//! // The old block was invalidated before the new table went in (break-before-make).
//! assert_eq!(vm.tlb().invalidated_ipas(), vec![0x4000_0000]);
//!
//! // Unmap the page again, then tear the VM down: every table page goes back.
//! vm.unmap(ipa, 0x1000)?;
//! assert!(vm.query(ipa).is_none());
//! let (arena, _tlb) = vm.destroy();
//! assert_eq!(arena.pages_in_use(), 0);
//! # Ok::<(), gunyah_stage2::Error>(())
//! ```
//!
//! # Verification
//!
//! * `cargo test -p gunyah-stage2`: host tests over a traced arena (exact break-before-make and
//!   TLB sequences, N-th allocation failure leaving tables byte-identical, hand-computed
//!   VTCR_EL2 / ESR_EL2 / descriptor values) and property tests against page-granular models.
//! * The hardware paths (`tlb::HwTlb`, `Fault::from_el2_registers`,
//!   `fault::resolve_ipa_at_s1e1r`) run in the bare-metal example `examples/qemu_el2` under
//!   QEMU at EL2 with a guest at EL1 (MMU on) taking a real copy-on-write fault:
//!   `cargo build -p gunyah-stage2 --example qemu_el2_selftest --features qemu-selftest
//!   --target aarch64-unknown-none`, then `qemu-system-aarch64 -machine
//!   virt,virtualization=on,gic-version=3 -cpu max -m 1G -nographic -nic none -semihosting
//!   -kernel <target-dir>/aarch64-unknown-none/debug/examples/qemu_el2_selftest` exits 0.
#![no_std]
#![deny(missing_docs)]

mod address_space;
pub mod descriptor;
mod error;
pub mod fault;
pub mod geometry;
mod memory;
pub mod tlb;
mod update;

#[cfg(any(test, feature = "host"))]
pub mod host;

pub use address_space::{
    Access, AddressSpace, Entry, Leaf, MapFlags, SplitCounters, TableReserve, Update,
};
pub use descriptor::{Attrs, Descriptor, MemAttr, S2Ap, Shareability, SwBits};
pub use error::Error;
pub use fault::{AccessSize, DataSyndrome, DecodeError, Fault, FaultKind, FaultStatus};
pub use geometry::{
    block_size, vttbr, Geometry, PaRange, Stage2Config, VmidBits, BLOCK_1G, BLOCK_2M,
    ENTRIES_PER_TABLE, PAGE_SIZE,
};
pub use memory::TableMemory;
pub use tlb::{TlbMaintenance, MAX_TLBI_IPAS};
