//! Links the payload at 0x41000000 (Gunyah's HLOS entry on QEMU) and compiles the DT HLOS
//! gives each clone VM (`clone.dts`) with `dtc`, only when building for aarch64-unknown-none.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=clone.dts");
    println!("cargo:rerun-if-changed=spinner.dts");
    println!("cargo:rerun-if-changed=racer.dts");
    if std::env::var("TARGET").as_deref() == Ok("aarch64-unknown-none") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
        let out = std::env::var("OUT_DIR").unwrap_or_default();
        for name in ["clone", "spinner", "racer"] {
            let status = std::process::Command::new("dtc")
                .args(["-I", "dts", "-O", "dtb", "-o"])
                .arg(format!("{out}/{name}.dtb"))
                .arg(format!("{dir}/{name}.dts"))
                .status();
            match status {
                Ok(s) if s.success() => {}
                other => {
                    panic!("dtc failed on {name}.dts ({other:?}); install it: cargo xtask setup")
                }
            }
        }
    }
}
