//! The `clone_launch` bench's config-driven clone (`config_clone`): a template with 512 MiB of
//! RAM launched from its `.dts` config and sealed, and the clone config launched from it with
//! `Launch::launch_vm`. Shared with `rm/examples/clone_profile.rs` (callgrind counts).
#![allow(dead_code)]

use std::path::PathBuf;

use gunyah_rm::config::host::load_set;
use gunyah_rm::launch::{Launch, LaunchEvent};
use gunyah_rm::sim::{sim_rm_for, SimPlatform};
use gunyah_rm::Rm;

/// The platform with an `ipa_bits`-bit IPA space for every VM.
fn platform(ipa_bits: u8) -> String {
    format!(
        r#"/dts-v1/;
/ {{ #address-cells = <2>; #size-cells = <2>;
    gunyah-rm-platform {{
        hlos-memory = <0x0 0x40000000 0x0 0x40000000>;
        partition = <0x0 0x80000000 0x0 0x80000000>;
        ipa-bits = <{ipa_bits}>;
    }};
}};"#
    )
}

/// The template's RAM and golden image, 512 MiB in the bench (the `@SIZE@` below).
const TEMPLATE: &str = r#"/dts-v1/;
/ { #address-cells = <2>; #size-cells = <2>;
    gunyah-vm-config {
        image-name = "template-512m";
        memory { base-address = <0x0 0x80000000>; size-min = <0x0 @SIZE@>; };
        vcpus { affinity-map = <0>; };
        vdevices { rm-rpc { vdevice-type = "rm-rpc"; }; };
        golden {
            role = "template";
            image-name = "golden-512m";
            seal-ranges = <0x0 0x80000000 0x0 @SIZE@>;
            seal-trigger = "owner-request";
        };
    };
};"#;

const CLONE: &str = r#"/dts-v1/;
/ { #address-cells = <2>; #size-cells = <2>;
    gunyah-vm-config {
        image-name = "clone-512m";
        launch = "on-request";
        memory { base-address = <0x0 0xa0000000>; size-min = <0x0 0x00200000>; };
        vcpus { affinity-map = <0>; };
        vdevices { rm-rpc { vdevice-type = "rm-rpc"; }; };
        gmem { size = <0x0 0x01200000>; demand-paging; };
        golden {
            role = "clone";
            golden-name = "golden-512m";
            ipa = <0x0 0x80000000>;
            quota-pages = <4096>;
        };
    };
};"#;

/// The template launched from its config and sealed; clones launch from theirs.
pub struct ConfigClone {
    pub rm: Rm<SimPlatform>,
    pub l: Launch,
}

impl ConfigClone {
    /// The bench's clone: 512 MiB, the platform's default 40-bit IPA space.
    pub fn new() -> ConfigClone {
        ConfigClone::with(40, 512 << 20)
    }

    /// A golden image of `golden_bytes` (a multiple of 2 MiB, at most 512 MiB: the clone's RAM
    /// follows at 0xa000_0000) and an `ipa_bits`-bit IPA space for every VM.
    pub fn with(ipa_bits: u8, golden_bytes: u64) -> ConfigClone {
        let dir = std::env::temp_dir().join(format!(
            "gunyah-rm-bench-{}-{ipa_bits}-{golden_bytes}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut paths: Vec<PathBuf> = Vec::new();
        let template = TEMPLATE.replace("@SIZE@", &format!("{golden_bytes:#x}"));
        for (n, t) in [
            ("platform", platform(ipa_bits)),
            ("template", template),
            ("clone", CLONE.to_string()),
        ] {
            let p = dir.join(format!("{n}.dts"));
            std::fs::write(&p, t).unwrap();
            paths.push(p);
        }
        let plan = load_set(&paths).unwrap_or_else(|e| panic!("bench configs: {e:?}"));
        let _ = std::fs::remove_dir_all(&dir);
        let mut rm = sim_rm_for(&plan.platform).unwrap();
        let mut l = Launch::new(&rm, plan);
        let ev = l.boot(&mut rm);
        assert!(matches!(ev[..], [LaunchEvent::Launched { .. }]), "{ev:?}");
        let ev = l.seal(&mut rm, "template-512m");
        assert!(matches!(ev[..], [LaunchEvent::Sealed(_)]), "{ev:?}");
        ConfigClone { rm, l }
    }

    pub fn launch(&mut self) -> u16 {
        self.l.launch_vm(&mut self.rm, "clone-512m").unwrap()
    }

    pub fn teardown(&mut self, v: u16) {
        self.l.stop(&mut self.rm, v).unwrap();
        let _ = self.rm.drain_outgoing();
    }
}
