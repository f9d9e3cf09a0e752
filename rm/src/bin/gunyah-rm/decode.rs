//! `gunyah-rm decode`: pretty-print RM RPC message-queue messages.
//!
//! Each argument (or each non-empty stdin line, `#` starts a comment) is one
//! message-queue message in hex; spaces, `:` and `_` between digits and a
//! leading `0x` are ignored. Fragmented messages are reassembled with the
//! RM's receive rules. A reply's data is decoded by the msg_id it carries
//! (which is the request's). Malformed input is reported on stderr with the
//! packet number and byte offset, and the exit status is 1.
//!
//! Payloads are described by the abi crate itself (`gunyah-rm-abi`'s `serde`
//! feature): field names, named values (`vm_status: 5 (LOAD)`) and wire
//! order come from the abi types, so a message added there is decoded here
//! with no change to this file.

mod value;

use std::io::BufRead;
use std::process::ExitCode;

use gunyah_rm_abi::header::MAX_FRAGMENT_PAYLOAD;
use gunyah_rm_abi::wire::Bytes;
use gunyah_rm_abi::{
    DecodeError, Message, MsgType, Notification, Reassembler, Received, Reply, Request, RmError,
};

pub use value::{to_val, Val};

#[derive(clap::Args)]
pub struct Args {
    /// Message-queue messages as hex, one per argument (read from stdin, one per line, if none).
    pub hex: Vec<String>,
    /// Print one JSON object per logical message.
    #[arg(long)]
    pub json: bool,
}

fn error_name(e: RmError) -> String {
    e.name()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:#x}", e.code()))
}

/// A logical message decoded field by field: `type`, `seq`, `msg_id`,
/// `name`, `fragments`, `error`/`error_code` for replies, `payload`. The
/// header fields are this tool's; the payload is the abi crate's own
/// description of it (its `serde` serialization), so every message the abi
/// decodes is described without an entry here.
pub fn message_val(m: &Message<'_>) -> Result<Val, DecodeError> {
    let mut fields: Vec<(String, Val)> = vec![
        ("type".into(), Val::Str(m.ty.name().into())),
        ("seq".into(), Val::Num(m.seq.into())),
        ("msg_id".into(), Val::Str(format!("{:#010x}", m.msg_id.0))),
        (
            "name".into(),
            m.msg_id.name().map_or(Val::Null, |n| Val::Str(n.into())),
        ),
        ("fragments".into(), Val::Num(m.fragments.into())),
    ];
    let payload = match m.ty {
        MsgType::Request => to_val(&Request::decode_detailed(m.msg_id, m.payload)?),
        MsgType::Notification => to_val(&Notification::decode_detailed(m.msg_id, m.payload)?),
        MsgType::Reply => {
            let r = Reply::decode_detailed(m.msg_id, m.payload)?;
            fields.push(("error".into(), Val::Str(error_name(r.error))));
            fields.push(("error_code".into(), Val::Num(r.error.code().into())));
            to_val(&r.data)
        }
        // The reassembler never completes a message of this type.
        MsgType::Continuation => Val::Obj(vec![("raw".into(), to_val(&Bytes(m.payload)))]),
    };
    fields.push(("payload".into(), payload));
    Ok(Val::Obj(fields))
}

/// Parse one hex packet; the error names the byte offset.
fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let digits: Vec<char> = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':' && *c != '_')
        .collect();
    let mut out = Vec::with_capacity(digits.len() / 2);
    for (i, pair) in digits.chunks(2).enumerate() {
        if pair.len() < 2 {
            return Err(format!("byte {i}: odd number of hex digits"));
        }
        let hi = pair[0].to_digit(16);
        let lo = pair[1].to_digit(16);
        match (hi, lo) {
            (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
            _ => {
                return Err(format!(
                    "byte {i}: {:?} is not a hex byte",
                    pair.iter().collect::<String>()
                ))
            }
        }
    }
    Ok(out)
}

/// Packets seen for the message being reassembled: (packet number, payload length).
type Parts = Vec<(usize, usize)>;

/// Map a logical-payload offset to (packet number, byte offset in that packet).
fn locate(parts: &Parts, mut off: usize) -> (usize, usize) {
    for (i, &(packet, len)) in parts.iter().enumerate() {
        if off < len || i + 1 == parts.len() {
            return (packet, 8 + off);
        }
        off -= len;
    }
    (0, 8 + off)
}

struct Decoder {
    json: bool,
    rx: Reassembler,
    parts: Parts,
    failed: bool,
    out: String,
}

impl Decoder {
    fn error(&mut self, msg: String) {
        eprintln!("gunyah-rm decode: {msg}");
        self.failed = true;
    }

