//! A state-machine test against a reference model of page contents.
//!
//! Random RPCs (MEM_SHARE/LEND/DONATE, MEM_ACCEPT, MEM_RELEASE, MEM_RECLAIM with and without
//! SANITIZE, GOLDEN_MAP/UNMAP copy-on-write and read-only) and guest reads and writes through
//! each VM's real stage-2 tables (`Rm::vm_read`, `Rm::vm_write`) from HLOS and three VMs. The
//! model knows, for every page a VM can address, which page of contents it sees ("cell") and
//! whether it may write it; every byte a VM reads must equal the model's, a write the model
//! allows must succeed (except where the RM may run out of memory: copy-on-write and
//! demand-paged pages), a write or read it forbids must fail and change nothing. The isolation
//! checker runs after every step.
//!
//! The RM decides whether a request succeeds; the model follows what the spec (§7.2, §7.3)
//! says a successful request does to memory: LEND and DONATE take the pages from the owner at
//! create, SHARE keeps them; SANITIZE at create zeroes at once, on release or reclaim zeroes when
//! the owner gets them back; an accepted DONATE makes the acceptor the owner. Each VM binds
//! eager and demand-paged pool pages and sees a golden image (HLOS RAM lent and sealed) mapped
//! copy-on-write (A, B) or read-only (C): a write to it makes a private copy for that VM only.
//!
//! `PROPTEST_CASES` sets the number of cases (default 24, a few seconds in a debug build).

use std::collections::BTreeMap;

use gunyah_rm::platform::PhysMem;
use gunyah_rm::sim::{small_rm, SimPlatform};
use gunyah_rm::Rm;
use gunyah_rm_abi::ext::{GmemBindReq, GmemCreateReq, GoldenMapReq, GoldenSealReq, GoldenUnmapReq};
use gunyah_rm_abi::mem::{AclEntry, MemAccept, MemAcceptReply, MemCreate, MemReleaseReq, SglEntry};
use gunyah_rm_abi::vm::{VmConfigImageReq, VmInitReq, VmidReq};
use gunyah_rm_abi::{Encode, Fragmenter, MsgType, Reassembler, Received, Request, RmError};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

const HLOS: u16 = 3;
const VMS: [u16; 3] = [0x80, 0x81, 0x82];
/// Everyone who takes part: HLOS and the three VMs.
const PARTIES: [u16; 4] = [HLOS, 0x80, 0x81, 0x82];
const PAGE: u64 = 0x1000;
/// HLOS RAM on the small simulator: each VM's DT page from here.
const DT_BASE: u64 = 0x4000_0000;
/// HLOS RAM sealed as the golden image.
const GOLDEN_SRC: u64 = 0x4010_0000;
const GOLDEN_PAGES: u64 = 8;
/// HLOS RAM the test shares, lends and donates from (64 pages).
const HLOS_FREE: u64 = 0x4020_0000;
const HLOS_FREE_PAGES: u64 = 64;
/// Where each VM binds its pool (eager pages, then demand-paged ones) and maps the image.
const BIND_IPA: u64 = 0x9000_0000;
const EAGER_PAGES: u64 = 4;
const DEMAND_PAGES: u64 = 4;
const CLONE_IPA: u64 = 0x8000_0000;
/// An IPA no VM has anything at.
const HOLE: u64 = 0x7000_0000;

/// The contents of one page the model knows: by number.
type Cell = usize;

/// What one VM sees at one page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct View {
    cell: Cell,
    write: Write,
    /// The VM owns the page (it may share, lend or donate it).
    owned: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Write {
    /// Writes go to the cell.
    Yes,
    /// Writes go to the cell, but making the page may fail for lack of memory
    /// (demand-paged): a failed write changes nothing.
    Demand,
    /// Read-only.
    No,
    /// The first write makes a private copy (it may fail: quota or memory).
    Cow,
}

