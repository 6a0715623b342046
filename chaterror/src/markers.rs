//! Typed markers that classification recognises anywhere in a source chain, and helpers to
//! look for them.

use std::error::Error as StdError;
use std::fmt;

use crate::chain::Chain;
use crate::BoxError;

/// The operation was canceled (Go's `context.Canceled`).
///
/// A provider client returns it (or wraps it) when it stopped because its cancellation
/// token fired. Alone it classifies as a non-retryable `generic` "The request was canceled
/// before it completed."; inside [`retry`](crate::retry()) a cancellation the caller did
/// not ask for becomes a retryable [`TransportReset`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, thiserror::Error)]
#[error("context canceled")]
pub struct Canceled;

/// The caller's deadline passed (Go's `context.DeadlineExceeded`).
///
/// Classifies as a **non-retryable** `timeout`: retrying cannot help once the caller's own
/// time budget is spent. `tokio::time::error::Elapsed` in a chain counts as this too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, thiserror::Error)]
#[error("context deadline exceeded")]
pub struct DeadlineExceeded;

/// The user interrupted the chat.
///
/// Classifies as a non-retryable `generic` "The request was canceled before it completed.",
/// like the texts `chat interrupted`, `request interrupted` and `operation interrupted`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, thiserror::Error)]
#[error("chat interrupted")]
pub struct Interrupted;

/// A provider stream was cut while the caller was still waiting for it (Coder's
/// `ErrProviderTransportReset`).
///
/// Classifies as a retryable `timeout` when no HTTP status is known. It usually wraps the
/// cancellation that cut the stream; its text then joins both on separate lines
/// (`provider transport reset` / `context canceled`), as Go's `errors.Join` does, and the
/// wrapped error stays reachable through [`source`](StdError::source).
#[derive(Debug)]
pub struct TransportReset {
    source: Option<BoxError>,
}

impl TransportReset {
    /// The text of a bare transport reset.
    pub const TEXT: &'static str = "provider transport reset";

    /// A bare transport reset.
    pub fn new() -> Self {
        TransportReset { source: None }
    }

    /// A transport reset explaining `err`.
    pub fn wrap(err: impl Into<BoxError>) -> Self {
        TransportReset {
            source: Some(err.into()),
        }
    }

    /// The wrapped error, if any.
    pub fn get_ref(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.source.as_deref()
    }

    /// Unwraps the wrapped error, if any.
    pub fn into_inner(self) -> Option<BoxError> {
        self.source
    }
}

impl Default for TransportReset {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TransportReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::TEXT)?;
        match &self.source {
            Some(source) => write!(f, "\n{source}"),
            None => Ok(()),
        }
    }
}

impl StdError for TransportReset {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// The `cause` text of an HTTP/2 stream error that the peer sent (`RST_STREAM` received).
pub const HTTP2_CAUSE_RECEIVED_FROM_PEER: &str = "received from peer";

/// An HTTP/2 error code (RFC 9113 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Http2ErrorCode {
    /// `NO_ERROR` (0x0).
    NoError,
    /// `PROTOCOL_ERROR` (0x1).
    Protocol,
    /// `INTERNAL_ERROR` (0x2).
    Internal,
    /// `FLOW_CONTROL_ERROR` (0x3).
    FlowControl,
    /// `SETTINGS_TIMEOUT` (0x4).
    SettingsTimeout,
    /// `STREAM_CLOSED` (0x5).
    StreamClosed,
    /// `FRAME_SIZE_ERROR` (0x6).
    FrameSize,
    /// `REFUSED_STREAM` (0x7).
    RefusedStream,
    /// `CANCEL` (0x8).
    Cancel,
    /// `COMPRESSION_ERROR` (0x9).
    Compression,
    /// `CONNECT_ERROR` (0xa).
    Connect,
    /// `ENHANCE_YOUR_CALM` (0xb).
    EnhanceYourCalm,
    /// `INADEQUATE_SECURITY` (0xc).
    InadequateSecurity,
    /// `HTTP_1_1_REQUIRED` (0xd).
    Http11Required,
    /// A code this version does not name.
    Other(u32),
}

