//! The case model: a case is a list of steps; each step does one thing (send a request or
//! raw packets as a VM, make a VM's vCPU read or write memory, ...) and says everything
//! the RM must do in answer: every message to every VM in order (nothing else may arrive,
//! so "no reply" is an empty list), and whether the RM's state must stay unchanged.

use alloc::vec::Vec;

use crate::ids;
use crate::tmpl::{Tmpl, Val, Var};

/// What a case is about, so a runner can select.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tag {
    /// Header, sequence numbers, message types, unknown IDs.
    Protocol,
    /// Fragmentation and reassembly edges.
    Fragmentation,
    /// The VM state machine.
    Lifecycle,
    /// Memparcels: create, accept, release, reclaim, notify, append, lookup.
    Memparcel,
    /// Golden images.
    Golden,
    /// Copy-on-write and the fault path.
    Cow,
    /// gmem pools.
    Gmem,
    /// DESIGN.md "Who may do what".
    Authorization,
    /// A line of spec §12.1 (behaviour observed on Gunyah's RM).
    Observed,
    /// VM queries (state, VMID, owner, peers, resources, type).
    Query,
}

impl Tag {
    /// Every tag, in order.
    pub const ALL: [Tag; 10] = [
        Tag::Protocol,
        Tag::Fragmentation,
        Tag::Lifecycle,
        Tag::Memparcel,
        Tag::Golden,
        Tag::Cow,
        Tag::Gmem,
        Tag::Authorization,
        Tag::Observed,
        Tag::Query,
    ];

    /// Lower-case name (for selecting on a command line).
    pub fn name(self) -> &'static str {
        match self {
            Tag::Protocol => "protocol",
            Tag::Fragmentation => "fragmentation",
            Tag::Lifecycle => "lifecycle",
            Tag::Memparcel => "memparcel",
            Tag::Golden => "golden",
            Tag::Cow => "cow",
            Tag::Gmem => "gmem",
            Tag::Authorization => "authorization",
            Tag::Observed => "observed",
            Tag::Query => "query",
        }
    }
}

/// A facility a case needs beyond sending, receiving and guest memory access of RUNNING
/// VMs. A runner skips cases whose needs its target lacks ([`crate::Target::has`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// SIM_VM_READ / SIM_VM_WRITE requests (the simulator's; other platforms answer
    /// UNIMPLEMENTED). Found automatically from the steps.
    SimRpc,
    /// Sending as a VM that has no running vCPU (LOAD, READY, EXITED, or a VMID that is not
    /// allocated): only a target that injects packets as any VMID can.
    SendWithoutVcpu,
    /// Marking a VM protected with a list of accepted golden digests (what a VM config's
    /// `protected` does), [`crate::Target::protect`].
    Protect,
}

impl Need {
    /// Why a target may lack it (printed with the count of cases it keeps from running).
    pub fn why(self) -> &'static str {
        match self {
            Need::SimRpc => {
                "SIM_VM_READ/SIM_VM_WRITE granted: the simulator's own guest accesses (other \
                 platforms answer UNIMPLEMENTED); guests here touch memory with their vCPUs"
            }
            Need::SendWithoutVcpu => {
                "an answer to a VM with no running vCPU (READY, EXITED): nothing executes as \
                 it here to send"
            }
            Need::Protect => "marking a VM protected",
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Need::SimRpc => "sim-rpc",
            Need::SendWithoutVcpu => "send-without-vcpu",
            Need::Protect => "protect",
        }
    }
}

/// Reply or notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A reply; `None` = the seq of the step's request.
    Reply(Option<u16>),
    /// A notification (its seq is the RM's own counter and is not checked).
    Notif,
}

/// One message the RM must send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exp {
    /// Recipient VM.
    pub to: Val,
    /// Reply or notification.
    pub kind: Kind,
    /// Message ID.
    pub msg_id: u32,
    /// Payload (a reply's starts with its `u32` error code).
    pub body: Tmpl,
}

/// What a guest access must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    /// It completes; a read returns these bytes.
    Data(Tmpl),
    /// It completes (a write).
    Done,
    /// The page at this IPA faults and the fault is not served.
    Fault(Val),
}

