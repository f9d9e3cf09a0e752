//! Memparcels (§3, §7, §12.1): every call's success path with its memory effects and
//! notifications, and every error path of the spec sheet with its code.

use alloc::vec;
use alloc::vec::Vec;

use crate::case::{case, Case, Tag, Tag::*, Want};
use crate::dsl::*;
use crate::ids::{accept as af, err::*, notify as nf, rights, trans, *};
use crate::tmpl::{Tmpl, Val};

fn pg(off: u64) -> (Val, Val) {
    (ram(off), PAGE.into())
}

fn t() -> Val {
    T.id()
}

fn hlos() -> Val {
    HLOS.into()
}

/// A case with T allocated (LOAD): it may be named in ACLs, it cannot send.
fn with_t(name: &'static str, tags: &[Tag]) -> Case {
    case(name, tags).tag(Memparcel).boot(T, Upto::Load)
}

/// A case with T running: it may accept, release, notify.
fn with_t_running(name: &'static str, tags: &[Tag]) -> Case {
    case(name, tags).tag(Memparcel).boot(T, Upto::Running)
}

trait Mp {
    fn lend(self, h: &'static str, off: u64, r: u8) -> Case;
    fn share(self, h: &'static str, off: u64, r: u8) -> Case;
    fn accept_here(self, h: &'static str, tr: u8, ipa: &'static str) -> Case;
}

impl Mp for Case {
    /// HLOS lends one page at `ram + off` to T with `r`.
    fn lend(self, h: &'static str, off: u64, r: u8) -> Case {
        self.send(HLOS, MEM_LEND, create(0, 0, &[(t(), r)], &[pg(off)]))
            .ok_data(Tmpl::new().cap32(h))
    }
    /// HLOS shares one page with T (HLOS keeps RWX).
    fn share(self, h: &'static str, off: u64, r: u8) -> Case {
        self.send(
            HLOS,
            MEM_SHARE,
            create(0, 0, &[(hlos(), rights::RWX), (t(), r)], &[pg(off)]),
        )
        .ok_data(Tmpl::new().cap32(h))
    }
    /// T accepts a one-page parcel where the RM picks: one entry {ipa, 4 KiB}.
    fn accept_here(self, h: &'static str, tr: u8, ipa: &'static str) -> Case {
        self.send(T.vm, MEM_ACCEPT, accept(h, tr)).ok_data(
            Tmpl::new()
                .u16(1u16)
                .u8(0u8)
                .u8(0u8)
                .cap64_aligned(ipa, PAGE)
                .u64(PAGE),
        )
    }
}

fn success() -> Vec<Case> {
    let data = pattern(0x31, 64);
    vec![
        // §7.2/§7.3: lend, accept (RM picks the IPA), the guest sees the owner's bytes and
        // writes; release; reclaim; the owner sees the guest's bytes (no sanitize).
        with_t_running("lend_accept_use_release_reclaim", &[])
            .fill(ram(0), &data)
            .lend("h", 0, rights::RW)
            .accept_here("h", trans::LEND, "ipa")
            .read(t(), "ipa", 64, Want::Data(Tmpl::new().bytes(&data)))
            .write(t(), "ipa", b"from the guest", Want::Done)
            .send(T.vm, MEM_RELEASE, handle_flags("h", 0))
            .ok()
            .send(HLOS, MEM_RECLAIM, handle_flags("h", 0))
            .ok()
            .read(
                HLOS,
                ram(0),
                14,
                Want::Data(Tmpl::new().bytes(b"from the guest")),
            ),
        // SHARE: the owner keeps its mapping and sees the acceptor's writes at once.
        with_t_running("share_accept_both_see_the_same_page", &[])
            .share("h", 0, rights::RW)
            .accept_here("h", trans::SHARE, "ipa")
            .write(t(), "ipa", b"shared", Want::Done)
            .read(HLOS, ram(0), 6, Want::Data(Tmpl::new().bytes(b"shared")))
            .send(T.vm, MEM_RELEASE, handle_flags("h", 0))
            .ok()
            .send(HLOS, MEM_RECLAIM, handle_flags("h", 0))
            .ok(),
        // A read-only share: the acceptor's write faults and is not served; its manager is
        // told (FAULT_UNSERVED, why 3 = not permitted).
        with_t_running("read_only_share_write_faults", &[Cow])
            .share("h", 0, rights::R)
            .accept_here("h", trans::SHARE, "ipa")
            .write(t(), "ipa", b"x", Want::Fault("ipa".into()))
            .notif(
                HLOS,
                N_FAULT_UNSERVED,
                fault_unserved(t(), crate::ids::fault::NOT_PERMITTED, "ipa"),
            ),
        // DONATE: ownership moves on the DONE accept; the parcel is gone (§7.3).
        with_t_running("donate_accept_moves_ownership", &[])
            .fill(ram(0), b"gift")
            .send(
                HLOS,
                MEM_DONATE,
                create(0, 0, &[(t(), rights::RWX)], &[pg(0)]),
            )
            .ok_data(Tmpl::new().cap32("h"))
            .accept_here("h", trans::DONATE, "ipa")
            .read(t(), "ipa", 4, Want::Data(Tmpl::new().bytes(b"gift")))
            .send(HLOS, MEM_RECLAIM, handle_flags("h", 0))
            .err(HANDLE_INVALID),
        // §12.1: an un-accepted DONATE can be reclaimed.
        with_t("unaccepted_donate_can_be_reclaimed", &[Observed])
            .send(
                HLOS,
                MEM_DONATE,
                create(0, 0, &[(t(), rights::RWX)], &[pg(0)]),
            )
            .ok_data(Tmpl::new().cap32("h"))
            .send(HLOS, MEM_RECLAIM, handle_flags("h", 0))
            .ok()
            .fill(ram(0), b"mine again"),
        // §3.5: the acceptor names the IPA: a standard reply, mapped there.
        with_t_running("accept_at_a_chosen_ipa", &[])
            .fill(ram(0), b"here")
            .lend("h", 0, rights::RW)
            .send(
                T.vm,
                MEM_ACCEPT,
                accept_full(
                    "h",
                    0,
                    trans::LEND,
                    af::DONE,
                    0,
                    &[],
                    &[(gw(0), PAGE.into())],
                    0,
                    &[],
                ),
            )
            .ok()
            .read(t(), gw(0), 4, Want::Data(Tmpl::new().bytes(b"here"))),
        // §3.5: the validation flags pass when label, ACL/attrs and sanitize match.
        with_t_running("accept_with_every_validation_passing", &[])
            .send(
                HLOS,
                MEM_LEND,
                create(0x1, 0x77, &[(t(), rights::RW)], &[pg(0)]),
            )
            .ok_data(Tmpl::new().cap32("h"))
            .send(
                T.vm,
                MEM_ACCEPT,
                accept_full(
                    "h",
                    0,
                    trans::LEND,
                    af::DONE | af::VALIDATE_SANITIZED | af::VALIDATE_LABEL | af::VALIDATE_ACL_ATTR,
                    0x77,
                    &[(t(), rights::RW)],
                    &[],
                    0,
                    &[],
                ),
            )
            .ok_data(Tmpl::new().u16(1u16).u16(0u16).cap64("ipa").u64(PAGE)),
        // §7.2: SANITIZE at create zeroes the pages at once.
        with_t_running("sanitize_at_create_zeroes", &[])
            .fill(ram(0), b"secret")
            .send(
                HLOS,
                MEM_LEND,
                create(0x1, 0, &[(t(), rights::RW)], &[pg(0)]),
            )
            .ok_data(Tmpl::new().cap32("h"))
            .accept_here("h", trans::LEND, "ipa")
            .read(t(), "ipa", 6, Want::Data(Tmpl::new().zeros(6))),
        // §7.3: release with SANITIZE: the memory is zeroed when the owner reclaims it.
        with_t_running("release_with_sanitize_zeroes_at_reclaim", &[])
            .lend("h", 0, rights::RW)
            .accept_here("h", trans::LEND, "ipa")
            .write(t(), "ipa", b"guest data", Want::Done)
            .send(T.vm, MEM_RELEASE, handle_flags("h", 1))
            .ok()
            .send(HLOS, MEM_RECLAIM, handle_flags("h", 0))
            .ok()
            .read(HLOS, ram(0), 10, Want::Data(Tmpl::new().zeros(10))),
        // §7.3: reclaim with SANITIZE zeroes too.
        with_t("reclaim_with_sanitize_zeroes", &[])
            .fill(ram(0), b"old bytes")
            .lend("h", 0, rights::RW)
            .send(HLOS, MEM_RECLAIM, handle_flags("h", 1))
            .ok()
            .read(HLOS, ram(0), 9, Want::Data(Tmpl::new().zeros(9))),
        // §3.5, §7.3: a 2 MiB parcel: the RM picks a 2 MiB aligned IPA.
        with_t_running("a_2mib_parcel_is_placed_2mib_aligned", &[])
            .send(
                HLOS,
                MEM_LEND,
                create(0, 0, &[(t(), rights::RW)], &[(ram(MIB2), MIB2.into())]),
            )
            .ok_data(Tmpl::new().cap32("h"))
            .send(T.vm, MEM_ACCEPT, accept("h", trans::LEND))
            .ok_data(
                Tmpl::new()
                    .u16(1u16)
                    .u16(0u16)
                    .cap64_aligned("ipa", MIB2)
                    .u64(MIB2),
            ),
        // §3.5: two separate regions without MAP_CONTIGUOUS: one entry each.
        with_t_running("two_regions_get_two_ipas", &[])
            .send(
                HLOS,
                MEM_LEND,
                create(0, 0, &[(t(), rights::RW)], &[pg(0), pg(0x10000)]),
            )
            .ok_data(Tmpl::new().cap32("h"))
            .send(T.vm, MEM_ACCEPT, accept("h", trans::LEND))
            .ok_data(
                Tmpl::new()
                    .u16(2u16)
                    .u16(0u16)
                    .cap64("a")
                    .u64(PAGE)
                    .cap64("b")
                    .u64(PAGE),
            ),
        // With MAP_CONTIGUOUS: a single entry covering the parcel.
        with_t_running("map_contiguous_gives_one_range", &[])
            .fill(ram(0x10000), b"second")
            .send(
                HLOS,
                MEM_LEND,
                create(0, 0, &[(t(), rights::RW)], &[pg(0), pg(0x10000)]),
            )
            .ok_data(Tmpl::new().cap32("h"))
            .send(
                T.vm,
                MEM_ACCEPT,
                accept_full(
                    "h",
                    0,
                    trans::LEND,
                    af::DONE | af::MAP_CONTIGUOUS,
                    0,
                    &[],
                    &[],
                    0,
                    &[],
                ),
            )
            .ok_data(Tmpl::new().u16(1u16).u16(0u16).cap64("a").u64(2 * PAGE))
            .read(
                t(),
                crate::tmpl::at("a", PAGE),
                6,
                Want::Data(Tmpl::new().bytes(b"second")),
            ),
        // §3.4, §3.7: NOTIFY(SHARED) sends MEM_SHARED to the named VM: region sizes only.
        with_t_running("notify_shared_sends_mem_shared", &[])
            .share("h", 0, rights::RW)
            .send(HLOS, MEM_NOTIFY, notify("h", nf::SHARED, 0x55, &[t()]))
            .notif(
                t(),
                N_MEM_SHARED,
                Tmpl::new()
                    .u32("h")
                    .u8(0u8)
                    .u8(trans::SHARE)
                    .u8(0u8)
                    .u8(0u8)
                    .u16(HLOS)
                    .u16(0u16)
                    .u32(0u32)
                    .u32(0x55u32)
                    .then(acl(&[(hlos(), rights::RWX), (t(), rights::RW)]))
                    .u16(1u16)
                    .u16(0u16)
                    .u64(PAGE)
                    .then(attrs(&[])),
            )
            .ok(),
        // §3.7: NOTIFY(ACCEPTED) from the acceptor → MEM_ACCEPTED to the owner; then
        // NOTIFY(RELEASED) after its release → MEM_RELEASED.
        with_t_running("notify_accepted_and_released_reach_the_owner", &[])
            .lend("h", 0, rights::RW)
            .accept_here("h", trans::LEND, "ipa")
            .send(T.vm, MEM_NOTIFY, notify("h", nf::ACCEPTED, 9, &[]))
            .notif(HLOS, N_MEM_ACCEPTED, owner_notif("h", t(), 9))
            .ok()
            .send(T.vm, MEM_RELEASE, handle_flags("h", 0))
            .ok()
            .send(T.vm, MEM_NOTIFY, notify("h", nf::RELEASED, 9, &[]))
            .notif(HLOS, N_MEM_RELEASED, owner_notif("h", t(), 9))
            .ok(),
        // §3.7: NOTIFY(RECALL) → MEM_RECALL {handle, tag} to each named VM.
        with_t_running("notify_recall_sends_mem_recall", &[])
            .lend("h", 0, rights::RW)
            .accept_here("h", trans::LEND, "ipa")
            .send(HLOS, MEM_NOTIFY, notify("h", nf::RECALL, 3, &[t()]))
            .notif(t(), N_MEM_RECALL, Tmpl::new().u32("h").u32(3u32))
            .ok(),
        // §3.7: MEM_SHARED to a VM in READY is not sent: the RM accepts for it and tells
        // the owner MEM_ACCEPTED.
        case("notify_shared_to_a_ready_vm_accepts_for_it", &[Memparcel])
            .boot(T, Upto::Ready)
            .share("h", 0, rights::RW)
            .send(HLOS, MEM_NOTIFY, notify("h", nf::SHARED, 4, &[t()]))
            .notif(HLOS, N_MEM_ACCEPTED, owner_notif("h", t(), 4))
            .ok()
            .send(HLOS, MEM_RECLAIM, handle_flags("h", 0))
            .err(MEM_INUSE),
        // §3.2: created with APPEND, completed by MEM_APPEND(DONE); then accepted whole.
        with_t_running("append_then_accept_the_whole_parcel", &[])
            .send(
                HLOS,
                MEM_LEND,
                create(0x2, 0, &[(t(), rights::RW)], &[pg(0)]),
            )
            .ok_data(Tmpl::new().cap32("h"))
            .send(HLOS, MEM_APPEND, append("h", 0, &[pg(0x10000)]))
            .ok()
            .send(HLOS, MEM_APPEND, append("h", 1, &[pg(0x20000)]))
            .ok()
            .send(T.vm, MEM_ACCEPT, accept("h", trans::LEND))
            .ok_data(Tmpl::new().u16(3u16).u16(0u16).any(48)),
        // §3.6: LOOKUP_SGL finds the owner's parcel by ACL and SGL.
        with_t("lookup_sgl_finds_the_parcel", &[])
            .lend("h", 0, rights::RW)
            .send(
                HLOS,
                MEM_LOOKUP_SGL,
                lookup(0, &[(t(), rights::RW)], &[pg(0)]),
            )
            .ok_data(Tmpl::new().u32("h")),
        // §12.1: the label is not a match key.
        with_t("lookup_sgl_ignores_the_label", &[Observed])
            .send(HLOS, MEM_LEND, create(0, 5, &[(t(), rights::RW)], &[pg(0)]))
            .ok_data(Tmpl::new().cap32("h"))
            .send(
                HLOS,
                MEM_LOOKUP_SGL,
                lookup(6, &[(t(), rights::RW)], &[pg(0)]),
            )
            .ok_data(Tmpl::new().u32("h")),
        // §12.1: UNCACHED on normal memory → OK.
        with_t("uncached_attr_on_normal_memory_is_accepted", &[Observed])
            .send(
                HLOS,
                MEM_LEND,
                create_full(0, 0, 0, &[(t(), rights::RW)], &[pg(0)], &[(2, t())]),
            )
            .ok_data(Tmpl::new().cap32("h")),
        // §12.1: MEM_RECLAIM of a parcel still open for APPEND → OK.
        with_t("reclaim_of_a_parcel_open_for_append", &[Observed])
            .send(
                HLOS,
                MEM_LEND,
                create(0x2, 0, &[(t(), rights::RW)], &[pg(0)]),
            )
            .ok_data(Tmpl::new().cap32("h"))
            .send(HLOS, MEM_RECLAIM, handle_flags("h", 0))
            .ok(),
    ]
}

/// One refused create: `id` with `body` as HLOS.
fn create_refused(name: &'static str, id: u32, body: Tmpl, code: u32, observed: bool) -> Case {
    let c = with_t(name, &[]);
    let c = if observed { c.tag(Observed) } else { c };
    c.send(HLOS, id, body).err(code)
}

fn create_errors() -> Vec<Case> {
    let rw = rights::RW;
    vec![
        // §7.2: ACL and SGL must be non-empty.
        create_refused(
            "create_with_an_empty_acl",
            MEM_LEND,
            create(0, 0, &[], &[pg(0)]),
            ARGUMENT_INVALID,
            false,
        ),
        create_refused(
            "create_with_an_empty_sgl",
            MEM_LEND,
            create(0, 0, &[(t(), rw)], &[]),
            ARGUMENT_INVALID,
            false,
        ),
        // §7.2: SHARE needs the owner in the ACL; LEND and DONATE must not have it.
        create_refused(
            "share_without_the_owner_in_the_acl",
            MEM_SHARE,
            create(0, 0, &[(t(), rw)], &[pg(0)]),
            ARGUMENT_INVALID,
            false,
        ),
        create_refused(
            "lend_with_the_owner_in_the_acl",
            MEM_LEND,
            create(0, 0, &[(hlos(), rights::RWX), (t(), rw)], &[pg(0)]),
            ARGUMENT_INVALID,
            false,
        ),
        create_refused(
            "donate_with_the_owner_in_the_acl",
            MEM_DONATE,
            create(0, 0, &[(hlos(), rights::RWX)], &[pg(0)]),
            ARGUMENT_INVALID,
            false,
        ),
        // §7.2: DONATE: exactly one ACL entry, with the maximum rights (else DENIED).
        create_refused(
            "donate_to_two_vms",
            MEM_DONATE,
            create(
                0,
                0,
                &[(t(), rights::RWX), (Val::V(T.vm, 1), rights::RWX)],
                &[pg(0)],
            ),
            ARGUMENT_INVALID,
            false,
        ),
        create_refused(
            "donate_without_full_rights",
            MEM_DONATE,
            create(0, 0, &[(t(), rw)], &[pg(0)]),
            DENIED,
            false,
        ),
        // §7.2: ACL VMIDs unique; rights R, RX, RW or RWX only.
        create_refused(
            "create_with_a_duplicate_acl_vmid",
            MEM_SHARE,
            create(
                0,
                0,
                &[(hlos(), rights::RWX), (t(), rw), (t(), rights::R)],
                &[pg(0)],
            ),
            ARGUMENT_INVALID,
            false,
        ),
        create_refused(
            "create_with_write_only_rights",
            MEM_LEND,
            create(0, 0, &[(t(), 0x2)], &[pg(0)]),
            ARGUMENT_INVALID,
            false,
        ),
        create_refused(
            "create_with_execute_only_rights",
            MEM_LEND,
            create(0, 0, &[(t(), 0x1)], &[pg(0)]),
            ARGUMENT_INVALID,
            false,
        ),
        create_refused(
            "create_with_no_rights",
            MEM_LEND,
            create(0, 0, &[(t(), 0)], &[pg(0)]),
            ARGUMENT_INVALID,
            false,
        ),
        create_refused(
            "create_with_write_execute_rights",
            MEM_LEND,
            create(0, 0, &[(t(), 0x3)], &[pg(0)]),
            ARGUMENT_INVALID,
            false,
        ),
        // §7.2: attrs name VMs of the ACL (VMID_INVALID); §12.1: duplicates → ARGUMENT_INVALID.
        create_refused(
            "attr_for_a_vm_not_in_the_acl",
            MEM_LEND,
            create_full(0, 0, 0, &[(t(), rw)], &[pg(0)], &[(0, hlos())]),
            VMID_INVALID,
            false,
        ),
        create_refused(
            "attr_twice_for_one_vm",
            MEM_LEND,
            create_full(0, 0, 0, &[(t(), rw)], &[pg(0)], &[(0, t()), (0, t())]),
            ARGUMENT_INVALID,
            true,
        ),
        // §7.2: IO memory ⇔ DEVICE attr; only NORMAL, DEVICE, UNCACHED, CACHED exist.
        create_refused(
            "device_attr_on_normal_memory",
            MEM_LEND,
            create_full(0, 0, 0, &[(t(), rw)], &[pg(0)], &[(1, t())]),
            ARGUMENT_INVALID,
            false,
        ),
        create_refused(
            "an_attr_value_that_does_not_exist",
            MEM_LEND,
            create_full(0, 0, 0, &[(t(), rw)], &[pg(0)], &[(4, t())]),
            ARGUMENT_INVALID,
            false,
        ),
        // §7.2: DONATE only with default attrs.
        create_refused(
            "donate_with_a_cached_attr",
            MEM_DONATE,
            create_full(0, 0, 0, &[(t(), rights::RWX)], &[pg(0)], &[(3, t())]),
            ARGUMENT_INVALID,
            false,
        ),
        // §7.2: SANITIZE on IO memory → ARGUMENT_INVALID.
        create_refused(
            "sanitize_on_io_memory",
            MEM_LEND,
            create_full(1, 0x1, 0, &[(t(), rw)], &[pg(0)], &[]),
            ARGUMENT_INVALID,
            false,
        ),
        // §12.1 mem type: an IO parcel of normal RAM → MEM_INVALID.
        create_refused(
            "io_parcel_of_normal_ram",
            MEM_LEND,
            create_full(1, 0, 0, &[(t(), rw)], &[pg(0)], &[]),
            MEM_INVALID,
            true,
        ),
        // §7.2: page-aligned IPA and size (ARGUMENT_INVALID).
        create_refused(
            "sgl_entry_with_an_unaligned_base",
            MEM_LEND,
            create(0, 0, &[(t(), rw)], &[(ram(8), PAGE.into())]),
            ARGUMENT_INVALID,
            false,
        ),
        create_refused(
            "sgl_entry_with_an_unaligned_size",
            MEM_LEND,
            create(0, 0, &[(t(), rw)], &[(ram(0), 0x800u64.into())]),
            ARGUMENT_INVALID,
            false,
        ),
        // §12.1 SGL validity: zero size or outside HLOS RAM → MEM_INVALID; a base at or
        // above 2^44 → ARGUMENT_INVALID; overlapping or duplicate entries → MEM_INVALID.
        create_refused(
            "sgl_entry_of_size_zero",
            MEM_LEND,
            create(0, 0, &[(t(), rw)], &[(ram(0), 0u64.into())]),
            MEM_INVALID,
            true,
        ),
        create_refused(
            "sgl_entry_outside_hlos_ram",
            MEM_LEND,
            create(0, 0, &[(t(), rw)], &[("ram_end".into(), PAGE.into())]),
            MEM_INVALID,
            true,
        ),
        create_refused(
            "sgl_entry_crossing_the_end_of_hlos_ram",
            MEM_LEND,
            create(
                0,
                0,
                &[(t(), rw)],
                &[(Val::V("ram_end", -0x1000), (2 * PAGE).into())],
            ),
            MEM_INVALID,
            true,
        ),
        create_refused(
            "sgl_entry_at_2_pow_44",
            MEM_LEND,
            create(0, 0, &[(t(), rw)], &[((1u64 << 44).into(), PAGE.into())]),
            ARGUMENT_INVALID,
            true,
        ),
        create_refused(
            "sgl_entry_far_above_2_pow_44",
            MEM_LEND,
            create(0, 0, &[(t(), rw)], &[((1u64 << 48).into(), PAGE.into())]),
            ARGUMENT_INVALID,
            true,
        ),
        create_refused(
            "overlapping_sgl_entries",
            MEM_LEND,
            create(0, 0, &[(t(), rw)], &[(ram(0), (2 * PAGE).into()), pg(PAGE)]),
            MEM_INVALID,
            true,
        ),
        create_refused(
            "duplicate_sgl_entries",
            MEM_LEND,
            create(0, 0, &[(t(), rw)], &[pg(0), pg(0)]),
            MEM_INVALID,
            true,
        ),
        // §1.6: trailing bytes, a list that overruns, fewer than 20 bytes → MSG_INVALID;
        // more than 512 entries → NORESOURCE.
        create_refused(
            "create_with_a_trailing_byte",
            MEM_LEND,
            create(0, 0, &[(t(), rw)], &[pg(0)]).u8(0u8),
            MSG_INVALID,
            false,
        ),
        create_refused(
            "create_shorter_than_its_fixed_part",
            MEM_LEND,
            Tmpl::new().zeros(19),
            MSG_INVALID,
            false,
        ),
        create_refused(
            "create_whose_sgl_count_overruns",
            MEM_LEND,
            Tmpl::new()
                .zeros(8)
                .then(acl(&[(t(), rw)]))
                .u16(2u16)
                .u16(0u16)
                .u64(ram(0))
                .u64(PAGE),
            MSG_INVALID,
            false,
        ),
        create_refused(
            "create_with_513_acl_entries",
            MEM_LEND,
            Tmpl::new().zeros(8).u16(513u16).u16(0u16).zeros(8),
            NORESOURCE,
            false,
        ),
        // Only the owner's own memory: a page already lent is no longer HLOS's.
        with_t("create_from_a_page_already_lent", &[])
            .lend("h", 0, rw)
            .send(HLOS, MEM_LEND, create(0, 0, &[(t(), rw)], &[pg(0)]))
            .err(MEM_INVALID),
    ]
}

fn accept_errors() -> Vec<Case> {
    let rw = rights::RW;
    let acc =
        |h: &'static str, mt: u8, tr: u8, f: u8| accept_full(h, mt, tr, f, 0, &[], &[], 0, &[]);
    vec![
        // §7.3 MEM_ACCEPT, in the order of its checks.
        with_t_running("accept_of_an_unknown_handle", &[])
            .send(T.vm, MEM_ACCEPT, accept(0xFFFF_FF00u32, trans::LEND))
            .err(HANDLE_INVALID),
        with_t_running("accept_with_the_wrong_mem_type", &[])
            .lend("h", 0, rw)
            .send(T.vm, MEM_ACCEPT, acc("h", 1, trans::LEND, af::DONE))
            .err(ARGUMENT_INVALID),
        with_t_running("accept_with_the_wrong_transfer_type", &[Observed])
            .lend("h", 0, rw)
            .send(T.vm, MEM_ACCEPT, acc("h", 0, trans::SHARE, af::DONE))
            .err(ARGUMENT_INVALID),
        with_t_running("accept_validating_sanitize_of_an_unsanitized_parcel", &[])
            .lend("h", 0, rw)
            .send(
                T.vm,
                MEM_ACCEPT,
                acc("h", 0, trans::LEND, af::DONE | af::VALIDATE_SANITIZED),
            )
            .err(VALIDATE_FAILED),
        with_t_running("accept_validating_the_wrong_label", &[])
            .lend("h", 0, rw)
            .send(
                T.vm,
                MEM_ACCEPT,
                accept_full(
                    "h",
                    0,
                    trans::LEND,
                    af::DONE | af::VALIDATE_LABEL,
                    1,
                    &[],
                    &[],
                    0,
                    &[],
                ),
            )
            .err(VALIDATE_FAILED),
        with_t_running("accept_validating_the_wrong_acl", &[])
            .lend("h", 0, rw)
            .send(
                T.vm,
                MEM_ACCEPT,
                accept_full(
                    "h",
                    0,
                    trans::LEND,
                    af::DONE | af::VALIDATE_ACL_ATTR,
                    0,
                    &[(t(), rights::R)],
                    &[],
                    0,
                    &[],
                ),
            )
            .err(VALIDATE_FAILED),
        with_t_running("accept_with_map_other", &[])
            .lend("h", 0, rw)
            .send(
                T.vm,
                MEM_ACCEPT,
                acc("h", 0, trans::LEND, af::DONE | af::MAP_OTHER),
            )
            .err(DENIED),
        with_t_running("accept_with_a_map_vmid", &[])
            .lend("h", 0, rw)
            .send(
                T.vm,
                MEM_ACCEPT,
                accept_full("h", 0, trans::LEND, af::DONE, 0, &[], &[], 3, &[]),
            )
            .err(ARGUMENT_INVALID),
        // §12.1: HLOS accepting its own LEND → VMID_INVALID (not in the ACL).
        with_t("owner_accepting_its_own_lend", &[Observed])
            .lend("h", 0, rw)
            .send(HLOS, MEM_ACCEPT, accept("h", trans::LEND))
            .err(VMID_INVALID),
        // §7.3: the owner of a SHARE (in its ACL) → DENIED.
        with_t("owner_accepting_its_own_share", &[])
            .share("h", 0, rw)
            .send(HLOS, MEM_ACCEPT, accept("h", trans::SHARE))
            .err(DENIED),
        // §7.3: already mapped → DENIED.
        with_t_running("accepting_twice", &[])
            .lend("h", 0, rw)
            .accept_here("h", trans::LEND, "ipa")
            .send(T.vm, MEM_ACCEPT, accept("h", trans::LEND))
            .err(DENIED),
        // §7.3: SANITIZE needs the W right.
        with_t_running("accept_sanitize_without_write_rights", &[])
            .lend("h", 0, rights::R)
            .send(T.vm, MEM_ACCEPT, acc("h", 0, trans::LEND, af::DONE | 0x20))
            .err(ARGUMENT_INVALID),
        // §7.3: caller-chosen IPAs must match each region's size.
        with_t_running("accept_at_a_range_of_the_wrong_size", &[])
            .lend("h", 0, rw)
            .send(
                T.vm,
                MEM_ACCEPT,
                accept_full(
                    "h",
                    0,
                    trans::LEND,
                    af::DONE,
                    0,
                    &[],
                    &[(gw(0), (2 * PAGE).into())],
                    0,
                    &[],
                ),
            )
            .err(ARGUMENT_INVALID),
        // §7.3: DONE before all IPAs are given → ARGUMENT_INVALID.
        with_t_running("accept_done_before_every_ipa_is_given", &[])
            .send(
                HLOS,
                MEM_LEND,
                create(0, 0, &[(t(), rw)], &[pg(0), pg(0x10000)]),
            )
            .ok_data(Tmpl::new().cap32("h"))
            .send(
                T.vm,
                MEM_ACCEPT,
                accept_full(
                    "h",
                    0,
                    trans::LEND,
                    af::DONE,
                    0,
                    &[],
                    &[(gw(0), PAGE.into())],
                    0,
                    &[],
                ),
            )
            .err(ARGUMENT_INVALID),
        // §12.1: Gunyah's RM lets a VM accept a parcel still open for APPEND; an RM should
        // refuse: DENIED.
        with_t_running("accept_of_a_parcel_open_for_append", &[Observed])
            .send(HLOS, MEM_LEND, create(0x2, 0, &[(t(), rw)], &[pg(0)]))
            .ok_data(Tmpl::new().cap32("h"))
            .send(T.vm, MEM_ACCEPT, accept("h", trans::LEND))
            .err(DENIED),
        // §1.6: an accept shorter than 24 bytes → MSG_INVALID.
        with_t_running("accept_shorter_than_24_bytes", &[])
            .send(T.vm, MEM_ACCEPT, Tmpl::new().zeros(20))
            .err(MSG_INVALID),
    ]
}

fn release_reclaim_errors() -> Vec<Case> {
    let rw = rights::RW;
    vec![
        with_t_running("release_of_an_unknown_handle", &[])
            .send(T.vm, MEM_RELEASE, handle_flags(0xFFFF_FF00u32, 0))
            .err(HANDLE_INVALID),
        // §7.3: not accepted → MEM_RELEASED.
        with_t_running("release_of_a_parcel_not_accepted", &[])
            .lend("h", 0, rw)
            .send(T.vm, MEM_RELEASE, handle_flags("h", 0))
            .err(MEM_RELEASED),
        // §7.3: the owner of a LEND is not in its ACL → HANDLE_INVALID; of a SHARE → DENIED.
        with_t("owner_releasing_its_lend", &[])
            .lend("h", 0, rw)
            .send(HLOS, MEM_RELEASE, handle_flags("h", 0))
            .err(HANDLE_INVALID),
        with_t("owner_releasing_its_share", &[])
            .share("h", 0, rw)
            .send(HLOS, MEM_RELEASE, handle_flags("h", 0))
            .err(DENIED),
        // §7.3: SANITIZE needs NORMAL + W.
        with_t_running("release_sanitize_without_write_rights", &[])
            .lend("h", 0, rights::R)
            .accept_here("h", trans::LEND, "ipa")
            .send(T.vm, MEM_RELEASE, handle_flags("h", 1))
            .err(ARGUMENT_INVALID),
        with_t("reclaim_of_an_unknown_handle", &[])
            .send(HLOS, MEM_RECLAIM, handle_flags(0xFFFF_FF00u32, 0))
            .err(HANDLE_INVALID),
        // §7.3: anyone still accepted → MEM_INUSE.
        with_t_running("reclaim_while_accepted", &[])
            .lend("h", 0, rw)
            .accept_here("h", trans::LEND, "ipa")
            .send(HLOS, MEM_RECLAIM, handle_flags("h", 0))
            .err(MEM_INUSE),
        // §12.1 guest clients: MEM_RECLAIM or MEM_APPEND from a VM that is not the owner → DENIED.
        with_t_running("reclaim_by_the_acceptor", &[Observed, Authorization])
            .lend("h", 0, rw)
            .send(T.vm, MEM_RECLAIM, handle_flags("h", 0))
            .err(DENIED),
        with_t_running(
            "append_by_a_vm_that_is_not_the_owner",
            &[Observed, Authorization],
        )
        .send(HLOS, MEM_LEND, create(0x2, 0, &[(t(), rw)], &[pg(0)]))
        .ok_data(Tmpl::new().cap32("h"))
        .send(T.vm, MEM_APPEND, append("h", 1, &[pg(0x10000)]))
        .err(DENIED),
    ]
}

fn notify_errors() -> Vec<Case> {
    let rw = rights::RW;
    let shared = |name| with_t_running(name, &[Observed]).share("h", 0, rw);
    vec![
        with_t("notify_of_an_unknown_handle", &[])
            .send(
                HLOS,
                MEM_NOTIFY,
                notify(0xFFFF_FF00u32, nf::SHARED, 0, &[t()]),
            )
            .err(HANDLE_INVALID),
        // §12.1: flags 0 or 0x10, a count larger than the ACL, RECALL with no VMIDs →
        // ARGUMENT_INVALID; an unknown VMID → VMID_INVALID; a short list → MSG_INVALID.
        shared("notify_with_flags_0")
            .send(HLOS, MEM_NOTIFY, notify("h", 0, 0, &[t()]))
            .err(ARGUMENT_INVALID),
        shared("notify_with_flags_0x10")
            .send(HLOS, MEM_NOTIFY, notify("h", 0x10, 0, &[t()]))
            .err(ARGUMENT_INVALID),
        shared("notify_with_two_flags")
            .send(
                HLOS,
                MEM_NOTIFY,
                notify("h", nf::SHARED | nf::RECALL, 0, &[t()]),
            )
            .err(ARGUMENT_INVALID),
        shared("notify_naming_more_vms_than_the_acl")
            .send(
                HLOS,
                MEM_NOTIFY,
                notify("h", nf::SHARED, 0, &[t(), hlos(), t()]),
            )
            .err(ARGUMENT_INVALID),
        shared("notify_recall_with_no_vmids")
            .send(HLOS, MEM_NOTIFY, notify("h", nf::RECALL, 0, &[]))
            .err(ARGUMENT_INVALID),
        shared("notify_shared_with_no_vmids")
            .send(HLOS, MEM_NOTIFY, notify("h", nf::SHARED, 0, &[]))
            .err(ARGUMENT_INVALID),
        shared("notify_naming_an_unknown_vmid")
            .send(
                HLOS,
                MEM_NOTIFY,
                notify("h", nf::SHARED, 0, &[0xB7u16.into()]),
            )
            .err(VMID_INVALID),
        shared("notify_with_a_list_shorter_than_its_count")
            .send(HLOS, MEM_NOTIFY, notify("h", nf::SHARED, 0, &[t()]).cut(4))
            .err(MSG_INVALID),
        // §3.4: a listed VM must be in the ACL (ARGUMENT_INVALID).
        with_t_running("notify_naming_a_vm_not_in_the_acl", &[])
            .boot(U, Upto::Running)
            .share("h", 0, rw)
            .send(HLOS, MEM_NOTIFY, notify("h", nf::SHARED, 0, &[U.id()]))
            .err(ARGUMENT_INVALID),
        // §3.4: SHARED/RECALL only by the owner (DENIED).
        shared("notify_shared_by_an_acceptor")
            .send(T.vm, MEM_NOTIFY, notify("h", nf::SHARED, 0, &[hlos()]))
            .err(DENIED),
        // §3.4: a later NOTIFY with a different tag → ARGUMENT_INVALID.
        shared("notify_with_a_different_tag")
            .send(HLOS, MEM_NOTIFY, notify("h", nf::RECALL, 1, &[t()]))
            .notif(t(), N_MEM_RECALL, Tmpl::new().u32("h").u32(1u32))
            .ok()
            .send(HLOS, MEM_NOTIFY, notify("h", nf::RECALL, 2, &[t()]))
            .err(ARGUMENT_INVALID),
        // §3.7: the acceptor's state must match: ACCEPTED before accepting → MEM_RELEASED;
        // RELEASED while accepted → MEM_INUSE.
        shared("notify_accepted_before_accepting")
            .send(T.vm, MEM_NOTIFY, notify("h", nf::ACCEPTED, 0, &[]))
            .err(MEM_RELEASED),
        shared("notify_released_while_accepted")
            .accept_here("h", trans::SHARE, "ipa")
            .send(T.vm, MEM_NOTIFY, notify("h", nf::RELEASED, 0, &[]))
            .err(MEM_INUSE),
        // §12.1: from a share's owner, NOTIFY(ACCEPTED) → MEM_RELEASED; NOTIFY(RELEASED) →
        // OK and MEM_RELEASED back to the owner.
        shared("notify_accepted_from_the_shares_owner")
            .send(HLOS, MEM_NOTIFY, notify("h", nf::ACCEPTED, 0, &[]))
            .err(MEM_RELEASED),
        shared("notify_released_from_the_shares_owner")
            .send(HLOS, MEM_NOTIFY, notify("h", nf::RELEASED, 6, &[]))
            .notif(HLOS, N_MEM_RELEASED, owner_notif("h", hlos(), 6))
            .ok(),
        // §12: MEM_NOTIFY(SHARED) naming a VM that has not started leaves Gunyah's RM
        // answering nothing more; this RM refuses it (VM_STATE) and carries on.
        with_t("notify_shared_to_a_vm_in_load", &[Observed])
            .share("h", 0, rw)
            .send(HLOS, MEM_NOTIFY, notify("h", nf::SHARED, 0, &[t()]))
            .err(VM_STATE)
            .send(HLOS, VM_GET_VMID, Tmpl::new())
            .ok_data(Tmpl::new().u32(3u32)),
    ]
}

fn append_lookup_errors() -> Vec<Case> {
    let rw = rights::RW;
    let open = |name| {
        with_t(name, &[Observed])
            .send(HLOS, MEM_LEND, create(0x2, 0, &[(t(), rw)], &[pg(0)]))
            .ok_data(Tmpl::new().cap32("h"))
    };
    vec![
        with_t("append_to_an_unknown_handle", &[])
            .send(HLOS, MEM_APPEND, append(0xFFFF_FF00u32, 1, &[pg(0)]))
            .err(HANDLE_INVALID),
        // §12.1 MEM_APPEND: 0 entries → ARGUMENT_INVALID; no list header → MSG_INVALID;
        // a page already in the parcel → MEM_INVALID; a finalised parcel → DENIED.
        open("append_with_no_entries")
            .send(HLOS, MEM_APPEND, append("h", 1, &[]))
            .err(ARGUMENT_INVALID),
        open("append_without_a_list_header")
            .send(HLOS, MEM_APPEND, append("h", 1, &[]).cut(4))
            .err(MSG_INVALID),
        open("append_of_a_page_already_in_the_parcel")
            .send(HLOS, MEM_APPEND, append("h", 1, &[pg(0)]))
            .err(MEM_INVALID),
        open("append_to_a_finalised_parcel")
            .send(HLOS, MEM_APPEND, append("h", 1, &[pg(0x10000)]))
            .ok()
            .send(HLOS, MEM_APPEND, append("h", 1, &[pg(0x20000)]))
            .err(DENIED),
        with_t("append_to_a_parcel_created_final", &[])
            .lend("h", 0, rw)
            .send(HLOS, MEM_APPEND, append("h", 1, &[pg(0x10000)]))
            .err(DENIED),
        // §12.1 LOOKUP_SGL: the ACL and each region must match in creation order; a parcel
        // open for APPEND or already reclaimed → LOOKUP_FAILED.
        with_t("lookup_sgl_with_regions_in_another_order", &[Observed])
            .send(
                HLOS,
                MEM_LEND,
                create(0, 0, &[(t(), rw)], &[pg(0), pg(0x10000)]),
            )
            .ok_data(Tmpl::new().cap32("h"))
            .send(
                HLOS,
                MEM_LOOKUP_SGL,
                lookup(0, &[(t(), rw)], &[pg(0x10000), pg(0)]),
            )
            .err(LOOKUP_FAILED),
        with_t("lookup_sgl_with_acl_entries_in_another_order", &[Observed])
            .send(
                HLOS,
                MEM_SHARE,
                create(0, 0, &[(hlos(), rights::RWX), (t(), rw)], &[pg(0)]),
            )
            .ok_data(Tmpl::new().cap32("h"))
            .send(
                HLOS,
                MEM_LOOKUP_SGL,
                lookup(0, &[(t(), rw), (hlos(), rights::RWX)], &[pg(0)]),
            )
            .err(LOOKUP_FAILED),
        with_t("lookup_sgl_with_other_rights", &[])
            .lend("h", 0, rw)
            .send(
                HLOS,
                MEM_LOOKUP_SGL,
                lookup(0, &[(t(), rights::R)], &[pg(0)]),
            )
            .err(LOOKUP_FAILED),
        open("lookup_sgl_of_a_parcel_open_for_append")
            .send(HLOS, MEM_LOOKUP_SGL, lookup(0, &[(t(), rw)], &[pg(0)]))
            .err(LOOKUP_FAILED),
        with_t("lookup_sgl_of_a_reclaimed_parcel", &[Observed])
            .lend("h", 0, rw)
            .send(HLOS, MEM_RECLAIM, handle_flags("h", 0))
            .ok()
            .send(HLOS, MEM_LOOKUP_SGL, lookup(0, &[(t(), rw)], &[pg(0)]))
            .err(LOOKUP_FAILED),
        // §3.6: only parcels not accepted (SHARING).
        with_t_running("lookup_sgl_of_an_accepted_parcel", &[])
            .lend("h", 0, rw)
            .accept_here("h", trans::LEND, "ipa")
            .send(HLOS, MEM_LOOKUP_SGL, lookup(0, &[(t(), rw)], &[pg(0)]))
            .err(LOOKUP_FAILED),
    ]
}

/// §12.1 parcel limit: the 65th live parcel (LEND or SHARE) → DENIED.
fn parcel_limit() -> Case {
    let mut c = with_t("the_65th_live_parcel_is_denied", &[Observed]);
    for i in 0..64u64 {
        let off = i * 2 * PAGE;
        c = if i % 2 == 0 {
            c.send(
                HLOS,
                MEM_LEND,
                create(0, 0, &[(t(), rights::RW)], &[pg(off)]),
            )
        } else {
            c.send(
                HLOS,
                MEM_SHARE,
                create(
                    0,
                    0,
                    &[(hlos(), rights::RWX), (t(), rights::RW)],
                    &[pg(off)],
                ),
            )
        }
        .ok_data(Tmpl::new().any(4));
    }
    c.send(
        HLOS,
        MEM_SHARE,
        create(
            0,
            0,
            &[(hlos(), rights::RWX), (t(), rights::RW)],
            &[pg(200 * PAGE)],
        ),
    )
    .err(DENIED)
    .send(
        HLOS,
        MEM_LEND,
        create(0, 0, &[(t(), rights::RW)], &[pg(202 * PAGE)]),
    )
    .err(DENIED)
}

pub fn cases() -> Vec<Case> {
    let mut v = success();
    v.extend(create_errors());
    v.extend(accept_errors());
    v.extend(release_reclaim_errors());
    v.extend(notify_errors());
    v.extend(append_lookup_errors());
    v.push(parcel_limit());
    v
}
