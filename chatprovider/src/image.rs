//! The inline image cap: the largest image a provider accepts inside a
//! request, and the attachment check built on it.

use crate::catalog::Provider;
use crate::error::{quote_bounded, Error, ErrorKind};

/// Largest inline image Anthropic (and Bedrock, which uses the Anthropic client) accepts:
/// 5 MiB. Images of exactly this size are already rejected.
pub const ANTHROPIC_INLINE_IMAGE_CAP_BYTES: u64 = 5 * 1024 * 1024;

/// What a web client keeps below a cap for request overhead when it checks images before
/// uploading: 16 KiB.
pub const CLIENT_IMAGE_BUDGET_HEADROOM_BYTES: u64 = 16 * 1024;

/// The inline image cap of a provider (trimmed, case-insensitive), in bytes: 5 MiB for
/// Anthropic and Bedrock, `None` (no cap) for every other provider and unknown names.
///
/// ```
/// use chatprovider::inline_image_byte_cap;
/// assert_eq!(inline_image_byte_cap(" Anthropic "), Some(5 * 1024 * 1024));
/// assert_eq!(inline_image_byte_cap("openai"), None);
/// ```
pub fn inline_image_byte_cap(provider: &str) -> Option<u64> {
    match Provider::parse(provider)? {
        Provider::Anthropic | Provider::Bedrock => Some(ANTHROPIC_INLINE_IMAGE_CAP_BYTES),
        _ => None,
    }
}

/// The image size a web client should allow before uploading for `provider`: the cap less
/// [`CLIENT_IMAGE_BUDGET_HEADROOM_BYTES`], or the upload limit
/// ([`codersdk::MAX_CHAT_FILE_SIZE_BYTES`]) less the headroom for providers without a cap.
pub fn client_image_byte_budget(provider: &str) -> u64 {
    inline_image_byte_cap(provider)
        .unwrap_or(codersdk::MAX_CHAT_FILE_SIZE_BYTES)
        .saturating_sub(CLIENT_IMAGE_BUDGET_HEADROOM_BYTES)
}

/// One file about to be sent inline to a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InlineAttachment<'a> {
    /// File name, for the error message.
    pub name: &'a str,
    /// Media type (`image/png`, `text/plain; charset=utf-8`, …).
    pub media_type: &'a str,
    /// Size in bytes.
    pub size_bytes: u64,
}

/// Whether a media type is `image/*` (case-insensitive, parameters ignored).
fn is_image(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or_default().trim();
    essence
        .get(..6)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("image/"))
}

/// Checks one attachment against the provider's inline image cap.
///
/// Only `image/*` attachments are checked, and only for providers with a cap; an image of
/// **at least** the cap fails. The error is pre-classified `config` (not retryable) for
/// the normalized provider; its message names the provider's display name and the cap in
/// bytes, and its text and [`Error::file_name`] name the file.
pub fn check_inline_image(provider: &str, attachment: &InlineAttachment<'_>) -> Result<(), Error> {
    let Some(p) = Provider::parse(provider) else {
        return Ok(());
    };
    let Some(cap) = inline_image_byte_cap(p.as_str()) else {
        return Ok(());
    };
    if !is_image(attachment.media_type) || attachment.size_bytes < cap {
        return Ok(());
    }
    let name = quote_bounded(attachment.name);
    let display = p.display_name();
    Err(Error::new(
        ErrorKind::ImageTooLarge,
        format!(
            "image {name} is {} bytes; {display} accepts inline images smaller than {cap} bytes",
            attachment.size_bytes
        ),
    )
    .with_provider(p)
    .with_file_name(attachment.name)
    .with_user_message(format!(
        "The image {name} is too large for {display}, which accepts inline images smaller \
         than {cap} bytes. Attach a smaller image."
    )))
}

