//! The runner: plays a case's steps against a [`Target`], checks every message, then cleans
//! up what the case left (generically, from the traffic it saw) so the next case starts
//! from the same world, and compares the target's census before and after.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::case::{Case, Digest, Exp, Kind, Need, Step, Tag, Want};
use crate::ids::{self, err};
use crate::target::{Access, Sender, Target};
use crate::tmpl::{Tmpl, Vars};
use crate::wire::{self, Msg, Rx};

/// What happened to one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every step did what the case says.
    Passed,
    /// Every step of the case's form for this target ([`Case::otherwise`]) did; the text
    /// says how that form checks the property.
    PassedAs(&'static str),
    /// A step did not; the text says which and how.
    Failed(String),
    /// The target lacks something the case needs.
    Skipped(Vec<Need>),
}

/// Totals of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    /// Of `passed`, the cases that ran their form for this target.
    pub passed_as: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// Which cases to run.
#[derive(Clone, Debug, Default)]
pub struct Select {
    /// Only cases with one of these tags (all if empty).
    pub tags: Vec<Tag>,
    /// Only cases whose name contains one of these (all if empty).
    pub names: Vec<String>,
}

impl Select {
    /// Whether `c` is selected.
    pub fn wants(&self, c: &Case) -> bool {
        (self.tags.is_empty() || c.tags.iter().any(|t| self.tags.contains(t)))
            && (self.names.is_empty() || self.names.iter().any(|n| c.name.contains(n.as_str())))
    }
}

/// Run the selected cases in order, one line per case through `out`, then the totals
/// (`N passed, M failed, K skipped`). Consecutive cases that start with the same shared
/// world ([`Case::shared_world`]) run in one instance of it when each leaves it as it was.
pub fn run_all<T: Target>(
    t: &mut T,
    cases: &[Case],
    select: &Select,
    out: &mut dyn FnMut(&str),
) -> Summary {
    let mut s = Summary::default();
    let mut seq: u16 = 0x100;
    let wanted: Vec<&Case> = cases.iter().filter(|c| select.wants(c)).collect();
    let mut kept = None;
    let mut not_run: BTreeMap<Need, usize> = BTreeMap::new();
    for (i, c) in wanted.iter().enumerate() {
        // The next case this target runs: the world is kept only for it.
        let next = wanted[i + 1..]
            .iter()
            .find_map(|n| form(t, n).ok().map(|f| f.0));
        match run_case_in(t, c, &mut seq, &mut kept, next) {
            Outcome::Passed => {
                s.passed += 1;
                out(&format!("ok      {}", c.name));
            }
            Outcome::PassedAs(why) => {
                s.passed += 1;
                s.passed_as += 1;
                out(&format!("ok      {} (as: {why})", c.name));
            }
            Outcome::Failed(why) => {
                s.failed += 1;
                out(&format!("FAILED  {}: {why}", c.name));
            }
            Outcome::Skipped(n) => {
                s.skipped += 1;
                for need in &n {
                    *not_run.entry(*need).or_insert(0) += 1;
                }
                let names: Vec<&str> = n.iter().map(|n| n.name()).collect();
                out(&format!("skipped {} (needs {})", c.name, names.join(", ")));
            }
        }
    }
    if s.passed_as > 0 {
        out(&format!(
            "{} of the passed cases ran their form for this target (lines with \"as:\")",
            s.passed_as
        ));
    }
    for (need, n) in not_run {
        out(&format!(
            "not runnable here: {n} cases need {} ({})",
            need.name(),
            need.why()
        ));
    }
    out(&format!(
        "{} passed, {} failed, {} skipped",
        s.passed, s.failed, s.skipped
    ));
    s
}

/// Run one case (and its clean-up). `seq` is the runner's request counter.
pub fn run_case<T: Target>(t: &mut T, c: &Case, seq: &mut u16) -> Outcome {
    run_case_in(t, c, seq, &mut None, None)
}

fn missing<T: Target>(t: &T, c: &Case) -> Vec<Need> {
    c.all_needs().into_iter().filter(|n| !t.has(*n)).collect()
}

