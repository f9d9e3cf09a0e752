//! One router for every message family: Gunyah's memory (0x51) and VM (0x56) requests and
//! the gmem / golden extension (0x47).
//!
//! A request is decoded once, with the abi crate's typed decoders (`Request::decode`, which
//! gives the RM's answer for malformed input: MSG_INVALID, NORESOURCE for lists over 512
//! entries); [`Rm::call`] runs its transition and keeps the outcome typed — the reply data, or
//! a [`Refusal`] (the error code and the few bytes some errors carry) — until the fragmenter
//! turns it into packets. Unknown IDs get UNIMPLEMENTED. In-process callers (the launcher, the
//! simulator, the QEMU board) call [`Rm::call`] with a typed request: no bytes, no transport.
//!
//! ## Who may do what
//!
//! The RM is a security boundary (DESIGN.md "Who may do what"). Each rule is written again
//! next to the code that enforces it; `rm/tests/authorization.rs` sends every request from
//! every kind of caller and checks the exact answer.
//!
//! * **Who may send at all**: a VM whose RM message queues exist ([`crate::vm::links_in`]:
//!   from VM_INIT until its reset; HLOS always). Anything else is dropped unanswered
//!   ([`Rm::packet_from`]); a transport binds a connection to one link ([`Rm::link`]).
//! * **VM lifecycle** (§5.5): VM_ALLOC_VMID, VM_CONFIG_IMAGE and VM_INIT only from HLOS
//!   (DENIED); every request about a VM only from its manager, the VM that allocated it
//!   (`owned_vm`: VMID_INVALID otherwise, as Gunyah's RM, §10.7); VM_GET_STATE and
//!   VM_GET_HYP_RESOURCES also from the VM itself (to anyone else the VM does not exist:
//!   NORESOURCE / VMID_INVALID); VM_SET_STATUS and VM_EXIT are about the caller itself, never
//!   from HLOS (DENIED).
//! * **VM identity** (VM_GET_ID, VM_LOOKUP_NAME / URI / GUID, §9): about a VM only from
//!   itself, its manager, or a VM it manages (Gunyah's peers: a VM may learn its manager's
//!   name); to anyone else it does not exist (NORESOURCE; lookups do not list it).
//! * **Memparcels** (§7.3): created only from the caller's own memory (MEM_INVALID); APPEND,
//!   RECLAIM, NOTIFY(SHARED/RECALL) and LOOKUP_SGL only by the parcel's owner; ACCEPT, RELEASE
//!   and NOTIFY(ACCEPTED/RELEASED) only by a VM in its ACL, with the spec's codes.
//! * **gmem pools**: created by a VM's manager for it (a VM cannot set its own quota: DENIED;
//!   HLOS owns none); bound and unbound by the pool's VM or its manager.
//! * **Golden images**: belong to the VM that sealed them; only it maps, unmaps or releases
//!   one (DENIED), and only into itself or a VM it manages (VMID_INVALID); once it is gone HLOS
//!   may release the image. VM_MEM_STATS for the VM itself or its manager.
//! * **SIM_VM_READ / SIM_VM_WRITE**: only for the target VM itself or its manager
//!   (VMID_INVALID otherwise).
//! * **Notifications** go only to VMs with a link; a fault a VM's vCPU takes that the RM does
//!   not serve is reported to its manager (FAULT_UNSERVED).

use alloc::vec::Vec;

use gunyah_rm_abi::ext::{self, bind_flags, map_flags, NO_GMEM};
use gunyah_rm_abi::mem::{MemAcceptReply, MemHandleReply, SglEntry};
use gunyah_rm_abi::vm::Word;
use gunyah_rm_abi::{Encode, MsgId, Request, RmError};
use zerocopy::IntoBytes;

use crate::config::FaultAction;
use crate::gmem::BindParams;
use crate::golden::MapParams;
use crate::lifecycle::Lookup;
use crate::memparcel::{msg, TransType};
use crate::platform::{Platform, Rights, Vmid};
use crate::reply::{encode_vec, Refusal, Trailer};
use crate::service::Rm;

/// The refusal of request `id` with `code`, with the trailer that request carries after it.
/// VM_SET_FIRMWARE_MEM and VM_SET_TIME_BASE append the hypervisor error_t to every failure,
/// decode errors included (§1.3, §12.1). Firmware: these are the RM's own checks, so ARG_INVAL
/// (1) for bad arguments and OK (0) otherwise. Time base: DENIED (30) when the time base
/// cannot be set (ARGUMENT_INVALID, as on Gunyah's QEMU platform), else ARG_INVAL, the value
/// Gunyah's handler starts from.
fn refusal(id: MsgId, code: RmError) -> Refusal {
    let hyp = if id == MsgId::VM_SET_FIRMWARE_MEM {
        Some(if code == RmError::ArgumentInvalid {
            1
        } else {
            0
        })
    } else if id == MsgId::VM_SET_TIME_BASE {
        Some(if code == RmError::ArgumentInvalid {
            crate::lifecycle::HYP_ERROR_DENIED
        } else {
            1
        })
    } else {
        None
    };
    Refusal {
        code,
        trailer: hyp.map(Trailer::HypError),
    }
}

