//! The `clone_launch` bench's `config_clone` (`rm/benches/common/clone.rs`: a clone of a
//! sealed 512 MiB template launched from its config with `Launch::launch_vm`, torn down after)
//! run a fixed number of times, for an instruction count under callgrind (deterministic, unlike
//! wall time on a shared machine); `--toggle-collect` counts the launches only:
//!
//! ```sh
//! cargo build --release -p gunyah-rm --example clone_profile
//! valgrind --tool=callgrind '--toggle-collect=*Launch*launch_vm*' \
//!     target/release/examples/clone_profile 1000
//! ```
//!
//! Arguments: launches (default 1000), the configs' `ipa-bits` (default: the shipped configs',
//! as the bench's `config_clone`; `40` as `config_clone_ipa40`). Prints the clone's stage-2
//! table pages (PA, level) and the wall time of the launches and teardowns.

#[path = "../benches/common/clone.rs"]
mod clone;

use gunyah_rm::stage2_spaces::Stage2Backed;

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .map_or(1000, |a| a.parse().expect("launches"));
    // Second argument: the configs' `ipa-bits` (default the shipped configs', as the bench's
    // `config_clone`).
    let ipa_bits = std::env::args()
        .nth(2)
        .map_or(clone::shipped_ipa_bits(), |a| {
            let b = Some(a.parse().expect("ipa bits"));
            (b, b)
        });
    let mut st = clone::ConfigClone::with(ipa_bits, 512 << 20);
    let v = st.launch();
    st.rm
        .platform()
        .stage2()
        .get(v)
        .expect("the clone's address space")
        .for_each_table(&mut |pa, level| println!("table {pa:#x} level {level}"));
    st.teardown(v);
    let t = std::time::Instant::now();
    for _ in 0..n {
        let v = st.launch();
        st.teardown(v);
    }
    println!("{n} launches (+ teardowns) in {:?}", t.elapsed());
}
