//! `gunyah-rm simulate` through the built binary: the figures must be what the scenario
//! implies (192 MiB golden image = 49152 pages; each clone copies exactly the pages it writes
//! unless its quota runs out), worked out here by hand from the configs.

use std::path::PathBuf;
use std::process::{Command, Output};

const IMAGE_PAGES: u64 = 0x0c00_0000 / 4096; // zygote.dts seal-ranges: 192 MiB
const PAGE: u64 = 4096;
const ZERO_DIGEST: &str = "46b23b74b0d431993099b9ccef75ac4e30dc48305089aa236b6ff1de97fed713";

fn configs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../vm-configs")
}

fn simulate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gunyah-rm"))
        .arg("simulate")
        .args(args)
        // Not the repository root: the default configs must still be found.
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "status {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn default_configs_three_clones_two_percent() {
    let v = json(&simulate(&[
        "--clones",
        "3",
        "--write-percent",
        "2",
        "--json",
    ]));
    // 2% of 49152 pages = 983 (floor of 983.04) per clone, one CoW copy each.
    let written = 983;
    assert_eq!(v["template"], "zygote");
    assert_eq!(v["clone_config"], "app-clone-0");
    assert_eq!(v["golden_digest"], ZERO_DIGEST);
    assert_eq!(v["image_pages"], IMAGE_PAGES);
    assert_eq!(v["mapped_pages_per_clone"], IMAGE_PAGES);
    assert_eq!(v["clones"], 3);
    assert_eq!(v["written_pages_per_clone"], written);
    assert_eq!(v["pages_copied"], 3 * written);
    assert_eq!(v["faults_served"], 3 * written);
    assert_eq!(v["unserved_writes"], 0);
    assert_eq!(v["pages_shared"], 3 * IMAGE_PAGES - 3 * written);
    assert_eq!(v["memory_used_bytes"], (IMAGE_PAGES + 3 * written) * PAGE);
    assert_eq!(v["memory_without_sharing_bytes"], 3 * IMAGE_PAGES * PAGE);
    assert_eq!(v["clone_launch_ns"].as_array().unwrap().len(), 3);
    assert!(v["faults_per_second"].as_f64().unwrap() > 0.0);
    let events: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    // Boot VMs first (trusted-vm fixed 0x2d, zygote 0x80), then the seal and
    // the boot clones, then the three clones on request.
    assert_eq!(events[0], "launched trusted-vm as VM 0x2d");
    assert_eq!(events[1], "launched zygote as VM 0x80");
    assert!(events.contains(&"launched protected-vm as VM 0x82"));
    assert!(events.contains(&"launched 3 clones of app-clone-0: VMs 0x83, 0x84, 0x85"));
    assert!(events.contains(&"isolation check after the writes: ok"));
}

#[test]
fn quota_exhaustion_stops_writes_at_the_quota() {
    let c = configs();
    let files: Vec<String> = ["platform.dts", "zygote.dts", "app-clone-stop.dts"]
        .iter()
        .map(|f| c.join(f).to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["--config"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["--clones", "2", "--write-percent", "1", "--json"]);
    let v = json(&simulate(&args));
    // app-clone-1 may copy 256 pages (quota-pages); 1% is 491 writes, so 235
    // per clone are refused (stop-vm: the VM is stopped at the 257th).
    assert_eq!(v["clone_config"], "app-clone-1");
    assert_eq!(v["written_pages_per_clone"], 491);
    assert_eq!(v["pages_copied"], 2 * 256);
    assert_eq!(v["faults_served"], 2 * 256);
    assert_eq!(v["unserved_writes"], 2 * (491 - 256));
}

#[test]
fn table_output_and_errors() {
    let out = simulate(&["--clones", "1", "--write-percent", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let row = |k: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(k))
            .unwrap_or_else(|| panic!("no {k} row in:\n{text}"))
            .to_string()
    };
    assert!(row("clones").contains("1 × app-clone-0"), "{text}");
    assert!(row("pages copied").contains(" 0 "), "{text}");
    assert!(
        row("pages shared").contains(&IMAGE_PAGES.to_string()),
        "{text}"
    );

    // A set without a template cannot run the scenario.
    let trusted = configs().join("trusted-vm.dts");
    let out = simulate(&["--config", trusted.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no template VM"));
    // A file that is not there.
    let out = simulate(&["--config", "/nonexistent/x.dts"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.dts"));
    // Out-of-range arguments are refused by the parser.
    assert_eq!(simulate(&["--write-percent", "101"]).status.code(), Some(2));
    assert_eq!(simulate(&["--clones", "0"]).status.code(), Some(2));
}
