//! Tool results: the body of `POST /chats/{chat}/tool-results` and the check against
//! the pending dynamic tool calls.

use std::collections::HashSet;

use super::{quoted, single, Problems};
use crate::{RawJson, Response, SubmitToolResultsRequest, ToolResult};

/// One tool result after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedToolResult {
    /// The call being answered (kept exactly as sent: ids are opaque).
    pub tool_call_id: String,
    /// The output, with a JSON string holding JSON unwrapped (see [`unwrap_json_string`]).
    pub output: RawJson,
    /// The tool failed.
    pub is_error: bool,
}

/// Unwraps "a JSON string containing JSON": when `value` is a JSON string whose content
/// is itself valid JSON (within [`crate::MAX_RAW_JSON_DEPTH`]), the parsed inner value is
/// returned; any other value comes back unchanged. Clients often double-encode tool
/// output; the model should see the structure, not an escaped string.
pub fn unwrap_json_string(value: &RawJson) -> RawJson {
    if !value.get().starts_with('"') {
        return value.clone();
    }
    match value.parse::<String>() {
        Ok(inner) => RawJson::from_json(&inner).unwrap_or_else(|_| value.clone()),
        Err(_) => value.clone(),
    }
}

/// Validates the body of `POST /chats/{chat}/tool-results` without knowing which calls
/// are pending: at least one result, every `tool_call_id` non-empty and unique, every
/// `output` present (JSON `null` counts as missing). Outputs are unwrapped with
/// [`unwrap_json_string`]. Pair it with [`validate_tool_results_against`].
pub fn validate_submit_tool_results_request(
    req: &SubmitToolResultsRequest,
) -> Result<Vec<ValidatedToolResult>, Response> {
    if req.results.is_empty() {
        return Err(single(
            "At least one tool result is required.",
            "results",
            "Send one result for every pending tool call.",
        ));
    }
    let mut p = Problems::default();
    let duplicates =
        duplicate_problems(req.results.iter().map(|r| r.tool_call_id.as_str()), &mut p);
    let mut out = Vec::with_capacity(req.results.len());
    for (i, result) in req.results.iter().enumerate() {
        if result.tool_call_id.is_empty() {
            p.push(
                format!("results[{i}].tool_call_id"),
                "tool_call_id must not be empty.",
            );
        }
        match &result.output {
            Some(output) if !output.is_null() => out.push(ValidatedToolResult {
                tool_call_id: result.tool_call_id.clone(),
                output: unwrap_json_string(output),
                is_error: result.is_error,
            }),
            _ => p.push(
                format!("results[{i}].output"),
                "output is required: send the tool's output as JSON (a JSON string for plain text).",
            ),
        }
    }
    let message = if duplicates {
        "Duplicate tool_call_id in results."
    } else {
        "Invalid tool results."
    };
    p.finish(message)?;
    Ok(out)
}

/// Reports every id given more than once; returns whether there was any.
fn duplicate_problems<'a>(ids: impl Iterator<Item = &'a str>, p: &mut Problems) -> bool {
    let mut seen = HashSet::new();
    let mut any = false;
    for (i, id) in ids.enumerate() {
        if !seen.insert(id) {
            any = true;
            p.push(
                format!("results[{i}].tool_call_id"),
                format!("tool_call_id {} appears more than once.", quoted(id)),
            );
        }
    }
    any
}

/// Ids of a request's results, for [`validate_tool_results_against`].
pub fn tool_result_ids(results: &[ToolResult]) -> impl Iterator<Item = &str> {
    results.iter().map(|r| r.tool_call_id.as_str())
}

