//! The RM service object: its records, its platform and its transport API.
//!
//! Records (all checked against the real stage-2 tables by
//! [`Rm::check_isolation`] and dumped by [`Rm::snapshot`]):
//! * `vms`: the VM table and state machine ([`crate::vm`]);
//! * `spaces`: per VM, the one state of every IPA range it can address, its
//!   gmem pools and its pending COW_BROKEN batch ([`crate::space`]);
//! * `parcels`: the memparcel database, records about ranges
//!   ([`crate::memparcel`]);
//! * `goldens`: golden images ([`crate::golden`]);
//! * `rm_pages`: partition pages the RM holds for records (take them with
//!   [`Rm::alloc_partition_page`] so the leak check accounts for them).
//!
//! The transitions are in [`crate::memparcel`], [`crate::gmem`],
//! [`crate::golden`], [`crate::cow`] (the fault path, [`Rm::handle_fault`])
//! and [`crate::lifecycle`]; each changes stage 2 through one plan
//! ([`crate::plan`]).

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::vmid_map::VmidMap;
use alloc::vec::Vec;

use crate::parcel::ParcelDb;
use crate::platform::{MemKind, Platform, PlatformError, Rights, Vmid};
use crate::rpc::{ClientRx, Outbox};
use crate::space::{Origin, Owned, State, VmSpace};
use crate::vm::{links_in, LinkId, Vm, VmState, VmTable, VMID_HLOS};

/// RM configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RmConfig {
    /// Most live parcels one VM may own (`MAX_MEMPARCEL_PER_VM`, default 64).
    pub max_parcels_per_vm: usize,
    /// Lowest IPA the RM picks when it chooses where to map a parcel.
    pub ipa_alloc_base: u64,
    /// One past the highest such IPA.
    pub ipa_alloc_end: u64,
    /// HLOS RAM mapped at boot: (IPA, PA, size), owned by HLOS.
    pub hlos_ram: Option<(u64, u64, u64)>,
    /// HLOS device (IO) memory mapped at boot: (IPA, PA, size) ranges, owned by
    /// HLOS, so it can lend and share IO parcels.
    pub hlos_mmio: Vec<(u64, u64, u64)>,
}

impl Default for RmConfig {
    fn default() -> Self {
        RmConfig {
            max_parcels_per_vm: 64,
            ipa_alloc_base: 0x1_0000_0000,
            ipa_alloc_end: 0x100_0000_0000,
            hlos_ram: Some((0x4000_0000, 0x4000_0000, 0x4000_0000)),
            hlos_mmio: Vec::new(),
        }
    }
}

/// The Resource Manager.
pub struct Rm<P: Platform> {
    pub(crate) plat: P,
    pub(crate) cfg: RmConfig,
    pub(crate) vms: VmTable,
    pub(crate) spaces: VmidMap<VmSpace>,
    pub(crate) parcels: ParcelDb,
    /// Golden images by id.
    pub(crate) goldens: BTreeMap<u32, crate::golden::Golden>,
    pub(crate) next_golden: u32,
    /// Which VM each gmem pool belongs to (the pool lives in that VM's space).
    pub(crate) pool_owner: BTreeMap<u32, Vmid>,
    pub(crate) next_pool: u32,
    /// Where each binding handle's range starts.
    pub(crate) bindings: BTreeMap<u32, (Vmid, u64)>,
    pub(crate) next_binding: u32,
    /// Protected VMs → the golden digests their config accepts.
    pub(crate) protected: BTreeMap<Vmid, Vec<[u8; 32]>>,
    /// Fault-path counters.
    pub(crate) counters: crate::cow::FaultCounters,
    pub(crate) out: Outbox,
    pub(crate) rx: BTreeMap<Vmid, ClientRx>,
    /// The payload of the request being handled, kept between requests for its allocation.
    rx_payload: Vec<u8>,
    /// The VMs whose `pending_cow` may hold IPAs (every VM with pending IPAs is in it): the
    /// drain sends their COW_BROKENs without visiting the other VMs.
    pub(crate) cow_dirty: crate::vmid_map::VmidSet,
    pub(crate) notif_seq: u16,
    pub(crate) next_cap: u64,
    /// VMs with asynchronous work (reset stages) pending, in order.
    pub(crate) deferred: VecDeque<Vmid>,
    /// Partition pages the RM holds in its records.
    pub(crate) rm_pages: BTreeSet<u64>,
    /// The next [`LinkId`] to hand out.
    pub(crate) next_link: LinkId,
    /// VM state changes for an in-process observer (the launcher), when one listens.
    pub(crate) events: Option<VecDeque<VmEvent>>,
    /// VMs launched from the config in their DT: templates to seal, images sealed
    /// ([`crate::launch::apply`]).
    pub(crate) vm_configs: crate::launch::apply::ConfigRecords,
}

