//! Launching the VMs of a validated [`LaunchPlan`] on an [`Rm`], as Gunyah's
//! RM does for static VMs, by issuing the requests an owner (HLOS) would.
//!
//! Per VM, in order ([`LaunchStep`]):
//! 1. VM_ALLOC_VMID (the config's fixed VMID, or 0 for a dynamic one);
//! 2. the VM's IPA size (`ipa-bits`, default the platform's; its space is still empty, so a
//!    smaller size only means a smaller root table), GMEM_CREATE of `gmem.size` charged to
//!    the VM, GMEM_BIND of its private
//!    RAM `[base-address, +size-min)` (DEMAND_PAGED when `gmem/demand-paging`);
//! 3. for a protected VM, the RM is told which digests it accepts;
//! 4. each golden mapping of a clone, once its template has sealed: the
//!    image mapped read-only with the config's CoW policy, quota, fault
//!    action, EXEC flag and expected digest, copies paid by the VM's gmem;
//! 5. the VM's DT (its CPUs and RAM) written into HLOS staging pages (one
//!    empty image page, then the DT) taken from the top of HLOS RAM, lent
//!    to the VM (MEM_LEND), then VM_CONFIG_IMAGE, VM_INIT, VM_START. The DT
//!    is built at a planned VM's first launch and kept for its later
//!    instances. Before the lend, VM_SET_ADDRESS_LAYOUT places the parcel in
//!    the VM right after its RAM window (or right before it, or next to a
//!    golden mapping) when that is free and in the same 1 GiB region, so its
//!    entries go into a level-2 table the VM has anyway (`image_ipa`); else
//!    the RM picks the address at VM_START.
//!
//! A template is sealed ([`LaunchStep::Seal`]) when its trigger fires: it
//! reports OS status RUN (VM_SET_STATUS, noticed by [`Launch::poll`]) or
//! the owner asks ([`Launch::seal`]). Sealing moves `seal-ranges` into the
//! golden image and maps the image back into the template copy-on-write
//! (paid by its own gmem), so it keeps running; boot VMs waiting for the
//! image are launched then.
//!
//! Steps 1 and 5 go through the RM's request path as requests from HLOS
//! ([`client::Client`]), so every check applies. Steps 2–4 and the seal are
//! [`apply::prepare`] and [`apply::seal_template`]: the RM's own gmem and
//! golden operations called with HLOS as the caller ([`Rm::gmem_create`],
//! [`Rm::gmem_bind`], [`Rm::set_vm_protected`], [`Rm::golden_map`],
//! [`Rm::golden_seal_vm`]), the functions the wire handlers call, with the
//! same checks (the wire GOLDEN_MAP and GOLDEN_SEAL cannot carry a
//! per-mapping quota, a fault action, an expected digest or a VM's seal
//! ranges). The RM runs the same two functions itself for a VM whose DT
//! carries its config ([`apply`]: VM_INIT, OS status RUN), which is how a
//! VMM launching through RPC alone (the QEMU board's HLOS) gets them.
//!
//! All or nothing per VM: if a step fails, what was done for that VM is
//! undone (the image parcel reclaimed, the VM reset if needed and
//! deallocated, which returns its gmem, bindings and mappings) and the
//! error names the VM, the step and the RM error code.
//!
//! Not applied yet (no request carries them): `vm-attrs` (the RM's VM
//! flags), the firmware region, vCPU affinity and scheduling, vdevices
//! other than the RM RPC link; `is-direct` RAM is refused (gmem cannot
//! give IPA = PA).

pub mod apply;
mod client;
mod dt;

pub use client::Client;
pub use dt::{vm_dt, DtWriter};

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use gunyah_rm_abi::mem::{rights, AclEntry, MemCreate, MemReleaseReq, SglEntry};
use gunyah_rm_abi::vm::{VmConfigImageReq, VmInitReq, VmSetAddressLayoutReq, VmStopReq, VmidReq};
use gunyah_rm_abi::{Request, RmError};

