//! VM launch configs end to end: every `vm-configs/*.dts` compiles with dtc, parses and validates
//! as one set; every `tests/configs/*.dts` fails with exactly the error on its first line
//! (`/* expect: ... */`); `gunyah-rm check-config` behaves the same through the built binary; and
//! no byte string makes the loader panic.
#![cfg(feature = "std")]

use std::path::{Path, PathBuf};
use std::process::Command;

use gunyah_rm::config::{
    self, Affinity, Config, FaultAction, GoldenMode, LaunchMode, MemRange, SealTrigger,
    VdeviceKind, VmConfig, VmidRequest,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dts_files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dts"))
        .collect();
    v.sort();
    v
}

#[path = "common/dtc.rs"]
mod dtc_tool;
use dtc_tool::dtc as dtc_source;

fn dtc(path: &Path) -> Vec<u8> {
    dtc_source(&std::fs::read_to_string(path).unwrap())
}

fn positive_set() -> (Vec<PathBuf>, Vec<Config>) {
    let files = dts_files("vm-configs");
    let configs = files
        .iter()
        .map(|f| config::parse(&dtc(f)).unwrap_or_else(|e| panic!("{}: {e}", f.display())))
        .collect();
    (files, configs)
}

fn vm<'a>(configs: &'a [Config], name: &str) -> &'a VmConfig {
    configs
        .iter()
        .find_map(|c| match c {
            Config::Vm(v) if v.image_name == name => Some(v),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no VM {name}"))
}

fn expected_error(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let first = text.lines().next().unwrap_or_default();
    first
        .strip_prefix("/* expect: ")
        .and_then(|s| s.strip_suffix(" */"))
        .unwrap_or_else(|| panic!("{}: first line must be /* expect: ... */", path.display()))
        .to_string()
}

#[test]
fn every_positive_config_parses_to_the_values_written_in_it() {
    let (files, configs) = positive_set();
    assert!(
        files.len() >= 6,
        "platform, template, 2 clones, protected, trusted"
    );

    let platform = configs
        .iter()
        .find_map(|c| match c {
            Config::Platform(p) => Some(p),
            _ => None,
        })
        .expect("a platform config");
    assert_eq!(platform.hlos_vmid, 3);
    assert_eq!(
        platform.hlos_memory,
        [MemRange {
            base: 0x4000_0000,
            size: 0x4000_0000
        }]
    );
    assert_eq!(
        platform.partition,
        [MemRange {
            base: 0x8000_0000,
            size: 0x4000_0000
        }]
    );
    assert_eq!(*platform, config::PlatformConfig::default());

    let z = vm(&configs, "zygote");
    assert_eq!(z.node, "/gunyah-vm-config");
    assert_eq!(z.vmid, VmidRequest::Dynamic);
    assert_eq!(z.memory.base_address, 0x8000_0000);
    assert_eq!(z.memory.size_min, 0x1000_0000);
    assert_eq!(z.vcpus.affinity_map, [0, 1]);
    assert_eq!(z.vcpus.sched_priority, -1);
    assert_eq!(z.vcpus.sched_timeslice_us, 2000);
    assert_eq!(
        z.vm_guid,
        Some([
            0x6a, 0x0c, 0x2f, 0x4e, 0x1d, 0x3b, 0x4c, 0x5a, 0x9e, 0x8f, 0x0b, 0x1c, 0x2d, 0x3e,
            0x4f, 0x50
        ])
    );
    let t = z.golden.template.as_ref().expect("zygote is a template");
    assert_eq!(t.image_name, "zygote-golden");
    assert_eq!(
        t.seal_ranges,
        [MemRange {
            base: 0x8000_0000,
            size: 0x0c00_0000
        }]
    );
    assert_eq!(t.seal_trigger, SealTrigger::OsRun);
    assert_eq!(t.size(), 192 << 20);
    assert!(matches!(
        z.vdevices[0].kind,
        VdeviceKind::RmRpc {
            console_dev: true,
            message_size: 240,
            queue_depth: 8
        }
    ));

    let c = vm(&configs, "app-clone-0");
    let m = &c.golden.mappings[0];
    assert_eq!(m.golden_name, "zygote-golden");
    assert_eq!(m.ipa, 0x8000_0000);
    assert_eq!(m.size, Some(0x0c00_0000));
    assert_eq!(m.mode, GoldenMode::CopyOnWrite { quota_pages: 4096 });
    assert_eq!(m.fault_action, FaultAction::InjectAbort);
    assert!(m.executable);
    assert_eq!(c.gmem.size, 0x0500_0000);
    assert!(c.gmem.demand_paging);

    let c1 = vm(&configs, "app-clone-1");
    assert_eq!(c1.launch, LaunchMode::OnRequest);
    assert_eq!(c1.vcpus.affinity, Affinity::Proxy);
    assert_eq!(c1.golden.mappings[0].fault_action, FaultAction::StopVm);
    // No gmem node: size-min 32 MiB + 256 CoW pages.
    assert_eq!(c1.gmem.size, 0x0200_0000 + 256 * 4096);

    let p = vm(&configs, "protected-vm");
    assert!(p.protected);
    let d = p.golden.mappings[0]
        .digest
        .expect("protected mapping names a digest");
    assert_eq!(&d[..4], &[0x46, 0xb2, 0x3b, 0x74]);
    assert_eq!(d[31], 0x13);

    let tv = vm(&configs, "trusted-vm");
    assert_eq!(tv.node, "/qcom,vm-config");
    assert_eq!(tv.vmid, VmidRequest::Fixed(0x2d));
    assert!(tv.sensitive);
    assert_eq!(tv.memory.firmware_address, Some(0x8000_0000));
    assert_eq!(tv.vdevices.len(), 2);
    assert_eq!(
        tv.vdevices[1].kind,
        VdeviceKind::Other("doorbell-source".into())
    );
}

#[test]
fn the_positive_set_validates_into_a_launch_plan_with_templates_first() {
    let (files, configs) = positive_set();
    let plan = config::validate_set(&configs).expect("vm-configs/ is a valid set");
    assert_eq!(plan.vms.len(), files.len() - 1);
    let pos = |n: &str| {
        plan.vms
            .iter()
            .position(|v| v.config.image_name == n)
            .unwrap()
    };
    let zygote = pos("zygote");
    for clone in ["app-clone-0", "app-clone-1", "protected-vm"] {
        let v = &plan.vms[pos(clone)];
        assert!(
            pos(clone) > zygote,
            "{clone} must launch after its template"
        );
        assert_eq!(v.golden.len(), 1);
        assert_eq!(v.golden[0].template, zygote);
        assert_eq!(v.golden[0].golden_size, 0x0c00_0000);
        assert_eq!(
            v.golden[0].ipa_range(),
            MemRange {
                base: 0x8000_0000,
                size: 0x0c00_0000
            }
        );
    }
    let boot: Vec<&str> = plan
        .at_boot()
        .map(|v| v.config.image_name.as_str())
        .collect();
    assert!(!boot.contains(&"app-clone-1") && boot.contains(&"app-clone-0"));
    assert_eq!(boot.len(), plan.vms.len() - 1);
    // app-clone-1 leaves size out: it defaults to the rest of the image.
    assert_eq!(plan.vm("app-clone-1").unwrap().golden[0].size, 0x0c00_0000);
    // Every planned VM points back at its own source file.
    for v in &plan.vms {
        assert_eq!(configs[v.source], Config::Vm(v.config.clone()));
    }
}

#[test]
fn every_negative_config_fails_with_exactly_its_expected_error() {
    let (_, positives) = positive_set();
    let negatives = dts_files("tests/configs");
    assert!(negatives.len() >= 30, "one negative config per error class");
    for f in &negatives {
        let want = expected_error(f);
        let got = match config::parse(&dtc(f)) {
            Err(e) => e.to_string(),
            Ok(c) => {
                let mut set = positives.clone();
                set.push(c);
                match config::validate_set(&set) {
                    Ok(_) => panic!("{}: accepted, expected: {want}", f.display()),
                    Err(e) => {
                        assert_eq!(
                            e.config,
                            set.len() - 1,
                            "{}: error blamed on another config",
                            f.display()
                        );
                        e.to_string()
                    }
                }
            }
        };
        assert_eq!(got, want, "{}", f.display());
    }
}

#[test]
fn error_display_names_node_property_and_reason() {
    let e = config::ConfigError::prop(
        "/gunyah-vm-config/golden",
        "quota-pages",
        "CoW mapping needs a quota of at least 1 page",
    );
    assert_eq!(
        e.to_string(),
        "/gunyah-vm-config/golden: property \"quota-pages\": CoW mapping needs a quota of at least 1 page"
    );
    assert_eq!(
        config::ConfigError::node("/a/b", "unknown node").to_string(),
        "/a/b: unknown node"
    );
}

const MINIMAL_VM: &str = r#"/dts-v1/;
/ {
    #address-cells = <2>; #size-cells = <2>;
    gunyah-vm-config {
        image-name = "NAME";
        EXTRA_PROPS
        memory { base-address = <0x0 0x80000000>; size-min = <0x0 0x200000>; MEMORY_PROPS };
        vcpus { affinity-map = <0>; };
        vdevices { rm-rpc { vdevice-type = "rm-rpc"; }; };
        CHILDREN
    };
};
"#;

fn vm_src(name: &str, props: &str, memory: &str, children: &str) -> Config {
    let src = MINIMAL_VM
        .replace("NAME", name)
        .replace("EXTRA_PROPS", props)
        .replace("MEMORY_PROPS", memory)
        .replace("CHILDREN", children);
    config::parse(&dtc_source(&src)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn template(name: &str, golden: &str, props: &str) -> Config {
    let g = format!(
        r#"golden {{ role = "template"; image-name = "{golden}"; seal-ranges = <0x0 0x80000000 0x0 0x100000>; }};"#
    );
    vm_src(name, props, "", &g)
}

fn clone_of(golden: &str, props: &str) -> String {
    format!(
        r#"golden-{golden} {{ role = "clone"; golden-name = "{golden}"; ipa = <0x1 0x0>; quota-pages = <1>; {props} }};"#
    )
}

#[test]
fn golden_images_depending_on_each_other_are_a_cycle() {
    // a is a template mapping b's golden, b a template mapping a's golden.
    let g = |own: &str, other: &str| {
        format!(
            r#"golden {{ role = "template"; image-name = "{own}"; seal-ranges = <0x0 0x80000000 0x0 0x100000>; }};
            {}"#,
            clone_of(other, "")
        )
    };
    let a = vm_src("a", "", "", &g("ga", "gb"));
    let b = vm_src("b", "", "", &g("gb", "ga"));
    let e = config::validate_set(&[a, b]).unwrap_err();
    assert_eq!(e.config, 0);
    assert_eq!(
        e.error.to_string(),
        "/gunyah-vm-config/golden-gb: property \"golden-name\": golden images depend on each other in a cycle"
    );
}

#[test]
fn a_chain_of_templates_launches_in_dependency_order() {
    // Listed clone-first; the plan must put base, then mid (which maps base), then leaf.
    let leaf = vm_src("leaf", "", "", &clone_of("mid-golden", ""));
    let mid = vm_src(
        "mid",
        "",
        "",
        &format!(
            r#"golden {{ role = "template"; image-name = "mid-golden"; seal-ranges = <0x0 0x80000000 0x0 0x100000>; }}; {}"#,
            clone_of("base-golden", "")
        ),
    );
    let base = template("base", "base-golden", "");
    let plan = config::validate_set(&[leaf, mid, base]).unwrap();
    let order: Vec<&str> = plan
        .vms
        .iter()
        .map(|v| v.config.image_name.as_str())
        .collect();
    assert_eq!(order, ["base", "mid", "leaf"]);
    assert_eq!(plan.vms[1].golden[0].template, 0);
    assert_eq!(plan.vms[2].golden[0].template, 1);
    assert_eq!(plan.vms[2].source, 0);
}

#[test]
fn a_vm_cannot_map_its_own_golden_image() {
    let g = r#"golden { role = "template"; image-name = "self"; seal-ranges = <0x0 0x80000000 0x0 0x100000>; };
        golden-b { role = "clone"; golden-name = "self"; ipa = <0x1 0x0>; mapping = "read-only"; };"#;
    let e = config::validate_set(&[vm_src("s", "", "", g)]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/gunyah-vm-config/golden-b: property \"golden-name\": a VM cannot map its own golden image"
    );
}

#[test]
fn a_boot_vm_cannot_depend_on_an_on_request_template() {
    let t = template("t", "tg", r#"launch = "on-request";"#);
    let c = vm_src("c", "", "", &clone_of("tg", ""));
    let e = config::validate_set(&[t.clone(), c]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/gunyah-vm-config/golden-tg: property \"golden-name\": template \"t\" is launched on request, so a VM launched at boot cannot map its golden image"
    );
    // The same clone launched on request is fine.
    let c = vm_src("c", r#"launch = "on-request";"#, "", &clone_of("tg", ""));
    assert!(config::validate_set(&[t, c]).is_ok());
}

#[test]
fn direct_mapped_memory_must_be_inside_the_partition_and_exclusive() {
    let direct = |name: &str, base: &str| {
        let src = MINIMAL_VM
            .replace("NAME", name)
            .replace("EXTRA_PROPS", "")
            .replace(
                "base-address = <0x0 0x80000000>;",
                &format!("base-address = <0x0 {base}>;"),
            )
            .replace("MEMORY_PROPS", "is-direct;")
            .replace("CHILDREN", "");
        config::parse(&dtc_source(&src)).unwrap()
    };
    assert!(config::validate_set(&[direct("a", "0x80000000"), direct("b", "0x80200000")]).is_ok());
    let e =
        config::validate_set(&[direct("a", "0x80000000"), direct("b", "0x80000000")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/gunyah-vm-config/memory: property \"base-address\": direct-mapped memory 0x80000000-0x80200000 overlaps \"a\" at 0x80000000-0x80200000"
    );
    // Direct RAM counts against the partition like eagerly populated RAM does.
    let big = |name: &str, base: &str| {
        let src = MINIMAL_VM
            .replace("NAME", name)
            .replace("EXTRA_PROPS", "")
            .replace(
                "base-address = <0x0 0x80000000>;",
                &format!("base-address = <0x0 {base}>;"),
            )
            .replace("size-min = <0x0 0x200000>;", "size-min = <0x0 0x30000000>;")
            .replace("MEMORY_PROPS", if name == "d" { "is-direct;" } else { "" })
            .replace("CHILDREN", "");
        config::parse(&dtc_source(&src)).unwrap()
    };
    let e = config::validate_set(&[big("e", "0x80000000"), big("d", "0x80000000")]).unwrap_err();
    assert_eq!(e.config, 1);
    assert_eq!(
        e.to_string(),
        "/gunyah-vm-config/memory: property \"size-min\": the set needs 0x60000000 bytes of eagerly populated memory but the partition has 0x40000000"
    );
    let e = config::validate_set(&[direct("h", "0x40000000")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/gunyah-vm-config/memory: property \"base-address\": direct-mapped memory 0x40000000-0x40200000 is not inside the partition"
    );
}

#[test]
fn more_dynamic_vms_than_the_dynamic_vmid_range_are_refused() {
    let base = vm_src(
        "v",
        "",
        "",
        "gmem { size = <0x0 0x200000>; demand-paging; };",
    );
    let Config::Vm(v) = base else { unreachable!() };
    let set: Vec<Config> = (0..65)
        .map(|i| {
            let mut v = v.clone();
            v.image_name = format!("v{i}");
            Config::Vm(v)
        })
        .collect();
    assert!(config::validate_set(&set[..64]).is_ok());
    let e = config::validate_set(&set).unwrap_err();
    assert_eq!(e.config, 64);
    assert_eq!(
        e.to_string(),
        "/gunyah-vm-config: more than 64 VMs need a dynamic VMID"
    );
}

#[test]
fn a_blob_with_two_configs_or_none_is_refused() {
    let two = dtc_source(
        r#"/dts-v1/; / { gunyah-vm-config { image-name = "a"; }; qcom,vm-config { image-name = "b"; }; };"#,
    );
    assert_eq!(
        config::parse(&two).unwrap_err().to_string(),
        "/qcom,vm-config: a blob holds one config, but /gunyah-vm-config is also present"
    );
    let none = dtc_source(r#"/dts-v1/; / { model = "board"; };"#);
    assert_eq!(
        config::parse(&none).unwrap_err().to_string(),
        "/: no /gunyah-vm-config, /qcom,vm-config or /gunyah-rm-platform node"
    );
    assert_eq!(
        config::parse(b"not a device tree at all, but long enough for a header")
            .unwrap_err()
            .to_string(),
        "/: malformed device tree blob: bad magic (not a DTB)"
    );
}

#[test]
fn digests_and_names_are_checked() {
    let d = config::parse_digest(&format!("sha256:{}", "ab".repeat(32))).unwrap();
    assert_eq!(d, [0xab; 32]);
    assert!(config::parse_digest(&format!("sha256:{}", "AB".repeat(32))).is_some());
    assert!(config::parse_digest(&format!("sha512:{}", "ab".repeat(32))).is_none());
    assert!(config::parse_digest(&format!("sha256:+{}", "a".repeat(63))).is_none());
    assert!(config::parse_digest(&format!("sha256:{}g", "a".repeat(63))).is_none());
    let long = "n".repeat(config::MAX_NAME_LEN + 1);
    let src = MINIMAL_VM
        .replace("NAME", &long)
        .replace("EXTRA_PROPS", "")
        .replace("MEMORY_PROPS", "")
        .replace("CHILDREN", "");
    assert_eq!(
        config::parse(&dtc_source(&src)).unwrap_err().to_string(),
        "/gunyah-vm-config: property \"image-name\": 80 bytes long, at most 79 allowed"
    );
}

// ---- the binary ----

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gunyah-rm"))
}

#[test]
fn check_config_accepts_the_vm_configs_directory() {
    let files = dts_files("vm-configs");
    let out = bin().arg("check-config").args(&files).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("platform: HLOS VMID 3, HLOS memory 0x40000000-0x80000000 (1024 MiB)"));
    assert!(stdout.contains(
        "golden template \"zygote-golden\" (192 MiB): seals 0x80000000-0x8c000000 (192 MiB) on os-run"
    ));
    assert!(stdout.contains("vmid 0x2d (fixed), launch boot"));
    assert!(stdout.contains("requires digest sha256:46b23b74"));
    let z = stdout.find(". zygote (").unwrap();
    let c = stdout.find(". app-clone-0 (").unwrap();
    assert!(z < c, "template printed (launched) before its clone");
}

#[test]
fn check_config_json_is_the_launch_plan() {
    let files = dts_files("vm-configs");
    let out = bin()
        .args(["check-config", "--json"])
        .args(&files)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["platform"]["hlos_vmid"], 3);
    let vms = v["vms"].as_array().unwrap();
    assert_eq!(vms.len(), files.len() - 1);
    let p = vms
        .iter()
        .find(|v| v["config"]["image_name"] == "protected-vm")
        .unwrap();
    assert!(p["file"].as_str().unwrap().ends_with("protected-vm.dts"));
    assert_eq!(
        p["golden"][0]["digest"],
        "46b23b74b0d431993099b9ccef75ac4e30dc48305089aa236b6ff1de97fed713"
    );
    assert_eq!(p["golden"][0]["mode"]["copy-on-write"]["quota_pages"], 1024);
}

#[test]
fn check_config_reports_each_negative_config_and_exits_1() {
    let positives = dts_files("vm-configs");
    for f in dts_files("tests/configs") {
        let out = bin()
            .arg("check-config")
            .args(&positives)
            .arg(&f)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", f.display());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let want = format!(
            "gunyah-rm check-config: {}: {}\n",
            f.display(),
            expected_error(&f)
        );
        assert_eq!(stderr, want);
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn check_config_json_error() {
    let f = repo().join("tests/configs/cow-zero-quota.dts");
    let out = bin()
        .args(["check-config", "--json"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &v["errors"][0];
    assert_eq!(e["node"], "/gunyah-vm-config/golden");
    assert_eq!(e["property"], "quota-pages");
    assert_eq!(e["reason"], "CoW mapping needs a quota of at least 1 page");
}

#[test]
fn check_config_reads_dtb_files_too() {
    let dir = std::env::temp_dir().join(format!("gunyah-rm-configs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut args = Vec::new();
    for f in dts_files("vm-configs") {
        let out = dir.join(f.with_extension("dtb").file_name().unwrap());
        std::fs::write(&out, dtc(&f)).unwrap();
        args.push(out);
    }
    let res = bin().arg("check-config").args(&args).output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(String::from_utf8_lossy(&res.stdout).contains(". zygote ("));
}

#[test]
fn check_config_without_dtc_says_so_and_exits_2() {
    let f = repo().join("vm-configs/zygote.dts");
    let out = bin()
        .arg("check-config")
        .arg(&f)
        .env("DTC", "/nonexistent/dtc")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "/nonexistent/dtc not found (install the Debian package device-tree-compiler"
        ),
        "{stderr}"
    );
    let out = bin().args(["check-config", "Cargo.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .ends_with("Cargo.toml: expected a .dts or .dtb file\n"));
}

// ---- never panics ----

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn valid_blobs() -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = dts_files("vm-configs").iter().map(|f| dtc(f)).collect();
        v.extend(dts_files("tests/configs").iter().map(|f| dtc(f)));
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = config::parse(&bytes);
        }

        #[test]
        fn arbitrary_bytes_behind_a_valid_header_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            off_struct in 0u32..600, off_strings in 0u32..600,
            size_struct in 0u32..600, size_strings in 0u32..600,
        ) {
            let total = 40 + body.len() as u32;
            let mut blob = Vec::new();
            for w in [0xd00d_feed, total, off_struct, off_strings, 40, 17, 16, 0, size_strings, size_struct] {
                blob.extend_from_slice(&u32::to_be_bytes(w));
            }
            blob.extend_from_slice(&body);
            let _ = config::parse(&blob);
        }

        #[test]
        fn mutated_valid_blobs_never_panic(
            which in any::<prop::sample::Index>(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let blobs = valid_blobs_cached();
            let mut blob = blobs[which.index(blobs.len())].clone();
            for (at, byte) in &edits {
                let i = at.index(blob.len());
                blob[i] = *byte;
            }
            if truncate {
                blob.truncate(cut.index(blob.len()));
            }
            if let Ok(c) = config::parse(&blob) {
                // Whatever parses must also survive set validation next to the real set.
                let (_, mut set) = positive_set_cached();
                set.push(c);
                let _ = config::validate_set(&set);
            }
        }
    }

    /// One structure-block token for the token-stream generator.
    #[derive(Clone, Debug)]
    enum Tok {
        Begin(String),
        End,
        Prop(u32, u32, Vec<u8>),
        Nop,
        Fin,
        Raw(u32),
    }

    fn tok() -> impl Strategy<Value = Tok> {
        prop_oneof![
            4 => "[a-z@,-]{0,6}".prop_map(Tok::Begin),
            4 => Just(Tok::End),
            4 => (0u32..24, 0u32..40, proptest::collection::vec(any::<u8>(), 0..12))
                .prop_map(|(l, o, v)| Tok::Prop(l, o, v)),
            1 => Just(Tok::Nop),
            1 => Just(Tok::Fin),
            1 => any::<u32>().prop_map(Tok::Raw),
        ]
    }

    /// A header-correct blob whose structure block is the given tokens.
    fn blob_from(tokens: &[Tok], strings: &[u8]) -> Vec<u8> {
        let mut st = Vec::new();
        for t in tokens {
            match t {
                Tok::Begin(n) => {
                    st.extend_from_slice(&1u32.to_be_bytes());
                    st.extend_from_slice(n.as_bytes());
                    st.push(0);
                    while st.len() % 4 != 0 {
                        st.push(0);
                    }
                }
                Tok::End => st.extend_from_slice(&2u32.to_be_bytes()),
                Tok::Prop(len, off, val) => {
                    st.extend_from_slice(&3u32.to_be_bytes());
                    st.extend_from_slice(&len.to_be_bytes());
                    st.extend_from_slice(&off.to_be_bytes());
                    st.extend_from_slice(val);
                    while st.len() % 4 != 0 {
                        st.push(0);
                    }
                }
                Tok::Nop => st.extend_from_slice(&4u32.to_be_bytes()),
                Tok::Fin => st.extend_from_slice(&9u32.to_be_bytes()),
                Tok::Raw(w) => st.extend_from_slice(&w.to_be_bytes()),
            }
        }
        let off_struct = 40 + 16; // header + empty reservation map
        let off_strings = off_struct + st.len();
        let total = off_strings + strings.len();
        let mut blob = Vec::new();
        for w in [
            0xd00d_feed,
            total,
            off_struct,
            off_strings,
            40,
            17,
            16,
            0,
            strings.len(),
            st.len(),
        ] {
            blob.extend_from_slice(&(w as u32).to_be_bytes());
        }
        blob.extend_from_slice(&[0; 16]);
        blob.extend_from_slice(&st);
        blob.extend_from_slice(strings);
        blob
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn arbitrary_token_streams_never_panic(
            tokens in proptest::collection::vec(tok(), 0..24),
            strings in proptest::collection::vec(prop_oneof![Just(0u8), 97u8..123, any::<u8>()], 0..40),
        ) {
            let _ = config::parse(&blob_from(&tokens, &strings));
            // Also with the canonical frame around the random middle, so nodes get walked.
            let mut framed = vec![Tok::Begin(String::new())];
            framed.extend(tokens);
            framed.extend([Tok::End, Tok::Fin]);
            let _ = config::parse(&blob_from(&framed, &strings));
        }
    }

    #[test]
    fn the_token_stream_builder_makes_blobs_the_loader_reads() {
        // Guards the generator above: a well-formed stream gets past the structural check.
        let strings = b"image-name\0";
        let toks = [
            Tok::Begin(String::new()),
            Tok::Begin("gunyah-vm-config".into()),
            Tok::Prop(2, 0, b"a\0".to_vec()),
            Tok::End,
            Tok::End,
            Tok::Fin,
        ];
        assert_eq!(
            config::parse(&blob_from(&toks, strings))
                .unwrap_err()
                .to_string(),
            "/gunyah-vm-config: required node \"memory\" is missing"
        );
        // A property after a child node would panic the fdt crate; the check refuses it.
        let toks = [
            Tok::Begin(String::new()),
            Tok::Begin("x".into()),
            Tok::End,
            Tok::Prop(2, 0, b"a\0".to_vec()),
            Tok::End,
            Tok::Fin,
        ];
        assert_eq!(
            config::parse(&blob_from(&toks, strings))
                .unwrap_err()
                .to_string(),
            "/: malformed device tree blob: property after a child node"
        );
    }

    #[test]
    fn each_structural_defect_is_named() {
        use Tok::*;
        let s = b"image-name\0".as_slice();
        let root = || Begin(String::new());
        let p = || Prop(2, 0, b"a\0".to_vec());
        let cases: Vec<(Vec<Tok>, &[u8], &str)> = vec![
            (vec![root(), End], s, "structure block ends without FDT_END"),
            (vec![End, Fin], s, "unbalanced FDT_END_NODE"),
            (
                vec![root(), Fin],
                s,
                "FDT_END inside a node or before the root node",
            ),
            (
                vec![root(), End, root(), End, Fin],
                s,
                "more than one root node",
            ),
            (
                vec![root(), Begin(String::new()), End, End, Fin],
                s,
                "only the root node may have an empty name",
            ),
            (vec![root(), Nop, End, Fin], s, "unexpected token 0x4"),
            (
                vec![root(), Prop(2, 11, b"a\0".to_vec()), End, Fin],
                s,
                "property name is not a NUL-terminated UTF-8 string inside the strings block",
            ),
            (
                vec![root(), Prop(200, 0, vec![]), End, Fin],
                s,
                "property value runs past the structure block",
            ),
            (
                vec![root(), p(), End, Fin],
                b"image-name",
                "property name is not a NUL-terminated UTF-8 string inside the strings block",
            ),
            (
                vec![root(), Prop(2, 0, b"a\0".to_vec()), End, Fin],
                b"\xff\0",
                "property name is not a NUL-terminated UTF-8 string inside the strings block",
            ),
            // Inside a valid block, but in the middle of a two-byte character.
            (
                vec![root(), Prop(2, 1, b"a\0".to_vec()), End, Fin],
                "\u{e9}\0".as_bytes(),
                "property name is not a NUL-terminated UTF-8 string inside the strings block",
            ),
            (vec![p(), Fin], s, "property outside any node"),
        ];
        for (toks, strings, why) in cases {
            assert_eq!(
                config::parse(&blob_from(&toks, strings))
                    .unwrap_err()
                    .to_string(),
                format!("/: malformed device tree blob: {why}"),
                "{toks:?}"
            );
        }
        // Two same-named properties or children (dtc merges these; a crafted blob may not).
        let dup_prop = vec![
            root(),
            Begin("gunyah-vm-config".into()),
            p(),
            p(),
            End,
            End,
            Fin,
        ];
        assert_eq!(
            config::parse(&blob_from(&dup_prop, s))
                .unwrap_err()
                .to_string(),
            "/gunyah-vm-config: property \"image-name\": duplicate property"
        );
        let dup_node = vec![
            root(),
            Begin("gunyah-vm-config".into()),
            p(),
            Begin("memory".into()),
            End,
            Begin("memory".into()),
            End,
            End,
            End,
            Fin,
        ];
        assert_eq!(
            config::parse(&blob_from(&dup_node, s))
                .unwrap_err()
                .to_string(),
            "/gunyah-vm-config/memory: duplicate node"
        );
        let mut deep = vec![root()];
        deep.extend((0..16).map(|i| Begin(format!("n{i}"))));
        deep.extend((0..17).map(|_| End));
        deep.push(Fin);
        assert_eq!(
            config::parse(&blob_from(&deep, s)).unwrap_err().to_string(),
            "/: malformed device tree blob: nodes nested deeper than 16"
        );
        // Version 16 blobs are refused (byte 20..24 of the header is the version).
        let mut old = blob_from(&[root(), End, Fin], s);
        old[23] = 16;
        assert_eq!(
            config::parse(&old).unwrap_err().to_string(),
            "/: malformed device tree blob: version 16 (need 17)"
        );
    }

    fn valid_blobs_cached() -> &'static Vec<Vec<u8>> {
        static B: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
        B.get_or_init(valid_blobs)
    }

    fn positive_set_cached() -> (Vec<PathBuf>, Vec<Config>) {
        static S: std::sync::OnceLock<(Vec<PathBuf>, Vec<Config>)> = std::sync::OnceLock::new();
        S.get_or_init(positive_set).clone()
    }
}

#[test]
fn the_binding_documents_complete_example_is_valid() {
    let readme = std::fs::read_to_string(repo().join("vm-configs/README.md")).unwrap();
    let start = readme.find("## Complete example").unwrap();
    let body = &readme[start..];
    let src = body
        .split("```dts\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .unwrap();
    let example = config::parse(&dtc_source(src)).unwrap_or_else(|e| panic!("README example: {e}"));
    let Config::Vm(v) = &example else {
        panic!("README example is a VM config")
    };
    assert_eq!(v.image_name, "app-clone-0");
    let zygote = config::parse(&dtc(&repo().join("vm-configs/zygote.dts"))).unwrap();
    let platform = config::parse(&dtc(&repo().join("vm-configs/platform.dts"))).unwrap();
    let plan = config::validate_set(&[example, zygote, platform]).unwrap();
    assert_eq!(plan.vms[1].config.image_name, "app-clone-0");
    assert_eq!(plan.vms[1].golden[0].size, 0x0c00_0000);
}

/// The README section starting at the heading that begins with `heading`, up to the next heading.
fn readme_section<'a>(readme: &'a str, heading: &str) -> &'a str {
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has no heading {heading}"));
    let rest = &readme[start + heading.len()..];
    let end = rest
        .find("\n## ")
        .into_iter()
        .chain(rest.find("\n### "))
        .min()
        .unwrap_or(rest.len());
    &rest[..end]
}

/// Backticked names in the first column of the markdown tables of `text`.
fn table_names(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let first = l.split('|').nth(1).unwrap_or_default();
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn set(names: &[&str]) -> std::collections::BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_binding_document_lists_exactly_the_properties_the_loader_accepts() {
    use config::schema::*;
    let readme = std::fs::read_to_string(repo().join("vm-configs/README.md")).unwrap();
    let r = |h| table_names(readme_section(&readme, h));
    assert_eq!(r("## `/gunyah-rm-platform`"), set(PLATFORM_PROPS));
    assert_eq!(
        r("## `/gunyah-vm-config` or `/qcom,vm-config`"),
        set(VM_PROPS)
    );
    assert_eq!(r("### `memory`"), set(MEMORY_PROPS));
    assert_eq!(r("### `vcpus`"), set(VCPUS_PROPS));
    assert_eq!(r("### `vdevices`"), set(RM_RPC_PROPS));
    assert_eq!(r("### `gmem`"), set(GMEM_PROPS));
    let golden = readme_section(&readme, "### `golden`");
    let (common, rest) = golden.split_once("**`role = \"template\"`**").unwrap();
    let (template, clone) = rest.split_once("**`role = \"clone\"`**").unwrap();
    let with_role = |t: &str| {
        let mut s = table_names(common);
        s.extend(table_names(t));
        s
    };
    assert_eq!(with_role(template), set(TEMPLATE_PROPS));
    assert_eq!(with_role(clone), set(CLONE_PROPS));
    let vdev = readme_section(&readme, "### `vdevices`");
    let sentence = vdev
        .split("needs `vdevice-type` (string), one of")
        .nth(1)
        .unwrap();
    let sentence = sentence.split(". ").next().unwrap();
    let types: std::collections::BTreeSet<String> = sentence
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert_eq!(types, set(VDEVICE_TYPES));
}

#[test]
fn check_config_reports_every_file_that_fails_and_the_worst_status() {
    let dir = std::env::temp_dir().join(format!("gunyah-rm-badsyntax-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.dts");
    std::fs::write(
        &broken,
        "/dts-v1/;\n/ { gunyah-vm-config { image-name = ; }; };\n",
    )
    .unwrap();
    let negative = repo().join("tests/configs/cow-zero-quota.dts");
    let out = bin()
        .arg("check-config")
        .arg(&broken)
        .arg(&negative)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    // A file that could not be compiled (2) outranks an invalid config (1).
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].starts_with(&format!(
        "gunyah-rm check-config: {}: dtc failed: ",
        broken.display()
    )));
    assert_eq!(
        lines[1],
        format!(
            "gunyah-rm check-config: {}: {}",
            negative.display(),
            expected_error(&negative)
        )
    );
}

#[test]
fn host_load_set_loads_files_and_blames_the_right_one() {
    let files = dts_files("vm-configs");
    let plan = config::host::load_set(&files).unwrap();
    assert!(files[plan.vm("zygote").unwrap().source].ends_with("vm-configs/zygote.dts"));
    let neg = repo().join("tests/configs/golden-missing-template.dts");
    let errs =
        config::host::load_set(&[repo().join("vm-configs/zygote.dts"), neg.clone()]).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].file(), neg.as_path());
    assert_eq!(
        errs[0].to_string(),
        format!("{}: {}", neg.display(), expected_error(&neg))
    );
}
