//! Guest memory accesses on the simulator (SIM_VM_READ / SIM_VM_WRITE and
//! [`Rm::vm_read`] / [`Rm::vm_write`]): each page is translated through the
//! VM's real stage-2 tables exactly as the MMU would
//! ([`crate::platform::AddressSpaces::simulate_access`]); a stage-2 fault
//! goes through the same fault path a vCPU's would ([`Rm::handle_access_fault`]:
//! CoW, demand paging, abort) and the access retries if it was served.
//! Platforms that cannot simulate guest accesses answer UNIMPLEMENTED.

use alloc::vec::Vec;

use gunyah_rm_abi::RmError;
use gunyah_stage2::Access;

use crate::cow::FaultOutcome;
use crate::platform::{Platform, Vmid, PAGE_SIZE};
use crate::reply::{Refusal, Trailer};
use crate::service::Rm;

/// Most times one page's access is retried after a served fault (a served
/// fault makes the next walk succeed; the bound only guards against a
/// platform that never does).
const MAX_RETRIES: usize = 4;

/// Why a simulated access failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessError {
    /// The platform cannot simulate guest accesses (UNIMPLEMENTED).
    Unsupported,
    /// No such VM (VMID_INVALID).
    NoSuchVm,
    /// Length 0 or the range wraps (ARGUMENT_INVALID).
    BadRange,
    /// A page faulted and the fault was not served (MEM_INVALID): bytes
    /// before `ipa` were accessed, as on hardware.
    Fault {
        /// IPA of the page that faulted.
        ipa: u64,
        /// What the fault path decided.
        outcome: FaultOutcome,
        /// Faults served before it (pages made by this access).
        served: u32,
    },
}

impl AccessError {
    /// The RM error code for the reply.
    pub fn rm_error(&self) -> RmError {
        match self {
            AccessError::Unsupported => RmError::Unimplemented,
            AccessError::NoSuchVm => RmError::VmidInvalid,
            AccessError::BadRange => RmError::ArgumentInvalid,
            AccessError::Fault { .. } => RmError::MemInvalid,
        }
    }
}

/// One access: a read into or a write from a buffer.
enum Buf<'a> {
    Read(&'a mut [u8]),
    Write(&'a [u8]),
}

impl<P: Platform> Rm<P> {
    /// Read `buf.len()` bytes of `vmid`'s memory at `ipa` as its vCPU would.
    /// Returns the number of faults served (pages made) on the way.
    pub fn vm_read(&mut self, vmid: Vmid, ipa: u64, buf: &mut [u8]) -> Result<u32, AccessError> {
        self.vm_access(vmid, ipa, Buf::Read(buf))
    }

    /// Write `data` to `vmid`'s memory at `ipa` as its vCPU would (CoW
    /// copies and demand pages are made on the way). Returns the number of
    /// faults served (CoW copies and demand-paged pages made).
    pub fn vm_write(&mut self, vmid: Vmid, ipa: u64, data: &[u8]) -> Result<u32, AccessError> {
        self.vm_access(vmid, ipa, Buf::Write(data))
    }

    fn vm_access(&mut self, vmid: Vmid, ipa: u64, mut buf: Buf<'_>) -> Result<u32, AccessError> {
        let len = match &buf {
            Buf::Read(b) => b.len(),
            Buf::Write(b) => b.len(),
        } as u64;
        if self.plat.simulate_access(vmid, 0, Access::Read).is_none() && self.vms.exists(vmid) {
            return Err(AccessError::Unsupported);
        }
        if !self.vms.exists(vmid) {
            return Err(AccessError::NoSuchVm);
        }
        if len == 0 || ipa.checked_add(len).is_none() {
            return Err(AccessError::BadRange);
        }
        let access = match buf {
            Buf::Read(_) => Access::Read,
            Buf::Write(_) => Access::Write,
        };
        let mut served = 0u32;
        let mut done = 0u64;
        while done < len {
            let a = ipa + done;
            let n = (PAGE_SIZE - a % PAGE_SIZE).min(len - done);
            let mut tries = 0;
            let pa = loop {
                match self.plat.simulate_access(vmid, a, access) {
                    None => return Err(AccessError::Unsupported),
                    Some(Ok(pa)) => break pa,
                    Some(Err(_status)) => {
                        let outcome = self.handle_access_fault(vmid, a, access);
                        tries += 1;
                        if !outcome.resumes() || tries > MAX_RETRIES {
                            return Err(AccessError::Fault {
                                ipa: a & !(PAGE_SIZE - 1),
                                outcome,
                                served,
                            });
                        }
                        if outcome.made_page() {
                            served += 1;
                        }
                    }
                }
            };
            let (s, e) = (done as usize, (done + n) as usize);
            let ok = match &mut buf {
                Buf::Read(b) => self.plat.read(pa, &mut b[s..e]),
                Buf::Write(b) => self.plat.write(pa, &b[s..e]),
            };
            if !ok {
                // The tables point at something that is not memory.
                return Err(AccessError::Fault {
                    ipa: a & !(PAGE_SIZE - 1),
                    outcome: FaultOutcome::Report,
                    served,
                });
            }
            done += n;
        }
        Ok(served)
    }

    /// Who may touch `vmid`'s memory through SIM_VM_READ / SIM_VM_WRITE: the
    /// VM itself and its manager (the VM that allocated it). For anyone else
    /// the VM does not exist: VMID_INVALID, as for the other requests about
    /// a VM that is not the caller's.
    fn sim_allowed(&self, caller: Vmid, vmid: Vmid) -> Result<(), RmError> {
        if self.may_manage(caller, vmid) {
            Ok(())
        } else {
            Err(RmError::VmidInvalid)
        }
    }

    /// SIM_VM_READ from `caller`: the reply body (`u32 err`, then the bytes or
    /// the IPA).
    pub(crate) fn rpc_sim_read(
        &mut self,
        caller: Vmid,
        vmid: Vmid,
        length: u32,
        ipa: u64,
    ) -> Result<Vec<u8>, Refusal> {
        self.sim_allowed(caller, vmid)?;
        if length == 0 || length > gunyah_rm_abi::ext::SIM_MAX_READ {
            let unsupported =
                self.plat.simulate_access(vmid, 0, Access::Read).is_none() && self.vms.exists(vmid);
            return Err(Refusal::from(if unsupported {
                RmError::Unimplemented
            } else if !self.vms.exists(vmid) {
                RmError::VmidInvalid
            } else {
                RmError::ArgumentInvalid
            }));
        }
        let mut buf = alloc::vec![0u8; length as usize];
        let r = self.vm_read(vmid, ipa, &mut buf);
        self.flush_cow_broken();
        r.map(|_| buf).map_err(|e| refusal(&e))
    }

    /// SIM_VM_WRITE from `caller`: the reply body (`u32 err`, then
    /// `faults_served` or the IPA).
    pub(crate) fn rpc_sim_write(
        &mut self,
        caller: Vmid,
        vmid: Vmid,
        ipa: u64,
        data: &[u8],
    ) -> Result<Vec<u8>, Refusal> {
        self.sim_allowed(caller, vmid)?;
        let r = self.vm_write(vmid, ipa, data);
        self.flush_cow_broken();
        r.map(|served| served.to_le_bytes().to_vec())
            .map_err(|e| refusal(&e))
    }
}

/// The refusal of a simulated access: its code, and the page that faulted.
fn refusal(e: &AccessError) -> Refusal {
    Refusal {
        code: e.rm_error(),
        trailer: match e {
            AccessError::Fault { ipa, .. } => Some(Trailer::FaultIpa(*ipa)),
            _ => None,
        },
    }
}
