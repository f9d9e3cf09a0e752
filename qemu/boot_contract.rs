//! Gunyah's primary-VM boot contract on QEMU (spec sheet §B.2–B.4), host side: the machine
//! DTB QEMU itself makes, without the GIC ITS node and the PCIe `msi-map` (the hypervisor
//! uses no LPIs), an HLOS image as a raw binary, and the QEMU command line that loads the
//! board at EL2, the DTB at 0x40F00000 and HLOS at 0x41000000.
//!
//! Included with `#[path]` by xtask and by the board's QEMU test, so both start the board
//! the same way. Uses only `std` and the Debian tools `cargo xtask setup` installs
//! (`qemu-system-aarch64`, `fdtput`/`fdtget` and `dtc` from device-tree-compiler).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the DTB is loaded (`HLOS_DT_BASE` of Gunyah's QEMU platform).
pub const DTB_ADDR: u64 = 0x40F0_0000;
/// Where the HLOS image is loaded and entered (`HLOS_ENTRY_POINT`).
pub const HLOS_ADDR: u64 = 0x4100_0000;
/// Where an initrd is loaded (`HLOS_RAM_FS_BASE`), below the DTB: at most 7 MiB.
pub const INITRD_ADDR: u64 = 0x4080_0000;
/// RAM QEMU gives the machine (Gunyah's QEMU platform needs exactly 2 GiB).
pub const RAM: &str = "2G";
/// The machine: GICv3, EL2, no high memory (as Gunyah's scripts start it).
pub const MACHINE: &str = "virt,virtualization=on,gic-version=3,highmem=off";

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{cmd:?}: cannot start: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Dump QEMU's own virt DTB for `smp` CPUs into `out` (`-machine dumpdtb=`) and remove the
/// ITS node and the `msi-map` property that points at it, as Gunyah's `run-qemu.sh` does.
/// `qemu` is the `qemu-system-aarch64` to run; `fdtput`/`fdtget` come from PATH.
pub fn machine_dtb(qemu: &Path, out: &Path, smp: u32) -> Result<(), String> {
    let _ = std::fs::remove_file(out);
    run(Command::new(qemu)
        .arg("-machine")
        .arg(format!("{MACHINE},dumpdtb={}", out.display()))
        .args(["-cpu", "max", "-m", RAM, "-smp", &smp.to_string()])
        .args(["-nographic", "-nic", "none"]))?;
    let dtb = out.to_string_lossy().into_owned();
    // Find the ITS (a child of the GIC node) by its compatible string.
    let intc = run(Command::new("fdtget").args(["-l", &dtb, "/"]))?
        .lines()
        .find(|n| n.starts_with("intc@"))
        .map(|n| format!("/{n}"))
        .ok_or("QEMU's DTB has no /intc@... node")?;
    for child in run(Command::new("fdtget").args(["-l", &dtb, &intc]))?.lines() {
        let path = format!("{intc}/{child}");
        let compat = run(Command::new("fdtget").args([&dtb, &path, "compatible"]))?;
        if compat.contains("arm,gic-v3-its") {
            run(Command::new("fdtput").args(["-r", &dtb, &path]))?;
        }
    }
    for node in run(Command::new("fdtget").args(["-l", &dtb, "/"]))?.lines() {
        let path = format!("/{node}");
        let props = run(Command::new("fdtget").args(["-p", &dtb, &path]))?;
        if props.lines().any(|p| p == "msi-map") {
            run(Command::new("fdtput").args(["-d", &dtb, &path, "msi-map"]))?;
        }
    }
    Ok(())
}

