//! The host simulator platform: a simulated physical arena (sparse, zero
//! filled) holding HLOS RAM and the RM's partition, and per-VM stage-2
//! address spaces.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::platform::*;

/// Simulated machine layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// HLOS RAM: (PA, size). Mapped 1:1 by the RM at boot.
    pub hlos_ram: (u64, u64),
    /// First PA of the RM's partition.
    pub partition_base: u64,
    /// Pages in the partition.
    pub partition_pages: u64,
    /// IPA size of every address space, in bits.
    pub ipa_bits: u8,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            hlos_ram: (0x4000_0000, 0x4000_0000),
            partition_base: 0x1_0000_0000,
            partition_pages: 16384,
            ipa_bits: 40,
        }
    }
}

/// One 4 KiB page of simulated memory, u64-aligned so it can hold tables.
pub type PageBuf = [u64; 512];

/// The simulated physical memory.
#[derive(Debug)]
pub struct Arena {
    cfg: SimConfig,
    pages: BTreeMap<u64, Box<PageBuf>>,
    free: Vec<u64>,
    tables: BTreeSet<u64>,
}

impl Arena {
    fn new(cfg: SimConfig) -> Arena {
        let free = (0..cfg.partition_pages)
            .rev()
            .map(|i| cfg.partition_base + i * PAGE_SIZE)
            .collect();
        Arena {
            cfg,
            pages: BTreeMap::new(),
            free,
            tables: BTreeSet::new(),
        }
    }

    fn is_memory(&self, pa: u64, len: u64) -> bool {
        let Some(end) = pa.checked_add(len) else {
            return false;
        };
        let (rb, rs) = self.cfg.hlos_ram;
        let pe = self.cfg.partition_base + self.cfg.partition_pages * PAGE_SIZE;
        (pa >= rb && end <= rb + rs) || (pa >= self.cfg.partition_base && end <= pe)
    }

    fn page_mut(&mut self, pfn_pa: u64) -> &mut PageBuf {
        self.pages
            .entry(pfn_pa)
            .or_insert_with(|| Box::new([0u64; 512]))
    }

