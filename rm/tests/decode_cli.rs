//! `gunyah-rm decode` end to end: packets written by hand from the spec's
//! offset tables, fed as arguments or stdin lines to the built binary.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gunyah-rm"))
}

fn decode(args: &[&str]) -> Output {
    bin()
        .arg("decode")
        .args(args)
        .output()
        .expect("run gunyah-rm")
}

fn decode_stdin(args: &[&str], input: &str) -> Output {
    let mut child = bin()
        .arg("decode")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gunyah-rm");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// MEM_LEND request, seq 0x24, §1.2 header + §3.1 payload: NORMAL,
/// SANITIZE, label 0x11223344, ACL {0x80 RWX}, SGL {0x40000000, 2 MiB},
/// attr count 0.
const MEM_LEND: &str = "21 01 2400 12000051 \
    00 00 01 00 44332211 \
    0100 0000 8000 07 00 \
    0100 0000 0000004000000000 0000200000000000 \
    0000 0000";

#[test]
fn human_output_field_by_field() {
    let o = decode(&[MEM_LEND]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(
        s.contains("request seq=36 msg_id=0x51000012 MEM_LEND"),
        "{s}"
    );
    assert!(s.contains("label: 287454020 (0x11223344)"), "{s}");
    assert!(s.contains("mem_type: 0 (NORMAL)"), "{s}");
    assert!(s.contains("[0] vmid: 128 (0x80), rights: 7"), "{s}");
    assert!(
        s.contains("[0] ipa: 1073741824 (0x40000000), size: 2097152 (0x200000)"),
        "{s}"
    );
}

#[test]
fn json_request() {
    let o = decode(&["--json", MEM_LEND]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json_lines(&o);
    assert_eq!(v.len(), 1);
    let m = &v[0];
    assert_eq!(m["type"], "request");
    assert_eq!(m["seq"], 0x24);
    assert_eq!(m["msg_id"], "0x51000012");
    assert_eq!(m["name"], "MEM_LEND");
    assert_eq!(m["payload"]["mem_type"]["name"], "NORMAL");
    assert_eq!(m["payload"]["flags"], 1);
    assert_eq!(m["payload"]["label"], 0x1122_3344);
    assert_eq!(m["payload"]["acl"][0]["vmid"], 0x80);
    assert_eq!(m["payload"]["sgl"][0]["size"], 0x20_0000);
    assert!(m.get("error").is_none());
}

#[test]
fn json_multi_fragment_reply_from_stdin() {
    // MEM_ACCEPT reply (§3.5): err 0, count 20, flags INCOMPLETE, 20 × {ipa, size}
    // = 328 bytes → 232 + 96 in two packets with continuation count 1.
    let mut p = vec![0u8, 0, 0, 0, 20, 0, 1, 0];
    for i in 0..20u64 {
        p.extend_from_slice(&(0x8000_0000 + i * 0x1000).to_le_bytes());
        p.extend_from_slice(&0x1000u64.to_le_bytes());
    }
    let h1 = [0x21, 0x06, 0x07, 0x00, 0x11, 0x00, 0x00, 0x51]; // reply, 1 continuation
    let h2 = [0x21, 0x04, 0x07, 0x00, 0x11, 0x00, 0x00, 0x51]; // continuation
    let input = format!(
        "# a reply in two fragments\n{}{}\n\n{}{}\n",
        hex(&h1),
        hex(&p[..232]),
        hex(&h2),
        hex(&p[232..])
    );
    let o = decode_stdin(&["--json"], &input);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json_lines(&o);
    assert_eq!(v.len(), 1, "one object per logical message");
    let m = &v[0];
    assert_eq!(m["type"], "reply");
    assert_eq!(m["seq"], 7);
    assert_eq!(m["name"], "MEM_ACCEPT");
    assert_eq!(m["error"], "OK");
    assert_eq!(m["fragments"], 1);
    assert_eq!(m["payload"]["flags"], 1);
    let sgl = m["payload"]["sgl"].as_array().unwrap();
    assert_eq!(sgl.len(), 20);
    assert_eq!(sgl[19]["ipa"], 0x8000_0000u64 + 19 * 0x1000);
}

#[test]
fn replies_notifications_and_unknown_ids() {
    // MEM_RECLAIM reply MEM_INUSE (0xB).
    let reclaim = "21 02 0100 15000051 0b000000";
    // VM_STATUS notification: vmid 0x80, RUNNING, os BOOT, app 0.
    let status = "21 03 0000 08001056 8000 0000 03 02 0000";
    // Extension GOLDEN_SEAL reply: golden 2, digest 0x11 × 32.
    let seal = format!(
        "21 02 0500 10000047 00000000 02000000 00000000 {}",
        "11".repeat(32)
    );
    // Unknown request ID 0x560000ff with two bytes.
    let unknown = "21 01 0900 ff000056 abcd";
    let o = decode(&["--json", reclaim, status, &seal, unknown]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json_lines(&o);
    assert_eq!(v.len(), 4);
    assert_eq!(v[0]["error"], "MEM_INUSE");
    assert_eq!(v[0]["error_code"], 0xB);
    assert_eq!(v[1]["type"], "notification");
    assert_eq!(v[1]["name"], "VM_STATUS");
    assert_eq!(v[1]["payload"]["vm_status"]["name"], "RUNNING");
    assert_eq!(v[2]["name"], "GOLDEN_SEAL");
    assert_eq!(v[2]["payload"]["golden_id"], 2);
    assert_eq!(v[2]["payload"]["digest"], "11".repeat(32));
    assert_eq!(v[3]["name"], serde_json::Value::Null);
    assert_eq!(v[3]["msg_id"], "0x560000ff");
    assert_eq!(v[3]["payload"]["raw"], "abcd");
}

#[test]
fn malformed_input_names_offset_and_problem() {
    // API byte 0x31: header length 3 words.
    let o = decode(&["31 01 0000 04000056 80000000"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("packet 1: byte 0") && e.contains("header length 3"),
        "{e}"
    );

    // MEM_LEND whose SGL count says 2 but carries one entry: the SGL list
    // starts at payload byte 16, its entries at 20 → packet byte 28.
    let bad = MEM_LEND.replacen(
        "0100 0000 0000004000000000",
        "0200 0000 0000004000000000",
        1,
    );
    let o = decode(&[&bad]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("byte 28 (payload byte 20)")
            && e.contains("SGL list")
            && e.contains("MSG_INVALID"),
        "{e}"
    );

    // Not hex.
    let o = decode(&["21 01 zz"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("packet 1: byte 2"), "{}", stderr(&o));

    // A continuation without a first fragment, then input ending mid-message.
    let o = decode(&["21 00 0100 13000051", "21 05 0100 13000051 00"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("packet 1: byte 1: continuation fragment without a message"),
        "{e}"
    );
    assert!(e.contains("input ends inside request"), "{e}");

    // Too many entries → NORESOURCE, named.
    let o = decode(&["21 01 0000 13000051 00000000 00000000 0102 0000 00000000 00000000"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("payload byte 8") && e.contains("NORESOURCE"),
        "{e}"
    );
}

/// The smallest all-zero payload (up to 64 bytes) that `decodes` accepts.
fn sample(decodes: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    (0..=64).map(|n| vec![0u8; n]).find(|p| decodes(p))
}

/// Every message the abi crate decodes (requests, their OK replies,
/// notifications) is described field by field, from the abi's own
/// serialization: decode.rs has no per-message entry, so a message whose
/// payload had no description would show as `raw` or as nothing here.
#[test]
fn every_message_the_abi_decodes_is_described() {
    use gunyah_rm_abi::{Fragmenter, MsgId, Notification, Reply, Request, RmError};

    // (type, name, decoded bytes after the error code) per logical message.
    let mut expected: Vec<(&str, &str, usize)> = Vec::new();
    let mut input = String::new();
    let mut push = |f: Fragmenter<'_>| {
        for p in f {
            input.push_str(&hex(p.as_bytes()));
            input.push('\n');
        }
    };
    for (seq, &(id, name)) in MsgId::ALL.iter().enumerate() {
        let seq = seq as u16;
        if Request::knows(id) {
            let p = sample(|p| Request::decode(id, p).is_ok())
                .unwrap_or_else(|| panic!("no sample request for {name}"));
            push(Fragmenter::request(seq, id, &p).unwrap());
            expected.push(("request", name, p.len()));
            let d = sample(|d| Reply::decode_data(id, RmError::Ok, d).is_ok())
                .unwrap_or_else(|| panic!("no sample reply for {name}"));
            push(Fragmenter::reply(seq, id, RmError::Ok, &d).unwrap());
            expected.push(("reply", name, d.len()));
        }
        if Notification::knows(id) {
            let p = sample(|p| Notification::decode(id, p).is_ok())
                .unwrap_or_else(|| panic!("no sample notification for {name}"));
            push(Fragmenter::notification(seq, id, &p).unwrap());
            expected.push(("notification", name, p.len()));
        }
    }
    // The abi names well over 40 requests and 10 notifications: the loop
    // above must not have skipped them.
    assert!(expected.iter().filter(|e| e.0 == "request").count() > 40);
    assert!(expected.iter().filter(|e| e.0 == "notification").count() > 10);

    let o = decode_stdin(&["--json"], &input);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json_lines(&o);
    assert_eq!(v.len(), expected.len());
    for (m, (ty, name, len)) in v.iter().zip(&expected) {
        assert_eq!(
            (m["type"].as_str(), m["name"].as_str()),
            (Some(*ty), Some(*name))
        );
        let payload = m["payload"]
            .as_object()
            .unwrap_or_else(|| panic!("{ty} {name}: payload is not an object: {m}"));
        assert!(
            !payload.contains_key("raw"),
            "{ty} {name}: decoded but described raw: {m}"
        );
        assert!(
            *len == 0 || !payload.is_empty(),
            "{ty} {name}: {len} payload bytes but no field described: {m}"
        );
    }

    // The human form prints a field line for each such message too.
    let o = decode_stdin(&[], &input);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    let mut blocks = s
        .split_inclusive('\n')
        .fold(Vec::<String>::new(), |mut b, l| {
            if l.starts_with(' ') {
                b.last_mut().unwrap().push_str(l);
            } else {
                b.push(l.to_string());
            }
            b
        });
    assert_eq!(blocks.len(), expected.len(), "{s}");
    for (b, (ty, name, len)) in blocks.drain(..).zip(&expected) {
        assert!(
            b.starts_with(ty) && b.contains(&format!(" {name} (")),
            "{b}"
        );
        let fields = b
            .lines()
            .skip(1)
            .filter(|l| !l.starts_with("  error:"))
            .count();
        assert!(
            *len == 0 || fields > 0,
            "{ty} {name}: no field printed:\n{b}"
        );
        assert!(!b.contains("  raw:"), "{ty} {name}: printed raw:\n{b}");
    }
}
