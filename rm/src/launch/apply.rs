//! A VM's config applied to the RM: the steps of a launch that only the RM can do (the VM's
//! IPA size, a gmem pool and the private RAM bound to it, protection, golden mappings with
//! their quota, fault action and digest, a template's seal, and the VM's name, URI and GUID for
//! VM_GET_ID / VM_LOOKUP_*). One implementation for both places that launch
//! from configs:
//!
//! * the host launcher ([`super::Launch`]) calls [`prepare`] and [`seal_template`] for each
//!   VM of a validated [`LaunchPlan`](crate::config::LaunchPlan);
//! * the RM itself, when a VMM launches a VM through RM RPC with a VM-config DT in its image
//!   parcel (as a Gunyah VMM does, and as HLOS does on the QEMU board): at VM_INIT the DT's
//!   `/gunyah-vm-config` (or `/qcom,vm-config`) node is parsed
//!   ([`crate::config::vm_config_in_dt`]) and applied with [`prepare`] ([`Rm::init_from_config`]); when a template reports OS
//!   status RUN (VM_SET_STATUS) its `seal-ranges` are sealed with [`seal_template`]
//!   ([`Rm::seal_config_template`]); images sealed that way are found by their `image-name`
//!   when a clone's config names them in `golden-name`, and are released once their template
//!   is deallocated and no VM maps them ([`Rm::release_config_images`]): the VMM never
//!   handles their ids. VM_RESET releases what VM_INIT applied
//!   ([`Rm::release_config_at_reset`]: the pool and the protection; the mappings, bindings
//!   and copies go with the VM's memory), so a VM_INIT after it starts from nothing.
//!
//! The RM path checks one config at a time: the rules over a set (`validate_set`: unique
//! names and URIs, partition size, ...) are the launcher's; the RM checks what it can see
//! (a fixed `vmid` must be the VM's, `is-direct` is refused, a `golden-name` must name an
//! image sealed from a config template, its `offset`/`size` must fit it, and what the RM's
//! own operations check). All or nothing: on a failure what was done is undone and VM_INIT
//! answers the failing step's RM error code (a digest that differs: VALIDATE_FAILED; an
//! image not sealed yet: HANDLE_INVALID; a config that does not parse or that the RM cannot
//! apply: ARGUMENT_INVALID), the VM going to INIT_FAILED.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use gunyah_rm_abi::RmError;

use super::{LaunchFailure, LaunchStep, OS_STATUS_RUN};
use crate::config::{GoldenMode, SealTrigger, VmConfig, VmidRequest};
use crate::gmem::BindParams;
use crate::golden::MapParams;
use crate::platform::{Platform, Rights, Vmid};
use crate::service::Rm;
use crate::vm::VmIdentity;

/// What [`prepare`] has done so far (for the caller's undo).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prepared {
    /// The VM's gmem pool.
    pub gmem: Option<u32>,
    /// The binding handle of its private RAM.
    pub binding: Option<u32>,
    /// The VM's IPA size in bits before the config's `ipa-bits` changed it (`None`: unchanged).
    pub ipa_bits: Option<u8>,
    /// Whether the VM was made protected.
    pub protected: bool,
    /// Golden mappings made: (golden id, IPA, size).
    pub golden: Vec<(u32, u64, u64)>,
}