impl Http2ErrorCode {
    /// The code for a wire value.
    pub fn from_u32(code: u32) -> Self {
        use Http2ErrorCode::*;
        match code {
            0x0 => NoError,
            0x1 => Protocol,
            0x2 => Internal,
            0x3 => FlowControl,
            0x4 => SettingsTimeout,
            0x5 => StreamClosed,
            0x6 => FrameSize,
            0x7 => RefusedStream,
            0x8 => Cancel,
            0x9 => Compression,
            0xa => Connect,
            0xb => EnhanceYourCalm,
            0xc => InadequateSecurity,
            0xd => Http11Required,
            other => Other(other),
        }
    }

    /// The wire value.
    pub fn as_u32(self) -> u32 {
        use Http2ErrorCode::*;
        match self {
            NoError => 0x0,
            Protocol => 0x1,
            Internal => 0x2,
            FlowControl => 0x3,
            SettingsTimeout => 0x4,
            StreamClosed => 0x5,
            FrameSize => 0x6,
            RefusedStream => 0x7,
            Cancel => 0x8,
            Compression => 0x9,
            Connect => 0xa,
            EnhanceYourCalm => 0xb,
            InadequateSecurity => 0xc,
            Http11Required => 0xd,
            Other(code) => code,
        }
    }

    /// Whether a peer resetting a stream with this code says "try again": the server shed
    /// load or restarted, rather than our request being malformed.
    fn is_transient(self) -> bool {
        use Http2ErrorCode::*;
        matches!(
            self,
            NoError | Internal | RefusedStream | Cancel | EnhanceYourCalm
        )
    }
}

impl fmt::Display for Http2ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Http2ErrorCode::*;
        let name = match self {
            NoError => "NO_ERROR",
            Protocol => "PROTOCOL_ERROR",
            Internal => "INTERNAL_ERROR",
            FlowControl => "FLOW_CONTROL_ERROR",
            SettingsTimeout => "SETTINGS_TIMEOUT",
            StreamClosed => "STREAM_CLOSED",
            FrameSize => "FRAME_SIZE_ERROR",
            RefusedStream => "REFUSED_STREAM",
            Cancel => "CANCEL",
            Compression => "COMPRESSION_ERROR",
            Connect => "CONNECT_ERROR",
            EnhanceYourCalm => "ENHANCE_YOUR_CALM",
            InadequateSecurity => "INADEQUATE_SECURITY",
            Http11Required => "HTTP_1_1_REQUIRED",
            Other(code) => return write!(f, "unknown error code 0x{code:x}"),
        };
        f.write_str(name)
    }
}

/// An HTTP/2 stream was reset (`RST_STREAM`).
///
/// Build it from your HTTP client's error (for `h2`, from `h2::Error::reason()` and
/// `is_remote()`). A reset the peer sent ([`received_from_peer`](Self::received_from_peer))
/// with `NO_ERROR`, `INTERNAL_ERROR`, `REFUSED_STREAM`, `CANCEL` or `ENHANCE_YOUR_CALM` is a
/// retryable `timeout`; any other typed reset is not retryable and stops transport words in
/// the text ("reset", "unavailable", …) from making it one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http2StreamError {
    stream_id: u32,
    code: Http2ErrorCode,
    cause: Option<String>,
}

impl Http2StreamError {
    /// A reset of `stream_id` with `code` and no known cause.
    pub fn new(stream_id: u32, code: Http2ErrorCode) -> Self {
        Http2StreamError {
            stream_id,
            code,
            cause: None,
        }
    }

    /// Marks the reset as sent by the peer.
    pub fn received_from_peer(self) -> Self {
        self.with_cause(HTTP2_CAUSE_RECEIVED_FROM_PEER)
    }

    /// Sets the cause text (for example `local transport reset`).
    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    /// The stream id.
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// The error code.
    pub fn code(&self) -> Http2ErrorCode {
        self.code
    }

    /// The cause text, if any.
    pub fn cause(&self) -> Option<&str> {
        self.cause.as_deref()
    }