use crate::config::{LaunchMode, LaunchPlan, PlannedVm, SealTrigger, VmidRequest};
use crate::golden::MapParams;
use crate::lifecycle::LAYOUT_IMAGE;
use crate::platform::{Platform, Vmid, PAGE_SIZE};
use crate::service::Rm;
use crate::vm::{VmState, VMID_HLOS};

/// OS status RUN (VM_SET_STATUS os_status 4): the template's seal trigger.
pub const OS_STATUS_RUN: u8 = 4;

/// One step of launching a VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LaunchStep {
    /// VM_ALLOC_VMID.
    AllocVmid,
    /// Giving the VM its IPA size (`ipa-bits`).
    IpaBits,
    /// GMEM_CREATE.
    GmemCreate,
    /// GMEM_BIND of the private RAM.
    GmemBind,
    /// Telling the RM the digests a protected VM accepts.
    Protect,
    /// Mapping the named golden image.
    GoldenMap(String),
    /// Writing the DT and lending the image parcel (MEM_LEND).
    ImageParcel,
    /// VM_CONFIG_IMAGE.
    ConfigImage,
    /// VM_INIT.
    Init,
    /// VM_START.
    Start,
    /// Sealing a template's ranges into the named golden image.
    Seal(String),
    /// VM_STOP (forced), when tearing a VM down.
    Stop,
    /// VM_RESET (if needed) and VM_DEALLOC_VMID, when undoing or tearing down.
    Dealloc,
    /// MEM_RECLAIM of the image parcel, when undoing or tearing down.
    Reclaim,
}

impl fmt::Display for LaunchStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchStep::AllocVmid => f.write_str("VM_ALLOC_VMID"),
            LaunchStep::IpaBits => f.write_str("ipa-bits"),
            LaunchStep::GmemCreate => f.write_str("GMEM_CREATE"),
            LaunchStep::GmemBind => f.write_str("GMEM_BIND"),
            LaunchStep::Protect => f.write_str("protect"),
            LaunchStep::GoldenMap(g) => write!(f, "GOLDEN_MAP {g}"),
            LaunchStep::ImageParcel => f.write_str("MEM_LEND (image)"),
            LaunchStep::ConfigImage => f.write_str("VM_CONFIG_IMAGE"),
            LaunchStep::Init => f.write_str("VM_INIT"),
            LaunchStep::Start => f.write_str("VM_START"),
            LaunchStep::Seal(g) => write!(f, "GOLDEN_SEAL {g}"),
            LaunchStep::Stop => f.write_str("VM_STOP"),
            LaunchStep::Dealloc => f.write_str("VM_DEALLOC_VMID"),
            LaunchStep::Reclaim => f.write_str("MEM_RECLAIM (image)"),
        }
    }
}

/// Why a step failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LaunchFailure {
    /// The RM answered with this error code.
    Rm(RmError),
    /// The golden image the VM maps has not been sealed yet.
    NotSealed,
    /// No VM of that name in the plan, or no instance of it launched.
    UnknownVm,
    /// `is-direct` RAM (IPA = PA) cannot be backed by a gmem pool.
    DirectUnsupported,
    /// No free HLOS staging page for the image parcel.
    NoStaging,
    /// The template was already sealed, or its trigger is not this one.
    NotSealable,
}

impl fmt::Display for LaunchFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchFailure::Rm(e) => write!(f, "{e}"),
            LaunchFailure::NotSealed => f.write_str("golden image not sealed yet"),
            LaunchFailure::UnknownVm => f.write_str("no such VM"),
            LaunchFailure::DirectUnsupported => {
                f.write_str("is-direct memory cannot be backed by gmem")
            }
            LaunchFailure::NoStaging => f.write_str("no free HLOS staging page for the image"),
            LaunchFailure::NotSealable => f.write_str("not a template waiting to be sealed"),
        }
    }
}

