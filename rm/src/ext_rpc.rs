//! RPC handlers of the extension family 0x47 (layouts in
//! `gunyah_rm_abi::ext`): decode with the abi crate's typed payloads, call
//! the RM operation, encode the reply body (`u32 err`, then data).

use alloc::vec::Vec;

use gunyah_rm_abi::ext::{self, bind_flags, map_flags, NO_GMEM};
use gunyah_rm_abi::{MsgId, Request, RmError};
use zerocopy::IntoBytes;

use crate::config::FaultAction;
use crate::gmem::BindParams;
use crate::golden::MapParams;
use crate::platform::{Platform, Rights, Vmid};
use crate::service::Rm;

/// Whether `msg_id` is an extension request this RM handles.
pub fn is_ext_request(msg_id: u32) -> bool {
    msg_id >> 24 == 0x47 && !MsgId(msg_id).is_notification_id()
}

fn ok_body(data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + data.len());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(data);
    v
}

impl<P: Platform> Rm<P> {
    /// Handle one extension request from `from`; returns the reply body.
    pub(crate) fn handle_ext_request(
        &mut self,
        from: Vmid,
        msg_id: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let req = match Request::decode(MsgId(msg_id), payload) {
            Ok(r) => r,
            Err(e) => return e.code().to_le_bytes().to_vec(),
        };
        let r: Result<Vec<u8>, RmError> = match req {
            Request::GmemCreate(q) => {
                if q.reserved.get() != 0 {
                    Err(RmError::ArgumentInvalid)
                } else {
                    self.gmem_create(from, q.size.get(), q.flags.get(), q.owner_vmid.get())
                        .map(|id| ext::IdReply::new(id).as_bytes().to_vec())
                }
            }
            Request::GmemBind(q) => {
                if q.flags & !bind_flags::DEMAND_PAGED != 0 {
                    Err(RmError::ArgumentInvalid)
                } else {
                    self.gmem_bind(
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
                    .map(|h| ext::IdReply::new(h).as_bytes().to_vec())
                }
            }
            Request::GmemUnbind(q) => {
                if q.reserved.get() != 0 {
                    Err(RmError::ArgumentInvalid)
                } else {
                    self.gmem_unbind(
                        from,
                        q.gmem_id.get(),
                        q.vmid.get(),
                        q.ipa.get(),
                        q.size.get(),
                    )
                    .map(|_| Vec::new())
                }
            }
            Request::GoldenSeal(q) => self
                .golden_seal(from, q.mem_handle.get(), q.flags.get())
                .map(|(id, d)| ext::GoldenSealReply::new(id, d).as_bytes().to_vec()),
            Request::GoldenMap(q) => {
                let flags = q.flags.get();
                if q.reserved.get() != 0 || flags & !(map_flags::COW | map_flags::EXEC) != 0 {
                    Err(RmError::ArgumentInvalid)
                } else {
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
            }
            Request::GoldenUnmap(q) => {
                if q.reserved.get() != 0 {
                    Err(RmError::ArgumentInvalid)
                } else {
                    self.golden_unmap(
                        from,
                        q.golden_id.get(),
                        q.vmid.get(),
                        q.ipa.get(),
                        q.size.get(),
                    )
                    .map(|_| Vec::new())
                }
            }
            Request::GoldenRelease(q) => {
                if q.reserved.get() != 0 {
                    Err(RmError::ArgumentInvalid)
                } else {
                    self.golden_release(from, q.golden_id.get())
                        .map(|_| Vec::new())
                }
            }
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
            Request::SimVmRead(q) => {
                return self.rpc_sim_read(from, q.vmid.get(), q.length.get(), q.ipa.get())
            }
            Request::SimVmWrite(w) => return self.rpc_sim_write(from, w.vmid, w.ipa, w.data),
            _ => Err(RmError::Unimplemented),
        };
        match r {
            Ok(d) => ok_body(&d),
            Err(e) => e.code().to_le_bytes().to_vec(),
        }
    }
}