    fn packet(&mut self, n: usize, text: &str) {
        let bytes = match parse_hex(text) {
            Ok(b) => b,
            Err(e) => return self.error(format!("packet {n}: {e}")),
        };
        let outcome = self.rx.push(&bytes);
        if let Some(p) = outcome.abandoned {
            let msg = format!(
                "packet {n}: a new message abandons {} seq={} {:#010x} waiting for {} more fragment(s)",
                p.ty.name(),
                p.seq,
                p.msg_id.0,
                p.remaining
            );
            eprintln!("gunyah-rm decode: {msg}");
            self.failed = true;
            self.parts.clear();
        }
        let body = bytes.len().saturating_sub(8).min(MAX_FRAGMENT_PAYLOAD);
        match outcome.received {
            Received::Dropped(d) => {
                let msg = format!("packet {n}: byte {}: {d}; packet dropped", d.offset());
                eprintln!("gunyah-rm decode: {msg}");
                self.failed = true;
            }
            Received::Partial(p) => {
                if p.remaining == p.fragments {
                    self.parts.clear();
                }
                self.parts.push((n, body));
            }
            Received::Complete(m) => {
                if m.fragments == 0 {
                    self.parts.clear();
                }
                self.parts.push((n, body));
                match message_val(&m) {
                    Ok(v) => {
                        if self.json {
                            self.out.push_str(&v.to_json().to_string());
                            self.out.push('\n');
                        } else {
                            self.out.push_str(&human(&m, &v));
                        }
                    }
                    Err(e) => {
                        let (pkt, at) = locate(&self.parts, e.offset);
                        let why = if e.why.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", e.why)
                        };
                        let msg = format!(
                            "packet {pkt}: byte {at} (payload byte {}): {} {} {:#010x}: {}{why} ({})",
                            e.offset,
                            m.ty.name(),
                            m.msg_id.name().unwrap_or("?"),
                            m.msg_id.0,
                            e.what,
                            e.error.name().unwrap_or("?")
                        );
                        eprintln!("gunyah-rm decode: {msg}");
                        self.failed = true;
                    }
                }
                self.parts.clear();
            }
        }
        // Print as we go so that output and errors interleave sensibly.
        print!("{}", std::mem::take(&mut self.out));
    }

    fn finish(&mut self) {
        if let Some(p) = self.rx.pending() {
            let msg = format!(
                "input ends inside {} seq={} {:#010x}: {} of {} continuation(s) missing",
                p.ty.name(),
                p.seq,
                p.msg_id.0,
                p.remaining,
                p.fragments
            );
            self.error(msg);
        }
    }
}

pub fn human(m: &Message<'_>, v: &Val) -> String {
    let mut s = format!(
        "{} seq={} msg_id={:#010x} {} ({} fragment(s), {} payload bytes)\n",
        m.ty.name(),
        m.seq,
        m.msg_id.0,
        m.msg_id.name().unwrap_or("(unknown)"),
        m.fragments as usize + 1,
        m.payload.len()
    );
    if let Val::Obj(fields) = v {
        for (k, f) in fields {
            match k.as_str() {
                "error" => s.push_str(&format!("  error: {}\n", f.scalar().unwrap_or_default())),
                "payload" => f.print_fields(&mut s, 1),
                _ => {}
            }
        }
    }
    s
}

pub fn run(args: Args) -> ExitCode {
    let mut d = Decoder {
        json: args.json,
        rx: Reassembler::new(),
        parts: Vec::new(),
        failed: false,
        out: String::new(),
    };
    if args.hex.is_empty() {
        let stdin = std::io::stdin();
        let mut n = 0;
        for line in stdin.lock().lines() {
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    d.error(format!("reading stdin: {e}"));
                    break;
                }
            };
            let text = line.split('#').next().unwrap_or("").trim();
            if text.is_empty() {
                continue;
            }
            n += 1;
            d.packet(n, text);
        }
    } else {
        for (i, h) in args.hex.iter().enumerate() {
            d.packet(i + 1, h);
        }
    }
    d.finish();
    if d.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_parsing() {
        assert_eq!(parse_hex("21 01:00_00").unwrap(), vec![0x21, 1, 0, 0]);
        assert_eq!(parse_hex("0x2101").unwrap(), vec![0x21, 1]);
        assert_eq!(
            parse_hex("21z1").unwrap_err(),
            "byte 1: \"z1\" is not a hex byte"
        );
        assert_eq!(
            parse_hex("210").unwrap_err(),
            "byte 1: odd number of hex digits"
        );
    }

    #[test]
    fn locate_maps_payload_offsets_to_packets() {
        let parts = vec![(4, 232), (5, 36)];
        assert_eq!(locate(&parts, 0), (4, 8));
        assert_eq!(locate(&parts, 231), (4, 239));
        assert_eq!(locate(&parts, 232), (5, 8));
        assert_eq!(locate(&parts, 268), (5, 44));
    }
}
