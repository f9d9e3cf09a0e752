//! The RM's modules depend on the model, not on their siblings (issue 10): a transition module
//! (memory parcels, gmem, golden images, the fault path, VM lifecycle) may use the model —
//! the `Rm` record (`service`, its per-VM slots `vmid_map`), the range map (`space`, `ranges`), plans (`plan`), the
//! platform seam, the VM table, configs and reply types — but no other transition module and
//! not the router or the transport. This reads the sources, so a new `use` across siblings
//! fails here rather than in review.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// Modules that hold transitions, each to be independent of the others.
const TRANSITIONS: &[&str] = &["memparcel", "gmem", "golden", "cow", "lifecycle"];
/// What a transition may depend on.
const MODEL: &[&str] = &[
    "service",
    "space",
    "ranges",
    "plan",
    "platform",
    "stage2_spaces",
    "vmid_map",
    "vm",
    "config",
    "reply",
    "parcel",
];

/// The crate-level modules a source file names through `crate::`, comments left out.
fn crate_deps(src: &str) -> BTreeSet<String> {
    let mut deps = BTreeSet::new();
    for line in src.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a, b::c}`: every first path segment in the group.
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        deps.insert(name);
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    deps.insert(name);
                }
            }
        }
    }
    deps
}

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for e in fs::read_dir(dir).expect("read rm/src") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push((
                p.display().to_string(),
                fs::read_to_string(&p).expect("read source"),
            ));
        }
    }
}

/// The crate-level module a file under `rm/src` belongs to.
fn module_of(src_root: &Path, file: &str) -> String {
    let rel = Path::new(file)
        .strip_prefix(src_root)
        .expect("under rm/src");
    let first = rel.components().next().expect("a component");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

#[test]
fn transitions_depend_on_the_model_not_on_siblings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut seen = BTreeSet::new();
    let mut wrong = Vec::new();
    for (file, src) in &files {
        let module = module_of(&root, file);
        if !TRANSITIONS.contains(&module.as_str()) {
            continue;
        }
        seen.insert(module.clone());
        for dep in crate_deps(src) {
            if dep != module && !MODEL.contains(&dep.as_str()) {
                wrong.push(format!("{file}: uses crate::{dep}"));
            }
        }
    }
    assert_eq!(
        seen.len(),
        TRANSITIONS.len(),
        "every transition module was found: {seen:?}"
    );
    assert!(
        wrong.is_empty(),
        "sibling dependencies:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_scanner_sees_grouped_and_plain_paths_and_skips_comments() {
    let deps = crate_deps(
        "use crate::{gmem::X, vm};\nlet a = crate::router::f(); // crate::cow\n/// [`crate::golden`]\n",
    );
    let want: BTreeSet<String> = ["gmem", "vm", "router"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(deps, want);
}
