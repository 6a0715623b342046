//! Secrets at rest: AES-256-GCM with a key ring that supports rotation.
//!
//! Provider API keys, user keys and MCP credentials are stored encrypted ("sealed") in the
//! database. A [`Keyring`] holds named keys: one *active* key seals new secrets, every key opens
//! old ones, so an operator can add a key, re-encrypt rows with [`Keyring::rotate`], and retire
//! the old key (docs/secrets.md).
//!
//! # Sealed format, version 1
//!
//! ```text
//! v1:<key-id>:<key-check>:<payload>
//! ```
//!
//! - `v1` — the format version;
//! - `<key-id>` — the name of the key that sealed it (1–[`MAX_KEY_ID_LEN`] characters of
//!   `A–Z a–z 0–9 . _ -`);
//! - `<key-check>` — 8 lowercase hex digits identifying the key *bytes* (the first 4 bytes of
//!   AES-256 applied to a fixed block), so that an id configured with the wrong bytes is
//!   reported as [`ErrorKind::KeyMismatch`] instead of looking like tampering;
//! - `<payload>` — standard base64 (with padding) of `nonce (12 bytes) ‖ ciphertext ‖ tag
//!   (16 bytes)`, the nonce random for every encryption.
//!
//! The associated data given to [`Keyring::encrypt`] is authenticated but not stored: it binds
//! the ciphertext to its purpose and row (for example `provider_config.api_key:<uuid>`), so a
//! value copied to another row fails to decrypt.

use std::fmt;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::aes::cipher::BlockEncrypt;
use aes_gcm::aes::{Aes256, Block};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};
use codersdk::SecretString;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, ErrorKind, Result};

#[cfg(test)]
mod tests;

/// Length of a key in bytes (AES-256).
pub const KEY_LEN: usize = 32;

/// Length of the random nonce stored in front of each ciphertext, in bytes (96 bits).
pub const NONCE_LEN: usize = 12;

/// Length of the GCM authentication tag stored after each ciphertext, in bytes.
pub const TAG_LEN: usize = 16;

/// Longest key id, in characters.
pub const MAX_KEY_ID_LEN: usize = 64;

/// Largest plaintext [`Keyring::encrypt`] accepts, in bytes (64 KiB).
///
/// Secrets are API keys (at most 10 KB by the provider rules), tokens and header values;
/// anything larger is a caller mistake, and the bound keeps decryption of untrusted text cheap.
pub const MAX_PLAINTEXT_LEN: usize = 64 * 1024;

/// Longest sealed text [`Keyring::decrypt`] reads, in bytes: the sealing of a
/// [`MAX_PLAINTEXT_LEN`] plaintext under a key id of [`MAX_KEY_ID_LEN`] characters. Longer
/// input is rejected as [`ErrorKind::TooLarge`] before it is decoded.
pub const MAX_SEALED_LEN: usize = SEALED_VERSION.len()
    + 1
    + MAX_KEY_ID_LEN
    + 1
    + KEY_CHECK_HEX_LEN
    + 1
    + base64_len(NONCE_LEN + MAX_PLAINTEXT_LEN + TAG_LEN);

/// The format version this build writes (and the only one it reads).
pub const SEALED_VERSION: &str = "v1";

/// Hex digits of the key check in a sealed text.
const KEY_CHECK_HEX_LEN: usize = 8;

/// The block whose encryption identifies a key. Deliberately not the all-zero block, whose
/// encryption is GCM's secret hashing key.
const KEY_CHECK_BLOCK: [u8; 16] = *b"chatd-key-check\x01";

/// Longest key text accepted before decoding (44 characters of padded base64 plus slack for
/// surrounding whitespace, which is trimmed first).
const MAX_KEY_TEXT_LEN: usize = 64;

/// Standard alphabet, padding optional: operators paste `openssl rand -base64 32` output, and
/// some tools strip the `=`.
const KEY_TEXT_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