/// A parcel the RM made.
#[derive(Clone, Debug)]
struct Parcel {
    handle: u32,
    owner: u16,
    trans: u8,
    /// The owner's pages and what it saw there.
    pages: Vec<(u64, View)>,
    /// Who may accept it, with the rights.
    acl: Vec<(u16, u8)>,
    /// Acceptors and the IPAs they got, page by page.
    accepted: BTreeMap<u16, Vec<u64>>,
    /// SANITIZE on a release or the reclaim: zero when the owner gets the pages back.
    zero_on_reclaim: bool,
}

#[derive(Default)]
struct Model {
    cells: Vec<Vec<u8>>,
    views: BTreeMap<(u16, u64), View>,
    parcels: Vec<Parcel>,
    golden_cells: Vec<Cell>,
    /// Pages a VM had and lost (lent, donated, released, unmapped): accesses there must fail
    /// until it gets them back.
    gone: std::collections::BTreeSet<(u16, u64)>,
    /// The last pages whose view changed (given or taken), newest last.
    recent: std::collections::VecDeque<(u16, u64)>,
    /// How often each kind of step succeeded or was refused.
    stats: BTreeMap<&'static str, u32>,
}

impl Model {
    fn new_cell(&mut self, bytes: Vec<u8>) -> Cell {
        self.cells.push(bytes);
        self.cells.len() - 1
    }
    fn zero_cell(&mut self) -> Cell {
        self.new_cell(vec![0; PAGE as usize])
    }
    fn count(&mut self, what: &'static str) {
        *self.stats.entry(what).or_default() += 1;
    }
    /// `vm` loses its page at `ipa`.
    fn take(&mut self, vm: u16, ipa: u64) {
        if self.views.remove(&(vm, ipa)).is_some() {
            self.gone.insert((vm, ipa));
            self.touched(vm, ipa);
        }
    }
    fn touched(&mut self, vm: u16, ipa: u64) {
        if self.recent.len() == 64 {
            self.recent.pop_front();
        }
        self.recent.push_back((vm, ipa));
    }
    /// `vm` sees `view` at `ipa` (again).
    fn give(&mut self, vm: u16, ipa: u64, view: View) -> Option<View> {
        self.gone.remove(&(vm, ipa));
        self.touched(vm, ipa);
        self.views.insert((vm, ipa), view)
    }
    /// Pages `vm` lost, in IPA order.
    fn gone_of(&self, vm: u16) -> Vec<u64> {
        self.gone
            .range((vm, 0)..=(vm, u64::MAX))
            .map(|&(_, ipa)| ipa)
            .collect()
    }
    /// The pages of `vm`, in IPA order.
    fn pages_of(&self, vm: u16) -> Vec<(u64, View)> {
        self.views
            .range((vm, 0)..=(vm, u64::MAX))
            .map(|(&(_, ipa), v)| (ipa, *v))
            .collect()
    }
}

/// The RM, driven only with encoded request packets, and the model.
struct World {
    rm: Rm<SimPlatform>,
    m: Model,
    seq: u16,
    golden: u32,
    pools: BTreeMap<u16, u32>,
}

fn encode(req: &Request<'_>) -> Vec<u8> {
    let mut v = vec![0u8; req.encoded_len()];
    let n = req.encode(&mut v).expect("encodes");
    v.truncate(n);
    v
}

impl World {
    /// Send `req` from `from`; exactly one reply comes back: (error, data after the code).
    fn call(&mut self, from: u16, req: &Request<'_>) -> (RmError, Vec<u8>) {
        self.seq = self.seq.wrapping_add(1);
        let payload = encode(req);
        for p in Fragmenter::request(self.seq, req.msg_id(), &payload).expect("fits") {
            self.rm.packet_from(from, &p);
        }
        let mut rx: BTreeMap<u16, Reassembler> = BTreeMap::new();
        let mut reply = None;
        for (to, p) in self.rm.drain_outgoing() {
            if let Received::Complete(m) = rx.entry(to).or_default().push(&p).received {
                if m.ty == MsgType::Reply {
                    assert!(reply.is_none(), "two replies");
                    assert_eq!((to, m.seq, m.msg_id), (from, self.seq, req.msg_id()));
                    let (err, data) = m.reply_parts().expect("reply code");
                    reply = Some((err, data.to_vec()));
                }
            }
        }
        reply.expect("a reply")
    }

