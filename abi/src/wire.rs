//! Payload codec: a bounds-checked reader that applies the RM list rules of
//! spec §1.6, and a writer that encodes into a caller's buffer.
//!
//! List encoding: `u16 count`, `u16` second half-word (reserved, except
//! `map_vmid` in MEM_ACCEPT's SGL list), then `count` fixed-size entries; the
//! next item starts at the next 4-byte boundary. A list that would start
//! exactly at the end of the buffer is present with 0 entries. Fewer than 4
//! bytes for a list header or entries overrunning the buffer → `MSG_INVALID`;
//! more than 512 entries → `NORESOURCE` (checked before the overrun, as the RM
//! does).
//!
//! Some replies (VM_GET_PEERS, VM_GET_HYP_RESOURCES, VM_LOOKUP_*) instead carry
//! a `u32` count and then exactly that many entries, with no 512 limit and no
//! padding: [`Reader::counted`], [`Writer::counted`], [`counted_len`].

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::RmError;

/// Most entries in one RM list (`MAX_LIST_ENTRIES`).
pub const MAX_LIST_ENTRIES: usize = 512;

/// Why a payload failed to decode: the RM error code to answer with, the
/// byte offset in the payload where the problem is, and what was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// The error code the RM replies with (`MSG_INVALID`, `NORESOURCE`, ...).
    pub error: RmError,
    /// Byte offset in the payload.
    pub offset: usize,
    /// The field or part concerned.
    pub what: &'static str,
    /// What is wrong with it (may be empty when `what` says it all).
    pub why: &'static str,
}

impl DecodeError {
    /// A `MSG_INVALID` error at `offset`.
    pub const fn invalid(offset: usize, what: &'static str) -> Self {
        DecodeError {
            error: RmError::MsgInvalid,
            offset,
            what,
            why: "",
        }
    }

    /// An `ARGUMENT_INVALID` error at `offset`: the payload has the right shape but a field
    /// holds a value the message does not allow (a reserved field that is not 0, an unknown
    /// flag), as the extension messages answer it.
    pub const fn argument(offset: usize, what: &'static str) -> Self {
        DecodeError {
            error: RmError::ArgumentInvalid,
            offset,
            what,
            why: "",
        }
    }

    /// The same error with a reason attached.
    pub const fn because(mut self, why: &'static str) -> Self {
        self.why = why;
        self
    }
}

impl From<DecodeError> for RmError {
    fn from(e: DecodeError) -> RmError {
        e.error
    }
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "payload byte {}: {}", self.offset, self.what)?;
        if !self.why.is_empty() {
            write!(f, ": {}", self.why)?;
        }
        write!(f, " ({})", self.error.name().unwrap_or("?"))
    }
}

/// Why a payload could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The output buffer is too small.
    BufferTooSmall {
        /// Bytes needed in total.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The encoded message cannot be fragmented (more than 62
    /// continuations).
    Fragment(crate::fragment::FragmentError),
    /// A list has more entries than its count field or the RM allows.
    TooManyEntries {
        /// Entries given.
        count: usize,
        /// The maximum.
        max: usize,
    },
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EncodeError::BufferTooSmall { needed, available } => write!(
                f,
                "output buffer of {available} bytes is too small ({needed} needed)"
            ),
            EncodeError::Fragment(e) => write!(f, "{e}"),
            EncodeError::TooManyEntries { count, max } => {
                write!(f, "list of {count} entries exceeds {max}")
            }
        }
    }
}

impl From<crate::fragment::FragmentError> for EncodeError {
    fn from(e: crate::fragment::FragmentError) -> Self {
        EncodeError::Fragment(e)
    }
}

/// A decoded list: its entries and the second half-word of its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct List<'a, T> {
    /// The entries, borrowed from the payload.
    pub entries: &'a [T],
    /// The header's second half-word (reserved in most lists).
    pub aux: u16,
    /// Whether the list was omitted (buffer ended where it would start).
    pub omitted: bool,
}