/// What `t` runs for `c`: `c` itself (no text), or its form for a target that lacks what
/// `c` needs (with how it checks the property); else the needs `t` lacks.
fn form<'c, T: Target>(t: &T, c: &'c Case) -> Result<(&'c Case, Option<&'static str>), Vec<Need>> {
    let lacks = missing(t, c);
    if lacks.is_empty() {
        return Ok((c, None));
    }
    match &c.otherwise {
        Some(o) if lacks.contains(&o.lacking) && missing(t, &o.case).is_empty() => {
            Ok((&o.case, Some(o.why)))
        }
        _ => Err(lacks),
    }
}

/// A world a case built and left as it was, kept for the next case that starts with the
/// same steps.
struct Kept {
    /// The steps that built it.
    steps: Vec<Step>,
    /// The runner's state right after them.
    vars: Vars,
    known: Vec<u16>,
    tracked: Tracked,
    /// The RM's state digest right after them.
    digest: u64,
    /// The census before the world was built (compared after its clean-up).
    census: Option<Vec<(&'static str, u64)>>,
}

/// Whether `c` starts with the world `steps` built.
fn shares(c: &Case, steps: &[Step]) -> bool {
    c.world == steps.len() && c.world > 0 && c.steps[..c.world] == *steps
}

/// Run `c`, in `kept` if it starts with that world; keep its world for `next` if `next`
/// starts with it and `c` left it as it was, else clean up.
fn run_case_in<T: Target>(
    t: &mut T,
    c: &Case,
    seq: &mut u16,
    kept: &mut Option<Kept>,
    next: Option<&Case>,
) -> Outcome {
    let (c, why) = match form(t, c) {
        Ok(f) => f,
        Err(lacks) => return Outcome::Skipped(lacks),
    };
    let passed = match why {
        Some(w) => Outcome::PassedAs(w),
        None => Outcome::Passed,
    };
    let resumed = kept.take().filter(|k| shares(c, &k.steps));
    let (census_before, mut r, first, mut world) = match resumed {
        Some(k) => {
            let mut r = Run::new(t, *seq);
            r.vars = k.vars.clone();
            r.known = k.known.clone();
            r.tracked = k.tracked.clone();
            // The last case left the world as checked, with this digest.
            r.state_digest = Some(k.digest);
            r.checked = Some(k.digest);
            (k.census.clone(), r, c.world, Some(k))
        }
        None => (t.census(), Run::new(t, *seq), 0, None),
    };
    let mut result = Ok(());
    for (i, s) in c.steps.iter().enumerate().skip(first) {
        if let Err(e) = r.step(s) {
            result = Err(format!("step {} ({}): {e}", i + 1, describe(s)));
            break;
        }
        if c.world > 0 && i + 1 == c.world {
            // The world is built: what a case resuming it starts from.
            let now = r.state_digest.or_else(|| r.t.digest());
            world = now.map(|digest| Kept {
                steps: c.steps[..c.world].to_vec(),
                vars: r.vars.clone(),
                known: r.known.clone(),
                tracked: r.tracked.clone(),
                digest,
                census: census_before.clone(),
            });
        }
    }
    if result.is_ok() {
        if let Some(w) = world.filter(|w| next.is_some_and(|n| shares(n, &w.steps))) {
            // Kept only if the next case would find exactly the world its steps build: the
            // same RM state (digest), no resource the clean-up would have undone, no guest
            // memory written (the digest does not cover contents).
            let wrote = c.steps[c.world..].iter().any(|s| {
                matches!(s, Step::Write { .. } | Step::Protect { .. })
                    || matches!(s, Step::Send { msg_id, .. } if *msg_id == ids::SIM_VM_WRITE)
            });
            if !wrote
                && r.tracked == w.tracked
                && r.drain().is_ok()
                && r.state_digest.or_else(|| r.t.digest()) == Some(w.digest)
            {
                *seq = r.seq;
                *kept = Some(w);
                return passed;
            }
        }
    }
    let cleanup = r.cleanup();
    *seq = r.seq;
    if result.is_ok() {
        result = cleanup;
    }
    let census_after = t.census();
    if result.is_ok() && census_before != census_after {
        result = Err(format!(
            "after clean-up the census differs: before {census_before:?}, after {census_after:?}"
        ));
    }
    match result {
        Ok(()) => passed,
        Err(e) => {
            if census_before != t.census() {
                // Later cases must start from the usual world.
                t.fresh();
            }
            Outcome::Failed(e)
        }
    }
}

fn describe(s: &Step) -> String {
    match s {
        Step::Send { from, msg_id, .. } => {
            format!("{} from {from:?}", ids::msg_name(*msg_id))
        }
        Step::Raw { from, packets, .. } => format!("{} raw packets from {from:?}", packets.len()),
        Step::Read { vm, ipa, len, .. } => format!("{vm:?} reads {len} at {ipa:?}"),
        Step::Write { vm, ipa, data, .. } => format!("{vm:?} writes {} at {ipa:?}", data.len()),
        Step::Stage { vm, .. } => format!("stage an image for {vm:?}"),
        Step::Protect { vm, .. } => format!("protect {vm:?}"),
        Step::CannotSend(vm) => format!("{vm:?} cannot send"),
        Step::Let(v, x) => format!("let {v} = {x:?}"),
        Step::Blob(v, b) => format!("let {v} = {} bytes", b.len()),
    }
}

/// A request a step sent: who sent it, its seq and ID, its payload.
struct Sent<'r> {
    from: u16,
    seq: u16,
    msg_id: u32,
    request: &'r [u8],
}