/// Checks submitted result ids against the pending dynamic tool calls:
/// no duplicates ("Duplicate tool_call_id in results."), every pending call answered
/// ("Missing tool result."), no answer for a call that is not pending ("Unexpected tool
/// result."). The message names the first failing check in that order; `validations`
/// lists every problem.
pub fn validate_tool_results_against<P, R>(pending_ids: P, result_ids: R) -> Result<(), Response>
where
    P: IntoIterator,
    P::Item: AsRef<str>,
    R: IntoIterator,
    R::Item: AsRef<str>,
{
    let pending: Vec<P::Item> = pending_ids.into_iter().collect();
    let results: Vec<R::Item> = result_ids.into_iter().collect();
    let pending_set: HashSet<&str> = pending.iter().map(AsRef::as_ref).collect();
    let answered: HashSet<&str> = results.iter().map(AsRef::as_ref).collect();

    let mut p = Problems::default();
    let duplicates = duplicate_problems(results.iter().map(AsRef::as_ref), &mut p);
    let mut missing = false;
    let mut reported = HashSet::new();
    for id in pending.iter().map(AsRef::as_ref) {
        if !answered.contains(id) && reported.insert(id) {
            missing = true;
            p.push(
                "results",
                format!("No result for pending tool call {}.", quoted(id)),
            );
        }
    }
    let mut unexpected = false;
    for (i, id) in results.iter().map(AsRef::as_ref).enumerate() {
        if !pending_set.contains(id) {
            unexpected = true;
            p.push(
                format!("results[{i}].tool_call_id"),
                format!("Tool call {} is not waiting for a result.", quoted(id)),
            );
        }
    }
    let message = if duplicates {
        "Duplicate tool_call_id in results."
    } else if missing {
        "Missing tool result."
    } else if unexpected {
        "Unexpected tool result."
    } else {
        return Ok(());
    };
    Err(p.into_response(message))
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

    fn result(id: &str, output: Option<&str>) -> ToolResult {
        ToolResult {
            tool_call_id: id.to_owned(),
            output: output.map(|o| RawJson::from_json(o).unwrap()),
            is_error: false,
        }
    }

    #[test]
    fn unwrap_json_string_table() {
        let cases: &[(&str, &str)] = &[
            (r#"{"a":1}"#, r#"{"a":1}"#),
            (r#""{\"a\":1}""#, r#"{"a":1}"#),
            (r#""[1, 2]""#, "[1,2]"),
            (r#""hello""#, r#""hello""#),
            (r#""""#, r#""""#),
            (r#""42""#, "42"),
            (r#""{broken""#, r#""{broken""#),
            ("7", "7"),
        ];
        for (input, want) in cases {
            let got = unwrap_json_string(&RawJson::from_json(input).unwrap());
            assert_eq!(got.get(), *want, "{input}");
        }
        let deep = format!(
            "\"{}{}\"",
            "[".repeat(crate::MAX_RAW_JSON_DEPTH + 1),
            "]".repeat(crate::MAX_RAW_JSON_DEPTH + 1)
        );
        let raw = RawJson::from_json(&deep).unwrap();
        assert_eq!(
            unwrap_json_string(&raw),
            raw,
            "too deep to unwrap: kept as a string"
        );
    }

    #[test]
    fn submit_tool_results_table() {
        type Case = (
            Vec<ToolResult>,
            Result<usize, (&'static str, Vec<&'static str>)>,
        );
        let cases: Vec<Case> = vec![
            (
                vec![result("a", Some("{}")), result("b", Some(r#""text""#))],
                Ok(2),
            ),
            (
                vec![],
                Err(("At least one tool result is required.", vec!["results"])),
            ),
            (
                vec![result("a", None)],
                Err(("Invalid tool results.", vec!["results[0].output"])),
            ),
            (
                vec![result("a", Some("null"))],
                Err(("Invalid tool results.", vec!["results[0].output"])),
            ),
            (
                vec![result("", Some("1"))],
                Err(("Invalid tool results.", vec!["results[0].tool_call_id"])),
            ),
            (
                vec![result("a", Some("1")), result("a", Some("2"))],
                Err((
                    "Duplicate tool_call_id in results.",
                    vec!["results[1].tool_call_id"],
                )),
            ),
        ];
        for (results, want) in cases {
            let req = SubmitToolResultsRequest {
                results: results.clone(),
            };
            match (validate_submit_tool_results_request(&req), want) {
                (Ok(v), Ok(n)) => assert_eq!(v.len(), n),
                (Err(r), Err((msg, f))) => {
                    assert_eq!(r.message, msg);
                    assert_eq!(fields(&r), f);
                }
                (got, want) => panic!("{results:?}: {got:?} vs {want:?}"),
            }
        }
        let req = SubmitToolResultsRequest {
            results: vec![result("a", Some(r#""{\"ok\":true}""#))],
        };
        assert_eq!(
            validate_submit_tool_results_request(&req).unwrap()[0]
                .output
                .get(),
            r#"{"ok":true}"#
        );
    }

    #[test]
    fn tool_results_against_pending() {
        let pending = ["a", "b"];
        let cases: &[(&[&str], Option<&str>, usize)] = &[
            (&["a", "b"], None, 0),
            (&["b", "a"], None, 0),
            (&["a"], Some("Missing tool result."), 1),
            (&["a", "b", "c"], Some("Unexpected tool result."), 1),
            (
                &["a", "a", "b"],
                Some("Duplicate tool_call_id in results."),
                1,
            ),
            (&["a", "c"], Some("Missing tool result."), 2),
            (&[], Some("Missing tool result."), 2),
        ];
        for (ids, message, count) in cases {
            match (validate_tool_results_against(pending, ids.iter()), message) {
                (Ok(()), None) => {}
                (Err(r), Some(m)) => {
                    assert_eq!(&r.message, m, "{ids:?}");
                    assert_eq!(r.validations.len(), *count, "{ids:?}");
                }
                (got, want) => panic!("{ids:?}: {got:?} vs {want:?}"),
            }
        }
        let results = vec![result("a", Some("1")), result("b", Some("2"))];
        assert!(validate_tool_results_against(
            &["a".to_owned(), "b".to_owned()],
            tool_result_ids(&results)
        )
        .is_ok());
    }

    proptest! {
        #[test]
        fn tool_result_validators_never_panic(names in proptest::collection::vec(any::<String>(), 0..6), schema in any::<String>()) {
            let schema = RawJson::from_json(&schema).unwrap_or_else(|_| RawJson::empty_object());
            let _ = unwrap_json_string(&schema);
            let _ = validate_tool_results_against(&names, names.iter().rev());
            let req = SubmitToolResultsRequest {
                results: names.iter().map(|n| ToolResult { tool_call_id: n.clone(), output: Some(schema.clone()), is_error: false }).collect(),
            };
            let _ = validate_submit_tool_results_request(&req);
        }

        #[test]
        fn json_string_unwrap_of_any_text(s in any::<String>()) {
            let raw = RawJson::from_value(&s).unwrap();
            let out = unwrap_json_string(&raw);
            match RawJson::from_json(&s) {
                Ok(inner) => prop_assert_eq!(out, inner),
                Err(_) => prop_assert_eq!(out, raw),
            }
        }
    }
}