/// Steps 2–4 of a launch, for VM `vmid` managed by `owner`: the VM's IPA size (`ipa-bits`,
/// default the platform's; [`Rm::vm_set_ipa_bits`]), GMEM_CREATE of `gmem.size`
/// charged to the VM, GMEM_BIND of its private RAM `[base-address, +size-min)`
/// (DEMAND_PAGED when `gmem/demand-paging`), for a protected VM the digests it accepts (those
/// of `maps`), then each of `maps` (the config's golden mappings resolved to an image,
/// `vmid`/`gmem` filled in here: copies are paid by the VM's pool). The RM's own operations,
/// called as `owner`, with their checks. `done` records what was done.
pub fn prepare<P: Platform>(
    rm: &mut Rm<P>,
    owner: Vmid,
    vmid: Vmid,
    c: &VmConfig,
    maps: &[(String, MapParams)],
    done: &mut Prepared,
) -> Result<(), (LaunchStep, LaunchFailure)> {
    let rm_err = |s: LaunchStep| move |e: RmError| (s.clone(), LaunchFailure::Rm(e));
    if c.memory.is_direct {
        return Err((LaunchStep::GmemBind, LaunchFailure::DirectUnsupported));
    }
    // First, while the VM's space is empty: its IPA size (a smaller one needs fewer root
    // table pages), so every step below checks its ranges against it.
    let bits = match c.ipa_bits {
        Some(b) => b,
        None => rm.platform().ipa_limit().trailing_zeros() as u8,
    };
    let old = rm
        .vm_set_ipa_bits(owner, vmid, bits)
        .map_err(rm_err(LaunchStep::IpaBits))?;
    if old != bits {
        done.ipa_bits = Some(old);
    }
    let gmem = rm
        .gmem_create(owner, c.gmem.size, 0, vmid)
        .map_err(rm_err(LaunchStep::GmemCreate))?;
    done.gmem = Some(gmem);
    let ram = c.private_ram();
    let bind = BindParams {
        gmem,
        vmid,
        rights: Rights::RWX,
        demand: c.gmem.demand_paging,
        offset: 0,
        ipa: ram.base,
        size: ram.size,
    };
    done.binding = Some(
        rm.gmem_bind(owner, bind)
            .map_err(rm_err(LaunchStep::GmemBind))?,
    );
    // A protected VM: the RM refuses any image whose digest the config does not name.
    if c.protected {
        let digests = maps.iter().filter_map(|(_, m)| m.digest).collect();
        rm.set_vm_protected(vmid, digests)
            .map_err(rm_err(LaunchStep::Protect))?;
        done.protected = true;
    }
    for (name, m) in maps {
        let p = MapParams {
            vmid,
            gmem: m.cow.then_some(gmem),
            ..*m
        };
        rm.golden_map(owner, p)
            .map_err(rm_err(LaunchStep::GoldenMap(name.clone())))?;
        done.golden.push((p.golden, p.ipa, p.size));
    }
    // Last, once nothing can fail: the VM's name, URI and GUID (VM_GET_ID, VM_LOOKUP_*),
    // cleared with the rest of its record by its reset.
    rm.set_vm_identity(
        vmid,
        VmIdentity {
            name: c.image_name.clone(),
            uri: c.vm_uri.clone().unwrap_or_default(),
            guid: c.vm_guid,
        },
    );
    Ok(())
}

/// A sealed template image: (golden id, SHA-256 digest, size in bytes).
pub type Sealed = (u32, [u8; 32], u64);

/// Seal `ranges` of template `vmid` into a golden image owned by `owner`, then map it back
/// where it was sealed from, copy-on-write into the template's own pool `gmem`, so the
/// template keeps running. On a failure after the seal, the image exists (its id is in the
/// error): the template lost those ranges, clones may still use the image.
pub fn seal_template<P: Platform>(
    rm: &mut Rm<P>,
    owner: Vmid,
    vmid: Vmid,
    ranges: &[(u64, u64)],
    gmem: u32,
) -> Result<Sealed, (RmError, Option<Sealed>)> {
    let (id, digest) = rm
        .golden_seal_vm(owner, vmid, ranges)
        .map_err(|e| (e, None))?;
    let size = ranges.iter().map(|r| r.1).sum();
    let sealed = (id, digest, size);
    let mut at = 0;
    for &(ipa, size) in ranges {
        let p = MapParams::cow(id, vmid, at, ipa, size, gmem);
        rm.golden_map(owner, p).map_err(|e| (e, Some(sealed)))?;
        at += size;
    }
    Ok(sealed)
}

