//! Adding a node under the root of a flattened device tree, as Gunyah's RM applies its
//! `/hypervisor` overlay to a VM's DT: the structure block gets the new subtree before the
//! root's END_NODE, the strings block the new property names, and the blob is written
//! compactly (header, reservation map, structure, strings; version 17).
//!
//! The input is untrusted (HLOS's DT comes from the command line, a VM's from its image
//! parcel): every offset and length is checked, nothing panics, and a blob that is not a
//! well-formed DT is refused with a reason. `fdt` (the crate) reads DTs; it does not write
//! them, hence this small editor.

use alloc::vec::Vec;

const MAGIC: u32 = 0xD00D_FEED;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;
const HEADER: usize = 40;

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A subtree being built (tokens and the property names it uses).
#[derive(Default)]
pub struct Subtree {
    tokens: Vec<u8>,
    names: Vec<(usize, &'static str)>,
}

impl Subtree {
    fn word(&mut self, w: u32) {
        self.tokens.extend_from_slice(&w.to_be_bytes());
    }
    fn pad(&mut self) {
        while !self.tokens.len().is_multiple_of(4) {
            self.tokens.push(0);
        }
    }
    /// Open a node.
    pub fn begin(&mut self, name: &str) -> &mut Self {
        self.word(BEGIN_NODE);
        self.tokens.extend_from_slice(name.as_bytes());
        self.tokens.push(0);
        self.pad();
        self
    }
    /// Close the innermost open node.
    pub fn end(&mut self) -> &mut Self {
        self.word(END_NODE);
        self
    }
    /// A property with raw bytes.
    pub fn prop(&mut self, name: &'static str, value: &[u8]) -> &mut Self {
        self.word(PROP);
        self.word(value.len() as u32);
        // The name offset is patched in when the subtree is inserted.
        self.names.push((self.tokens.len(), name));
        self.word(0);
        self.tokens.extend_from_slice(value);
        self.pad();
        self
    }
    /// A property of big-endian u32 cells.
    pub fn cells(&mut self, name: &'static str, cells: &[u32]) -> &mut Self {
        let mut v = Vec::with_capacity(cells.len() * 4);
        for c in cells {
            v.extend_from_slice(&c.to_be_bytes());
        }
        self.prop(name, &v)
    }
    /// A string-list property.
    pub fn strings(&mut self, name: &'static str, list: &[&str]) -> &mut Self {
        let mut v = Vec::new();
        for s in list {
            v.extend_from_slice(s.as_bytes());
            v.push(0);
        }
        self.prop(name, &v)
    }
    /// An empty (boolean) property.
    pub fn flag(&mut self, name: &'static str) -> &mut Self {
        self.prop(name, &[])
    }
}

/// The blob's total size from its header, if it starts like a DT.
pub fn total_size(header: &[u8]) -> Option<usize> {
    (be32(header, 0)? == MAGIC).then_some(())?;
    Some(be32(header, 4)? as usize)
}

/// The blob's `struct fdt_header` as ten words, once its magic has been checked.
fn header(dtb: &[u8]) -> Result<[usize; 10], &'static str> {
    if be32(dtb, 0) != Some(MAGIC) {
        return Err("no device tree magic");
    }
    let mut words = [0; 10];
    for (i, w) in words.iter_mut().enumerate() {
        *w = be32(dtb, 4 * i).ok_or("header truncated")? as usize;
    }
    Ok(words)
}