/// A 256-bit encryption key. Its bytes are wiped from memory when it is dropped and are never
/// shown by `Debug`.
pub struct SecretKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl SecretKey {
    /// Wraps raw key bytes. The caller's copy is not wiped; prefer
    /// [`SecretKey::from_base64`] or [`SecretKey::generate`].
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        SecretKey {
            bytes: Zeroizing::new(bytes),
        }
    }

    /// Parses a key from configuration: standard base64 (padding optional, surrounding
    /// whitespace ignored) of exactly [`KEY_LEN`] bytes, as `openssl rand -base64 32` prints.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidKey`] when the text is not base64 or does not decode to exactly
    /// [`KEY_LEN`] bytes. The message never quotes the text.
    pub fn from_base64(text: &str) -> Result<Self> {
        let invalid = || {
            Error::new(
                ErrorKind::InvalidKey,
                "encryption key must be the base64 encoding of exactly 32 bytes \
                 (generate one with `openssl rand -base64 32`)",
            )
        };
        let text = text.trim();
        if text.len() > MAX_KEY_TEXT_LEN {
            return Err(invalid());
        }
        // Room for a little more than a key, so over-long input is caught by the length
        // check below rather than reported as a buffer error.
        let mut buf = Zeroizing::new([0u8; MAX_KEY_TEXT_LEN]);
        let len = KEY_TEXT_ENGINE
            .decode_slice(text.as_bytes(), &mut buf[..])
            .map_err(|_| invalid())?;
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        match buf.get(..len) {
            Some(decoded) if len == KEY_LEN => key.copy_from_slice(decoded),
            _ => return Err(invalid()),
        }
        Ok(SecretKey { bytes: key })
    }

    /// A new random key from the operating system's generator, for a first start.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Random`] when the operating system cannot provide randomness.
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(&mut bytes[..])?;
        Ok(SecretKey { bytes })
    }

    /// The key as standard base64, the form [`SecretKey::from_base64`] reads. The returned
    /// string is wiped when dropped; write it only to the operator's secret store.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(&self.bytes[..]))
    }

    /// The key check of this key: 8 hex digits that identify the key bytes without revealing
    /// them. Safe to log; compare it across servers to confirm they share a key.
    pub fn check(&self) -> String {
        key_check(&self.bytes)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([REDACTED])")
    }
}

pub(crate) fn fill_random(dest: &mut [u8]) -> Result<()> {
    OsRng.try_fill_bytes(dest).map_err(|_| {
        Error::new(
            ErrorKind::Random,
            "the operating system's random number generator failed",
        )
    })
}

fn key_check(key: &[u8; KEY_LEN]) -> String {
    let mut block = Block::from(KEY_CHECK_BLOCK);
    if let Ok(aes) = Aes256::new_from_slice(&key[..]) {
        aes.encrypt_block(&mut block);
    }
    let mut out = String::with_capacity(KEY_CHECK_HEX_LEN);
    for byte in block.iter().take(KEY_CHECK_HEX_LEN / 2) {
        out.push(hex_digit(byte >> 4));
        out.push(hex_digit(byte & 0x0f));
    }
    block.zeroize();
    out
}

fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16).unwrap_or('0')
}

fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn check_key_id(id: &str) -> Result<()> {
    if valid_key_id(id) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidKeyId,
            "key id must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
        ))
    }
}