/// A VM that could not be launched (or a template that could not be sealed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchError {
    /// The VM's `image-name`.
    pub vm: String,
    /// The step that failed.
    pub step: LaunchStep,
    /// Why.
    pub failure: LaunchFailure,
    /// The undo step that failed in turn, if any (the RM keeps what it
    /// could not undo; the checker still holds).
    pub undo: Option<(LaunchStep, RmError)>,
}

impl LaunchError {
    /// The RM error code, if the RM refused the step.
    pub fn rm_error(&self) -> Option<RmError> {
        match self.failure {
            LaunchFailure::Rm(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for LaunchError {
    /// `VM: STEP: reason`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.vm, self.step, self.failure)?;
        if let Some((s, e)) = &self.undo {
            write!(f, " (undo {s} failed: {e})")?;
        }
        Ok(())
    }
}

/// A sealed golden image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedImage {
    /// The image's name (template `image-name`).
    pub name: String,
    /// Golden id.
    pub id: u32,
    /// SHA-256 of the contents.
    pub digest: [u8; 32],
    /// Size in bytes.
    pub size: u64,
    /// VMID of the template.
    pub template: Vmid,
}

/// A launched VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// Index in [`LaunchPlan::vms`].
    pub plan_index: usize,
    /// `image-name`.
    pub name: String,
    /// Its VMID.
    pub vmid: Vmid,
    /// Its gmem pool.
    pub gmem: u32,
    /// The binding handle of its private RAM.
    pub binding: u32,
    /// The image parcel (lent by HLOS, accepted by the VM at start).
    pub image_handle: u32,
    /// HLOS IPA of the image parcel's staging pages.
    pub image_staging: u64,
    /// Number of those pages (one image page, then the DT's).
    pub image_pages: u64,
    /// Golden ids it maps, with the mapped IPA.
    pub golden: Vec<(u32, u64)>,
    /// Whether its template ranges have been sealed (templates only).
    pub sealed: bool,
}

/// What the launcher did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LaunchEvent {
    /// A VM is running.
    Launched {
        /// `image-name`.
        name: String,
        /// VMID.
        vmid: Vmid,
    },
    /// A template's ranges were sealed.
    Sealed(SealedImage),
    /// A VM (or a seal) failed; nothing of it is left.
    Failed(LaunchError),
}

/// HLOS pages the launcher lends as image parcels, taken from the top of
/// HLOS RAM downwards; given-back runs are reused when the size fits.
#[derive(Clone, Debug)]
struct Staging {
    next: u64,
    floor: u64,
    free: Vec<Area>,
}

/// A run of HLOS staging pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Area {
    ipa: u64,
    pages: u64,
}

impl Staging {
    fn take(&mut self, pages: u64) -> Option<Area> {
        if let Some(k) = self.free.iter().position(|a| a.pages == pages) {
            return Some(self.free.swap_remove(k));
        }
        let at = self.next.checked_sub(pages.checked_mul(PAGE_SIZE)?)?;
        if at < self.floor {
            return None;
        }
        self.next = at;
        Some(Area { ipa: at, pages })
    }
}

/// The launcher: the plan, what it launched, and its client connection.
pub struct Launch {
    plan: Arc<LaunchPlan>,
    /// Each planned VM's DT, built at its first launch.
    dts: Vec<Option<Arc<[u8]>>>,
    client: Client,
    staging: Staging,
    instances: Vec<Instance>,
    sealed: Vec<Option<SealedImage>>,
    waiting: Vec<usize>,
    booted: bool,
}