    fn ok(&mut self, from: u16, req: &Request<'_>) -> Vec<u8> {
        let (err, data) = self.call(from, req);
        assert_eq!(err, RmError::Ok, "{:?} from {from:#x}", req.msg_id());
        data
    }

    fn word(data: &[u8]) -> u32 {
        u32::from_le_bytes(data[..4].try_into().expect("word"))
    }

    fn check(&self) {
        let v = self.rm.check_isolation();
        assert!(v.is_empty(), "isolation violations: {v:#?}");
    }

    /// HLOS, three RUNNING VMs with pools and the golden image, and the model of it all.
    fn new() -> World {
        let mut w = World {
            rm: small_rm(),
            m: Model::default(),
            seq: 0,
            golden: 0,
            pools: BTreeMap::new(),
        };
        for (i, &vm) in VMS.iter().enumerate() {
            let got = Self::word(&w.ok(HLOS, &Request::VmAllocVmid(VmidReq::new(0))));
            assert_eq!(got, u32::from(vm));
            let dt = DT_BASE + i as u64 * PAGE;
            let dtb = tiny_dtb();
            assert!(w.rm.platform_mut().write(dt, &dtb));
            let (err, data) = create(&mut w, HLOS, MEM_LEND, 0, &[(vm, 7)], &[(dt, PAGE)]);
            assert_eq!(err, RmError::Ok);
            let img = Self::word(&data);
            let cfg = VmConfigImageReq {
                vmid: vm.into(),
                auth_mech: 0.into(),
                mem_handle: img.into(),
                image_offset: 0.into(),
                image_size: 0.into(),
                dtb_offset: 0.into(),
                dtb_size: (dtb.len() as u64).into(),
            };
            w.ok(HLOS, &Request::VmConfigImage(cfg));
            w.ok(HLOS, &Request::VmInit(VmInitReq::new(vm)));
            w.ok(HLOS, &Request::VmStart(VmidReq::new(vm)));
            let pool = Self::word(&w.ok(
                HLOS,
                &Request::GmemCreate(GmemCreateReq::new(24 * PAGE, 0, vm)),
            ));
            w.pools.insert(vm, pool);
            let bind = |flags, off, ipa, n| {
                Request::GmemBind(GmemBindReq::new(pool, vm, 6, flags, off, ipa, n * PAGE))
            };
            w.ok(HLOS, &bind(0, 0, BIND_IPA, EAGER_PAGES));
            let demand = BIND_IPA + EAGER_PAGES * PAGE;
            w.ok(HLOS, &bind(1, EAGER_PAGES * PAGE, demand, DEMAND_PAGES));
            for p in 0..EAGER_PAGES + DEMAND_PAGES {
                let cell = w.m.zero_cell();
                let write = if p < EAGER_PAGES {
                    Write::Yes
                } else {
                    Write::Demand
                };
                let view = View {
                    cell,
                    write,
                    owned: false,
                };
                w.m.views.insert((vm, BIND_IPA + p * PAGE), view);
            }
        }
        // HLOS's own RAM that the test uses, each page with its own bytes (so a page that
        // comes back zeroed, or another page's, shows).
        for p in 0..HLOS_FREE_PAGES {
            let bytes: Vec<u8> = (0..PAGE)
                .map(|i| (i as u8).wrapping_mul(3) ^ p as u8)
                .collect();
            assert!(w.rm.platform_mut().write(HLOS_FREE + p * PAGE, &bytes));
            let cell = w.m.new_cell(bytes);
            let view = View {
                cell,
                write: Write::Yes,
                owned: true,
            };
            w.m.views.insert((HLOS, HLOS_FREE + p * PAGE), view);
        }
        // The golden image: HLOS RAM with a pattern, lent to A and sealed by HLOS.
        let size = GOLDEN_PAGES * PAGE;
        for p in 0..GOLDEN_PAGES {
            let bytes: Vec<u8> = (0..PAGE).map(|i| (i as u8) ^ (p as u8 * 29 + 1)).collect();
            assert!(w.rm.platform_mut().write(GOLDEN_SRC + p * PAGE, &bytes));
            let cell = w.m.new_cell(bytes);
            w.m.golden_cells.push(cell);
        }
        let (err, data) = create(
            &mut w,
            HLOS,
            MEM_LEND,
            0,
            &[(VMS[0], 7)],
            &[(GOLDEN_SRC, size)],
        );
        assert_eq!(err, RmError::Ok);
        let lent = Self::word(&data);
        w.golden = Self::word(&w.ok(HLOS, &Request::GoldenSeal(GoldenSealReq::new(lent))));
        for vm in VMS {
            w.golden_map(vm);
        }
        w.check();
        w
    }

