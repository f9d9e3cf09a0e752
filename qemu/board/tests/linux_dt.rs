//! HLOS's DT as the board hands it over (QEMU's own virt DTB, ITS removed, plus the board's
//! `/hypervisor` from `src/vm_dt.rs`, added by `src/fdt_edit.rs`), read the way Linux's
//! Gunyah drivers read it at probe. A small flattened-DT reader below stands in for the
//! kernel's OF calls those drivers make, with the kernel's rules:
//!
//! * Upstream-style driver, `drivers/virt/gunyah/rsc_mgr.c`, `gunyah_rm_get_of_info()`
//!   (RobertCNelson/ti-linux-kernel at b78d94afb644ef88e905339d6382ae93685b6be9, the
//!   android-mainline Gunyah series): `of_find_node_by_path("/hypervisor")`,
//!   `of_get_compatible_child(.., "gunyah-resource-manager")`,
//!   `of_property_read_u64_index(rm, "reg", 0)` = tx cap and `.., 1)` = rx cap,
//!   `of_irq_get(rm, 0)` = tx interrupt and `of_irq_get(rm, 1)` = rx interrupt (the
//!   interrupt parent found by `of_irq_find_parent`: `interrupt-parent` up the tree to a
//!   node with `#interrupt-cells`, here QEMU's root → the GICv3, 3 cells, GIC SPI = 0).
//!   The binding, `Documentation/devicetree/bindings/firmware/gunyah-hypervisor.yaml`,
//!   says the same: `#address-cells` 2, `#size-cells` 0, reg = <TX cap>, <RX cap>,
//!   interrupts = TX, RX.
//! * Qualcomm's driver (`drivers/virt/gunyah/gh_rm_core.c` of the msm kernels,
//!   `gh_rm_drv_probe()` and `gh_vm_probe()`; `gh_msgq.c`, `gh_msgq_probe()`): a platform
//!   device matched by "qcom,resource-manager-1-0", so its parent `/hypervisor` must be a
//!   "simple-bus" under the root; "qcom,is-full-duplex" → reg/interrupts index 0 is tx,
//!   1 is rx; "qcom,free-irq-start" is required (-ENXIO without it); the
//!   "qcom,gunyah-vm-id-1.0" node's "qcom,vmid" is required, and a "qcom,owner-vmid" makes
//!   the driver take itself for a secondary VM (it then asks the RM for its resources).
//!
//! `/memory` is HLOS's 1 GiB, not the machine's 2 GiB (Gunyah's `run-qemu.sh` dumps the
//! DTB with `-m 1G`; Linux takes its RAM from there, `early_init_dt_scan_memory`).
//!
//! Gunyah's own RM writes HLOS's node this way in `vm_dt_create_hlos()`
//! (quic/gunyah-resource-manager `src/vm_dt/vm_dt.c`).

extern crate alloc;

use std::collections::BTreeMap;

#[path = "../../boot_contract.rs"]
mod boot_contract;
#[path = "../src/fdt_edit.rs"]
#[allow(dead_code)]
mod fdt_edit;
#[path = "../../qemu_binary.rs"]
mod qemu_binary;
#[path = "../src/vm_dt.rs"]
#[allow(dead_code)]
mod vm_dt;

/// A DT node: its name, properties and children.
#[derive(Debug, Default)]
struct Node {
    name: String,
    props: BTreeMap<String, Vec<u8>>,
    children: Vec<Node>,
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// The tree of a flattened DT (structure and strings blocks from the header).
fn unflatten(dtb: &[u8]) -> Node {
    assert_eq!(be32(dtb, 0), 0xD00D_FEED, "DT magic");
    let (off_struct, off_strings) = (be32(dtb, 8) as usize, be32(dtb, 12) as usize);
    let st = &dtb[off_struct..];
    let cstr = |b: &[u8]| -> String {
        String::from_utf8(b[..b.iter().position(|c| *c == 0).unwrap()].to_vec()).unwrap()
    };
    let mut stack: Vec<Node> = Vec::new();
    let mut at = 0;
    loop {
        let tok = be32(st, at);
        at += 4;
        match tok {
            1 => {
                let name = cstr(&st[at..]);
                at = (at + name.len() + 1).next_multiple_of(4);
                stack.push(Node {
                    name,
                    ..Node::default()
                });
            }
            2 => {
                let done = stack.pop().unwrap();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => return done,
                }
            }
            3 => {
                let (len, nameoff) = (be32(st, at) as usize, be32(st, at + 4) as usize);
                let value = st[at + 8..at + 8 + len].to_vec();
                let name = cstr(&dtb[off_strings + nameoff..]);
                stack.last_mut().unwrap().props.insert(name, value);
                at = (at + 8 + len).next_multiple_of(4);
            }
            4 => {}
            t => panic!("structure token {t} before the root's end"),
        }
    }
}

