//! The seams between the RM and the machine it runs on.
//!
//! The RM never writes a stage-2 descriptor and never issues a TLB invalidate
//! itself: it asks [`AddressSpaces`]. It touches physical memory only through
//! [`PhysMem`]. The host simulator implements both over the real
//! `gunyah-stage2` tables and a simulated arena; an EL2 build implements them
//! over real memory; a future backend over Gunyah hypercalls. Platforms with
//! software stage-2 tables get [`AddressSpaces`] from
//! [`crate::stage2_spaces`] and supply only where table pages come from.

use core::fmt;

/// A VM identifier (Gunyah VMID, 16 bits on the wire).
pub type Vmid = u16;

/// The size of a translation granule / page.
pub const PAGE_SIZE: u64 = 4096;

/// Access rights as encoded in ACL entries: X = 0x1, W = 0x2, R = 0x4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Rights(pub u8);

impl Rights {
    /// Execute.
    pub const X: Rights = Rights(0x1);
    /// Write.
    pub const W: Rights = Rights(0x2);
    /// Read.
    pub const R: Rights = Rights(0x4);
    /// Read + write.
    pub const RW: Rights = Rights(0x6);
    /// Read + execute.
    pub const RX: Rights = Rights(0x5);
    /// Read + write + execute.
    pub const RWX: Rights = Rights(0x7);

    /// Whether write is granted.
    pub const fn writable(self) -> bool {
        self.0 & 0x2 != 0
    }
    /// Whether read is granted.
    pub const fn readable(self) -> bool {
        self.0 & 0x4 != 0
    }
    /// Whether execute is granted.
    pub const fn executable(self) -> bool {
        self.0 & 0x1 != 0
    }
}

/// Memory type of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemKind {
    /// Normal (cacheable) memory.
    Normal,
    /// Device (IO) memory.
    Device,
}

/// What a mapping is, kept by the platform with each leaf (the stage-2 software bits, on
/// platforms with software tables), so the fault path decides from the one leaf it walked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tag {
    /// Nothing special: owned, shared, lent, bound memory.
    #[default]
    None = 0,
    /// A golden page, mapped read-only.
    Golden = 1,
    /// A private copy of a golden page made by a copy-on-write fault.
    Copy = 2,
    /// A private zeroed page made on first touch (demand paging).
    Zero = 3,
}

impl Tag {
    /// The tag of a 2-bit value (higher bits ignored).
    pub const fn from_bits(v: u8) -> Tag {
        match v & 3 {
            1 => Tag::Golden,
            2 => Tag::Copy,
            3 => Tag::Zero,
            _ => Tag::None,
        }
    }
}

/// Where a platform's walk found an IPA's translation, so that
/// [`AddressSpaces::replace_page_at`] can replace the page without walking again. Opaque to the
/// RM: only the platform that made it reads it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Site(pub [u64; 6]);

/// The result of one walk ([`AddressSpaces::walk`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Walked {
    /// The leaf translating the IPA, if any.
    pub leaf: Option<Leaf>,
    /// Where the walk ended.
    pub site: Site,
}

/// One stage-2 leaf (page or block) as the tables hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Leaf {
    /// First IPA covered.
    pub ipa: u64,
    /// First PA it translates to.
    pub pa: u64,
    /// Bytes covered (4 KiB, 2 MiB or 1 GiB).
    pub size: u64,
    /// Access rights.
    pub rights: Rights,
    /// Memory type.
    pub kind: MemKind,
    /// What the mapping is.
    pub tag: Tag,
}

/// A platform operation that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformError {
    /// No address space exists for that VMID.
    NoSuchSpace,
    /// An address space already exists for that VMID.
    SpaceExists,
    /// Out of memory (for tables or pages).
    NoMemory,
    /// Part of the range is already mapped.
    AlreadyMapped,
    /// Part of the range is not mapped.
    NotMapped,
    /// Misaligned, out of range or wrapping address.
    BadAddress,
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            PlatformError::NoSuchSpace => "no address space for that VMID",
            PlatformError::SpaceExists => "address space already exists",
            PlatformError::NoMemory => "out of memory",
            PlatformError::AlreadyMapped => "range already mapped",
            PlatformError::NotMapped => "range not mapped",
            PlatformError::BadAddress => "bad address",
        };
        f.write_str(s)
    }
}

/// Set aside by [`AddressSpaces::prepare`] for one plan; hand it to
/// [`AddressSpaces::commit`] or [`AddressSpaces::abandon`].
#[must_use = "a prepared plan must be committed or abandoned"]
#[derive(Debug)]
pub struct Prepared(());