/// A bounds-checked cursor over an untrusted payload.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at offset 0.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Current offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The unread bytes (empty if list padding ran past the end).
    fn tail(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// Require at least `n` bytes in the whole payload (the RM's
    /// `len < sizeof(req)` check).
    pub fn require_len(&self, n: usize, what: &'static str) -> Result<(), DecodeError> {
        if self.buf.len() < n {
            Err(DecodeError::invalid(self.buf.len(), what))
        } else {
            Ok(())
        }
    }

    /// Read a fixed-size wire struct (copied).
    pub fn read<T: FromBytes + KnownLayout + Immutable + Unaligned>(
        &mut self,
        what: &'static str,
    ) -> Result<T, DecodeError> {
        let (v, _) = T::read_from_prefix(self.tail())
            .map_err(|_| DecodeError::invalid(self.pos, what).because("payload ends early"))?;
        self.pos += core::mem::size_of::<T>();
        Ok(v)
    }

    /// Borrow `n` entries of `T`.
    pub fn slice<T: FromBytes + Immutable + Unaligned>(
        &mut self,
        n: usize,
        what: &'static str,
    ) -> Result<&'a [T], DecodeError> {
        let size = n
            .checked_mul(core::mem::size_of::<T>())
            .filter(|s| *s <= self.remaining())
            .ok_or(DecodeError::invalid(self.pos, what).because("overruns the payload"))?;
        let bytes = &self.tail()[..size];
        let v = <[T]>::ref_from_bytes(bytes).map_err(|_| DecodeError::invalid(self.pos, what))?;
        self.pos += size;
        Ok(v)
    }

    /// Borrow `n` raw bytes.
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        self.slice::<u8>(n, what)
    }

    /// Borrow everything that is left.
    pub fn rest(&mut self) -> &'a [u8] {
        let r = self.tail();
        self.pos = self.pos.max(self.buf.len());
        r
    }

    /// Read an RM list (§1.6) with at most 512 entries.
    pub fn list<T: FromBytes + Immutable + Unaligned>(
        &mut self,
        what: &'static str,
    ) -> Result<List<'a, T>, DecodeError> {
        if self.pos == self.buf.len() {
            return Ok(List {
                entries: &[],
                aux: 0,
                omitted: true,
            });
        }
        if self.remaining() < 4 {
            return Err(DecodeError::invalid(self.pos, what).because("list header truncated"));
        }
        let at = self.pos;
        let count = u16::from_le_bytes([self.buf[at], self.buf[at + 1]]) as usize;
        let aux = u16::from_le_bytes([self.buf[at + 2], self.buf[at + 3]]);
        if count > MAX_LIST_ENTRIES {
            return Err(DecodeError {
                error: RmError::NoResource,
                offset: at,
                what,
                why: "more than 512 entries",
            });
        }
        self.pos += 4;
        let entries = self
            .slice::<T>(count, what)
            .map_err(|e| e.because("entries overrun the payload"))?;
        // Next item starts at the next 4-byte boundary (may lie past the end
        // for entry sizes that are not multiples of 4, as in the RM).
        self.pos = (self.pos + 3) & !3;
        Ok(List {
            entries,
            aux,
            omitted: false,
        })
    }

    /// Read a `u32` count, then borrow that many `T`s. A short count is
    /// `MSG_INVALID` at the count's offset (labelled `count_what`), entries
    /// overrunning the payload `MSG_INVALID` just after it (labelled `what`).
    /// Bytes after the entries are left to the caller ([`Self::finish`]).
    pub fn counted<T: FromBytes + Immutable + Unaligned>(
        &mut self,
        count_what: &'static str,
        what: &'static str,
    ) -> Result<&'a [T], DecodeError> {
        let count = self.read::<zerocopy::little_endian::U32>(count_what)?.get();
        // A count beyond usize cannot be present: let `slice` report the overrun.
        self.slice(usize::try_from(count).unwrap_or(usize::MAX), what)
    }

    /// Fail with `MSG_INVALID` if bytes are left over.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.pos < self.buf.len() {
            Err(DecodeError::invalid(self.pos, "payload").because("trailing bytes"))
        } else if self.pos > self.buf.len() {
            // Only reachable through list padding past the end.
            Err(DecodeError::invalid(self.buf.len(), "list padding missing"))
        } else {
            Ok(())
        }
    }
}