/// A change of a VM's status, as VM_STATUS reports it, for an in-process observer (e.g. the
/// launcher, which seals a template when it reports OS status RUN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmEvent {
    /// The VM.
    pub vmid: Vmid,
    /// Its state.
    pub state: VmState,
    /// Its OS status.
    pub os_status: u8,
}

impl<P: Platform> Rm<P> {
    /// Boot the RM on `plat`: create HLOS (RUNNING) and map its RAM.
    pub fn new(mut plat: P, cfg: RmConfig) -> Result<Self, PlatformError> {
        let mut vms = VmTable::default();
        let mut hlos = Vm::new(VMID_HLOS, VMID_HLOS, VmState::Running);
        hlos.vcpus = 0;
        hlos.link = Some(1);
        // Gunyah's RM names HLOS "HLOS" (`vm_mgnt_init`); VM_GET_ID answers it.
        hlos.identity.name = alloc::string::String::from("HLOS");
        vms.vms.insert(VMID_HLOS, hlos);
        plat.create_space(VMID_HLOS)?;
        let mut m = VmSpace::default();
        let ram = cfg.hlos_ram.map(|r| (r, Rights::RWX, MemKind::Normal));
        let mmio = cfg
            .hlos_mmio
            .iter()
            .map(|r| (*r, Rights::RW, MemKind::Device));
        for ((ipa, pa, size), rights, kind) in ram.into_iter().chain(mmio) {
            plat.map(
                VMID_HLOS,
                ipa,
                pa,
                size,
                rights,
                kind,
                crate::platform::Tag::None,
            )?;
            let owned = Owned {
                pa,
                rights,
                kind,
                origin: Origin::Boot,
            };
            m.insert(ipa, size, State::Owned(owned));
        }
        let mut spaces = VmidMap::new();
        spaces.insert(VMID_HLOS, m);
        Ok(Rm {
            plat,
            cfg,
            vms,
            spaces,
            parcels: ParcelDb::default(),
            goldens: BTreeMap::new(),
            next_golden: 0,
            pool_owner: BTreeMap::new(),
            next_pool: 0,
            bindings: BTreeMap::new(),
            next_binding: 0,
            protected: BTreeMap::new(),
            counters: Default::default(),
            out: Outbox::default(),
            rx: BTreeMap::new(),
            rx_payload: Vec::new(),
            cow_dirty: crate::vmid_map::VmidSet::new(),
            notif_seq: 0,
            next_cap: 0x100,
            deferred: VecDeque::new(),
            rm_pages: BTreeSet::new(),
            next_link: 2,
            events: None,
            vm_configs: Default::default(),
        })
    }

    /// The platform (for inspection, e.g. reading simulated memory).
    pub fn platform(&self) -> &P {
        &self.plat
    }

    /// The platform, mutably (tests use it to fill memory).
    pub fn platform_mut(&mut self) -> &mut P {
        &mut self.plat
    }

    /// The configuration.
    pub fn config(&self) -> &RmConfig {
        &self.cfg
    }

    /// Whether `vmid` is a VM the RM knows.
    pub fn vm_exists(&self, vmid: Vmid) -> bool {
        self.vms.exists(vmid)
    }

    /// `vmid`'s RM-RPC link, if its message queues exist now
    /// ([`crate::vm::links_in`]; HLOS always). A transport lets a client
    /// connect as `vmid` only then, binds the connection to this link, and
    /// closes it as soon as `link(vmid)` no longer returns the same id (the VM
    /// was reset or deallocated, and maybe a new VM has the VMID).
    pub fn link(&self, vmid: Vmid) -> Option<LinkId> {
        self.vms.get(vmid).and_then(|v| v.link)
    }