/// Reply data that is one encoded payload.
fn data<E: Encode + ?Sized>(e: &E) -> Result<Vec<u8>, RmError> {
    encode_vec(e).ok_or(RmError::NoResource)
}

impl<P: Platform> Rm<P> {
    /// Handle one reassembled request from `from` and queue its reply.
    pub fn handle_request(&mut self, from: Vmid, seq: u16, msg_id: u32, payload: &[u8]) {
        let id = MsgId(msg_id);
        let result = match Request::decode(id, payload) {
            Ok(req) => self.call(from, &req),
            Err(code) => Err(refusal(id, code)),
        };
        self.out.reply(from, seq, msg_id, result);
    }

    /// Run one decoded request from `from`: the reply data, or why it was refused. What it
    /// changes and the notifications it sends are the same as over the transport. Work a
    /// request leaves for after its reply (the stages of a VM_RESET) runs at the next
    /// [`Rm::run_deferred`], which the transport calls after queuing the reply.
    pub fn call(&mut self, from: Vmid, req: &Request<'_>) -> Result<Vec<u8>, Refusal> {
        let id = req.msg_id();
        match *req {
            Request::SimVmRead(q) => {
                return self.rpc_sim_read(from, q.vmid.get(), q.length.get(), q.ipa.get())
            }
            Request::SimVmWrite(w) => return self.rpc_sim_write(from, w.vmid, w.ipa, w.data),
            _ => {}
        }
        self.route(from, req).map_err(|code| refusal(id, code))
    }

