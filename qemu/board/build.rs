//! Links the EL2 image at 0x80000000, above HLOS's 1 GiB (only when building for
//! aarch64-unknown-none).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link.ld");
    if std::env::var("TARGET").as_deref() == Ok("aarch64-unknown-none") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
    }
}
