//! Typed descriptions produced by the loader. These are what the RM core consumes to launch VMs;
//! every field has already been checked (alignment, ranges, references) when one is handed out.

use alloc::string::String;
use alloc::vec::Vec;

/// Stage-2 granule: every address and size in a config is a multiple of this.
pub const PAGE_SIZE: u64 = 4096;
/// `memory.base-address` must be 2 MiB aligned (Gunyah rounds it up; this loader refuses instead).
pub const BLOCK_2M: u64 = 2 << 20;

/// One parsed config blob.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
#[cfg_attr(feature = "std", serde(tag = "kind", rename_all = "kebab-case"))]
// A handful of configs are parsed once at boot: boxing the VM variant buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Config {
    /// A `/gunyah-vm-config` or `/qcom,vm-config` blob.
    Vm(VmConfig),
    /// A `/gunyah-rm-platform` blob.
    Platform(PlatformConfig),
}

/// A physical or intermediate-physical range `[base, base + size)`; `size > 0` and no wrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
pub struct MemRange {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
}

impl MemRange {
    /// One past the last byte (never wraps for a range the loader produced).
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }
    /// Do the two ranges share a byte?
    pub fn overlaps(&self, o: &MemRange) -> bool {
        self.base < o.end() && o.base < self.end()
    }
    /// Is `o` entirely inside `self`?
    pub fn contains(&self, o: &MemRange) -> bool {
        self.base <= o.base && o.end() <= self.end()
    }
}

/// The board the RM runs on: the HLOS VM and the memory the RM may hand out.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
pub struct PlatformConfig {
    /// VMID of the primary VM (HLOS); Gunyah uses 3.
    pub hlos_vmid: u16,
    /// HLOS RAM, identity-mapped (IPA = PA); HLOS lends and shares from it.
    pub hlos_memory: Vec<MemRange>,
    /// The partition: physical ranges the RM allocates gmem pages from.
    pub partition: Vec<MemRange>,
    /// Width of every VM's IPA space in bits; all VM ranges end at or below `1 << ipa_bits`.
    pub ipa_bits: u8,
}

impl Default for PlatformConfig {
    /// The default simulated platform (same values as `vm-configs/platform.dts`).
    fn default() -> Self {
        Self {
            hlos_vmid: 3,
            hlos_memory: alloc::vec![MemRange {
                base: 0x4000_0000,
                size: 0x4000_0000
            }],
            partition: alloc::vec![MemRange {
                base: 0x8000_0000,
                size: 0x4000_0000
            }],
            ipa_bits: 40,
        }
    }
}

/// Which VMID the VM gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
#[cfg_attr(feature = "std", serde(rename_all = "kebab-case"))]
pub enum VmidRequest {
    /// Fixed VMID from the config (`vmid`), 1..=63 and not the HLOS VMID (trusted VMs).
    Fixed(u16),
    /// Allocated by the RM from its dynamic range at launch (Gunyah: 0x80..=0xBF).
    Dynamic,
}

/// When the RM launches the VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
#[cfg_attr(feature = "std", serde(rename_all = "kebab-case"))]
pub enum LaunchMode {
    /// At RM boot, as Gunyah does for static VMs (`launch = "boot"`, the default).
    Boot,
    /// Only when asked (`launch = "on-request"`).
    OnRequest,
}

impl LaunchMode {
    /// The DT spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LaunchMode::Boot => "boot",
            LaunchMode::OnRequest => "on-request",
        }
    }
}

/// Gunyah's `vm-attrs` strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
#[cfg_attr(feature = "std", serde(rename_all = "kebab-case"))]
#[allow(missing_docs)]
pub enum VmAttr {
    RasErrorHandler,
    AmuCountingDisabled,
    CrashFatal,
    ContextDump,
    NoShutdown,
    NoReset,
    GuestRamDump,
    InsecureConsole,
}

impl VmAttr {
    /// The DT spelling.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("", |(k, _)| k)
    }

    /// Every attribute with its DT spelling.
    pub const ALL: [(&'static str, VmAttr); 8] = [
        ("ras-error-handler", VmAttr::RasErrorHandler),
        ("amu-counting-disabled", VmAttr::AmuCountingDisabled),
        ("crash-fatal", VmAttr::CrashFatal),
        ("context-dump", VmAttr::ContextDump),
        ("no-shutdown", VmAttr::NoShutdown),
        ("no-reset", VmAttr::NoReset),
        ("guest-ram-dump", VmAttr::GuestRamDump),
        ("insecure-console", VmAttr::InsecureConsole),
    ];
}