impl Node {
    fn prop(&self, name: &str) -> Option<&[u8]> {
        self.props.get(name).map(Vec::as_slice)
    }
    fn u32(&self, name: &str) -> Option<u32> {
        let v = self.prop(name)?;
        (v.len() == 4).then(|| be32(v, 0))
    }
    /// `of_device_is_compatible`: the string list holds `compat`.
    fn is_compatible(&self, compat: &str) -> bool {
        self.prop("compatible").is_some_and(|v| {
            v.split(|b| *b == 0)
                .any(|s| s.eq_ignore_ascii_case(compat.as_bytes()))
        })
    }
    /// `of_find_node_by_path`: children by full name, or by name without unit address.
    fn by_path(&self, path: &str) -> Option<&Node> {
        path.split('/')
            .filter(|c| !c.is_empty())
            .try_fold(self, |n, comp| {
                n.children.iter().find(|c| {
                    c.name == comp
                        || (!comp.contains('@') && c.name.split('@').next() == Some(comp))
                })
            })
    }
    /// `of_get_compatible_child`.
    fn compatible_child(&self, compat: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.is_compatible(compat))
    }
    /// `of_property_read_u64_index`: the `index`th 64-bit big-endian value.
    fn u64_index(&self, name: &str, index: usize) -> Option<u64> {
        let v = self.prop(name)?;
        let b = v.get(index * 8..index * 8 + 8)?;
        Some(u64::from_be_bytes(b.try_into().unwrap()))
    }
    fn find_phandle(&self, phandle: u32) -> Option<&Node> {
        if self.u32("phandle") == Some(phandle) {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find_phandle(phandle))
    }
}

