//! The deployment system prompt (`/chats/config/system-prompt`), the deployment's
//! plan-mode instructions (`/chats/config/plan-mode-instructions`) and users' personal
//! prompts (`/chats/config/user-prompt`).

use codersdk::{Response, Uuid};
use sqlx::AnyConnection;

use super::super::{now_micros, uuid_text, Store};
use super::{finish, invalid};
use crate::cluster::ConfigChange;
use crate::error::{DbResultExt, Error, ErrorKind, Result};

/// Whether the built-in default prompt precedes the deployment's custom prompt before an
/// administrator says otherwise.
pub const DEFAULT_INCLUDE_DEFAULT_SYSTEM_PROMPT: bool = true;

/// Longest personal prompt, in characters after sanitizing: the budget of a chat's own
/// system prompt (`codersdk::MAX_CHAT_SYSTEM_PROMPT_CHARS`), since both are user-written
/// text sent with every turn.
pub const MAX_USER_PROMPT_CHARS: usize = codersdk::MAX_CHAT_SYSTEM_PROMPT_CHARS;

const SYSTEM_PROMPT_KEY: &str = "system_prompt";
const INCLUDE_DEFAULT_KEY: &str = "include_default_system_prompt";
const PLAN_MODE_INSTRUCTIONS_KEY: &str = "plan_mode_instructions";

/// The deployment's system prompt settings. The built-in default prompt itself belongs to
/// the engine, not the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemPromptConfig {
    /// The administrator's custom prompt, sanitized; empty when none.
    pub system_prompt: String,
    /// Whether the built-in default prompt is included before it.
    pub include_default_system_prompt: bool,
}

/// Validates a personal prompt: sanitized as `codersdk::sanitize_system_prompt` does
/// (line endings, control characters, surrounding whitespace), then at most
/// [`MAX_USER_PROMPT_CHARS`] characters. Returns the sanitized prompt; empty means none.
pub fn validate_user_prompt(prompt: &str) -> std::result::Result<String, Response> {
    let clean = codersdk::sanitize_system_prompt(prompt);
    let chars = clean.chars().count();
    if chars > MAX_USER_PROMPT_CHARS {
        return Err(Response::new("Invalid prompt.").with_validation(
            "custom_prompt",
            format!(
                "The prompt is {chars} characters long; it may be at most \
                 {MAX_USER_PROMPT_CHARS} characters."
            ),
        ));
    }
    Ok(clean)
}

