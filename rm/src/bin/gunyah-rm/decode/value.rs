//! A decoded value as a tree ([`Val`]), built from any `serde::Serialize`
//! type (the abi crate's payloads, feature `serde`) and printed as JSON or
//! for people.
//!
//! Why not `serde_json::Value`: its objects lose field order (wire order is
//! what people read) and it cannot tell bytes from text, which the human
//! output shows differently (hex, plus the text when it is text).

use std::fmt;

use serde::ser::{self, Serialize};

/// A decoded field value, kept in wire order for the human output.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    /// An integer.
    Num(u64),
    /// A yes/no value.
    Bool(bool),
    /// A name or other text.
    Str(String),
    /// Raw bytes (hex in JSON).
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Val>),
    /// Named fields in order.
    Obj(Vec<(String, Val)>),
    /// No value.
    Null,
}

/// The tree of `v`; a value that cannot be described becomes a text saying
/// why (the abi types always can).
pub fn to_val<T: Serialize + ?Sized>(v: &T) -> Val {
    v.serialize(ValSerializer)
        .unwrap_or_else(|e| Val::Str(format!("(cannot describe: {e})")))
}

impl Val {
    /// The JSON form: numbers, strings, byte strings as hex, objects.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Val::Num(n) => J::from(*n),
            Val::Bool(b) => J::from(*b),
            Val::Str(s) => J::from(s.as_str()),
            Val::Bytes(b) => J::from(hex::encode(b)),
            Val::List(l) => J::Array(l.iter().map(Val::to_json).collect()),
            Val::Obj(fields) => J::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
            Val::Null => J::Null,
        }
    }

    /// The value on one line, or `None` for a list or an object of fields.
    pub fn scalar(&self) -> Option<String> {
        match self {
            Val::Num(n) if *n < 10 => Some(n.to_string()),
            Val::Num(n) => Some(format!("{n} ({n:#x})")),
            Val::Bool(b) => Some(b.to_string()),
            Val::Str(s) => Some(s.clone()),
            Val::Bytes(b) if b.is_empty() => Some("(none)".into()),
            Val::Bytes(b) => {
                // Show text only when it is text (console output, strings).
                let printable = b
                    .iter()
                    .all(|&c| c.is_ascii_graphic() || c == b' ' || c == b'\n' || c == b'\t');
                if printable {
                    Some(format!(
                        "{} {:?}",
                        hex::encode(b),
                        String::from_utf8_lossy(b)
                    ))
                } else {
                    Some(hex::encode(b))
                }
            }
            // A value with its name, e.g. a VM state: "3 (RUNNING)".
            Val::Obj(f) if f.len() == 2 && f[0].0 == "value" && f[1].0 == "name" => Some(format!(
                "{} ({})",
                f[0].1.scalar().unwrap_or_default(),
                f[1].1.scalar().unwrap_or_default()
            )),
            Val::Null => Some("-".into()),
            Val::List(_) | Val::Obj(_) => None,
        }
    }

    /// Print the fields of an object, one per line; a list's entries one per
    /// line, `[i] field: value, ...` when each entry fits on one.
    pub fn print_fields(&self, out: &mut String, indent: usize) {
        let pad = "  ".repeat(indent);
        let Val::Obj(fields) = self else {
            if let Some(s) = self.scalar() {
                out.push_str(&format!("{pad}{s}\n"));
            }
            return;
        };
        for (k, v) in fields {
            match v {
                Val::List(items) => {
                    out.push_str(&format!("{pad}{k}: {} entries\n", items.len()));
                    for (i, item) in items.iter().enumerate() {
                        match item {
                            Val::Obj(f) if f.iter().all(|(_, v)| v.scalar().is_some()) => {
                                let line: Vec<String> = f
                                    .iter()
                                    .map(|(k, v)| {
                                        format!("{k}: {}", v.scalar().unwrap_or_default())
                                    })
                                    .collect();
                                out.push_str(&format!("{pad}  [{i}] {}\n", line.join(", ")));
                            }
                            Val::Obj(_) => {
                                out.push_str(&format!("{pad}  [{i}]\n"));
                                item.print_fields(out, indent + 2);
                            }
                            other => out.push_str(&format!(
                                "{pad}  [{i}] {}\n",
                                other.scalar().unwrap_or_default()
                            )),
                        }
                    }
                }
                Val::Obj(_) if v.scalar().is_none() => {
                    out.push_str(&format!("{pad}{k}:\n"));
                    v.print_fields(out, indent + 1);
                }
                _ => out.push_str(&format!("{pad}{k}: {}\n", v.scalar().unwrap_or_default())),
            }
        }
    }
}

/// Why a value could not be described.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// Builds a [`Val`]. Not human-readable in serde's sense, so that bytes come
/// as bytes (the printers choose hex or text), not as a hex string.
struct ValSerializer;

fn signed(v: i64) -> Result<Val, Error> {
    u64::try_from(v)
        .map(Val::Num)
        .map_err(|_| Error(format!("negative number {v}: the RM protocol has none")))
}

