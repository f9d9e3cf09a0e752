//! `gunyah-rm decode`.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Message-queue messages as hex, one per argument (read from stdin, one per line, if none).
    pub hex: Vec<String>,
    /// Print one JSON object per logical message.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: Args) -> ExitCode {
    eprintln!("gunyah-rm decode: not implemented yet");
    ExitCode::FAILURE
}