    /// Whether the peer reset the stream with a code that invites a retry.
    pub fn is_retryable(&self) -> bool {
        self.cause.as_deref() == Some(HTTP2_CAUSE_RECEIVED_FROM_PEER) && self.code.is_transient()
    }
}

impl fmt::Display for Http2StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stream error: stream ID {}; {}",
            self.stream_id, self.code
        )?;
        match &self.cause {
            Some(cause) => write!(f, "; {cause}"),
            None => Ok(()),
        }
    }
}

impl StdError for Http2StreamError {}

/// The first error of type `T` in `err`'s source chain (including `err` itself), looking
/// inside boxed errors and `std::io::Error`s that wrap another error.
///
/// At most [`MAX_CHAIN_DEPTH`](crate::MAX_CHAIN_DEPTH) links are followed.
pub fn find_in_chain<'a, T: StdError + 'static>(
    err: &'a (dyn StdError + 'static),
) -> Option<&'a T> {
    Chain::new(err).find_map(|e| e.downcast_ref::<T>())
}

/// Whether the chain contains a cancellation: [`Canceled`] or a cancelled
/// `tokio::task::JoinError`.
pub fn is_canceled(err: &(dyn StdError + 'static)) -> bool {
    Chain::new(err).any(crate::chain::is_canceled_node)
}

/// Whether the chain contains [`DeadlineExceeded`] or `tokio::time::error::Elapsed`.
pub fn is_deadline_exceeded(err: &(dyn StdError + 'static)) -> bool {
    Chain::new(err).any(crate::chain::is_deadline_node)
}

/// Whether the chain contains [`Interrupted`].
pub fn is_interrupted(err: &(dyn StdError + 'static)) -> bool {
    find_in_chain::<Interrupted>(err).is_some()
}

/// Whether the chain contains a [`TransportReset`].
pub fn is_transport_reset(err: &(dyn StdError + 'static)) -> bool {
    find_in_chain::<TransportReset>(err).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts() {
        assert_eq!(Canceled.to_string(), "context canceled");
        assert_eq!(DeadlineExceeded.to_string(), "context deadline exceeded");
        assert_eq!(
            TransportReset::new().to_string(),
            "provider transport reset"
        );
        assert_eq!(
            TransportReset::wrap(Canceled).to_string(),
            "provider transport reset\ncontext canceled"
        );
        let e = Http2StreamError::new(455, Http2ErrorCode::Internal).received_from_peer();
        assert_eq!(
            e.to_string(),
            "stream error: stream ID 455; INTERNAL_ERROR; received from peer"
        );
        assert_eq!(
            Http2StreamError::new(1, Http2ErrorCode::Cancel).to_string(),
            "stream error: stream ID 1; CANCEL"
        );
        assert_eq!(
            Http2ErrorCode::from_u32(0xff).to_string(),
            "unknown error code 0xff"
        );
        for code in 0..=0xe {
            assert_eq!(Http2ErrorCode::from_u32(code).as_u32(), code);
        }
    }

    #[test]
    fn http2_retryability() {
        use Http2ErrorCode::*;
        for code in [NoError, Internal, RefusedStream, Cancel, EnhanceYourCalm] {
            assert!(Http2StreamError::new(1, code)
                .received_from_peer()
                .is_retryable());
            assert!(!Http2StreamError::new(1, code).is_retryable());
            assert!(!Http2StreamError::new(1, code)
                .with_cause("local transport reset")
                .is_retryable());
        }
        for code in [Protocol, FlowControl, FrameSize, Compression, Other(99)] {
            assert!(!Http2StreamError::new(1, code)
                .received_from_peer()
                .is_retryable());
        }
    }

    #[test]
    fn chain_predicates() {
        let e = TransportReset::wrap(Canceled);
        assert!(is_transport_reset(&e));
        assert!(is_canceled(&e));
        assert!(!is_deadline_exceeded(&e));
        assert!(!is_interrupted(&e));
        let io = std::io::Error::other(Interrupted);
        assert!(is_interrupted(&io));
        let boxed: BoxError = Box::new(DeadlineExceeded);
        assert!(is_deadline_exceeded(&*boxed));
    }
}
