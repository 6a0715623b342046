//! Chat files (docs/retention.md "File links"): uploads and files the model attaches, the
//! links that say which chats use which files (`chat_file_links`), and the purge of files
//! no chat uses any more.
//!
//! A file is linked to a chat when a message of the chat references it (a `file` part with
//! a `file_id`: on create, send — also when the message is queued — and edit, in the
//! message's own transaction), when the model attaches it (`attach_file`, MCP media) and
//! when plan mode writes the plan. At most [`codersdk::MAX_CHAT_FILE_LINKS`] files are
//! linked to one chat; the links of one message are one batch, all or nothing, and a batch
//! that cannot be linked gives a warning, never an error (codersdk.md §9).

use std::time::Duration;

use codersdk::{ChatFileMetadata, ChatMessagePart, ChatMessagePartType, Uuid};
use sqlx::{AnyConnection, Connection, Row};

use super::{get_time, get_uuid, now_micros, uuid_text, Dialect, Store};
use crate::error::{DbResultExt, Error, ErrorKind, Result};

/// Largest file [`Store::create_file`] stores, in bytes: codersdk's upload cap (10 MiB).
pub const MAX_FILE_BYTES: usize = codersdk::MAX_CHAT_FILE_SIZE_BYTES as usize;

/// Most files one call to [`Store::files_by_ids`] looks up: more than any message can
/// reference ([`codersdk::MAX_CHAT_FILE_LINKS`] per chat), so a request naming more is
/// refused rather than turned into an unbounded `IN` list.
pub const MAX_FILES_PER_LOOKUP: usize = 256;

/// An uploaded file with its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// Id, owner, name, type, size and upload time.
    pub metadata: ChatFileMetadata,
    /// The content.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for StoredFile {
    // File contents are user data and can be large: keep them out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredFile")
            .field("metadata", &self.metadata)
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// A file to store with [`Store::create_file`].
#[derive(Clone, PartialEq, Eq)]
pub struct NewFile {
    /// Uploader.
    pub owner_id: Uuid,
    /// Organization the file belongs to.
    pub organization_id: Uuid,
    /// Original name (may be empty).
    pub name: String,
    /// The MIME type, already checked against the content (codersdk's `check_upload`).
    pub mime_type: String,
    /// The content, at most [`MAX_FILE_BYTES`].
    pub data: Vec<u8>,
}

impl std::fmt::Debug for NewFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewFile")
            .field("owner_id", &self.owner_id)
            .field("name", &self.name)
            .field("mime_type", &self.mime_type)
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// How long an uploaded file linked to no chat is kept before the retention sweep may
/// purge it (only while a retention window is set). An upload is referenced by the message
/// that uses it only when that message is sent, which may be a while later (a draft kept
/// open overnight, or over a weekend), so a file is not an orphan merely because no chat
/// links it yet.
pub const UNLINKED_FILE_GRACE: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The warning of a message whose files were not linked because the chat would then have
/// more than [`codersdk::MAX_CHAT_FILE_LINKS`] files; `batch` is the number of files the
/// message references (codersdk.md §9).
pub fn file_link_limit_warning(batch: usize) -> String {
    format!(
        "file linking skipped: batch of {batch} file(s) would exceed limit of {}",
        codersdk::MAX_CHAT_FILE_LINKS
    )
}

/// The warning of a message whose files could not be linked because a statement failed
/// (the file was purged meanwhile, or the database refused); `batch` is the number of files
/// the message references (codersdk.md §9).
pub fn file_link_error_warning(batch: usize) -> String {
    format!("{batch} file(s) could not be linked due to a server error")
}

/// The uploaded files `parts` reference (`file` parts with a `file_id`), each once, in the
/// order they appear.
pub fn referenced_files(parts: &[ChatMessagePart]) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = Vec::new();
    for part in parts {
        if let (ChatMessagePartType::File, Some(id)) = (&part.part_type, part.file_id) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids
}

/// Links the files `parts` reference to chat `chat_id`, inside the caller's transaction
/// (which holds the chat's lock, so two messages of one chat cannot both pass the limit):
/// the files not linked yet are linked together, or none of them when the chat would then
/// have more than [`codersdk::MAX_CHAT_FILE_LINKS`] ([`file_link_limit_warning`]). The
/// statements run under a savepoint, so one that fails (a file purged meanwhile) undoes the
/// batch and gives [`file_link_error_warning`] while the message itself is still written.
/// Returns the warnings; no statement at all for parts without files.
pub(super) async fn link_message_files(
    conn: &mut AnyConnection,
    chat_id: Uuid,
    parts: &[ChatMessagePart],
) -> Result<Vec<String>> {
    let ids = referenced_files(parts);
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut savepoint = conn.begin().await.db()?;
    match link_batch(&mut savepoint, chat_id, &ids).await {
        Ok(None) => {
            savepoint.commit().await.db()?;
            Ok(Vec::new())
        }
        Ok(Some(warning)) => {
            savepoint.rollback().await.db()?;
            Ok(vec![warning])
        }
        Err(e) => {
            tracing::warn!(%chat_id, error = %e, "linking a message's files to its chat failed");
            savepoint.rollback().await.db()?;
            Ok(vec![file_link_error_warning(ids.len())])
        }
    }
}

