//! Run the catalogue on the host simulator: one line per case, then `N passed, M failed`;
//! exit status 1 if any case failed.
//!
//! ```text
//! catalogue-host [--tag TAG]... [--name SUBSTRING]... [--list] [--qemu-like]
//! ```
//!
//! `--qemu-like` runs on a host target with only what the QEMU board has (VMs act only
//! through running vCPUs): the cases needing more are skipped, and a case that sends as
//! a VM without a running vCPU without saying so fails.

use std::process::ExitCode;

use gunyah_rm_catalogue::host::Host;
use gunyah_rm_catalogue::{catalogue, run_all, Select, Tag};

fn main() -> ExitCode {
    let mut select = Select::default();
    let mut list = false;
    let mut qemu_like = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--tag" => {
                let t = args.next().unwrap_or_default();
                match Tag::ALL.iter().find(|x| x.name() == t) {
                    Some(x) => select.tags.push(*x),
                    None => {
                        let names: Vec<&str> = Tag::ALL.iter().map(|t| t.name()).collect();
                        eprintln!("unknown tag `{t}`; tags: {}", names.join(", "));
                        return ExitCode::from(2);
                    }
                }
            }
            "--name" => select.names.push(args.next().unwrap_or_default()),
            "--list" => list = true,
            "--qemu-like" => qemu_like = true,
            _ => {
                eprintln!(
                    "usage: catalogue-host [--tag TAG]... [--name SUBSTRING]... [--list] [--qemu-like]"
                );
                return ExitCode::from(2);
            }
        }
    }
    let cases = catalogue();
    if list {
        for c in cases.iter().filter(|c| select.wants(c)) {
            let tags: Vec<&str> = c.tags.iter().map(|t| t.name()).collect();
            let needs: Vec<&str> = c.all_needs().iter().map(|n| n.name()).collect();
            println!("{:60} [{}] {}", c.name, tags.join(","), needs.join(","));
        }
        return ExitCode::SUCCESS;
    }
    let mut host = if qemu_like {
        Host::qemu_like()
    } else {
        Host::new()
    };
    let s = run_all(&mut host, &cases, &select, &mut |line| println!("{line}"));
    if s.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