    /// Map the image at CLONE_IPA in `vm`: copy-on-write for A and B, read-only for C.
    fn golden_map(&mut self, vm: u16) -> bool {
        let cow = vm != VMS[2];
        let (flags, pool) = if cow {
            (1, self.pools[&vm])
        } else {
            (0, gunyah_rm_abi::ext::NO_GMEM)
        };
        let req = Request::GoldenMap(GoldenMapReq::new(
            self.golden,
            vm,
            flags,
            0,
            CLONE_IPA,
            GOLDEN_PAGES * PAGE,
            pool,
        ));
        if self.call(HLOS, &req).0 != RmError::Ok {
            return false;
        }
        for (i, &cell) in self.m.golden_cells.clone().iter().enumerate() {
            let write = if cow { Write::Cow } else { Write::No };
            self.m.give(
                vm,
                CLONE_IPA + i as u64 * PAGE,
                View {
                    cell,
                    write,
                    owned: false,
                },
            );
        }
        true
    }
}

const MEM_DONATE: u8 = 0;
const MEM_LEND: u8 = 1;
const MEM_SHARE: u8 = 2;

/// MEM_SHARE/LEND/DONATE from `from`: (error, reply data).
fn create(
    w: &mut World,
    from: u16,
    trans: u8,
    flags: u8,
    acl: &[(u16, u8)],
    sgl: &[(u64, u64)],
) -> (RmError, Vec<u8>) {
    let acl: Vec<AclEntry> = acl.iter().map(|&(v, r)| AclEntry::new(v, r)).collect();
    let sgl: Vec<SglEntry> = sgl.iter().map(|&(a, s)| SglEntry::new(a, s)).collect();
    let c = MemCreate {
        mem_type: 0,
        flags,
        label: 0,
        acl: &acl,
        sgl: &sgl,
        attrs: &[],
    };
    let req = match trans {
        MEM_DONATE => Request::MemDonate(c),
        MEM_LEND => Request::MemLend(c),
        _ => Request::MemShare(c),
    };
    w.call(from, &req)
}

/// A minimal DT: a root with `compatible` and `/cpus/cpu@0` (DTSpec layout, by hand).
fn tiny_dtb() -> Vec<u8> {
    let be = |v: u32| v.to_be_bytes();
    let mut st = Vec::new();
    let pad = |st: &mut Vec<u8>| {
        while !st.len().is_multiple_of(4) {
            st.push(0);
        }
    };
    for (tok, name) in [
        (1, ""),
        (3, "linux,dummy-virt"),
        (1, "cpus"),
        (1, "cpu@0"),
        (3, "cpu"),
    ] {
        st.extend_from_slice(&be(tok));
        if tok == 1 {
            st.extend_from_slice(name.as_bytes());
            st.push(0);
        } else {
            let nameoff = if name == "cpu" { 11 } else { 0 };
            st.extend_from_slice(&be(name.len() as u32 + 1));
            st.extend_from_slice(&be(nameoff));
            st.extend_from_slice(name.as_bytes());
            st.push(0);
        }
        pad(&mut st);
    }
    for tok in [2, 2, 2, 9] {
        st.extend_from_slice(&be(tok));
    }
    let strings = b"compatible\0device_type\0";
    let off_struct = 56u32;
    let off_strings = off_struct + st.len() as u32;
    let total = off_strings + strings.len() as u32;
    let mut v = Vec::new();
    for x in [
        0xd00d_feed,
        total,
        off_struct,
        off_strings,
        40,
        17,
        16,
        0,
        strings.len() as u32,
        st.len() as u32,
    ] {
        v.extend_from_slice(&be(x));
    }
    v.extend_from_slice(&[0; 16]);
    v.extend_from_slice(&st);
    v.extend_from_slice(strings);
    v
}

