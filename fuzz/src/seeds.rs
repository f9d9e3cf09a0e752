//! Seed corpora, made by the harness itself from real messages: encoded with the abi crate the
//! way clients and the RM's tests send them, the replies and notifications the RM sent, and
//! every case of the message-based catalogue (`tests/catalogue`) as it ran.
//!
//! A target binary writes every target's seeds into `DIR/TARGET/` and exits when
//! `GUNYAH_RM_FUZZ_SEEDS` names a directory `DIR` (`cargo xtask fuzz` does this before it runs
//! the targets), so the seeds always match the harness's input format and nothing generated is
//! committed.

use std::path::Path;

/// The environment variable naming the directory to write seeds into.
pub const ENV: &str = "GUNYAH_RM_FUZZ_SEEDS";

/// Every target's name.
pub const TARGETS: [&str; 4] = ["abi_decode", "rm_dispatch", "vm_config", "serve_transport"];

/// Named inputs: (file name, bytes).
pub type Seeds = Vec<(String, Vec<u8>)>;

/// The seeds of every target, named: the harness's own, then the catalogue's cases
/// ([`crate::catalogue`], run once for all).
pub fn all() -> Vec<(&'static str, Seeds)> {
    use crate::catalogue as cat;
    let cases = cat::recorded();
    vec![
        (
            "abi_decode",
            [crate::abi::seeds(), cat::abi_seeds(&cases)].concat(),
        ),
        (
            "rm_dispatch",
            [crate::dispatch::seeds(), cat::dispatch_seeds(&cases)].concat(),
        ),
        ("vm_config", crate::config::seeds()),
        (
            "serve_transport",
            [crate::transport::seeds(), cat::transport_seeds(&cases)].concat(),
        ),
    ]
}

/// Write every target's seeds into `dir/TARGET/` (created if missing); returns how many.
pub fn write(dir: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    for (target, seeds) in all() {
        let sub = dir.join(target);
        std::fs::create_dir_all(&sub)?;
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
            std::fs::write(sub.join(format!("seed-{name}")), data)?;
        }
        n += seeds.len();
    }
    Ok(n)
}

/// Called from every target's `init`: if [`ENV`] is set, write every target's seeds there
/// (one catalogue run for all) and exit.
pub fn write_if_asked(target: &str) {
    let Some(dir) = std::env::var_os(ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    match write(dir) {
        Ok(n) => {
            eprintln!("{target}: wrote {n} seeds to {}/TARGET", dir.display());
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("{target}: cannot write seeds to {}: {e}", dir.display());
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