impl Prepared {
    /// For platform implementations: the token of a successful `prepare`.
    pub fn new() -> Prepared {
        Prepared(())
    }
}

impl Default for Prepared {
    fn default() -> Self {
        Prepared::new()
    }
}

/// Per-VM stage-2 address spaces.
///
/// Ranges are page aligned. `map` must not replace an existing mapping and
/// `unmap`/`protect` must cover only mapped pages; an implementation fails
/// such calls without changing anything.
///
/// The RM changes stage 2 in plans ([`crate::plan::Plan`]): [`AddressSpaces::prepare`]
/// checks every piece against the tables and allocates every table page the plan needs (all or
/// nothing); [`AddressSpaces::commit`] then applies it and cannot fail, as Hafnium's
/// `mm_vm_identity_prepare`/`commit`. So a request never has a half-applied plan to undo.
pub trait AddressSpaces {
    /// Create an empty address space for `vmid`.
    fn create_space(&mut self, vmid: Vmid) -> Result<(), PlatformError>;
    /// Destroy `vmid`'s address space, freeing its tables (mappings included).
    fn destroy_space(&mut self, vmid: Vmid) -> Result<(), PlatformError>;
    /// Map `[ipa, ipa+size)` to `[pa, pa+size)`, tagged `tag`.
    #[allow(clippy::too_many_arguments)]
    fn map(
        &mut self,
        vmid: Vmid,
        ipa: u64,
        pa: u64,
        size: u64,
        rights: Rights,
        kind: MemKind,
        tag: Tag,
    ) -> Result<(), PlatformError>;
    /// Remove the mappings of `[ipa, ipa+size)`.
    fn unmap(&mut self, vmid: Vmid, ipa: u64, size: u64) -> Result<(), PlatformError>;
    /// Change the rights of the mapped range `[ipa, ipa+size)`.
    fn protect(
        &mut self,
        vmid: Vmid,
        ipa: u64,
        size: u64,
        rights: Rights,
    ) -> Result<(), PlatformError>;
    /// Check every piece of `plan` against the tables and set aside everything committing it
    /// needs (table pages), all or nothing. An error changes nothing.
    fn prepare(&mut self, plan: &crate::plan::Plan) -> Result<Prepared, PlatformError>;
    /// Apply a plan [`AddressSpaces::prepare`] accepted, with no change to the tables in
    /// between. Cannot fail.
    fn commit(&mut self, plan: &crate::plan::Plan, prepared: Prepared);
    /// Give back what [`AddressSpaces::prepare`] set aside, without applying the plan.
    fn abandon(&mut self, prepared: Prepared);
    /// Prepare and commit `plan`: all of it, or (on error) none of it.
    fn apply(&mut self, plan: &crate::plan::Plan) -> Result<(), PlatformError> {
        let p = self.prepare(plan)?;
        self.commit(plan, p);
        Ok(())
    }

