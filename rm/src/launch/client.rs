//! Issuing requests to the RM as a client would: encoded with the abi crate,
//! fed through [`Rm::packet_from`] as the sender, the reply picked out of
//! [`Rm::drain_outgoing`] by the abi crate's reassembler. Everything else the
//! RM sent meanwhile (notifications, other replies) is kept for the caller.

use alloc::boxed::Box;
use alloc::vec::Vec;

use gunyah_rm_abi::{MsgType, Reassembler, Received, Request, RmError};

use crate::platform::{Platform, Vmid};
use crate::service::Rm;

/// A client of the RM speaking through its transport API.
pub struct Client {
    seq: u16,
    scratch: Vec<u8>,
    rx: Box<Reassembler>,
    others: Vec<(Vmid, Vec<u8>)>,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    /// A client starting at sequence number 0x4c00.
    pub fn new() -> Self {
        Client {
            seq: 0x4c00,
            scratch: alloc::vec![0u8; gunyah_rm_abi::header::MAX_MESSAGE_PAYLOAD],
            rx: Box::new(Reassembler::new()),
            others: Vec::new(),
        }
    }

    /// Send `req` from `from` and return the reply data (after the error
    /// word) or the RM's error code.
    pub fn call<P: Platform>(
        &mut self,
        rm: &mut Rm<P>,
        from: Vmid,
        req: &Request<'_>,
    ) -> Result<Vec<u8>, RmError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let id = req.msg_id();
        let packets = req
            .packets(seq, &mut self.scratch)
            .map_err(|_| RmError::MsgInvalid)?;
        for p in packets {
            rm.packet_from(from, p.as_bytes());
        }
        let mut result = Err(RmError::MsgInvalid);
        let mut current: Vec<(Vmid, Vec<u8>)> = Vec::new();
        for (to, pk) in rm.drain_outgoing() {
            if to != from {
                self.others.push((to, pk));
                continue;
            }
            let done = match self.rx.push(&pk).received {
                Received::Complete(m) => {
                    Some(m.ty == MsgType::Reply && m.seq == seq && m.msg_id == id)
                        .map(|mine| (mine, m.reply_parts().map(|(e, d)| (e, d.to_vec()))))
                }
                Received::Partial(_) => None,
                Received::Dropped(_) => Some((false, Err(RmError::MsgInvalid))),
            };
            current.push((to, pk));
            if let Some((mine, parts)) = done {
                if mine {
                    current.clear();
                    result = match parts {
                        Ok((RmError::Ok, d)) => Ok(d),
                        Ok((e, _)) => Err(e),
                        Err(e) => Err(e),
                    };
                } else {
                    self.others.append(&mut current);
                }
            }
        }
        self.others.append(&mut current);
        result
    }

    /// Take the packets the RM sent that were not replies to this client's
    /// requests, in order.
    pub fn take_others(&mut self) -> Vec<(Vmid, Vec<u8>)> {
        core::mem::take(&mut self.others)
    }
}

/// A reply's leading little-endian `u32`.
pub fn reply_u32(data: &[u8]) -> Result<u32, RmError> {
    data.get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(RmError::MsgInvalid)
}
