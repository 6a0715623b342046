//! Helpers shared by the validation tests.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use crate::{ChatInputPart, ChatInputPartType, DynamicTool, RawJson, Response};

pub(crate) fn fields(r: &Response) -> Vec<&str> {
    r.validations.iter().map(|v| v.field.as_str()).collect()
}

pub(crate) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub(crate) fn typed(part_type: &str, base: ChatInputPart) -> ChatInputPart {
    ChatInputPart {
        part_type: ChatInputPartType::from_wire(part_type),
        ..base
    }
}

pub(crate) fn tool(name: &str, schema: &str) -> DynamicTool {
    DynamicTool {
        name: name.to_owned(),
        description: String::new(),
        input_schema: RawJson::from_json(schema).unwrap(),
    }
}