/// Encodes into a caller's buffer.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    /// A writer at offset 0 of `buf`.
    #[inline]
    pub fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    /// Bytes written so far.
    #[inline]
    pub fn len(&self) -> usize {
        self.pos
    }

    /// Whether nothing was written yet.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    #[inline]
    fn room(&self, n: usize) -> Result<(), EncodeError> {
        if self.buf.len() - self.pos < n {
            Err(EncodeError::BufferTooSmall {
                needed: self.pos + n,
                available: self.buf.len(),
            })
        } else {
            Ok(())
        }
    }

    /// Write raw bytes.
    #[inline]
    pub fn bytes(&mut self, b: &[u8]) -> Result<(), EncodeError> {
        self.room(b.len())?;
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
        Ok(())
    }

    /// Write a wire struct or a slice of them.
    #[inline]
    pub fn put<T: IntoBytes + Immutable + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        self.bytes(v.as_bytes())
    }

    /// Zero-pad to the next 4-byte boundary.
    #[inline]
    pub fn pad4(&mut self) -> Result<(), EncodeError> {
        let pad = (4 - (self.pos & 3)) & 3;
        self.bytes(&[0u8; 3][..pad])
    }

    /// Write an RM list: `u16 count, u16 aux, entries`, padded to 4 bytes.
    #[inline]
    pub fn list<T: IntoBytes + Immutable>(
        &mut self,
        entries: &[T],
        aux: u16,
    ) -> Result<(), EncodeError> {
        if entries.len() > MAX_LIST_ENTRIES {
            return Err(EncodeError::TooManyEntries {
                count: entries.len(),
                max: MAX_LIST_ENTRIES,
            });
        }
        self.bytes(&(entries.len() as u16).to_le_bytes())?;
        self.bytes(&aux.to_le_bytes())?;
        self.put(entries)?;
        self.pad4()
    }

    /// Write a `u32` count, then the entries; more entries than a `u32` can
    /// count is [`EncodeError::TooManyEntries`] (nothing is written).
    #[inline]
    pub fn counted<T: IntoBytes + Immutable>(&mut self, entries: &[T]) -> Result<(), EncodeError> {
        let count = u32::try_from(entries.len()).map_err(|_| EncodeError::TooManyEntries {
            count: entries.len(),
            max: u32::MAX as usize,
        })?;
        self.bytes(&count.to_le_bytes())?;
        self.put(entries)
    }

    /// The number of bytes written.
    #[inline]
    pub fn finish(self) -> usize {
        self.pos
    }
}

/// Length of an RM list with `n` entries of `T` on the wire.
pub const fn list_len<T>(n: usize) -> usize {
    (4 + n * core::mem::size_of::<T>() + 3) & !3
}

/// Length of a `u32`-counted list with `n` entries of `T` on the wire.
pub const fn counted_len<T>(n: usize) -> usize {
    4 + n * core::mem::size_of::<T>()
}

/// A payload that can be written into a caller's buffer.
pub trait Encode {
    /// Exact encoded length in bytes.
    fn encoded_len(&self) -> usize;
    /// Write the payload to the start of `out`; returns the length written.
    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::little_endian::U32;