/// Checks a batch of attachments in order and stops at the first image that is too large
/// (see [`check_inline_image`]); nothing of the batch should then be sent.
///
/// ```
/// use chatprovider::{check_inline_images, InlineAttachment, ANTHROPIC_INLINE_IMAGE_CAP_BYTES};
///
/// let files = [
///     InlineAttachment { name: "notes.txt", media_type: "text/plain", size_bytes: 1 << 30 },
///     InlineAttachment { name: "cat.png", media_type: "image/png",
///                        size_bytes: ANTHROPIC_INLINE_IMAGE_CAP_BYTES },
/// ];
/// let err = check_inline_images("anthropic", files).unwrap_err();
/// assert_eq!(err.file_name(), Some("cat.png"));
/// assert!(check_inline_images("openai", files).is_ok());
/// ```
pub fn check_inline_images<'a>(
    provider: &str,
    attachments: impl IntoIterator<Item = InlineAttachment<'a>>,
) -> Result<(), Error> {
    attachments
        .into_iter()
        .try_for_each(|a| check_inline_image(provider, &a))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use codersdk::ChatErrorKind;

    const CAP: u64 = ANTHROPIC_INLINE_IMAGE_CAP_BYTES;
    const MIB: u64 = 1024 * 1024;

    fn img(name: &str, size: u64) -> InlineAttachment<'_> {
        InlineAttachment {
            name,
            media_type: "image/png",
            size_bytes: size,
        }
    }

    #[test]
    fn caps() {
        assert_eq!(CAP, 5_242_880);
        let table = [
            ("anthropic", Some(CAP)),
            ("bedrock", Some(CAP)),
            (" ANTHROPIC\t", Some(CAP)),
            ("Bedrock ", Some(CAP)),
            ("openai", None),
            ("azure", None),
            ("google", None),
            ("openai-compat", None),
            ("openrouter", None),
            ("vercel", None),
            ("", None),
            ("claude", None),
        ];
        for (p, want) in table {
            assert_eq!(inline_image_byte_cap(p), want, "{p:?}");
        }
        assert_eq!(client_image_byte_budget("anthropic"), 5 * MIB - 16 * 1024);
        assert_eq!(client_image_byte_budget("openai"), 10 * MIB - 16 * 1024);
    }

    #[test]
    fn cap_edge() {
        for p in ["anthropic", "bedrock"] {
            assert!(
                check_inline_image(p, &img("a.png", CAP - 1)).is_ok(),
                "{p} cap-1"
            );
            let e = check_inline_image(p, &img("a.png", CAP)).unwrap_err();
            assert!(e.is_image_too_large(), "{p} at cap");
            assert!(check_inline_image(p, &img("a.png", CAP + 1)).is_err());
            assert!(check_inline_image(p, &img("a.png", u64::MAX)).is_err());
            assert!(check_inline_image(p, &img("a.png", 0)).is_ok());
        }
    }

    #[test]
    fn the_error() {
        let e = check_inline_image(" Bedrock ", &img("diagram \"v2\".png", CAP)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ImageTooLarge);
        assert_eq!(e.provider(), Some(Provider::Bedrock));
        assert_eq!(e.file_name(), Some("diagram \"v2\".png"));
        assert!(e.to_string().contains("diagram \\\"v2\\\".png"), "{e}");
        let c = chaterror::classify(&e);
        assert_eq!(c.kind(), Some(&ChatErrorKind::Config));
        assert!(!c.is_retryable());
        assert_eq!(c.provider(), "bedrock");
        assert!(c.message().contains("AWS Bedrock"), "{}", c.message());
        assert!(c.message().contains("5242880"), "{}", c.message());
        let e = check_inline_image("anthropic", &img("x.jpg", CAP)).unwrap_err();
        assert!(chaterror::classify(&e).message().contains("Anthropic"));
    }

    #[test]
    fn non_images_and_uncapped_providers_pass() {
        for media_type in [
            "text/plain",
            "application/pdf",
            "application/json",
            "imagex/png",
            "",
            "image",
        ] {
            let a = InlineAttachment {
                name: "f",
                media_type,
                size_bytes: 50 * MIB,
            };
            assert!(
                check_inline_image("anthropic", &a).is_ok(),
                "{media_type:?}"
            );
        }
        for media_type in ["IMAGE/PNG", " image/webp ", "image/jpeg; q=1", "image/gif"] {
            let a = InlineAttachment {
                name: "f",
                media_type,
                size_bytes: CAP,
            };
            assert!(
                check_inline_image("anthropic", &a).is_err(),
                "{media_type:?}"
            );
        }
        assert!(check_inline_image("openrouter", &img("huge.png", 50 * MIB)).is_ok());
        assert!(check_inline_image("openai", &img("big.png", CAP + 1)).is_ok());
        assert!(check_inline_image("acme", &img("big.png", u64::MAX)).is_ok());
    }

    #[test]
    fn first_oversized_file_aborts_the_batch() {
        let files = [
            img("ok.png", CAP - 1),
            InlineAttachment {
                name: "big.pdf",
                media_type: "application/pdf",
                size_bytes: 9 * MIB,
            },
            img("first-bad.png", CAP),
            img("second-bad.png", CAP * 2),
        ];
        let e = check_inline_images("anthropic", files).unwrap_err();
        assert_eq!(e.file_name(), Some("first-bad.png"));
        assert!(check_inline_images("anthropic", files[..2].iter().copied()).is_ok());
        assert!(check_inline_images("openai", files).is_ok());
        assert!(check_inline_images("anthropic", []).is_ok());
    }
}