/// Flatten an ELF64 little-endian executable into the raw image a loader puts at its lowest
/// physical load address (the form of a Linux `Image`): the bytes of every PT_LOAD segment
/// at its offset from that address (zero-filled gaps; the `.bss` tail is not included).
/// Returns the image's load address.
pub fn elf_to_raw(elf: &Path, out: &Path) -> Result<u64, String> {
    let b = std::fs::read(elf).map_err(|e| format!("{}: {e}", elf.display()))?;
    let bad = |what: &str| format!("{}: not a 64-bit little-endian ELF ({what})", elf.display());
    let u16_at = |o: usize| b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let u64_at = |o: usize| {
        b.get(o..o + 8)
            .map(|s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
    };
    if b.get(..6) != Some(&[0x7F, b'E', b'L', b'F', 2, 1][..]) {
        return Err(bad("header"));
    }
    let phoff = u64_at(0x20).ok_or_else(|| bad("phoff"))? as usize;
    let phentsize = u16_at(0x36).ok_or_else(|| bad("phentsize"))? as usize;
    let phnum = u16_at(0x38).ok_or_else(|| bad("phnum"))? as usize;
    let mut segs = Vec::new();
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let ty = b
            .get(ph..ph + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
        if ty != Some(1) {
            continue; // PT_LOAD only
        }
        let off = u64_at(ph + 8).ok_or_else(|| bad("p_offset"))? as usize;
        let paddr = u64_at(ph + 0x18).ok_or_else(|| bad("p_paddr"))?;
        let filesz = u64_at(ph + 0x20).ok_or_else(|| bad("p_filesz"))? as usize;
        if filesz == 0 {
            continue;
        }
        let data = b.get(off..off + filesz).ok_or_else(|| bad("segment"))?;
        segs.push((paddr, data));
    }
    let base = segs
        .iter()
        .map(|s| s.0)
        .min()
        .ok_or_else(|| bad("no loadable segment"))?;
    let end = segs
        .iter()
        .map(|s| s.0 + s.1.len() as u64)
        .max()
        .unwrap_or(base);
    let mut img = vec![0u8; (end - base) as usize];
    for (paddr, data) in segs {
        let at = (paddr - base) as usize;
        img[at..at + data.len()].copy_from_slice(data);
    }
    std::fs::write(out, img).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(base)
}

/// The QEMU command that starts `board` as Gunyah is started on QEMU, with `dtb` (from
/// [`machine_dtb`] for the same `smp`) at 0x40F00000 and the raw HLOS image `hlos` at
/// 0x41000000. `-semihosting` lets the board end the run with a status; `icount` adds
/// `-icount shift=0`, which makes the PMU count instructions (and runs the CPUs in turn).
pub fn qemu_command(
    qemu: &Path,
    board: &Path,
    dtb: &Path,
    hlos: &Path,
    smp: u32,
    icount: bool,
) -> Command {
    let mut c = Command::new(qemu);
    c.args(["-machine", MACHINE, "-cpu", "max", "-m", RAM])
        .args(["-smp", &smp.to_string()])
        .args(["-nographic", "-nic", "none", "-semihosting"]);
    if icount {
        c.args(["-icount", "shift=0"]);
    }
    c.arg("-kernel").arg(board);
    c.arg("-device")
        .arg(format!("loader,file={},addr={DTB_ADDR:#x}", dtb.display()));
    c.arg("-device").arg(format!(
        "loader,file={},addr={HLOS_ADDR:#x}",
        hlos.display()
    ));
    c
}

/// The file QEMU's loader puts at 0x41000000 for the HLOS image `src`: an ELF (which must
/// load at 0x41000000) flattened into `raw` ([`elf_to_raw`]), or anything else as it is (a
/// raw image: a Linux `Image`, U-Boot's `u-boot.bin`).
pub fn hlos_image(src: &Path, raw: &Path) -> Result<PathBuf, String> {
    let mut magic = [0u8; 4];
    let n = std::fs::File::open(src)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut magic))
        .map_err(|e| format!("{}: {e}", src.display()))?;
    if n < 4 || &magic != b"\x7fELF" {
        return Ok(src.to_path_buf());
    }
    let base = elf_to_raw(src, raw)?;
    if base != HLOS_ADDR {
        return Err(format!(
            "{}: loads at {base:#x}; an HLOS image must be linked at {HLOS_ADDR:#x}",
            src.display()
        ));
    }
    Ok(raw.to_path_buf())
}