impl Launch {
    /// A launcher for `plan` on `rm`; image parcels come from the top of
    /// HLOS RAM (`rm.config().hlos_ram`), two pages per VM.
    pub fn new<P: Platform>(rm: &Rm<P>, plan: LaunchPlan) -> Self {
        let (base, size) = rm
            .config()
            .hlos_ram
            .map_or((0, 0), |(ipa, _, size)| (ipa, size));
        Launch {
            sealed: alloc::vec![None; plan.vms.len()],
            dts: alloc::vec![None; plan.vms.len()],
            plan: Arc::new(plan),
            client: Client::new(),
            staging: Staging {
                next: base + size,
                floor: base,
                free: Vec::new(),
            },
            instances: Vec::new(),
            waiting: Vec::new(),
            booted: false,
        }
    }

    /// The plan.
    pub fn plan(&self) -> &LaunchPlan {
        &self.plan
    }

    /// The VMs launched so far, in launch order.
    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// The running instance(s) of `name`.
    pub fn instances_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Instance> + 'a {
        self.instances.iter().filter(move |i| i.name == name)
    }

    /// The sealed image named `name`, or sealed from the template VM `name`.
    pub fn sealed(&self, name: &str) -> Option<&SealedImage> {
        self.plan.vms.iter().zip(&self.sealed).find_map(|(v, s)| {
            s.as_ref()
                .filter(|s| s.name == name || v.config.image_name == name)
        })
    }

    /// Boot VMs waiting for a template to seal (plan indices).
    pub fn waiting(&self) -> &[usize] {
        &self.waiting
    }

    /// Launch every `launch = "boot"` VM in plan order. A VM whose golden
    /// images are not sealed yet waits for [`Launch::poll`] / [`Launch::seal`].
    /// Only the first call launches; later calls return no events.
    pub fn boot<P: Platform>(&mut self, rm: &mut Rm<P>) -> Vec<LaunchEvent> {
        let mut ev = Vec::new();
        // The RM tells the launcher of status changes (a template reporting OS RUN).
        rm.observe_events();
        if core::mem::replace(&mut self.booted, true) {
            // Boot VMs are launched once; more instances come from `launch_vm`.
            return ev;
        }
        for i in 0..self.plan.vms.len() {
            if self.plan.vms[i].config.launch != LaunchMode::Boot {
                continue;
            }
            if self.templates_sealed(i) {
                ev.push(event(self.launch_index(rm, i)));
            } else {
                self.waiting.push(i);
            }
        }
        ev
    }

    /// Launch one instance of the plan's VM `name` now (on request). A VM
    /// with a dynamic VMID may be launched any number of times.
    pub fn launch_vm<P: Platform>(
        &mut self,
        rm: &mut Rm<P>,
        name: &str,
    ) -> Result<Vmid, LaunchError> {
        let Some(i) = self
            .plan
            .vms
            .iter()
            .position(|v| v.config.image_name == name)
        else {
            return Err(LaunchError {
                vm: name.into(),
                step: LaunchStep::AllocVmid,
                failure: LaunchFailure::UnknownVm,
                undo: None,
            });
        };
        self.launch_index(rm, i).map(|(_, vmid)| vmid)
    }

    /// Check the templates' seal triggers (OS status RUN); seal those that
    /// fired and launch the boot VMs that were waiting for them.
    pub fn poll<P: Platform>(&mut self, rm: &mut Rm<P>) -> Vec<LaunchEvent> {
        let mut ev = Vec::new();
        // Only the VMs whose status changed since the last call (the RM's events, recorded
        // since `boot`), not every instance's state.
        let run: Vec<Vmid> = rm
            .take_events()
            .iter()
            .filter(|e| e.os_status == OS_STATUS_RUN)
            .map(|e| e.vmid)
            .collect();
        let fired: Vec<usize> = self
            .instances
            .iter()
            .enumerate()
            .filter(|(_, inst)| {
                !inst.sealed
                    && run.contains(&inst.vmid)
                    && self.plan.vms[inst.plan_index]
                        .config
                        .golden
                        .template
                        .as_ref()
                        .is_some_and(|t| t.seal_trigger == SealTrigger::OsRun)
            })
            .map(|(k, _)| k)
            .collect();
        for k in fired {
            ev.push(self.seal_instance(rm, k));
        }
        ev.extend(self.launch_waiting(rm));
        ev
    }

    /// Seal the template VM `name`'s ranges now (its owner's request; any
    /// trigger), then launch the boot VMs that were waiting for the image.
    pub fn seal<P: Platform>(&mut self, rm: &mut Rm<P>, name: &str) -> Vec<LaunchEvent> {
        let k = self.instances.iter().position(|inst| {
            inst.name == name
                && !inst.sealed
                && self.plan.vms[inst.plan_index]
                    .config
                    .golden
                    .template
                    .is_some()
        });
        let mut ev = alloc::vec![match k {
            Some(k) => self.seal_instance(rm, k),
            None => LaunchEvent::Failed(LaunchError {
                vm: name.into(),
                step: LaunchStep::Seal(String::new()),
                failure: LaunchFailure::NotSealable,
                undo: None,
            }),
        }];
        ev.extend(self.launch_waiting(rm));
        ev
    }

    /// Tear down an instance the launcher started: VM_STOP (forced), VM_RESET,
    /// VM_DEALLOC_VMID (the RM returns its gmem, bindings, mappings and
    /// copies), then MEM_RECLAIM of its image parcel; the staging pages are
    /// reused. A sealed template's image stays (clones may map it).
    pub fn stop<P: Platform>(&mut self, rm: &mut Rm<P>, vmid: Vmid) -> Result<(), LaunchError> {
        let Some(k) = self.instances.iter().position(|i| i.vmid == vmid) else {
            return Err(LaunchError {
                vm: alloc::format!("VM {vmid:#x}"),
                step: LaunchStep::Start,
                failure: LaunchFailure::UnknownVm,
                undo: None,
            });
        };
        let inst = self.instances[k].clone();
        let err = |step: LaunchStep, e: RmError| LaunchError {
            vm: inst.name.clone(),
            step,
            failure: LaunchFailure::Rm(e),
            undo: None,
        };
        if matches!(rm.vm_state(vmid), Some(VmState::Running | VmState::Paused)) {
            let r = Request::VmStop(VmStopReq::new(vmid, 1, 0));
            self.client
                .call(rm, VMID_HLOS, &r)
                .map_err(|e| err(LaunchStep::Stop, e))?;
        }
        let done = Done {
            vmid: Some(vmid),
            image: Some((
                inst.image_handle,
                Area {
                    ipa: inst.image_staging,
                    pages: inst.image_pages,
                },
            )),
            ..Done::default()
        };
        self.undo(rm, &done).map_err(|(s, e)| err(s, e))?;
        self.instances.remove(k);
        Ok(())
    }

    fn launch_waiting<P: Platform>(&mut self, rm: &mut Rm<P>) -> Vec<LaunchEvent> {
        let mut ev = Vec::new();
        let waiting = core::mem::take(&mut self.waiting);
        for i in waiting {
            if self.templates_sealed(i) {
                ev.push(event(self.launch_index(rm, i)));
            } else {
                self.waiting.push(i);
            }
        }
        ev
    }

    fn templates_sealed(&self, i: usize) -> bool {
        self.plan.vms[i]
            .golden
            .iter()
            .all(|m| self.sealed.get(m.template).is_some_and(Option::is_some))
    }

    fn seal_instance<P: Platform>(&mut self, rm: &mut Rm<P>, k: usize) -> LaunchEvent {
        let inst = self.instances[k].clone();
        let pv = &self.plan.vms[inst.plan_index];
        let Some(t) = pv.config.golden.template.clone() else {
            return LaunchEvent::Failed(LaunchError {
                vm: inst.name,
                step: LaunchStep::Seal(String::new()),
                failure: LaunchFailure::NotSealable,
                undo: None,
            });
        };
        let fail = |failure, undo| {
            LaunchEvent::Failed(LaunchError {
                vm: inst.name.clone(),
                step: LaunchStep::Seal(t.image_name.clone()),
                failure,
                undo,
            })
        };
        let ranges: Vec<(u64, u64)> = t.seal_ranges.iter().map(|r| (r.base, r.size)).collect();
        // The image exists even if mapping it back failed: report, the image stays (clones
        // may still use it).
        let (id, digest, off) =
            match apply::seal_template(rm, VMID_HLOS, inst.vmid, &ranges, inst.gmem) {
                Ok(s) => s,
                Err((e, _)) => return fail(LaunchFailure::Rm(e), None),
            };
        self.instances[k].sealed = true;
        self.instances[k]
            .golden
            .extend(ranges.iter().map(|r| (id, r.0)));
        let img = SealedImage {
            name: t.image_name.clone(),
            id,
            digest,
            size: off,
            template: inst.vmid,
        };
        self.sealed[inst.plan_index] = Some(img.clone());
        LaunchEvent::Sealed(img)
    }

    fn launch_index<P: Platform>(
        &mut self,
        rm: &mut Rm<P>,
        i: usize,
    ) -> Result<(String, Vmid), LaunchError> {
        // The plan is shared, not copied, for the launch's borrow of this VM's config.
        let plan = self.plan.clone();
        let pv = &plan.vms[i];
        let mut done = Done::default();
        match self.steps(rm, i, pv, &mut done) {
            Ok(()) => {
                let vmid = done.vmid.unwrap_or(0);
                self.instances.push(Instance {
                    plan_index: i,
                    name: pv.config.image_name.clone(),
                    vmid,
                    gmem: done.gmem.unwrap_or(0),
                    binding: done.binding.unwrap_or(0),
                    image_handle: done.image.map_or(0, |x| x.0),
                    image_staging: done.image.map_or(0, |x| x.1.ipa),
                    image_pages: done.image.map_or(0, |x| x.1.pages),
                    golden: done.golden,
                    sealed: false,
                });
                Ok((pv.config.image_name.clone(), vmid))
            }
            Err((step, failure)) => {
                let undo = self.undo(rm, &done).err();
                Err(LaunchError {
                    vm: pv.config.image_name.clone(),
                    step,
                    failure,
                    undo,
                })
            }
        }
    }

    fn call<P: Platform>(
        &mut self,
        rm: &mut Rm<P>,
        req: Request<'_>,
        step: &LaunchStep,
    ) -> Result<Vec<u8>, (LaunchStep, LaunchFailure)> {
        self.client
            .call(rm, VMID_HLOS, &req)
            .map_err(|e| (step.clone(), LaunchFailure::Rm(e)))
    }

    fn steps<P: Platform>(
        &mut self,
        rm: &mut Rm<P>,
        i: usize,
        pv: &PlannedVm,
        done: &mut Done,
    ) -> Result<(), (LaunchStep, LaunchFailure)> {
        let pv_dt = self.dts[i].clone();
        let c = &pv.config;
        let rm_err = |s: LaunchStep| move |e: RmError| (s.clone(), LaunchFailure::Rm(e));
        // 1. VMID.
        let s = LaunchStep::AllocVmid;
        let want = match c.vmid {
            VmidRequest::Fixed(n) => n,
            VmidRequest::Dynamic => 0,
        };
        let r = self.call(rm, Request::VmAllocVmid(VmidReq::new(want)), &s)?;
        let vmid = if want == 0 {
            client::reply_u32(&r).map_err(rm_err(s))? as Vmid
        } else {
            want
        };
        done.vmid = Some(vmid);
        // 2–4. gmem pool and private RAM, protection, golden mappings (the part the RM
        // also applies itself when a VM's DT carries its config: `apply`).
        let mut maps = Vec::new();
        for m in &pv.golden {
            let s = LaunchStep::GoldenMap(m.golden_name.clone());
            let img = self
                .sealed
                .get(m.template)
                .cloned()
                .flatten()
                .ok_or((s, LaunchFailure::NotSealed))?;
            maps.push((
                m.golden_name.clone(),
                MapParams::from_config(img.id, vmid, m, None),
            ));
        }
        let mut prep = apply::Prepared::default();
        let r = apply::prepare(rm, VMID_HLOS, vmid, c, &maps, &mut prep);
        done.gmem = prep.gmem;
        done.binding = prep.binding;
        done.golden = prep.golden.iter().map(|g| (g.0, g.1)).collect();
        r?;
        // 5. Image parcel with the VM's DT, then init and start. The DT depends on the config
        // alone: built once per planned VM, kept for its later instances.
        let s = LaunchStep::ImageParcel;
        let dt = match &pv_dt {
            Some(dt) => dt.clone(),
            None => {
                let ram = c.private_ram();
                let dt: Arc<[u8]> = vm_dt(&c.image_name, c.vcpus.count, ram.base, ram.size).into();
                self.dts[i] = Some(dt.clone());
                dt
            }
        };
        let pages = 1 + (dt.len() as u64).div_ceil(PAGE_SIZE);
        // Where the VM will see the parcel: next to its RAM or a golden mapping, in a 1 GiB
        // region whose stage-2 table exists already (else the RM picks, as before).
        if let Some(ipa) = image_ipa(pv, pages * PAGE_SIZE, rm.platform().vm_ipa_limit(vmid)) {
            let r = VmSetAddressLayoutReq {
                vmid: vmid.into(),
                reserved: 0.into(),
                range_id: LAYOUT_IMAGE.into(),
                base: ipa.into(),
                size: (pages * PAGE_SIZE).into(),
            };
            self.call(rm, Request::VmSetAddressLayout(r), &s)?;
        }
        let at = self
            .staging
            .take(pages)
            .ok_or((s.clone(), LaunchFailure::NoStaging))?;
        if !write_hlos(rm, at.ipa, &dt) {
            zero_hlos(rm, at);
            self.staging.free.push(at);
            return Err((s, LaunchFailure::Rm(RmError::MemInvalid)));
        }
        let acl = [AclEntry::new(vmid, rights::RWX)];
        let sgl = [SglEntry::new(at.ipa, at.pages * PAGE_SIZE)];
        let lend = MemCreate::normal(&acl, &sgl);
        let r = match self.call(rm, Request::MemLend(lend), &s) {
            Ok(r) => r,
            Err(e) => {
                let _ = zero_hlos(rm, at);
                self.staging.free.push(at);
                return Err(e);
            }
        };
        let handle = client::reply_u32(&r).map_err(rm_err(s))?;
        done.image = Some((handle, at));
        let s = LaunchStep::ConfigImage;
        let cfg = VmConfigImageReq {
            vmid: vmid.into(),
            auth_mech: 0.into(),
            mem_handle: handle.into(),
            image_offset: 0.into(),
            image_size: PAGE_SIZE.into(),
            dtb_offset: PAGE_SIZE.into(),
            dtb_size: (dt.len() as u64).into(),
        };
        self.call(rm, Request::VmConfigImage(cfg), &s)?;
        self.call(rm, Request::VmInit(VmInitReq::new(vmid)), &LaunchStep::Init)?;
        self.call(rm, Request::VmStart(VmidReq::new(vmid)), &LaunchStep::Start)?;
        Ok(())
    }

    /// Undo a partial launch: reset the VM if it left LOAD, deallocate it
    /// (the RM returns its gmem, bindings and mappings), reclaim the image
    /// parcel and give the staging pages back.
    fn undo<P: Platform>(
        &mut self,
        rm: &mut Rm<P>,
        done: &Done,
    ) -> Result<(), (LaunchStep, RmError)> {
        if let Some(vmid) = done.vmid {
            let state = rm.vm_state(vmid);
            if matches!(
                state,
                Some(VmState::Ready | VmState::InitFailed | VmState::Exited)
            ) {
                let r = Request::VmReset(VmidReq::new(vmid));
                let _ = self.client.call(rm, VMID_HLOS, &r);
            }
            let r = Request::VmDeallocVmid(VmidReq::new(vmid));
            self.client
                .call(rm, VMID_HLOS, &r)
                .map_err(|e| (LaunchStep::Dealloc, e))?;
        }
        if let Some((handle, at)) = done.image {
            let r = Request::MemReclaim(MemReleaseReq::new(handle, 0));
            self.client
                .call(rm, VMID_HLOS, &r)
                .map_err(|e| (LaunchStep::Reclaim, e))?;
            zero_hlos(rm, at);
            self.staging.free.push(at);
        }
        Ok(())
    }
}