fn valid_key_check(check: &str) -> bool {
    check.len() == KEY_CHECK_HEX_LEN
        && check
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

struct KeyEntry {
    id: String,
    check: String,
    cipher: Aes256Gcm,
}

/// Named AES-256-GCM keys: one active key seals, every key opens.
///
/// Build it once at startup from configuration ([`Keyring::from_config`] or
/// [`Keyring::new`] plus [`Keyring::add_key`]) and share it (it is `Send + Sync`; wrap it in
/// an `Arc`). `Debug` shows key ids only.
pub struct Keyring {
    keys: Vec<KeyEntry>,
    active: usize,
}

impl Keyring {
    /// A keyring with one key, which is active.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidKeyId`] when `active_id` is not a valid key id.
    pub fn new(active_id: &str, active_key: SecretKey) -> Result<Self> {
        Ok(Keyring {
            keys: vec![Self::entry(active_id, &active_key)?],
            active: 0,
        })
    }

    /// Parses a keyring specification: comma-separated `id=base64key` entries, the **first
    /// active**, the rest kept for decryption. Whitespace around entries is ignored.
    ///
    /// ```text
    /// 2025-06=q2F...=,2024-01=Zm9...=
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidKeyring`] for an empty specification or an entry without `=`,
    /// [`ErrorKind::InvalidKeyId`], [`ErrorKind::InvalidKey`] and
    /// [`ErrorKind::DuplicateKeyId`] for bad entries. Messages name entries by position only,
    /// because a malformed entry may be a pasted key.
    pub fn from_config(spec: &str) -> Result<Self> {
        let mut keyring: Option<Keyring> = None;
        for (index, raw) in spec.split(',').enumerate() {
            let position = index + 1;
            let entry = raw.trim();
            let Some((id, key_text)) = entry.split_once('=') else {
                return Err(Error::new(
                    ErrorKind::InvalidKeyring,
                    format!("keyring entry {position} is not of the form id=base64key"),
                ));
            };
            let id = id.trim();
            let at = |e: Error| Error::new(e.kind(), format!("keyring entry {position}: {e}"));
            check_key_id(id).map_err(at)?;
            let key = SecretKey::from_base64(key_text).map_err(at)?;
            match &mut keyring {
                None => keyring = Some(Keyring::new(id, key).map_err(at)?),
                Some(k) => k.add_key(id, key).map_err(|e| {
                    Error::new(
                        e.kind(),
                        format!("keyring entry {position}: its key id is used by an earlier entry"),
                    )
                })?,
            }
        }
        keyring.ok_or_else(|| Error::new(ErrorKind::InvalidKeyring, "keyring is empty"))
    }

    fn entry(id: &str, key: &SecretKey) -> Result<KeyEntry> {
        check_key_id(id)?;
        let cipher = Aes256Gcm::new_from_slice(&key.bytes[..]).map_err(|_| {
            Error::new(ErrorKind::InvalidKey, "encryption key has the wrong length")
        })?;
        Ok(KeyEntry {
            id: id.to_owned(),
            check: key.check(),
            cipher,
        })
    }

    /// Adds a key that opens secrets but does not seal new ones (until
    /// [`Keyring::set_active`] makes it active).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidKeyId`], or [`ErrorKind::DuplicateKeyId`] when the id is taken.
    pub fn add_key(&mut self, id: &str, key: SecretKey) -> Result<()> {
        let entry = Self::entry(id, &key)?;
        if self.position(id).is_some() {
            return Err(Error::new(
                ErrorKind::DuplicateKeyId,
                format!("the keyring already has a key with id {id:?}"),
            )
            .with_key_id(id));
        }
        self.keys.push(entry);
        Ok(())
    }

    /// Makes the key `id` the one that seals new secrets.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::UnknownKeyId`] when the keyring has no such key.
    pub fn set_active(&mut self, id: &str) -> Result<()> {
        self.active = self.require(id)?;
        Ok(())
    }

    /// Removes a retired key. Secrets it sealed can no longer be opened, so run the
    /// re-encryption ([`Keyring::rotate`]) first.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::UnknownKeyId`] when there is no such key, [`ErrorKind::InvalidKeyring`]
    /// when it is the active key.
    pub fn remove_key(&mut self, id: &str) -> Result<()> {
        let index = self.require(id)?;
        if index == self.active {
            return Err(Error::new(
                ErrorKind::InvalidKeyring,
                format!("key {id:?} is active; make another key active before removing it"),
            )
            .with_key_id(id));
        }
        self.keys.remove(index);
        if index < self.active {
            self.active -= 1;
        }
        Ok(())
    }

    /// The id of the key that seals new secrets.
    pub fn active_key_id(&self) -> &str {
        self.active_entry().map_or("", |e| e.id.as_str())
    }

    /// Ids of all keys, in the order they were added.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.keys.iter().map(|e| e.id.as_str())
    }

    /// The key check (8 hex digits, see [`SecretKey::check`]) of key `id`; safe to log.
    pub fn key_check(&self, id: &str) -> Option<&str> {
        self.position(id)
            .and_then(|i| self.keys.get(i))
            .map(|e| e.check.as_str())
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.keys.iter().position(|e| e.id == id)
    }

    fn require(&self, id: &str) -> Result<usize> {
        self.position(id).ok_or_else(|| unknown_key_id(id))
    }

    fn active_entry(&self) -> Option<&KeyEntry> {
        self.keys.get(self.active)
    }

    /// Seals `plaintext` under the active key, binding it to `aad` (which must be given again
    /// to open it). Every call uses a fresh random nonce, so sealing the same value twice gives
    /// different texts.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TooLarge`] above [`MAX_PLAINTEXT_LEN`] bytes; [`ErrorKind::Random`] when
    /// no nonce can be drawn.
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<String> {
        let entry = self
            .active_entry()
            .ok_or_else(|| Error::new(ErrorKind::InvalidKeyring, "keyring has no active key"))?;
        seal(entry, plaintext, aad)
    }

    /// Opens a sealed secret.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::TooLarge`]: longer than [`MAX_SEALED_LEN`];
    /// - [`ErrorKind::UnsupportedVersion`]: a format version other than `v1`;
    /// - [`ErrorKind::MalformedCiphertext`]: not a sealed secret;
    /// - [`ErrorKind::UnknownKeyId`]: sealed by a key this keyring does not have;
    /// - [`ErrorKind::KeyMismatch`]: the keyring's key of that id has other bytes;
    /// - [`ErrorKind::DecryptionFailed`]: altered, or `aad` differs from the sealing.
    pub fn decrypt(&self, sealed: &str, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let parsed = parse(sealed)?;
        let entry = self.entry_for(&parsed)?;
        open(entry, &parsed, aad)
    }

    /// Opens a sealed secret that is UTF-8 text (an API key, a token). The returned
    /// [`SecretString`] never prints itself but, unlike [`Keyring::decrypt`]'s buffer, is not
    /// wiped when dropped; it is the type the provider clients take.
    ///
    /// # Errors
    ///
    /// Those of [`Keyring::decrypt`], and [`ErrorKind::NotUtf8`].
    pub fn decrypt_secret(&self, sealed: &str, aad: &[u8]) -> Result<SecretString> {
        let mut bytes = self.decrypt(sealed, aad)?;
        let owned = std::mem::take(&mut *bytes);
        match String::from_utf8(owned) {
            Ok(text) => Ok(SecretString::new(text)),
            Err(e) => {
                e.into_bytes().zeroize();
                Err(Error::new(
                    ErrorKind::NotUtf8,
                    "decrypted secret is not UTF-8 text",
                ))
            }
        }
    }

    /// Re-seals `sealed` under the active key if another key sealed it.
    ///
    /// Returns `Ok(None)` when the active key (same id and key check) already sealed it — in
    /// that case nothing is decrypted, so a re-encryption job can scan every row cheaply — and
    /// `Ok(Some(new_text))` otherwise, for the job to write back in place (with the same
    /// `aad`, inside the row's transaction).
    ///
    /// # Errors
    ///
    /// Those of [`Keyring::decrypt`] and [`Keyring::encrypt`].
    pub fn rotate(&self, sealed: &str, aad: &[u8]) -> Result<Option<String>> {
        let parsed = parse(sealed)?;
        let active = self
            .active_entry()
            .ok_or_else(|| Error::new(ErrorKind::InvalidKeyring, "keyring has no active key"))?;
        if parsed.key_id == active.id && parsed.check == active.check {
            return Ok(None);
        }
        let entry = self.entry_for(&parsed)?;
        let plaintext = open(entry, &parsed, aad)?;
        seal(active, &plaintext, aad).map(Some)
    }

    fn entry_for(&self, parsed: &Parsed<'_>) -> Result<&KeyEntry> {
        let entry = self
            .position(parsed.key_id)
            .and_then(|i| self.keys.get(i))
            .ok_or_else(|| unknown_key_id(parsed.key_id))?;
        if entry.check != parsed.check {
            return Err(Error::new(
                ErrorKind::KeyMismatch,
                format!(
                    "secret was sealed by a different key named {:?} (key check {}; the \
                     configured key's check is {}): the key id was reused for other key bytes",
                    parsed.key_id, parsed.check, entry.check
                ),
            )
            .with_key_id(parsed.key_id));
        }
        Ok(entry)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.active_key_id())
            .field("keys", &self.key_ids().collect::<Vec<_>>())
            .finish()
    }
}

