//! An RM RPC client over the msgqueue pair named in the DT: requests encoded and fragmented
//! by `gunyah-rm-abi`, replies reassembled; notifications that arrive meanwhile are counted.

use gunyah_rm_abi::ext::CowBroken;
use gunyah_rm_abi::{MsgId, MsgType, Reassembler, Received, Request, RmError};

use crate::hvc::{self, MSGQUEUE_EMPTY, MSGQ_RECV, MSGQ_SEND};

/// Reply data kept per call (the largest reply the scene asks for is far smaller).
const REPLY_MAX: usize = 2048;

/// A reply: the RM's error code and the data after it.
pub struct Reply {
    /// The RM's error code.
    pub err: RmError,
    data: [u8; REPLY_MAX],
    len: usize,
}

impl Reply {
    /// The data after the error code.
    pub fn data(&self) -> &[u8] {
        &self.data[..self.len]
    }

    /// The `i`th little-endian u32 of the data (0 if absent).
    pub fn word(&self, i: usize) -> u32 {
        self.data()
            .get(i * 4..i * 4 + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Why a call got no reply (shown with `{:?}` in failure messages).
#[allow(dead_code)]
#[derive(Clone, Copy, Debug)]
pub enum CallError {
    /// The request could not be encoded.
    Encode,
    /// msgqueue_send failed with this Gunyah error.
    Send(u64),
    /// msgqueue_receive failed with this Gunyah error.
    Receive(u64),
    /// No reply came.
    NoReply,
}

/// The client.
pub struct Rpc {
    tx: u64,
    rx: u64,
    seq: u16,
    rx_asm: Reassembler,
    /// COW_BROKEN notifications received so far.
    pub cow_broken: u64,
    /// IPAs those COW_BROKEN notifications carried (the RM batches a VM's copies into one).
    pub cow_broken_ipas: u64,
    /// FAULT_UNSERVED notifications received so far.
    pub fault_unserved: u64,
    /// Other notifications received so far.
    pub notifications: u64,
    /// The first bytes of the last FAULT_UNSERVED's payload (VMID, why, action, IPA).
    pub last_unserved: Option<[u8; 16]>,
    /// The last QUOTA_EXHAUSTED's payload (VMID, gmem id, IPA, quota).
    pub last_quota: Option<[u8; 24]>,
}

impl Rpc {
    /// A client on the queues `tx` (to the RM) and `rx` (from it).
    pub const fn new(tx: u64, rx: u64) -> Self {
        Rpc {
            tx,
            rx,
            seq: 0,
            rx_asm: Reassembler::new(),
            cow_broken: 0,
            cow_broken_ipas: 0,
            fault_unserved: 0,
            notifications: 0,
            last_unserved: None,
            last_quota: None,
        }
    }

    /// The capability of the queue to the RM.
    pub fn tx(&self) -> u64 {
        self.tx
    }

    /// Send `req` and wait for its reply (yielding the CPU while the queue is empty).
    pub fn call(&mut self, req: &Request<'_>) -> Result<Reply, CallError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut scratch = [0u8; 4096];
        let mut frags = req
            .packets(seq, &mut scratch)
            .map_err(|_| CallError::Encode)?;
        let mut pk = [0u8; 240];
        while let Some(n) = frags.next_into(&mut pk) {
            let [err, _, _] = hvc::call(MSGQ_SEND, self.tx, n as u64, pk.as_ptr() as u64, 1);
            if err != 0 {
                return Err(CallError::Send(err));
            }
        }
        self.wait_reply(seq, req.msg_id())
    }

    fn wait_reply(&mut self, seq: u16, msg_id: MsgId) -> Result<Reply, CallError> {
        let mut empty = 0u32;
        loop {
            let mut buf = [0u8; 240];
            let [err, size, _] = hvc::call(MSGQ_RECV, self.rx, buf.as_mut_ptr() as u64, 240, 0);
            if err == MSGQUEUE_EMPTY {
                // Wait for the queue's interrupt (a packet arrived), at most 10 ms a time.
                empty += 1;
                if empty > 1000 {
                    return Err(CallError::NoReply);
                }
                crate::gic::wait_us(10_000);
                continue;
            }
            if err != 0 {
                return Err(CallError::Receive(err));
            }
            let len = (size as usize).min(240);
            let Received::Complete(m) = self.rx_asm.push(&buf[..len]).received else {
                continue;
            };
            match m.ty {
                MsgType::Reply if m.seq == seq && m.msg_id == msg_id => {
                    let (err, data) = m.reply_parts().map_err(|_| CallError::NoReply)?;
                    let mut r = Reply {
                        err,
                        data: [0; REPLY_MAX],
                        len: data.len().min(REPLY_MAX),
                    };
                    r.data[..r.len].copy_from_slice(&data[..r.len]);
                    return Ok(r);
                }
                MsgType::Notification if m.msg_id == MsgId::COW_BROKEN => {
                    self.cow_broken += 1;
                    // A malformed one counts no IPA (and the run's IPA check fails).
                    if let Ok(n) = CowBroken::decode(m.payload) {
                        self.cow_broken_ipas += n.ipas.len() as u64;
                    }
                }
                MsgType::Notification if m.msg_id == MsgId::FAULT_UNSERVED => {
                    self.fault_unserved += 1;
                    self.last_unserved = m.payload.get(..16).and_then(|p| p.try_into().ok());
                }
                MsgType::Notification if m.msg_id == MsgId::QUOTA_EXHAUSTED => {
                    self.notifications += 1;
                    self.last_quota = m.payload.get(..24).and_then(|p| p.try_into().ok());
                }
                _ => self.notifications += 1,
            }
        }
    }
}
