//! Little-endian payload reading and writing, and the RM list encoding (§1.6).
//!
//! A list is `u16 count, u16 (per-message half-word)`, then `count`
//! fixed-size entries; the next list starts at the next 4-byte boundary. If
//! the buffer ends exactly where a list would start, that list is present
//! with 0 entries. Too few bytes → MSG_INVALID; count > 512 → NORESOURCE.

use alloc::vec::Vec;
use gunyah_rm_abi::RmError;

/// Most entries in one list (`MAX_LIST_ENTRIES`).
pub const MAX_LIST_ENTRIES: usize = 512;

/// A cursor over a request payload.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Read from the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Current offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Take `n` raw bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], RmError> {
        if self.remaining() < n {
            return Err(RmError::MsgInvalid);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Read a u8.
    pub fn u8(&mut self) -> Result<u8, RmError> {
        Ok(self.bytes(1)?[0])
    }
    /// Read a LE u16.
    pub fn u16(&mut self) -> Result<u16, RmError> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    /// Read a LE u32.
    pub fn u32(&mut self) -> Result<u32, RmError> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// Read a LE u64.
    pub fn u64(&mut self) -> Result<u64, RmError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Skip to the next 4-byte boundary (relative to the buffer start).
    pub fn align4(&mut self) {
        let p = (self.pos + 3) & !3;
        self.pos = p.min(self.buf.len());
    }

    /// Read one list header and its entries of `entry_size` bytes each.
    /// Returns `(half_word, entries)`; an absent trailing list is empty.
    pub fn list(&mut self, entry_size: usize) -> Result<(u16, Vec<&'a [u8]>), RmError> {
        self.align4();
        if self.remaining() == 0 {
            return Ok((0, Vec::new()));
        }
        let count = self.u16()? as usize;
        let half = self.u16()?;
        if count > MAX_LIST_ENTRIES {
            return Err(RmError::NoResource);
        }
        if self.remaining() < count * entry_size {
            return Err(RmError::MsgInvalid);
        }
        let mut v = Vec::with_capacity(count);
        for _ in 0..count {
            v.push(self.bytes(entry_size)?);
        }
        Ok((half, v))
    }

    /// Fail with MSG_INVALID unless every byte was consumed.
    pub fn finish(&self) -> Result<(), RmError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(RmError::MsgInvalid)
        }
    }
}

/// Read a LE u16 at `off` of an entry slice known to be long enough.
pub fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

/// Read a LE u64 at `off` of an entry slice known to be long enough.
pub fn le64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// Builds a little-endian payload.
#[derive(Clone, Debug, Default)]
pub struct Writer {
    /// The bytes written so far.
    pub buf: Vec<u8>,
}

impl Writer {
    /// An empty payload.
    pub fn new() -> Self {
        Writer { buf: Vec::new() }
    }
    /// Append a u8.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    /// Append a LE u16.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Append a LE u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Append a LE u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Append raw bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }
    /// Pad with zeros to a 4-byte boundary.
    pub fn align4(&mut self) -> &mut Self {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
        self
    }
    /// The finished payload.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_follow_rm_rules() {
        // count 2, half 0xBEEF, two 4-byte entries, then nothing (omitted list).
        let buf = [2, 0, 0xEF, 0xBE, 1, 2, 3, 4, 5, 6, 7, 8];
        let mut r = Reader::new(&buf);
        let (half, e) = r.list(4).unwrap();
        assert_eq!(half, 0xBEEF);
        assert_eq!(e, [&[1u8, 2, 3, 4][..], &[5, 6, 7, 8][..]]);
        assert_eq!(r.list(4).unwrap().1.len(), 0);
        r.finish().unwrap();
        // Entries overrun the buffer.
        assert_eq!(
            Reader::new(&[3, 0, 0, 0, 1, 2, 3, 4]).list(4),
            Err(RmError::MsgInvalid)
        );
        // Fewer than 4 bytes for a header.
        assert_eq!(Reader::new(&[1, 0]).list(4), Err(RmError::MsgInvalid));
        // 513 entries.
        assert_eq!(
            Reader::new(&[0x01, 0x02, 0, 0]).list(4),
            Err(RmError::NoResource)
        );
    }
}
