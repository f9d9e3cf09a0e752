//! `gunyah-rm simulate` through the built binary: the figures must be what the scenario
//! implies (192 MiB golden image = 49152 pages; each clone copies exactly the pages it writes
//! unless its quota runs out), worked out here by hand from the configs.

use std::path::PathBuf;
use std::process::{Command, Output};

const IMAGE_PAGES: u64 = 0x0c00_0000 / 4096; // zygote.dts seal-ranges: 192 MiB
const PAGE: u64 = 4096;
const ZERO_DIGEST: &str = "46b23b74b0d431993099b9ccef75ac4e30dc48305089aa236b6ff1de97fed713";

fn configs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../vm-configs")
}

fn simulate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gunyah-rm"))
        .arg("simulate")
        .args(args)
        // Not the repository root: the default configs must still be found.
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "status {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn default_configs_three_clones_two_percent() {
    let v = json(&simulate(&[
        "--clones",
        "3",
        "--write-percent",
        "2",
        "--json",
    ]));
    // 2% of 49152 pages = 983 (floor of 983.04) per clone, one CoW copy each.
    let written = 983;
    assert_eq!(v["template"], "zygote");
    assert_eq!(v["clone_config"], "app-clone-0");
    assert_eq!(v["golden_digest"], ZERO_DIGEST);
    assert_eq!(v["image_pages"], IMAGE_PAGES);
    assert_eq!(v["mapped_pages_per_clone"], IMAGE_PAGES);
    assert_eq!(v["clones"], 3);
    assert_eq!(v["written_pages_per_clone"], written);
    assert_eq!(v["pages_copied"], 3 * written);
    assert_eq!(v["faults_served"], 3 * written);
    assert_eq!(v["unserved_writes"], 0);
    assert_eq!(v["pages_shared"], 3 * IMAGE_PAGES - 3 * written);
    assert_eq!(v["memory_used_bytes"], (IMAGE_PAGES + 3 * written) * PAGE);
    assert_eq!(v["memory_without_sharing_bytes"], 3 * IMAGE_PAGES * PAGE);
    assert_eq!(v["clone_launch_ns"].as_array().unwrap().len(), 3);
    // The image is all zeros, so the simulator backs exactly the pages the clones wrote and
    // one device-tree page per launched VM (4 at boot, 3 clones).
    assert_eq!(v["backed_pages"], 3 * written + 7);
    assert!(v["faults_per_second"].as_f64().unwrap() > 0.0);
    let events: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    // Boot VMs first (trusted-vm fixed 0x2d, zygote 0x80), then the seal and
    // the boot clones, then the three clones on request.
    assert_eq!(events[0], "launched trusted-vm as VM 0x2d");
    assert_eq!(events[1], "launched zygote as VM 0x80");
    assert!(events.contains(&"launched protected-vm as VM 0x82"));
    assert!(events.contains(&"launched 3 clones of app-clone-0: VMs 0x83, 0x84, 0x85"));
    assert!(events.contains(&"isolation check after the writes: ok"));
}

