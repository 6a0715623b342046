//! `model_intent`: a server flag that makes the model say why it calls each tool.
//!
//! The tool's schema is wrapped — `{model_intent: string, properties: <the real schema>}`,
//! both required — and a call's arguments are unwrapped before the server sees them. Models
//! sometimes skip the wrapper and send the real arguments flat (with or without a
//! `model_intent` beside them); both shapes are accepted.

use serde_json::{Map, Value};

/// The argument carrying the model's reason.
pub const MODEL_INTENT_FIELD: &str = "model_intent";

/// The argument carrying the real arguments in the wrapped shape.
pub const PROPERTIES_FIELD: &str = "properties";

/// The longest intent kept on the tool-call record (characters); a model that writes an
/// essay there does not bloat every stored call.
pub const MAX_MODEL_INTENT_CHARS: usize = 500;

/// The wrapped schema of a tool whose own input schema is `inner`.
pub fn wrap_schema(inner: &Map<String, Value>) -> Map<String, Value> {
    let mut properties = Map::new();
    properties.insert(
        MODEL_INTENT_FIELD.to_owned(),
        serde_json::json!({
            "type": "string",
            "description": "In a few words, why you are calling this tool: what you expect \
                            to learn or change. Shown to the user.",
        }),
    );
    properties.insert(PROPERTIES_FIELD.to_owned(), Value::Object(inner.clone()));
    let mut schema = Map::new();
    schema.insert("type".to_owned(), Value::from("object"));
    schema.insert("properties".to_owned(), Value::Object(properties));
    schema.insert(
        "required".to_owned(),
        Value::from(vec![MODEL_INTENT_FIELD, PROPERTIES_FIELD]),
    );
    schema
}

/// A call's arguments split into the server's arguments and the model's intent.
#[derive(Debug, Clone, PartialEq)]
pub struct Unwrapped {
    /// What the server gets.
    pub arguments: Map<String, Value>,
    /// Why the model called, when it said so (cut to [`MAX_MODEL_INTENT_CHARS`]).
    pub intent: Option<String>,
}

/// Unwraps the arguments of a call to a wrapped tool: `{model_intent, properties: {...}}`
/// gives `properties`; any other object is the flat shape, whose `model_intent` (if any) is
/// removed and the rest passed on. A `properties` that is not an object is treated as
/// flat too: it may be one of the tool's own arguments.
pub fn unwrap_arguments(mut args: Map<String, Value>) -> Unwrapped {
    let intent = match args.remove(MODEL_INTENT_FIELD) {
        Some(Value::String(s)) => Some(s.chars().take(MAX_MODEL_INTENT_CHARS).collect()),
        Some(other) if !other.is_null() => Some(
            other
                .to_string()
                .chars()
                .take(MAX_MODEL_INTENT_CHARS)
                .collect(),
        ),
        _ => None,
    };
    let nested = matches!(args.get(PROPERTIES_FIELD), Some(Value::Object(_))) && args.len() == 1;
    let arguments = if nested {
        match args.remove(PROPERTIES_FIELD) {
            Some(Value::Object(inner)) => inner,
            _ => Map::new(),
        }
    } else {
        args
    };
    Unwrapped { arguments, intent }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn schema_is_wrapped_with_both_fields_required() {
        let inner = obj(json!({"type":"object","properties":{"a":{"type":"number"}}}));
        let wrapped = Value::Object(wrap_schema(&inner));
        assert_eq!(wrapped["required"], json!(["model_intent", "properties"]));
        assert_eq!(wrapped["properties"]["properties"], Value::Object(inner));
        assert_eq!(wrapped["properties"]["model_intent"]["type"], "string");
    }

    #[test]
    fn nested_and_flat_shapes_unwrap() {
        let nested = unwrap_arguments(obj(
            json!({"model_intent":"add","properties":{"a":1,"b":2}}),
        ));
        assert_eq!(nested.arguments, obj(json!({"a":1,"b":2})));
        assert_eq!(nested.intent.as_deref(), Some("add"));

        let flat = unwrap_arguments(obj(json!({"model_intent":"add","a":1,"b":2})));
        assert_eq!(flat.arguments, obj(json!({"a":1,"b":2})));
        assert_eq!(flat.intent.as_deref(), Some("add"));

        let bare = unwrap_arguments(obj(json!({"a":1})));
        assert_eq!(bare.arguments, obj(json!({"a":1})));
        assert_eq!(bare.intent, None);

        // A tool whose own argument is called `properties` keeps it when other arguments
        // sit beside it.
        let own = unwrap_arguments(obj(json!({"properties":{"x":1},"name":"n"})));
        assert_eq!(own.arguments, obj(json!({"properties":{"x":1},"name":"n"})));
    }

    #[test]
    fn long_intents_are_cut() {
        let long = "é".repeat(MAX_MODEL_INTENT_CHARS + 10);
        let u = unwrap_arguments(obj(json!({"model_intent": long, "properties": {}})));
        assert_eq!(u.intent.unwrap().chars().count(), MAX_MODEL_INTENT_CHARS);
        assert!(u.arguments.is_empty());
    }
}
