//! `gunyah-rm`: the host tool. Each subcommand lives in its own module.

// The socket transport needs raw descriptors (serve/transport.rs, with SAFETY comments).
#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod check_config;
mod decode;
mod serve;
mod simulate;

#[derive(Parser)]
#[command(
    name = "gunyah-rm",
    version,
    about = "Gunyah Resource Manager (host tool)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Decode RM RPC message-queue messages given as hex (arguments, or lines on stdin).
    Decode(decode::Args),
    /// Parse VM launch configs and print the VMs they describe, or the first error.
    CheckConfig(check_config::Args),
    /// Run the RM over the host simulator, serving clients on a Unix SOCK_SEQPACKET socket.
    Serve(serve::Args),
    /// Run the Android-like scenario on the simulator: seal a template's memory golden, launch
    /// clones from the configs, let each write a fraction of its pages, print the figures.
    Simulate(simulate::Args),
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Decode(a) => decode::run(a),
        Cmd::CheckConfig(a) => check_config::run(a),
        Cmd::Serve(a) => serve::run(a),
        Cmd::Simulate(a) => simulate::run(a),
    }
}