    #[test]
    fn list_rules() {
        // Omitted list at the end.
        let mut r = Reader::new(&[]);
        let l = r.list::<U32>("x").unwrap();
        assert!(l.omitted && l.entries.is_empty());
        // Header too short.
        let mut r = Reader::new(&[1, 0]);
        assert_eq!(r.list::<U32>("x").unwrap_err().error, RmError::MsgInvalid);
        // 513 entries → NORESOURCE even though the entries are missing.
        let mut r = Reader::new(&[0x01, 0x02, 0, 0]);
        let e = r.list::<U32>("x").unwrap_err();
        assert_eq!((e.error, e.offset), (RmError::NoResource, 0));
        // 512 entries but none present → MSG_INVALID.
        let mut r = Reader::new(&[0x00, 0x02, 0, 0]);
        assert_eq!(r.list::<U32>("x").unwrap_err().error, RmError::MsgInvalid);
        // Two entries and aux = 0x0203, then trailing byte.
        let b = [2, 0, 3, 2, 1, 0, 0, 0, 2, 0, 0, 0, 9];
        let mut r = Reader::new(&b);
        let l = r.list::<U32>("x").unwrap();
        assert_eq!(l.aux, 0x0203);
        assert_eq!(l.entries[1].get(), 2);
        assert_eq!(r.finish().unwrap_err().offset, 12);
    }

    #[test]
    fn counted_rules() {
        let err = |b: &[u8]| Reader::new(b).counted::<U32>("n", "e").unwrap_err();
        // Empty list: just the count, nothing else.
        let mut r = Reader::new(&[0, 0, 0, 0]);
        assert!(r.counted::<U32>("n", "e").unwrap().is_empty());
        assert_eq!((r.pos(), r.finish()), (4, Ok(())));
        // Exact list, no padding after 3-byte entries.
        let b = [2, 0, 0, 0, 1, 2, 3, 4, 5, 6];
        let mut r = Reader::new(&b);
        assert_eq!(
            r.counted::<[u8; 3]>("n", "e").unwrap(),
            &[[1, 2, 3], [4, 5, 6]]
        );
        assert_eq!(r.finish(), Ok(()));
        // Short count: at offset 0, under the count's label.
        let e = err(&[1, 0, 0]);
        assert_eq!((e.error, e.offset, e.what), (RmError::MsgInvalid, 0, "n"));
        assert_eq!(e.why, "payload ends early");
        // More entries counted than present (one short; u32::MAX): just after the count.
        for b in [&[2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0][..], &[0xFF; 12][..]] {
            let e = err(b);
            assert_eq!((e.error, e.offset, e.what), (RmError::MsgInvalid, 4, "e"));
            assert_eq!(e.why, "overruns the payload");
        }
        // Bytes after the entries are the caller's: they stay unread.
        let b = [1, 0, 0, 0, 7, 0, 0, 0, 9];
        let mut r = Reader::new(&b);
        assert_eq!(r.counted::<U32>("n", "e").unwrap(), &[U32::new(7)]);
        assert_eq!(r.remaining(), 1);
        let e = r.finish().unwrap_err();
        assert_eq!(
            (e.error, e.offset, e.why),
            (RmError::MsgInvalid, 8, "trailing bytes")
        );
        // Encode: count, entries, no padding; then decodes to the same entries.
        let v = [[1u8, 2, 3], [4, 5, 6]];
        let mut out = [0xEEu8; 16];
        let mut w = Writer::new(&mut out);
        w.counted(&v[..]).unwrap();
        let n = w.finish();
        assert_eq!((n, counted_len::<[u8; 3]>(2)), (10, 10));
        assert_eq!(&out[..n], &b"\x02\0\0\0\x01\x02\x03\x04\x05\x06"[..]);
        assert_eq!(
            Reader::new(&out[..n]).counted::<[u8; 3]>("n", "e"),
            Ok(&v[..])
        );
        assert_eq!(counted_len::<U32>(0), 4);
        // Too small a buffer.
        assert_eq!(
            Writer::new(&mut [0u8; 9]).counted(&v[..]),
            Err(EncodeError::BufferTooSmall {
                needed: 10,
                available: 9
            })
        );
    }

