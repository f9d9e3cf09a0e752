//! Structural check of a flattened device tree before the `fdt` crate sees it.
//!
//! The `fdt` crate (0.1) trusts its input: a truncated property, a name offset past the strings
//! block, a missing NUL or a property after a child node makes it panic. This walk accepts only
//! the canonical layout `dtc` emits (header, one root node, in each node all properties before
//! all children, no NOP tokens, `FDT_END` last) with every length, offset and string in bounds,
//! so the crate's panicking paths are unreachable for anything that passes.

use super::error::ConfigError;
use alloc::format;

const MAGIC: u32 = 0xd00d_feed;
const HEADER_LEN: usize = 40;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const END: u32 = 9;
/// Deeper trees are rejected (the crate's node walker has a fixed 64-entry parent stack).
pub const MAX_DEPTH: usize = 16;

fn be32(data: &[u8], off: usize) -> Option<u32> {
    let b = data.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn bad(reason: impl Into<alloc::string::String>) -> ConfigError {
    ConfigError::node(
        "/",
        format!("malformed device tree blob: {}", reason.into()),
    )
}

/// A NUL-terminated UTF-8 string starting at `off` in `block`; returns its length without NUL.
fn cstr_len(block: &[u8], off: usize) -> Option<usize> {
    let rest = block.get(off..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    core::str::from_utf8(&rest[..len]).ok()?;
    Some(len)
}

fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|v| v & !3)
}

/// Accepts `data` only if every structure the loader will read through `fdt` is well formed.
pub fn check(data: &[u8]) -> Result<(), ConfigError> {
    if data.len() < HEADER_LEN {
        return Err(bad("shorter than the 40-byte header"));
    }
    let h = |i: usize| be32(data, i * 4).unwrap_or(0) as usize;
    if h(0) as u32 != MAGIC {
        return Err(bad("bad magic (not a DTB)"));
    }
    let (total, off_struct, off_strings) = (h(1), h(2), h(3));
    let (version, size_strings, size_struct) = (h(5), h(8), h(9));
    if total > data.len() || total < HEADER_LEN {
        return Err(bad("totalsize does not match the buffer"));
    }
    if version < 17 {
        return Err(bad(format!("version {version} (need 17)")));
    }
    let in_bounds = |off: usize, size: usize| off.checked_add(size).is_some_and(|e| e <= total);
    if !in_bounds(off_struct, size_struct) || !in_bounds(off_strings, size_strings) {
        return Err(bad("structure or strings block outside the blob"));
    }
    if !off_struct.is_multiple_of(4) || !size_struct.is_multiple_of(4) {
        return Err(bad("structure block not 4-byte aligned"));
    }
    let st = &data[off_struct..off_struct + size_struct];
    let strings = &data[off_strings..off_strings + size_strings];
    walk(st, strings)
}

/// The strings block up to and including its last NUL, if that part is valid UTF-8. Then a
/// property name is a NUL-terminated UTF-8 string exactly when its offset is a character
/// boundary before the end of it (a NUL byte is never part of a multi-byte sequence, so every
/// name that starts on a boundary ends at a NUL inside valid UTF-8): one pass over the block
/// instead of one scan and one validation per property. `None` when the block has no NUL or is
/// not UTF-8 up to its last one (possibly in a string no property names): then each name is
/// left to [`cstr_len`], as before. Bytes after the last NUL end no name and are not looked at.
fn valid_names(strings: &[u8]) -> Option<&str> {
    let last = strings.iter().rposition(|&b| b == 0)?;
    core::str::from_utf8(&strings[..=last]).ok()
}

fn walk(st: &[u8], strings: &[u8]) -> Result<(), ConfigError> {
    let names = valid_names(strings);
    let name_ok = |off: usize| match names {
        Some(n) => off < n.len() && n.is_char_boundary(off),
        None => cstr_len(strings, off).is_some(),
    };
    let mut pos = 0usize;
    let mut depth = 0usize;
    // Per open node: have we seen a child yet (then no more properties are allowed)?
    let mut seen_child = [false; MAX_DEPTH + 1];
    let mut root_done = false;
    loop {
        let tok = be32(st, pos).ok_or_else(|| bad("structure block ends without FDT_END"))?;
        pos += 4;
        match tok {
            BEGIN_NODE => {
                if root_done {
                    return Err(bad("more than one root node"));
                }
                if depth > 0 {
                    seen_child[depth] = true;
                }
                if depth == MAX_DEPTH {
                    return Err(bad(format!("nodes nested deeper than {MAX_DEPTH}")));
                }
                let len =
                    cstr_len(st, pos).ok_or_else(|| bad("node name not NUL-terminated UTF-8"))?;
                if (depth == 0) != (len == 0) {
                    return Err(bad("only the root node may have an empty name"));
                }
                pos = align4(pos + len + 1).ok_or_else(|| bad("node name overflows"))?;
                depth += 1;
                seen_child[depth] = false;
            }
            END_NODE => {
                if depth == 0 {
                    return Err(bad("unbalanced FDT_END_NODE"));
                }
                depth -= 1;
                if depth == 0 {
                    root_done = true;
                }
            }
            PROP => {
                if depth == 0 {
                    return Err(bad("property outside any node"));
                }
                if seen_child[depth] {
                    return Err(bad("property after a child node"));
                }
                let len = be32(st, pos).ok_or_else(|| bad("truncated property"))? as usize;
                let nameoff = be32(st, pos + 4).ok_or_else(|| bad("truncated property"))? as usize;
                pos += 8;
                let end = pos.checked_add(len).filter(|&e| e <= st.len());
                let end = end.ok_or_else(|| bad("property value runs past the structure block"))?;
                if !name_ok(nameoff) {
                    return Err(bad("property name is not a NUL-terminated UTF-8 string inside the strings block"));
                }
                pos = align4(end).ok_or_else(|| bad("property overflows"))?;
            }
            END => {
                if depth != 0 || !root_done {
                    return Err(bad("FDT_END inside a node or before the root node"));
                }
                return Ok(());
            }
            _ => return Err(bad(format!("unexpected token {tok:#x}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{cstr_len, valid_names};

    /// The one-pass check of the strings block accepts a name offset exactly where the
    /// per-name scan does, at every offset of blocks with multi-byte characters, empty names,
    /// and bytes after the last NUL.
    #[test]
    fn one_pass_names_agree_with_the_per_name_scan() {
        let blocks: [&[u8]; 5] = [
            b"compatible\0reg\0",
            "a\u{e9}b\0\u{1f600}\0\0x\0".as_bytes(),
            b"\0\0",
            b"name\0tail-without-nul",
            "\u{e9}\0\u{e9}".as_bytes(),
        ];
        for block in blocks {
            let names = valid_names(block).expect("valid UTF-8 up to the last NUL");
            for off in 0..block.len() + 2 {
                let fast = off < names.len() && names.is_char_boundary(off);
                assert_eq!(fast, cstr_len(block, off).is_some(), "{block:?} at {off}");
            }
        }
        // Not valid UTF-8 before the last NUL: no one-pass view, each name is scanned.
        assert!(valid_names(b"ok\0\xff\0").is_none());
        assert!(valid_names(b"no nul").is_none());
        assert!(valid_names(b"").is_none());
    }
}