    /// A VM's state, if it exists.
    pub fn vm_state(&self, vmid: Vmid) -> Option<VmState> {
        self.vms.get(vmid).map(|v| v.state)
    }

    /// The VM records.
    pub fn vms(&self) -> &VmTable {
        &self.vms
    }

    /// The parcel database.
    pub fn parcels(&self) -> &ParcelDb {
        &self.parcels
    }

    /// A VM's IPA space: the state of every range it can address.
    pub fn vm_space(&self, vmid: Vmid) -> Option<&VmSpace> {
        self.spaces.get(&vmid)
    }

    /// Transport entry point: one message-queue message from `from`.
    ///
    /// Complete requests are handled at once; their replies, the
    /// notifications they cause and any asynchronous work that follows are
    /// queued for [`Rm::drain_outgoing`]. Malformed packets are dropped.
    ///
    /// A packet from a VM without an RM-RPC link ([`Rm::link`]: none yet, or
    /// no more) is dropped: it has no queue to send it on.
    pub fn packet_from(&mut self, from: Vmid, packet: &[u8]) {
        if self.link(from).is_none() {
            return;
        }
        let rx = self.rx.entry(from).or_default();
        let Some((seq, msg_id)) = rx.push_into(packet, &mut self.rx_payload) else {
            return;
        };
        let payload = core::mem::take(&mut self.rx_payload);
        self.handle_request(from, seq, msg_id, &payload);
        self.rx_payload = payload;
        self.run_deferred();
    }

    /// Whether a packet waits for [`Rm::drain_outgoing`] (a reply or a notification queued),
    /// not counting COW_BROKEN IPAs still collecting in their batch: a platform that serves
    /// a fault and finds nothing queued can leave the batch to fill.
    pub fn has_outgoing(&self) -> bool {
        !self.out.is_empty()
    }

    /// Take every outgoing packet as `(to_vmid, packet)` in the order the
    /// RM produced them (replies after the notifications they caused).
    pub fn drain_outgoing(&mut self) -> Vec<(Vmid, Vec<u8>)> {
        self.flush_cow_broken();
        // After a burst of faults, off the fault path: the spare tables their splits took.
        self.plat.refill_split_tables();
        let mut v = Vec::with_capacity(self.out.len());
        for o in self.out.drain() {
            o.into_packets(&mut v);
        }
        v
    }

    /// Notifications dropped so far because a VM's queue held 256.
    pub fn notifications_dropped(&self) -> u64 {
        self.out.dropped
    }

    /// Forget a client's partial message (it disconnected).
    pub fn client_disconnected(&mut self, vmid: Vmid) {
        self.rx.remove(&vmid);
    }

    /// Queue a notification whose payload is `payload` encoded by the abi crate.
    /// A payload that cannot be encoded (more entries than its count field
    /// holds) is not sent and takes no sequence number.
    ///
    /// A notification of one packet (most: COW_BROKEN of up to 28 IPAs, QUOTA_EXHAUSTED,
    /// FAULT_UNSERVED, ..) is encoded straight into that packet
    /// ([`crate::rpc::notification_packet`]), so the drain hands it out without fragmenting or
    /// copying it again: one allocation per notification, its packet. A longer one is encoded
    /// into its own payload vector and fragmented at the drain.
    pub(crate) fn notify_with<E: gunyah_rm_abi::Encode + ?Sized>(
        &mut self,
        to: Vmid,
        msg_id: gunyah_rm_abi::MsgId,
        payload: &E,
    ) {
        if self.link(to).is_none() {
            return;
        }
        let seq = self.notif_seq;
        if let Some(p) = crate::rpc::notification_packet(seq, msg_id, payload) {
            self.out.notify_packet(to, seq, msg_id.0, p);
        } else {
            let mut buf = alloc::vec![0u8; payload.encoded_len()];
            let Ok(n) = payload.encode(&mut buf) else {
                return;
            };
            buf.truncate(n);
            self.out.notify(to, seq, msg_id.0, buf);
        }
        self.notif_seq = seq.wrapping_add(1);
    }

    /// Record VM status changes from now on, for [`Rm::take_events`].
    pub fn observe_events(&mut self) {
        self.events.get_or_insert_with(VecDeque::new);
    }

