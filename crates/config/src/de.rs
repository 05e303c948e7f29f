//! A serde `Deserializer` over a parsed `toml::Value` that knows where it is.
//!
//! toml's own deserializer stops at the first unknown key and says "unknown field `x`" without
//! saying where. This one names every error by its key path (`load_balancer[0].backends[2].address`),
//! reports *every* unknown key of a table with the keys that are valid there (the list comes from
//! the derived `Deserialize`, so it cannot drift from the types) and keeps going, and words type
//! errors in TOML's terms ("expected an integer, found a string") rather than Rust's.

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use toml::Value;

use crate::error::Problems;

/// Deserialize `value`, found at `key`, into `T`. Problems go to `problems`; `None` when the
/// value could not be built at all.
pub(crate) fn from_value<T: DeserializeOwned>(
    value: &Value,
    key: &str,
    problems: &Problems,
) -> Option<T> {
    let deserializer = ValueDeserializer {
        value,
        key: key.to_owned(),
        problems,
    };
    match T::deserialize(deserializer) {
        Ok(t) => Some(t),
        Err(Error { key: at, message }) => {
            problems.at(at.unwrap_or_else(|| key.to_owned()), message);
            None
        }
    }
}

/// `parent.key`, or `parent."odd key"` when the key is not a bare TOML key.
pub(crate) fn child(parent: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

/// "unknown key (did you mean `password`?); valid keys: name, address, …".
pub(crate) fn unknown_key_message(key: &str, valid: &[&str]) -> String {
    let closest = valid
        .iter()
        .map(|v| (edit_distance(key, v), *v))
        .filter(|(d, v)| *d <= 2.max(v.len() / 3))
        .min();
    let hint = match closest {
        Some((_, v)) => format!(" (did you mean `{v}`?)"),
        None => String::new(),
    };
    format!("unknown key{hint}; valid keys: {}", valid.join(", "))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// "a string \"x\"", "an integer 5", "a table", …
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("a string {s:?}"),
        Value::Integer(i) => format!("an integer {i}"),
        Value::Float(f) => format!("a float {f}"),
        Value::Boolean(b) => format!("a boolean {b}"),
        Value::Datetime(d) => format!("a datetime {d}"),
        Value::Array(_) => "an array".to_owned(),
        Value::Table(_) => "a table".to_owned(),
    }
}

/// A deserialization error and, once known, the key path it belongs to.
#[derive(Debug)]
pub(crate) struct Error {
    key: Option<String>,
    message: String,
}

impl Error {
    /// Pins the error to `key` unless a deeper value already claimed it.
    fn at(mut self, key: &str) -> Self {
        if self.key.is_none() {
            self.key = Some(key.to_owned());
        }
        self
    }
}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            key: None,
            message: msg.to_string(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

struct ValueDeserializer<'a> {
    value: &'a Value,
    key: String,
    problems: &'a Problems,
}

impl ValueDeserializer<'_> {
    fn expected(&self, what: &str) -> Error {
        de::Error::custom(format!("expected {what}, found {}", describe(self.value)))
    }

    fn unsigned<'de, V: Visitor<'de>>(self, max: u64, visitor: V) -> Result<V::Value, Error> {
        match *self.value {
            Value::Integer(i) if i >= 0 && i as u64 <= max => visitor.visit_u64(i as u64),
            Value::Integer(i) => Err(de::Error::custom(format!(
                "{i} is out of range (0 to {max})"
            ))),
            _ => Err(self.expected("an integer")),
        }
        .map_err(|e| e.at(&self.key))
    }
}