/// One step.
#[derive(Clone, Debug)]
enum Op {
    /// A vCPU of `who` writes `len` bytes of `byte` at `off` in one of its pages (`pick` among
    /// them, or a hole).
    Write {
        who: usize,
        pick: u16,
        off: u16,
        len: u16,
        byte: u8,
    },
    /// A vCPU of `who` reads.
    Read {
        who: usize,
        pick: u16,
        off: u16,
        len: u16,
    },
    /// `who` shares, lends or donates `pages` of its own pages from `pick` to `to` (and, for a
    /// share, to `also`), RW or R.
    Create {
        who: usize,
        trans: u8,
        pick: u16,
        pages: u8,
        to: usize,
        also: Option<usize>,
        write: bool,
        sanitize: bool,
    },
    /// A VM in a parcel's ACL that has not accepted it yet accepts it (`pick` among those);
    /// with `anyone`, `who` tries to accept any live parcel instead.
    Accept { who: usize, pick: u16, anyone: bool },
    /// `who` releases a parcel it accepted.
    Release {
        who: usize,
        pick: u16,
        sanitize: bool,
    },
    /// A parcel's owner reclaims it.
    Reclaim { pick: u16, sanitize: bool },
    /// HLOS unmaps the golden image from a VM, or maps it again.
    Golden { vm: usize, unmap: bool },
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0..PARTIES.len();
    prop_oneof![
        4 => (who.clone(), any::<u16>(), 0..4096u16, 1..300u16, any::<u8>())
            .prop_map(|(who, pick, off, len, byte)| Op::Write { who, pick, off, len, byte }),
        4 => (who.clone(), any::<u16>(), 0..4096u16, 1..300u16)
            .prop_map(|(who, pick, off, len)| Op::Read { who, pick, off, len }),
        3 => (who.clone(), 0..3u8, any::<u16>(), 1..4u8, 0..PARTIES.len(), proptest::option::of(0..PARTIES.len()), any::<bool>(), proptest::bool::weighted(0.2))
            .prop_map(|(who, trans, pick, pages, to, also, write, sanitize)| Op::Create { who, trans, pick, pages, to, also, write, sanitize }),
        4 => (who.clone(), any::<u16>(), proptest::bool::weighted(0.2))
            .prop_map(|(who, pick, anyone)| Op::Accept { who, pick, anyone }),
        2 => (who.clone(), any::<u16>(), proptest::bool::weighted(0.3))
            .prop_map(|(who, pick, sanitize)| Op::Release { who, pick, sanitize }),
        1 => (any::<u16>(), proptest::bool::weighted(0.3)).prop_map(|(pick, sanitize)| Op::Reclaim { pick, sanitize }),
        1 => (0..VMS.len(), any::<bool>()).prop_map(|(vm, unmap)| Op::Golden { vm, unmap }),
    ]
}

