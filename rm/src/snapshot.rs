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
            "vms: {:#?}\nmem: {:#?}\nparcels: {:#?}\nnotif_seq: {}\nnext_cap: {}\ndeferred: {:?}\nrm_pages: {:?}\next: {:#?}",
            self.vms, self.mem, self.parcels, self.notif_seq, self.next_cap, self.deferred, self.rm_pages, self.ext
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