    /// 2^32 entries do not fit the u32 count: an error, not a count of 0.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn counted_refuses_more_than_u32_entries() {
        let many = [(); 1 << 32];
        let mut out = [0xEEu8; 4];
        let mut w = Writer::new(&mut out);
        assert_eq!(
            w.counted(&many[..]),
            Err(EncodeError::TooManyEntries {
                count: 1 << 32,
                max: u32::MAX as usize
            })
        );
        assert!(w.is_empty());
        assert_eq!(out, [0xEE; 4]);
        // One fewer fits: the count is u32::MAX and the entries take no bytes.
        let mut w = Writer::new(&mut out);
        w.counted(&many[1..]).unwrap();
        assert_eq!(out, [0xFF; 4]);
    }

    #[test]
    fn padding_past_the_end_is_not_a_panic() {
        // A 3-byte u8 list whose padding byte is missing.
        let b = [3, 0, 0, 0, 7, 8, 9];
        let mut r = Reader::new(&b);
        assert_eq!(r.list::<u8>("x").unwrap().entries, &[7, 8, 9]);
        assert_eq!(r.remaining(), 0);
        assert!(r.read::<u8>("y").is_err());
        assert!(r.slice::<u8>(1, "z").is_err());
        assert!(r.list::<u8>("w").is_err());
        assert!(r.rest().is_empty());
        assert_eq!(r.finish().unwrap_err().offset, 7);
    }

    #[test]
    fn byte_list_padding() {
        let mut out = [0xFFu8; 16];
        let mut w = Writer::new(&mut out);
        w.list(&[7u8, 8, 9][..], 0).unwrap();
        let n = w.finish();
        assert_eq!(&out[..n], &[3, 0, 0, 0, 7, 8, 9, 0]);
        assert_eq!(list_len::<u8>(3), 8);
    }

    #[test]
    fn writer_bounds() {
        let mut out = [0u8; 3];
        let mut w = Writer::new(&mut out);
        assert_eq!(
            w.bytes(&[1, 2, 3, 4]).unwrap_err(),
            EncodeError::BufferTooSmall {
                needed: 4,
                available: 3
            }
        );
        let big = [0u8; 513];
        let mut out = [0u8; 1024];
        assert!(matches!(
            Writer::new(&mut out).list(&big[..], 0),
            Err(EncodeError::TooManyEntries { count: 513, .. })
        ));
    }
}

/// Implement exact-size `decode` and [`Encode`] for a fixed-size wire struct; `Type: check`
/// also runs `check(&value)` (reserved fields, flags) after the size check, so the decoder
/// refuses what the message does not allow before any handler sees it.
macro_rules! fixed_payload {
    ($($t:ident $(: $check:path)?),* $(,)?) => {$(
        impl $t {
            /// Wire size in bytes.
            pub const SIZE: usize = core::mem::size_of::<$t>();

            /// Decode a payload of exactly [`Self::SIZE`] bytes (`MSG_INVALID`
            /// otherwise).
            pub fn decode(bytes: &[u8]) -> Result<$t, $crate::wire::DecodeError> {
                use zerocopy::FromBytes;
                if bytes.len() < Self::SIZE {
                    return Err($crate::wire::DecodeError::invalid(bytes.len(), stringify!($t))
                        .because(concat!("payload shorter than ", stringify!($t))));
                }
                if bytes.len() > Self::SIZE {
                    return Err($crate::wire::DecodeError::invalid(Self::SIZE, stringify!($t))
                        .because("trailing bytes"));
                }
                let v = <$t>::read_from_bytes(bytes).map_err(|_| {
                    $crate::wire::DecodeError::invalid(0, stringify!($t))
                })?;
                $($check(&v)?;)?
                Ok(v)
            }
        }

        impl $crate::wire::Encode for $t {
            fn encoded_len(&self) -> usize {
                Self::SIZE
            }
            fn encode(&self, out: &mut [u8]) -> Result<usize, $crate::wire::EncodeError> {
                let mut w = $crate::wire::Writer::new(out);
                w.put(self)?;
                Ok(w.finish())
            }
        }
    )*};
}
pub(crate) use fixed_payload;