/// `of_irq_find_parent` from the node at `path` (root first): its own or an ancestor's
/// `interrupt-parent`, followed until a node with `#interrupt-cells`.
fn irq_parent<'a>(root: &'a Node, path: &[&'a Node]) -> Option<&'a Node> {
    let mut chain: Vec<&Node> = path.to_vec();
    loop {
        let child = *chain.last()?;
        let p = match child.u32("interrupt-parent") {
            Some(ph) => {
                let p = root.find_phandle(ph)?;
                chain = vec![p];
                p
            }
            None => {
                chain.pop();
                *chain.last()?
            }
        };
        if p.prop("#interrupt-cells").is_some() {
            return Some(p);
        }
    }
}

/// `of_irq_get(node, index)` for a GICv3 parent ("arm,gic-v3", 3 cells): the INTID
/// (`gic_irq_domain_translate`: cell 0 = 0 is an SPI, INTID = cell 1 + 32; 1 a PPI, +16).
fn irq_get(root: &Node, path: &[&Node], index: usize) -> Option<u32> {
    let node = *path.last()?;
    let parent = irq_parent(root, path)?;
    assert!(
        parent.is_compatible("arm,gic-v3"),
        "interrupt parent is QEMU's GICv3"
    );
    let cells = parent.u32("#interrupt-cells")? as usize;
    let spec = node
        .prop("interrupts")?
        .get(index * cells * 4..(index + 1) * cells * 4)?;
    let (kind, number) = (be32(spec, 0), be32(spec, 4));
    match kind {
        0 => Some(number + 32),
        1 => Some(number + 16),
        _ => None,
    }
}

/// HLOS's DT as the board makes it: QEMU's virt DTB for 8 CPUs (`boot_contract`), plus
/// the board's `/hypervisor` for HLOS (`board.rs`: queue depth 8, 240-byte messages).
fn hlos_dt(test: &str) -> Vec<u8> {
    // One directory per test: the tests run in parallel.
    let dir = std::env::temp_dir().join(format!("gunyah-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("virt.dtb");
    boot_contract::machine_dtb(&qemu_binary::qemu_system_aarch64(), &path, 8)
        .expect("QEMU's virt DTB");
    let qemu_dt = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    vm_dt::hlos_dt(&qemu_dt, HLOS_RAM, 8, 240).expect("HLOS's DT")
}

/// HLOS's RAM (`layout.rs`).
const HLOS_RAM: (u64, u64) = (0x4000_0000, 0x4000_0000);

#[test]
fn linux_takes_hlos_ram_not_the_machines_from_memory() {
    let dt = hlos_dt("linux-memory-dt");
    let root = unflatten(&dt);
    // early_init_dt_scan_memory: nodes with device_type "memory", `reg` in the root's
    // #address-cells/#size-cells.
    let (ac, sc) = (root.u32("#address-cells"), root.u32("#size-cells"));
    assert_eq!((ac, sc), (Some(2), Some(2)));
    let banks: Vec<(u64, u64)> = root
        .children
        .iter()
        .filter(|n| n.prop("device_type") == Some(b"memory\0"))
        .flat_map(|n| {
            n.prop("reg")
                .unwrap()
                .chunks(16)
                .map(|c| {
                    let v = |i: usize| u64::from_be_bytes(c[i..i + 8].try_into().unwrap());
                    (v(0), v(8))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        banks,
        vec![HLOS_RAM],
        "HLOS's 1 GiB at 0x40000000, not the machine's 2 GiB"
    );
}

#[test]
fn the_upstream_linux_gunyah_rm_driver_finds_hlos_queues_and_interrupts() {
    let dt = hlos_dt("upstream-linux-dt");
    let root = unflatten(&dt);
    // gunyah_rm_get_of_info()
    let hyp = root.by_path("/hypervisor").expect("/hypervisor");
    let rm = hyp
        .compatible_child("gunyah-resource-manager")
        .expect("a child of /hypervisor compatible with \"gunyah-resource-manager\"");
    assert_eq!(
        rm.u64_index("reg", 0),
        Some(vm_dt::HLOS_TX_CAP),
        "reg[0] = tx cap"
    );
    assert_eq!(
        rm.u64_index("reg", 1),
        Some(vm_dt::HLOS_RX_CAP),
        "reg[1] = rx cap"
    );
    let path = [&root, hyp, rm];
    assert_eq!(
        irq_get(&root, &path, 0),
        Some(vm_dt::HLOS_VIRQS.0),
        "interrupt 0 = tx"
    );
    assert_eq!(
        irq_get(&root, &path, 1),
        Some(vm_dt::HLOS_VIRQS.1),
        "interrupt 1 = rx"
    );
    // The binding: 64-bit capability IDs, no sizes.
    assert_eq!(hyp.u32("#address-cells"), Some(2));
    assert_eq!(hyp.u32("#size-cells"), Some(0));
}

#[test]
fn qualcomms_linux_gunyah_rm_driver_probes_hlos_as_the_primary_vm() {
    let dt = hlos_dt("qualcomm-linux-dt");
    let root = unflatten(&dt);
    // of_platform_populate: root's children that are buses get their children as devices.
    let hyp = root
        .children
        .iter()
        .find(|c| c.name == "hypervisor")
        .expect("/hypervisor");
    assert!(
        hyp.is_compatible("simple-bus"),
        "/hypervisor is a simple-bus, so the RM node becomes a platform device"
    );
    // gh_rm_drv_of_match
    let rm = hyp
        .compatible_child("qcom,resource-manager-1-0")
        .expect("a child compatible with \"qcom,resource-manager-1-0\"");
    // gh_msgq_probe: full duplex, tx at index 0, rx at index 1.
    assert!(
        rm.prop("qcom,is-full-duplex").is_some(),
        "qcom,is-full-duplex"
    );
    assert_eq!(rm.u64_index("reg", 0), Some(vm_dt::HLOS_TX_CAP));
    assert_eq!(rm.u64_index("reg", 1), Some(vm_dt::HLOS_RX_CAP));
    let path = [&root, hyp, rm];
    assert_eq!(irq_get(&root, &path, 0), Some(vm_dt::HLOS_VIRQS.0));
    assert_eq!(irq_get(&root, &path, 1), Some(vm_dt::HLOS_VIRQS.1));
    // gh_rm_drv_probe: the vIRQ base.
    assert_eq!(
        rm.u32("qcom,free-irq-start"),
        Some(vm_dt::FREE_IRQ_START),
        "qcom,free-irq-start (the probe fails with -ENXIO without it)"
    );
    // gh_vm_probe: the VM-id node under the RM node's parent.
    let vm = hyp
        .compatible_child("qcom,gunyah-vm-id-1.0")
        .expect("a \"qcom,gunyah-vm-id-1.0\" node");
    assert_eq!(vm.u32("qcom,vmid"), Some(3), "qcom,vmid = 3 (HLOS)");
    assert!(
        vm.prop("qcom,owner-vmid").is_none(),
        "no qcom,owner-vmid: with one the driver takes HLOS for a secondary VM"
    );
}