fn unknown_key_id(id: &str) -> Error {
    Error::new(
        ErrorKind::UnknownKeyId,
        format!("no encryption key with id {id:?} is configured"),
    )
    .with_key_id(id)
}

fn seal(entry: &KeyEntry, plaintext: &[u8], aad: &[u8]) -> Result<String> {
    if plaintext.len() > MAX_PLAINTEXT_LEN {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!(
                "secret is {} bytes; at most {MAX_PLAINTEXT_LEN} can be encrypted",
                plaintext.len()
            ),
        ));
    }
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let ciphertext = entry
        .cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| Error::new(ErrorKind::TooLarge, "secret is too large to encrypt"))?;
    let mut raw = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    raw.extend_from_slice(&nonce);
    raw.extend_from_slice(&ciphertext);
    Ok(format!(
        "{SEALED_VERSION}:{}:{}:{}",
        entry.id,
        entry.check,
        STANDARD.encode(&raw)
    ))
}

fn open(entry: &KeyEntry, parsed: &Parsed<'_>, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let Some((nonce, ciphertext)) = parsed.raw.split_first_chunk::<NONCE_LEN>() else {
        return Err(malformed("the payload is shorter than a nonce"));
    };
    let plaintext = entry
        .cipher
        .decrypt(
            &Nonce::from(*nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| {
            Error::new(
                ErrorKind::DecryptionFailed,
                format!(
                    "secret sealed by key {:?} failed authentication: it was altered, or it \
                     belongs to another record (associated data differs)",
                    entry.id
                ),
            )
            .with_key_id(entry.id.as_str())
        })?;
    Ok(Zeroizing::new(plaintext))
}

