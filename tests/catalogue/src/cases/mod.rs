//! The catalogue, by area. Every expected answer comes from the spec sheet
//! (`rm-rpc-abi.md`, section named at each case) or DESIGN.md.

use alloc::vec::Vec;

use crate::case::Case;

mod auth;
mod golden;
mod identity;
mod lifecycle;
mod memparcel;
mod observed;
mod protocol;

/// Every case, in the order a runner plays them.
pub fn catalogue() -> Vec<Case> {
    let mut v = Vec::new();
    v.extend(protocol::cases());
    v.extend(lifecycle::cases());
    v.extend(identity::cases());
    v.extend(memparcel::cases());
    v.extend(golden::cases());
    v.extend(observed::cases());
    v.extend(auth::cases());
    let mut names: Vec<&str> = v.iter().map(|c: &Case| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), v.len(), "case names are unique");
    v
}
