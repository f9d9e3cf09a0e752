//! A full dump of the RM's state: every record, every counter, every VM's
//! stage-2 leaves and the partition usage. Two dumps compare equal exactly
//! when nothing changed, which is how tests prove a failed request was a
//! no-op.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::platform::{Leaf, PartitionUsage, Platform, Vmid};
use crate::service::Rm;

/// A state dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Records and counters, pretty-printed.
    pub records: String,
    /// Each VM's leaves in IPA order.
    pub tables: Vec<(Vmid, Vec<Leaf>)>,
    /// Partition usage.
    pub partition: PartitionUsage,
}

impl<P: Platform> Rm<P> {
    /// Take a full state dump.
    pub fn snapshot(&self) -> Snapshot {
        let records = format!(
            "vms: {:#?}\nspaces: {:#?}\nparcels: {:#?}\ngoldens: {:#?}\npools: {:?} next {} \
             bindings: {:?} next {:#x}\nprotected: {:?}\ncounters: {:?}\nnotif_seq: {}\n\
             next_cap: {}\ndeferred: {:?}\nrm_pages: {:?}\nnext_golden: {}",
            self.vms,
            self.spaces,
            self.parcels,
            self.goldens,
            self.pool_owner,
            self.next_pool,
            self.bindings,
            self.next_binding,
            self.protected,
            self.counters,
            self.notif_seq,
            self.next_cap,
            self.deferred,
            self.rm_pages,
            self.next_golden
        );
        let mut tables = Vec::new();
        for &vmid in self.vms.vms.keys() {
            let mut leaves = Vec::new();
            self.plat.for_each_leaf(vmid, &mut |l| leaves.push(*l));
            tables.push((vmid, leaves));
        }
        Snapshot {
            records,
            tables,
            partition: self.plat.partition_usage(),
        }
    }
}
