//! Values and byte templates: what a case sends and what it expects back, with variables
//! for what differs between runs and targets (handles, golden ids, VMIDs, IPAs the RM picks,
//! where the target's scratch memory is).
//!
//! A [`Val`] is a constant or a variable plus an offset. A [`Tmpl`] is a list of
//! little-endian pieces; in an expectation a piece may also capture a value into a
//! variable, skip bytes, or accept the rest.

use alloc::string::String;
use alloc::vec::Vec;
use alloc::{format, vec};

/// A variable's name.
pub type Var = &'static str;

/// A value: a constant, or a variable plus an offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Val {
    /// A constant.
    K(u64),
    /// A variable plus an offset (wrapping).
    V(Var, i64),
}

impl From<u64> for Val {
    fn from(v: u64) -> Val {
        Val::K(v)
    }
}
impl From<u32> for Val {
    fn from(v: u32) -> Val {
        Val::K(v.into())
    }
}
impl From<u16> for Val {
    fn from(v: u16) -> Val {
        Val::K(v.into())
    }
}
impl From<u8> for Val {
    fn from(v: u8) -> Val {
        Val::K(v.into())
    }
}
impl From<i32> for Val {
    fn from(v: i32) -> Val {
        Val::K(v as u64)
    }
}
impl From<Var> for Val {
    fn from(v: Var) -> Val {
        Val::V(v, 0)
    }
}

/// `var + off`.
pub fn at(var: Var, off: u64) -> Val {
    Val::V(var, off as i64)
}

/// The variables of one case.
#[derive(Clone, Debug, Default)]
pub struct Vars {
    ints: Vec<(Var, u64)>,
    blobs: Vec<(Var, Vec<u8>)>,
}

impl Vars {
    /// Bind (or rebind) an integer.
    pub fn set(&mut self, v: Var, x: u64) {
        match self.ints.iter_mut().find(|(n, _)| *n == v) {
            Some(e) => e.1 = x,
            None => self.ints.push((v, x)),
        }
    }
    /// An integer variable.
    pub fn get(&self, v: Var) -> Result<u64, String> {
        self.ints
            .iter()
            .find(|(n, _)| *n == v)
            .map(|e| e.1)
            .ok_or_else(|| format!("variable `{v}` is not bound"))
    }
    /// Bind a byte string.
    pub fn set_blob(&mut self, v: Var, b: Vec<u8>) {
        match self.blobs.iter_mut().find(|(n, _)| *n == v) {
            Some(e) => e.1 = b,
            None => self.blobs.push((v, b)),
        }
    }
    /// A byte-string variable.
    pub fn blob(&self, v: Var) -> Result<&[u8], String> {
        self.blobs
            .iter()
            .find(|(n, _)| *n == v)
            .map(|e| e.1.as_slice())
            .ok_or_else(|| format!("byte variable `{v}` is not bound"))
    }
    /// Evaluate a value.
    pub fn eval(&self, v: Val) -> Result<u64, String> {
        match v {
            Val::K(x) => Ok(x),
            Val::V(n, off) => Ok(self.get(n)?.wrapping_add(off as u64)),
        }
    }
}

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// These bytes.
    Bytes(Vec<u8>),
    /// A value, little-endian, in this many bytes (1, 2, 4 or 8).
    Le(Val, u8),
    /// The bytes of a byte variable.
    Blob(Var),
    /// Expectation only: a little-endian value of this width, bound to a variable.
    Cap(Var, u8),
    /// Expectation only: this many bytes, bound to a byte variable.
    CapBlob(Var, usize),
    /// Expectation only: a little-endian value of this width within `lo..=hi`.
    Range(u8, u64, u64),
    /// Expectation only: a little-endian value of this width, a multiple of the
    /// alignment, bound to a variable.
    CapAligned(Var, u8, u64),
    /// Expectation only: any `n` bytes.
    Any(usize),
    /// Expectation only: anything (or nothing) up to the end.
    Rest,
    /// Send only: drop the last `n` bytes rendered so far.
    CutBack(usize),
}

/// A byte template.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tmpl(pub Vec<Piece>);

