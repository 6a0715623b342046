//! The automatic title: after the first turn starts, a model-written
//! title replaces the fallback title, unless the user renamed the chat meanwhile. The
//! title is written by the resolver's title model ([`ModelResolver::title_model`], the
//! `title_generation` model override) when there is one, else by the turn's model.
//!
//! [`ModelResolver::title_model`]: super::models::ModelResolver::title_model

use std::sync::Arc;

use codersdk::{ChatMessage, ChatMessagePartType, ChatMessageRole, ChatWatchEventKind};

use super::models::{ResolvedModel, TurnModelRequest};
use super::usage::{record_call, CallModel};
use super::Inner;
use crate::store::TurnInputs;
use crate::title::{fallback_title, generate_title_with_usage, TITLE_TIMEOUT};

/// Starts title generation in the background when the chat is on its first turn and
/// still has the title derived from its first message.
pub(crate) fn maybe_generate(
    inner: &Arc<Inner>,
    inputs: &TurnInputs,
    history: &[ChatMessage],
    resolved: &ResolvedModel,
) {
    if !inner.generate_titles {
        return;
    }
    let mut users = history.iter().filter(|m| m.role == ChatMessageRole::User);
    let (Some(first), None) = (users.next(), users.next()) else {
        return;
    };
    if history
        .iter()
        .any(|m| matches!(m.role, ChatMessageRole::Assistant | ChatMessageRole::Tool))
    {
        return;
    }
    let text: String = first
        .content
        .iter()
        .filter(|p| p.part_type == ChatMessagePartType::Text)
        .map(|p| p.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let current = inputs.chat.title.clone();
    if current != fallback_title(&text) {
        return;
    }
    let chat_id = inputs.chat.id;
    let chat_model = Arc::clone(&resolved.model);
    let chat_model_config_id = resolved.model_config_id;
    let chat_cost = resolved.cost.clone();
    let chat_redactor = resolved.redactor.clone();
    let request = TurnModelRequest {
        chat_id,
        owner_id: inputs.chat.owner_id,
        organization_id: inputs.chat.organization_id,
        requested: None,
        last: inputs.chat.last_model_config_id,
        reasoning_effort: None,
    };
    let chat = super::debug::DebugChat::from(&inputs.chat);
    let links = super::debug::RunLinks {
        trigger_message_id: Some(first.id),
        history_tip_message_id: history.last().map(|m| m.id),
    };
    let task_inner = Arc::clone(inner);
    inner.spawn(async move {
        let inner = task_inner;
        // The deployment's title model when one is set and usable, else the turn's model.
        // Resolved here, off the turn's path: the turn does not wait for it.
        let (model, model_config_id, cost, redactor) =
            match inner.models.title_model(request).await {
                Some(title_model) => (
                    title_model.model,
                    title_model.model_config_id,
                    title_model.cost,
                    title_model.redactor,
                ),
                None => (chat_model, chat_model_config_id, chat_cost, chat_redactor),
            };
        // Recorded as a `title_generation` debug run when debug logging is on for the owner
        // (redacted with the resolved model's secrets: its key and the chat's MCP secrets).
        let served = super::debug::Served {
            model_config_id,
            model: model.as_ref(),
            redactor: &redactor,
        };
        let kind = codersdk::ChatDebugRunKind::TitleGeneration;
        let run =
            super::debug::DebugRun::start_with(&inner, kind, chat, served, links).await;
        let (recorded, recording) = super::debug::RecordingModel::wrap(model.clone(), run);
        let started = std::time::Instant::now();
        let reply = generate_title_with_usage(recorded.as_ref(), &text, TITLE_TIMEOUT).await;
        if let Some(recording) = recording {
            let error = reply
                .result
                .as_ref()
                .err()
                .map(|e| codersdk::ChatError::generic(redactor.display(e).to_string()));
            recording.finish(error.as_ref()).await;
        }
        let call = CallModel {
            model_config_id: Some(model_config_id),
            model: model.as_ref(),
            cost: cost.as_ref(),
        };
        record_call(&inner, chat_id, call, &reply.usage, started).await;
        let title = match reply.result {
            Ok(title) => title,
            Err(e) => {
                tracing::debug!(%chat_id, error = %redactor.display(&e), "title generation failed; keeping the fallback title");
                return;
            }
        };
        match inner.store.set_title_if(chat_id, &current, &title).await {
            Ok(true) => {
                inner
                    .publish_watch_by_id(chat_id, ChatWatchEventKind::TitleChange)
                    .await;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(%chat_id, error = %e, "saving the generated title failed"),
        }
    });
}
