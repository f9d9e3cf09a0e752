//! The VM table and the RM's VM state machine (§5.1, §5.2).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::platform::Vmid;
use crate::vmid_map::VmidMap;

/// VMID of the hypervisor.
pub const VMID_HYP: Vmid = 0;
/// VMID of the primary VM (HLOS).
pub const VMID_HLOS: Vmid = 3;
/// VMID of the RM itself.
pub const VMID_RM: Vmid = 0xFF;
/// First dynamic VMID.
pub const DYNAMIC_VMID_FIRST: Vmid = 0x80;
/// Number of dynamic VMIDs (0x80..=0xBE).
pub const DYNAMIC_VMID_COUNT: Vmid = 63;
/// Static VMIDs requested by number must be below this.
pub const STATIC_VMID_LIMIT: Vmid = 64;
/// The lowest static VMID VM_ALLOC_VMID hands out (0 is "dynamic", 1 and 2
/// are not secondary VMs, 3 is HLOS).
pub const STATIC_VMID_FIRST: Vmid = 4;
/// The highest static VMID VM_ALLOC_VMID hands out. Gunyah's RM on QEMU
/// hands out 4..=31 (§12.1); the host keeps 4..=63 so that configs may name
/// any secondary VMID below 64.
pub const STATIC_VMID_LAST: Vmid = STATIC_VMID_LIMIT - 1;

/// `vm_state_t` (§5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum VmState {
    /// 0: no state.
    None = 0,
    /// 1: image configured.
    Init = 1,
    /// 2: initialised, ready to start.
    Ready = 2,
    /// 3: running.
    Running = 3,
    /// 4: paused.
    Paused = 4,
    /// 5: allocated, waiting for an image.
    Load = 5,
    /// 6: waiting for authentication.
    Auth = 6,
    /// 8: configuration/initialisation failed.
    InitFailed = 8,
    /// 9: exited.
    Exited = 9,
    /// 10: reset in progress.
    Resetting = 10,
    /// 11: reset complete.
    Reset = 11,
}

/// Per-VM policy flags from its configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmFlags {
    /// The VM may not be shut down (no PAUSED / EXITED).
    pub no_shutdown: bool,
    /// The VM may not be reset.
    pub no_reset: bool,
    /// A crash is fatal to the system (no EXITED).
    pub crash_fatal: bool,
}

/// Whether `from → to` is allowed (`vm_mgnt_state_change_valid`).
pub fn transition_valid(from: VmState, to: VmState, f: VmFlags) -> bool {
    use VmState::*;
    match to {
        Load => from == None,
        Auth => matches!(from, Load | Reset),
        Init => matches!(from, Load | Auth | Reset),
        Ready => from == Init,
        Running => matches!(from, Ready | Paused),
        Paused => from == Running && !f.no_shutdown,
        InitFailed => matches!(from, Init | Ready | Load | Auth | Reset),
        Exited => matches!(from, Running | Paused) && !f.no_shutdown && !f.crash_fatal,
        Resetting => matches!(from, Exited | Ready | InitFailed) && !f.no_reset,
        Reset => from == Resetting,
        None => from == Reset,
    }
}

/// Image authentication mechanism (VM_CONFIG_IMAGE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMech {
    /// 0: none.
    None,
    /// 1: platform (QCOM PIL ELF).
    Platform,
    /// 2: Android pVM.
    Android,
}

/// The image configuration given by VM_CONFIG_IMAGE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageConfig {
    /// Authentication mechanism.
    pub auth: AuthMech,
    /// The image parcel.
    pub mem_handle: u32,
    /// Image offset in the parcel.
    pub image_offset: u64,
    /// Image size.
    pub image_size: u64,
    /// DT offset in the parcel.
    pub dtb_offset: u64,
    /// DT size.
    pub dtb_size: u64,
}

/// The firmware given by VM_SET_FIRMWARE_MEM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirmwareConfig {
    /// The firmware parcel.
    pub mem_handle: u32,
    /// Offset in the parcel.
    pub offset: u64,
    /// Size.
    pub size: u64,
}

/// One register of the boot context (VM_SET_BOOT_CONTEXT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BootReg {
    /// Register set: X 0, PC 1, SP 2.
    pub set: u8,
    /// Index within the set.
    pub index: u8,
}

/// A resource the RM created for a VM (VM_GET_HYP_RESOURCES entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypResource {
    /// Resource type (2 MSG_QUEUE_SEND, 3 MSG_QUEUE_RECV, 4 VIRTUAL_CPU, ...).
    pub rtype: u8,
    /// Partner VM.
    pub partner: Vmid,
    /// Resource handle.
    pub handle: u32,
    /// Label.
    pub label: u32,
    /// Capability ID.
    pub cap_id: u64,
    /// vIRQ handle.
    pub virq_handle: u32,
    /// vIRQ number.
    pub virq: u32,
    /// Base (memory resources).
    pub base: u64,
    /// Size (memory resources).
    pub size: u64,
}

