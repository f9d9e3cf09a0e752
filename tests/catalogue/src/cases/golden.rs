//! gmem pools, golden images and copy-on-write (DESIGN.md "Memory model", "Extension
//! messages"; layouts and codes in the `gunyah_rm_abi::ext` docs). Guest accesses are made
//! by the VMs' own vCPUs, so every case here runs on QEMU too (except the protected-VM
//! ones, which need a target that can mark a VM protected).

use alloc::vec;
use alloc::vec::Vec;

use sha2::{Digest as _, Sha256};

use crate::case::{case, Case, Digest, Step, Tag, Tag::*, Want};
use crate::dsl::*;
use crate::ids::{err::*, fault, golden as gf, rights, *};
use crate::tmpl::{at, Tmpl, Val};

/// Offset in the scratch RAM of the golden source (2 MiB aligned).
const G_OFF: u64 = 0x40_0000;
/// Golden image size.
const G_SIZE: u64 = MIB2;
/// Pages of the image with a marker.
const MARKED: u64 = 4;

/// The marker of golden page `i`: 32 bytes of `i ^ 0x5A`.
fn marker(i: u64) -> [u8; 32] {
    [(i as u8) ^ 0x5A; 32]
}

/// The image's contents: zeros (sanitized at create), then the markers HLOS writes.
fn golden_content() -> Vec<u8> {
    let mut b = vec![0u8; G_SIZE as usize];
    for i in 0..MARKED {
        let o = (i * PAGE) as usize;
        b[o..o + 32].copy_from_slice(&marker(i));
    }
    b
}

/// HLOS shares 2 MiB of its RAM with itself alone (sanitized: known contents), writes the
/// markers, and seals it: golden id `g`, its SHA-256 reported (checked against the
/// contents, computed here) and kept in `digest`.
fn seal_golden(c: Case) -> Case {
    let mut c = c
        .send(
            HLOS,
            MEM_SHARE,
            create(
                0x1,
                0,
                &[(HLOS.into(), rights::RWX)],
                &[(ram(G_OFF), G_SIZE.into())],
            ),
        )
        .ok_data(Tmpl::new().cap32("gp"));
    for i in 0..MARKED {
        c = c.fill(ram(G_OFF + i * PAGE), &marker(i));
    }
    let digest: [u8; 32] = Sha256::digest(golden_content()).into();
    c.send(HLOS, GOLDEN_SEAL, seal("gp"))
        .ok_data(Tmpl::new().cap32("g").u32(0u32).bytes(&digest))
        .step(Step::Blob("digest", digest.to_vec()))
}