impl<'de> de::Deserializer<'de> for ValueDeserializer<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::String(s) => visitor.visit_str(s).map_err(|mut e: Error| {
                // std's address parsers say "invalid IPv4 address syntax" without the text.
                if !e.message.contains(s.as_str()) {
                    e.message = format!("{s:?}: {}", e.message);
                }
                e
            }),
            Value::Integer(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Boolean(b) => visitor.visit_bool(*b),
            Value::Datetime(_) => {
                Err(self.expected("a string, a number, a boolean, an array or a table"))
            }
            Value::Array(items) => visitor.visit_seq(ArrayAccess {
                items: items.iter().enumerate(),
                key: &self.key,
                problems: self.problems,
            }),
            Value::Table(table) => visitor.visit_map(TableAccess {
                entries: table
                    .iter()
                    .map(|(k, v)| (k.as_str(), v))
                    .collect::<Vec<_>>()
                    .into_iter(),
                pending: None,
                key: &self.key,
                problems: self.problems,
            }),
        }
        .map_err(|e| e.at(&self.key))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let Value::Table(table) = self.value else {
            return Err(self.expected("a table").at(&self.key));
        };
        let mut entries = Vec::with_capacity(table.len());
        for (k, v) in table {
            if fields.contains(&k.as_str()) {
                entries.push((k.as_str(), v));
            } else {
                self.problems
                    .at(child(&self.key, k), unknown_key_message(k, fields));
            }
        }
        visitor
            .visit_map(TableAccess {
                entries: entries.into_iter(),
                pending: None,
                key: &self.key,
                problems: self.problems,
            })
            .map_err(|e| e.at(&self.key))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            _ => {
                let quoted: Vec<String> = variants.iter().map(|v| format!("{v:?}")).collect();
                Err(self.expected(&format!("one of {}", quoted.join(", "))))
            }
        }
        .map_err(|e| e.at(&self.key))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Array(_) => self.deserialize_any(visitor),
            _ => Err(self.expected("an array").at(&self.key)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::String(_) => self.deserialize_any(visitor),
            _ => Err(self.expected("a string").at(&self.key)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Boolean(_) => self.deserialize_any(visitor),
            _ => Err(self.expected("true or false").at(&self.key)),
        }
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.unsigned(u8::MAX.into(), visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.unsigned(u16::MAX.into(), visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.unsigned(u32::MAX.into(), visitor)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.unsigned(u64::MAX, visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // A key that is present is `Some`; absence is handled by the derived code.
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u128 f32 f64 char bytes byte_buf
        unit unit_struct tuple tuple_struct map identifier ignored_any
    }
}

struct ArrayAccess<'a, I> {
    items: I,
    key: &'a str,
    problems: &'a Problems,
}

impl<'de, 'a, I: Iterator<Item = (usize, &'a Value)>> SeqAccess<'de> for ArrayAccess<'a, I> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some((i, value)) = self.items.next() else {
            return Ok(None);
        };
        let key = format!("{}[{i}]", self.key);
        seed.deserialize(ValueDeserializer {
            value,
            key,
            problems: self.problems,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        self.items.size_hint().1
    }
}

struct TableAccess<'a> {
    entries: std::vec::IntoIter<(&'a str, &'a Value)>,
    pending: Option<(&'a str, &'a Value)>,
    key: &'a str,
    problems: &'a Problems,
}

impl<'de> MapAccess<'de> for TableAccess<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some((key, value));
        seed.deserialize(key.into_deserializer())
            .map(Some)
            .map_err(|e: Error| e.at(&child(self.key, key)))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let Some((key, value)) = self.pending.take() else {
            return Err(de::Error::custom("value requested before its key"));
        };
        seed.deserialize(ValueDeserializer {
            value,
            key: child(self.key, key),
            problems: self.problems,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths() {
        assert_eq!(child("", "route_server"), "route_server");
        assert_eq!(
            child("route_server.peer[1]", "asn"),
            "route_server.peer[1].asn"
        );
        assert_eq!(child("api", "a.b"), "api.\"a.b\"");
    }

    #[test]
    fn suggestions() {
        let valid = ["name", "address", "asn", "password"];
        assert_eq!(
            unknown_key_message("passwrd", &valid),
            "unknown key (did you mean `password`?); valid keys: name, address, asn, password"
        );
        assert_eq!(
            unknown_key_message("colour", &valid),
            "unknown key; valid keys: name, address, asn, password"
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
