//! System prompts: the per-chat prompt of chat creation and the deployment prompt.

use super::{rune_count, single};
use crate::Response;

/// Longest per-chat system prompt, in Unicode scalar values, after sanitizing.
pub const MAX_CHAT_SYSTEM_PROMPT_CHARS: usize = 10_000;

/// Longest deployment system prompt, in bytes of UTF-8, after sanitizing.
pub const MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES: usize = 128 * 1024;

/// Longest deployment plan-mode instructions (`PUT /chats/config/plan-mode-instructions`),
/// in bytes of UTF-8 after sanitizing: the deployment prompt's budget, since both are
/// administrator text sent with every turn they apply to.
pub const MAX_PLAN_MODE_INSTRUCTIONS_BYTES: usize = MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES;

/// Cleans a system prompt before it is stored: line endings become `\n`, control
/// characters other than tab and newline are removed (databases reject NUL, and the
/// others are invisible noise to a model), and surrounding whitespace is trimmed.
pub fn sanitize_system_prompt(prompt: &str) -> String {
    let mut out = String::with_capacity(prompt.len());
    let mut chars = prompt.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push('\n');
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.trim().to_owned()
}

/// Validates the per-chat `system_prompt` of chat creation: sanitized as
/// [`sanitize_system_prompt`] does, then at most [`MAX_CHAT_SYSTEM_PROMPT_CHARS`]
/// characters. Returns the sanitized prompt (empty when none was given).
pub fn validate_chat_system_prompt(prompt: &str) -> Result<String, Response> {
    let clean = sanitize_system_prompt(prompt);
    let chars = rune_count(&clean);
    if chars > MAX_CHAT_SYSTEM_PROMPT_CHARS {
        return Err(single(
            "Invalid system prompt.",
            "system_prompt",
            format!(
                "The system prompt is {chars} characters long; it may be at most \
                 {MAX_CHAT_SYSTEM_PROMPT_CHARS} characters."
            ),
        ));
    }
    Ok(clean)
}

/// Validates the deployment system prompt of `PUT /chats/config/system-prompt`:
/// sanitized as [`sanitize_system_prompt`] does, then at most
/// [`MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES`] bytes. Returns the sanitized prompt.
pub fn validate_deployment_system_prompt(prompt: &str) -> Result<String, Response> {
    let clean = sanitize_system_prompt(prompt);
    if clean.len() > MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES {
        return Err(single(
            "Invalid system prompt.",
            "system_prompt",
            format!(
                "The system prompt is {} bytes long; it may be at most \
                 {MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES} bytes (128 KiB).",
                clean.len()
            ),
        ));
    }
    Ok(clean)
}

/// Validates the deployment's plan-mode instructions of
/// `PUT /chats/config/plan-mode-instructions`: sanitized as [`sanitize_system_prompt`]
/// does, then at most [`MAX_PLAN_MODE_INSTRUCTIONS_BYTES`] bytes. Returns the sanitized
/// text (empty removes the instructions).
pub fn validate_plan_mode_instructions(instructions: &str) -> Result<String, Response> {
    let clean = sanitize_system_prompt(instructions);
    if clean.len() > MAX_PLAN_MODE_INSTRUCTIONS_BYTES {
        return Err(single(
            "Invalid plan mode instructions.",
            "plan_mode_instructions",
            format!(
                "The plan mode instructions are {} bytes long; they may be at most \
                 {MAX_PLAN_MODE_INSTRUCTIONS_BYTES} bytes (128 KiB).",
                clean.len()
            ),
        ));
    }
    Ok(clean)
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
    fn system_prompt_sanitizing_and_limits() {
        assert_eq!(
            sanitize_system_prompt("  a\r\nb\rc\0d\u{7}\te\n  "),
            "a\nb\ncd\te"
        );
        assert_eq!(validate_chat_system_prompt("   ").unwrap(), "");
        let at = "é".repeat(MAX_CHAT_SYSTEM_PROMPT_CHARS);
        assert_eq!(validate_chat_system_prompt(&at).unwrap(), at);
        let over = "é".repeat(MAX_CHAT_SYSTEM_PROMPT_CHARS + 1);
        assert_eq!(
            fields(&validate_chat_system_prompt(&over).unwrap_err()),
            vec!["system_prompt"]
        );
        // Removed characters do not count.
        let padded = format!("{at}\0\0");
        assert!(validate_chat_system_prompt(&padded).is_ok());

        let at = "a".repeat(MAX_PLAN_MODE_INSTRUCTIONS_BYTES);
        assert_eq!(validate_plan_mode_instructions(&at).unwrap(), at);
        let over = "a".repeat(MAX_PLAN_MODE_INSTRUCTIONS_BYTES + 1);
        assert_eq!(
            fields(&validate_plan_mode_instructions(&over).unwrap_err()),
            vec!["plan_mode_instructions"]
        );
        assert_eq!(validate_plan_mode_instructions(" x\r\n").unwrap(), "x");
        let at = "a".repeat(MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES);
        assert!(validate_deployment_system_prompt(&at).is_ok());
        let over = "a".repeat(MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES + 1);
        assert!(validate_deployment_system_prompt(&over).is_err());
    }

    proptest! {
        #[test]
        fn prompt_validators_never_panic(s in any::<String>()) {
            let _ = validate_chat_system_prompt(&s);
            let _ = validate_deployment_system_prompt(&s);
        }
    }
}