trait G {
    fn pool(self, s: Slot, var: &'static str, pages: u64) -> Case;
    fn map(self, s: Slot, flags: u16, off: u64, ipa: Val, size: u64, pool: Val) -> Case;
}

impl G for Case {
    /// HLOS creates a gmem pool of `pages` charged to slot `s`.
    fn pool(self, s: Slot, var: &'static str, pages: u64) -> Case {
        self.send(HLOS, GMEM_CREATE, gmem_create(pages * PAGE, s.id()))
            .ok_data(Tmpl::new().cap32(var))
    }
    /// HLOS maps the golden image into slot `s`.
    fn map(self, s: Slot, flags: u16, off: u64, ipa: Val, size: u64, pool: Val) -> Case {
        self.send(
            HLOS,
            GOLDEN_MAP,
            golden_map("g".into(), s.id(), flags, off, ipa, size, pool),
        )
        .ok()
    }
}

fn no_gmem() -> Val {
    gf::NO_GMEM.into()
}

/// A case with the golden image sealed and slot T running.
fn golden_t(name: &'static str, tags: &[Tag]) -> Case {
    seal_golden(case(name, tags).tag(Golden).boot(T, Upto::Running))
}

/// The marker page `i` as read from a mapping.
fn page_bytes(i: u64) -> Want {
    Want::Data(Tmpl::new().bytes(&marker(i)))
}

fn success() -> Vec<Case> {
    let t = T.id();
    vec![
        // Sealing reports the SHA-256 of the contents in SGL order (DESIGN).
        golden_t("seal_reports_the_sha256_of_the_contents", &[]),
        // A read-only mapping: the VM reads the golden bytes.
        golden_t("read_only_golden_mapping_reads_the_image", &[])
            .map(T, 0, 0, gw(0), G_SIZE, no_gmem())
            .read(t, gw(PAGE), 32, page_bytes(1))
            .read(t, gw(3 * PAGE), 32, page_bytes(3))
            .read(t, gw(G_SIZE - 16), 16, Want::Data(Tmpl::new().zeros(16))),
        // CoW: the first write copies the page (COW_BROKEN to the manager); the VM sees its
        // bytes over the golden ones; the image is unchanged for everyone else.
        golden_t("cow_write_copies_one_page", &[Cow, Gmem])
            .boot(U, Upto::Running)
            .pool(T, "pt", 16)
            .map(T, gf::COW, 0, gw(0), G_SIZE, "pt".into())
            .map(U, 0, 0, gw(0), G_SIZE, no_gmem())
            .write(t, gw(PAGE + 8), b"hello", Want::Done)
            .notif(HLOS, N_COW_BROKEN, cow_broken(t, &[gw(PAGE)]))
            .read(
                t,
                gw(PAGE),
                16,
                Want::Data(
                    Tmpl::new()
                        .bytes(&marker(1)[..8])
                        .bytes(b"hello")
                        .bytes(&marker(1)[..3]),
                ),
            )
            .read(U.id(), gw(PAGE), 32, page_bytes(1)),
        // A second write to a copied page needs no copy and tells nobody.
        golden_t("write_after_cow_needs_no_copy", &[Cow, Gmem])
            .pool(T, "pt", 16)
            .map(T, gf::COW, 0, gw(0), G_SIZE, "pt".into())
            .write(t, gw(PAGE), b"one", Want::Done)
            .notif(HLOS, N_COW_BROKEN, cow_broken(t, &[gw(PAGE)]))
            .write(t, gw(PAGE + 3), b"two", Want::Done)
            .read(t, gw(PAGE), 6, Want::Data(Tmpl::new().bytes(b"onetwo"))),
        // A write to a golden mapping without CoW is not served: abort, FAULT_UNSERVED
        // (why 1, no CoW) to the manager; the page is unchanged.
        golden_t("write_without_cow_faults", &[Cow])
            .map(T, 0, 0, gw(0), G_SIZE, no_gmem())
            .write(t, gw(2 * PAGE + 5), b"x", Want::Fault(gw(2 * PAGE)))
            .notif(
                HLOS,
                N_FAULT_UNSERVED,
                fault_unserved(t, fault::NO_COW, gw(2 * PAGE)),
            )
            .read(t, gw(2 * PAGE), 32, page_bytes(2)),
        // Quota: a pool of 2 pages pays for 2 copies; the third is not served:
        // QUOTA_EXHAUSTED then FAULT_UNSERVED (why 4).
        golden_t("cow_beyond_the_quota_faults", &[Cow, Gmem])
            .pool(T, "pt", 2)
            .map(T, gf::COW, 0, gw(0), G_SIZE, "pt".into())
            .write(t, gw(0), b"a", Want::Done)
            .notif(HLOS, N_COW_BROKEN, cow_broken(t, &[gw(0)]))
            .write(t, gw(PAGE), b"b", Want::Done)
            .notif(HLOS, N_COW_BROKEN, cow_broken(t, &[gw(PAGE)]))
            .write(t, gw(2 * PAGE), b"c", Want::Fault(gw(2 * PAGE)))
            .notif(
                HLOS,
                N_QUOTA_EXHAUSTED,
                quota_exhausted(t, "pt".into(), gw(2 * PAGE), 2),
            )
            .notif(
                HLOS,
                N_FAULT_UNSERVED,
                fault_unserved(t, fault::QUOTA, gw(2 * PAGE)),
            )
            .read(t, gw(2 * PAGE), 32, page_bytes(2)),
        // VM_MEM_STATS: private pages, golden pages mapped, CoW copies, quota.
        golden_t(
            "mem_stats_count_golden_pages_and_copies",
            &[Cow, Gmem, Query],
        )
        .pool(T, "pt", 16)
        .map(T, gf::COW, 0, gw(0), G_SIZE, "pt".into())
        .write(t, gw(0), b"a", Want::Done)
        .notif(HLOS, N_COW_BROKEN, cow_broken(t, &[gw(0)]))
        .send(HLOS, VM_MEM_STATS, vmid_req(t))
        .ok_data(Tmpl::new().u64(0u64).u64(511u64).u64(1u64).u64(16u64)),
        // Unmapping after CoW: the copy goes back to its pool; the range is unmapped
        // (a read faults, why 2) and the image can be released.
        golden_t("unmap_after_cow_then_release", &[Cow, Gmem])
            .pool(T, "pt", 16)
            .map(T, gf::COW, 0, gw(0), G_SIZE, "pt".into())
            .write(t, gw(PAGE), b"copy", Want::Done)
            .notif(HLOS, N_COW_BROKEN, cow_broken(t, &[gw(PAGE)]))
            .send(
                HLOS,
                GOLDEN_UNMAP,
                id_vm_range("g".into(), t, gw(0), G_SIZE),
            )
            .ok()
            .send(HLOS, VM_MEM_STATS, vmid_req(t))
            .ok_data(Tmpl::new().u64(0u64).u64(0u64).u64(0u64).u64(16u64))
            .read(t, gw(PAGE), 4, Want::Fault(gw(PAGE)))
            .notif(
                HLOS,
                N_FAULT_UNSERVED,
                fault_unserved(t, fault::UNMAPPED, gw(PAGE)),
            )
            .send(HLOS, GOLDEN_RELEASE, golden_release("g"))
            .ok()
            .send(HLOS, GOLDEN_RELEASE, golden_release("g"))
            .err(HANDLE_INVALID),
        // Release while mapped → MEM_INUSE; the image stays.
        golden_t("release_while_mapped_is_in_use", &[])
            .map(T, 0, 0, gw(0), G_SIZE, no_gmem())
            .send(HLOS, GOLDEN_RELEASE, golden_release("g"))
            .err(MEM_INUSE)
            .read(t, gw(0), 32, page_bytes(0)),
        // A partial unmap keeps the rest mapped.
        golden_t("partial_unmap_keeps_the_rest", &[])
            .map(T, 0, 0, gw(0), G_SIZE, no_gmem())
            .send(HLOS, GOLDEN_UNMAP, id_vm_range("g".into(), t, gw(0), PAGE))
            .ok()
            .read(t, gw(PAGE), 32, page_bytes(1))
            .read(t, gw(0), 4, Want::Fault(gw(0)))
            .notif(
                HLOS,
                N_FAULT_UNSERVED,
                fault_unserved(t, fault::UNMAPPED, gw(0)),
            ),
        // A window of the image at an offset.
        golden_t("map_a_window_at_an_offset", &[])
            .map(T, 0, 2 * PAGE, gw(0), PAGE, no_gmem())
            .read(t, gw(0), 32, page_bytes(2)),
        // One write across two pages copies both; COW_BROKEN is batched per VM.
        golden_t("cow_write_across_two_pages_copies_both", &[Cow, Gmem])
            .pool(T, "pt", 4)
            .map(T, gf::COW, 0, gw(0), G_SIZE, "pt".into())
            // A vCPU's store is translated a page at a time: one fault and one copy per
            // page, reported in address order (in one COW_BROKEN or several: the runner
            // joins a VM's consecutive ones, `run::merge_cow_broken`).
            .write(t, gw(2 * PAGE - 4), b"01234567", Want::Done)
            .notif(HLOS, N_COW_BROKEN, cow_broken(t, &[gw(PAGE), gw(2 * PAGE)]))
            .read(
                t,
                gw(2 * PAGE - 4),
                8,
                Want::Data(Tmpl::new().bytes(b"01234567")),
            )
            .read(t, gw(PAGE), 32, page_bytes(1))
            .send(HLOS, VM_MEM_STATS, vmid_req(t))
            .ok_data(Tmpl::new().u64(0u64).u64(510u64).u64(2u64).u64(4u64)),
        // A copy belongs to its VM: after a CoW write, mapping the image again elsewhere in
        // the same VM shows the golden bytes there.
        golden_t("a_copy_is_per_mapping_page", &[Cow, Gmem])
            .pool(T, "pt", 4)
            .map(T, gf::COW, 0, gw(0), G_SIZE, "pt".into())
            .map(T, 0, 0, gw(G_SIZE), G_SIZE, no_gmem())
            .write(t, gw(0), b"mine", Want::Done)
            .notif(HLOS, N_COW_BROKEN, cow_broken(t, &[gw(0)]))
            .read(t, gw(G_SIZE), 32, page_bytes(0)),
        // Teardown returns every page: a VM with copies is torn down; the census after the
        // case (the runner's) finds every page back; the image is released.
        golden_t("teardown_returns_every_page", &[Cow, Gmem, Lifecycle])
            .pool(T, "pt", 8)
            .map(T, gf::COW, 0, gw(0), G_SIZE, "pt".into())
            .write(t, gw(0), b"1", Want::Done)
            .notif(HLOS, N_COW_BROKEN, cow_broken(t, &[gw(0)]))
            .write(t, gw(5 * PAGE), b"2", Want::Done)
            .notif(HLOS, N_COW_BROKEN, cow_broken(t, &[gw(5 * PAGE)]))
            .teardown(T)
            .send(HLOS, GOLDEN_RELEASE, golden_release("g"))
            .ok(),
        // Protected VMs refuse golden images their config does not name (DENIED)...
        golden_t(
            "protected_vm_refuses_an_image_with_another_digest",
            &[Authorization],
        )
        .step(Step::Protect {
            vm: t,
            digests: vec![Digest::Lit([0xAB; 32])],
        })
        .send(
            HLOS,
            GOLDEN_MAP,
            golden_map("g".into(), t, 0, 0, gw(0), G_SIZE, no_gmem()),
        )
        .err(DENIED),
        // ...and accept one whose digest it names.
        golden_t("protected_vm_accepts_the_image_it_names", &[Authorization])
            .step(Step::Protect {
                vm: t,
                digests: vec![Digest::Var("digest")],
            })
            .map(T, 0, 0, gw(0), G_SIZE, no_gmem())
            .read(t, gw(0), 32, page_bytes(0)),
    ]
}

/// Many VMs × pages: four clones map the image with CoW, each writes its own marker to
/// its own page; each then sees its write and the golden bytes everywhere else.
fn many_clones() -> Case {
    let slots = [T, U, W, X];
    let mut c = seal_golden(case(
        "many_vms_times_pages_stay_apart",
        &[Golden, Cow, Gmem],
    ));
    for s in slots {
        c = c.boot(s, Upto::Running);
    }
    for (k, s) in slots.iter().enumerate() {
        let pool: &'static str = ["pt", "pu", "pw", "px"][k];
        c = c
            .pool(*s, pool, 4)
            .map(*s, gf::COW, 0, gw(0), G_SIZE, pool.into());
    }
    for (k, s) in slots.iter().enumerate() {
        let p = gw(k as u64 * PAGE);
        c = c.write(s.id(), p, &[0xC0 + k as u8; 8], Want::Done).notif(
            HLOS,
            N_COW_BROKEN,
            cow_broken(s.id(), &[p]),
        );
    }
    for (k, s) in slots.iter().enumerate() {
        for j in 0..slots.len() as u64 {
            let want = if j == k as u64 {
                Want::Data(
                    Tmpl::new()
                        .bytes(&[0xC0 + k as u8; 8])
                        .bytes(&marker(j)[8..]),
                )
            } else {
                page_bytes(j)
            };
            c = c.read(s.id(), gw(j * PAGE), 32, want);
        }
    }
    c
}

fn errors() -> Vec<Case> {
    let t = T.id();
    let map_err = |name, body: fn() -> Tmpl, code| {
        golden_t(name, &[])
            .pool(T, "pt", 4)
            .send(HLOS, GOLDEN_MAP, body())
            .err(code)
    };
    vec![
        map_err(
            "golden_map_of_an_unknown_image",
            || golden_map(at("g", 1), T.id(), 0, 0, gw(0), G_SIZE, no_gmem()),
            HANDLE_INVALID,
        ),
        map_err(
            "golden_map_beyond_the_image",
            || golden_map("g".into(), T.id(), 0, PAGE, gw(0), G_SIZE, no_gmem()),
            ARGUMENT_INVALID,
        ),
        map_err(
            "golden_map_at_an_unaligned_ipa",
            || golden_map("g".into(), T.id(), 0, 0, gw(0x800), PAGE, no_gmem()),
            ARGUMENT_INVALID,
        ),
        map_err(
            "golden_map_cow_without_a_pool",
            || golden_map("g".into(), T.id(), gf::COW, 0, gw(0), G_SIZE, no_gmem()),
            ARGUMENT_INVALID,
        ),
        map_err(
            "golden_map_with_unknown_flags",
            || golden_map("g".into(), T.id(), 0x4, 0, gw(0), G_SIZE, no_gmem()),
            ARGUMENT_INVALID,
        ),
        map_err(
            "golden_map_with_a_non_zero_reserved_word",
            || {
                golden_map("g".into(), T.id(), 0, 0, gw(0), G_SIZE, no_gmem())
                    .cut(4)
                    .u32(1u32)
            },
            ARGUMENT_INVALID,
        ),
        map_err(
            "golden_map_of_an_unknown_vm",
            || golden_map("g".into(), 0xB5u16.into(), 0, 0, gw(0), G_SIZE, no_gmem()),
            VMID_INVALID,
        ),
        // A pool pays only for its own VM's copies.
        golden_t("golden_map_cow_paid_by_another_vms_pool", &[Gmem])
            .boot(U, Upto::Load)
            .pool(U, "pu", 4)
            .send(
                HLOS,
                GOLDEN_MAP,
                golden_map("g".into(), t, gf::COW, 0, gw(0), G_SIZE, "pu".into()),
            )
            .err(DENIED),
        // Into a range already in use.
        golden_t("golden_map_over_a_mapping", &[])
            .map(T, 0, 0, gw(0), G_SIZE, no_gmem())
            .send(
                HLOS,
                GOLDEN_MAP,
                golden_map("g".into(), t, 0, 0, gw(PAGE), PAGE, no_gmem()),
            )
            .err(MEM_INVALID),
        // GOLDEN_UNMAP of what is not mapped.
        golden_t("golden_unmap_of_an_unmapped_range", &[])
            .send(HLOS, GOLDEN_UNMAP, id_vm_range("g".into(), t, gw(0), PAGE))
            .err(MEM_INVALID),
        // GOLDEN_SEAL: unknown handle, flags, a parcel someone accepted, one open for APPEND.
        case("golden_seal_of_an_unknown_parcel", &[Golden])
            .send(HLOS, GOLDEN_SEAL, seal(0xFFFF_FF00u32))
            .err(HANDLE_INVALID),
        case("golden_seal_with_flags", &[Golden])
            .send(
                HLOS,
                MEM_SHARE,
                create(
                    0,
                    0,
                    &[(HLOS.into(), rights::RWX)],
                    &[(ram(0), PAGE.into())],
                ),
            )
            .ok_data(Tmpl::new().cap32("p"))
            .send(HLOS, GOLDEN_SEAL, Tmpl::new().u32("p").u32(1u32))
            .err(ARGUMENT_INVALID),
        case("golden_seal_of_an_accepted_parcel", &[Golden, Memparcel])
            .boot(T, Upto::Running)
            .send(
                HLOS,
                MEM_LEND,
                create(0, 0, &[(t, rights::RW)], &[(ram(0), PAGE.into())]),
            )
            .ok_data(Tmpl::new().cap32("p"))
            .send(T.vm, MEM_ACCEPT, accept("p", trans::LEND))
            .ok_data(Tmpl::new().any(20))
            .send(HLOS, GOLDEN_SEAL, seal("p"))
            .err(MEM_INUSE),
        case(
            "golden_seal_of_a_parcel_open_for_append",
            &[Golden, Memparcel],
        )
        .send(
            HLOS,
            MEM_SHARE,
            create(
                0x2,
                0,
                &[(HLOS.into(), rights::RWX)],
                &[(ram(0), PAGE.into())],
            ),
        )
        .ok_data(Tmpl::new().cap32("p"))
        .send(HLOS, GOLDEN_SEAL, seal("p"))
        .err(DENIED),
        case("golden_release_of_an_unknown_image", &[Golden])
            .send(HLOS, GOLDEN_RELEASE, golden_release(0xFFFF_0000u32))
            .err(HANDLE_INVALID),
    ]
}

/// gmem pools and bindings (GMEM_CREATE, GMEM_BIND, GMEM_UNBIND).
fn gmem() -> Vec<Case> {
    let t = T.id();
    let with_pool = |name| case(name, &[Gmem]).boot(T, Upto::Running).pool(T, "pt", 4);
    vec![
        // An eager binding: the pages are there, zeroed, RW for the VM.
        with_pool("gmem_bind_eager_pages_are_zero_and_writable")
            .send(
                HLOS,
                GMEM_BIND,
                gmem_bind("pt".into(), t, rights::RW, 0, 0, gw(0), 2 * PAGE),
            )
            .ok_data(Tmpl::new().cap32("b"))
            .read(t, gw(PAGE), 16, Want::Data(Tmpl::new().zeros(16)))
            .write(t, gw(PAGE), b"pool page", Want::Done)
            .read(t, gw(PAGE), 9, Want::Data(Tmpl::new().bytes(b"pool page")))
            .send(HLOS, VM_MEM_STATS, vmid_req(t))
            .ok_data(Tmpl::new().u64(2u64).u64(0u64).u64(0u64).u64(4u64)),
        // A demand-paged binding: the first touch makes a zero page.
        with_pool("gmem_bind_demand_paged_fills_on_first_touch")
            .send(
                HLOS,
                GMEM_BIND,
                gmem_bind("pt".into(), t, rights::RW, 1, 0, gw(0), 4 * PAGE),
            )
            .ok_data(Tmpl::new().any(4))
            .write(t, gw(3 * PAGE), b"late", Want::Done)
            .read(
                t,
                gw(3 * PAGE),
                8,
                Want::Data(Tmpl::new().bytes(b"late").zeros(4)),
            ),
        // The VM binds its own pool too.
        with_pool("gmem_bind_by_the_vm_itself")
            .send(
                t,
                GMEM_BIND,
                gmem_bind("pt".into(), t, rights::RW, 0, 0, gw(0), PAGE),
            )
            .ok_data(Tmpl::new().any(4)),
        // A read-only binding: a write is not permitted (FAULT_UNSERVED why 3).
        with_pool("gmem_read_only_binding_write_faults")
            .send(
                HLOS,
                GMEM_BIND,
                gmem_bind("pt".into(), t, rights::R, 0, 0, gw(0), PAGE),
            )
            .ok_data(Tmpl::new().any(4))
            .write(t, gw(0), b"x", Want::Fault(gw(0)))
            .notif(
                HLOS,
                N_FAULT_UNSERVED,
                fault_unserved(t, fault::NOT_PERMITTED, gw(0)),
            ),
        // Unbinding: the range is gone (a read faults, why 2 unmapped).
        with_pool("gmem_unbind_removes_the_range")
            .send(
                HLOS,
                GMEM_BIND,
                gmem_bind("pt".into(), t, rights::RW, 0, 0, gw(0), PAGE),
            )
            .ok_data(Tmpl::new().any(4))
            .send(HLOS, GMEM_UNBIND, id_vm_range("pt".into(), t, gw(0), PAGE))
            .ok()
            .read(t, gw(0), 4, Want::Fault(gw(0)))
            .notif(
                HLOS,
                N_FAULT_UNSERVED,
                fault_unserved(t, fault::UNMAPPED, gw(0)),
            ),
        // GMEM_CREATE errors: size 0 or unaligned, flags, reserved, unknown owner, HLOS.
        with_pool("gmem_create_of_size_zero")
            .send(HLOS, GMEM_CREATE, gmem_create(0, t))
            .err(ARGUMENT_INVALID),
        with_pool("gmem_create_of_an_unaligned_size")
            .send(HLOS, GMEM_CREATE, gmem_create(PAGE + 1, t))
            .err(ARGUMENT_INVALID),
        with_pool("gmem_create_with_flags")
            .send(
                HLOS,
                GMEM_CREATE,
                Tmpl::new().u64(PAGE).u32(1u32).u16(t).u16(0u16),
            )
            .err(ARGUMENT_INVALID),
        with_pool("gmem_create_with_a_reserved_field")
            .send(
                HLOS,
                GMEM_CREATE,
                Tmpl::new().u64(PAGE).u32(0u32).u16(t).u16(1u16),
            )
            .err(ARGUMENT_INVALID),
        with_pool("gmem_create_for_an_unknown_vm")
            .send(HLOS, GMEM_CREATE, gmem_create(PAGE, 0xB5u16))
            .err(VMID_INVALID),
        with_pool("gmem_create_for_hlos")
            .send(HLOS, GMEM_CREATE, gmem_create(PAGE, HLOS))
            .err(DENIED),
        with_pool("gmem_create_mis_sized")
            .send(HLOS, GMEM_CREATE, gmem_create(PAGE, t).cut(1))
            .err(MSG_INVALID),
        // GMEM_BIND errors.
        with_pool("gmem_bind_beyond_the_pool")
            .send(
                HLOS,
                GMEM_BIND,
                gmem_bind("pt".into(), t, rights::RW, 0, 0, gw(0), 5 * PAGE),
            )
            .err(ARGUMENT_INVALID),
        with_pool("gmem_bind_write_only")
            .send(
                HLOS,
                GMEM_BIND,
                gmem_bind("pt".into(), t, 0x2, 0, 0, gw(0), PAGE),
            )
            .err(ARGUMENT_INVALID),
        with_pool("gmem_bind_of_an_unknown_pool")
            .send(
                HLOS,
                GMEM_BIND,
                gmem_bind(at("pt", 9), t, rights::RW, 0, 0, gw(0), PAGE),
            )
            .err(HANDLE_INVALID),
        with_pool("gmem_bind_with_unknown_flags")
            .send(
                HLOS,
                GMEM_BIND,
                gmem_bind("pt".into(), t, rights::RW, 2, 0, gw(0), PAGE),
            )
            .err(ARGUMENT_INVALID),
        with_pool("gmem_bind_into_hlos")
            .send(
                HLOS,
                GMEM_BIND,
                gmem_bind("pt".into(), HLOS.into(), rights::RW, 0, 0, gw(0), PAGE),
            )
            .err(DENIED),
        with_pool("gmem_bind_of_pool_pages_already_bound")
            .send(
                HLOS,
                GMEM_BIND,
                gmem_bind("pt".into(), t, rights::RW, 0, 0, gw(0), 2 * PAGE),
            )
            .ok_data(Tmpl::new().any(4))
            .send(
                HLOS,
                GMEM_BIND,
                gmem_bind("pt".into(), t, rights::RW, 1, PAGE, gw(0x10_0000), PAGE),
            )
            .err(MEM_INUSE),
        with_pool("gmem_bind_over_a_bound_range")
            .send(
                HLOS,
                GMEM_BIND,
                gmem_bind("pt".into(), t, rights::RW, 0, 0, gw(0), 2 * PAGE),
            )
            .ok_data(Tmpl::new().any(4))
            .send(
                HLOS,
                GMEM_BIND,
                gmem_bind("pt".into(), t, rights::RW, 1, 2 * PAGE, gw(PAGE), PAGE),
            )
            .err(MEM_INVALID),
    ]
}

pub fn cases() -> Vec<Case> {
    let mut v = success();
    v.push(many_clones());
    v.extend(errors());
    v.extend(gmem());
    v
}