impl ser::Serializer for ValSerializer {
    type Ok = Val;
    type Error = Error;
    type SerializeSeq = Seq;
    type SerializeTuple = Seq;
    type SerializeTupleStruct = Seq;
    type SerializeTupleVariant = Variant<Seq>;
    type SerializeMap = Map;
    type SerializeStruct = Obj;
    type SerializeStructVariant = Variant<Obj>;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Result<Val, Error> {
        Ok(Val::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Val, Error> {
        signed(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<Val, Error> {
        signed(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<Val, Error> {
        signed(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<Val, Error> {
        signed(v)
    }
    fn serialize_u8(self, v: u8) -> Result<Val, Error> {
        Ok(Val::Num(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Val, Error> {
        Ok(Val::Num(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Val, Error> {
        Ok(Val::Num(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Val, Error> {
        Ok(Val::Num(v))
    }
    fn serialize_f32(self, v: f32) -> Result<Val, Error> {
        Err(Error(format!(
            "number {v}: the RM protocol has no fractions"
        )))
    }
    fn serialize_f64(self, v: f64) -> Result<Val, Error> {
        Err(Error(format!(
            "number {v}: the RM protocol has no fractions"
        )))
    }
    fn serialize_char(self, v: char) -> Result<Val, Error> {
        Ok(Val::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Val, Error> {
        Ok(Val::Str(v.to_string()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Val, Error> {
        Ok(Val::Bytes(v.to_vec()))
    }
    fn serialize_none(self) -> Result<Val, Error> {
        Ok(Val::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Val, Error> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<Val, Error> {
        Ok(Val::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Val, Error> {
        Ok(Val::Obj(Vec::new()))
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Val, Error> {
        Ok(Val::Str(variant.to_string()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        v: &T,
    ) -> Result<Val, Error> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<Val, Error> {
        Ok(Val::Obj(vec![(variant.to_string(), v.serialize(self)?)]))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq, Error> {
        Ok(Seq(Vec::with_capacity(len.unwrap_or(0))))
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Seq, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Variant<Seq>, Error> {
        Ok(Variant(variant, self.serialize_seq(Some(len))?))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Map, Error> {
        Ok(Map(Obj(Vec::with_capacity(len.unwrap_or(0))), None))
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Obj, Error> {
        Ok(Obj(Vec::with_capacity(len)))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Variant<Obj>, Error> {
        Ok(Variant(variant, Obj(Vec::with_capacity(len))))
    }
}

/// A list being built.
struct Seq(Vec<Val>);

/// Fields being built.
struct Obj(Vec<(String, Val)>);

/// A map being built, with the key waiting for its value.
struct Map(Obj, Option<String>);

/// An enum variant's content being built: `{variant: content}`.
struct Variant<T>(&'static str, T);

impl ser::SerializeSeq for Seq {
    type Ok = Val;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        self.0.push(v.serialize(ValSerializer)?);
        Ok(())
    }
    fn end(self) -> Result<Val, Error> {
        Ok(Val::List(self.0))
    }
}

impl ser::SerializeTuple for Seq {
    type Ok = Val;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Val, Error> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for Seq {
    type Ok = Val;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Val, Error> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleVariant for Variant<Seq> {
    type Ok = Val;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(&mut self.1, v)
    }
    fn end(self) -> Result<Val, Error> {
        Ok(Val::Obj(vec![(self.0.to_string(), Val::List(self.1 .0))]))
    }
}

impl ser::SerializeStruct for Obj {
    type Ok = Val;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        self.0.push((key.to_string(), v.serialize(ValSerializer)?));
        Ok(())
    }
    fn end(self) -> Result<Val, Error> {
        Ok(Val::Obj(self.0))
    }
}

impl ser::SerializeStructVariant for Variant<Obj> {
    type Ok = Val;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        ser::SerializeStruct::serialize_field(&mut self.1, key, v)
    }
    fn end(self) -> Result<Val, Error> {
        Ok(Val::Obj(vec![(self.0.to_string(), Val::Obj(self.1 .0))]))
    }
}

impl ser::SerializeMap for Map {
    type Ok = Val;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.1 = Some(match key.serialize(ValSerializer)? {
            Val::Str(s) => s,
            Val::Num(n) => n.to_string(),
            other => other
                .scalar()
                .ok_or_else(|| Error("a map key that is a list or an object".into()))?,
        });
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        let key = self
            .1
            .take()
            .ok_or_else(|| Error("a map value without a key".into()))?;
        self.0 .0.push((key, v.serialize(ValSerializer)?));
        Ok(())
    }
    fn end(self) -> Result<Val, Error> {
        Ok(Val::Obj(self.0 .0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gunyah_rm_abi::mem::{rights, AclEntry};
    use gunyah_rm_abi::wire::Bytes;

    #[test]
    fn abi_values_keep_order_and_bytes() {
        // Field order is the struct's (wire) order, not alphabetical.
        assert_eq!(
            to_val(&AclEntry::new(0x80, rights::RW)),
            Val::Obj(vec![
                ("vmid".into(), Val::Num(0x80)),
                (
                    "rights".into(),
                    Val::Obj(vec![
                        ("value".into(), Val::Num(6)),
                        ("name".into(), Val::Str("RW".into())),
                    ])
                ),
            ])
        );
        // Bytes stay bytes (the abi gives hex strings to human-readable formats).
        assert_eq!(to_val(&Bytes(b"hi\n")), Val::Bytes(b"hi\n".to_vec()));
        assert_eq!(to_val(&Bytes(b"hi\n")).to_json(), "68690a");
        assert_eq!(
            to_val(&Bytes(b"hi\n")).scalar().unwrap(),
            "68690a \"hi\\n\""
        );
    }

    #[test]
    fn other_serde_shapes() {
        let m: std::collections::BTreeMap<u32, Option<i8>> = [(1, Some(2)), (12, None)].into();
        assert_eq!(
            to_val(&m),
            Val::Obj(vec![("1".into(), Val::Num(2)), ("12".into(), Val::Null)])
        );
        assert_eq!(
            to_val(&(true, 'x')),
            Val::List(vec![Val::Bool(true), Val::Str("x".into())])
        );
        assert!(matches!(to_val(&-1i32), Val::Str(s) if s.contains("negative number -1")));
    }
}