/// A template the RM seals itself when its trigger fires.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Template {
    image_name: String,
    ranges: Vec<(u64, u64)>,
    gmem: u32,
    trigger: SealTrigger,
}

/// An image the RM sealed from a config template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ConfigImage {
    id: u32,
    digest: [u8; 32],
    template: Vmid,
}

/// What the RM keeps about VMs it launched from their config (the RM path).
#[derive(Clone, Debug, Default)]
pub struct ConfigRecords {
    /// What VM_INIT applied from each VM's config (released at VM_RESET), by VMID.
    applied: BTreeMap<Vmid, Prepared>,
    /// Templates waiting for their seal trigger, by VMID.
    templates: BTreeMap<Vmid, Template>,
    /// Images sealed from config templates, by `image-name`.
    images: BTreeMap<String, ConfigImage>,
}

impl<P: Platform> Rm<P> {
    /// VM_INIT of a VM whose DT holds a config: apply it ([`prepare`]) as the VM's owner,
    /// and remember a template's seal ranges. All or nothing.
    pub(crate) fn init_from_config(&mut self, vmid: Vmid, c: &VmConfig) -> Result<(), RmError> {
        let owner = self.vms.get(vmid).ok_or(RmError::VmidInvalid)?.owner;
        if matches!(c.vmid, VmidRequest::Fixed(n) if n != vmid) {
            return Err(RmError::ArgumentInvalid);
        }
        let mut maps = Vec::new();
        for m in &c.golden.mappings {
            let img = self
                .config_image(&m.golden_name)
                .ok_or(RmError::HandleInvalid)?;
            let image_size = self.goldens.get(&img.id).map_or(0, |g| g.size);
            if m.offset >= image_size {
                return Err(RmError::ArgumentInvalid);
            }
            let (cow, cow_quota) = match m.mode {
                GoldenMode::CopyOnWrite { quota_pages } => (true, Some(u64::from(quota_pages))),
                GoldenMode::ReadOnly => (false, None),
            };
            maps.push((
                m.golden_name.clone(),
                MapParams {
                    golden: img.id,
                    vmid,
                    offset: m.offset,
                    ipa: m.ipa,
                    size: m.size.unwrap_or(image_size - m.offset),
                    cow,
                    exec: m.executable,
                    gmem: None,
                    cow_quota,
                    fault_action: m.fault_action,
                    digest: m.digest,
                },
            ));
        }
        let mut done = Prepared::default();
        if let Err((_, failure)) = prepare(self, owner, vmid, c, &maps, &mut done) {
            self.undo_prepared(vmid, &done);
            return Err(match failure {
                LaunchFailure::Rm(e) => e,
                _ => RmError::ArgumentInvalid,
            });
        }
        self.vm_configs.applied.insert(vmid, done.clone());
        match (&c.golden.template, done.gmem) {
            (Some(t), Some(gmem)) => {
                let tpl = Template {
                    image_name: t.image_name.clone(),
                    ranges: t.seal_ranges.iter().map(|r| (r.base, r.size)).collect(),
                    gmem,
                    trigger: t.seal_trigger,
                };
                self.vm_configs.templates.insert(vmid, tpl);
            }
            _ => {
                self.vm_configs.templates.remove(&vmid);
            }
        }
        Ok(())
    }

    /// Undo a partial [`prepare`] of `vmid`: its golden mappings, its binding, its pool,
    /// its protection.
    fn undo_prepared(&mut self, vmid: Vmid, done: &Prepared) {
        for &(_, ipa, size) in done.golden.iter().rev() {
            let _ = self.unmap_golden_range(vmid, ipa, size);
        }
        if let Some(&(v, ipa)) = done.binding.and_then(|h| self.bindings.get(&h)) {
            let _ = self.drop_bound(v, ipa);
        }
        self.release_pool_and_protection(vmid, done);
        // Its space is empty again: back to the size it had before the config. (VM_RESET
        // needs no such step: it gives the VM fresh tables of the platform's size.)
        if let Some(bits) = done.ipa_bits {
            let _ = self.plat.set_ipa_bits(vmid, bits);
        }
    }

