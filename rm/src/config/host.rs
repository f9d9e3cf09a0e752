//! Loading configs from files on the host (feature `std`): `.dts` through dtc, or `.dtb`, then
//! validated as one set. Shared by `gunyah-rm check-config` and any command that launches VMs
//! from config files.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::string::String;
use std::vec::Vec;

use super::{parse, validate_set, Config, ConfigError, LaunchPlan};

/// Why a file of a set was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The file could not be read or compiled (no dtc, dtc failed, not `.dts`/`.dtb`).
    Io {
        /// The file.
        file: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The config in the file is invalid, alone or as part of the set.
    Config {
        /// The file.
        file: PathBuf,
        /// The loader's error.
        error: ConfigError,
    },
}

impl LoadError {
    /// The file the error is about.
    pub fn file(&self) -> &Path {
        match self {
            LoadError::Io { file, .. } | LoadError::Config { file, .. } => file,
        }
    }
}

impl std::fmt::Display for LoadError {
    /// `FILE: reason`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Io { file, reason } => write!(f, "{}: {reason}", file.display()),
            LoadError::Config { file, error } => write!(f, "{}: {error}", file.display()),
        }
    }
}

impl std::error::Error for LoadError {}

/// The blob of `path`: a `.dtb` as is, a `.dts` compiled by `dtc -I dts -O dtb` (the program
/// named by `$DTC`, default `dtc`; its output is captured, no temporary file).
pub fn read_blob(path: &Path) -> Result<Vec<u8>, String> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("dtb") => std::fs::read(path).map_err(|e| format!("cannot read: {e}")),
        Some("dts") => {
            let dtc = std::env::var_os("DTC").unwrap_or_else(|| "dtc".into());
            let out = Command::new(&dtc)
                .args(["-q", "-I", "dts", "-O", "dtb"])
                .arg(path)
                .output()
                .map_err(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        format!(
                            "cannot compile: {} not found (install the Debian package device-tree-compiler, or pass a .dtb)",
                            dtc.to_string_lossy()
                        )
                    } else {
                        format!("cannot run {}: {e}", dtc.to_string_lossy())
                    }
                })?;
            if !out.status.success() {
                // One line per file: dtc's own lines joined.
                let msg = String::from_utf8_lossy(&out.stderr);
                let msg: Vec<&str> = msg
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                return Err(format!("dtc failed: {}", msg.join("; ")));
            }
            Ok(out.stdout)
        }
        _ => Err("expected a .dts or .dtb file".into()),
    }
}

/// Reads and parses one file.
pub fn load_file(path: &Path) -> Result<Config, LoadError> {
    let blob = read_blob(path).map_err(|reason| LoadError::Io {
        file: path.into(),
        reason,
    })?;
    parse(&blob).map_err(|error| LoadError::Config {
        file: path.into(),
        error,
    })
}

/// Loads every file and validates them as one set. On failure returns every file that could not
/// be loaded or parsed (in order); if all parsed, the one set-level error. `PlannedVm::source`
/// in the plan indexes `paths`.
pub fn load_set<P: AsRef<Path>>(paths: &[P]) -> Result<LaunchPlan, Vec<LoadError>> {
    let mut configs = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match load_file(p.as_ref()) {
            Ok(c) => configs.push(c),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    validate_set(&configs).map_err(|e| {
        std::vec![LoadError::Config {
            file: paths[e.config].as_ref().into(),
            error: e.error,
        }]
    })
}
