//! `gunyah-rm check-config`.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Config files: `.dts` (compiled with dtc) or `.dtb`.
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
    /// Print JSON instead of the human-readable description.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: Args) -> ExitCode {
    eprintln!("gunyah-rm check-config: not implemented yet");
    ExitCode::FAILURE
}
