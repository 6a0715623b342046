//! The workspace of a turn (docs/workspaces.md): bound on first use, its instruction files
//! and skills injected once, its tools and prompt blocks for every turn.

use std::sync::Arc;

use codersdk::{Chat, Uuid};

use super::Inner;
use crate::error::ErrorKind;
use crate::store::Lease;
use crate::tools::Tool;
use crate::workspace::context::{
    discover, prompt_blocks, skills_from_parts, workspace_prompt, workspace_unavailable_prompt,
    NO_WORKSPACE_PROMPT,
};
use crate::workspace::tools::{plan_file_path, Attachments, WorkspaceTools};
use crate::workspace::{ChatRelease, Workspace, WorkspaceChat};

/// What a turn gets from its workspace.
#[derive(Debug, Default)]
pub(crate) struct TurnWorkspace {
    /// The workspace tools (none without a workspace).
    pub(crate) tools: Vec<Arc<dyn Tool>>,
    /// System blocks: the workspace (or no-workspace) note, the instruction files, the
    /// skills index.
    pub(crate) blocks: Vec<String>,
    /// The bound workspace.
    pub(crate) workspace_id: Option<Uuid>,
    /// The workspace itself, for its `.mcp.json` servers and `propose_plan`.
    pub(crate) workspace: Option<Arc<dyn Workspace>>,
    /// The chat's plan file in the workspace (named to the model on plan turns).
    pub(crate) plan_path: Option<String>,
}

/// Why preparing the workspace stopped the turn.
pub(crate) enum PrepareError {
    /// The worker lost the chat while injecting the context.
    Lost,
    /// The store failed.
    Store(crate::Error),
}

/// The workspace of `chat`'s turn: opened (created on first use) and bound, its context
/// injected on the first turn, its tools and prompt blocks. A provider failure is not a
/// failed turn: the model is told the workspace is unavailable and gets no workspace tools.
pub(crate) async fn prepare(
    inner: &Inner,
    lease: &Lease,
    chat: &Chat,
) -> Result<TurnWorkspace, PrepareError> {
    let Some(provider) = &inner.workspaces else {
        let blocks = if inner.announce_no_workspace {
            vec![NO_WORKSPACE_PROMPT.to_owned()]
        } else {
            Vec::new()
        };
        return Ok(TurnWorkspace {
            blocks,
            ..TurnWorkspace::default()
        });
    };
    let root_chat_id = chat.root_chat_id.unwrap_or(chat.id);
    let mut bound = chat.workspace_id;
    if bound.is_none() && root_chat_id != chat.id {
        // A sub-agent works in its root chat's workspace.
        bound = inner
            .store
            .get_chat(root_chat_id)
            .await
            .map_err(PrepareError::Store)?
            .and_then(|root| root.workspace_id);
    }
    let request = WorkspaceChat::new(chat.id, chat.owner_id)
        .with_root(root_chat_id)
        .with_workspace(bound);
    let workspace = match provider.workspace(&request).await {
        Ok(ws) => ws,
        Err(e) => {
            tracing::warn!(chat_id = %chat.id, error = %e, "the chat's workspace is unavailable");
            return Ok(TurnWorkspace {
                blocks: vec![workspace_unavailable_prompt(e.message())],
                ..TurnWorkspace::default()
            });
        }
    };
    let id = workspace.id();
    if chat.workspace_id != Some(id) {
        inner
            .store
            .bind_workspace(chat.id, id)
            .await
            .map_err(PrepareError::Store)?;
    }
    let parts = match inner
        .store
        .injected_context(chat.id)
        .await
        .map_err(PrepareError::Store)?
    {
        Some(parts) => parts,
        None => {
            let found = discover(&*workspace).await;
            let injected = match inner.store.inject_context(lease, found).await {
                Ok(done) => done,
                Err(e) if e.kind() == ErrorKind::LeaseLost => return Err(PrepareError::Lost),
                Err(e) => return Err(PrepareError::Store(e)),
            };
            inner.publish(injected.transition).await;
            injected.parts
        }
    };
    let plan_path = plan_file_path(&*workspace, chat.id);
    let mut blocks = vec![workspace_prompt(workspace.working_directory())];
    blocks.extend(prompt_blocks(&parts));
    let handle = Arc::clone(&workspace);
    let tools = WorkspaceTools::new(workspace)
        .with_write_policy(Arc::clone(&inner.workspace_write_policy))
        .with_attachments(Attachments {
            store: inner.store.clone(),
            organization_id: chat.organization_id,
        })
        .with_skills(skills_from_parts(&parts))
        .tools();
    Ok(TurnWorkspace {
        tools,
        blocks,
        workspace_id: Some(id),
        workspace: Some(handle),
        plan_path: Some(plan_path),
    })
}

/// Tells the workspace provider that chat `chat_id` was interrupted or deleted, so the
/// processes it started stop.
pub(crate) async fn release(inner: &Inner, chat_id: Uuid, event: ChatRelease) {
    if let Some(provider) = &inner.workspaces {
        provider.release(chat_id, event).await;
    }
    // A deleted root chat's workspace `.mcp.json` servers stop with it.
    if let (ChatRelease::Deleted, Some(mcp)) = (event, &inner.mcp) {
        if let Ok(Some(chat)) = inner.store.get_chat(chat_id).await {
            if let (None, Some(workspace_id)) = (chat.parent_chat_id, chat.workspace_id) {
                mcp.release_workspace(workspace_id);
            }
        }
    }
}