/// A primary-VM payload to boot on the board, as `cargo xtask qemu --hlos IMAGE` does.
pub struct Hlos<'a> {
    /// The `qemu-system-aarch64` to run.
    pub qemu: &'a Path,
    /// The board's ELF (loaded with `-kernel`, entered at EL2).
    pub board: &'a Path,
    /// The payload: a raw image or an ELF linked at 0x41000000 ([`hlos_image`]).
    pub image: &'a Path,
    /// Where the DTB and a flattened ELF are written.
    pub dir: &'a Path,
    /// CPUs (`-smp`).
    pub smp: u32,
    /// `-icount shift=0`.
    pub icount: bool,
    /// `/chosen/bootargs` for the payload (a Linux kernel command line), set in the DTB as a
    /// bootloader sets it; the board passes the DT on with it.
    pub bootargs: Option<&'a str>,
    /// An initrd (a Linux initramfs) loaded at [`INITRD_ADDR`], named by `/chosen`'s
    /// `linux,initrd-start`/`-end` in the DTB, as Gunyah's `run-qemu.sh` loads and names it.
    pub initrd: Option<&'a Path>,
}

/// Everything `cargo xtask qemu` does to boot the board with `h.image` as HLOS but build the
/// board: QEMU's machine DTB for `h.smp` CPUs into `h.dir` ([`machine_dtb`], with
/// `/chosen/bootargs` if `h.bootargs`, and the initrd's place if `h.initrd`), the image as
/// QEMU's loader takes it ([`hlos_image`]), and the QEMU command ([`qemu_command`]). The
/// board's QEMU tests call it too, so the path a user's payload takes is tested.
pub fn hlos_command(h: &Hlos) -> Result<Command, String> {
    std::fs::create_dir_all(h.dir).map_err(|e| format!("{}: {e}", h.dir.display()))?;
    let image = hlos_image(h.image, &h.dir.join("hlos-image.bin"))?;
    let dtb = h.dir.join(format!("virt-smp{}.dtb", h.smp));
    machine_dtb(h.qemu, &dtb, h.smp)?;
    let dtb_s = dtb.to_string_lossy();
    if let Some(args) = h.bootargs {
        run(Command::new("fdtput").args(["-t", "s", &dtb_s, "/chosen", "bootargs", args]))?;
    }
    let end = match h.initrd {
        Some(initrd) => {
            let len = std::fs::metadata(initrd)
                .map_err(|e| format!("{}: {e}", initrd.display()))?
                .len();
            let room = DTB_ADDR - INITRD_ADDR;
            if len > room {
                return Err(format!(
                    "{}: {len} bytes; an initrd must fit in {INITRD_ADDR:#x}..{DTB_ADDR:#x} \
                     ({room} bytes, below the DTB)",
                    initrd.display()
                ));
            }
            Some(INITRD_ADDR + len)
        }
        None => None,
    };
    if let Some(end) = end {
        for (prop, at) in [
            ("linux,initrd-start", INITRD_ADDR),
            ("linux,initrd-end", end),
        ] {
            run(Command::new("fdtput").args([
                "-t",
                "x",
                &dtb_s,
                "/chosen",
                prop,
                &format!("{:#x}", at >> 32),
                &format!("{:#x}", at & 0xFFFF_FFFF),
            ]))?;
        }
    }
    let mut cmd = qemu_command(h.qemu, h.board, &dtb, &image, h.smp, h.icount);
    if let Some(initrd) = h.initrd {
        cmd.arg("-device").arg(format!(
            "loader,file={},addr={INITRD_ADDR:#x}",
            initrd.display()
        ));
    }
    Ok(cmd)
}
