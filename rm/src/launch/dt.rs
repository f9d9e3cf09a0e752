//! A minimal flattened device tree writer for the DT the launcher hands a VM
//! in its image parcel: `/cpus` (one `cpu@N` per vCPU, which VM_INIT counts),
//! `/memory@base` and the VM's name. Version 17, the layout `dtc` writes.

use alloc::vec::Vec;

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_END: u32 = 9;
const HEADER_LEN: usize = 40;
const RSVMAP_LEN: usize = 16;

/// Builds a blob node by node (properties of a node before its children).
#[derive(Default)]
pub struct DtWriter {
    structs: Vec<u8>,
    strings: Vec<u8>,
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

impl DtWriter {
    /// An empty tree; call [`DtWriter::begin`] with `""` for the root first.
    pub fn new() -> Self {
        Self::default()
    }

    fn word(&mut self, w: u32) {
        self.structs.extend_from_slice(&w.to_be_bytes());
    }

    /// Open a node.
    pub fn begin(&mut self, name: &str) {
        self.word(FDT_BEGIN_NODE);
        self.structs.extend_from_slice(name.as_bytes());
        self.structs.push(0);
        pad4(&mut self.structs);
    }

    /// Close the innermost open node.
    pub fn end(&mut self) {
        self.word(FDT_END_NODE);
    }

    fn name_offset(&mut self, name: &str) -> u32 {
        let mut at = 0;
        for s in self.strings.split(|b| *b == 0) {
            if s == name.as_bytes() {
                return at as u32;
            }
            at += s.len() + 1;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        off
    }

    /// A property with raw bytes.
    pub fn prop(&mut self, name: &str, value: &[u8]) {
        let off = self.name_offset(name);
        self.word(FDT_PROP);
        self.word(value.len() as u32);
        self.word(off);
        self.structs.extend_from_slice(value);
        pad4(&mut self.structs);
    }

    /// A string property.
    pub fn prop_str(&mut self, name: &str, value: &str) {
        let mut v = Vec::with_capacity(value.len() + 1);
        v.extend_from_slice(value.as_bytes());
        v.push(0);
        self.prop(name, &v);
    }

    /// A property of big-endian 32-bit cells.
    pub fn prop_cells(&mut self, name: &str, cells: &[u32]) {
        let v: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.prop(name, &v);
    }

    /// The finished blob.
    pub fn finish(mut self) -> Vec<u8> {
        self.word(FDT_END);
        let off_rsv = HEADER_LEN;
        let off_struct = off_rsv + RSVMAP_LEN;
        let off_strings = off_struct + self.structs.len();
        let total = off_strings + self.strings.len();
        let header = [
            FDT_MAGIC,
            total as u32,
            off_struct as u32,
            off_strings as u32,
            off_rsv as u32,
            17,
            16,
            0,
            self.strings.len() as u32,
            self.structs.len() as u32,
        ];
        let mut out = Vec::with_capacity(total);
        for w in header {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out.extend_from_slice(&[0u8; RSVMAP_LEN]);
        out.extend_from_slice(&self.structs);
        out.extend_from_slice(&self.strings);
        out
    }
}

/// The DT of a VM: its name, `vcpus` CPU nodes and its private RAM.
pub fn vm_dt(name: &str, vcpus: u32, ram_base: u64, ram_size: u64) -> Vec<u8> {
    let mut w = DtWriter::new();
    w.begin("");
    w.prop_cells("#address-cells", &[2]);
    w.prop_cells("#size-cells", &[2]);
    w.prop_str("model", name);
    w.begin("cpus");
    w.prop_cells("#address-cells", &[1]);
    w.prop_cells("#size-cells", &[0]);
    for i in 0..vcpus {
        let mut n = alloc::string::String::from("cpu@");
        n.push_str(&alloc::format!("{i:x}"));
        w.begin(&n);
        w.prop_str("device_type", "cpu");
        w.prop_str("compatible", "arm,armv8");
        w.prop_cells("reg", &[i]);
        w.end();
    }
    w.end();
    w.begin(&alloc::format!("memory@{ram_base:x}"));
    w.prop_str("device_type", "memory");
    w.prop_cells(
        "reg",
        &[
            (ram_base >> 32) as u32,
            ram_base as u32,
            (ram_size >> 32) as u32,
            ram_size as u32,
        ],
    );
    w.end();
    w.end();
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_first_node_by_hand() {
        let mut w = DtWriter::new();
        w.begin("");
        w.prop_cells("a", &[7]);
        w.end();
        let b = w.finish();
        // Header: magic, total 40 + 16 + 32 (8 struct words) + 2, struct at 56,
        // strings at 88, reservation map at 40, version 17.
        assert_eq!(&b[0..4], &[0xd0, 0x0d, 0xfe, 0xed]);
        assert_eq!(u32::from_be_bytes(b[4..8].try_into().unwrap()), 90);
        assert_eq!(u32::from_be_bytes(b[8..12].try_into().unwrap()), 56);
        assert_eq!(u32::from_be_bytes(b[12..16].try_into().unwrap()), 88);
        assert_eq!(u32::from_be_bytes(b[20..24].try_into().unwrap()), 17);
        // Struct: BEGIN_NODE, "" padded, PROP len 4 nameoff 0, value 7, END_NODE, END.
        let s: Vec<u32> = b[56..88]
            .chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(s, [1, 0, 3, 4, 0, 7, 2, 9]);
        assert_eq!(&b[88..], b"a\0");
    }

    #[test]
    fn fdt_crate_reads_cpus_and_memory() {
        let b = vm_dt("zygote", 2, 0x8000_0000, 0x1000_0000);
        let f = fdt::Fdt::new(&b).unwrap();
        assert_eq!(f.cpus().count(), 2);
        let m = f.memory().regions().next().unwrap();
        assert_eq!(m.starting_address as u64, 0x8000_0000);
        assert_eq!(m.size, Some(0x1000_0000));
        assert_eq!(
            f.find_node("/")
                .unwrap()
                .property("model")
                .unwrap()
                .as_str(),
            Some("zygote")
        );
    }
}
