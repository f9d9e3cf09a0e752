//! VM launch configs: device-tree (`/gunyah-vm-config`) parsing into typed VM descriptions, and
//! validation of a whole set of configs into a [`LaunchPlan`].
//!
//! The binding (every node and property) is `vm-configs/README.md`. Flow for the RM core:
//! ```text
//! dtb bytes ──parse──► Config::{Vm, Platform} ──validate_set(&[Config])──► LaunchPlan (launch order)
//! ```
//! Both steps are pure: nothing is launched or allocated, and an error names the node path, the
//! property and the reason. The loader never panics on any input (the blob is structurally
//! checked before the `fdt` crate reads it).

mod dtb_check;
mod error;
#[cfg(feature = "std")]
pub mod host;
mod plan;
mod platform;
mod props;
mod types;
mod vm;

pub use error::{ConfigError, SetError};
pub use plan::{validate_set, LaunchPlan, PlannedVm, ResolvedMapping};
pub use types::*;
pub use vm::{parse_digest, MAX_NAME_LEN};

/// The property names each node accepts; any other is `unknown property`. These are the lists
/// `vm-configs/README.md` documents (a test keeps the two in step).
pub mod schema {
    pub use super::platform::PLATFORM_PROPS;
    pub use super::vm::{
        CLONE_PROPS, GMEM_PROPS, MEMORY_PROPS, RM_RPC_PROPS, TEMPLATE_PROPS, VCPUS_PROPS,
        VDEVICE_TYPES, VM_PROPS,
    };
}

use alloc::string::String;
use props::Node;

/// Root node names the loader recognises.
pub const VM_CONFIG_NODES: [&str; 2] = ["gunyah-vm-config", "qcom,vm-config"];
/// Root node name of a platform description.
pub const PLATFORM_NODE: &str = "gunyah-rm-platform";

/// Open an untrusted device tree blob (a guest's DT, a config) with the `fdt`
/// crate only after the structural check (`dtb_check`) has shown that none of the crate's
/// panicking paths can be reached.
pub fn checked_fdt(dtb: &[u8]) -> Result<fdt::Fdt<'_>, ConfigError> {
    dtb_check::check(dtb)?;
    fdt::Fdt::new(dtb)
        .map_err(|e| ConfigError::node("/", alloc::format!("malformed device tree blob: {e}")))
}

/// The number of `/cpus/cpu@N` nodes of a DT opened with [`checked_fdt`]
/// (0 without `/cpus`: the crate's own `cpus()` panics then).
pub fn cpu_count(fdt: &fdt::Fdt<'_>) -> usize {
    fdt.find_node("/cpus").map_or(0, |c| {
        c.children()
            .filter(|n| n.name.split('@').next() == Some("cpu"))
            .count()
    })
}

/// The VM config in a VM's DT (the one in its image parcel), if the DT has a
/// `/gunyah-vm-config` or `/qcom,vm-config` node: `Ok(None)` without one, or when the blob is
/// not a device tree this loader reads (VM_START refuses such a DT); the config's error when
/// the node is there but the config is not valid.
pub fn vm_config_in_dt(dt: &[u8]) -> Result<Option<VmConfig>, ConfigError> {
    let Ok(fdt) = checked_fdt(dt) else {
        return Ok(None);
    };
    vm_config_in_fdt(dt, &fdt)
}

/// [`vm_config_in_dt`] for a DT `dt` the caller has opened already with [`checked_fdt`]
/// (`fdt`), so its bytes are not checked twice.
pub fn vm_config_in_fdt(dt: &[u8], fdt: &fdt::Fdt<'_>) -> Result<Option<VmConfig>, ConfigError> {
    let has = fdt
        .find_node("/")
        .is_some_and(|r| r.children().any(|n| VM_CONFIG_NODES.contains(&n.name)));
    if !has {
        return Ok(None);
    }
    match parse(dt)? {
        Config::Vm(c) => Ok(Some(c)),
        Config::Platform(_) => Err(ConfigError::node("/", "a platform config, not a VM's")),
    }
}

/// Parses one DTB into a VM or platform description.
pub fn parse(dtb: &[u8]) -> Result<Config, ConfigError> {
    let fdt = checked_fdt(dtb)?;
    let root = fdt
        .find_node("/")
        .ok_or_else(|| ConfigError::node("/", "no root node"))?;
    let root = Node::new(root, String::from("/"))?;
    for cells in ["#address-cells", "#size-cells"] {
        if let Some(v) = root.u32(cells)? {
            if v != 2 {
                return Err(root.err(
                    cells,
                    "addresses and sizes are read as 2 cells; only <2> is allowed",
                ));
            }
        }
    }
    let mut found: Option<Node> = None;
    for c in root.children()? {
        if VM_CONFIG_NODES.contains(&c.node.name) || c.node.name == PLATFORM_NODE {
            if let Some(f) = &found {
                return Err(ConfigError::node(
                    &c.path,
                    alloc::format!("a blob holds one config, but {} is also present", f.path),
                ));
            }
            found = Some(c);
        }
    }
    let Some(cfg) = found else {
        return Err(ConfigError::node(
            "/",
            "no /gunyah-vm-config, /qcom,vm-config or /gunyah-rm-platform node",
        ));
    };
    if cfg.node.name == PLATFORM_NODE {
        platform::parse_platform(&cfg).map(Config::Platform)
    } else {
        vm::parse_vm(&root, &cfg).map(Config::Vm)
    }
}
