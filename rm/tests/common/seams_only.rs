//! A platform seen only through the seams: every required [`AddressSpaces`]
//! and [`PhysMem`] method is forwarded, while `replace_page`, `walk`,
//! `replace_page_at` and `simulate_access` keep the trait defaults (unmap +
//! map, a walk that records no site, and no guest access simulation), as a
//! hardware or hypercall backend would have them.

use gunyah_rm::platform::PartitionUsage;
use gunyah_rm::{
    AddressSpaces, Leaf, MemKind, PhysMem, Plan, PlatformError, Prepared, Rights, Tag, Vmid,
};

/// `P`'s tables and memory without its single-entry replace or its
/// guest-access simulation.
pub struct SeamsOnly<P>(pub P);

impl<P: AddressSpaces> AddressSpaces for SeamsOnly<P> {
    fn create_space(&mut self, vmid: Vmid) -> Result<(), PlatformError> {
        self.0.create_space(vmid)
    }
    fn destroy_space(&mut self, vmid: Vmid) -> Result<(), PlatformError> {
        self.0.destroy_space(vmid)
    }
    fn map(
        &mut self,
        vmid: Vmid,
        ipa: u64,
        pa: u64,
        size: u64,
        rights: Rights,
        kind: MemKind,
        tag: Tag,
    ) -> Result<(), PlatformError> {
        self.0.map(vmid, ipa, pa, size, rights, kind, tag)
    }
    fn unmap(&mut self, vmid: Vmid, ipa: u64, size: u64) -> Result<(), PlatformError> {
        self.0.unmap(vmid, ipa, size)
    }
    fn protect(
        &mut self,
        vmid: Vmid,
        ipa: u64,
        size: u64,
        rights: Rights,
    ) -> Result<(), PlatformError> {
        self.0.protect(vmid, ipa, size, rights)
    }
    fn prepare(&mut self, plan: &Plan) -> Result<Prepared, PlatformError> {
        self.0.prepare(plan)
    }
    fn commit(&mut self, plan: &Plan, prepared: Prepared) {
        self.0.commit(plan, prepared)
    }
    fn abandon(&mut self, prepared: Prepared) {
        self.0.abandon(prepared)
    }
    fn query(&self, vmid: Vmid, ipa: u64) -> Option<Leaf> {
        self.0.query(vmid, ipa)
    }
    fn for_each_leaf(&self, vmid: Vmid, f: &mut dyn FnMut(&Leaf)) {
        self.0.for_each_leaf(vmid, f)
    }
    fn ipa_limit(&self) -> u64 {
        self.0.ipa_limit()
    }
}

impl<P: PhysMem> PhysMem for SeamsOnly<P> {
    fn alloc_page(&mut self) -> Option<u64> {
        self.0.alloc_page()
    }
    fn free_page(&mut self, pa: u64) {
        self.0.free_page(pa)
    }
    fn read(&self, pa: u64, buf: &mut [u8]) -> bool {
        self.0.read(pa, buf)
    }
    fn write(&mut self, pa: u64, data: &[u8]) -> bool {
        self.0.write(pa, data)
    }
    fn zero(&mut self, pa: u64, len: u64) -> bool {
        self.0.zero(pa, len)
    }
    fn copy(&mut self, dst: u64, src: u64, len: u64) -> bool {
        self.0.copy(dst, src, len)
    }
    fn partition_usage(&self) -> PartitionUsage {
        self.0.partition_usage()
    }
}
