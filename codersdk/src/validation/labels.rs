//! Chat labels: the label map of a chat and the `label` filter of `GET /chats`.

use std::collections::BTreeMap;

use super::{has_nul, quoted, Problems};
use crate::Response;

/// Most labels one chat may carry.
pub const MAX_CHAT_LABELS: usize = 50;

/// Longest label key, in bytes.
pub const MAX_LABEL_KEY_BYTES: usize = 64;

/// Longest label value, in bytes.
pub const MAX_LABEL_VALUE_BYTES: usize = 256;

pub(super) fn label_key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("Label keys must not be empty.".to_owned());
    }
    if key.len() > MAX_LABEL_KEY_BYTES {
        return Some(format!(
            "Label key {} is {} bytes long; keys may be at most {MAX_LABEL_KEY_BYTES} bytes.",
            quoted(key),
            key.len()
        ));
    }
    let mut chars = key.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'));
    if !(first_ok && rest_ok) {
        return Some(format!(
            "Label key {} is invalid: it must start with an ASCII letter or digit and contain \
             only ASCII letters, digits, '.', '_', '/' and '-'.",
            quoted(key)
        ));
    }
    None
}

fn label_value_problem(key: &str, value: &str) -> Option<String> {
    if value.is_empty() {
        return Some(format!(
            "Label {} has an empty value; values must not be empty.",
            quoted(key)
        ));
    }
    if value.len() > MAX_LABEL_VALUE_BYTES {
        return Some(format!(
            "The value of label {} is {} bytes long; values may be at most \
             {MAX_LABEL_VALUE_BYTES} bytes.",
            quoted(key),
            value.len()
        ));
    }
    if has_nul(value) {
        return Some(format!(
            "The value of label {} must not contain NUL characters.",
            quoted(key)
        ));
    }
    None
}

pub(super) fn check_labels(labels: &BTreeMap<String, String>, field: &str, p: &mut Problems) {
    if labels.len() > MAX_CHAT_LABELS {
        p.push(
            field,
            format!(
                "{} labels were given; a chat may have at most {MAX_CHAT_LABELS}.",
                labels.len()
            ),
        );
        return;
    }
    for (key, value) in labels {
        if let Some(problem) = label_key_problem(key) {
            p.push(field, problem);
        } else if let Some(problem) = label_value_problem(key, value) {
            p.push(field, problem);
        }
    }
}

/// Validates a chat's label map: at most [`MAX_CHAT_LABELS`] entries, keys and values
/// within the label rules of this module. Every problem is reported under the field `labels`.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), Response> {
    let mut p = Problems::default();
    check_labels(labels, "labels", &mut p);
    p.finish("Invalid chat labels.")
}

/// Parses the repeatable `label=key:value` filter of `GET /chats` into the map
/// that every matching chat must contain.
///
/// Each value is split on its **first** colon (so values may contain colons); a value
/// without a colon is rejected. Keys and values follow the label rules of this module, because a
/// filter that breaks them can never match. Giving the same key twice with the same value
/// is harmless and merged; with different values it can never match and is rejected. At
/// most [`MAX_CHAT_LABELS`] filters are accepted. Problems are reported under `label`.
pub fn parse_label_filters<I, S>(values: I) -> Result<BTreeMap<String, String>, Response>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut p = Problems::default();
    let mut out = BTreeMap::new();
    for (count, raw) in values.into_iter().enumerate() {
        if count >= MAX_CHAT_LABELS {
            p.push(
                "label",
                format!("At most {MAX_CHAT_LABELS} label filters may be given."),
            );
            break;
        }
        let raw = raw.as_ref();
        let Some((key, value)) = raw.split_once(':') else {
            p.push(
                "label",
                format!("Label filter {} must have the form key:value.", quoted(raw)),
            );
            continue;
        };
        if let Some(problem) = label_key_problem(key).or_else(|| label_value_problem(key, value)) {
            p.push("label", problem);
            continue;
        }
        match out.get(key) {
            Some(existing) if existing != value => p.push(
                "label",
                format!(
                    "Label {} is filtered on two different values; no chat can match both.",
                    quoted(key)
                ),
            ),
            Some(_) => {}
            None => {
                out.insert(key.to_owned(), value.to_owned());
            }
        }
    }
    p.finish("Invalid label filter.")?;
    Ok(out)
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
    fn label_rules() {
        let k64 = "k".repeat(MAX_LABEL_KEY_BYTES);
        let k65 = "k".repeat(MAX_LABEL_KEY_BYTES + 1);
        let v256 = "v".repeat(MAX_LABEL_VALUE_BYTES);
        let v257 = "v".repeat(MAX_LABEL_VALUE_BYTES + 1);
        let cases: &[(&str, &str, bool)] = &[
            ("env", "prod", true),
            ("a.b_c/d-e", "x", true),
            ("9lives", "x", true),
            (&k64, "x", true),
            ("k", &v256, true),
            (&k65, "x", false),
            ("k", &v257, false),
            ("", "x", false),
            ("k", "", false),
            ("-k", "x", false),
            (".k", "x", false),
            ("has space", "x", false),
            ("ключ", "x", false),
            ("k", "nul\0", false),
            ("k", "any value: ünïcode, spaces, colons", true),
        ];
        for (k, v, ok) in cases {
            let r = validate_labels(&labels(&[(k, v)]));
            assert_eq!(r.is_ok(), *ok, "{k:?}={v:?}");
            if let Err(r) = r {
                assert_eq!(fields(&r), vec!["labels"]);
            }
        }
    }

    #[test]
    fn label_count_edge() {
        let at: BTreeMap<String, String> = (0..MAX_CHAT_LABELS)
            .map(|i| (format!("k{i}"), "v".to_owned()))
            .collect();
        assert!(validate_labels(&at).is_ok());
        let over: BTreeMap<String, String> = (0..=MAX_CHAT_LABELS)
            .map(|i| (format!("k{i}"), "v".to_owned()))
            .collect();
        let r = validate_labels(&over).unwrap_err();
        assert_eq!(r.validations.len(), 1);
    }

    #[test]
    fn label_filters() {
        let ok: &[(&[&str], &[(&str, &str)])] = &[
            (&[], &[]),
            (&["a:b"], &[("a", "b")]),
            (&["a:b:c"], &[("a", "b:c")]),
            (&["a:b", "a:b"], &[("a", "b")]),
            (&["a:1", "b:2"], &[("a", "1"), ("b", "2")]),
        ];
        for (input, want) in ok {
            assert_eq!(
                parse_label_filters(input.iter()).unwrap(),
                labels(want),
                "{input:?}"
            );
        }
        let bad: &[&[&str]] = &[&["ab"], &["a:"], &[":b"], &["a:1", "a:2"], &["bad key:x"]];
        for input in bad {
            let r = parse_label_filters(input.iter()).unwrap_err();
            assert_eq!(fields(&r), vec!["label"], "{input:?}");
        }
        let at: Vec<String> = (0..MAX_CHAT_LABELS).map(|i| format!("k{i}:v")).collect();
        assert_eq!(parse_label_filters(&at).unwrap().len(), MAX_CHAT_LABELS);
        let over: Vec<String> = (0..=MAX_CHAT_LABELS).map(|i| format!("k{i}:v")).collect();
        assert!(parse_label_filters(&over).is_err());
    }

    proptest! {
        #[test]
        fn label_validators_never_panic(s in any::<String>(), t in any::<String>()) {
            let _ = validate_labels(&labels(&[(s.as_str(), t.as_str())]));
            let _ = parse_label_filters([s.as_str(), t.as_str()]);
        }
    }
}
