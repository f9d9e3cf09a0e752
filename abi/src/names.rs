//! Sets of named wire values (`mem_type`, `resource_type`, ...): one
//! definition gives the constants and their names, so that a decoder or a
//! log prints `NORMAL` from the same table the code compares against.

/// Define constants of one type, plus `ALL` (every value with its name) and
/// `name(v)` in the enclosing module.
macro_rules! named_values {
    ($ty:ty; $( $(#[$d:meta])* $name:ident = $val:expr, )*) => {
        $( $(#[$d])* pub const $name: $ty = $val; )*

        /// Every value with its name.
        pub const ALL: &[($ty, &str)] = &[$( ($val, stringify!($name)) ),*];

        /// The name of `v`, or `None` if it has none.
        pub fn name(v: $ty) -> Option<&'static str> {
            ALL.iter().find(|(x, _)| *x == v).map(|(_, n)| *n)
        }
    };
}
pub(crate) use named_values;

#[cfg(test)]
mod tests {
    use crate::{ext, mem, vm};

    #[test]
    fn names_come_from_the_constants() {
        assert_eq!(mem::mem_type::name(mem::mem_type::IO), Some("IO"));
        assert_eq!(mem::trans_type::name(2), Some("SHARE"));
        assert_eq!(mem::trans_type::name(3), None);
        assert_eq!(vm::resource_type::name(10), Some("ADDR_SPACE"));
        assert_eq!(vm::stop_reason::name(3), Some("FORCE_STOP"));
        assert_eq!(ext::fault_why::name(5), Some("NO_MEMORY"));
        assert_eq!(ext::fault_action::name(0), None);
        // Rights are a bit set: every combination has a name.
        assert_eq!(mem::rights::name(mem::rights::RW), Some("RW"));
        assert_eq!(
            mem::rights::name(mem::rights::W | mem::rights::X),
            Some("WX")
        );
        assert_eq!(mem::rights::name(0), Some("NONE"));
        assert_eq!(mem::rights::name(8), None);
    }
}
