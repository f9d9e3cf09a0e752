//! The `rpc_cycle` bench's cycle (`rm/benches/common/rpc.rs`: share, accept, release, reclaim
//! as encoded packets through `Rm::packet_from`, replies drained with `Rm::drain_outgoing`)
//! run a fixed number of times with a given number of other live parcels, for an instruction
//! count under callgrind (deterministic, unlike wall time on a shared machine). The cycles run
//! in `cycles`, so `--toggle-collect` leaves the setup out:
//!
//! ```sh
//! cargo build --release -p gunyah-rm --example rpc_profile
//! valgrind --tool=callgrind --toggle-collect='rpc_profile::cycles' \
//!     target/release/examples/rpc_profile 10000 2000
//! ```
//!
//! Arguments: live parcels (default 10), cycles (default 1000). Prints ns per cycle (wall).

#[path = "../benches/common/rpc.rs"]
mod rpc;

use gunyah_rm::sim::SimPlatform;
use gunyah_rm::Rm;

#[inline(never)]
fn cycles(rm: &mut Rm<SimPlatform>, vm: u16, n: u64) {
    for _ in 0..n {
        rpc::cycle(rm, vm, rpc::CYCLE_PAGE);
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let live: u64 = args.next().map_or(10, |a| a.parse().expect("live parcels"));
    let n: u64 = args.next().map_or(1000, |a| a.parse().expect("cycles"));
    let (mut rm, vm) = rpc::setup(live);
    let t = std::time::Instant::now();
    cycles(&mut rm, vm, n);
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    println!("{live} live parcels, {n} cycles: {ns:.0} ns per cycle");
}
