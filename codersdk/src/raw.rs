//! [`RawJson`]: an arbitrary JSON value carried through unchanged (Go's `json.RawMessage`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// Deepest nesting of arrays and objects accepted inside a raw JSON field.
///
/// Tool arguments, tool results and input schemas come from models and third-party
/// clients; a cap keeps every later consumer (including recursive ones such as
/// `serde_json::Value`, whose own limit is 128) safe from stack exhaustion.
pub const MAX_RAW_JSON_DEPTH: usize = 64;

/// An arbitrary JSON value kept as compact text.
///
/// Like Go's `json.RawMessage` it is written back exactly as received, minus insignificant
/// whitespace (Go compacts raw messages when marshalling), so numbers keep their precision
/// and object keys their order. Reading validates the syntax and rejects nesting deeper than
/// [`MAX_RAW_JSON_DEPTH`] with a clear error; the check is iterative, never recursive.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RawJson(Box<str>);

/// Why a string is not accepted as [`RawJson`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RawJsonError {
    /// Not valid JSON.
    #[error("invalid JSON: {0}")]
    Syntax(String),
    /// Nested deeper than [`MAX_RAW_JSON_DEPTH`].
    #[error("JSON nested deeper than {MAX_RAW_JSON_DEPTH} levels")]
    TooDeep,
}

impl RawJson {
    /// Parses and compacts JSON text.
    pub fn from_json(text: &str) -> Result<Self, RawJsonError> {
        check_depth(text)?;
        let raw: &RawValue =
            serde_json::from_str(text).map_err(|e| RawJsonError::Syntax(e.to_string()))?;
        Ok(RawJson(compact(raw.get()).into_boxed_str()))
    }

    /// Serializes a value.
    pub fn from_value<T: Serialize + ?Sized>(value: &T) -> Result<Self, RawJsonError> {
        let text = serde_json::to_string(value).map_err(|e| RawJsonError::Syntax(e.to_string()))?;
        check_depth(&text)?;
        Ok(RawJson(text.into_boxed_str()))
    }

    /// The empty JSON object `{}`.
    pub fn empty_object() -> Self {
        RawJson("{}".into())
    }

    /// The JSON `null` literal.
    pub fn null() -> Self {
        RawJson("null".into())
    }

    /// The compact JSON text.
    pub fn get(&self) -> &str {
        &self.0
    }

    /// Whether the value is a JSON object.
    pub fn is_object(&self) -> bool {
        self.0.starts_with('{')
    }

    /// Whether the value is the JSON `null` literal.
    pub fn is_null(&self) -> bool {
        &*self.0 == "null"
    }

    /// Decodes into a typed value.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// Decodes into a `serde_json::Value` (safe: depth already bounded).
    pub fn to_value(&self) -> serde_json::Value {
        // Valid by construction, so this cannot fail; fall back to null rather than panic.
        serde_json::from_str(&self.0).unwrap_or(serde_json::Value::Null)
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawJson({})", self.0)
    }
}

impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for RawJson {
    type Err = RawJsonError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RawJson::from_json(s)
    }
}

impl From<serde_json::Value> for RawJson {
    fn from(v: serde_json::Value) -> Self {
        // A Value is itself bounded by serde_json's recursion limit when parsed; values
        // built in code are trusted. Display of a Value is compact JSON.
        RawJson(v.to_string().into_boxed_str())
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Emit verbatim through serde_json's raw-value hook; other serializers get a
        // structured value.
        match RawValue::from_string(self.0.to_string()) {
            Ok(raw) => raw.serialize(s),
            Err(e) => Err(serde::ser::Error::custom(e)),
        }
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        let text = raw.get();
        check_depth(text).map_err(serde::de::Error::custom)?;
        Ok(RawJson(compact(text).into_boxed_str()))
    }
}

impl ts_rs::TS for RawJson {
    type WithoutGenerics = Self;
    type OptionInnerType = Self;
    fn name(_: &ts_rs::Config) -> String {
        "unknown".to_owned()
    }
    fn inline(_: &ts_rs::Config) -> String {
        "unknown".to_owned()
    }
}

impl schemars::JsonSchema for RawJson {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RawJson".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "description": "Any JSON value." })
    }
}

/// Iterative depth check over JSON text: counts brackets outside strings.
fn check_depth(text: &str) -> Result<(), RawJsonError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_RAW_JSON_DEPTH {
                    return Err(RawJsonError::TooDeep);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Removes insignificant whitespace from valid JSON text.
fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            ' ' | '\t' | '\n' | '\r' => {}
            '"' => {
                in_string = true;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_numbers_and_key_order_and_compacts() {
        let r: RawJson = serde_json::from_str(
            r#"{ "z": 1.000000000000000000001, "a" : [1, 2 ], "s": " a b " }"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.get(),
            r#"{"z":1.000000000000000000001,"a":[1,2],"s":" a b "}"#
        );
        assert_eq!(
            serde_json::to_string(&r).unwrap_or_default(),
            r#"{"z":1.000000000000000000001,"a":[1,2],"s":" a b "}"#
        );
    }

    #[test]
    fn depth_limit_edge() {
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_RAW_JSON_DEPTH),
            "]".repeat(MAX_RAW_JSON_DEPTH)
        );
        assert!(RawJson::from_json(&ok).is_ok());
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_RAW_JSON_DEPTH + 1),
            "]".repeat(MAX_RAW_JSON_DEPTH + 1)
        );
        assert_eq!(RawJson::from_json(&deep), Err(RawJsonError::TooDeep));
        // Brackets inside strings do not count.
        let s = format!("\"{}\"", "[".repeat(1000));
        assert!(RawJson::from_json(&s).is_ok());
    }

    #[test]
    fn very_deep_input_is_an_error_not_a_crash() {
        let deep = format!(
            r#"{{"args": {}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            args: RawJson,
        }
        assert!(serde_json::from_str::<T>(&deep).is_err());
    }

    #[test]
    fn rejects_invalid() {
        assert!(matches!(
            RawJson::from_json("{"),
            Err(RawJsonError::Syntax(_))
        ));
        assert!(matches!(
            RawJson::from_json(""),
            Err(RawJsonError::Syntax(_))
        ));
    }
}

#[cfg(test)]
mod value_tests {
    use super::*;
    #[test]
    fn from_value_works() {
        let v = serde_json::json!({"a": [1, 2]});
        let r: Result<RawJson, _> = serde_json::from_value(v);
        assert!(r.is_ok(), "{r:?}");
    }
}
