//! Issuing requests to the RM in process: typed requests go to [`Rm::call`], the same router
//! and transitions the transport feeds, and the reply comes back typed. Nothing is encoded, and
//! the notifications a request causes stay in the RM's outbox for the transport to deliver.

use alloc::vec::Vec;

use gunyah_rm_abi::{Request, RmError};

use crate::platform::{Platform, Vmid};
use crate::service::Rm;

/// A client of the RM in the same address space (the launcher, the simulator, benchmarks).
#[derive(Clone, Copy, Debug, Default)]
pub struct Client;

impl Client {
    /// A client.
    pub fn new() -> Self {
        Client
    }

    /// Send `req` from `from` and return the reply data or the RM's error code.
    pub fn call<P: Platform>(
        &mut self,
        rm: &mut Rm<P>,
        from: Vmid,
        req: &Request<'_>,
    ) -> Result<Vec<u8>, RmError> {
        let r = rm.call(from, req).map_err(|r| r.code);
        rm.run_deferred();
        r
    }
}

/// A reply's leading little-endian `u32`.
pub fn reply_u32(data: &[u8]) -> Result<u32, RmError> {
    data.get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(RmError::MsgInvalid)
}
