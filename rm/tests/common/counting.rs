//! A platform that counts every seam call the RM makes, forwarding all of them (the
//! single-entry replace and guest-access simulation included) to the platform it wraps. Used
//! to check how much work one request or fault does, independently of timing.

use std::collections::BTreeMap;

use gunyah_rm::platform::{PartitionUsage, Walked};
use gunyah_rm::{
    AddressSpaces, Leaf, MemKind, PhysMem, Plan, PlatformError, Prepared, Rights, Tag, Vmid,
};

/// Runs a forwarded call, charging what the probe counts during it to the wrapped platform.
macro_rules! fwd {
    ($s:ident, $e:expr) => {{
        let a0 = ($s.probe)();
        let r = $e;
        $s.inner_allocs
            .set($s.inner_allocs.get() + ($s.probe)() - a0);
        r
    }};
}

/// `P`, with a count of calls per seam method.
pub struct Counting<P> {
    /// The platform doing the work.
    pub inner: P,
    calls: std::cell::RefCell<BTreeMap<&'static str, u64>>,
    /// Reads a heap-allocation counter, so allocations the wrapped platform makes can be told
    /// apart from the RM's own.
    probe: fn() -> u64,
    inner_allocs: std::cell::Cell<u64>,
}

impl<P> Counting<P> {
    pub fn new(inner: P) -> Self {
        Self::with_probe(inner, || 0)
    }
    /// Counting, and charging what `probe` counts during each forwarded call to the platform.
    pub fn with_probe(inner: P, probe: fn() -> u64) -> Self {
        Counting {
            inner,
            calls: Default::default(),
            probe,
            inner_allocs: Default::default(),
        }
    }
    fn hit(&self, name: &'static str) {
        // The count's own map node is the wrapper's allocation, not the RM's.
        fwd!(self, *self.calls.borrow_mut().entry(name).or_default() += 1)
    }
    /// What the probe counted inside the wrapped platform since the last call, and reset.
    pub fn take_inner_allocs(&self) -> u64 {
        self.inner_allocs.take()
    }
    /// The calls since the last take, by method name, and reset.
    pub fn take(&self) -> BTreeMap<&'static str, u64> {
        std::mem::take(&mut *self.calls.borrow_mut())
    }
}