/// A secondary VM to launch.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
pub struct VmConfig {
    /// Path of the config node (`/gunyah-vm-config` or `/qcom,vm-config`).
    pub node: String,
    /// `image-name`: the VM's name (required, at most 79 bytes).
    pub image_name: String,
    /// `vendor`.
    pub vendor: Option<String>,
    /// `os-type` (only `"linux"`).
    pub os_type: Option<String>,
    /// `vm-uri` (at most 79 bytes); unique within a set.
    pub vm_uri: Option<String>,
    /// `vm-guid` as 16 bytes in the order written.
    #[cfg_attr(feature = "std", serde(serialize_with = "hex_json::opt"))]
    pub vm_guid: Option<[u8; 16]>,
    /// `vm-attrs`, deduplicated, in the order written; `crash-fatal` implies `no-shutdown` and `no-reset`.
    pub vm_attrs: Vec<VmAttr>,
    /// `qcom,sensitive`.
    pub sensitive: bool,
    /// Extension `vmid`: fixed or dynamic.
    pub vmid: VmidRequest,
    /// Extension `protected`: golden mappings are refused unless they name the golden's digest;
    /// a protected VM is never a golden template.
    pub protected: bool,
    /// Extension `launch`.
    pub launch: LaunchMode,
    /// Extension `ipa-bits`: the width of the VM's IPA space, `32..=` the platform's
    /// `ipa-bits` (the default). Every range the config maps ends within it.
    pub ipa_bits: Option<u8>,
    /// `memory` node.
    pub memory: MemoryLayout,
    /// `vcpus` node.
    pub vcpus: Vcpus,
    /// `vdevices` children; exactly one is `rm-rpc`.
    pub vdevices: Vec<Vdevice>,
    /// Extension `gmem` node (defaults when absent: size = `memory.size-min`, eager).
    pub gmem: Gmem,
    /// Extension `golden` role: template, clone mappings, both or neither.
    pub golden: GoldenRole,
}

impl VmConfig {
    /// The private RAM range in IPA space: `[base-address, base-address + size-min)`, backed by gmem.
    pub fn private_ram(&self) -> MemRange {
        MemRange {
            base: self.memory.base_address,
            size: self.memory.size_min,
        }
    }
}

/// Gunyah's `memory` node.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
pub struct MemoryLayout {
    /// `base-address`: IPA of private RAM, 2 MiB aligned.
    pub base_address: u64,
    /// `size-min`: bytes of private RAM (gmem-backed), page multiple, > 0.
    pub size_min: u64,
    /// `size-max`: size of the VM's RAM window from `base-address` (default `size-min`).
    pub size_max: u64,
    /// `is-direct`: IPA = PA; the RAM must then lie inside the partition.
    pub is_direct: bool,
    /// `firmware-address`: IPA of firmware, inside the private RAM.
    pub firmware_address: Option<u64>,
    /// `firmware-size-max`.
    pub firmware_size_max: Option<u64>,
}

/// `vcpus { affinity; }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
#[cfg_attr(feature = "std", serde(rename_all = "kebab-case"))]
#[allow(missing_docs)]
pub enum Affinity {
    Static,
    Sticky,
    Pinned,
    Proxy,
}

impl Affinity {
    /// The DT spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Affinity::Static => "static",
            Affinity::Sticky => "sticky",
            Affinity::Pinned => "pinned",
            Affinity::Proxy => "proxy",
        }
    }
}

/// Gunyah's `vcpus` node.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
pub struct Vcpus {
    /// `affinity` (default static).
    pub affinity: Affinity,
    /// `affinity-map`: physical CPU per vCPU (empty for proxy).
    pub affinity_map: Vec<u32>,
    /// Number of vCPUs: `affinity-map` length, or the `cpu@N` nodes under `/cpus` for proxy (else 1).
    pub count: u32,
    /// `sched-priority`: offset from the owner's priority (proxy: 0).
    pub sched_priority: i32,
    /// `sched-timeslice` in microseconds.
    pub sched_timeslice_us: u32,
}

/// A `vdevices` child.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
pub struct Vdevice {
    /// Node name.
    pub name: String,
    /// `vdevice-type` and the type's parsed properties.
    pub kind: VdeviceKind,
    /// `qcom,label`/`label`.
    pub label: Option<u32>,
    /// `generate`: DT path where the RM emits the node.
    pub generate: Option<String>,
}

