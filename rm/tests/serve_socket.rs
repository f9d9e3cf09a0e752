//! `gunyah-rm serve` over its real Unix SOCK_SEQPACKET socket, driven from separate clients.
//!
//! Packets are written by hand from the spec (rm-rpc-abi.md §1.2, §5.5) and DESIGN.md's socket
//! transport, not produced by the crate's encoder.

mod socket;
use socket::*;

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::socket::{send, MsgFlags};

#[test]
fn hlos_gets_its_vmid_and_unknown_requests_are_unimplemented() {
    let s = Server::start("basic");
    let c = Client::hello(&s.path, HLOS);
    // Hand-written: 21 01 07 00 24 00 00 56 -> 21 02 07 00 24 00 00 56 | 00000000 | 03000000
    c.send(&[0x21, 0x01, 0x07, 0x00, 0x24, 0x00, 0x00, 0x56]);
    assert_eq!(
        c.reply(),
        [0x21, 0x02, 0x07, 0x00, 0x24, 0x00, 0x00, 0x56, 0, 0, 0, 0, 3, 0, 0, 0]
    );
    c.send(&request(8, 0x5600_00EE, &[]));
    let mut want = header(2, 0, 8, 0x5600_00EE);
    want.extend_from_slice(&[0xFF; 4]);
    assert_eq!(c.reply(), want);
}

#[test]
fn bad_hellos_are_refused_and_others_carry_on() {
    let mut s = Server::start("hello");
    let good = Client::hello(&s.path, HLOS);

    // Unknown VMID: closed without an answer.
    let c = Client::raw(&s.path);
    c.send(&hello(0x1234));
    assert_eq!(c.recv(), None);
    // Already connected VMID: closed.
    let c = Client::raw(&s.path);
    c.send(&hello(HLOS));
    assert_eq!(c.recv(), None);
    // Garbage instead of a hello: dropped.
    let c = Client::raw(&s.path);
    c.send(b"GET / HTTP/1.0\r\n");
    assert_eq!(c.recv(), None);
    // Wrong reserved bytes.
    let c = Client::raw(&s.path);
    c.send(&[b'G', b'R', b'M', b'1', 3, 0, 1, 0]);
    assert_eq!(c.recv(), None);

    assert!(s.alive());
    assert_get_vmid(&good, 1, HLOS);
}

#[test]
fn malformed_packets_get_no_reply_and_the_next_request_is_served() {
    let mut s = Server::start("garbage");
    let c = Client::hello(&s.path, HLOS);
    // Bad api byte, short packet, stray continuation, >62 continuations: all dropped (spec §1.4, §12).
    c.send(&[0x11, 0x01, 0, 0, 0x24, 0, 0, 0x56]);
    c.send(&[0x21, 0x01, 0]);
    c.send(&header(0, 1, 2, VM_GET_VMID));
    c.send(&header(1, 63, 3, VM_GET_VMID));
    assert_get_vmid(&c, 4, HLOS);

    // A packet longer than a message-queue message drops the client.
    let mut big = request(5, VM_GET_VMID, &[]);
    big.resize(300, 0);
    c.send(&big);
    assert_eq!(c.recv(), None);
    assert!(s.alive());
    let c = Client::hello(&s.path, HLOS);
    assert_get_vmid(&c, 6, HLOS);
}

#[test]
fn disconnect_mid_message_abandons_it() {
    let s = Server::start("midmsg");
    let c = Client::hello(&s.path, HLOS);
    // First fragment of a request announcing one continuation, then gone.
    let mut first = header(1, 1, 9, VM_ALLOC_VMID);
    first.resize(240, 0);
    c.send(&first);
    drop(c);
    let c = Client::hello(&s.path, HLOS);
    // A continuation of the abandoned message is a stray: dropped, no reply.
    let mut cont = header(0, 1, 9, VM_ALLOC_VMID);
    cont.extend_from_slice(&[0; 4]);
    c.send(&cont);
    assert_get_vmid(&c, 10, HLOS);
}