/// Resources a case made, seen in the RM's replies, for the clean-up.
#[derive(Clone, Default, PartialEq, Eq)]
struct Tracked {
    vms: Vec<u16>,
    parcels: Vec<(u16, u32)>,
    goldens: Vec<(u16, u32)>,
}

struct Run<'a, T: Target> {
    t: &'a mut T,
    vars: Vars,
    seq: u16,
    known: Vec<u16>,
    rx: BTreeMap<u16, Rx>,
    tracked: Tracked,
    /// The RM's state digest as it is now, if a step proved it (an exchange that had to
    /// leave the state unchanged did) and nothing that could change the state happened since.
    state_digest: Option<u64>,
    /// The digest of the last state the target's check passed on, if known.
    checked: Option<u64>,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off + 4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
}

impl<'a, T: Target> Run<'a, T> {
    fn new(t: &'a mut T, seq: u16) -> Self {
        let p = t.params();
        let mut vars = Vars::default();
        vars.set("ram", p.scratch);
        vars.set("ram_end", p.hlos_ram_end);
        vars.set("gw", p.guest_window);
        vars.set("static_last", p.static_vmid_last.into());
        Run {
            t,
            vars,
            seq,
            known: alloc::vec![ids::HLOS],
            rx: BTreeMap::new(),
            tracked: Tracked::default(),
            state_digest: None,
            checked: None,
        }
    }

    fn know(&mut self, vm: u16) {
        if !self.known.contains(&vm) {
            self.known.push(vm);
        }
    }

    fn vm(&mut self, v: crate::tmpl::Val) -> Result<u16, String> {
        let x = self.vars.eval(v)?;
        let vm = u16::try_from(x).map_err(|_| format!("VMID {x:#x} does not fit 16 bits"))?;
        self.know(vm);
        Ok(vm)
    }

    fn next_seq(&mut self) -> u16 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Everything queued for every VM the case knows, reassembled.
    fn collect(&mut self) -> Result<Vec<(u16, Msg)>, String> {
        let mut out = Vec::new();
        for vm in self.known.clone() {
            let rx = self.rx.entry(vm).or_default();
            let mut n = 0;
            while let Some(p) = self.t.recv(vm).map_err(|e| e.0)? {
                n += 1;
                if n > 100_000 {
                    return Err(format!("VM {vm:#x} keeps receiving"));
                }
                if let Some(m) = rx.push(&p).map_err(|e| format!("to VM {vm:#x}: {e}"))? {
                    out.push((vm, m));
                }
            }
            if rx.incomplete() {
                return Err(format!("to VM {vm:#x}: a message was left incomplete"));
            }
        }
        Ok(out)
    }

