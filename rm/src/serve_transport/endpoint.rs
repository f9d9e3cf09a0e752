//! The RM behind the socket: the packets it has for each VM until that VM's client takes
//! them, each tagged with the RM-RPC link it was made for, so a packet for an earlier link of a
//! VMID is discarded, never delivered to a later VM given the same VMID.

use std::collections::{HashMap, VecDeque};

use super::Endpoint;
use crate::platform::Platform;
use crate::Rm;

/// Packets held for one VM that has no client connected; past this the oldest are dropped.
pub const MAX_HELD: usize = 4096;

/// An RM as a transport [`Endpoint`].
pub struct RmEndpoint<P: Platform> {
    /// The RM.
    pub rm: Rm<P>,
    /// Packets for each VM not yet taken by its client, each with the link it was made for.
    held: HashMap<u16, VecDeque<(u64, Vec<u8>)>>,
}

impl<P: Platform> RmEndpoint<P> {
    /// `rm` with nothing held.
    pub fn new(rm: Rm<P>) -> Self {
        RmEndpoint {
            rm,
            held: HashMap::new(),
        }
    }

    /// Hold `packets` (`(to_vmid, packet)`, e.g. from [`Rm::drain_outgoing`]) for their VMs'
    /// clients, and forget what is held for VMIDs whose link has gone since.
    pub fn queue(&mut self, packets: Vec<(u16, Vec<u8>)>) {
        for (to, p) in packets {
            // The RM produces packets only for VMs with a link; one that has none now was
            // reset or deallocated since, and its packets go with it.
            let Some(link) = self.rm.link(to) else {
                continue;
            };
            let q = self.held.entry(to).or_default();
            if q.len() >= MAX_HELD {
                q.pop_front();
            }
            q.push_back((link, p));
        }
        let rm = &self.rm;
        self.held.retain(|&vmid, q| {
            let link = rm.link(vmid);
            q.retain(|(l, _)| Some(*l) == link);
            !q.is_empty()
        });
    }

    /// Take what the RM has sent and hold it.
    pub fn collect(&mut self) {
        let out = self.rm.drain_outgoing();
        self.queue(out);
    }

    /// Packets held for `vmid`.
    pub fn held(&self, vmid: u16) -> usize {
        self.held.get(&vmid).map_or(0, VecDeque::len)
    }
}

impl<P: Platform> Endpoint for RmEndpoint<P> {
    fn link(&self, vmid: u16) -> Option<u64> {
        self.rm.link(vmid)
    }
    fn connected(&mut self, vmid: u16) {
        self.rm.client_disconnected(vmid);
    }
    fn disconnected(&mut self, vmid: u16) {
        self.rm.client_disconnected(vmid);
    }
    fn packet(&mut self, vmid: u16, packet: &[u8]) {
        self.rm.packet_from(vmid, packet);
        self.collect();
    }
    fn pop_outgoing(&mut self, vmid: u16) -> Option<Vec<u8>> {
        let link = self.rm.link(vmid)?;
        let q = self.held.get_mut(&vmid)?;
        while let Some((l, p)) = q.pop_front() {
            if l == link {
                return Some(p);
            }
        }
        None
    }
}
