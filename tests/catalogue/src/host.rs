//! The host target: the RM in-process over the simulator (`gunyah_rm::sim`), driven only
//! through its transport API (`Rm::packet_from`, `Rm::drain_outgoing`) and the simulated
//! vCPU accesses (`Rm::vm_read`, `Rm::vm_write`); the isolation checker runs after every
//! step and `Rm::snapshot` gives the state digest.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};

use gunyah_rm::platform::MemKind;
use gunyah_rm::sim::{default_rm, SimPlatform};
use gunyah_rm::sim_access::AccessError;
use gunyah_rm::Rm;

use crate::case::Need;
pub use crate::dtb::tiny_dtb;
use crate::target::{Access, Image, Params, Sender, Target, TargetError};

/// HLOS RAM of the default simulator: 1 GiB at 0x4000_0000, IPA = PA.
const HLOS_RAM: (u64, u64) = (0x4000_0000, 0x4000_0000);

/// The RM on the default simulated platform.
pub struct Host {
    rm: Rm<SimPlatform>,
    queues: BTreeMap<u16, VecDeque<Vec<u8>>>,
    /// Behave as a target whose VMs act only through running vCPUs (the QEMU board):
    /// no SIM_VM_* requests (protect it has), and sending or touching memory as a VM other
    /// than HLOS that is not RUNNING is an error. Checks on the host that the cases a
    /// QEMU runner selects need nothing else.
    qemu_like: bool,
}

impl Default for Host {
    fn default() -> Self {
        Self::new()
    }
}

impl Host {
    /// A fresh RM.
    pub fn new() -> Host {
        Host {
            rm: default_rm(),
            queues: BTreeMap::new(),
            qemu_like: false,
        }
    }

    /// A host target with only what a QEMU target has (see [`Host`]).
    pub fn qemu_like() -> Host {
        Host {
            qemu_like: true,
            ..Host::new()
        }
    }

    /// In QEMU-like mode, only HLOS and RUNNING VMs have a vCPU to act with.
    fn vcpu(&self, vm: u16) -> Result<(), TargetError> {
        let running = self.rm.vm_state(vm) == Some(gunyah_rm::vm::VmState::Running);
        if self.qemu_like && vm != crate::ids::HLOS && !running {
            return Err(TargetError(format!(
                "VM {vm:#x} has no running vCPU (a QEMU target cannot act as it)"
            )));
        }
        Ok(())
    }

    /// The RM (for tools built on this target).
    pub fn rm(&self) -> &Rm<SimPlatform> {
        &self.rm
    }

    fn pump(&mut self) {
        for (to, p) in self.rm.drain_outgoing() {
            self.queues.entry(to).or_default().push_back(p);
        }
    }

    fn access(
        &mut self,
        r: Result<u32, AccessError>,
        data: Vec<u8>,
    ) -> Result<Access, TargetError> {
        self.pump();
        match r {
            Ok(_) => Ok(Access::Done(data)),
            Err(AccessError::Fault { ipa, .. }) => Ok(Access::Fault(ipa)),
            Err(e) => Err(TargetError(format!("access refused: {e:?}"))),
        }
    }
}

impl Target for Host {
    fn name(&self) -> &str {
        "host simulator"
    }

    fn params(&self) -> Params {
        Params {
            scratch: 0x5000_0000,
            hlos_ram_end: HLOS_RAM.0 + HLOS_RAM.1,
            guest_window: 0x8000_0000,
            static_vmid_last: gunyah_rm::vm::STATIC_VMID_LAST,
        }
    }

    fn has(&self, need: Need) -> bool {
        // The QEMU board marks a VM protected through its test channel.
        !self.qemu_like || need == Need::Protect
    }

    fn sender(&mut self, vm: u16) -> Option<Sender> {
        // A RUNNING VM's vCPUs run (as on the board); the simulator itself could inject a
        // packet as any VMID, which is what `send-without-vcpu` cases use.
        Some(Sender {
            runs: self.rm.vm_state(vm) == Some(gunyah_rm::vm::VmState::Running),
            link: self.rm.link(vm).is_some(),
        })
    }

    fn send(&mut self, from: u16, packet: &[u8]) -> Result<(), TargetError> {
        if packet.len() > crate::wire::MAX_PACKET {
            return Err(TargetError(format!("a {}-byte packet", packet.len())));
        }
        self.vcpu(from)?;
        self.rm.packet_from(from, packet);
        self.pump();
        Ok(())
    }