    fn show(vm: u16, m: &Msg) -> String {
        let kind = if m.msg_type == wire::ty::REPLY {
            "reply"
        } else {
            "notification"
        };
        let code = if m.msg_type == wire::ty::REPLY {
            u32_at(&m.payload, 0)
                .map(|c| format!(" {}", err::name(c)))
                .unwrap_or_default()
        } else {
            String::new()
        };
        format!(
            "{kind} {}{code} to {vm:#x} seq {:#x} {:02x?}",
            ids::msg_name(m.msg_id),
            m.seq,
            &m.payload[..m.payload.len().min(48)]
        )
    }

    /// Match what arrived against `exps`: per recipient, in order, nothing more. COW_BROKEN
    /// notifications about one VM that reach a recipient one after another count as one
    /// ([`merge_cow_broken`]).
    fn expect(
        &mut self,
        exps: &[Exp],
        got: &[(u16, Msg)],
        step_seq: u16,
        step_id: u32,
    ) -> Result<(), String> {
        let got = &merge_cow_broken(got)[..];
        // Pair each expectation with the next message to its recipient.
        let mut next: BTreeMap<u16, usize> = BTreeMap::new();
        let mut pairs: Vec<(usize, &Msg, u16)> = Vec::new();
        for (i, e) in exps.iter().enumerate() {
            let to = self.vm(e.to)?;
            let k = next.entry(to).or_insert(0);
            let m = got.iter().filter(|(v, _)| *v == to).nth(*k);
            *k += 1;
            match m {
                Some((_, m)) => pairs.push((i, m, to)),
                None => {
                    let all: Vec<String> = got.iter().map(|(v, m)| Self::show(*v, m)).collect();
                    return Err(format!(
                        "expected {} {} to {to:#x}, which did not come (got: [{}])",
                        if matches!(e.kind, Kind::Reply(_)) {
                            "the reply"
                        } else {
                            "notification"
                        },
                        ids::msg_name(if e.msg_id == 0 { step_id } else { e.msg_id }),
                        all.join("; ")
                    ));
                }
            }
        }
        let mut seen: BTreeMap<u16, usize> = BTreeMap::new();
        for (v, _) in got {
            *seen.entry(*v).or_insert(0) += 1;
        }
        for (v, n) in seen {
            let want = next.get(&v).copied().unwrap_or(0);
            if n > want {
                let all: Vec<String> = got
                    .iter()
                    .filter(|(w, _)| *w == v)
                    .map(|(w, m)| Self::show(*w, m))
                    .collect();
                return Err(format!(
                    "unexpected messages: VM {v:#x} got {n}, expected {want}: [{}]",
                    all.join("; ")
                ));
            }
        }
        // Match, binding captures; a template that needs a variable a later one binds
        // waits for it.
        let mut todo = pairs;
        while !todo.is_empty() {
            let mut left = Vec::new();
            let mut last_unbound = String::new();
            let before = todo.len();
            for (i, m, to) in todo {
                let e = &exps[i];
                let (want_type, want_id) = match e.kind {
                    Kind::Reply(seq) => {
                        let s = seq.unwrap_or(step_seq);
                        if m.seq != s {
                            return Err(format!(
                                "{}: seq {:#x}, want {s:#x}",
                                Self::show(to, m),
                                m.seq
                            ));
                        }
                        (
                            wire::ty::REPLY,
                            if e.msg_id == 0 { step_id } else { e.msg_id },
                        )
                    }
                    Kind::Notif => (wire::ty::NOTIFICATION, e.msg_id),
                };
                if m.msg_type != want_type || m.msg_id != want_id {
                    return Err(format!(
                        "got {}, want {} {}",
                        Self::show(to, m),
                        if want_type == wire::ty::REPLY {
                            "reply"
                        } else {
                            "notification"
                        },
                        ids::msg_name(want_id)
                    ));
                }
                let mut trial = self.vars.clone();
                match e.body.matches(&m.payload, &mut trial) {
                    Ok(()) => self.vars = trial,
                    Err(x) if x.contains("is not bound") => {
                        last_unbound = x;
                        left.push((i, m, to));
                    }
                    Err(x) => return Err(format!("{}: {x}", Self::show(to, m))),
                }
            }
            if left.len() == before {
                return Err(last_unbound);
            }
            todo = left;
        }
        Ok(())
    }