/// Who a VM is, as VM_GET_ID and VM_LOOKUP_NAME / URI / GUID answer (spec §9): the
/// `image-name`, `vm-uri` and `vm-guid` of its config, recorded when the RM applies that config
/// ([`crate::launch::apply::prepare`]: at VM_INIT of a VM whose DT carries its config, or when
/// the host launcher launches it), and cleared by its reset, as Gunyah's RM takes them from
/// the config it parses (`handle_ids`, `src/vm_config/vm_config.c`) and clears them in
/// `vm_reset_handle_cleanup`. HLOS is named `"HLOS"` (`vm_mgnt_init`). Empty: not known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmIdentity {
    /// `image-name` (at most 79 bytes); empty when unknown.
    pub name: String,
    /// `vm-uri` (at most 79 bytes); empty when the config has none.
    pub uri: String,
    /// `vm-guid` as 16 bytes in the order written.
    pub guid: Option<[u8; 16]>,
}

/// How a VM exited (for VM_EXITED).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitInfo {
    /// exit_type.
    pub exit_type: u16,
    /// Reason word 0.
    pub reason: u32,
}

/// Progress of an asynchronous reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetStage {
    /// Tear down virtual devices.
    DestroyVdevices,
    /// Release every parcel the VM accepted.
    ReleaseMemparcels,
    /// Release IRQs.
    ReleaseIrqs,
    /// Destroy the VM's objects and address space.
    DestroyVm,
    /// Clean up records.
    CleanupVm,
}

/// One VM's record. `repr(C)`, the fields the fault path and the COW_BROKEN drain read (owner,
/// state, flags, link) first: with the niche `Option` uses (the first vector's capacity) they
/// share the record's first cache line, so a lookup in [`VmTable`]'s flat slots touches one
/// line, not three.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Vm {
    /// VM_SET_DEMAND_PAGING ranges (GPA base, size).
    pub demand_paging: Vec<(u64, u64)>,
    /// The VM's RM-RPC link (its message-queue pair) while it exists: a
    /// number unique over the RM's lifetime, so a transport can tell this
    /// link from an earlier one of the same VMID (see [`links_in`]).
    pub link: Option<LinkId>,
    /// Its VMID.
    pub vmid: Vmid,
    /// The VM that allocated it (HLOS for secondaries; itself for HLOS).
    pub owner: Vmid,
    /// vm_status.
    pub state: VmState,
    /// os_status.
    pub os_status: u8,
    /// app_status.
    pub app_status: u16,
    /// Policy flags.
    pub flags: VmFlags,
    /// Number of vCPUs to create at VM_INIT.
    pub vcpus: u32,
    /// VM_CONFIG_IMAGE data.
    pub image: Option<ImageConfig>,
    /// VM_SET_FIRMWARE_MEM data.
    pub firmware: Option<FirmwareConfig>,
    /// VM_SET_ADDRESS_LAYOUT ranges (base, size), indexed by range id (`LAYOUT_IMAGE`,
    /// `LAYOUT_FIRMWARE`: the only two the RM accepts), held inline: no heap per VM.
    pub layout: [Option<(u64, u64)>; 2],
    /// VM_SET_BOOT_CONTEXT registers.
    pub boot_context: BTreeMap<BootReg, u64>,
    /// Resources created at VM_INIT.
    pub resources: Vec<HypResource>,
    /// Exit information once EXITED.
    pub exit: Option<ExitInfo>,
    /// Pending reset stage.
    pub reset: Option<ResetStage>,
    /// Its name, URI and GUID (VM_GET_ID, VM_LOOKUP_*).
    pub identity: VmIdentity,
}

/// Names one RM-RPC link (a VM's message-queue pair) for as long as it exists;
/// never reused, so a connection bound to an old link cannot act for a later
/// VM given the same VMID.
pub type LinkId = u64;

/// Whether a VM in `state` has its RM message queues.
///
/// Gunyah's RM creates a secondary VM's RM-RPC msgqueue pair while it builds
/// the VM from its config at VM_INIT (`svm_init` → `vm_config_create_vdevices`
/// → `handle_rm_rpc`, `src/vm_creation/second_vm.c`, `src/vm_config/vm_config.c`),
/// and destroys it with the VM's other vdevices in the first stage of a reset
/// (DESTROY_VDEVICES). So the link exists from READY (VM_INIT done) through
/// RUNNING, PAUSED and EXITED, and not in LOAD, AUTH, INIT, INIT_FAILED,
/// RESETTING or RESET. HLOS's link exists from boot.
pub fn links_in(state: VmState) -> bool {
    matches!(
        state,
        VmState::Ready | VmState::Running | VmState::Paused | VmState::Exited
    )
}