/// One step of a case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send a request as `from`; the runner fragments it and picks its seq.
    Send {
        from: Val,
        msg_id: u32,
        body: Tmpl,
        expect: Vec<Exp>,
        unchanged: bool,
    },
    /// Send packets as they are (header included) as `from`. A reply expectation without
    /// a seq means the seq of the first packet.
    Raw {
        from: Val,
        packets: Vec<Tmpl>,
        expect: Vec<Exp>,
        unchanged: bool,
    },
    /// `vm`'s vCPU reads `len` bytes at `ipa`.
    Read {
        vm: Val,
        ipa: Val,
        len: usize,
        want: Want,
        expect: Vec<Exp>,
    },
    /// `vm`'s vCPU writes `data` at `ipa`.
    Write {
        vm: Val,
        ipa: Val,
        data: Vec<u8>,
        want: Want,
        expect: Vec<Exp>,
    },
    /// The target writes a bootable image for `vm` (its DT, and on QEMU the guest agent) into
    /// HLOS memory at `at` and binds the layout: `size` (bytes to lend, page multiple, at most
    /// [`crate::IMAGE_ROOM`]), `image_size`, `dtb_off`, `dtb_size` (image at offset 0).
    Stage {
        vm: Val,
        at: Val,
        size: Var,
        image_size: Var,
        dtb_off: Var,
        dtb_size: Var,
    },
    /// Mark `vm` protected, accepting golden images whose digest is one of the byte
    /// variables or literals given ([`Need::Protect`]).
    Protect { vm: Val, digests: Vec<Digest> },
    /// `vm` cannot send to the RM at all: no vCPU of it runs and the RM holds no message
    /// queue link for it ([`crate::Target::sender`]).
    CannotSend(Val),
    /// Bind a variable to a value.
    Let(Var, Val),
    /// Bind a byte variable to bytes.
    Blob(Var, Vec<u8>),
}

/// A digest for [`Step::Protect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Digest {
    /// A byte variable (e.g. captured from GOLDEN_SEAL).
    Var(Var),
    /// These bytes.
    Lit([u8; 32]),
}

/// A case: a name, tags, needs and steps.
#[derive(Clone, Debug)]
pub struct Case {
    /// Unique, lower-case, words separated by `_`.
    pub name: &'static str,
    /// What it is about.
    pub tags: Vec<Tag>,
    /// What it needs beyond the basics.
    pub needs: Vec<Need>,
    /// What it does.
    pub steps: Vec<Step>,
    /// What a target lacking a need of this case runs instead, if the property can be
    /// checked there in another form ([`Case::otherwise`]).
    pub otherwise: Option<Otherwise>,
    /// How many of the first steps build a world the next cases may share (0: none). A
    /// runner may keep that world for the next case whose first `world` steps are the same,
    /// instead of cleaning it up and building it again, if this case left the RM's state
    /// exactly as the world's steps made it ([`Case::shared_world`]).
    pub world: usize,
}

/// The form of a case for a target that lacks one of its needs: the same property,
/// checked the way that target can (e.g. "a VM in LOAD cannot send at all" where the
/// simulator, which sends as any VMID, checks "what it sends is dropped").
#[derive(Clone, Debug)]
pub struct Otherwise {
    /// The need whose lack selects this form.
    pub lacking: Need,
    /// How this form checks the property (printed on the case's line).
    pub why: &'static str,
    /// Its steps (same name and tags).
    pub case: alloc::boxed::Box<Case>,
}

/// A new case.
pub fn case(name: &'static str, tags: &[Tag]) -> Case {
    Case {
        name,
        tags: tags.to_vec(),
        needs: Vec::new(),
        steps: Vec::new(),
        otherwise: None,
        world: 0,
    }
}

impl Case {
    /// Everything this case needs, declared or found in its steps.
    pub fn all_needs(&self) -> Vec<Need> {
        let mut n = self.needs.clone();
        // A SIM_VM_* request that must be refused (state unchanged) is refused by the rules
        // before any access: every target answers it alike.
        let sim = self.steps.iter().any(|s| {
            matches!(s, Step::Send { msg_id, unchanged: false, .. } if *msg_id == ids::SIM_VM_READ || *msg_id == ids::SIM_VM_WRITE)
        });
        if sim {
            n.push(Need::SimRpc);
        }
        if self.steps.iter().any(|s| matches!(s, Step::Protect { .. })) {
            n.push(Need::Protect);
        }
        n.sort();
        n.dedup();
        n
    }

    /// The steps so far build a world that cases starting with the same steps may share:
    /// a runner keeps it for the next such case when this one leaves the RM's state digest
    /// as the world's steps left it, the case made no resource the clean-up would undo and
    /// wrote no guest memory (see `run.rs`).
    pub fn shared_world(mut self) -> Case {
        self.world = self.steps.len();
        self
    }

    /// On a target lacking `lacking`, run `form` (same name and tags) instead: the same
    /// property checked the way that target can; `why` says how.
    pub fn otherwise(mut self, lacking: Need, why: &'static str, form: Case) -> Case {
        self.otherwise = Some(Otherwise {
            lacking,
            why,
            case: alloc::boxed::Box::new(form),
        });
        self
    }

    /// `vm` cannot send to the RM at all ([`Step::CannotSend`]).
    pub fn cannot_send(self, vm: impl Into<Val>) -> Case {
        self.step(Step::CannotSend(vm.into()))
    }