/// Derive list for every fixed-size wire struct in this crate.
///
/// With the `serde` feature the struct also derives `Serialize` (see
/// [`crate::ser`]): each field goes through `ser::wire` (little-endian
/// integers as numbers, byte arrays as bytes), a field called `reserved` is
/// left out while zero, and a field whose doc comment is followed by its own
/// `#[cfg_attr(feature = "serde", serde(serialize_with = ...))]` (a named
/// value) keeps that instead. Other serde attributes (`rename`) combine with
/// the default.
macro_rules! wire_struct {
    ($(#[$m:meta])* pub struct $name:ident { $($fields:tt)* }) => {
        $crate::wire::wire_struct!(@field [$(#[$m])* $name] [] $($fields)*);
    };
    // A field with its own serializer.
    (@field $head:tt [$($done:tt)*]
        $(#[doc = $doc:literal])*
        #[cfg_attr(feature = "serde", serde(serialize_with = $with:literal $($more:tt)*))]
        pub $f:ident: $t:ty, $($rest:tt)*
    ) => {
        $crate::wire::wire_struct!(@field $head [$($done)*
            $(#[doc = $doc])*
            #[cfg_attr(feature = "serde", serde(serialize_with = $with $($more)*))]
            pub $f: $t,
        ] $($rest)*);
    };
    // A reserved field: shown only when it is not zero.
    (@field $head:tt [$($done:tt)*] $(#[$fm:meta])* pub reserved: $t:ty, $($rest:tt)*) => {
        $crate::wire::wire_struct!(@field $head [$($done)*
            $(#[$fm])*
            #[cfg_attr(feature = "serde", serde(
                serialize_with = "crate::ser::wire",
                skip_serializing_if = "crate::ser::is_zero"
            ))]
            pub reserved: $t,
        ] $($rest)*);
    };
    (@field $head:tt [$($done:tt)*] $(#[$fm:meta])* pub $f:ident: $t:ty, $($rest:tt)*) => {
        $crate::wire::wire_struct!(@field $head [$($done)*
            $(#[$fm])*
            #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::wire"))]
            pub $f: $t,
        ] $($rest)*);
    };
    (@field [$(#[$m:meta])* $name:ident] [$($done:tt)*]) => {
        $(#[$m])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Default,
            zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::KnownLayout,
            zerocopy::Immutable, zerocopy::Unaligned,
        )]
        #[cfg_attr(feature = "serde", derive(serde::Serialize))]
        #[repr(C)]
        pub struct $name { $($done)* }
    };
}
pub(crate) use wire_struct;

/// An empty payload (VM_GET_VMID request, standard replies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Empty;

impl Empty {
    /// Decode: any byte is a trailing byte (`MSG_INVALID`).
    pub fn decode(bytes: &[u8]) -> Result<Empty, DecodeError> {
        if bytes.is_empty() {
            Ok(Empty)
        } else {
            Err(DecodeError::invalid(
                0,
                "trailing bytes (payload must be empty)",
            ))
        }
    }
}

impl Encode for Empty {
    fn encoded_len(&self) -> usize {
        0
    }
    fn encode(&self, _out: &mut [u8]) -> Result<usize, EncodeError> {
        Ok(0)
    }
}

/// Opaque bytes (unknown messages, SIM_VM_READ reply data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes<'a>(pub &'a [u8]);

impl<'a> Bytes<'a> {
    /// Borrow all bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Bytes<'a>, DecodeError> {
        Ok(Bytes(bytes))
    }
}

impl Encode for Bytes<'_> {
    fn encoded_len(&self) -> usize {
        self.0.len()
    }
    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.bytes(self.0)?;
        Ok(w.finish())
    }
}