impl<P: AddressSpaces> AddressSpaces for Counting<P> {
    fn create_space(&mut self, vmid: Vmid) -> Result<(), PlatformError> {
        self.hit("create_space");
        fwd!(self, self.inner.create_space(vmid))
    }
    fn destroy_space(&mut self, vmid: Vmid) -> Result<(), PlatformError> {
        self.hit("destroy_space");
        fwd!(self, self.inner.destroy_space(vmid))
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
        self.hit("map");
        fwd!(self, self.inner.map(vmid, ipa, pa, size, rights, kind, tag))
    }
    fn unmap(&mut self, vmid: Vmid, ipa: u64, size: u64) -> Result<(), PlatformError> {
        self.hit("unmap");
        fwd!(self, self.inner.unmap(vmid, ipa, size))
    }
    fn protect(
        &mut self,
        vmid: Vmid,
        ipa: u64,
        size: u64,
        rights: Rights,
    ) -> Result<(), PlatformError> {
        self.hit("protect");
        fwd!(self, self.inner.protect(vmid, ipa, size, rights))
    }
    fn prepare(&mut self, plan: &Plan) -> Result<Prepared, PlatformError> {
        self.hit("prepare");
        fwd!(self, self.inner.prepare(plan))
    }
    fn commit(&mut self, plan: &Plan, prepared: Prepared) {
        self.hit("commit");
        fwd!(self, self.inner.commit(plan, prepared))
    }
    fn abandon(&mut self, prepared: Prepared) {
        self.hit("abandon");
        fwd!(self, self.inner.abandon(prepared))
    }
    fn replace_page(
        &mut self,
        vmid: Vmid,
        ipa: u64,
        pa: u64,
        rights: Rights,
        kind: MemKind,
        tag: Tag,
    ) -> Result<Option<Leaf>, PlatformError> {
        self.hit("replace_page");
        fwd!(
            self,
            self.inner.replace_page(vmid, ipa, pa, rights, kind, tag)
        )
    }
    fn walk(&self, vmid: Vmid, ipa: u64) -> Option<Walked> {
        self.hit("walk");
        fwd!(self, self.inner.walk(vmid, ipa))
    }
    fn replace_page_at(
        &mut self,
        vmid: Vmid,
        walked: &Walked,
        ipa: u64,
        pa: u64,
        rights: Rights,
        kind: MemKind,
        tag: Tag,
    ) -> Result<(), PlatformError> {
        self.hit("replace_page_at");
        fwd!(
            self,
            self.inner
                .replace_page_at(vmid, walked, ipa, pa, rights, kind, tag)
        )
    }
    fn query(&self, vmid: Vmid, ipa: u64) -> Option<Leaf> {
        self.hit("query");
        fwd!(self, self.inner.query(vmid, ipa))
    }
    fn for_each_leaf(&self, vmid: Vmid, f: &mut dyn FnMut(&Leaf)) {
        self.hit("for_each_leaf");
        fwd!(self, self.inner.for_each_leaf(vmid, f))
    }
    fn for_each_leaf_in(&self, vmid: Vmid, ipa: u64, size: u64, f: &mut dyn FnMut(&Leaf)) {
        self.hit("for_each_leaf_in");
        fwd!(self, self.inner.for_each_leaf_in(vmid, ipa, size, f))
    }
    fn ipa_limit(&self) -> u64 {
        fwd!(self, self.inner.ipa_limit())
    }
    fn vm_ipa_limit(&self, vmid: Vmid) -> u64 {
        fwd!(self, self.inner.vm_ipa_limit(vmid))
    }
    fn set_ipa_bits(&mut self, vmid: Vmid, ipa_bits: u8) -> Result<(), PlatformError> {
        self.hit("set_ipa_bits");
        fwd!(self, self.inner.set_ipa_bits(vmid, ipa_bits))
    }
    fn simulate_access(
        &self,
        vmid: Vmid,
        ipa: u64,
        access: gunyah_stage2::Access,
    ) -> Option<Result<u64, gunyah_stage2::FaultStatus>> {
        fwd!(self, self.inner.simulate_access(vmid, ipa, access))
    }
    fn refill_split_tables(&mut self) {
        self.hit("refill_split_tables");
        fwd!(self, self.inner.refill_split_tables())
    }
    fn release_split_tables(&mut self) -> usize {
        self.hit("release_split_tables");
        fwd!(self, self.inner.release_split_tables())
    }
}

impl<P: PhysMem> PhysMem for Counting<P> {
    fn alloc_page(&mut self) -> Option<u64> {
        self.hit("alloc_page");
        fwd!(self, self.inner.alloc_page())
    }
    fn free_page(&mut self, pa: u64) {
        self.hit("free_page");
        fwd!(self, self.inner.free_page(pa))
    }
    fn alloc_contiguous(&mut self, count: u64) -> Option<u64> {
        self.hit("alloc_contiguous");
        fwd!(self, self.inner.alloc_contiguous(count))
    }
    fn alloc_page_copy(&mut self, src: u64) -> Option<u64> {
        self.hit("alloc_page_copy");
        fwd!(self, self.inner.alloc_page_copy(src))
    }
    fn read(&self, pa: u64, buf: &mut [u8]) -> bool {
        fwd!(self, self.inner.read(pa, buf))
    }
    fn write(&mut self, pa: u64, data: &[u8]) -> bool {
        fwd!(self, self.inner.write(pa, data))
    }
    fn zero(&mut self, pa: u64, len: u64) -> bool {
        self.hit("zero");
        fwd!(self, self.inner.zero(pa, len))
    }
    fn copy(&mut self, dst: u64, src: u64, len: u64) -> bool {
        self.hit("copy");
        fwd!(self, self.inner.copy(dst, src, len))
    }
    fn partition_usage(&self) -> PartitionUsage {
        fwd!(self, self.inner.partition_usage())
    }
}