impl Tmpl {
    /// An empty template.
    pub fn new() -> Tmpl {
        Tmpl(Vec::new())
    }
    /// Literal bytes.
    pub fn bytes(mut self, b: &[u8]) -> Tmpl {
        self.0.push(Piece::Bytes(b.to_vec()));
        self
    }
    /// `n` zero bytes.
    pub fn zeros(self, n: usize) -> Tmpl {
        self.bytes(&vec![0u8; n])
    }
    /// A `u8`.
    pub fn u8(mut self, v: impl Into<Val>) -> Tmpl {
        self.0.push(Piece::Le(v.into(), 1));
        self
    }
    /// A little-endian `u16`.
    pub fn u16(mut self, v: impl Into<Val>) -> Tmpl {
        self.0.push(Piece::Le(v.into(), 2));
        self
    }
    /// A little-endian `u32`.
    pub fn u32(mut self, v: impl Into<Val>) -> Tmpl {
        self.0.push(Piece::Le(v.into(), 4));
        self
    }
    /// A little-endian `u64`.
    pub fn u64(mut self, v: impl Into<Val>) -> Tmpl {
        self.0.push(Piece::Le(v.into(), 8));
        self
    }
    /// The bytes of a byte variable.
    pub fn blob(mut self, v: Var) -> Tmpl {
        self.0.push(Piece::Blob(v));
        self
    }
    /// Capture a `u16`.
    pub fn cap16(mut self, v: Var) -> Tmpl {
        self.0.push(Piece::Cap(v, 2));
        self
    }
    /// Capture a `u32`.
    pub fn cap32(mut self, v: Var) -> Tmpl {
        self.0.push(Piece::Cap(v, 4));
        self
    }
    /// Capture a `u64`.
    pub fn cap64(mut self, v: Var) -> Tmpl {
        self.0.push(Piece::Cap(v, 8));
        self
    }
    /// Capture `n` bytes.
    pub fn cap_blob(mut self, v: Var, n: usize) -> Tmpl {
        self.0.push(Piece::CapBlob(v, n));
        self
    }
    /// Capture a `u64` that must be a multiple of `align`.
    pub fn cap64_aligned(mut self, v: Var, align: u64) -> Tmpl {
        self.0.push(Piece::CapAligned(v, 8, align));
        self
    }
    /// A `u32` in `lo..=hi`.
    pub fn u32_in(mut self, lo: u32, hi: u32) -> Tmpl {
        self.0.push(Piece::Range(4, lo.into(), hi.into()));
        self
    }
    /// Any `n` bytes.
    pub fn any(mut self, n: usize) -> Tmpl {
        self.0.push(Piece::Any(n));
        self
    }
    /// Anything up to the end.
    pub fn rest(mut self) -> Tmpl {
        self.0.push(Piece::Rest);
        self
    }
    /// Append another template.
    pub fn then(mut self, t: Tmpl) -> Tmpl {
        self.0.extend(t.0);
        self
    }
    /// Drop the last `n` bytes rendered so far (to build truncated payloads).
    pub fn cut(mut self, n: usize) -> Tmpl {
        self.0.push(Piece::CutBack(n));
        self
    }

    /// The bytes this template sends.
    pub fn render(&self, vars: &Vars) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        for p in &self.0 {
            match p {
                Piece::Bytes(b) => out.extend_from_slice(b),
                Piece::Le(v, w) => {
                    let x = vars.eval(*v)?;
                    out.extend_from_slice(&x.to_le_bytes()[..usize::from(*w)]);
                }
                Piece::Blob(v) => out.extend_from_slice(vars.blob(v)?),
                Piece::CutBack(n) => out.truncate(out.len().saturating_sub(*n)),
                other => return Err(format!("{other:?} cannot be sent")),
            }
        }
        Ok(out)
    }

    /// Match `got` against this template, binding its captures into `vars`.
    pub fn matches(&self, got: &[u8], vars: &mut Vars) -> Result<(), String> {
        let mut at = 0usize;
        let take = |at: &mut usize, n: usize| -> Result<core::ops::Range<usize>, String> {
            let r = *at..*at + n;
            if r.end > got.len() {
                return Err(format!(
                    "{} bytes where at least {} were expected",
                    got.len(),
                    r.end
                ));
            }
            *at += n;
            Ok(r)
        };
        let le = |b: &[u8]| -> u64 {
            let mut w = [0u8; 8];
            w[..b.len()].copy_from_slice(b);
            u64::from_le_bytes(w)
        };
        for p in &self.0 {
            match p {
                Piece::Bytes(b) => {
                    let r = take(&mut at, b.len())?;
                    if &got[r.clone()] != b.as_slice() {
                        return Err(format!(
                            "bytes {}..{}: got {:02x?}, want {:02x?}",
                            r.start,
                            r.end,
                            &got[r.clone()],
                            b
                        ));
                    }
                }
                Piece::Le(v, w) => {
                    let r = take(&mut at, usize::from(*w))?;
                    let mask = if *w == 8 {
                        u64::MAX
                    } else {
                        (1u64 << (8 * w)) - 1
                    };
                    let want = vars.eval(*v)? & mask;
                    let g = le(&got[r.clone()]);
                    if g != want {
                        return Err(format!(
                            "bytes {}..{}: got {g:#x}, want {want:#x}",
                            r.start, r.end
                        ));
                    }
                }
                Piece::Blob(v) => {
                    let want = vars.blob(v)?.to_vec();
                    let r = take(&mut at, want.len())?;
                    if got[r.clone()] != want[..] {
                        return Err(format!("bytes {}..{} differ from `{v}`", r.start, r.end));
                    }
                }
                Piece::Cap(v, w) => {
                    let r = take(&mut at, usize::from(*w))?;
                    vars.set(v, le(&got[r]));
                }
                Piece::CapBlob(v, n) => {
                    let r = take(&mut at, *n)?;
                    vars.set_blob(v, got[r].to_vec());
                }
                Piece::CapAligned(v, w, align) => {
                    let r = take(&mut at, usize::from(*w))?;
                    let g = le(&got[r.clone()]);
                    if g % align != 0 {
                        return Err(format!(
                            "bytes {}..{}: {g:#x} is not a multiple of {align:#x}",
                            r.start, r.end
                        ));
                    }
                    vars.set(v, g);
                }
                Piece::Range(w, lo, hi) => {
                    let r = take(&mut at, usize::from(*w))?;
                    let g = le(&got[r.clone()]);
                    if g < *lo || g > *hi {
                        return Err(format!(
                            "bytes {}..{}: got {g:#x}, want {lo:#x}..={hi:#x}",
                            r.start, r.end
                        ));
                    }
                }
                Piece::Any(n) => {
                    take(&mut at, *n)?;
                }
                Piece::Rest => return Ok(()),
                Piece::CutBack(_) => return Err(String::from("a cut in an expectation")),
            }
        }
        if at != got.len() {
            return Err(format!("{} bytes where {} were expected", got.len(), at));
        }
        Ok(())
    }
}