impl Vm {
    /// A new VM record in `state`.
    pub fn new(vmid: Vmid, owner: Vmid, state: VmState) -> Vm {
        Vm {
            vmid,
            owner,
            state,
            os_status: 0,
            app_status: 0,
            flags: VmFlags::default(),
            image: None,
            firmware: None,
            demand_paging: Vec::new(),
            layout: [None; 2],
            boot_context: BTreeMap::new(),
            vcpus: 1,
            resources: Vec::new(),
            exit: None,
            reset: None,
            link: None,
            identity: VmIdentity::default(),
        }
    }

    /// Whether the VM can currently be sent RPC (it has an RPC link).
    pub fn has_rpc_link(&self) -> bool {
        matches!(self.state, VmState::Running | VmState::Paused)
    }
}

/// All VMs by VMID, in flat slots ([`VmidMap`]): the fault path and the COW_BROKEN drain look a
/// VM up by index, not through tree nodes that miss the cache when many VMs fault in turn.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmTable {
    /// The records.
    pub vms: VmidMap<Vm>,
}

impl VmTable {
    /// Look up a VM.
    pub fn get(&self, vmid: Vmid) -> Option<&Vm> {
        self.vms.get(&vmid)
    }
    /// Look up a VM mutably.
    pub fn get_mut(&mut self, vmid: Vmid) -> Option<&mut Vm> {
        self.vms.get_mut(&vmid)
    }
    /// Whether `vmid` exists.
    pub fn exists(&self, vmid: Vmid) -> bool {
        self.vms.contains_key(&vmid)
    }
    /// The lowest free dynamic VMID.
    pub fn free_dynamic(&self) -> Option<Vmid> {
        (DYNAMIC_VMID_FIRST..DYNAMIC_VMID_FIRST + DYNAMIC_VMID_COUNT).find(|v| !self.exists(*v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use VmState::*;

    /// In [`VmTable`]'s slots a record's hot fields (what a fault and a COW_BROKEN drain read)
    /// all sit in the slot's first cache line, whatever VMID the record has.
    #[test]
    fn a_records_hot_fields_share_its_first_line() {
        let mut t = VmTable::default();
        for v in [3u16, 4, 0x80, 0x81, 0xBF, 0xFE] {
            t.vms.insert(v, Vm::new(v, 3, VmState::Init));
        }
        for vm in t.vms.values() {
            let at = |p: *const u8| p as usize;
            let line = at((vm as *const Vm).cast()) / 64;
            for (name, a, len) in [
                ("owner", at((&vm.owner as *const Vmid).cast()), 2),
                ("vmid", at((&vm.vmid as *const Vmid).cast()), 2),
                ("state", at((&vm.state as *const VmState).cast()), 1),
                (
                    "flags",
                    at((&vm.flags as *const VmFlags).cast()),
                    size_of::<VmFlags>(),
                ),
                ("link", at((&vm.link as *const Option<LinkId>).cast()), 16),
            ] {
                assert_eq!(
                    a / 64,
                    line,
                    "{name} of VM {} not in its first line",
                    vm.vmid
                );
                assert_eq!(
                    (a + len - 1) / 64,
                    line,
                    "{name} of VM {} straddles",
                    vm.vmid
                );
            }
        }
    }

    #[test]
    fn state_table_matches_spec() {
        let f = VmFlags::default();
        // Rows of §5.2, typed from the spec.
        assert!(transition_valid(None, Load, f));
        assert!(transition_valid(Reset, Auth, f));
        assert!(!transition_valid(Init, Auth, f));
        assert!(transition_valid(Auth, Init, f));
        assert!(!transition_valid(Ready, Init, f));
        assert!(transition_valid(Paused, Running, f));
        assert!(!transition_valid(Init, Running, f));
        assert!(transition_valid(Reset, InitFailed, f));
        assert!(!transition_valid(Running, InitFailed, f));
        assert!(transition_valid(Paused, Exited, f));
        assert!(!transition_valid(Ready, Exited, f));
        assert!(transition_valid(InitFailed, Resetting, f));
        assert!(!transition_valid(Running, Resetting, f));
        assert!(transition_valid(Resetting, Reset, f));
        assert!(transition_valid(Reset, None, f));
        let nr = VmFlags {
            no_reset: true,
            ..f
        };
        assert!(!transition_valid(Exited, Resetting, nr));
        let ns = VmFlags {
            no_shutdown: true,
            ..f
        };
        assert!(!transition_valid(Running, Exited, ns));
        assert!(!transition_valid(Running, Paused, ns));
        let cf = VmFlags {
            crash_fatal: true,
            ..f
        };
        assert!(!transition_valid(Running, Exited, cf));
    }
}