    /// The pool [`prepare`] created for `vmid` (if it is still that VM's) and the
    /// protection it set. Its mappings, bindings and pages must be gone already.
    fn release_pool_and_protection(&mut self, vmid: Vmid, done: &Prepared) {
        if let Some(id) = done.gmem {
            let ours = self
                .spaces
                .get_mut(&vmid)
                .and_then(|space| space.pools.remove(&id))
                .is_some();
            if ours {
                self.pool_owner.remove(&id);
            }
        }
        if done.protected {
            self.protected.remove(&vmid);
        }
    }

    /// VM_RESET of `vmid`, after its memory was torn down (every mapping, binding and page
    /// of it is gone): release what VM_INIT applied from its config, its pool and its
    /// protection, and forget its template record, so that a VM_INIT after the reset
    /// starts from nothing (it would otherwise add a second pool, and a protection the new
    /// config may not ask for would stay). Nothing here can fail: all or nothing.
    pub(crate) fn release_config_at_reset(&mut self, vmid: Vmid) {
        self.vm_configs.templates.remove(&vmid);
        if let Some(done) = self.vm_configs.applied.remove(&vmid) {
            self.release_pool_and_protection(vmid, &done);
        }
    }

    /// The live image sealed from a config template under `name`.
    fn config_image(&self, name: &str) -> Option<ConfigImage> {
        let img = *self.vm_configs.images.get(name)?;
        let g = self.goldens.get(&img.id)?;
        (g.digest == img.digest).then_some(img)
    }

    /// The golden id and digest of the image sealed from a config template under `name`.
    pub fn config_image_by_name(&self, name: &str) -> Option<(u32, [u8; 32])> {
        self.config_image(name).map(|i| (i.id, i.digest))
    }

    /// VM_SET_STATUS from `vmid` with OS status `os`: a config template whose trigger is OS
    /// RUN is sealed now (once; a name already taken by a live image is not sealed again).
    pub(crate) fn seal_config_template(&mut self, vmid: Vmid, os: u8) {
        if os != OS_STATUS_RUN {
            return;
        }
        let fires = self
            .vm_configs
            .templates
            .get(&vmid)
            .is_some_and(|t| t.trigger == SealTrigger::OsRun);
        let Some(owner) = self.vms.get(vmid).map(|v| v.owner) else {
            return;
        };
        if !fires {
            return;
        }
        let Some(t) = self.vm_configs.templates.remove(&vmid) else {
            return;
        };
        if self.config_image(&t.image_name).is_some() {
            return;
        }
        let sealed = match seal_template(self, owner, vmid, &t.ranges, t.gmem) {
            Ok(s) | Err((_, Some(s))) => s,
            Err((_, None)) => return,
        };
        self.vm_configs.images.insert(
            t.image_name,
            ConfigImage {
                id: sealed.0,
                digest: sealed.1,
                template: vmid,
            },
        );
    }

    /// After a VM_DEALLOC_VMID: forget `vmid`'s template record, and release the images
    /// sealed from config templates whose template is gone and that no VM maps.
    pub(crate) fn release_config_images(&mut self, vmid: Vmid) {
        self.vm_configs.templates.remove(&vmid);
        self.vm_configs.applied.remove(&vmid);
        let gone: Vec<String> = self
            .vm_configs
            .images
            .iter()
            .filter(|(_, i)| !self.vms.exists(i.template))
            .map(|(n, _)| n.clone())
            .collect();
        for name in gone {
            let Some(img) = self.config_image(&name) else {
                self.vm_configs.images.remove(&name);
                continue;
            };
            let Some(owner) = self.goldens.get(&img.id).map(|g| g.owner) else {
                continue;
            };
            if self.golden_release(owner, img.id).is_ok() {
                self.vm_configs.images.remove(&name);
            }
        }
    }
}