    /// Note resources the RM reported making (for the clean-up).
    fn track(&mut self, from: u16, msg_id: u32, request: &[u8], got: &[(u16, Msg)]) {
        for (to, m) in got {
            if *to != from || m.msg_type != wire::ty::REPLY || m.msg_id != msg_id {
                continue;
            }
            if u32_at(&m.payload, 0) != Some(err::OK) {
                continue;
            }
            let data = u32_at(&m.payload, 4);
            match msg_id {
                ids::VM_ALLOC => {
                    let asked = request
                        .get(..2)
                        .map(|b| u16::from_le_bytes([b[0], b[1]]))
                        .unwrap_or(0);
                    let vm = if asked != 0 {
                        Some(asked)
                    } else {
                        data.map(|d| d as u16)
                    };
                    if let Some(vm) = vm {
                        self.tracked.vms.push(vm);
                        self.know(vm);
                    }
                }
                ids::MEM_SHARE | ids::MEM_LEND | ids::MEM_DONATE => {
                    if let Some(h) = data {
                        self.tracked.parcels.push((from, h));
                    }
                }
                ids::GOLDEN_SEAL => {
                    if let Some(g) = data {
                        self.tracked.goldens.push((from, g));
                    }
                }
                _ => {}
            }
        }
    }

    fn exchange(
        &mut self,
        sent: Sent<'_>,
        packets: &[Vec<u8>],
        exps: &[Exp],
        unchanged: bool,
    ) -> Result<(), String> {
        for e in exps {
            self.vm(e.to)?;
        }
        let known = self.state_digest.take();
        let before = if unchanged {
            known.or_else(|| self.t.digest())
        } else {
            None
        };
        for p in packets {
            self.t.send(sent.from, p).map_err(|e| e.0)?;
        }
        let got = self.collect()?;
        self.track(sent.from, sent.msg_id, sent.request, &got);
        self.expect(exps, &got, sent.seq, sent.msg_id)?;
        if let Some(b) = before {
            let a = self.t.digest();
            if a != Some(b) {
                return Err(String::from("the RM's state changed"));
            }
            self.state_digest = a;
        }
        Ok(())
    }

    fn access_done(&mut self, got: Access, want: &Want) -> Result<(), String> {
        match (want, got) {
            (Want::Data(t), Access::Done(b)) => t
                .matches(&b, &mut self.vars)
                .map_err(|e| format!("read data: {e}")),
            (Want::Done, Access::Done(_)) => Ok(()),
            (Want::Fault(ipa), Access::Fault(at)) => {
                let w = self.vars.eval(*ipa)?;
                if w == at {
                    Ok(())
                } else {
                    Err(format!("faulted at {at:#x}, want {w:#x}"))
                }
            }
            (w, g) => Err(format!("access gave {g:?}, want {w:?}")),
        }
    }