#[test]
fn a_flooding_client_does_not_stop_the_others() {
    let mut s = Server::start("flood");
    let other = Client::hello(&s.path, HLOS);
    // A second VM to flood from.
    let vmid = ready_vm(&other, 1);
    let flood = Client::hello(&s.path, vmid);
    flood.send(&request(2, VM_GET_VMID, &[]));
    assert_eq!(&flood.reply()[8..14], &[0, 0, 0, 0, vmid as u8, 0]);

    // 20 000 requests without reading a reply: the server must keep serving `other`.
    let req = request(3, VM_GET_STATE, &[0, 0, 0, 0]);
    for _ in 0..20_000 {
        if send(
            flood.fd.as_raw_fd(),
            &req,
            MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
        )
        .is_err()
        {
            // Our socket buffer is full or the server dropped us: both are acceptable.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert!(s.alive());
    assert_get_vmid(&other, 4, HLOS);
}

#[test]
fn sigterm_shuts_down_cleanly_and_removes_the_socket() {
    let mut s = Server::start("sigterm");
    let c = Client::hello(&s.path, HLOS);
    assert_get_vmid(&c, 1, HLOS);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "server ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    assert!(!s.path.exists(), "socket file left behind");
    assert_eq!(c.recv(), None);
}

#[test]
fn log_shows_each_decoded_message() {
    let mut s = Server::start_with("log", &["--log"]);
    let c = Client::hello(&s.path, HLOS);
    assert_get_vmid(&c, 0x42, HLOS);
    drop(c);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = s.child.wait_with_output_ref();
    assert!(out.contains("[vm 0x3] connected"), "{out}");
    assert!(
        out.contains("[vm 0x3] -> rm  request seq=66 msg_id=0x56000024 VM_GET_VMID"),
        "{out}"
    );
    assert!(
        out.contains("[vm 0x3] <- rm  reply seq=66 msg_id=0x56000024 VM_GET_VMID"),
        "{out}"
    );
    assert!(out.contains("error: OK"), "{out}");
}

#[test]
fn hlos_launches_a_vm_through_the_socket() {
    let s = Server::start("launch");
    let c = Client::hello(&s.path, HLOS);

    // VM_ALLOC_VMID(0): dynamic VMID 0x80 first (spec §12).
    let (data, _) = ok_reply(&c, 1, VM_ALLOC_VMID, &[0, 0, 0, 0]);
    assert_eq!(data, [0x80, 0, 0, 0]);
    let vm = 0x80u8;

    // MEM_LEND 2 MiB of HLOS RAM at 0x48000000 to the VM with RWX (spec §3.1 offsets).
    #[rustfmt::skip]
    let lend = [
        0, 0, 0, 0,             // mem_type NORMAL, res, flags 0, res
        0, 0, 0, 0,             // label
        1, 0, 0, 0,             // acl count 1
        vm, 0, 7, 0,            // {vmid, RWX}
        1, 0, 0, 0,             // sgl count 1
        0, 0, 0, 0x48, 0, 0, 0, 0, // ipa 0x48000000
        0, 0, 0x20, 0, 0, 0, 0, 0, // size 0x200000
        0, 0, 0, 0,             // attr count 0
    ];
    // The VM's DT goes into that memory first, through the simulator's SIM_VM_WRITE
    // (0x470000F1: u16 vmid, u16 res, u32 length, u64 ipa, bytes; DESIGN.md). It is larger
    // than one fragment, so this also sends a multi-fragment request over the socket.
    let dtb = compile_dtb(
        "/dts-v1/; / { #address-cells = <2>; #size-cells = <2>; model = \"socket-test-guest\"; \
         cpus { #address-cells = <1>; #size-cells = <0>; \
         cpu@0 { device_type = \"cpu\"; reg = <0>; }; cpu@1 { device_type = \"cpu\"; reg = <1>; }; }; };",
    );
    assert!(
        dtb.len() > 232,
        "DTB of {} bytes would not need fragments",
        dtb.len()
    );
    let mut w = vec![3, 0, 0, 0];
    w.extend_from_slice(&(dtb.len() as u32).to_le_bytes());
    w.extend_from_slice(&0x4800_0000u64.to_le_bytes());
    w.extend_from_slice(&dtb);
    for (i, chunk) in w.chunks(232).enumerate() {
        let frags = (w.len() - 1) / 232;
        let ty = if i == 0 { 1 } else { 0 };
        let mut p = header(ty, frags as u8, 20, 0x4700_00F1);
        p.extend_from_slice(chunk);
        c.send(&p);
    }
    let (r, _) = reply_after_status(&c, 20);
    assert_eq!(&r[8..12], &[0, 0, 0, 0], "SIM_VM_WRITE: {r:02x?}");

    let (data, _) = ok_reply(&c, 2, 0x5100_0012, &lend);
    let handle: [u8; 4] = data[..4].try_into().unwrap();

    // VM_CONFIG_IMAGE: vmid, auth NONE, handle, image 0/0, the DTB at offset 0 (§5.5).
    let mut cfg = vec![vm, 0, 0, 0];
    cfg.extend_from_slice(&handle);
    cfg.extend_from_slice(&[0; 16]);
    cfg.extend_from_slice(&0u64.to_le_bytes());
    cfg.extend_from_slice(&(dtb.len() as u64).to_le_bytes());
    let (_, st) = ok_reply(&c, 3, 0x5600_0009, &cfg);
    // VM_STATUS {vmid, res, INIT = 1, ...} comes before the reply.
    assert_eq!(st.last().map(|s| (s[0], s[4])), Some((vm, 1)));

    let (_, st) = ok_reply(&c, 4, 0x5600_000B, &[vm, 0, 0, 0]);
    assert_eq!(st.last().map(|s| (s[0], s[4])), Some((vm, 2)), "READY");
    let (_, st) = ok_reply(&c, 5, 0x5600_0004, &[vm, 0, 0, 0]);
    assert_eq!(st.last().map(|s| (s[0], s[4])), Some((vm, 3)), "RUNNING");

    // VM_GET_STATE: bits[7:0] vm_status = RUNNING (3).
    let (data, _) = ok_reply(&c, 6, VM_GET_STATE, &[vm, 0, 0, 0]);
    assert_eq!(data[0], 3);

    // The new VM can connect as itself and learn its VMID.
    let g = Client::hello(&s.path, vm as u16);
    assert_get_vmid(&g, 1, vm as u16);

    // While it runs, the lent image parcel cannot be reclaimed (MEM_INUSE, 0xB).
    let mut reclaim = handle.to_vec();
    reclaim.extend_from_slice(&[0; 4]);
    c.send(&request(7, 0x5100_0015, &reclaim));
    let (r, _) = reply_after_status(&c, 7);
    assert_eq!(&r[8..12], &[0xB, 0, 0, 0]);
}

#[test]
fn socket_clients_drive_copy_on_write_of_a_golden_image() {
    use sha2::{Digest, Sha256};
    const SIM_VM_READ: u32 = 0x4700_00F0;
    const SIM_VM_WRITE: u32 = 0x4700_00F1;
    let s = Server::start("cow");
    let c = Client::hello(&s.path, HLOS);

    // Two clone VMs.
    let (a, _) = ok_reply(&c, 1, VM_ALLOC_VMID, &[0, 0, 0, 0]);
    let (b, _) = ok_reply(&c, 2, VM_ALLOC_VMID, &[0, 0, 0, 0]);
    let (a, b) = (
        a[0] as u16 | (a[1] as u16) << 8,
        b[0] as u16 | (b[1] as u16) << 8,
    );

    // HLOS fills two pages of its RAM at 0x48000000: 'A' * 4096, 'B' * 4096.
    let mut image = vec![b'A'; 4096];
    image.extend_from_slice(&[b'B'; 4096]);
    for (i, chunk) in image.chunks(1024).enumerate() {
        let ipa = 0x4800_0000 + i as u64 * 1024;
        let (err, _) = call(
            &c,
            10 + i as u16,
            SIM_VM_WRITE,
            &sim_write(HLOS, ipa, chunk),
        );
        assert_eq!(err, 0, "HLOS SIM_VM_WRITE");
    }

    // Lend them (ACL {a, R}) and seal the parcel golden: the digest is SHA-256 of the contents.
    let mut lend = vec![
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        1,
        0,
        0,
        0,
        a as u8,
        (a >> 8) as u8,
        4,
        0,
        1,
        0,
        0,
        0,
    ];
    lend.extend_from_slice(&0x4800_0000u64.to_le_bytes());
    lend.extend_from_slice(&0x2000u64.to_le_bytes());
    lend.extend_from_slice(&[0, 0, 0, 0]);
    let (h, _) = ok_reply(&c, 20, 0x5100_0012, &lend);
    let mut seal = h[..4].to_vec();
    seal.extend_from_slice(&[0; 4]);
    let (sealed, _) = ok_reply(&c, 21, 0x4700_0010, &seal);
    assert_eq!(sealed.len(), 40);
    let golden: [u8; 4] = sealed[..4].try_into().unwrap();
    assert_eq!(&sealed[8..40], Sha256::digest(&image).as_slice(), "digest");

    // The lent pages left HLOS's stage 2: its read faults (MEM_INVALID + the page's IPA).
    let (err, data) = call(&c, 22, SIM_VM_READ, &sim_read(HLOS, 0x4800_1000, 16));
    assert_eq!(err, 0xA);
    assert_eq!(data, 0x4800_1000u64.to_le_bytes());

    // Each clone gets a gmem pool of 4 pages and the golden image copy-on-write at 0x80000000.
    for (i, vm) in [a, b].into_iter().enumerate() {
        let mut create = 0x4000u64.to_le_bytes().to_vec();
        create.extend_from_slice(&[0, 0, 0, 0]);
        create.extend_from_slice(&vm.to_le_bytes());
        create.extend_from_slice(&[0, 0]);
        let (gmem, _) = ok_reply(&c, 30 + i as u16, 0x4700_0001, &create);
        let mut map = golden.to_vec();
        map.extend_from_slice(&vm.to_le_bytes());
        map.extend_from_slice(&1u16.to_le_bytes()); // COW
        map.extend_from_slice(&0u64.to_le_bytes());
        map.extend_from_slice(&0x8000_0000u64.to_le_bytes());
        map.extend_from_slice(&0x2000u64.to_le_bytes());
        map.extend_from_slice(&gmem[..4]);
        map.extend_from_slice(&[0; 4]);
        ok_reply(&c, 40 + i as u16, 0x4700_0011, &map);
    }

    // Clone a writes "hello" into the second page: exactly one fault served (one CoW copy).
    let (err, data) = call(&c, 50, SIM_VM_WRITE, &sim_write(a, 0x8000_1000, b"hello"));
    assert_eq!((err, data), (0, vec![1, 0, 0, 0]));
    // Writing the same page again needs no fault.
    let (err, data) = call(&c, 51, SIM_VM_WRITE, &sim_write(a, 0x8000_1005, b"!"));
    assert_eq!((err, data), (0, vec![0, 0, 0, 0]));

    let (err, data) = call(&c, 52, SIM_VM_READ, &sim_read(a, 0x8000_0ffe, 10));
    assert_eq!(err, 0);
    assert_eq!(data, b"AAhello!BB");
    // Clone b still sees the golden contents, across the whole image (a 2-fragment reply).
    let (err, data) = call(&c, 53, SIM_VM_READ, &sim_read(b, 0x8000_0000, 0x2000));
    assert_eq!(err, 0);
    assert_eq!(data, image);

    // VM_MEM_STATS of a: 2 golden-mapped... of which 1 copied; quota 4 pages.
    let (st, _) = ok_reply(&c, 54, 0x4700_0020, &[a as u8, (a >> 8) as u8, 0, 0]);
    let word = |i: usize| u64::from_le_bytes(st[i * 8..i * 8 + 8].try_into().unwrap());
    assert_eq!(word(2), 1, "cow_copied_pages: {st:02x?}");
    assert_eq!(word(3), 4, "quota_pages: {st:02x?}");

    // The golden image cannot be released while mapped (MEM_INUSE).
    let mut release = golden.to_vec();
    release.extend_from_slice(&[0; 4]);
    let (err, _) = call(&c, 55, 0x4700_0013, &release);
    assert_eq!(err, 0xB);
}

/// A second server on the path of a live one refuses to start, naming the path; the first keeps
/// serving. A server removes on exit only the socket file it created: one started on the same
/// path after the first's file was removed keeps its socket when the first exits.
#[test]
fn a_second_server_does_not_take_over_a_live_path() {
    let mut first = Server::start("two");
    let (st, err) = Server::run_on(&first.path, &[]);
    assert!(!st.success(), "a second server started on a live path");
    assert!(
        err.contains(&first.path.display().to_string()) && err.contains("in use"),
        "the error names the path and the problem: {err}"
    );
    let c = Client::hello(&first.path, HLOS);
    assert_get_vmid(&c, 1, HLOS);
    drop(c);
    // Someone removes the first server's file and a second server takes the path.
    std::fs::remove_file(&first.path).unwrap();
    let second_dir = TempDir::new("two-second");
    let _ = second_dir; // the second server uses the first's path
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_gunyah-rm"))
        .args(["serve", "--socket"])
        .arg(&first.path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !first.path.exists() {
        assert!(Instant::now() < deadline, "second server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(first.terminate(), "the first server exits cleanly");
    assert!(
        first.path.exists(),
        "the first server removed the second server's socket on exit"
    );
    let c = Client::hello(&first.path, HLOS);
    assert_get_vmid(&c, 1, HLOS);
    let _ = second.kill();
    let _ = second.wait();
}

/// A stale socket file (its server died without removing it) is replaced.
#[test]
fn a_stale_socket_file_is_replaced() {
    let mut s = Server::start("stale-file");
    // SIGKILL: the server cannot clean up.
    let _ = s.child.kill();
    let _ = s.child.wait();
    assert!(s.path.exists());
    let mut again = std::process::Command::new(env!("CARGO_BIN_EXE_gunyah-rm"))
        .args(["serve", "--socket"])
        .arg(&s.path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let c = loop {
        let c = Client::raw_maybe(&s.path);
        if let Some(c) = c {
            break c;
        }
        assert!(Instant::now() < deadline, "the new server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    };
    c.send(&hello(HLOS));
    assert_eq!(c.recv().as_deref(), Some(&hello(HLOS)[..]));
    let _ = again.kill();
    let _ = again.wait();
}

/// Errors about the socket path name the path the user gave and what is wrong with it.
#[test]
fn bind_errors_name_the_path_and_the_problem() {
    let (st, err) = Server::run_on(Path::new("/nonexistent-gunyah-dir/sub/rm.sock"), &[]);
    assert!(!st.success());
    assert!(
        err.contains("/nonexistent-gunyah-dir/sub/rm.sock")
            && err.contains("directory /nonexistent-gunyah-dir/sub"),
        "{err}"
    );
    assert!(!err.contains(".tmp"), "names a temporary file: {err}");
    let dir = TempDir::new("notsock");
    let file = dir.0.join("plain");
    std::fs::write(&file, b"x").unwrap();
    let (st, err) = Server::run_on(&file, &[]);
    assert!(!st.success());
    assert!(
        err.contains("not a socket") && err.contains("plain"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"x",
        "the file was left alone"
    );
    let long = dir.0.join("x".repeat(120));
    let (st, err) = Server::run_on(&long, &[]);
    assert!(!st.success());
    assert!(err.contains("too long"), "{err}");
    let (st, err) = Server::run_on(&dir.0.join("m.sock"), &["--mode", "9"]);
    assert!(!st.success());
    assert!(err.contains("octal"), "{err}");
}

/// The socket file is created 0600 (only the user running the server may connect) unless
/// `--mode` says otherwise.
#[test]
fn the_socket_file_mode_is_0600_by_default() {
    use std::os::unix::fs::PermissionsExt;
    let s = Server::start("mode");
    let m = std::fs::metadata(&s.path).unwrap().permissions().mode() & 0o777;
    assert_eq!(m, 0o600);
    let s = Server::start_with("mode660", &["--mode", "660"]);
    let m = std::fs::metadata(&s.path).unwrap().permissions().mode() & 0o777;
    assert_eq!(m, 0o660);
}

/// 70 connections that never say hello do not lock anyone out: a real client connects and is
/// served while they are all still open.
#[test]
fn silent_connections_do_not_lock_clients_out() {
    let s = Server::start("silent");
    let silent: Vec<Client> = (0..70).map(|_| Client::raw(&s.path)).collect();
    let c = Client::hello(&s.path, HLOS);
    assert_get_vmid(&c, 1, HLOS);
    drop(silent);
}

/// Every VM that may exist can be connected at once: HLOS, all 63 dynamic VMIDs and static
/// ones besides (more than the old limit of 64 connections).
#[test]
fn every_vm_can_be_connected_at_once() {
    let s = Server::start("many");
    let h = Client::hello(&s.path, HLOS);
    let mut seq = 1;
    let mut vms = Vec::new();
    for i in 0..65u16 {
        // 63 dynamic VMIDs, then two static ones.
        let (vm, image) = if i < 63 {
            ready_vm_with_image(&h, seq)
        } else {
            ready_static_vm(&h, seq, 10 + i - 63)
        };
        // HLOS may own only 64 parcels: a READY VM's image parcel can be reclaimed (§12.1).
        ok_reply(
            &h,
            seq + 5,
            0x5100_0015,
            &[&image.to_le_bytes()[..], &[0; 4]].concat(),
        );
        seq += 6;
        vms.push(vm);
    }
    let clients: Vec<(u16, Client)> = vms
        .iter()
        .map(|&vm| (vm, Client::hello(&s.path, vm)))
        .collect();
    assert_eq!(clients.len(), 65);
    for (i, (vm, c)) in clients.iter().enumerate() {
        assert_get_vmid(c, i as u16, *vm);
    }
    assert_get_vmid(&h, 999, HLOS);
}