/// `vdevice-type` values. Only `rm-rpc` is modelled in detail; the others are recognised and
/// carried by name for the RM to handle or refuse.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
#[cfg_attr(feature = "std", serde(rename_all = "kebab-case"))]
pub enum VdeviceKind {
    /// The VM's RM RPC message-queue pair.
    RmRpc {
        /// `console-dev`.
        console_dev: bool,
        /// `message-size` in bytes (default 240).
        message_size: u32,
        /// `queue-depth` (default 8).
        queue_depth: u32,
    },
    /// Any other Gunyah vdevice type (doorbell, message-queue, shm, virtio-mmio, ...).
    Other(String),
}

/// Extension `gmem` node: the page pool that backs private RAM and pays for CoW copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
pub struct Gmem {
    /// Quota in bytes: private RAM plus every CoW quota must fit.
    pub size: u64,
    /// Populate private RAM on first touch instead of at launch.
    pub demand_paging: bool,
}

/// Extension `golden` nodes of one VM.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
pub struct GoldenRole {
    /// This VM is a template: these ranges of its memory are sealed into a golden image.
    pub template: Option<GoldenTemplate>,
    /// Golden images this VM maps (clone role).
    pub mappings: Vec<GoldenMapping>,
}

/// When a template's ranges are sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
#[cfg_attr(feature = "std", serde(rename_all = "kebab-case"))]
pub enum SealTrigger {
    /// When the template reports OS status RUN (VM_SET_STATUS os_status 4): "sealed once booted".
    OsRun,
    /// Only when its owner sends GOLDEN_SEAL.
    OwnerRequest,
}

impl SealTrigger {
    /// The DT spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SealTrigger::OsRun => "os-run",
            SealTrigger::OwnerRequest => "owner-request",
        }
    }
}

/// A template's golden image.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
pub struct GoldenTemplate {
    /// Path of the `golden` node.
    pub node: String,
    /// Name clones use in `golden-name`; unique in a set.
    pub image_name: String,
    /// IPA ranges of the template's private RAM, concatenated in this order into the image.
    pub seal_ranges: Vec<MemRange>,
    /// When to seal.
    pub seal_trigger: SealTrigger,
}

impl GoldenTemplate {
    /// Size of the golden image: the sum of the sealed ranges.
    pub fn size(&self) -> u64 {
        self.seal_ranges
            .iter()
            .fold(0, |a, r| a.saturating_add(r.size))
    }
}

/// How a golden mapping treats writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
#[cfg_attr(feature = "std", serde(rename_all = "kebab-case"))]
pub enum GoldenMode {
    /// A write fault copies the page into the VM's gmem, up to `quota_pages` copies (>= 1).
    CopyOnWrite {
        /// Maximum CoW copies for this mapping.
        quota_pages: u32,
    },
    /// Writes are never resolved.
    ReadOnly,
}

/// What happens when a write is not served (read-only mapping, quota exhausted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
#[cfg_attr(feature = "std", serde(rename_all = "kebab-case"))]
pub enum FaultAction {
    /// Inject a synchronous external abort into the vCPU (default).
    InjectAbort,
    /// Stop the VM.
    StopVm,
}

impl FaultAction {
    /// The DT spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultAction::InjectAbort => "inject-abort",
            FaultAction::StopVm => "stop-vm",
        }
    }
}

/// A clone's mapping of a golden image.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
pub struct GoldenMapping {
    /// Path of the `golden` node.
    pub node: String,
    /// `golden-name`: a template's golden `image-name` in the same set.
    pub golden_name: String,
    /// `offset` into the golden image (default 0).
    pub offset: u64,
    /// `size` in bytes; `None` = to the end of the image (resolved in the launch plan).
    pub size: Option<u64>,
    /// `ipa` where the mapping starts.
    pub ipa: u64,
    /// CoW or read-only.
    pub mode: GoldenMode,
    /// `fault-action`.
    pub fault_action: FaultAction,
    /// `executable`: map the golden pages executable (GOLDEN_MAP flag EXEC).
    pub executable: bool,
    /// `digest`: SHA-256 the sealed image must have, else the mapping is refused at launch.
    #[cfg_attr(feature = "std", serde(serialize_with = "hex_json::opt"))]
    pub digest: Option<[u8; 32]>,
}

/// JSON form of byte arrays (GUIDs, digests): lowercase hex strings.
#[cfg(feature = "std")]
pub(crate) mod hex_json {
    /// Serializes `Some(bytes)` as a hex string and `None` as null.
    pub fn opt<S: serde::Serializer, const N: usize>(
        v: &Option<[u8; N]>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }
}
