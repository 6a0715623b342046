//! Client-executed ("dynamic") tools declared at chat creation.

use std::collections::HashSet;

use super::{quoted, Problems};
use crate::{DynamicTool, RawJson, Response};

/// Most client-executed tools one chat may declare.
pub const MAX_DYNAMIC_TOOLS: usize = 250;

/// Longest dynamic tool name, in bytes. OpenAI and Anthropic both reject tool names
/// outside `^[a-zA-Z0-9_-]{1,64}$`, so a longer name would fail every model call.
pub const MAX_DYNAMIC_TOOL_NAME_BYTES: usize = 64;

pub(super) fn check_dynamic_tools(tools: &[DynamicTool], p: &mut Problems) {
    if tools.len() > MAX_DYNAMIC_TOOLS {
        p.push(
            "unsafe_dynamic_tools",
            format!(
                "{} dynamic tools were declared; a chat may declare at most {MAX_DYNAMIC_TOOLS}.",
                tools.len()
            ),
        );
        return;
    }
    let mut seen = HashSet::new();
    for (i, tool) in tools.iter().enumerate() {
        let name_field = format!("unsafe_dynamic_tools[{i}].name");
        let name = tool.name.as_str();
        if name.is_empty() {
            p.push(name_field, "Tool names must not be empty.");
        } else if name.len() > MAX_DYNAMIC_TOOL_NAME_BYTES
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            p.push(
                name_field,
                format!(
                    "Tool name {} is invalid: model providers accept only 1 to \
                     {MAX_DYNAMIC_TOOL_NAME_BYTES} ASCII letters, digits, '_' and '-'.",
                    quoted(name)
                ),
            );
        } else if !seen.insert(name) {
            p.push(
                name_field,
                format!(
                    "Tool name {} is declared more than once; names must be unique.",
                    quoted(name)
                ),
            );
        }
        if let Some(problem) = input_schema_problem(&tool.input_schema) {
            p.push(format!("unsafe_dynamic_tools[{i}].input_schema"), problem);
        }
    }
}

fn input_schema_problem(schema: &RawJson) -> Option<&'static str> {
    if !schema.is_object() {
        return Some("input_schema must be a JSON Schema object, e.g. {\"type\":\"object\"}.");
    }
    match schema.to_value().get("type") {
        None => None,
        Some(serde_json::Value::String(t)) if t == "object" => None,
        Some(_) => Some(
            "input_schema must describe an object: model providers pass tool arguments as a \
             JSON object, so \"type\" must be \"object\" when present.",
        ),
    }
}

/// Validates the client-executed tools of chat creation: at most
/// [`MAX_DYNAMIC_TOOLS`], names unique and matching `^[a-zA-Z0-9_-]{1,64}$`, and every
/// `input_schema` a JSON object whose `type`, when present, is `"object"`.
pub fn validate_dynamic_tools(tools: &[DynamicTool]) -> Result<(), Response> {
    let mut p = Problems::default();
    check_dynamic_tools(tools, &mut p);
    p.finish("Invalid dynamic tools.")
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::type_complexity
)]
mod tests {
    use super::*;
    use crate::validation::test_support::*;
    use proptest::prelude::*;

    #[test]
    fn dynamic_tool_rules() {
        let n64 = "n".repeat(MAX_DYNAMIC_TOOL_NAME_BYTES);
        let n65 = "n".repeat(MAX_DYNAMIC_TOOL_NAME_BYTES + 1);
        let cases: Vec<(Vec<DynamicTool>, Vec<&str>)> = vec![
            (vec![], vec![]),
            (vec![tool("get_weather", "{}")], vec![]),
            (
                vec![tool("a-b_C9", r#"{"type":"object","properties":{}}"#)],
                vec![],
            ),
            (vec![tool(&n64, "{}")], vec![]),
            (vec![tool(&n65, "{}")], vec!["unsafe_dynamic_tools[0].name"]),
            (vec![tool("", "{}")], vec!["unsafe_dynamic_tools[0].name"]),
            (
                vec![tool("has space", "{}")],
                vec!["unsafe_dynamic_tools[0].name"],
            ),
            (
                vec![tool("dot.name", "{}")],
                vec!["unsafe_dynamic_tools[0].name"],
            ),
            (
                vec![tool("x", "{}"), tool("x", "{}")],
                vec!["unsafe_dynamic_tools[1].name"],
            ),
            (
                vec![tool("x", "[]")],
                vec!["unsafe_dynamic_tools[0].input_schema"],
            ),
            (
                vec![tool("x", "null")],
                vec!["unsafe_dynamic_tools[0].input_schema"],
            ),
            (
                vec![tool("x", r#"{"type":"string"}"#)],
                vec!["unsafe_dynamic_tools[0].input_schema"],
            ),
        ];
        for (tools, want) in cases {
            match validate_dynamic_tools(&tools) {
                Ok(()) => assert!(want.is_empty(), "{tools:?}"),
                Err(r) => assert_eq!(fields(&r), want, "{tools:?}"),
            }
        }
    }

    #[test]
    fn dynamic_tool_count_edge() {
        let at: Vec<DynamicTool> = (0..MAX_DYNAMIC_TOOLS)
            .map(|i| tool(&format!("t{i}"), "{}"))
            .collect();
        assert!(validate_dynamic_tools(&at).is_ok());
        let over: Vec<DynamicTool> = (0..=MAX_DYNAMIC_TOOLS)
            .map(|i| tool(&format!("t{i}"), "{}"))
            .collect();
        assert_eq!(
            fields(&validate_dynamic_tools(&over).unwrap_err()),
            vec!["unsafe_dynamic_tools"]
        );
    }

    proptest! {
        #[test]
        fn dynamic_tool_validator_never_panics(names in proptest::collection::vec(any::<String>(), 0..6), schema in any::<String>()) {
            let schema = RawJson::from_json(&schema).unwrap_or_else(|_| RawJson::empty_object());
            let tools: Vec<DynamicTool> = names.iter().map(|n| DynamicTool {
                name: n.clone(),
                description: String::new(),
                input_schema: schema.clone(),
            }).collect();
            let _ = validate_dynamic_tools(&tools);
        }
    }
}
