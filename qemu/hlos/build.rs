//! Links the payload at 0x41000000 (Gunyah's HLOS entry on QEMU) and compiles with `dtc`,
//! only when building for aarch64-unknown-none, the DTs HLOS puts in its VMs' image parcels:
//! the hand-made ones of its own scene (`clone.dts`, `spinner.dts`, `racer.dts`) and the
//! VM configs of `vm-configs/` it launches (shipped files as they are, board-sized variants
//! from `configs/`), plus `protected-vm-ok`: `configs/protected-vm.dts` with the digest of
//! the zygote's known golden content (`src/pattern.rs`) computed here.
use sha2::{Digest, Sha256};

include!("src/pattern.rs");

/// (output name, source relative to this crate).
const DTS: [(&str, &str); 8] = [
    ("clone", "clone.dts"),
    ("spinner", "spinner.dts"),
    ("racer", "racer.dts"),
    ("trusted-vm", "../../vm-configs/trusted-vm.dts"),
    ("zygote", "configs/zygote.dts"),
    ("app-clone", "configs/app-clone.dts"),
    ("app-clone-stop", "configs/app-clone-stop.dts"),
    ("protected-vm", "configs/protected-vm.dts"),
];

fn dtc(out: &str, name: &str, src: &std::path::Path) {
    let status = std::process::Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb", "-o"])
        .arg(format!("{out}/{name}.dtb"))
        .arg(src)
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => panic!(
            "dtc failed on {} ({other:?}); install it: cargo xtask setup",
            src.display()
        ),
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=src/pattern.rs");
    println!("cargo:rerun-if-changed=configs");
    println!("cargo:rerun-if-changed=../../vm-configs");
    for (_, src) in DTS {
        println!("cargo:rerun-if-changed={src}");
    }
    if std::env::var("TARGET").as_deref() != Ok("aarch64-unknown-none") {
        return;
    }
    let dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    println!("cargo:rustc-link-arg-bins=-T{}/link.ld", dir.display());
    let out = std::env::var("OUT_DIR").unwrap_or_default();
    for (name, src) in DTS {
        dtc(&out, name, &dir.join(src));
    }
    // The golden image the zygote seals: its whole seal range filled with the pattern.
    let mut h = Sha256::new();
    for page in 0..ZYGOTE_SEAL_SIZE / 4096 {
        for word in 0..512 {
            h.update(zygote_word(page, word).to_le_bytes());
        }
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let ok = std::path::Path::new(&out).join("protected-vm-ok.dts");
    let src = format!(
        "// configs/protected-vm.dts with the digest of the board zygote's golden image.\n\
         /include/ \"{}\"\n/ {{ gunyah-vm-config {{ golden {{ digest = \"sha256:{hex}\"; }}; }}; }};\n",
        dir.join("configs/protected-vm.dts").display()
    );
    std::fs::write(&ok, src).expect("write protected-vm-ok.dts");
    dtc(&out, "protected-vm-ok", &ok);
}
