//! Typed, strict property access on one node: every read checks the value's type and size, and
//! `finish` rejects properties the schema does not know.

use super::error::ConfigError;
use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use fdt::node::FdtNode;

/// Properties any node may carry (emitted by dtc for labels that are referenced).
const ALWAYS_ALLOWED: &[&str] = &["phandle", "linux,phandle"];

/// One node being read, with its full path for error messages.
pub struct Node<'b, 'a> {
    pub node: FdtNode<'b, 'a>,
    pub path: String,
}

impl<'b, 'a> Node<'b, 'a> {
    /// Wraps `node` found at `path`; rejects duplicate property names up front.
    pub fn new(node: FdtNode<'b, 'a>, path: String) -> Result<Self, ConfigError> {
        let mut seen = BTreeSet::new();
        for p in node.properties() {
            if !seen.insert(p.name) {
                return Err(ConfigError::prop(&path, p.name, "duplicate property"));
            }
        }
        Ok(Self { node, path })
    }

    /// The child node `name` (exact match, unit address included).
    pub fn child(&self, name: &str) -> Result<Option<Node<'b, 'a>>, ConfigError> {
        match self.node.children().find(|c| c.name == name) {
            Some(c) => Node::new(c, self.child_path(c.name)).map(Some),
            None => Ok(None),
        }
    }

    /// Path of a child called `name`.
    pub fn child_path(&self, name: &str) -> String {
        if self.path == "/" {
            format!("/{name}")
        } else {
            format!("{}/{name}", self.path)
        }
    }

    /// All children, in order; two children with the same name are an error.
    pub fn children(&self) -> Result<Vec<Node<'b, 'a>>, ConfigError> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for c in self.node.children() {
            let path = self.child_path(c.name);
            if !seen.insert(c.name) {
                return Err(ConfigError::node(&path, "duplicate node"));
            }
            out.push(Node::new(c, path)?);
        }
        Ok(out)
    }

    /// Rejects any property not in `known` (nor one every node may have).
    pub fn finish(&self, known: &[&str]) -> Result<(), ConfigError> {
        for p in self.node.properties() {
            if !known.contains(&p.name) && !ALWAYS_ALLOWED.contains(&p.name) {
                return Err(ConfigError::prop(&self.path, p.name, "unknown property"));
            }
        }
        Ok(())
    }

    fn raw(&self, name: &str) -> Option<&'a [u8]> {
        self.node.property(name).map(|p| p.value)
    }

    /// An error about property `name` of this node.
    pub fn err(&self, name: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::prop(&self.path, name, reason)
    }

    /// A required property is absent.
    pub fn missing(&self, name: &str) -> ConfigError {
        self.err(name, "required property is missing")
    }

    /// A boolean (empty) property: present → true.
    pub fn bool(&self, name: &str) -> Result<bool, ConfigError> {
        match self.raw(name) {
            None => Ok(false),
            Some([]) => Ok(true),
            Some(v) => Err(self.err(
                name,
                format!(
                    "expected an empty (boolean) property, found {} bytes",
                    v.len()
                ),
            )),
        }
    }

    /// A single 32-bit cell.
    pub fn u32(&self, name: &str) -> Result<Option<u32>, ConfigError> {
        match self.raw(name) {
            None => Ok(None),
            Some(v) if v.len() == 4 => Ok(Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))),
            Some(v) => Err(self.err(
                name,
                format!("expected 1 cell (u32), found {} bytes", v.len()),
            )),
        }
    }

    /// A 64-bit value written as 2 cells `<hi lo>`.
    pub fn u64(&self, name: &str) -> Result<Option<u64>, ConfigError> {
        match self.raw(name) {
            None => Ok(None),
            Some(v) if v.len() == 8 => Ok(Some(be64(v))),
            Some(v) => Err(self.err(
                name,
                format!("expected 2 cells (u64), found {} bytes", v.len()),
            )),
        }
    }

    /// A list of 32-bit cells (at least one).
    pub fn u32_list(&self, name: &str) -> Result<Option<Vec<u32>>, ConfigError> {
        match self.raw(name) {
            None => Ok(None),
            Some(v) if !v.is_empty() && v.len().is_multiple_of(4) => Ok(Some(
                v.chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )),
            Some(v) => Err(self.err(
                name,
                format!(
                    "expected a non-empty list of cells, found {} bytes",
                    v.len()
                ),
            )),
        }
    }

    /// A list of `<base(2 cells) size(2 cells)>` pairs (at least one).
    pub fn ranges(&self, name: &str) -> Result<Option<Vec<(u64, u64)>>, ConfigError> {
        match self.raw(name) {
            None => Ok(None),
            Some(v) if !v.is_empty() && v.len().is_multiple_of(16) => Ok(Some(
                v.chunks_exact(16)
                    .map(|c| (be64(&c[..8]), be64(&c[8..])))
                    .collect(),
            )),
            Some(v) => Err(self.err(
                name,
                format!(
                    "expected <base size> pairs of 2 cells each (16 bytes per pair), found {} bytes",
                    v.len()
                ),
            )),
        }
    }

    /// A single non-empty NUL-terminated UTF-8 string.
    pub fn string(&self, name: &str) -> Result<Option<String>, ConfigError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        let list = self.parse_strings(name, v)?;
        if list.len() != 1 {
            return Err(self.err(
                name,
                format!("expected a single string, found {} strings", list.len()),
            ));
        }
        Ok(list.into_iter().next())
    }

    /// A string list (`"a", "b"`).
    pub fn string_list(&self, name: &str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.raw(name) {
            None => Ok(None),
            Some(v) => self.parse_strings(name, v).map(Some),
        }
    }

    fn parse_strings(&self, name: &str, v: &[u8]) -> Result<Vec<String>, ConfigError> {
        let not_str = || self.err(name, "expected a string (NUL-terminated UTF-8)");
        let body = match v.split_last() {
            Some((0, body)) => body,
            _ => return Err(not_str()),
        };
        let s = core::str::from_utf8(body).map_err(|_| not_str())?;
        let parts: Vec<String> = s.split('\0').map(ToString::to_string).collect();
        if parts.iter().any(String::is_empty) {
            return Err(self.err(name, "empty string"));
        }
        Ok(parts)
    }
}

fn be64(v: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&v[..8]);
    u64::from_be_bytes(b)
}