    /// Make the page at `ipa` map `pa` with `rights`/`kind`/`tag`, whatever it
    /// mapped before (the copy-on-write step): an enclosing block is split
    /// so the rest of it keeps its mapping, and the old entry is replaced
    /// break-before-make. All or nothing. Returns the old leaf, if any.
    ///
    /// The default does it with `unmap` + `map` and puts the old page back if
    /// the map fails; platforms with a single-entry replace override it.
    #[allow(clippy::too_many_arguments)]
    fn replace_page(
        &mut self,
        vmid: Vmid,
        ipa: u64,
        pa: u64,
        rights: Rights,
        kind: MemKind,
        tag: Tag,
    ) -> Result<Option<Leaf>, PlatformError> {
        let ipa = ipa & !(PAGE_SIZE - 1);
        let old = self.query(vmid, ipa);
        if old.is_some() {
            self.unmap(vmid, ipa, PAGE_SIZE)?;
        }
        if let Err(e) = self.map(vmid, ipa, pa, PAGE_SIZE, rights, kind, tag) {
            if let Some(o) = old {
                let back = o.pa + (ipa - o.ipa);
                let _ = self.map(vmid, ipa, back, PAGE_SIZE, o.rights, o.kind, o.tag);
            }
            return Err(e);
        }
        Ok(old)
    }
    /// Walk `vmid`'s tables for `ipa` once: its leaf, and where the walk ended. `None` if
    /// there is no such address space or IPA. The default is [`AddressSpaces::query`].
    fn walk(&self, vmid: Vmid, ipa: u64) -> Option<Walked> {
        Some(Walked {
            leaf: self.query(vmid, ipa),
            site: Site::default(),
        })
    }
    /// [`AddressSpaces::walk`] with the platform held exclusively (the RM's own fault path):
    /// platforms that lock each address space for shared walkers skip the lock. The default
    /// walks.
    fn walk_exclusive(&mut self, vmid: Vmid, ipa: u64) -> Option<Walked> {
        self.walk(vmid, ipa)
    }
    /// [`AddressSpaces::replace_page`] of the page a [`AddressSpaces::walk`] just found, with no
    /// change to `vmid`'s tables in between: platforms that can replace the entry the walk
    /// ended at without walking again do so (they check it is unchanged). The default walks.
    #[allow(clippy::too_many_arguments)]
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
        let _ = walked;
        self.replace_page(vmid, ipa, pa, rights, kind, tag)
            .map(|_| ())
    }
    /// The leaf translating `ipa`, if any.
    fn query(&self, vmid: Vmid, ipa: u64) -> Option<Leaf>;
    /// Call `f` for every leaf of `vmid`'s tables, in IPA order.
    fn for_each_leaf(&self, vmid: Vmid, f: &mut dyn FnMut(&Leaf));
    /// Call `f` for every leaf of `vmid`'s tables that maps part of `[ipa, ipa+size)`, in IPA
    /// order (a leaf is reported whole, even where it extends beyond the range). The default
    /// filters [`AddressSpaces::for_each_leaf`]; platforms with tables visit only the part of
    /// them that covers the range.
    fn for_each_leaf_in(&self, vmid: Vmid, ipa: u64, size: u64, f: &mut dyn FnMut(&Leaf)) {
        let end = ipa.saturating_add(size);
        self.for_each_leaf(vmid, &mut |l| {
            if l.ipa < end && ipa < l.ipa + l.size {
                f(l)
            }
        });
    }
    /// One past the highest IPA an address space can map: the platform's IPA size, the
    /// largest a VM can have.
    fn ipa_limit(&self) -> u64;
    /// One past the highest IPA `vmid`'s address space can map: its own IPA size (a VM
    /// config's `ipa-bits`, [`AddressSpaces::set_ipa_bits`]); [`AddressSpaces::ipa_limit`] for
    /// a VM without a space, and on platforms that give every VM the platform's size.
    fn vm_ipa_limit(&self, vmid: Vmid) -> u64 {
        let _ = vmid;
        self.ipa_limit()
    }
    /// Give `vmid`'s address space an IPA space of `1 << ipa_bits` bytes, `32..=` the
    /// platform's (else `BadAddress`): a smaller one needs fewer root table pages. Only a space
    /// that maps nothing is resized (else `AlreadyMapped`); asking for its current size
    /// changes nothing. All or nothing: on an error the space is unchanged. The default (a
    /// platform with one size for every VM) accepts only the platform's size.
    fn set_ipa_bits(&mut self, vmid: Vmid, ipa_bits: u8) -> Result<(), PlatformError> {
        let _ = vmid;
        if 1u64.checked_shl(ipa_bits.into()) == Some(self.ipa_limit()) {
            Ok(())
        } else {
            Err(PlatformError::BadAddress)
        }
    }

    /// What the MMU does for a guest `access` to `ipa` through `vmid`'s real
    /// stage-2 tables: `Some(Ok(pa))`, or `Some(Err(status))` for the stage-2
    /// fault it raises. `None` on platforms that cannot simulate guest
    /// accesses (everything but the host simulator).
    fn simulate_access(
        &self,
        vmid: Vmid,
        ipa: u64,
        access: gunyah_stage2::Access,
    ) -> Option<Result<u64, gunyah_stage2::FaultStatus>> {
        let _ = (vmid, ipa, access);
        None
    }

    /// Off the fault path (the RM calls it when it drains its outbox, after a burst of
    /// faults): make up the spare stage-2 tables of every VM whose copy-on-write faults split
    /// blocks since the last call, so its next splits take a table without calling the
    /// allocator. Platforms without spare tables do nothing (the default).
    fn refill_split_tables(&mut self) {}

    /// Give every VM's spare tables back to the allocator (the RM does when a fault finds no
    /// free page); returns how many. The default has none.
    fn release_split_tables(&mut self) -> usize {
        0
    }
}