    fn step(&mut self, s: &Step) -> Result<(), String> {
        // Whether the step can change nothing the checker looks at once the digest says so.
        let pure = matches!(
            s,
            Step::Send { .. }
                | Step::Raw { .. }
                | Step::Let(..)
                | Step::Blob(..)
                | Step::CannotSend(_)
        );
        if !pure {
            self.state_digest = None;
        }
        match s {
            Step::Send {
                from,
                msg_id,
                body,
                expect,
                unchanged,
            } => {
                let from = self.vm(*from)?;
                let payload = body.render(&self.vars)?;
                let seq = self.next_seq();
                let pk = wire::request_packets(seq, *msg_id, &payload);
                let sent = Sent {
                    from,
                    seq,
                    msg_id: *msg_id,
                    request: &payload,
                };
                self.exchange(sent, &pk, expect, *unchanged)?;
            }
            Step::Raw {
                from,
                packets,
                expect,
                unchanged,
            } => {
                let from = self.vm(*from)?;
                let mut pk = Vec::new();
                for p in packets {
                    pk.push(p.render(&self.vars)?);
                }
                let (seq, id) = pk
                    .first()
                    .filter(|p| p.len() >= 8)
                    .map(|p| {
                        (
                            u16::from_le_bytes([p[2], p[3]]),
                            u32::from_le_bytes([p[4], p[5], p[6], p[7]]),
                        )
                    })
                    .unwrap_or((0, 0));
                let sent = Sent {
                    from,
                    seq,
                    msg_id: id,
                    request: &[],
                };
                self.exchange(sent, &pk, expect, *unchanged)?;
            }
            Step::Read {
                vm,
                ipa,
                len,
                want,
                expect,
            } => {
                let vm = self.vm(*vm)?;
                for e in expect {
                    self.vm(e.to)?;
                }
                let ipa = self.vars.eval(*ipa)?;
                let got = self.t.read(vm, ipa, *len).map_err(|e| e.0)?;
                self.access_done(got, want)?;
                let msgs = self.collect()?;
                self.expect(expect, &msgs, 0, 0)?;
            }
            Step::Write {
                vm,
                ipa,
                data,
                want,
                expect,
            } => {
                let vm = self.vm(*vm)?;
                for e in expect {
                    self.vm(e.to)?;
                }
                let ipa = self.vars.eval(*ipa)?;
                let got = self.t.write(vm, ipa, data).map_err(|e| e.0)?;
                self.access_done(got, want)?;
                let msgs = self.collect()?;
                self.expect(expect, &msgs, 0, 0)?;
            }
            Step::Stage {
                vm,
                at,
                size,
                image_size,
                dtb_off,
                dtb_size,
            } => {
                let vm = self.vm(*vm)?;
                let at = self.vars.eval(*at)?;
                let img = self.t.stage_image(vm, at).map_err(|e| e.0)?;
                if img.size == 0 || img.size % 0x1000 != 0 || img.size > crate::IMAGE_ROOM {
                    return Err(format!("the target's image is {:#x} bytes", img.size));
                }
                self.vars.set(size, img.size);
                self.vars.set(image_size, img.image_size);
                self.vars.set(dtb_off, img.dtb_offset);
                self.vars.set(dtb_size, img.dtb_size);
            }
            Step::Protect { vm, digests } => {
                let vm = self.vm(*vm)?;
                let mut ds = Vec::new();
                for d in digests {
                    ds.push(match d {
                        Digest::Lit(b) => *b,
                        Digest::Var(v) => {
                            let b = self.vars.blob(v)?;
                            <[u8; 32]>::try_from(b).map_err(|_| format!("`{v}` is not 32 bytes"))?
                        }
                    });
                }
                self.t.protect(vm, &ds).map_err(|e| e.0)?;
            }
            Step::CannotSend(vm) => {
                let vm = self.vm(*vm)?;
                match self.t.sender(vm) {
                    Some(Sender {
                        runs: false,
                        link: false,
                    }) => {}
                    Some(s) => return Err(format!("VM {vm:#x} could send: {s:?}")),
                    None => return Err(String::from("the target cannot tell who may send")),
                }
            }
            Step::Let(v, x) => {
                let x = self.vars.eval(*x)?;
                self.vars.set(v, x);
            }
            Step::Blob(v, b) => self.vars.set_blob(v, b.clone()),
        }
        if pure && self.state_digest.is_some() && self.state_digest == self.checked {
            // The state is the one the last check passed on (equal digests): the isolation
            // checker would find the same.
            return Ok(());
        }
        self.t.check()?;
        self.checked = self.state_digest;
        Ok(())
    }

    /// One clean-up request as `from`; its answer does not matter.
    fn quietly(&mut self, from: u16, msg_id: u32, body: Tmpl) -> Result<(), String> {
        let payload = body.render(&self.vars)?;
        let seq = self.next_seq();
        for p in wire::request_packets(seq, msg_id, &payload) {
            self.t.send(from, &p).map_err(|e| e.0)?;
        }
        self.drain()
    }

    fn drain(&mut self) -> Result<(), String> {
        for vm in self.known.clone() {
            while self.t.recv(vm).map_err(|e| e.0)?.is_some() {}
        }
        self.rx.clear();
        Ok(())
    }

