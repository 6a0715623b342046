//! An event as the hub shares it between subscribers, with its JSON encoded once.

use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use bytes::Bytes;

/// One published event as every subscriber receives it (behind one `Arc`): the event, and
/// its JSON text, encoded by the first subscriber that asks for it and shared by the
/// others. A chat with 500 stream subscribers serializes each event once, not 500 times.
///
/// Dereferences to the event, so its fields read as before; [`HubEvent::json`] is the
/// encoding a WebSocket frame is built from.
pub struct HubEvent<T> {
    event: T,
    /// `[` + the event's JSON + `]`, once encoded ([`HubEvent::json_array`]).
    encoded: OnceLock<Bytes>,
}

/// First allocation for an encoding: most events (a status, a text delta) fit, so the
/// buffer rarely grows; a larger event grows it as any `Vec` does.
const ENCODE_CAPACITY: usize = 256;

impl<T> HubEvent<T> {
    /// Wraps `event`; nothing is encoded until [`HubEvent::json`] is called.
    pub fn new(event: T) -> Self {
        HubEvent {
            event,
            encoded: OnceLock::new(),
        }
    }

    /// The event.
    pub fn event(&self) -> &T {
        &self.event
    }
}

impl<T: serde::Serialize> HubEvent<T> {
    /// The event as compact JSON (exactly `serde_json::to_vec(self.event())`), encoded on
    /// the first call and shared afterwards (the returned `Bytes` is a reference, not a
    /// copy).
    ///
    /// # Errors
    ///
    /// When the event cannot be encoded (not for the stream's event types, whose fields
    /// are all plain data); nothing is cached then.
    pub fn json(&self) -> serde_json::Result<Bytes> {
        let array = self.json_array()?;
        // The array is `[`, the event's JSON, `]`: one byte each side.
        Ok(array.slice(1..array.len().saturating_sub(1).max(1)))
    }

    /// The event alone in a JSON array (`[` + [`HubEvent::json`] + `]`), shared like it: a
    /// whole per-chat stream frame when the frame carries this one event. Both forms share
    /// one encoding. Two subscribers asking at the same moment may both encode; one result
    /// is kept, and both are the same bytes.
    ///
    /// # Errors
    ///
    /// As [`HubEvent::json`].
    pub fn json_array(&self) -> serde_json::Result<Bytes> {
        if let Some(encoded) = self.encoded.get() {
            return Ok(encoded.clone());
        }
        let mut buf = Vec::with_capacity(ENCODE_CAPACITY);
        buf.push(b'[');
        serde_json::to_writer(&mut buf, &self.event)?;
        buf.push(b']');
        Ok(self.encoded.get_or_init(|| Bytes::from(buf)).clone())
    }

    /// Whether the event has been encoded already.
    pub fn is_encoded(&self) -> bool {
        self.encoded.get().is_some()
    }
}

impl<T> Deref for HubEvent<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.event
    }
}

impl<T> AsRef<T> for HubEvent<T> {
    fn as_ref(&self) -> &T {
        &self.event
    }
}

impl<T> From<T> for HubEvent<T> {
    fn from(event: T) -> Self {
        HubEvent::new(event)
    }
}

impl<T: fmt::Debug> fmt::Debug for HubEvent<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.event.fmt(f)
    }
}

/// Equal when the events are (the cached encoding follows from the event).
impl<T: PartialEq> PartialEq for HubEvent<T> {
    fn eq(&self, other: &Self) -> bool {
        self.event == other.event
    }
}

/// Serializes as the event itself.
impl<T: serde::Serialize> serde::Serialize for HubEvent<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.event.serialize(serializer)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use codersdk::ChatStreamEvent;
    use uuid::Uuid;

    #[test]
    fn json_is_the_events_own_encoding_made_once() {
        let event = HubEvent::new(ChatStreamEvent::status(
            Uuid::new_v4(),
            codersdk::ChatStatus::Running,
        ));
        assert!(!event.is_encoded());
        let first = event.json().unwrap();
        assert!(event.is_encoded());
        assert_eq!(first, serde_json::to_vec(event.event()).unwrap());
        assert_eq!(first, serde_json::to_vec(&event).unwrap());
        let second = event.json().unwrap();
        // The same allocation: the second call shares the first encoding.
        assert_eq!(first.as_ptr(), second.as_ptr());
        let array = event.json_array().unwrap();
        assert_eq!(array, serde_json::to_vec(&[event.event()]).unwrap());
        assert_eq!(array.slice(1..array.len() - 1).as_ptr(), first.as_ptr());
    }
}