struct Parsed<'a> {
    key_id: &'a str,
    check: &'a str,
    /// nonce ‖ ciphertext ‖ tag, at least `NONCE_LEN + TAG_LEN` bytes.
    raw: Vec<u8>,
}

fn malformed(what: &str) -> Error {
    Error::new(
        ErrorKind::MalformedCiphertext,
        format!("value is not a sealed secret: {what}"),
    )
}

fn parse(sealed: &str) -> Result<Parsed<'_>> {
    if sealed.len() > MAX_SEALED_LEN {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!(
                "sealed secret is {} bytes; at most {MAX_SEALED_LEN} are read",
                sealed.len()
            ),
        ));
    }
    let mut fields = sealed.splitn(4, ':');
    let version = fields.next().unwrap_or_default();
    if version != SEALED_VERSION {
        let digits = version.strip_prefix('v').unwrap_or_default();
        return Err(
            if !digits.is_empty() && digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit())
            {
                Error::new(
                    ErrorKind::UnsupportedVersion,
                    format!(
                        "secret is sealed in format {version}, but this build reads only \
                         {SEALED_VERSION}"
                    ),
                )
            } else {
                malformed("it does not start with a format version")
            },
        );
    }
    let (Some(key_id), Some(check), Some(payload)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(malformed("it has fewer than four ':'-separated fields"));
    };
    if !valid_key_id(key_id) {
        return Err(malformed("the key id is invalid"));
    }
    if !valid_key_check(check) {
        return Err(malformed("the key check is not 8 lowercase hex digits"));
    }
    let raw = STANDARD
        .decode(payload)
        .map_err(|_| malformed("the payload is not base64"))?;
    if raw.len() < NONCE_LEN + TAG_LEN {
        return Err(malformed("the payload is shorter than a nonce and a tag"));
    }
    Ok(Parsed { key_id, check, raw })
}

/// The id of the key that sealed `sealed`, read from its header without decrypting. A
/// re-encryption job can use it to count rows per key.
///
/// # Errors
///
/// Those of [`Keyring::decrypt`] that concern the format ([`ErrorKind::TooLarge`],
/// [`ErrorKind::UnsupportedVersion`], [`ErrorKind::MalformedCiphertext`]).
pub fn sealed_key_id(sealed: &str) -> Result<&str> {
    parse(sealed).map(|p| p.key_id)
}
