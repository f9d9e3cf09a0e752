//! Routing a complete request to its handler by message ID and building the
//! reply: `[u32 error][data]`, echoing the request's seq and msg_id.
//! Unknown IDs get UNIMPLEMENTED.

use alloc::vec::Vec;

use gunyah_rm_abi::RmError;

use crate::ids;
use crate::memparcel::msg;
use crate::memparcel::TransType;
use crate::platform::{Platform, Vmid};
use crate::service::Rm;
use crate::wire::Writer;

impl<P: Platform> Rm<P> {
    /// Handle one reassembled request from `from` and queue its reply.
    pub fn handle_request(&mut self, from: Vmid, seq: u16, msg_id: u32, payload: &[u8]) {
        let result: Result<Vec<u8>, RmError> = match msg_id {
            ids::MEM_SHARE => self.rpc_create(from, TransType::Share, payload),
            ids::MEM_LEND => self.rpc_create(from, TransType::Lend, payload),
            ids::MEM_DONATE => self.rpc_create(from, TransType::Donate, payload),
            ids::MEM_APPEND => msg::parse_append(payload)
                .and_then(|(h, f, sgl)| self.mem_append(from, h, f, &sgl))
                .map(|_| Vec::new()),
            ids::MEM_ACCEPT => msg::parse_accept(payload).and_then(|req| {
                let rep = self.mem_accept(from, &req)?;
                Ok(if req.sgl.is_empty() {
                    msg::encode_accept_reply(&rep)
                } else {
                    Vec::new()
                })
            }),
            ids::MEM_RELEASE => msg::parse_handle_flags(payload)
                .and_then(|(h, f)| self.mem_release(from, h, f))
                .map(|_| Vec::new()),
            ids::MEM_RECLAIM => msg::parse_handle_flags(payload)
                .and_then(|(h, f)| self.mem_reclaim(from, h, f))
                .map(|_| Vec::new()),
            ids::MEM_NOTIFY => msg::parse_notify(payload)
                .and_then(|(h, f, tag, v)| self.mem_notify(from, h, f, tag, &v))
                .map(|_| Vec::new()),
            ids::MEM_QCOM_LOOKUP_SGL => msg::parse_lookup(payload).and_then(|q| {
                let h = self.mem_lookup_sgl(from, q.mem_type, q.label, &q.acl, &q.sgl, &q.attrs)?;
                Ok(h.to_le_bytes().to_vec())
            }),
            ids::VM_ALLOC_VMID => self.vm_alloc(from, payload),
            ids::VM_DEALLOC_VMID => self.vm_dealloc(from, payload),
            ids::VM_CONFIG_IMAGE => self.vm_config_image(from, payload),
            ids::VM_AUTH_IMAGE => self.vm_auth_image(from, payload),
            ids::VM_INIT => self.vm_init(from, payload),
            ids::VM_START => self.vm_start(from, payload),
            ids::VM_STOP => self.vm_stop(from, payload),
            ids::VM_RESET => self.vm_reset(from, payload),
            ids::VM_EXIT => self.vm_exit(from, payload),
            ids::VM_GET_STATE => self.vm_get_state(from, payload),
            ids::VM_SET_STATUS => self.vm_set_status(from, payload),
            ids::VM_GET_HYP_RESOURCES => self.vm_get_hyp_resources(from, payload),
            ids::VM_SET_DEMAND_PAGING => self.vm_set_demand_paging(from, payload),
            ids::VM_SET_ADDRESS_LAYOUT => self.vm_set_address_layout(from, payload),
            ids::VM_SET_BOOT_CONTEXT => self.vm_set_boot_context(from, payload),
            ids::VM_SET_FIRMWARE_MEM => self.vm_set_firmware_mem(from, payload),
            ids::VM_GET_VMID => Ok((from as u32).to_le_bytes().to_vec()),
            _ => Err(RmError::Unimplemented),
        };
        let mut w = Writer::new();
        match result {
            Ok(data) => {
                w.u32(0).bytes(&data);
            }
            Err(e) => {
                w.u32(e.code());
                // VM_SET_FIRMWARE_MEM appends the hypervisor error_t (§1.3);
                // these failures are the RM's own checks, so it is ARG_INVAL (1)
                // for bad arguments and OK (0) otherwise.
                if msg_id == ids::VM_SET_FIRMWARE_MEM {
                    w.u32(if e == RmError::ArgumentInvalid { 1 } else { 0 });
                }
            }
        }
        self.reply(from, seq, msg_id, w.finish());
    }

    fn rpc_create(
        &mut self,
        from: Vmid,
        trans: TransType,
        payload: &[u8],
    ) -> Result<Vec<u8>, RmError> {
        let req = msg::parse_create(trans, payload)?;
        let h = self.mem_create(from, &req)?;
        Ok(h.to_le_bytes().to_vec())
    }
}
