//! The host socket transport of DESIGN.md (`gunyah-rm serve`): a Unix `SOCK_SEQPACKET` socket,
//! a `GRM1` hello naming the client's VMID, then one RM message-queue message (at most 240
//! bytes) per packet.
//!
//! * [`hub`]: what happens to each packet and connection, without sockets: the hello, the
//!   binding of a connection to its VM's RM-RPC link, the budgets (connected clients, silent
//!   connections, outbox), the hello deadline. The fuzz target `serve_transport` drives it
//!   directly.
//! * [`socket`]: the listening socket, `poll` and `accept` around a [`hub::Hub`].
//! * [`endpoint`]: the RM behind it ([`endpoint::RmEndpoint`]): the packets held for each VM,
//!   tagged with the link they were made for.
//!
//! The transport knows nothing of RM RPC: it moves packets between clients and an [`Endpoint`].
//! A misbehaving client (bad hello, oversized packet, not reading its replies, too many
//! connections) is dropped; the server and the other clients carry on.

pub mod endpoint;
pub mod hub;
#[allow(unsafe_code)] // raw socket descriptors (accept4, the stop pipe)
pub mod socket;

use std::time::Duration;

/// Largest RM message-queue message (spec §1.1).
pub const MAX_PACKET: usize = 240;
/// The hello packet: `GRM1`, u16 VMID (LE), two zero bytes.
pub const HELLO_LEN: usize = 8;
const HELLO_MAGIC: &[u8; 4] = b"GRM1";
/// Connected clients served at once: one for every VM that may exist (HLOS, the 62 static
/// VMIDs below 64 other than 0 and 3, the 63 dynamic ones), so no VM is ever locked out.
pub const MAX_CONNECTED: usize =
    1 + (crate::vm::STATIC_VMID_LIMIT as usize - 2) + crate::vm::DYNAMIC_VMID_COUNT as usize;
/// Connections that have not said hello yet, with a budget of their own: when it is full the
/// oldest silent connection is dropped to make room, so silent connections can neither use up
/// the connected clients' places nor keep a real client out.
pub const MAX_PENDING: usize = 16;
/// A client must say hello within this time.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(2);
/// Packets read from one client per poll round, so one flooding client cannot starve others.
pub const READ_BUDGET: usize = 64;
/// Outgoing packets held for a client that does not read; past this it is dropped.
pub const MAX_OUTBOX: usize = 4096;

/// The RM side of the transport.
///
/// A connection is bound to one RM-RPC link of its VM (`Rm::link`): it may connect only while
/// the VM's message queues exist, and it is closed as soon as that link is gone (the VM was
/// reset or deallocated), so it can never act for a later VM given the same VMID.
pub trait Endpoint {
    /// The link a client connecting as `vmid` is bound to, if `vmid` may connect now.
    fn link(&self, vmid: u16) -> Option<u64>;
    /// A client is now connected as `vmid`: start from a clean reassembly state.
    fn connected(&mut self, vmid: u16);
    /// The client of `vmid` went away (any partial message it sent is abandoned).
    fn disconnected(&mut self, vmid: u16);
    /// One message-queue message received from `vmid`.
    fn packet(&mut self, vmid: u16, packet: &[u8]);
    /// The next packet the RM has for `vmid`, if any.
    fn pop_outgoing(&mut self, vmid: u16) -> Option<Vec<u8>>;
}

/// Parse a hello packet; `None` if it is not exactly `GRM1`, VMID, 0, 0.
pub fn parse_hello(p: &[u8]) -> Option<u16> {
    if p.len() != HELLO_LEN || &p[..4] != HELLO_MAGIC || p[6] != 0 || p[7] != 0 {
        return None;
    }
    Some(u16::from_le_bytes([p[4], p[5]]))
}

/// The hello packet for `vmid`.
pub fn hello(vmid: u16) -> [u8; HELLO_LEN] {
    let v = vmid.to_le_bytes();
    [b'G', b'R', b'M', b'1', v[0], v[1], 0, 0]
}

/// What the server tells its log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A client said hello and is now `vmid`.
    Connected(u16),
    /// A hello was answered by closing the connection.
    Refused {
        /// The VMID the client asked for, if it said hello.
        vmid: Option<u16>,
        /// Why.
        why: &'a str,
    },
    /// A connection was dropped for misbehaving or because its VM's link went.
    Dropped {
        /// The client's VMID, if it said hello.
        vmid: Option<u16>,
        /// Why.
        why: &'a str,
    },
    /// A connected client hung up.
    Disconnected(u16),
    /// A packet from the client of a VM.
    Rx(u16, &'a [u8]),
    /// A packet sent to the client of a VM.
    Tx(u16, &'a [u8]),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips_and_rejects_near_misses() {
        assert_eq!(parse_hello(&hello(0x81)), Some(0x81));
        assert_eq!(parse_hello(b"GRM1\x03\x00\x00\x00"), Some(3));
        assert_eq!(parse_hello(b"GRM2\x03\x00\x00\x00"), None);
        assert_eq!(parse_hello(b"GRM1\x03\x00\x00\x01"), None);
        assert_eq!(parse_hello(b"GRM1\x03\x00\x00"), None);
        assert_eq!(parse_hello(b"GRM1\x03\x00\x00\x00\x00"), None);
        assert_eq!(MAX_CONNECTED, 126);
    }
}