    /// Whether status changes are waiting for [`Rm::take_events`].
    pub fn has_events(&self) -> bool {
        self.events.as_ref().is_some_and(|e| !e.is_empty())
    }

    /// The status changes since the last call, in order (none unless
    /// [`Rm::observe_events`] was called).
    pub fn take_events(&mut self) -> Vec<VmEvent> {
        self.events
            .as_mut()
            .map(|e| e.drain(..).collect())
            .unwrap_or_default()
    }

    /// Send VM_STATUS for `vmid` to its peers (its owner), and tell an observer.
    pub(crate) fn send_vm_status(&mut self, vmid: Vmid) {
        let vm = match self.vms.get(vmid) {
            Some(v) => v,
            None => return,
        };
        if let Some(e) = self.events.as_mut() {
            e.push_back(VmEvent {
                vmid,
                state: vm.state,
                os_status: vm.os_status,
            });
        }
        let status = gunyah_rm_abi::vm::VmStatusNotif {
            vmid: vmid.into(),
            reserved: 0.into(),
            vm_status: vm.state as u8,
            os_status: vm.os_status,
            app_status: vm.app_status.into(),
        };
        let owner = vm.owner;
        if owner != vmid {
            self.notify_with(owner, gunyah_rm_abi::MsgId::VM_STATUS, &status);
        }
    }

    /// Move `vmid` to `state` and tell its peers. The VM's RM-RPC link comes
    /// into being or goes with the state ([`crate::vm::links_in`]).
    pub(crate) fn set_state(&mut self, vmid: Vmid, state: VmState) {
        let next = self.next_link;
        let mut closed = false;
        if let Some(vm) = self.vms.get_mut(vmid) {
            vm.state = state;
            if links_in(state) && vm.link.is_none() {
                vm.link = Some(next);
                self.next_link += 1;
            } else if !links_in(state) && vm.link.take().is_some() {
                closed = true;
            }
        }
        if closed {
            self.close_link(vmid);
        }
        self.send_vm_status(vmid);
    }

    /// `vmid`'s link is gone: drop its partial message and everything queued
    /// for it, so nothing meant for it reaches a later link of the VMID.
    pub(crate) fn close_link(&mut self, vmid: Vmid) {
        self.rx.remove(&vmid);
        self.out.forget(vmid);
    }

    /// Take one page from the partition and account for it in the RM's
    /// records (the checker's leak check counts these).
    pub fn alloc_partition_page(&mut self) -> Option<u64> {
        let pa = self.plat.alloc_page()?;
        self.rm_pages.insert(pa);
        Some(pa)
    }

    /// Zero a page taken with [`Rm::alloc_partition_page`] and give it back.
    pub fn free_partition_page(&mut self, pa: u64) {
        if self.rm_pages.remove(&pa) {
            self.plat.zero(pa, crate::platform::PAGE_SIZE);
            self.plat.free_page(pa);
        }
    }

    /// A fresh capability ID.
    pub(crate) fn new_cap(&mut self) -> u64 {
        let c = self.next_cap;
        self.next_cap += 1;
        c
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    #[test]
    fn an_oversized_reply_becomes_noresource() {
        let mut rm = crate::sim::default_rm();
        // 20000 bytes need more than 63 fragments.
        rm.out
            .reply(3, 0x77, 0x5600_0020, Ok(alloc::vec![0xAB; 20_000]));
        let out = rm.drain_outgoing();
        // One 12-byte standard reply: header (reply, seq 0x77, msg_id), NORESOURCE (2).
        assert_eq!(
            out,
            vec![(3, vec![0x21, 0x02, 0x77, 0, 0x20, 0, 0, 0x56, 2, 0, 0, 0])]
        );
    }
}

/// The first id at or after `next` (wrapping to `base`) not in `map`, never `u32::MAX`.
pub(crate) fn free_id<V>(map: &BTreeMap<u32, V>, next: u32, base: u32) -> Option<u32> {
    let mut id = next;
    for _ in 0..=map.len() + 1 {
        if id != u32::MAX && !map.contains_key(&id) {
            return Some(id);
        }
        id = if id == u32::MAX - 1 { base } else { id + 1 };
    }
    None
}
