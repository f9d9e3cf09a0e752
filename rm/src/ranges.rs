//! Range bookkeeping shared by the transitions: cutting a VM's range in two with the records
//! about it kept right, forgetting a range, charging pools, and giving pages back.

use crate::platform::{Platform, Tag, Vmid, PAGE_SIZE};
use crate::service::Rm;
use crate::space::State;

impl<P: Platform> Rm<P> {
    /// Split `vmid`'s range covering `at` so that one starts there, keeping the records about
    /// it right: a binding's tail gets a handle of its own and its pool offset is recorded; a
    /// golden mapping's copies (counted from the leaves) and its copy quota are shared out.
    pub(crate) fn cut(&mut self, vmid: Vmid, at: u64) {
        let Some(r) = self.spaces.get(&vmid).and_then(|s| s.at(at)).copied() else {
            return;
        };
        if r.ipa == at {
            return;
        }
        let first = at - r.ipa;
        let handle = match r.state {
            State::Bound(_) => Some(self.alloc_binding_handle()),
            _ => None,
        };
        let tail_copies = match r.state {
            State::Golden(_) => self.count_tagged(vmid, at, r.end() - at, Tag::Copy),
            _ => 0,
        };
        let Some(space) = self.spaces.get_mut(&vmid) else {
            return;
        };
        space.split_at(at);
        match r.state {
            State::Bound(b) => {
                let h = handle.unwrap_or(b.handle);
                if let Some(t) = space.at_mut(at) {
                    if let State::Bound(tb) = &mut t.state {
                        tb.handle = h;
                    }
                }
                if let Some(p) = space.pools.get_mut(&b.pool) {
                    p.bound.insert(b.offset, first);
                    p.bound.insert(b.offset + first, r.size - first);
                }
                self.bindings.insert(h, (vmid, at));
            }
            State::Golden(m) => {
                let first_copies = m.copies.saturating_sub(tail_copies);
                // A copy quota is shared out so the parts together allow exactly what the whole
                // did: each keeps its copies, and the unused headroom is split by size.
                let quotas = m.cow_quota.map(|q| {
                    let headroom = q.saturating_sub(m.copies);
                    let tail_room =
                        (headroom as u128 * (r.size - first) as u128 / r.size as u128) as u64;
                    (first_copies + headroom - tail_room, tail_copies + tail_room)
                });
                for (ipa, copies, quota) in [
                    (r.ipa, first_copies, quotas.map(|q| q.0)),
                    (at, tail_copies, quotas.map(|q| q.1)),
                ] {
                    if let Some(x) = space.at_mut(ipa) {
                        if let State::Golden(g) = &mut x.state {
                            g.copies = copies;
                            g.cow_quota = quota;
                        }
                    }
                }
                if let Some(g) = self.goldens.get_mut(&m.golden) {
                    g.mappings += 1;
                }
            }
            _ => {}
        }
    }

    /// Forget `vmid`'s range starting at `ipa`, whose pages are no longer mapped (and were
    /// given back or moved by the caller): the records about it go with it.
    pub(crate) fn forget_range(&mut self, vmid: Vmid, ipa: u64) {
        let Some(r) = self.spaces.get_mut(&vmid).and_then(|s| s.remove(ipa)) else {
            return;
        };
        match r.state {
            State::Bound(b) => {
                if let Some(p) = self
                    .spaces
                    .get_mut(&vmid)
                    .and_then(|s| s.pools.get_mut(&b.pool))
                {
                    p.bound.remove(&b.offset);
                }
                self.bindings.remove(&b.handle);
            }
            State::Golden(m) => {
                if let Some(g) = self.goldens.get_mut(&m.golden) {
                    g.mappings = g.mappings.saturating_sub(1);
                }
            }
            _ => {}
        }
    }

    /// The parts of `[ipa, ipa+size)` that `vmid`'s tables map, as maximal (ipa, size) spans.
    pub(crate) fn mapped_spans(
        &self,
        vmid: Vmid,
        ipa: u64,
        size: u64,
    ) -> alloc::vec::Vec<(u64, u64)> {
        let end = ipa + size;
        let mut spans: alloc::vec::Vec<(u64, u64)> = alloc::vec::Vec::new();
        self.plat.for_each_leaf_in(vmid, ipa, size, &mut |l| {
            let (lo, hi) = (l.ipa.max(ipa), (l.ipa + l.size).min(end));
            match spans.last_mut() {
                Some(s) if s.0 + s.1 == lo => s.1 += hi - lo,
                _ => spans.push((lo, hi - lo)),
            }
        });
        spans
    }

    /// Pages of `[ipa, ipa+size)` of `vmid` whose leaf carries `tag`.
    pub(crate) fn count_tagged(&self, vmid: Vmid, ipa: u64, size: u64, tag: Tag) -> u64 {
        let end = ipa + size;
        let mut n = 0;
        self.plat.for_each_leaf_in(vmid, ipa, size, &mut |l| {
            if l.tag == tag {
                n += ((l.ipa + l.size).min(end) - l.ipa.max(ipa)) / PAGE_SIZE;
            }
        });
        n
    }

    /// Charge (`delta` > 0) or uncharge pool `pool` of `vmid`.
    pub(crate) fn charge(&mut self, vmid: Vmid, pool: u32, delta: i64) {
        if let Some(p) = self
            .spaces
            .get_mut(&vmid)
            .and_then(|s| s.pools.get_mut(&pool))
        {
            p.used_pages = p.used_pages.saturating_add_signed(delta);
        }
    }

    /// Zero pages and give them back to the partition.
    pub(crate) fn free_pages(&mut self, pas: impl Iterator<Item = u64>) {
        for pa in pas {
            self.plat.zero(pa, PAGE_SIZE);
            self.plat.free_page(pa);
        }
    }

    /// A fresh binding handle (handles live in their own range, disjoint from memparcel
    /// handles; they are never reused while the binding lives).
    pub(crate) fn alloc_binding_handle(&mut self) -> u32 {
        let base = crate::space::BINDING_HANDLE_BASE;
        let mut h = self.next_binding.max(base);
        while self.bindings.contains_key(&h) || h == u32::MAX {
            h = if h >= u32::MAX - 1 { base } else { h + 1 };
        }
        self.next_binding = h.wrapping_add(1);
        h
    }
}
