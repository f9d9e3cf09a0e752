//! Seed corpora, made by the harness itself from real messages: encoded with the abi crate the
//! way clients and the RM's tests send them, the replies and notifications the RM sent, and
//! every case of the message-based catalogue (`tests/catalogue`) as it ran.
//!
//! A target binary writes its seeds and exits when `GUNYAH_RM_FUZZ_SEEDS` names a directory
//! (`cargo xtask fuzz` does this before each run), so the seeds always match the harness's
//! input format and nothing generated is committed.

use std::path::Path;

/// The environment variable naming the directory to write seeds into.
pub const ENV: &str = "GUNYAH_RM_FUZZ_SEEDS";

/// The seeds of `target`, named: the harness's own, then the catalogue's cases
/// ([`crate::catalogue`]).
pub fn for_target(target: &str) -> Vec<(String, Vec<u8>)> {
    use crate::catalogue as cat;
    match target {
        "abi_decode" => [crate::abi::seeds(), cat::abi_seeds(&cat::recorded())].concat(),
        "rm_dispatch" => [
            crate::dispatch::seeds(),
            cat::dispatch_seeds(&cat::recorded()),
        ]
        .concat(),
        "vm_config" => crate::config::seeds(),
        "serve_transport" => [
            crate::transport::seeds(),
            cat::transport_seeds(&cat::recorded()),
        ]
        .concat(),
        _ => Vec::new(),
    }
}

/// Write `target`'s seeds into `dir` (created if missing); returns how many.
pub fn write(target: &str, dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let seeds = for_target(target);
    for (name, data) in &seeds {
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        std::fs::write(dir.join(format!("seed-{name}")), data)?;
    }
    Ok(seeds.len())
}

/// Called from a target's `init`: if [`ENV`] is set, write the seeds there and exit.
pub fn write_if_asked(target: &str) {
    let Some(dir) = std::env::var_os(ENV) else {
        return;
    };
    match write(target, Path::new(&dir)) {
        Ok(n) => {
            eprintln!("{target}: wrote {n} seeds to {}", Path::new(&dir).display());
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!(
                "{target}: cannot write seeds to {}: {e}",
                Path::new(&dir).display()
            );
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_catalogue_gives_seeds_to_three_targets() {
        let cases = crate::catalogue::recorded();
        assert!(cases.len() >= 200, "{} catalogue cases", cases.len());
        let abi = crate::catalogue::abi_seeds(&cases);
        let dispatch = crate::catalogue::dispatch_seeds(&cases);
        let transport = crate::catalogue::transport_seeds(&cases);
        assert!(abi.len() >= cases.len() && dispatch.len() >= cases.len() / 2);
        assert!(transport.len() >= cases.len() / 2);
        // They run: a few of each through the targets.
        for (_, s) in dispatch.iter().step_by(40) {
            crate::dispatch::run(s);
        }
        for (_, s) in transport.iter().step_by(40) {
            crate::transport::run(s);
        }
        for (_, s) in &abi {
            crate::abi::run(s);
        }
    }
}