    fn read(&self, pa: u64, buf: &mut [u8]) -> bool {
        if !self.is_memory(pa, buf.len() as u64) {
            return false;
        }
        let mut done = 0;
        while done < buf.len() {
            let a = pa + done as u64;
            let (page, off) = (a & !(PAGE_SIZE - 1), (a % PAGE_SIZE) as usize);
            let n = (PAGE_SIZE as usize - off).min(buf.len() - done);
            match self.pages.get(&page) {
                Some(p) => buf[done..done + n]
                    .copy_from_slice(&zerocopy::IntoBytes::as_bytes(&**p)[off..off + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
        }
        true
    }

    fn write(&mut self, pa: u64, data: &[u8]) -> bool {
        if !self.is_memory(pa, data.len() as u64) {
            return false;
        }
        let mut done = 0;
        while done < data.len() {
            let a = pa + done as u64;
            let (page, off) = (a & !(PAGE_SIZE - 1), (a % PAGE_SIZE) as usize);
            let n = (PAGE_SIZE as usize - off).min(data.len() - done);
            let p = self.page_mut(page);
            zerocopy::IntoBytes::as_mut_bytes(&mut *p)[off..off + n]
                .copy_from_slice(&data[done..done + n]);
            done += n;
        }
        true
    }

    fn zero(&mut self, pa: u64, len: u64) -> bool {
        if !self.is_memory(pa, len) {
            return false;
        }
        // Whole pages are dropped (they read back as zero); partial ones are written.
        let end = pa + len;
        let mut a = pa;
        while a < end {
            let page = a & !(PAGE_SIZE - 1);
            let n = (page + PAGE_SIZE).min(end) - a;
            if n == PAGE_SIZE {
                self.pages.remove(&page);
            } else if self.pages.contains_key(&page) {
                let off = (a - page) as usize;
                let p = self.page_mut(page);
                zerocopy::IntoBytes::as_mut_bytes(&mut *p)[off..off + n as usize].fill(0);
            }
            a += n;
        }
        true
    }

    /// Pages holding non-zero data (for tests and stats).
    pub fn resident_pages(&self) -> usize {
        self.pages.len()
    }
}

/// A shared handle on the arena.
#[derive(Clone, Debug)]
pub struct ArenaHandle(Arc<Mutex<Arena>>);

impl ArenaHandle {
    /// Lock the arena.
    pub fn lock(&self) -> MutexGuard<'_, Arena> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Range-based stand-in for stage-2 tables (replaced by gunyah-stage2).
#[derive(Debug, Default)]
struct FakeSpace {
    leaves: BTreeMap<u64, Leaf>,
}

impl FakeSpace {
    fn overlapping(&self, ipa: u64, size: u64) -> Vec<Leaf> {
        self.leaves
            .range(..ipa + size)
            .filter(|(_, l)| l.ipa + l.size > ipa)
            .map(|(_, l)| *l)
            .collect()
    }
    fn covered(&self, ipa: u64, size: u64) -> bool {
        let mut cur = ipa;
        for l in self.overlapping(ipa, size) {
            if l.ipa > cur {
                return false;
            }
            cur = l.ipa + l.size;
        }
        cur >= ipa + size
    }
    fn carve(&mut self, ipa: u64, size: u64) -> Vec<Leaf> {
        let end = ipa + size;
        let mut mid = Vec::new();
        for l in self.overlapping(ipa, size) {
            self.leaves.remove(&l.ipa);
            if l.ipa < ipa {
                self.leaves.insert(
                    l.ipa,
                    Leaf {
                        size: ipa - l.ipa,
                        ..l
                    },
                );
            }
            if l.ipa + l.size > end {
                let b = Leaf {
                    ipa: end,
                    pa: l.pa + (end - l.ipa),
                    size: l.ipa + l.size - end,
                    ..l
                };
                self.leaves.insert(end, b);
            }
            let s = l.ipa.max(ipa);
            let e = (l.ipa + l.size).min(end);
            mid.push(Leaf {
                ipa: s,
                pa: l.pa + (s - l.ipa),
                size: e - s,
                ..l
            });
        }
        mid
    }
}

/// The simulator platform.
#[derive(Debug)]
pub struct SimPlatform {
    arena: ArenaHandle,
    spaces: BTreeMap<Vmid, FakeSpace>,
    ipa_limit: u64,
}

impl SimPlatform {
    /// A simulated machine.
    pub fn new(cfg: SimConfig) -> SimPlatform {
        let ipa_limit = 1u64 << cfg.ipa_bits;
        SimPlatform {
            arena: ArenaHandle(Arc::new(Mutex::new(Arena::new(cfg)))),
            spaces: BTreeMap::new(),
            ipa_limit,
        }
    }

    /// The arena.
    pub fn arena(&self) -> &ArenaHandle {
        &self.arena
    }
}

impl AddressSpaces for SimPlatform {
    fn create_space(&mut self, vmid: Vmid) -> Result<(), PlatformError> {
        if self.spaces.contains_key(&vmid) {
            return Err(PlatformError::SpaceExists);
        }
        self.spaces.insert(vmid, FakeSpace::default());
        Ok(())
    }
    fn destroy_space(&mut self, vmid: Vmid) -> Result<(), PlatformError> {
        self.spaces
            .remove(&vmid)
            .map(|_| ())
            .ok_or(PlatformError::NoSuchSpace)
    }
    fn map(
        &mut self,
        vmid: Vmid,
        ipa: u64,
        pa: u64,
        size: u64,
        rights: Rights,
        kind: MemKind,
    ) -> Result<(), PlatformError> {
        let limit = self.ipa_limit;
        let s = self
            .spaces
            .get_mut(&vmid)
            .ok_or(PlatformError::NoSuchSpace)?;
        if !ipa.is_multiple_of(PAGE_SIZE)
            || !pa.is_multiple_of(PAGE_SIZE)
            || !size.is_multiple_of(PAGE_SIZE)
            || size == 0
            || ipa + size > limit
        {
            return Err(PlatformError::BadAddress);
        }
        if !s.overlapping(ipa, size).is_empty() {
            return Err(PlatformError::AlreadyMapped);
        }
        s.leaves.insert(
            ipa,
            Leaf {
                ipa,
                pa,
                size,
                rights,
                kind,
            },
        );
        Ok(())
    }
    fn unmap(&mut self, vmid: Vmid, ipa: u64, size: u64) -> Result<(), PlatformError> {
        let s = self
            .spaces
            .get_mut(&vmid)
            .ok_or(PlatformError::NoSuchSpace)?;
        if !s.covered(ipa, size) {
            return Err(PlatformError::NotMapped);
        }
        s.carve(ipa, size);
        Ok(())
    }
    fn protect(
        &mut self,
        vmid: Vmid,
        ipa: u64,
        size: u64,
        rights: Rights,
    ) -> Result<(), PlatformError> {
        let s = self
            .spaces
            .get_mut(&vmid)
            .ok_or(PlatformError::NoSuchSpace)?;
        if !s.covered(ipa, size) {
            return Err(PlatformError::NotMapped);
        }
        for l in s.carve(ipa, size) {
            s.leaves.insert(l.ipa, Leaf { rights, ..l });
        }
        Ok(())
    }
    fn query(&self, vmid: Vmid, ipa: u64) -> Option<Leaf> {
        let s = self.spaces.get(&vmid)?;
        s.overlapping(ipa, 1).first().copied()
    }
    fn for_each_leaf(&self, vmid: Vmid, f: &mut dyn FnMut(&Leaf)) {
        if let Some(s) = self.spaces.get(&vmid) {
            for l in s.leaves.values() {
                f(l);
            }
        }
    }
    fn ipa_limit(&self) -> u64 {
        self.ipa_limit
    }
}

impl PhysMem for SimPlatform {
    fn alloc_page(&mut self) -> Option<u64> {
        self.arena.lock().free.pop()
    }
    fn free_page(&mut self, pa: u64) {
        let mut a = self.arena.lock();
        a.pages.remove(&pa);
        a.free.push(pa);
    }
    fn read(&self, pa: u64, buf: &mut [u8]) -> bool {
        self.arena.lock().read(pa, buf)
    }
    fn write(&mut self, pa: u64, data: &[u8]) -> bool {
        self.arena.lock().write(pa, data)
    }
    fn zero(&mut self, pa: u64, len: u64) -> bool {
        self.arena.lock().zero(pa, len)
    }
    fn copy(&mut self, dst: u64, src: u64, len: u64) -> bool {
        let mut a = self.arena.lock();
        let mut buf = vec![0u8; len as usize];
        a.read(src, &mut buf) && a.write(dst, &buf)
    }
    fn partition_usage(&self) -> PartitionUsage {
        let a = self.arena.lock();
        PartitionUsage {
            total: a.cfg.partition_pages,
            free: a.free.len() as u64,
            tables: a.tables.len() as u64,
        }
    }
}

/// An RM on the default simulated platform (HLOS with 1 GiB at 0x40000000).
pub fn default_rm() -> crate::Rm<SimPlatform> {
    sim_rm(SimConfig::default(), crate::RmConfig::default())
}

/// An RM on a simulated platform; HLOS RAM comes from `sim.hlos_ram`.
pub fn sim_rm(sim: SimConfig, mut cfg: crate::RmConfig) -> crate::Rm<SimPlatform> {
    cfg.hlos_ram = Some((sim.hlos_ram.0, sim.hlos_ram.0, sim.hlos_ram.1));
    let plat = SimPlatform::new(sim);
    match crate::Rm::new(plat, cfg) {
        Ok(rm) => rm,
        // The default layouts always fit; a custom one that does not is a test bug.
        Err(e) => panic!("simulated platform cannot boot HLOS: {e}"),
    }
}
