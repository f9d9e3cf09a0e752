//! The `clone_launch` bench's config-driven clone (`config_clone`): a template with 512 MiB of
//! RAM launched from its `.dts` config and sealed, and the clone config launched from it with
//! `Launch::launch_vm`, on a 40-bit platform (as `vm-configs/platform.dts`). The configs take
//! their `ipa-bits` from the shipped zygote and app clone (`vm-configs/zygote.dts`,
//! `app-clone.dts`), so the bench measures what ships; `config_clone_ipa40` leaves it out (the
//! platform's 40 bits). Shared with `rm/examples/clone_profile.rs` (callgrind counts) and
//! `rm/tests/clone_tables.rs`.
#![allow(dead_code)]

use std::path::PathBuf;

use gunyah_rm::config::host::load_set;
use gunyah_rm::launch::{Launch, LaunchEvent};
use gunyah_rm::sim::{sim_rm_for, SimPlatform};
use gunyah_rm::Rm;

/// The platform: a 2 GiB partition for the 512 MiB template, a 40-bit IPA space as shipped.
const PLATFORM: &str = r#"/dts-v1/;
/ { #address-cells = <2>; #size-cells = <2>;
    gunyah-rm-platform {
        hlos-memory = <0x0 0x40000000 0x0 0x40000000>;
        partition = <0x0 0x80000000 0x0 0x80000000>;
        ipa-bits = <40>;
    };
};"#;

/// The `ipa-bits` of the shipped zygote and app clone configs (`vm-configs/`): (template,
/// clone); `None` where a config leaves it to the platform.
pub fn shipped_ipa_bits() -> (Option<u8>, Option<u8>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../vm-configs");
    let files = ["platform.dts", "zygote.dts", "app-clone.dts"].map(|f| dir.join(f));
    let plan = load_set(&files).unwrap_or_else(|e| panic!("shipped configs: {e:?}"));
    let bits = |name: &str| plan.vm(name).expect(name).config.ipa_bits;
    (bits("zygote"), bits("app-clone-0"))
}

/// The template's RAM and golden image, 512 MiB in the bench (the `@SIZE@` below).
const TEMPLATE: &str = r#"/dts-v1/;
/ { #address-cells = <2>; #size-cells = <2>;
    gunyah-vm-config {
        image-name = "template-512m";
        @IPA@
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
        @IPA@
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
    /// The bench's `config_clone`: 512 MiB, the IPA sizes of the shipped configs.
    pub fn new() -> ConfigClone {
        ConfigClone::with(shipped_ipa_bits(), 512 << 20)
    }

    /// A golden image of `golden_bytes` (a multiple of 2 MiB, at most 512 MiB: the clone's RAM
    /// follows at 0xa000_0000); the template's and the clone's `ipa-bits` (`None`: none, the
    /// platform's 40).
    pub fn with(ipa_bits: (Option<u8>, Option<u8>), golden_bytes: u64) -> ConfigClone {
        let prop = |b: Option<u8>| b.map_or(String::new(), |b| format!("ipa-bits = <{b}>;"));
        let dir = std::env::temp_dir().join(format!(
            "gunyah-rm-bench-{}-{:?}-{golden_bytes}",
            std::process::id(),
            ipa_bits.1
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut paths: Vec<PathBuf> = Vec::new();
        let template = TEMPLATE
            .replace("@SIZE@", &format!("{golden_bytes:#x}"))
            .replace("@IPA@", &prop(ipa_bits.0));
        for (n, t) in [
            ("platform", PLATFORM.to_string()),
            ("template", template),
            ("clone", CLONE.replace("@IPA@", &prop(ipa_bits.1))),
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