/// The page an access goes to: one of `who`'s pages; or (one pick in four) a page it lost; or
/// (three in sixteen) a page of a live parcel it owns or accepted, whatever it sees there now;
/// or (three in sixteen) a page whose view changed lately; or (one in sixteen) a hole.
fn target(w: &World, who: u16, pick: u16) -> u64 {
    let pages = w.m.pages_of(who);
    let gone = w.m.gone_of(who);
    let parcels: Vec<u64> =
        w.m.parcels
            .iter()
            .flat_map(|p| {
                let own = (p.owner == who).then(|| p.pages.iter().map(|(ipa, _)| *ipa));
                let got = p.accepted.get(&who).map(|v| v.iter().copied());
                own.into_iter().flatten().chain(got.into_iter().flatten())
            })
            .collect();
    let recent: Vec<u64> =
        w.m.recent
            .iter()
            .filter(|(v, _)| *v == who)
            .map(|(_, ipa)| *ipa)
            .collect();
    let i = pick as usize / 16;
    match pick % 16 {
        15 => HOLE,
        0..=3 if !gone.is_empty() => gone[i % gone.len()],
        4..=6 if !parcels.is_empty() => parcels[i % parcels.len()],
        7..=9 if !recent.is_empty() => recent[i % recent.len()],
        _ if pages.is_empty() => HOLE,
        _ => pages[i % pages.len()].0,
    }
}