pub(super) async fn put_site_config(
    conn: &mut AnyConnection,
    key: &str,
    value: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO site_config (key, value, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(key)
    .bind(value)
    .bind(now)
    .execute(conn)
    .await
    .db()?;
    Ok(())
}

async fn read_system_prompt(conn: &mut AnyConnection) -> Result<SystemPromptConfig> {
    let prompt: Option<String> = sqlx::query_scalar("SELECT value FROM site_config WHERE key = $1")
        .bind(SYSTEM_PROMPT_KEY)
        .fetch_optional(&mut *conn)
        .await
        .db()?;
    let include: Option<String> =
        sqlx::query_scalar("SELECT value FROM site_config WHERE key = $1")
            .bind(INCLUDE_DEFAULT_KEY)
            .fetch_optional(&mut *conn)
            .await
            .db()?;
    let include_default_system_prompt = match include.as_deref() {
        None => DEFAULT_INCLUDE_DEFAULT_SYSTEM_PROMPT,
        Some("true") => true,
        Some("false") => false,
        Some(_) => {
            return Err(Error::new(
                ErrorKind::CorruptRow,
                "stored include_default_system_prompt is not true or false",
            ))
        }
    };
    Ok(SystemPromptConfig {
        system_prompt: prompt.unwrap_or_default(),
        include_default_system_prompt,
    })
}

impl Store {
    /// The deployment's system prompt settings; an empty prompt and
    /// [`DEFAULT_INCLUDE_DEFAULT_SYSTEM_PROMPT`] until an administrator sets them.
    pub async fn system_prompt_config(&self) -> Result<SystemPromptConfig> {
        let mut conn = self.pool().acquire().await.db()?;
        read_system_prompt(&mut conn).await
    }

    /// Sets the deployment's custom prompt (`PUT /chats/config/system-prompt`), validated
    /// and sanitized with `codersdk::validate_deployment_system_prompt` (at most
    /// `MAX_DEPLOYMENT_SYSTEM_PROMPT_BYTES`), and the "include the default prompt" toggle
    /// when `include_default` is given (unchanged otherwise). Returns the stored settings.
    /// [`ErrorKind::InvalidArgument`] with the validator's `Response` when too long.
    pub async fn set_system_prompt_config(
        &self,
        system_prompt: &str,
        include_default: Option<bool>,
    ) -> Result<SystemPromptConfig> {
        let prompt = codersdk::validate_deployment_system_prompt(system_prompt).map_err(invalid)?;
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let result = async {
            put_site_config(&mut tx, SYSTEM_PROMPT_KEY, &prompt, now).await?;
            if let Some(include) = include_default {
                let value = if include { "true" } else { "false" };
                put_site_config(&mut tx, INCLUDE_DEFAULT_KEY, value, now).await?;
            }
            read_system_prompt(&mut tx).await
        }
        .await;
        let done = finish(tx, result).await;
        self.changed(done, ConfigChange::Deployment)
    }

    /// The deployment's plan-mode instructions; empty until an administrator sets them.
    pub async fn plan_mode_instructions(&self) -> Result<String> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT value FROM site_config WHERE key = $1")
                .bind(PLAN_MODE_INSTRUCTIONS_KEY)
                .fetch_optional(self.pool())
                .await
                .db()?;
        Ok(text.unwrap_or_default())
    }

    /// Sets the deployment's plan-mode instructions
    /// (`PUT /chats/config/plan-mode-instructions`), validated and sanitized with
    /// `codersdk::validate_plan_mode_instructions` (at most
    /// `MAX_PLAN_MODE_INSTRUCTIONS_BYTES`); empty clears them. Returns the stored text.
    /// [`ErrorKind::InvalidArgument`] with the validator's `Response` when too long.
    pub async fn set_plan_mode_instructions(&self, instructions: &str) -> Result<String> {
        let text = codersdk::validate_plan_mode_instructions(instructions).map_err(invalid)?;
        let mut tx = self.begin_write().await?;
        let result = put_site_config(&mut tx, PLAN_MODE_INSTRUCTIONS_KEY, &text, now_micros())
            .await
            .map(|()| text);
        let done = finish(tx, result).await;
        self.changed(done, ConfigChange::Deployment)
    }

    /// `user_id`'s personal prompt; empty when none.
    pub async fn user_prompt(&self, user_id: Uuid) -> Result<String> {
        let prompt: Option<String> =
            sqlx::query_scalar("SELECT custom_prompt FROM user_prompts WHERE user_id = $1")
                .bind(uuid_text(user_id))
                .fetch_optional(self.pool())
                .await
                .db()?;
        Ok(prompt.unwrap_or_default())
    }

    /// Sets `user_id`'s personal prompt (`PUT /chats/config/user-prompt`) after
    /// [`validate_user_prompt`]; an empty (or blank) prompt removes it. Returns the stored
    /// prompt. [`ErrorKind::InvalidArgument`] with the validator's `Response` when too
    /// long; [`ErrorKind::NotFound`] when the user does not exist.
    pub async fn set_user_prompt(&self, user_id: Uuid, prompt: &str) -> Result<String> {
        let prompt = validate_user_prompt(prompt).map_err(invalid)?;
        let change = ConfigChange::UserPrompt { user_id };
        if prompt.is_empty() {
            let done = sqlx::query("DELETE FROM user_prompts WHERE user_id = $1")
                .bind(uuid_text(user_id))
                .execute(self.writer())
                .await
                .db();
            self.changed(done, change)?;
            return Ok(prompt);
        }
        let done = sqlx::query(
            "INSERT INTO user_prompts (user_id, custom_prompt, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET custom_prompt = excluded.custom_prompt, \
             updated_at = excluded.updated_at",
        )
        .bind(uuid_text(user_id))
        .bind(&prompt)
        .bind(now_micros())
        .execute(self.writer())
        .await
        .db();
        self.changed(done, change)?;
        Ok(prompt)
    }
}
