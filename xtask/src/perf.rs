//! `cargo xtask perf`: run the benchmarks behind docs/PERFORMANCE.md and draw its plots.
//!
//! Runs the criterion benches (`cow_fault`, `clone_launch`, `rpc_cycle`, `fault_scaling`, with the short
//! settings of a shared machine unless `--full`), saves each one's report (the ratios against
//! its same-run baseline) under `target/perf/`, runs `gunyah-rm simulate --json` over a range of
//! clone counts, and writes SVG plots to `docs/perf/` from criterion's own output
//! (`target/criterion/*/new/estimates.json`), the simulator's JSON and, for faults against
//! threads, the medians `fault_scaling` prints (`target/perf/fault_scaling.txt`). `--plots` only redraws
//! the plots from what the last run left. It ends with the simulator's resident memory
//! against its target and one `cargo xtask qemu` boot's EL2 instruction counts (`--no-qemu`
//! skips that boot). No plotting crate: the SVG is written by hand, so
//! xtask stays dependency-free.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// The benches and the criterion arguments of a short run.
const BENCHES: &[&str] = &["cow_fault", "clone_launch", "rpc_cycle", "fault_scaling"];
const SHORT: &[&str] = &["--warm-up-time", "1", "--measurement-time", "3"];
/// Clone counts of the memory plot (60 = every dynamic VMID the default configs leave).
const CLONE_COUNTS: &[u32] = &[1, 2, 4, 8, 16, 32, 60];