fn step(w: &mut World, op: &Op) {
    match *op {
        Op::Write {
            who,
            pick,
            off,
            len,
            byte,
        } => {
            let who = PARTIES[who];
            let page = target(w, who, pick);
            let len = (len as u64).min(PAGE - off as u64) as usize;
            let data = vec![byte; len];
            let got = w.rm.vm_write(who, page + off as u64, &data);
            let view = w.m.views.get(&(who, page)).copied();
            let apply = |m: &mut Model, cell: Cell| {
                m.cells[cell][off as usize..off as usize + len].copy_from_slice(&data);
            };
            match (view, got) {
                (None, Ok(_)) => panic!("{who:#x} wrote {page:#x}, where it has nothing"),
                (Some(v), Ok(_)) if v.write == Write::No => {
                    panic!("{who:#x} wrote read-only {page:#x}")
                }
                (Some(v), Ok(_)) if v.write == Write::Cow => {
                    // A private copy of the golden page, then the write.
                    let copy = w.m.new_cell(w.m.cells[v.cell].clone());
                    apply(&mut w.m, copy);
                    let view = View {
                        cell: copy,
                        write: Write::Yes,
                        owned: false,
                    };
                    w.m.views.insert((who, page), view);
                    w.m.count("cow write");
                }
                (Some(v), Ok(_)) => {
                    apply(&mut w.m, v.cell);
                    if v.write == Write::Demand {
                        w.m.views.insert(
                            (who, page),
                            View {
                                write: Write::Yes,
                                ..v
                            },
                        );
                    }
                    w.m.count("write");
                }
                (Some(v), Err(e)) if v.write == Write::Yes => {
                    panic!("{who:#x} could not write its page {page:#x}: {e:?}")
                }
                (_, Err(_)) => w.m.count("write refused"),
            }
        }
        Op::Read {
            who,
            pick,
            off,
            len,
        } => {
            let who = PARTIES[who];
            let page = target(w, who, pick);
            let len = (len as u64).min(PAGE - off as u64) as usize;
            let mut buf = vec![0u8; len];
            let got = w.rm.vm_read(who, page + off as u64, &mut buf);
            match (w.m.views.get(&(who, page)), got) {
                (None, Ok(_)) => panic!("{who:#x} read {page:#x}, where it has nothing"),
                (None, Err(_)) => w.m.count("read refused"),
                (Some(v), Ok(_)) => {
                    let want = &w.m.cells[v.cell][off as usize..off as usize + len];
                    if buf != want {
                        let i = buf.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
                        panic!(
                            "{who:#x} read {:#x}: {:#04x}, the model says {:#04x} ({v:?})",
                            page + off as u64 + i as u64,
                            buf[i],
                            want[i]
                        );
                    }
                    w.m.count("read");
                }
                (Some(v), Err(e)) => {
                    assert_eq!(
                        v.write,
                        Write::Demand,
                        "{who:#x} could not read {page:#x}: {e:?}"
                    );
                }
            }
        }
        Op::Create {
            who,
            trans,
            pick,
            pages,
            to,
            also,
            write,
            sanitize,
        } => {
            let owner = PARTIES[who];
            // A run of `pages` consecutive pages the owner owns and can write.
            let own: Vec<(u64, View)> =
                w.m.pages_of(owner)
                    .into_iter()
                    .filter(|(_, v)| v.owned && v.write == Write::Yes)
                    .collect();
            if own.is_empty() {
                return;
            }
            let start = pick as usize % own.len();
            let run: Vec<(u64, View)> = own[start..]
                .iter()
                .enumerate()
                .take_while(|(i, (ipa, _))| *ipa == own[start].0 + *i as u64 * PAGE)
                .map(|(_, p)| *p)
                .take(pages as usize)
                .collect();
            let rights = if trans == MEM_DONATE {
                7
            } else if write {
                6
            } else {
                4
            };
            let mut acl = vec![(PARTIES[to], rights)];
            if trans == MEM_SHARE {
                acl.insert(0, (owner, 7));
                if let Some(a) = also {
                    acl.push((PARTIES[a], 4));
                }
            }
            let size = run.len() as u64 * PAGE;
            let (err, data) = create(w, owner, trans, sanitize as u8, &acl, &[(run[0].0, size)]);
            if err != RmError::Ok {
                w.m.count("create refused");
                return;
            }
            let handle = World::word(&data);
            for (ipa, v) in &run {
                if sanitize {
                    w.m.cells[v.cell].fill(0);
                }
                if trans != MEM_SHARE {
                    w.m.take(owner, *ipa);
                }
            }
            acl.retain(|(v, _)| *v != owner);
            w.m.parcels.push(Parcel {
                handle,
                owner,
                trans,
                pages: run,
                acl,
                accepted: BTreeMap::new(),
                zero_on_reclaim: false,
            });
            w.m.count("create");
        }
        Op::Accept { who, pick, anyone } => {
            let pending: Vec<(usize, u16)> =
                w.m.parcels
                    .iter()
                    .enumerate()
                    .flat_map(|(i, p)| {
                        p.acl
                            .iter()
                            .filter(|(v, _)| !p.accepted.contains_key(v))
                            .map(move |(v, _)| (i, *v))
                    })
                    .collect();
            let (i, who) = if anyone || pending.is_empty() {
                if w.m.parcels.is_empty() {
                    return;
                }
                (pick as usize % w.m.parcels.len(), PARTIES[who])
            } else {
                pending[pick as usize % pending.len()]
            };
            let p = w.m.parcels[i].clone();
            let req = Request::MemAccept(MemAccept {
                handle: p.handle,
                mem_type: 0,
                trans_type: p.trans,
                flags: 0x80,
                label: 0,
                acl: &[],
                map_vmid: 0,
                sgl: &[],
                attrs: &[],
            });
            let (err, data) = w.call(who, &req);
            if err != RmError::Ok {
                let fresh = p.acl.iter().any(|(v, _)| *v == who) && !p.accepted.contains_key(&who);
                // Running out of IPA space or table pages is the only excuse.
                let short = [RmError::NoResource, RmError::NoMem, RmError::MapFailed];
                assert!(
                    !fresh || short.contains(&err),
                    "{who:#x} could not accept parcel {} it is in the ACL of: {err:?}",
                    p.handle
                );
                w.m.count("accept refused");
                return;
            }
            let rights = p.acl.iter().find(|(v, _)| *v == who).map(|(_, r)| *r);
            let rights = rights.expect("the RM let a VM outside the ACL accept");
            let reply = MemAcceptReply::decode(&data).expect("accept reply");
            let mut ipas = Vec::new();
            for e in reply.sgl {
                let mut a = e.ipa.get();
                while a < e.ipa.get() + e.size.get() {
                    ipas.push(a);
                    a += PAGE;
                }
            }
            assert_eq!(ipas.len(), p.pages.len(), "accepted pages");
            let donate = p.trans == MEM_DONATE;
            for (ipa, (_, v)) in ipas.iter().zip(&p.pages) {
                let write = if rights & 2 != 0 {
                    Write::Yes
                } else {
                    Write::No
                };
                let view = View {
                    cell: v.cell,
                    write,
                    owned: donate,
                };
                assert!(w.m.give(who, *ipa, view).is_none(), "mapped over a page");
            }
            if donate {
                // The acceptor owns the pages now; the parcel is gone.
                w.m.parcels.remove(i);
            } else {
                w.m.parcels[i].accepted.insert(who, ipas);
            }
            w.m.count("accept");
        }
        Op::Release {
            who,
            pick,
            sanitize,
        } => {
            let who = PARTIES[who];
            let mine: Vec<usize> = (0..w.m.parcels.len())
                .filter(|&i| w.m.parcels[i].accepted.contains_key(&who))
                .collect();
            if mine.is_empty() {
                return;
            }
            let i = mine[pick as usize % mine.len()];
            let req =
                Request::MemRelease(MemReleaseReq::new(w.m.parcels[i].handle, sanitize as u8));
            let (err, _) = w.call(who, &req);
            if err != RmError::Ok {
                w.m.count("release refused");
                return;
            }
            let p = &mut w.m.parcels[i];
            let ipas = p.accepted.remove(&who).expect("accepted");
            p.zero_on_reclaim |= sanitize;
            for ipa in ipas {
                w.m.take(who, ipa);
            }
            w.m.count("release");
        }
        Op::Reclaim { pick, sanitize } => {
            if w.m.parcels.is_empty() {
                return;
            }
            let i = pick as usize % w.m.parcels.len();
            let p = w.m.parcels[i].clone();
            let req = Request::MemReclaim(MemReleaseReq::new(p.handle, sanitize as u8));
            let (err, _) = w.call(p.owner, &req);
            if err != RmError::Ok {
                assert!(
                    !p.accepted.is_empty() || err != RmError::MemInuse,
                    "reclaim of parcel {} that nobody holds: {err:?}",
                    p.handle
                );
                w.m.count("reclaim refused");
                return;
            }
            assert!(
                p.accepted.is_empty(),
                "reclaimed parcel {} while accepted",
                p.handle
            );
            for (ipa, v) in &p.pages {
                if sanitize || p.zero_on_reclaim {
                    w.m.cells[v.cell].fill(0);
                }
                w.m.give(p.owner, *ipa, *v);
            }
            w.m.parcels.remove(i);
            w.m.count("reclaim");
        }
        Op::Golden { vm, unmap } => {
            let vm = VMS[vm];
            let mapped = w.m.views.contains_key(&(vm, CLONE_IPA));
            if unmap && mapped {
                let req = Request::GoldenUnmap(GoldenUnmapReq::new(
                    w.golden,
                    vm,
                    CLONE_IPA,
                    GOLDEN_PAGES * PAGE,
                ));
                w.ok(HLOS, &req);
                for p in 0..GOLDEN_PAGES {
                    w.m.take(vm, CLONE_IPA + p * PAGE);
                }
                w.m.count("golden unmap");
            } else if !unmap && !mapped && w.golden_map(vm) {
                w.m.count("golden map");
            }
        }
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn every_byte_a_vm_reads_is_the_models(ops in proptest::collection::vec(op(), 1..60)) {
        let mut w = World::new();
        for op in &ops {
            step(&mut w, op);
            w.check();
        }
    }
}

/// The generated operations reach the interesting paths: a fixed long run counts what
/// succeeded, and every kind of success happens (a model that only ever saw refusals would
/// check nothing).
#[test]
fn random_runs_reach_every_kind_of_success() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = proptest::collection::vec(op(), 400);
    let mut w = World::new();
    for op in strategy.new_tree(&mut runner).expect("ops").current() {
        step(&mut w, &op);
        w.check();
    }
    eprintln!("{:?}", w.m.stats);
    for what in [
        "write",
        "cow write",
        "read",
        "create",
        "accept",
        "release",
        "reclaim",
        "write refused",
        "read refused",
        "golden unmap",
    ] {
        assert!(
            w.m.stats.get(what).copied().unwrap_or(0) > 0,
            "no {what} in {:?}",
            w.m.stats
        );
    }
}