/// `dtb` with `sub` added as a child of the root node. Refused if the blob is malformed or
/// the root already has a child named like the subtree's top node.
pub fn add_to_root(dtb: &[u8], sub: &Subtree) -> Result<Vec<u8>, &'static str> {
    let hdr = header(dtb)?;
    let total = hdr[1];
    let (off_struct, off_strings, off_rsv) = (hdr[2], hdr[3], hdr[4]);
    let version = hdr[5];
    let (size_strings, size_struct) = (hdr[8], hdr[9]);
    if total > dtb.len() || total < HEADER {
        return Err("totalsize beyond the blob");
    }
    if version < 17 {
        return Err("device tree version older than 17");
    }
    let within = |off: usize, len: usize| off.checked_add(len).is_some_and(|e| e <= total);
    if !within(off_struct, size_struct) || !within(off_strings, size_strings) {
        return Err("structure or strings block beyond totalsize");
    }
    if !off_struct.is_multiple_of(4) || !off_rsv.is_multiple_of(8) || off_rsv < HEADER {
        return Err("misaligned block");
    }
    // Reservation map: 16-byte entries up to an all-zero one.
    let mut rsv_end = off_rsv;
    loop {
        if !within(rsv_end, 16) {
            return Err("reservation map unterminated");
        }
        let e = &dtb[rsv_end..rsv_end + 16];
        rsv_end += 16;
        if e.iter().all(|b| *b == 0) {
            break;
        }
    }
    let st = &dtb[off_struct..off_struct + size_struct];
    let top_name = sub
        .tokens
        .get(4..)
        .and_then(|t| t.split(|b| *b == 0).next())
        .ok_or("empty subtree")?;
    // Walk the structure block; find the root's END_NODE.
    let mut at = 0usize;
    let mut depth = 0usize;
    let mut insert = None;
    loop {
        let tok = be32(st, at).ok_or("structure block truncated")?;
        at += 4;
        match tok {
            BEGIN_NODE => {
                let rest = st.get(at..).ok_or("structure block truncated")?;
                let len = rest
                    .iter()
                    .position(|b| *b == 0)
                    .ok_or("node name unterminated")?;
                if depth == 1 && &rest[..len] == top_name {
                    return Err("the DT already has that node");
                }
                at = (at + len + 1).next_multiple_of(4);
                depth += 1;
            }
            END_NODE => {
                depth = depth.checked_sub(1).ok_or("unbalanced END_NODE")?;
                if depth == 0 {
                    insert = Some(at - 4);
                }
            }
            PROP => {
                let len = be32(st, at).ok_or("structure block truncated")? as usize;
                at = at
                    .checked_add(8 + len)
                    .ok_or("property too long")?
                    .next_multiple_of(4);
                if at > st.len() {
                    return Err("property beyond the structure block");
                }
            }
            NOP => {}
            END => break,
            _ => return Err("unknown structure token"),
        }
        if depth > 64 {
            return Err("nested too deeply");
        }
    }
    let insert = match (insert, depth) {
        (Some(i), 0) => i,
        _ => return Err("no complete root node"),
    };
    // New strings after the old ones; name offsets patched into the subtree's tokens.
    let mut strings = dtb[off_strings..off_strings + size_strings].to_vec();
    let mut tokens = sub.tokens.clone();
    for &(pos, name) in &sub.names {
        let off = strings.len() as u32;
        strings.extend_from_slice(name.as_bytes());
        strings.push(0);
        tokens[pos..pos + 4].copy_from_slice(&off.to_be_bytes());
    }
    let rsv = &dtb[off_rsv..rsv_end];
    let new_struct_len = size_struct + tokens.len();
    let o_rsv = HEADER;
    let o_struct = o_rsv + rsv.len();
    let o_strings = o_struct + new_struct_len;
    let new_total = o_strings + strings.len();
    let mut out = Vec::with_capacity(new_total);
    for w in [
        MAGIC,
        new_total as u32,
        o_struct as u32,
        o_strings as u32,
        o_rsv as u32,
        17,
        16,
        hdr[7] as u32, // boot_cpuid_phys
        strings.len() as u32,
        new_struct_len as u32,
    ] {
        out.extend_from_slice(&w.to_be_bytes());
    }
    out.extend_from_slice(rsv);
    out.extend_from_slice(&st[..insert]);
    out.extend_from_slice(&tokens);
    out.extend_from_slice(&st[insert..]);
    out.extend_from_slice(&strings);
    Ok(out)
}

/// Set the size of the `/memory@...` node whose `reg` (two address and two size cells, as
/// QEMU virt writes it) starts at `base` to `size`, in place. Refused if there is no such
/// node or the blob is malformed.
pub fn set_memory_size(dtb: &mut [u8], base: u64, size: u64) -> Result<(), &'static str> {
    let hdr = header(dtb)?;
    let (off_struct, off_strings) = (hdr[2], hdr[3]);
    let (size_strings, size_struct) = (hdr[8], hdr[9]);
    let total = dtb.len().min(hdr[1]);
    let within = |off: usize, len: usize| off.checked_add(len).is_some_and(|e| e <= total);
    if !within(off_struct, size_struct) || !within(off_strings, size_strings) {
        return Err("structure or strings block beyond totalsize");
    }
    let name_at = |off: usize| -> Option<&[u8]> {
        let s = dtb.get(off_strings + off..off_strings + size_strings)?;
        Some(&s[..s.iter().position(|b| *b == 0)?])
    };
    let mut at = 0usize;
    let mut depth = 0usize;
    let mut in_memory = false;
    loop {
        let tok = be32(dtb, off_struct + at).ok_or("structure block truncated")?;
        at += 4;
        match tok {
            BEGIN_NODE => {
                let rest = dtb
                    .get(off_struct + at..off_struct + size_struct)
                    .ok_or("structure block truncated")?;
                let len = rest
                    .iter()
                    .position(|b| *b == 0)
                    .ok_or("node name unterminated")?;
                in_memory = depth == 1 && rest[..len].starts_with(b"memory");
                at = (at + len + 1).next_multiple_of(4);
                depth += 1;
            }
            END_NODE => {
                depth = depth.checked_sub(1).ok_or("unbalanced END_NODE")?;
                in_memory = false;
            }
            PROP => {
                let len = be32(dtb, off_struct + at).ok_or("structure block truncated")? as usize;
                let nameoff =
                    be32(dtb, off_struct + at + 4).ok_or("structure block truncated")? as usize;
                let value = off_struct + at + 8;
                if !within(value, len) || at + 8 + len > size_struct {
                    return Err("property beyond the structure block");
                }
                if in_memory
                    && depth == 2
                    && name_at(nameoff) == Some(b"reg")
                    && len == 16
                    && dtb[value..value + 8] == base.to_be_bytes()
                {
                    dtb[value + 8..value + 16].copy_from_slice(&size.to_be_bytes());
                    return Ok(());
                }
                at = (at + 8 + len).next_multiple_of(4);
            }
            NOP => {}
            _ => return Err("no /memory node with that base"),
        }
    }
}
