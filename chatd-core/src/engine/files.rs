//! Chat files: uploads checked against their declared type and the allow-list, and
//! downloads for their uploader only.

use codersdk::{ChatFileMetadata, Uuid};

use super::{Actor, Engine};
use crate::error::{Error, ErrorKind, Result};
use crate::store::{NewFile, StoredFile};

/// The answer for a file that does not exist or is not the caller's (HTTP 404): the two
/// are indistinguishable, so nobody learns which file ids exist.
pub const FILE_NOT_FOUND_MESSAGE: &str = "File not found.";

/// The refusal of an upload into an organization the caller is not a member of (HTTP 403).
pub const NOT_A_MEMBER_MESSAGE: &str = "You are not a member of this organization.";

/// A file to store with [`Engine::upload_file`].
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileUpload {
    /// The organization the file belongs to; the uploader must be a member.
    pub organization_id: Uuid,
    /// The original name (may be empty); stored as given.
    pub name: String,
    /// The media type the client declared (a `Content-Type` value, parameters allowed).
    pub declared_type: String,
    /// The content, at most [`MAX_FILE_BYTES`](crate::MAX_FILE_BYTES).
    pub data: Vec<u8>,
}

impl std::fmt::Debug for FileUpload {
    // File contents are user data and can be large: keep them out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileUpload")
            .field("organization_id", &self.organization_id)
            .field("name", &self.name)
            .field("declared_type", &self.declared_type)
            .field("data_len", &self.data.len())
            .finish()
    }
}

impl FileUpload {
    /// An unnamed upload of `data` declared as `declared_type` into `organization_id`.
    pub fn new(organization_id: Uuid, declared_type: impl Into<String>, data: Vec<u8>) -> Self {
        FileUpload {
            organization_id,
            name: String::new(),
            declared_type: declared_type.into(),
            data,
        }
    }

    /// Sets the file name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

fn file_not_found() -> Error {
    Error::new(ErrorKind::NotFound, FILE_NOT_FOUND_MESSAGE)
}

impl Engine {
    /// Stores a file `actor` uploads, for chats to reference.
    ///
    /// [`ErrorKind::Forbidden`] ([`NOT_A_MEMBER_MESSAGE`]) unless the actor is a member of
    /// the organization; [`ErrorKind::TooLarge`] over
    /// [`MAX_FILE_BYTES`](crate::MAX_FILE_BYTES) (`codersdk::validate_upload_size`);
    /// [`ErrorKind::InvalidArgument`] with `codersdk::check_upload`'s body for an empty
    /// file, a type outside the allow-list, or content that is not what was declared. The
    /// stored type is the sniffed one.
    pub async fn upload_file(&self, actor: &Actor, upload: FileUpload) -> Result<ChatFileMetadata> {
        let store = &self.inner.store;
        if !store
            .is_member(upload.organization_id, actor.user_id)
            .await?
        {
            return Err(Error::new(ErrorKind::Forbidden, NOT_A_MEMBER_MESSAGE));
        }
        codersdk::validate_upload_size(u64::try_from(upload.data.len()).unwrap_or(u64::MAX))
            .map_err(|r| Error::with_response(ErrorKind::TooLarge, r))?;
        let mime_type = codersdk::check_upload(&upload.declared_type, &upload.data)
            .map_err(|r| Error::with_response(ErrorKind::InvalidArgument, r))?;
        store
            .create_file(NewFile {
                owner_id: actor.user_id,
                organization_id: upload.organization_id,
                name: upload.name,
                mime_type: mime_type.to_owned(),
                data: upload.data,
            })
            .await
    }

    /// A file with its bytes, for its uploader only: for everyone else, administrators
    /// included, [`ErrorKind::NotFound`] ([`FILE_NOT_FOUND_MESSAGE`]) as for a missing file.
    pub async fn get_file(&self, actor: &Actor, file_id: Uuid) -> Result<StoredFile> {
        self.inner
            .store
            .get_file(file_id)
            .await?
            .filter(|f| f.metadata.owner_id == actor.user_id)
            .ok_or_else(file_not_found)
    }

    /// A file's metadata (no bytes), for its uploader only, like [`Engine::get_file`].
    pub async fn file_metadata(&self, actor: &Actor, file_id: Uuid) -> Result<ChatFileMetadata> {
        self.inner
            .store
            .files_by_ids(&[file_id])
            .await?
            .into_iter()
            .find(|f| f.id == file_id && f.owner_id == actor.user_id)
            .ok_or_else(file_not_found)
    }
}