#[test]
fn quota_exhaustion_stops_writes_at_the_quota() {
    let c = configs();
    let files: Vec<String> = ["platform.dts", "zygote.dts", "app-clone-stop.dts"]
        .iter()
        .map(|f| c.join(f).to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["--config"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["--clones", "2", "--write-percent", "1", "--json"]);
    let v = json(&simulate(&args));
    // app-clone-1 may copy 256 pages (quota-pages); 1% is 491 writes, so 235
    // per clone are refused (stop-vm: the VM is stopped at the 257th).
    assert_eq!(v["clone_config"], "app-clone-1");
    assert_eq!(v["written_pages_per_clone"], 491);
    assert_eq!(v["pages_copied"], 2 * 256);
    assert_eq!(v["faults_served"], 2 * 256);
    assert_eq!(v["unserved_writes"], 2 * (491 - 256));
}

#[test]
fn table_output_and_errors() {
    let out = simulate(&["--clones", "1", "--write-percent", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let row = |k: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(k))
            .unwrap_or_else(|| panic!("no {k} row in:\n{text}"))
            .to_string()
    };
    assert!(row("clones").contains("1 × app-clone-0"), "{text}");
    assert!(row("pages copied").contains(" 0 "), "{text}");
    assert!(
        row("pages shared").contains(&IMAGE_PAGES.to_string()),
        "{text}"
    );

    // A set without a template cannot run the scenario.
    let trusted = configs().join("trusted-vm.dts");
    let out = simulate(&["--config", trusted.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no template VM"));
    // A file that is not there.
    let out = simulate(&["--config", "/nonexistent/x.dts"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.dts"));
    // Out-of-range arguments are refused by the parser.
    assert_eq!(simulate(&["--write-percent", "101"]).status.code(), Some(2));
    assert_eq!(simulate(&["--clones", "0"]).status.code(), Some(2));
    assert_eq!(simulate(&["--clones", "many"]).status.code(), Some(2));
}

/// `--clones` is bounded by the RM's dynamic VMIDs: 63, of which the template (zygote), the
/// clone launched at boot and the protected VM take three in the default configs, so 60
/// clones run (`max`) and 61 are refused before any launch, naming the limit.
#[test]
fn clone_count_is_the_rms_vmid_limit() {
    let out = simulate(&["--clones", "61", "--write-percent", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--clones 61: the RM has 60 dynamic VMIDs left for clones"),
        "{err}"
    );
    assert!(!err.contains("launched 61 clones"), "{err}");
    let v = json(&simulate(&[
        "--clones",
        "max",
        "--write-percent",
        "0",
        "--json",
    ]));
    assert_eq!(v["clones"], 60);
    assert_eq!(v["pages_copied"], 0);
    // One device-tree page per launched VM (4 at boot, 60 clones), nothing else.
    assert_eq!(v["backed_pages"], 64);
    let v = json(&simulate(&[
        "--clones",
        "60",
        "--write-percent",
        "0",
        "--json",
    ]));
    assert_eq!(v["clones"], 60);
}

/// `gunyah-rm serve --config`: the configs' boot VMs run before the socket opens, and the
/// template's OS RUN (sent by the template itself over the socket) seals its image and
/// launches the clones waiting for it. Packets written by hand (rm-rpc-abi.md §1.2).
mod serve_config {
    use std::io::Read;
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use nix::sys::socket::{
        connect, recv, send, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag,
        SockType, UnixAddr,
    };
    use nix::sys::time::TimeVal;

    struct Conn(OwnedFd, u16);

    impl Conn {
        fn open(path: &Path, vmid: u16) -> Conn {
            let fd = socket(
                AddressFamily::Unix,
                SockType::SeqPacket,
                SockFlag::SOCK_CLOEXEC,
                None,
            )
            .unwrap();
            connect(fd.as_raw_fd(), &UnixAddr::new(path).unwrap()).unwrap();
            // A hang guard, not a timing check: sealing 192 MiB on a loaded machine takes a while.
            setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(300, 0)).unwrap();
            let mut h = b"GRM1".to_vec();
            h.extend_from_slice(&vmid.to_le_bytes());
            h.extend_from_slice(&[0, 0]);
            let c = Conn(fd, 0x10);
            c.send(&h);
            assert_eq!(c.recv(), h, "hello answer for VM {vmid:#x}");
            c
        }
        fn send(&self, p: &[u8]) {
            send(self.0.as_raw_fd(), p, MsgFlags::MSG_NOSIGNAL).unwrap();
        }
        fn recv(&self) -> Vec<u8> {
            let mut b = [0u8; 256];
            let n = recv(self.0.as_raw_fd(), &mut b, MsgFlags::empty()).unwrap();
            b[..n].to_vec()
        }
        /// One single-fragment request; returns (error code, data) of its reply,
        /// skipping notifications (type 3) that arrive first.
        fn call(&mut self, msg_id: u32, payload: &[u8]) -> (u32, Vec<u8>) {
            self.1 += 1;
            let mut p = vec![0x21, 0x01];
            p.extend_from_slice(&self.1.to_le_bytes());
            p.extend_from_slice(&msg_id.to_le_bytes());
            p.extend_from_slice(payload);
            self.send(&p);
            loop {
                let r = self.recv();
                assert!(r.len() >= 12, "short packet {r:?}");
                if r[1] & 3 == 3 {
                    continue;
                }
                assert_eq!(r[1], 0x02, "a single-fragment reply");
                assert_eq!(u16::from_le_bytes([r[2], r[3]]), self.1);
                assert_eq!(u32::from_le_bytes(r[4..8].try_into().unwrap()), msg_id);
                let err = u32::from_le_bytes(r[8..12].try_into().unwrap());
                return (err, r[12..].to_vec());
            }
        }
    }

    const VM_GET_STATE: u32 = 0x5600_0017;
    const VM_SET_STATUS: u32 = 0x5600_0080;
    const VM_MEM_STATS: u32 = 0x4700_0020;

    #[test]
    fn serve_with_configs_launches_and_seals_on_os_run() {
        let dir =
            std::env::temp_dir().join(format!("gunyah-rm-launch-serve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("rm.sock");
        let mut files: Vec<_> = std::fs::read_dir(super::configs())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "dts"))
            .collect();
        files.sort();
        let mut child = Command::new(env!("CARGO_BIN_EXE_gunyah-rm"))
            .arg("serve")
            .arg("--socket")
            .arg(&sock)
            .arg("--config")
            .args(&files)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "no socket");
            assert!(child.try_wait().unwrap().is_none(), "serve exited");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut hlos = Conn::open(&sock, 3);
        // The zygote (0x80) and the trusted VM (0x2d) run: vm_status 3 = RUNNING.
        for vmid in [0x80u16, 0x2d] {
            let (err, d) = hlos.call(VM_GET_STATE, &[vmid as u8, 0, 0, 0]);
            assert_eq!((err, d[0]), (0, 3), "VM {vmid:#x}");
        }
        // app-clone-0 waits for the image: VMID 0x81 does not exist yet (NORESOURCE).
        assert_eq!(hlos.call(VM_GET_STATE, &[0x81, 0, 0, 0]).0, 2);
        // The zygote itself reports OS status RUN (os_status 4).
        let mut zygote = Conn::open(&sock, 0x80);
        assert_eq!(zygote.call(VM_SET_STATUS, &[0, 4, 0, 0]).0, 0);
        // Now the clone runs with the 192 MiB image mapped: 49152 golden pages, no copies.
        let (err, d) = hlos.call(VM_GET_STATE, &[0x81, 0, 0, 0]);
        assert_eq!((err, d[0]), (0, 3));
        let (err, d) = hlos.call(VM_MEM_STATS, &[0x81, 0, 0, 0]);
        assert_eq!(err, 0);
        let word = |i: usize| u64::from_le_bytes(d[i * 8..i * 8 + 8].try_into().unwrap());
        assert_eq!((word(1), word(2)), (49152, 0));
        drop((hlos, zygote));
        let _ = child.kill();
        let _ = child.wait();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(err.contains("launched zygote as VM 0x80"), "{err}");
        assert!(err.contains("sealed zygote-golden from VM 0x80"), "{err}");
        assert!(err.contains("launched app-clone-0 as VM 0x81"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
