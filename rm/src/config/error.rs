//! The loader's error: which node, which property, and why.

use alloc::string::String;
use core::fmt;

/// A config is rejected. `Display` reads like
/// `/gunyah-vm-config/golden: property "quota-pages": CoW mapping needs a quota of at least 1 page`
/// (without the property part when the problem is the node itself).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
pub struct ConfigError {
    /// Full node path, e.g. `/gunyah-vm-config/golden`; `/` for blob-level problems.
    pub node: String,
    /// The offending property, if the problem is a property.
    pub property: Option<String>,
    /// Why it was rejected.
    pub reason: String,
}

impl ConfigError {
    /// An error about property `property` of node `node`.
    pub fn prop(node: &str, property: &str, reason: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            property: Some(property.into()),
            reason: reason.into(),
        }
    }

    /// An error about node `node` itself (missing child, unknown child, bad structure).
    pub fn node(node: &str, reason: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            property: None,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.property {
            Some(p) => write!(f, "{}: property \"{}\": {}", self.node, p, self.reason),
            None => write!(f, "{}: {}", self.node, self.reason),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ConfigError {}

/// A set of configs is rejected: which config of the set (index into the slice given to
/// [`crate::config::validate_set`]) and the error in it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
pub struct SetError {
    /// Index of the offending config in the input slice.
    pub config: usize,
    /// What is wrong with it.
    pub error: ConfigError,
}

impl fmt::Display for SetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SetError {}