    /// Declare a need.
    pub fn needs(mut self, n: Need) -> Case {
        self.needs.push(n);
        self
    }

    /// Add a tag.
    pub fn tag(mut self, t: Tag) -> Case {
        if !self.tags.contains(&t) {
            self.tags.push(t);
        }
        self
    }

    /// Add a step.
    pub fn step(mut self, s: Step) -> Case {
        self.steps.push(s);
        self
    }

    /// Send a request as `from`.
    pub fn send(self, from: impl Into<Val>, msg_id: u32, body: Tmpl) -> Case {
        self.step(Step::Send {
            from: from.into(),
            msg_id,
            body,
            expect: Vec::new(),
            unchanged: false,
        })
    }

    /// Send packets as they are.
    pub fn raw(self, from: impl Into<Val>, packets: Vec<Tmpl>) -> Case {
        self.step(Step::Raw {
            from: from.into(),
            packets,
            expect: Vec::new(),
            unchanged: false,
        })
    }

    /// `vm` reads.
    pub fn read(self, vm: impl Into<Val>, ipa: impl Into<Val>, len: usize, want: Want) -> Case {
        self.step(Step::Read {
            vm: vm.into(),
            ipa: ipa.into(),
            len,
            want,
            expect: Vec::new(),
        })
    }

    /// `vm` writes.
    pub fn write(self, vm: impl Into<Val>, ipa: impl Into<Val>, data: &[u8], want: Want) -> Case {
        self.step(Step::Write {
            vm: vm.into(),
            ipa: ipa.into(),
            data: data.to_vec(),
            want,
            expect: Vec::new(),
        })
    }

    /// Bind a variable.
    pub fn let_(self, v: Var, x: impl Into<Val>) -> Case {
        self.step(Step::Let(v, x.into()))
    }

    fn last(&mut self) -> &mut Step {
        self.steps.last_mut().expect("a step to expect from")
    }

    fn push_exp(mut self, e: Exp) -> Case {
        match self.last() {
            Step::Send { expect, .. }
            | Step::Raw { expect, .. }
            | Step::Read { expect, .. }
            | Step::Write { expect, .. } => expect.push(e),
            other => panic!("cannot expect messages from {other:?}"),
        }
        self
    }

    fn sender(&mut self) -> Val {
        match self.last() {
            Step::Send { from, .. } | Step::Raw { from, .. } => *from,
            other => panic!("{other:?} has no reply"),
        }
    }

    /// The last step must leave the RM's state unchanged (where the target can tell).
    pub fn unchanged(mut self) -> Case {
        match self.last() {
            Step::Send { unchanged, .. } | Step::Raw { unchanged, .. } => *unchanged = true,
            other => panic!("{other:?} cannot be unchanged"),
        }
        self
    }

    /// The reply to the last request: `err`, then `data`.
    pub fn reply(mut self, err: u32, data: Tmpl) -> Case {
        let to = self.sender();
        self.push_exp(Exp {
            to,
            kind: Kind::Reply(None),
            msg_id: 0,
            body: Tmpl::new().u32(err).then(data),
        })
    }

    /// The reply is OK with no data.
    pub fn ok(self) -> Case {
        self.reply(ids::err::OK, Tmpl::new())
    }

    /// The reply is OK with `data`.
    pub fn ok_data(self, data: Tmpl) -> Case {
        self.reply(ids::err::OK, data)
    }

    /// The reply is the error `err` alone and nothing changes (the project's rule for a
    /// refused request).
    pub fn err(self, err: u32) -> Case {
        self.reply(err, Tmpl::new()).unchanged()
    }

    /// The reply is the error `err` alone, and the request did change something (e.g. a
    /// failed VM_CONFIG_IMAGE moves the VM to INIT_FAILED), said by the other expectations.
    pub fn err_moves(self, err: u32) -> Case {
        self.reply(err, Tmpl::new())
    }

    /// A reply with an explicit seq (for raw packets).
    pub fn reply_seq(self, to: impl Into<Val>, seq: u16, msg_id: u32, body: Tmpl) -> Case {
        self.push_exp(Exp {
            to: to.into(),
            kind: Kind::Reply(Some(seq)),
            msg_id,
            body,
        })
    }

    /// A notification `msg_id` with `body` to `to`, in this place of `to`'s queue.
    pub fn notif(self, to: impl Into<Val>, msg_id: u32, body: Tmpl) -> Case {
        self.push_exp(Exp {
            to: to.into(),
            kind: Kind::Notif,
            msg_id,
            body,
        })
    }

    /// Nothing at all comes back, and nothing changes.
    pub fn silent(self) -> Case {
        self.unchanged()
    }
}