/// The batch of [`link_message_files`]: `Some(warning)` when it is refused by the limit.
async fn link_batch(
    conn: &mut AnyConnection,
    chat_id: Uuid,
    ids: &[Uuid],
) -> Result<Option<String>> {
    let linked: Vec<String> =
        sqlx::query_scalar("SELECT file_id FROM chat_file_links WHERE chat_id = $1")
            .bind(uuid_text(chat_id))
            .fetch_all(&mut *conn)
            .await
            .db()?;
    let new: Vec<Uuid> = ids
        .iter()
        .copied()
        .filter(|id| !linked.contains(&uuid_text(*id)))
        .collect();
    if new.is_empty() {
        return Ok(None);
    }
    if linked.len().saturating_add(new.len()) > codersdk::MAX_CHAT_FILE_LINKS {
        return Ok(Some(file_link_limit_warning(ids.len())));
    }
    for id in new {
        sqlx::query("INSERT INTO chat_file_links (chat_id, file_id) VALUES ($1, $2)")
            .bind(uuid_text(chat_id))
            .bind(uuid_text(id))
            .execute(&mut *conn)
            .await
            .db()?;
    }
    Ok(None)
}

impl Store {
    /// Stores an uploaded file. [`ErrorKind::TooLarge`] over [`MAX_FILE_BYTES`];
    /// [`ErrorKind::NotFound`] when the owner or organization does not exist.
    pub async fn create_file(&self, file: NewFile) -> Result<ChatFileMetadata> {
        if file.data.len() > MAX_FILE_BYTES {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!("File is larger than the {MAX_FILE_BYTES}-byte limit."),
            ));
        }
        let id = Uuid::new_v4();
        let now = now_micros();
        let size = i64::try_from(file.data.len()).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO chat_files (id, owner_id, organization_id, name, mime_type, data, \
             size_bytes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(uuid_text(id))
        .bind(uuid_text(file.owner_id))
        .bind(uuid_text(file.organization_id))
        .bind(&file.name)
        .bind(&file.mime_type)
        .bind(file.data)
        .bind(size)
        .bind(now)
        .execute(self.writer())
        .await
        .db()?;
        Ok(ChatFileMetadata {
            id,
            owner_id: file.owner_id,
            organization_id: file.organization_id,
            name: file.name,
            mime_type: file.mime_type,
            size_bytes: Some(size),
            created_at: super::timestamp_from_micros(now)?,
        })
    }

    /// The file with `id` and its bytes; `None` when it does not exist.
    pub async fn get_file(&self, id: Uuid) -> Result<Option<StoredFile>> {
        let row = sqlx::query(
            "SELECT id, owner_id, organization_id, name, mime_type, data, size_bytes, \
             created_at FROM chat_files WHERE id = $1",
        )
        .bind(uuid_text(id))
        .fetch_optional(self.pool())
        .await
        .db()?;
        row.map(|row| {
            Ok(StoredFile {
                metadata: file_metadata(&row)?,
                data: row.try_get("data").db()?,
            })
        })
        .transpose()
    }

    /// Metadata of the files among `ids` that exist (without their bytes), in no
    /// particular order. [`ErrorKind::InvalidArgument`] for more than
    /// [`MAX_FILES_PER_LOOKUP`] ids.
    pub async fn files_by_ids(&self, ids: &[Uuid]) -> Result<Vec<ChatFileMetadata>> {
        if ids.len() > MAX_FILES_PER_LOOKUP {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("at most {MAX_FILES_PER_LOOKUP} files can be looked up at once"),
            ));
        }
        let mut out = Vec::with_capacity(ids.len());
        // One indexed primary-key lookup per id: portable, and the list is short.
        for id in ids {
            let row = sqlx::query(
                "SELECT id, owner_id, organization_id, name, mime_type, size_bytes, created_at \
                 FROM chat_files WHERE id = $1",
            )
            .bind(uuid_text(*id))
            .fetch_optional(self.pool())
            .await
            .db()?;
            if let Some(row) = row {
                out.push(file_metadata(&row)?);
            }
        }
        Ok(out)
    }

    /// Stores a file the model attached (`attach_file`, an MCP tool's media, the plan of a
    /// plan turn) and links it to chat `chat_id`, in one transaction: the limits of uploads apply ([`MAX_FILE_BYTES`],
    /// [`codersdk::MAX_CHAT_FILE_LINKS`] files per chat). [`ErrorKind::TooLarge`] over
    /// either; [`ErrorKind::NotFound`] when the chat, owner or organization does not exist.
    pub async fn attach_file(&self, chat_id: Uuid, file: NewFile) -> Result<ChatFileMetadata> {
        if file.data.len() > MAX_FILE_BYTES {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!("File is larger than the {MAX_FILE_BYTES}-byte limit."),
            ));
        }
        let mut tx = self.begin_chat_tx(chat_id).await?;
        let result = async {
            let linked: i64 =
                sqlx::query("SELECT COUNT(*) AS n FROM chat_file_links WHERE chat_id = $1")
                    .bind(uuid_text(chat_id))
                    .fetch_one(&mut *tx.conn())
                    .await
                    .db()?
                    .try_get("n")
                    .db()?;
            if usize::try_from(linked).unwrap_or(usize::MAX) >= codersdk::MAX_CHAT_FILE_LINKS {
                return Err(Error::new(
                    ErrorKind::TooLarge,
                    format!(
                        "The chat has {linked} files already, the most a chat may have ({}).",
                        codersdk::MAX_CHAT_FILE_LINKS
                    ),
                ));
            }
            let id = Uuid::new_v4();
            let now = now_micros();
            let size = i64::try_from(file.data.len()).unwrap_or(i64::MAX);
            sqlx::query(
                "INSERT INTO chat_files (id, owner_id, organization_id, name, mime_type, data, \
                 size_bytes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(uuid_text(id))
            .bind(uuid_text(file.owner_id))
            .bind(uuid_text(file.organization_id))
            .bind(&file.name)
            .bind(&file.mime_type)
            .bind(file.data)
            .bind(size)
            .bind(now)
            .execute(&mut *tx.conn())
            .await
            .db()?;
            sqlx::query("INSERT INTO chat_file_links (chat_id, file_id) VALUES ($1, $2)")
                .bind(uuid_text(chat_id))
                .bind(uuid_text(id))
                .execute(&mut *tx.conn())
                .await
                .db()?;
            Ok(ChatFileMetadata {
                id,
                owner_id: file.owner_id,
                organization_id: file.organization_id,
                name: file.name,
                mime_type: file.mime_type,
                size_bytes: Some(size),
                created_at: super::timestamp_from_micros(now)?,
            })
        }
        .await;
        tx.finish(result).await
    }

    /// The files linked to chat `chat_id` (`Chat::files`), oldest first, without their
    /// bytes; none for a chat that does not exist.
    pub async fn linked_files(&self, chat_id: Uuid) -> Result<Vec<ChatFileMetadata>> {
        let rows = sqlx::query(
            "SELECT f.id, f.owner_id, f.organization_id, f.name, f.mime_type, f.size_bytes, \
             f.created_at FROM chat_file_links l JOIN chat_files f ON f.id = l.file_id \
             WHERE l.chat_id = $1 ORDER BY f.created_at, f.id",
        )
        .bind(uuid_text(chat_id))
        .fetch_all(self.pool())
        .await
        .db()?;
        rows.iter().map(file_metadata).collect()
    }

    /// Deletes up to `limit` uploaded files that no chat links and that were stored before
    /// `created_before` (Unix microseconds), oldest first, in one transaction; returns how
    /// many. On PostgreSQL the candidates are locked first and the "linked to no chat" test
    /// is made again by the delete, so a message linking one of them meanwhile either
    /// commits first (the file stays) or waits and gets [`file_link_error_warning`].
    pub async fn purge_unlinked_files(&self, created_before: i64, limit: usize) -> Result<u64> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut tx = self.begin_write().await?;
        let result = async {
            let lock = match self.dialect() {
                Dialect::Sqlite => "",
                Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            };
            let sql = format!(
                "SELECT f.id FROM chat_files f WHERE f.created_at < $1 \
                 AND NOT EXISTS (SELECT 1 FROM chat_file_links l WHERE l.file_id = f.id) \
                 ORDER BY f.created_at, f.id LIMIT $2{lock}"
            );
            let ids: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(created_before)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await
                .db()?;
            let mut purged = 0;
            for id in ids {
                purged += sqlx::query(
                    "DELETE FROM chat_files WHERE id = $1 \
                     AND NOT EXISTS (SELECT 1 FROM chat_file_links l WHERE l.file_id = $1)",
                )
                .bind(id)
                .execute(&mut *tx)
                .await
                .db()?
                .rows_affected();
            }
            Ok(purged)
        }
        .await;
        super::finish_tx(tx, result).await
    }
}

fn file_metadata(row: &sqlx::any::AnyRow) -> Result<ChatFileMetadata> {
    Ok(ChatFileMetadata {
        id: get_uuid(row, "id")?,
        owner_id: get_uuid(row, "owner_id")?,
        organization_id: get_uuid(row, "organization_id")?,
        name: row.try_get("name").db()?,
        mime_type: row.try_get("mime_type").db()?,
        size_bytes: Some(row.try_get("size_bytes").db()?),
        created_at: get_time(row, "created_at")?,
    })
}