pub fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let plots_only = args.iter().any(|a| a == "--plots");
    let full = args.iter().any(|a| a == "--full");
    let out = root.join("target/perf");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    if !plots_only {
        for b in BENCHES {
            let mut c = Command::new(env!("CARGO"));
            c.current_dir(root)
                .args(["bench", "-p", "gunyah-rm", "--bench", b, "--"]);
            if !full {
                c.args(SHORT);
            }
            eprintln!("xtask perf: cargo bench --bench {b}");
            let o = c.output().map_err(|e| format!("cargo bench: {e}"))?;
            let text = String::from_utf8_lossy(&o.stdout).to_string();
            std::fs::write(out.join(format!("{b}.txt")), &text).map_err(|e| e.to_string())?;
            // The benches' own notes go to stderr as "BENCH: ..." (e.g. the host page faults
            // each CoW case took while measured): keep them next to the report.
            let notes: String = String::from_utf8_lossy(&o.stderr)
                .lines()
                .filter(|l| l.starts_with(&format!("{b}: ")))
                .map(|l| format!("{l}\n"))
                .collect();
            std::fs::write(out.join(format!("{b}.notes.txt")), &notes)
                .map_err(|e| e.to_string())?;
            if !o.status.success() {
                return Err(format!(
                    "cargo bench --bench {b} failed:\n{}",
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
            // The report: everything after criterion's own lines.
            if let Some(i) = text
                .find("\nCoW fault service")
                .or(text.find("\nClone launch"))
                .or(text.find("\nRPC dispatch"))
                .or(text.find("\nfaults/s, CoW"))
            {
                print!("{}", &text[i..]);
            }
            print!("{notes}");
        }
        let bin = root.join("target/release/gunyah-rm");
        let st = Command::new(env!("CARGO"))
            .current_dir(root)
            .args([
                "build",
                "--release",
                "-p",
                "gunyah-rm",
                "--bin",
                "gunyah-rm",
            ])
            .status()
            .map_err(|e| format!("cargo build: {e}"))?;
        if !st.success() {
            return Err("cargo build --release -p gunyah-rm failed".into());
        }
        for &n in CLONE_COUNTS {
            simulate_json(&bin, root, 5, n, &out.join(format!("simulate-{n}.json")))?;
        }
        simulator_resident(&bin, root, &out)?;
        if !args.iter().any(|a| a == "--no-qemu") {
            qemu_counts(root, &out)?;
        }
    }
    plots(root, &out)
}

/// `gunyah-rm simulate --json --write-percent W --clones N`, its JSON saved to `file` and
/// returned.
fn simulate_json(
    bin: &Path,
    root: &Path,
    write_percent: u32,
    clones: u32,
    file: &Path,
) -> Result<String, String> {
    let o = Command::new(bin)
        .current_dir(root)
        .args(["simulate", "--json", "--write-percent"])
        .arg(write_percent.to_string())
        .arg("--clones")
        .arg(clones.to_string())
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    if !o.status.success() {
        return Err(format!(
            "simulate --write-percent {write_percent} --clones {clones}: {}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    std::fs::write(file, &o.stdout).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&o.stdout).into())
}

/// The simulator's resident-memory target (DESIGN.md: peak resident <= images + copies +
/// 64 MiB): one run without writes next to the sweep's, each line with its ratio.
fn simulator_resident(bin: &Path, root: &Path, out: &Path) -> Result<(), String> {
    let nowrite = simulate_json(bin, root, 0, 1, &out.join("simulate-nowrite.json"))?;
    let mib = |b: f64| b / (1 << 20) as f64;
    println!(
        "\nSimulator resident memory vs images + copies + 64 MiB (`gunyah-rm simulate --json`)"
    );
    let mut runs: Vec<(String, String)> = vec![("no writes, 1 clone".into(), nowrite)];
    for &n in CLONE_COUNTS {
        if let Ok(j) = std::fs::read_to_string(out.join(format!("simulate-{n}.json"))) {
            runs.push((format!("5 % written, {n} clones"), j));
        }
    }
    for (what, j) in runs {
        let (Some(rss), Some(used)) = (
            number_after(&j, "\"peak_resident_bytes\":"),
            number_after(&j, "\"memory_used_bytes\":"),
        ) else {
            return Err(format!(
                "simulate --json ({what}): no peak_resident_bytes/memory_used_bytes"
            ));
        };
        // `memory_used_bytes` is the image once plus every CoW copy.
        let limit = used + (64 << 20) as f64;
        println!(
            "  {what:24} peak resident {:8.1} MiB  limit {:8.1} MiB  ratio {:.2} ({})",
            mib(rss),
            mib(limit),
            rss / limit,
            if rss <= limit { "met" } else { "not met" }
        );
    }
    Ok(())
}

/// The QEMU figures (EL2 instructions per CoW fault next to the guest's own copy): one
/// `cargo xtask qemu` boot (`-icount`, so the counts are exact), its output kept in
/// `target/perf/qemu.txt` and the lines with instruction counts printed.
fn qemu_counts(root: &Path, out: &Path) -> Result<(), String> {
    eprintln!("xtask perf: cargo xtask qemu (EL2 instructions per CoW fault)");
    let o = Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["xtask", "qemu"])
        .output()
        .map_err(|e| format!("cargo xtask qemu: {e}"))?;
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    std::fs::write(out.join("qemu.txt"), &text).map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(format!(
            "cargo xtask qemu failed (output in {}):\n{}",
            out.join("qemu.txt").display(),
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    println!("\nQEMU (`cargo xtask qemu`, -icount): EL2 instructions per CoW fault");
    for l in text.lines().filter(|l| l.contains("instructions")) {
        println!("  {l}");
    }
    Ok(())
}

/// The median of a criterion benchmark (ns), from its `estimates.json`.
fn median(root: &Path, id: &str) -> Option<f64> {
    let p = root
        .join("target/criterion")
        .join(id)
        .join("new/estimates.json");
    let s = std::fs::read_to_string(p).ok()?;
    number_after(&s[s.find("\"median\"")?..], "\"point_estimate\":")
}

/// The number following `key` in `s`.
fn number_after(s: &str, key: &str) -> Option<f64> {
    let r = &s[s.find(key)? + key.len()..];
    let end = r
        .find(|c: char| !(c.is_ascii_digit() || ".-+eE".contains(c)))
        .unwrap_or(r.len());
    r[..end].trim().parse().ok()
}

fn plots(root: &Path, out: &Path) -> Result<(), String> {
    let dir = root.join("docs/perf");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut written = Vec::new();
    let mut save = |name: &str, svg: Option<String>| -> Result<(), String> {
        if let Some(svg) = svg {
            let p = dir.join(name);
            std::fs::write(&p, svg).map_err(|e| format!("{}: {e}", p.display()))?;
            written.push(p);
        } else {
            eprintln!("xtask perf: no data for {name} (run `cargo xtask perf` first)");
        }
        Ok(())
    };
    save("cow_fault_vs_vms.svg", fault_vs(root, Axis::Vms))?;
    save("cow_fault_vs_size.svg", fault_vs(root, Axis::Size))?;
    save("memory_vs_clones.svg", memory_vs_clones(out))?;
    save("rpc_vs_parcels.svg", rpc_vs_parcels(root))?;
    save("faults_vs_threads.svg", faults_vs_threads(root))?;
    for p in &written {
        eprintln!("xtask perf: wrote {}", p.display());
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Axis {
    Vms,
    Size,
}

/// Fault cost (ns) against VM count (64 MiB, dense and spread) or image size (1 VM), with the
/// cold memcpy (up to its instructions' end and up to its stores' completion) and Linux's file
/// CoW fault of the same run as horizontal lines.
fn fault_vs(root: &Path, axis: Axis) -> Option<String> {
    let g = "cow_fault";
    let anchor = |a: &str, b: &str| {
        let v: Vec<f64> = [a, b]
            .iter()
            .filter_map(|i| median(root, &format!("{g}/{i}")))
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let memcpy = anchor("memcpy_4k_cold", "memcpy_4k_cold_after");
    let complete = anchor("memcpy_4k_complete", "memcpy_4k_complete_after");
    let linux = anchor("linux_file_cow_before", "linux_file_cow_after");
    let fork = anchor("linux_fork_cow_before", "linux_fork_cow_after");
    let mut series = Vec::new();
    let (title, xlabel, xs): (&str, &str, Vec<(f64, String)>) = match axis {
        Axis::Vms => (
            "CoW fault vs VMs sharing the image",
            "VMs",
            [1u32, 8, 64]
                .iter()
                .map(|&v| (v as f64, format!("{v}vm")))
                .collect(),
        ),
        Axis::Size => (
            "CoW fault vs golden image size (1 VM)",
            "golden image (MiB)",
            [
                (1.0, "1MiB"),
                (64.0, "64MiB"),
                (1024.0, "1GiB"),
                (4096.0, "4GiB"),
            ]
            .iter()
            .map(|&(x, n)| (x, n.to_string()))
            .collect(),
        ),
    };
    for how in ["dense", "spread"] {
        let pts: Vec<(f64, f64)> = xs
            .iter()
            .filter_map(|(x, n)| {
                let id = match axis {
                    // Criterion writes `/` in a parameter as `_`.
                    Axis::Vms => format!("{g}/fault/{n}_64MiB_{how}"),
                    Axis::Size => format!("{g}/fault/1vm_{n}_{how}"),
                };
                median(root, &id).map(|y| (*x, y))
            })
            .collect();
        if !pts.is_empty() {
            series.push((format!("RM CoW fault, {how}"), pts));
        }
    }
    if series.is_empty() {
        return None;
    }
    let (lo, hi) = (xs.first()?.0, xs.last()?.0);
    for (name, v) in [
        ("cold 4 KiB memcpy", memcpy),
        ("the same, completed (fence)", complete),
        ("Linux file CoW fault", linux),
        ("Linux fork CoW fault", fork),
    ] {
        if let Some(v) = v {
            series.push((name.to_string(), vec![(lo, v), (hi, v)]));
        }
    }
    Some(chart(title, xlabel, "ns per fault", true, &series))
}

fn memory_vs_clones(out: &Path) -> Option<String> {
    let mut shared = Vec::new();
    let mut unshared = Vec::new();
    let mut host = Vec::new();
    for &n in CLONE_COUNTS {
        let s = std::fs::read_to_string(out.join(format!("simulate-{n}.json"))).ok()?;
        let mib = |k: &str| number_after(&s, &format!("\"{k}\":")).map(|b| b / (1u64 << 20) as f64);
        shared.push((n as f64, mib("memory_used_bytes")?));
        unshared.push((n as f64, mib("memory_without_sharing_bytes")?));
        if let Some(h) = mib("peak_resident_bytes") {
            host.push((n as f64, h));
        }
    }
    let mut series = vec![
        (
            "with golden sharing (image once + copies)".to_string(),
            shared,
        ),
        (
            "without sharing (every clone its own copy)".to_string(),
            unshared,
        ),
    ];
    if !host.is_empty() {
        series.push(("simulator process, peak resident".to_string(), host));
    }
    Some(chart(
        "Memory vs clones (192 MiB image, 5 % of it written per clone)",
        "clones",
        "MiB",
        true,
        &series,
    ))
}

fn rpc_vs_parcels(root: &Path) -> Option<String> {
    let pts: Vec<(f64, f64)> = [10u32, 1000, 10000]
        .iter()
        .filter_map(|&n| {
            // Four requests per cycle.
            median(root, &format!("rpc_cycle/{n}")).map(|ns| (n as f64, 4.0 * 1e3 / ns))
        })
        .collect();
    if pts.is_empty() {
        return None;
    }
    let target = vec![(10.0, 1.0), (10000.0, 1.0)];
    Some(chart(
        "RPC dispatch vs live parcels",
        "live parcels",
        "M requests/s",
        true,
        &[
            ("share+accept+release+reclaim".into(), pts),
            ("target 1 M/s".into(), target),
        ],
    ))
}

/// CoW faults/s of 1 and 2 vCPU threads, each faulting in its own VM, with the linear-scaling
/// line: the medians of the bench's alternating rounds, as its report prints them (saved in
/// `target/perf/fault_scaling.txt`), so the plot shows the figures the ratio is made of.
fn faults_vs_threads(root: &Path) -> Option<String> {
    let report = std::fs::read_to_string(root.join("target/perf/fault_scaling.txt")).ok()?;
    let (one, two) = thread_medians(&report)?;
    let (one, two) = (one / 1e6, two / 1e6);
    let pts = vec![(1.0, one), (2.0, two)];
    Some(chart(
        "CoW faults/s vs vCPU threads (each in its own VM)",
        "vCPU threads",
        "M faults/s",
        false,
        &[
            ("ConcurrentRm::handle_access_fault".into(), pts),
            (
                "linear (2 x one thread)".into(),
                vec![(1.0, one), (2.0, 2.0 * one)],
            ),
            (
                "target: 2 threads >= 1.6 x one".into(),
                vec![(1.0, one), (2.0, 1.6 * one)],
            ),
        ],
    ))
}

/// The 1- and 2-thread medians (faults/s) of `fault_scaling`'s report line, not its best rounds.
fn thread_medians(report: &str) -> Option<(f64, f64)> {
    let line = report.lines().find(|l| l.starts_with("faults/s, CoW"))?;
    let medians = &line[line.find("median 1 thread ")?..];
    let one = number_after(medians, "median 1 thread ")?;
    Some((one, number_after(medians, ", 2 threads ")?))
}

/// A line chart: log-scale x when `logx`, linear y from 0.
fn chart(
    title: &str,
    xlabel: &str,
    ylabel: &str,
    logx: bool,
    series: &[(String, Vec<(f64, f64)>)],
) -> String {
    const W: f64 = 720.0;
    const H: f64 = 420.0;
    const L: f64 = 70.0;
    const R: f64 = 250.0;
    const T: f64 = 40.0;
    const B: f64 = 50.0;
    const COLORS: &[&str] = &[
        "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
    ];
    let fx = |x: f64| if logx { x.max(1e-9).log10() } else { x };
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
    let (x0, x1) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), p| {
        (a.min(fx(p.0)), b.max(fx(p.0)))
    });
    let (x0, x1) = if x1 > x0 {
        (x0, x1)
    } else {
        (x0 - 1.0, x1 + 1.0)
    };
    let ymax = all.iter().fold(0.0f64, |m, p| m.max(p.1)) * 1.15;
    let ymax = if ymax > 0.0 { ymax } else { 1.0 };
    let px = |x: f64| L + (fx(x) - x0) / (x1 - x0) * (W - L - R);
    let py = |y: f64| H - B - y / ymax * (H - T - B);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>
<line x1="{L}" y1="{}" x2="{}" y2="{}" stroke="black"/>
<line x1="{L}" y1="{T}" x2="{L}" y2="{}" stroke="black"/>
<text x="{}" y="{}" text-anchor="middle">{}</text>
<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>
"#,
        (W - R + L) / 2.0,
        esc(title),
        H - B,
        W - R,
        H - B,
        H - B,
        (W - R + L) / 2.0,
        H - 12.0,
        esc(xlabel),
        (H - B + T) / 2.0,
        (H - B + T) / 2.0,
        esc(ylabel)
    );
    for i in 0..=5 {
        let y = ymax * i as f64 / 5.0;
        let _ = writeln!(
            s,
            r##"<line x1="{L}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#ddd"/><text x="{2}" y="{3:.1}" text-anchor="end">{4}</text>"##,
            py(y),
            W - R,
            L - 6.0,
            py(y) + 4.0,
            tick(y)
        );
    }
    let mut xt: Vec<f64> = all.iter().map(|p| p.0).collect();
    xt.sort_by(f64::total_cmp);
    xt.dedup();
    for x in xt {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            px(x),
            H - B + 16.0,
            tick(x)
        );
    }
    for (k, (name, pts)) in series.iter().enumerate() {
        let c = COLORS[k % COLORS.len()];
        let path: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for &(x, y) in pts {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"/>"#,
                px(x),
                py(y)
            );
        }
        let ly = T + 10.0 + 20.0 * k as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{0}" y1="{ly}" x2="{1}" y2="{ly}" stroke="{c}" stroke-width="2"/><text x="{2}" y="{3}">{4}</text>"#,
            W - R + 10.0,
            W - R + 30.0,
            W - R + 35.0,
            ly + 4.0,
            esc(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn tick(v: f64) -> String {
    if v >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::thread_medians;

    /// The plot takes the medians of the alternating rounds, not the best rounds, and not the
    /// "2 threads" of the CPU-time or copy lines that follow.
    #[test]
    fn thread_medians_come_from_the_faults_line() {
        let report = "cow_faults_in_different_vms/threads/2\n\
            faults/s, CoW in different VMs (200 alternating rounds of 4096 faults per thread, 2 \
            cores, threads pinned to CPUs [0, 1], load average 1.20): median 1 thread 1506211, \
            2 threads 2630583: ratio 1.75; best rounds 1854292 and 2977373: ratio 1.61\n\
            faults per CPU-second: median 1 thread 1507916, 2 threads 1336430\n";
        assert_eq!(thread_medians(report), Some((1506211.0, 2630583.0)));
        assert_eq!(
            thread_medians("faults per CPU-second: median 1 thread 1, 2 threads 2"),
            None
        );
    }
}
