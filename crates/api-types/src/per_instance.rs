//! [`PerInstance`]: a JSON object keyed by route server instance name, in instance order.
//!
//! A sorted map would put `RouteServiceRole_IN_10` before `RouteServiceRole_IN_2`; the object
//! keeps the order the instances are configured in, on the wire and after a client reads it.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Per instance name, its value, in instance order. A name appears once: an answer that lists
/// one twice is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerInstance<T>(pub Vec<(String, T)>);

impl<T> Default for PerInstance<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T> PerInstance<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next instance (after those already there).
    pub fn push(&mut self, name: impl Into<String>, value: T) {
        self.0.push((name.into(), value));
    }

    pub fn get(&self, name: &str) -> Option<&T> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut T)> {
        self.0.iter_mut().map(|(n, v)| (n.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// In the API's schema: an object keyed by instance name, each value a `T`.
impl<T: schemars::JsonSchema> schemars::JsonSchema for PerInstance<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("PerInstance_{}", T::schema_name()).into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let value = g.subschema_for::<T>();
        schemars::json_schema!({
            "type": "object",
            "description": "Keyed by route server instance name (RouteServiceRole_IN_0, ...), in instance order.",
            "additionalProperties": value
        })
    }
}

impl<T> FromIterator<(String, T)> for PerInstance<T> {
    fn from_iter<I: IntoIterator<Item = (String, T)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<T> IntoIterator for PerInstance<T> {
    type Item = (String, T);
    type IntoIter = std::vec::IntoIter<(String, T)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<T: Serialize> Serialize for PerInstance<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (name, v) in &self.0 {
            m.serialize_entry(name, v)?;
        }
        m.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for PerInstance<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = PerInstance<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object keyed by instance name")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out: Vec<(String, T)> = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((name, v)) = map.next_entry::<String, T>()? {
                    if out.iter().any(|(n, _)| *n == name) {
                        return Err(de::Error::custom(format_args!(
                            "instance {name:?} listed twice"
                        )));
                    }
                    out.push((name, v));
                }
                Ok(PerInstance(out))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_instance_order_past_nine() {
        let m: PerInstance<u32> = (0..12)
            .map(|i| (format!("RouteServiceRole_IN_{i}"), i))
            .collect();
        let s = serde_json::to_string(&m).unwrap();
        let at = |k: &str| s.find(&format!("\"{k}\"")).unwrap();
        assert!(at("RouteServiceRole_IN_9") < at("RouteServiceRole_IN_10"));
        assert!(at("RouteServiceRole_IN_1") < at("RouteServiceRole_IN_2"));
        let back: PerInstance<u32> = serde_json::from_str(&s).unwrap();
        assert_eq!(back, m);
        assert_eq!(serde_json::to_string(&back).unwrap(), s);
    }

    #[test]
    fn refuses_a_name_twice_and_a_non_object() {
        assert!(serde_json::from_str::<PerInstance<u32>>(r#"{"a":1,"a":2}"#).is_err());
        assert!(serde_json::from_str::<PerInstance<u32>>("[1]").is_err());
        assert_eq!(
            serde_json::from_str::<PerInstance<u32>>("{}").unwrap(),
            PerInstance::new()
        );
    }
}