    /// Undo what the case made: its VMs (forced stop, reset, deallocate), the golden images
    /// it sealed, the parcels HLOS still owns. Answers are not checked (a case may have
    /// cleaned up already); the census comparison checks the result.
    fn cleanup(&mut self) -> Result<(), String> {
        self.drain()?;
        let vms: Vec<u16> = self.tracked.vms.iter().rev().copied().collect();
        for vm in vms {
            // A VM leaves AUTH and INIT only forwards (§5.2): authenticate, initialise,
            // then stop, reset and deallocate; each step that does not apply is refused.
            self.quietly(ids::HLOS, ids::VM_AUTH_IMAGE, Tmpl::new().u16(vm).u16(0u16))?;
            self.quietly(ids::HLOS, ids::VM_INIT, Tmpl::new().u16(vm).u16(0u16))?;
            self.quietly(
                ids::HLOS,
                ids::VM_STOP,
                Tmpl::new().u16(vm).u8(1u8).u8(0u8).u32(0u32),
            )?;
            self.quietly(ids::HLOS, ids::VM_RESET, Tmpl::new().u16(vm).u16(0u16))?;
            self.quietly(ids::HLOS, ids::VM_DEALLOC, Tmpl::new().u16(vm).u16(0u16))?;
        }
        let goldens: Vec<(u16, u32)> = self.tracked.goldens.iter().rev().copied().collect();
        for (owner, g) in goldens {
            let body = Tmpl::new().u32(g).u32(0u32);
            if owner != ids::HLOS {
                self.quietly(owner, ids::GOLDEN_RELEASE, body.clone())?;
            }
            self.quietly(ids::HLOS, ids::GOLDEN_RELEASE, body)?;
        }
        let parcels: Vec<(u16, u32)> = self.tracked.parcels.iter().rev().copied().collect();
        for (owner, h) in parcels {
            if owner == ids::HLOS {
                self.quietly(owner, ids::MEM_RECLAIM, Tmpl::new().u32(h).u32(0u32))?;
            }
        }
        self.drain()
    }
}

/// `got` with each run of COW_BROKEN notifications about the same VM that reach a recipient
/// one after another (nothing else to that recipient in between) made one, its IPA lists
/// joined in order. The RM batches COW_BROKEN per VM (DESIGN.md) and where it cuts a batch is
/// not part of the protocol: the host simulator sends one per page a write touches, the QEMU
/// board one per batch, sent at the next trap of any guest, so a write across two pages
/// arrives there as one or two depending on what the other CPUs did meanwhile. A malformed
/// COW_BROKEN is left as it is (the template match reports it).
pub fn merge_cow_broken(got: &[(u16, Msg)]) -> Vec<(u16, Msg)> {
    // vmid and IPAs of a well-formed COW_BROKEN: u16 vmid, u16 reserved, u16 count,
    // u16 reserved, count u64 IPAs.
    fn parts(m: &Msg) -> Option<(&[u8], &[u8])> {
        if m.msg_type != wire::ty::NOTIFICATION || m.msg_id != ids::N_COW_BROKEN {
            return None;
        }
        let count = usize::from(u16::from_le_bytes([*m.payload.get(4)?, *m.payload.get(5)?]));
        (m.payload.len() == 8 + 8 * count).then(|| (&m.payload[..2], &m.payload[8..]))
    }
    let mut out: Vec<(u16, Msg)> = Vec::new();
    for (to, m) in got {
        let last = out.iter_mut().rev().find(|(t, _)| t == to);
        if let (Some((_, prev)), Some((vmid, ipas))) = (last, parts(m)) {
            if let Some((pv, pipas)) = parts(prev) {
                let count = (pipas.len() + ipas.len()) / 8;
                if pv == vmid && count <= usize::from(u16::MAX) {
                    let mut payload = Vec::with_capacity(8 + 8 * count);
                    payload.extend_from_slice(&prev.payload[..4]);
                    payload.extend_from_slice(&(count as u16).to_le_bytes());
                    payload.extend_from_slice(&prev.payload[6..8]);
                    payload.extend_from_slice(pipas);
                    payload.extend_from_slice(ipas);
                    prev.payload = payload;
                    continue;
                }
            }
        }
        out.push((*to, m.clone()));
    }
    out
}