    /// Call the transition of a decoded request; `Ok` carries the reply data.
    fn route(&mut self, from: Vmid, req: &Request<'_>) -> Result<Vec<u8>, RmError> {
        let none = |r: Result<(), RmError>| r.map(|()| Vec::new());
        match *req {
            Request::MemShare(ref c) => self.rpc_create(from, TransType::Share, c),
            Request::MemLend(ref c) => self.rpc_create(from, TransType::Lend, c),
            Request::MemDonate(ref c) => self.rpc_create(from, TransType::Donate, c),
            Request::MemAppend(a) => {
                none(self.mem_append(from, a.handle, a.flags, &msg::sgl(a.sgl)))
            }
            Request::MemAccept(a) => {
                let req = msg::accept_req(&a);
                let rep = self.mem_accept(from, &req)?;
                if !req.sgl.is_empty() {
                    return Ok(Vec::new());
                }
                // The wire entries on the stack for the usual few (one per region, or one
                // when contiguous), a list only for more.
                const FEW: usize = 4;
                let wire = |&(ipa, size): &(u64, u64)| SglEntry::new(ipa, size);
                let mut few = [SglEntry::new(0, 0); FEW];
                let many: Vec<SglEntry>;
                let sgl: &[SglEntry] = if rep.entries.len() <= FEW {
                    for (w, e) in few.iter_mut().zip(&rep.entries) {
                        *w = wire(e);
                    }
                    &few[..rep.entries.len()]
                } else {
                    many = rep.entries.iter().map(wire).collect();
                    &many
                };
                data(&MemAcceptReply {
                    flags: rep.incomplete as u8,
                    sgl,
                })
            }
            Request::MemRelease(r) => none(self.mem_release(from, r.handle.get(), r.flags)),
            Request::MemReclaim(r) => none(self.mem_reclaim(from, r.handle.get(), r.flags)),
            Request::MemNotify(n) => {
                let vmids: Vec<Vmid> = n.vmids.iter().map(|v| v.vmid.get()).collect();
                none(self.mem_notify(from, n.handle, n.flags, n.mem_info_tag, &vmids))
            }
            Request::MemLookupSgl(q) => {
                let h = self.mem_lookup_sgl(
                    from,
                    q.mem_type,
                    q.label,
                    &msg::acl(q.acl),
                    &msg::sgl(q.sgl),
                    &msg::attrs(q.attrs),
                )?;
                data(&MemHandleReply::new(h))
            }
            Request::VmAllocVmid(r) => self.vm_alloc(from, &r),
            Request::VmDeallocVmid(r) => self.vm_dealloc(from, &r),
            Request::VmConfigImage(r) => self.vm_config_image(from, &r),
            Request::VmAuthImage(r) => self.vm_auth_image(from, &r),
            Request::VmInit(r) => self.vm_init(from, &r),
            Request::VmStart(r) => self.vm_start(from, &r),
            Request::VmStop(r) => self.vm_stop(from, &r),
            Request::VmReset(r) => self.vm_reset(from, &r),
            Request::VmExit(r) => self.vm_exit(from, &r),
            Request::VmGetState(r) => self.vm_get_state(from, &r),
            Request::VmSetStatus(r) => self.vm_set_status(from, &r),
            Request::VmGetHypResources(r) => self.vm_get_hyp_resources(from, &r),
            Request::VmGetId(r) => self.vm_get_id(from, &r),
            Request::VmLookupName(q) => self.vm_lookup(from, Lookup::Name(q.id)),
            Request::VmLookupUri(q) => self.vm_lookup(from, Lookup::Uri(q.id)),
            Request::VmLookupGuid(q) => self.vm_lookup(from, Lookup::Guid(&q.guid)),
            Request::VmSetDemandPaging(r) => self.vm_set_demand_paging(from, &r),
            Request::VmSetAddressLayout(r) => self.vm_set_address_layout(from, &r),
            Request::VmSetBootContext(r) => self.vm_set_boot_context(from, &r),
            Request::VmSetFirmwareMem(r) => self.vm_set_firmware_mem(from, &r),
            Request::VmSetTimeBase(r) => self.vm_set_time_base(from, &r),
            Request::VmGetVmid(_) => data(&Word::new(from as u32)),
            Request::VmGetOwner(_) => self.vm_get_owner(from),
            Request::VmGetPeers(_) => self.vm_get_peers(from),
            Request::VmHostGetType(_) => self.vm_host_get_type(),
            // --- the gmem / golden extension (layouts in `gunyah_rm_abi::ext`) ---
            // Reserved fields and unknown flags are refused by the abi decoders.
            Request::GmemCreate(q) => self
                .gmem_create(from, q.size.get(), q.flags.get(), q.owner_vmid.get())
                .map(|id| ext::IdReply::new(id).as_bytes().to_vec()),
            Request::GmemBind(q) => self
                .gmem_bind(
                    from,
                    BindParams {
                        gmem: q.gmem_id.get(),
                        vmid: q.vmid.get(),
                        rights: Rights(q.perms),
                        demand: q.flags & bind_flags::DEMAND_PAGED != 0,
                        offset: q.offset.get(),
                        ipa: q.ipa.get(),
                        size: q.size.get(),
                    },
                )
                .map(|h| ext::IdReply::new(h).as_bytes().to_vec()),
            Request::GmemUnbind(q) => self
                .gmem_unbind(
                    from,
                    q.gmem_id.get(),
                    q.vmid.get(),
                    q.ipa.get(),
                    q.size.get(),
                )
                .map(|_| Vec::new()),
            Request::GoldenSeal(q) => self
                .golden_seal(from, q.mem_handle.get(), q.flags.get())
                .map(|(id, d)| ext::GoldenSealReply::new(id, d).as_bytes().to_vec()),
            Request::GoldenMap(q) => {
                let flags = q.flags.get();
                let gmem = q.gmem_id.get();
                self.golden_map(
                    from,
                    MapParams {
                        golden: q.golden_id.get(),
                        vmid: q.vmid.get(),
                        offset: q.offset.get(),
                        ipa: q.ipa.get(),
                        size: q.size.get(),
                        cow: flags & map_flags::COW != 0,
                        exec: flags & map_flags::EXEC != 0,
                        gmem: (gmem != NO_GMEM).then_some(gmem),
                        cow_quota: None,
                        fault_action: FaultAction::InjectAbort,
                        digest: None,
                    },
                )
                .map(|_| Vec::new())
            }
            Request::GoldenUnmap(q) => self
                .golden_unmap(
                    from,
                    q.golden_id.get(),
                    q.vmid.get(),
                    q.ipa.get(),
                    q.size.get(),
                )
                .map(|_| Vec::new()),
            Request::GoldenRelease(q) => self
                .golden_release(from, q.golden_id.get())
                .map(|_| Vec::new()),
            // VM_MEM_STATS shares VM_START's payload type, whose reserved half-word Gunyah's
            // RM ignores; this extension message refuses it here.
            Request::VmMemStats(q) => {
                if q.reserved.get() != 0 {
                    Err(RmError::ArgumentInvalid)
                } else {
                    self.vm_mem_stats(from, q.vmid.get()).map(|s| {
                        ext::VmMemStatsReply::new(
                            s.private_pages,
                            s.golden_mapped_pages,
                            s.cow_copied_pages,
                            s.quota_pages,
                        )
                        .as_bytes()
                        .to_vec()
                    })
                }
            }
            _ => Err(RmError::Unimplemented),
        }
    }

    fn rpc_create(
        &mut self,
        from: Vmid,
        trans: TransType,
        c: &gunyah_rm_abi::mem::MemCreate<'_>,
    ) -> Result<Vec<u8>, RmError> {
        let h = self.mem_create_owned(from, msg::create_req(trans, c))?;
        data(&MemHandleReply::new(h))
    }
}
