//! Seeds from the message-based catalogue (`tests/catalogue`): every case runs on the
//! catalogue's host target behind a recorder, and what it sent, received, read and wrote
//! becomes seeds: the packets for `abi_decode`, the steps as operations for `rm_dispatch`
//! and `serve_transport`.

use gunyah_rm_catalogue::host::Host;
use gunyah_rm_catalogue::{catalogue, run_case, Access, Image, Need, Params, Target, TargetError};

use crate::input::Script;

/// One thing a case did.
#[derive(Clone, Debug)]
pub enum Rec {
    /// A packet sent to the RM as a VM.
    Send(u16, Vec<u8>),
    /// A packet the RM sent to a VM.
    Recv(u16, Vec<u8>),
    /// A vCPU read: VM, IPA, length.
    Read(u16, u64, usize),
    /// A vCPU write: VM, IPA, bytes.
    Write(u16, u64, Vec<u8>),
}

/// The host target, recording.
struct Recorder {
    inner: Host,
    log: Vec<Rec>,
}

impl Target for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn params(&self) -> Params {
        self.inner.params()
    }
    fn has(&self, need: Need) -> bool {
        self.inner.has(need)
    }
    fn send(&mut self, from: u16, packet: &[u8]) -> Result<(), TargetError> {
        self.log.push(Rec::Send(from, packet.to_vec()));
        self.inner.send(from, packet)
    }
    fn recv(&mut self, to: u16) -> Result<Option<Vec<u8>>, TargetError> {
        let p = self.inner.recv(to)?;
        if let Some(p) = &p {
            self.log.push(Rec::Recv(to, p.clone()));
        }
        Ok(p)
    }
    fn read(&mut self, vm: u16, ipa: u64, len: usize) -> Result<Access, TargetError> {
        self.log.push(Rec::Read(vm, ipa, len));
        self.inner.read(vm, ipa, len)
    }
    fn write(&mut self, vm: u16, ipa: u64, data: &[u8]) -> Result<Access, TargetError> {
        self.log.push(Rec::Write(vm, ipa, data.to_vec()));
        self.inner.write(vm, ipa, data)
    }
    fn stage_image(&mut self, vm: u16, ipa: u64) -> Result<Image, TargetError> {
        self.inner.stage_image(vm, ipa)
    }
    fn digest(&mut self) -> Option<u64> {
        self.inner.digest()
    }
    fn census(&mut self) -> Option<Vec<(&'static str, u64)>> {
        self.inner.census()
    }
    fn protect(&mut self, vm: u16, digests: &[[u8; 32]]) -> Result<(), TargetError> {
        self.inner.protect(vm, digests)
    }
    fn fresh(&mut self) -> bool {
        self.inner.fresh()
    }
}

/// Every case of the catalogue, with what it did (its clean-up included).
pub fn recorded() -> Vec<(&'static str, Vec<Rec>)> {
    let mut t = Recorder {
        inner: Host::new(),
        log: Vec::new(),
    };
    let mut seq = 0;
    let mut out = Vec::new();
    for c in catalogue() {
        t.log.clear();
        let _ = run_case(&mut t, &c, &mut seq);
        out.push((c.name, std::mem::take(&mut t.log)));
    }
    out
}

/// Most bytes of one seed (longer cases are cut).
const MAX_SEED: usize = 8192;

/// `abi_decode` seeds: each case's sent packets and received packets, as packet streams.
pub fn abi_seeds(cases: &[(&'static str, Vec<Rec>)]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, log) in cases {
        for (dir, pick) in [("sent", true), ("received", false)] {
            let mut s = Script::new();
            s.u8(0);
            for r in log {
                let p = match (r, pick) {
                    (Rec::Send(_, p), true) | (Rec::Recv(_, p), false) => p,
                    _ => continue,
                };
                if s.0.len() + p.len() + 1 > MAX_SEED {
                    break;
                }
                s.u8(p.len() as u8).bytes(p);
            }
            if s.0.len() > 1 {
                out.push((format!("catalogue-{name}-{dir}"), s.finish()));
            }
        }
    }
    out
}

/// The sender byte `dispatch::sender` maps to `vmid` (VMIDs it cannot name become HLOS).
fn who(vmid: u16) -> u8 {
    (0..32u8)
        .find(|b| crate::dispatch::sender(*b) == vmid)
        .unwrap_or(0)
}

/// `rm_dispatch` seeds: each case's packets as raw-packet operations from the same VMIDs, and
/// its reads and writes at the same IPAs.
pub fn dispatch_seeds(cases: &[(&'static str, Vec<Rec>)]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, log) in cases {
        let mut s = Script::new();
        for r in log {
            if s.0.len() > MAX_SEED {
                break;
            }
            match r {
                Rec::Send(from, p) => {
                    s.u8((who(*from) << 3) | 2).u8(p.len() as u8).bytes(p);
                }
                Rec::Read(vm, ipa, len) => {
                    s.u8((who(*vm) << 3) | 4).u8(0xFF).u64(*ipa);
                    s.u16((*len).min(0xFFFF) as u16);
                }
                Rec::Write(vm, ipa, data) => {
                    s.u8((who(*vm) << 3) | 5).u8(0xFF).u64(*ipa);
                    s.u16(data.len().min(0xFFFF) as u16)
                        .u8(data.first().copied().unwrap_or(0));
                }
                Rec::Recv(..) => {}
            }
        }
        if !s.0.is_empty() {
            out.push((format!("catalogue-{name}"), s.finish()));
        }
    }
    out
}

/// `serve_transport` seeds: one connection per VM a case speaks as (hello first), its packets
/// sent through them, a server round after each.
pub fn transport_seeds(cases: &[(&'static str, Vec<Rec>)]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, log) in cases {
        let mut conns: Vec<u16> = Vec::new();
        let mut s = Script::new();
        for r in log {
            let Rec::Send(from, p) = r else { continue };
            if s.0.len() > MAX_SEED {
                break;
            }
            let conn = match conns.iter().position(|v| v == from) {
                Some(i) => i,
                None => {
                    conns.push(*from);
                    let i = conns.len() - 1;
                    // New connection, then its hello.
                    s.u8((i as u8) << 3);
                    s.u8(((i as u8) << 3) | 1).u8(who(*from));
                    i
                }
            };
            s.u8(((conn as u8) << 3) | 2).u8(p.len() as u8).bytes(p);
            s.u8(7);
        }
        if !s.0.is_empty() {
            out.push((format!("catalogue-{name}"), s.finish()));
        }
    }
    out
}