    fn recv(&mut self, to: u16) -> Result<Option<Vec<u8>>, TargetError> {
        Ok(self.queues.get_mut(&to).and_then(VecDeque::pop_front))
    }

    fn read(&mut self, vm: u16, ipa: u64, len: usize) -> Result<Access, TargetError> {
        self.vcpu(vm)?;
        let mut buf = vec![0u8; len];
        for (off, n) in pages(ipa, len) {
            let r = self
                .rm
                .vm_read(vm, ipa + off as u64, &mut buf[off..off + n]);
            if let a @ Access::Fault(_) = self.access(r, Vec::new())? {
                return Ok(a);
            }
        }
        Ok(Access::Done(buf))
    }

    fn write(&mut self, vm: u16, ipa: u64, data: &[u8]) -> Result<Access, TargetError> {
        self.vcpu(vm)?;
        for (off, n) in pages(ipa, data.len()) {
            let r = self.rm.vm_write(vm, ipa + off as u64, &data[off..off + n]);
            if let a @ Access::Fault(_) = self.access(r, Vec::new())? {
                return Ok(a);
            }
        }
        Ok(Access::Done(Vec::new()))
    }

    fn stage_image(&mut self, _vm: u16, ipa: u64) -> Result<Image, TargetError> {
        let dtb = tiny_dtb(1);
        match self.rm.vm_write(crate::ids::HLOS, ipa, &dtb) {
            Ok(_) => {}
            Err(e) => return Err(TargetError(format!("HLOS cannot write {ipa:#x}: {e:?}"))),
        }
        self.pump();
        Ok(Image {
            size: 0x1000,
            image_size: 0,
            dtb_offset: 0,
            dtb_size: dtb.len() as u64,
        })
    }

    fn digest(&mut self) -> Option<u64> {
        let s = self.rm.snapshot();
        let mut h = DefaultHasher::new();
        s.records.hash(&mut h);
        for (vm, leaves) in &s.tables {
            vm.hash(&mut h);
            for l in leaves {
                (l.ipa, l.pa, l.size, l.rights.0, l.kind == MemKind::Normal).hash(&mut h);
            }
        }
        (s.partition.total, s.partition.free, s.partition.tables).hash(&mut h);
        Some(h.finish())
    }

    fn census(&mut self) -> Option<Vec<(&'static str, u64)>> {
        let u = self.rm.snapshot().partition;
        let hlos: u64 = self
            .rm
            .vm_space(crate::ids::HLOS)
            .map(|s| {
                s.ranges()
                    .filter(|r| {
                        use gunyah_rm::space::State;
                        matches!(
                            r.state,
                            State::Owned(_) | State::Lent { .. } | State::Shared { .. }
                        )
                    })
                    .map(|r| r.size)
                    .sum()
            })
            .unwrap_or(0);
        Some(vec![
            ("vms", self.rm.vms().vms.len() as u64),
            ("parcels", self.rm.parcels().parcels.len() as u64),
            ("partition data pages", u.total - u.free - u.tables),
            ("HLOS bytes", hlos),
        ])
    }

    fn check(&mut self) -> Result<(), String> {
        let v = self.rm.check_isolation();
        if v.is_empty() {
            Ok(())
        } else {
            Err(format!("isolation violated: {v:?}"))
        }
    }

    fn protect(&mut self, vm: u16, digests: &[[u8; 32]]) -> Result<(), TargetError> {
        self.rm
            .set_vm_protected(vm, digests.to_vec())
            .map_err(|e| TargetError(format!("set_vm_protected: {e:?}")))
    }

    fn fresh(&mut self) -> bool {
        *self = Host {
            qemu_like: self.qemu_like,
            ..Host::new()
        };
        true
    }
}

/// The page-sized pieces (offset, length) of an access of `len` bytes at `ipa`. A vCPU's
/// access is translated a page at a time, and each page's fault is taken (and its
/// notifications sent) before the next page is touched, as on the QEMU board.
fn pages(ipa: u64, len: usize) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    let mut off = 0;
    while off < len {
        let a = ipa + off as u64;
        let n = ((0x1000 - a % 0x1000) as usize).min(len - off);
        v.push((off, n));
        off += n;
    }
    v
}