/// The stage-2 operation the concurrent fault path ([`crate::concurrent`]) makes through `&self`,
/// while vCPUs of several VMs fault at once.
///
/// The RM calls it for `vmid` only while it holds that VM's fault lock and no request runs
/// (requests hold the RM's exclusive lock): between the fault's [`AddressSpaces::walk`] and
/// this call nothing else changes `vmid`'s tables. An implementation locks only `vmid`'s tables.
pub trait SharedAddressSpaces {
    /// [`AddressSpaces::replace_page_at`] through `&self`: make the page at `ipa` (found by
    /// `walked`) map `pa`, splitting a block, break-before-make; all or nothing. Also maps a
    /// page where the walk found none (demand paging).
    #[allow(clippy::too_many_arguments)]
    fn replace_page_at_shared(
        &self,
        vmid: Vmid,
        walked: &Walked,
        ipa: u64,
        pa: u64,
        rights: Rights,
        kind: MemKind,
        tag: Tag,
    ) -> Result<(), PlatformError>;
}

/// The page allocation of the concurrent fault path ([`crate::concurrent`]) through `&self`:
/// several vCPUs allocate at once, so the allocator is lock-free or takes its own (leaf) lock.
pub trait SharedPhysMem {
    /// [`PhysMem::alloc_page_copy`] through `&self`. `src` is a golden page, which nothing
    /// writes while the call runs: an implementation may copy it without holding any lock.
    fn alloc_page_copy_shared(&self, src: u64) -> Option<u64>;
    /// A zeroed page ([`PhysMem::alloc_page`] + [`PhysMem::zero`]) through `&self`.
    fn alloc_zeroed_page_shared(&self) -> Option<u64>;
    /// [`PhysMem::free_page`] through `&self`, of a page the fault path allocated and did not map.
    fn free_page_shared(&self, pa: u64);
}

/// A platform whose faults can be served by several vCPUs (threads) at once
/// ([`crate::concurrent::ConcurrentRm`]).
pub trait ConcurrentPlatform: Platform + SharedAddressSpaces + SharedPhysMem + Send + Sync {}

impl<T: Platform + SharedAddressSpaces + SharedPhysMem + Send + Sync> ConcurrentPlatform for T {}

/// How the partition's pages are used, for leak checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionUsage {
    /// Pages in the partition.
    pub total: u64,
    /// Pages currently free.
    pub free: u64,
    /// Pages the platform itself holds (stage-2 table pages).
    pub tables: u64,
}

/// Physical memory: the partition's page allocator and byte access.
pub trait PhysMem {
    /// Allocate one page from the partition (contents unspecified).
    fn alloc_page(&mut self) -> Option<u64>;
    /// Return a page obtained from [`PhysMem::alloc_page`] (or one page of a
    /// run from [`PhysMem::alloc_contiguous`]).
    fn free_page(&mut self, pa: u64);
    /// Allocate `count` pages (a power of two) that are physically contiguous
    /// and aligned to `count` pages, contents unspecified; each page is given
    /// back on its own with [`PhysMem::free_page`]. Lets the RM map memory
    /// with 2 MiB blocks. `None` when no such run is free, or (the default)
    /// when the platform cannot allocate runs: callers then fall back to
    /// [`PhysMem::alloc_page`] page by page.
    fn alloc_contiguous(&mut self, count: u64) -> Option<u64> {
        let _ = count;
        None
    }
    /// Allocate one page holding a copy of the page at `src` (page aligned):
    /// the copy-on-write allocation. The page is never seen with other
    /// contents. `None` (nothing allocated) when out of memory or `src` is
    /// not memory. The default is [`PhysMem::alloc_page`] +
    /// [`PhysMem::copy`]; platforms whose allocation zeroes pages override it
    /// to skip zeroing a page the copy overwrites completely.
    fn alloc_page_copy(&mut self, src: u64) -> Option<u64> {
        let pa = self.alloc_page()?;
        if self.copy(pa, src, PAGE_SIZE) {
            Some(pa)
        } else {
            self.free_page(pa);
            None
        }
    }
    /// Copy `buf.len()` bytes from `pa`; false if any byte is not memory.
    fn read(&self, pa: u64, buf: &mut [u8]) -> bool;
    /// Copy `data` to `pa`; false (and nothing written) if any byte is not memory.
    fn write(&mut self, pa: u64, data: &[u8]) -> bool;
    /// Zero `[pa, pa+len)`.
    fn zero(&mut self, pa: u64, len: u64) -> bool;
    /// Copy `len` bytes from `src` to `dst`.
    fn copy(&mut self, dst: u64, src: u64, len: u64) -> bool;
    /// Partition accounting.
    fn partition_usage(&self) -> PartitionUsage;
}

/// Everything the RM core needs from a platform.
pub trait Platform: AddressSpaces + PhysMem {}

impl<T: AddressSpaces + PhysMem> Platform for T {}
