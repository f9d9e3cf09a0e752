//! The DT a target stages with a VM's image: a root `compatible` and one `/cpus/cpu@N` per
//! vCPU, built from the DTSpec layout (no_std: the QEMU runner stages it too).

use alloc::format;
use alloc::vec::Vec;

/// A flattened device tree with a root `compatible` and `/cpus/cpu@N` nodes, built from
/// the DTSpec layout (header, empty reservation map, structure block, strings).
pub fn tiny_dtb(cpus: u32) -> Vec<u8> {
    fn be(v: u32) -> [u8; 4] {
        v.to_be_bytes()
    }
    fn pad(v: &mut Vec<u8>) {
        while !v.len().is_multiple_of(4) {
            v.push(0);
        }
    }
    let strings = b"compatible\0device_type\0".to_vec();
    let mut st = Vec::new();
    let node = |st: &mut Vec<u8>, n: &str| {
        st.extend_from_slice(&be(1));
        st.extend_from_slice(n.as_bytes());
        st.push(0);
        pad(st);
    };
    let prop = |st: &mut Vec<u8>, nameoff: u32, val: &[u8]| {
        st.extend_from_slice(&be(3));
        st.extend_from_slice(&be(val.len() as u32));
        st.extend_from_slice(&be(nameoff));
        st.extend_from_slice(val);
        pad(st);
    };
    node(&mut st, "");
    prop(&mut st, 0, b"linux,dummy-virt\0");
    node(&mut st, "cpus");
    for i in 0..cpus {
        node(&mut st, &format!("cpu@{i}"));
        prop(&mut st, 11, b"cpu\0");
        st.extend_from_slice(&be(2));
    }
    st.extend_from_slice(&be(2));
    st.extend_from_slice(&be(2));
    st.extend_from_slice(&be(9));
    let off_struct = 40 + 16;
    let off_strings = off_struct + st.len() as u32;
    let total = off_strings + strings.len() as u32;
    let mut v = Vec::new();
    for x in [
        0xd00d_feed,
        total,
        off_struct,
        off_strings,
        40,
        17,
        16,
        0,
        strings.len() as u32,
        st.len() as u32,
    ] {
        v.extend_from_slice(&be(x));
    }
    v.extend_from_slice(&[0u8; 16]);
    v.extend_from_slice(&st);
    v.extend_from_slice(&strings);
    v
}