/// What a launch has done so far (for the undo).
#[derive(Default)]
struct Done {
    vmid: Option<Vmid>,
    gmem: Option<u32>,
    binding: Option<u32>,
    golden: Vec<(u32, u64)>,
    image: Option<(u32, Area)>,
}

fn event(r: Result<(String, Vmid), LaunchError>) -> LaunchEvent {
    match r {
        Ok((name, vmid)) => LaunchEvent::Launched { name, vmid },
        Err(e) => LaunchEvent::Failed(e),
    }
}

/// Where a VM planned as `pv` sees its image parcel of `len` bytes: the first place right
/// after or right before its RAM window or one of its golden mappings that overlaps none of
/// them, ends at or below `limit` and lies in the same 1 GiB region as the range it touches, so
/// its stage-2 entries go into a level-2 table the VM has already (not one more level-2 table
/// for a region of its own). `None` if there is no such place (the RM then picks, from
/// `RmConfig::ipa_alloc_base` upwards).
fn image_ipa(pv: &PlannedVm, len: u64, limit: u64) -> Option<u64> {
    const GIB: u64 = 1 << 30;
    let m = &pv.config.memory;
    let ram = (m.base_address, m.base_address.checked_add(m.size_max)?);
    let taken = || core::iter::once(ram).chain(pv.golden.iter().map(|g| (g.ipa, g.ipa + g.size)));
    let free = |s: u64, e: u64| e <= limit && taken().all(|(ts, te)| e <= ts || s >= te);
    taken().find_map(|(ts, te)| {
        let above = te
            .checked_add(len)
            .filter(|&e| te % GIB != 0 && (te - 1) / GIB == (e - 1) / GIB && free(te, e))
            .map(|_| te);
        let below = ts
            .checked_sub(len)
            .filter(|&s| ts % GIB != 0 && s / GIB == ts / GIB && free(s, ts));
        above.or(below)
    })
}

/// Write the DT `data` into the second staging page at `base` (HLOS
/// memory, through HLOS's stage 2).
fn write_hlos<P: Platform>(rm: &mut Rm<P>, base: u64, data: &[u8]) -> bool {
    let mut done = 0usize;
    while done < data.len() {
        let a = base + PAGE_SIZE + done as u64;
        let Some(l) = rm.platform().query(VMID_HLOS, a) else {
            return false;
        };
        let n = ((l.ipa + l.size - a) as usize).min(data.len() - done);
        let pa = l.pa + (a - l.ipa);
        if !rm.platform_mut().write(pa, &data[done..done + n]) {
            return false;
        }
        done += n;
    }
    true
}

/// Zero the staging pages of `area` (they are HLOS's again).
fn zero_hlos<P: Platform>(rm: &mut Rm<P>, area: Area) -> bool {
    (0..area.pages).all(|k| {
        let a = area.ipa + k * PAGE_SIZE;
        match rm.platform().query(VMID_HLOS, a) {
            Some(l) => rm.platform_mut().zero(l.pa + (a - l.ipa), PAGE_SIZE),
            None => false,
        }
    })
}
