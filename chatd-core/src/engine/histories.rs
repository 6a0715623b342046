//! The prompt histories of the chats this engine runs, kept between turns so a turn reads
//! only the rows appended since the last one (docs/turn-path.md "History"). A history is
//! used again only while the chat's history version and compaction boundary are the ones
//! it was read with ([`HistoryMark`]); anything else reads it whole.

use std::collections::HashMap;
use std::sync::Mutex;

use codersdk::{ChatMessage, Uuid};

use super::lock;
use crate::store::{HistoryMark, HistoryRead};

/// Most history rows held over all chats. Past it the least recently used chats' histories
/// are dropped (their next turn reads the whole history again); a single history longer
/// than this is never held.
pub const MAX_CACHED_HISTORY_MESSAGES: usize = 50_000;

#[derive(Debug)]
struct Entry {
    mark: HistoryMark,
    messages: Vec<ChatMessage>,
    used: u64,
}

/// The held histories, by chat.
#[derive(Debug, Default)]
pub(crate) struct Histories {
    inner: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<Uuid, Entry>,
    /// Rows held over all entries.
    rows: usize,
    /// Use counter, for least-recently-used eviction.
    clock: u64,
}

impl Histories {
    /// Where the held history of `chat_id` stands, if one is held.
    pub(crate) fn known(&self, chat_id: Uuid) -> Option<HistoryMark> {
        lock(&self.inner).entries.get(&chat_id).map(|e| e.mark)
    }

    /// The whole history after `read`: a full read replaces the held one, appended rows
    /// extend it. `None` when appended rows no longer fit the held history (dropped or
    /// changed meanwhile): the caller reads the history whole.
    pub(crate) fn settle(&self, chat_id: Uuid, read: HistoryRead) -> Option<Vec<ChatMessage>> {
        let mut state = lock(&self.inner);
        state.clock += 1;
        let now = state.clock;
        match read {
            HistoryRead::Full { messages, mark } => {
                state.remove(chat_id);
                // Copied only when it will be held.
                if let (Some(mark), true) = (mark, messages.len() <= MAX_CACHED_HISTORY_MESSAGES) {
                    state.insert(chat_id, mark, messages.clone(), now);
                }
                Some(messages)
            }
            HistoryRead::Appended { messages, mark } => {
                let added = messages.len();
                let entry = state.entries.get_mut(&chat_id)?;
                entry.messages.extend(messages);
                entry.mark = mark;
                entry.used = now;
                let whole = entry.messages.clone();
                state.rows = state.rows.saturating_add(added);
                state.evict(Some(chat_id));
                Some(whole)
            }
        }
    }

    /// Forgets the history of `chat_id` (its turn failed to read or use it).
    pub(crate) fn forget(&self, chat_id: Uuid) {
        lock(&self.inner).remove(chat_id);
    }

    /// Rows held over all chats.
    #[cfg(test)]
    fn rows(&self) -> usize {
        lock(&self.inner).rows
    }
}

impl State {
    fn remove(&mut self, chat_id: Uuid) {
        if let Some(old) = self.entries.remove(&chat_id) {
            self.rows = self.rows.saturating_sub(old.messages.len());
        }
    }

    fn insert(&mut self, chat_id: Uuid, mark: HistoryMark, messages: Vec<ChatMessage>, now: u64) {
        self.rows = self.rows.saturating_add(messages.len());
        self.entries.insert(
            chat_id,
            Entry {
                mark,
                messages,
                used: now,
            },
        );
        self.evict(Some(chat_id));
    }

    /// Drops least recently used entries (never `keep`, unless it alone is over the
    /// budget) until the rows fit [`MAX_CACHED_HISTORY_MESSAGES`].
    fn evict(&mut self, keep: Option<Uuid>) {
        while self.rows > MAX_CACHED_HISTORY_MESSAGES {
            let victim = self
                .entries
                .iter()
                .filter(|(id, _)| Some(**id) != keep)
                .min_by_key(|(_, e)| e.used)
                .map(|(id, _)| *id)
                .or(keep);
            match victim {
                Some(id) => self.remove(id),
                None => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use codersdk::{ChatMessageRole, Timestamp};

    fn message(id: i64) -> ChatMessage {
        ChatMessage {
            id,
            chat_id: Uuid::nil(),
            created_by: None,
            model_config_id: None,
            created_at: Timestamp(chrono::Utc::now()),
            role: ChatMessageRole::User,
            content: Vec::new(),
            usage: None,
            total_cost_micros: None,
        }
    }

    fn mark(version: i64, last_id: i64) -> HistoryMark {
        HistoryMark {
            version,
            boundary: 0,
            last_id,
        }
    }

    fn full(ids: std::ops::Range<i64>, version: i64) -> HistoryRead {
        let last = ids.end - 1;
        HistoryRead::Full {
            messages: ids.map(message).collect(),
            mark: Some(mark(version, last)),
        }
    }

    #[test]
    fn appended_rows_extend_the_held_history() {
        let h = Histories::default();
        let chat = Uuid::new_v4();
        assert_eq!(h.known(chat), None);
        assert_eq!(h.settle(chat, full(1..4, 0)).unwrap().len(), 3);
        assert_eq!(h.known(chat), Some(mark(0, 3)));
        let whole = h
            .settle(
                chat,
                HistoryRead::Appended {
                    messages: vec![message(4), message(5)],
                    mark: mark(0, 5),
                },
            )
            .unwrap();
        assert_eq!(
            whole.iter().map(|m| m.id).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(h.rows(), 5);
        // Appended rows for a history no longer held: the caller reads it whole.
        h.forget(chat);
        assert!(h
            .settle(
                chat,
                HistoryRead::Appended {
                    messages: vec![message(6)],
                    mark: mark(0, 6),
                },
            )
            .is_none());
        assert_eq!(h.rows(), 0);
    }

    #[test]
    fn the_row_budget_drops_the_least_recently_used_history_at_its_edge() {
        let h = Histories::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let half = i64::try_from(MAX_CACHED_HISTORY_MESSAGES / 2).unwrap();
        h.settle(a, full(0..half, 0));
        h.settle(b, full(0..half, 0));
        // Exactly at the budget: both held.
        assert_eq!(h.rows(), MAX_CACHED_HISTORY_MESSAGES);
        assert!(h.known(a).is_some() && h.known(b).is_some());
        // One row more: the least recently used (a) goes.
        h.settle(
            b,
            HistoryRead::Appended {
                messages: vec![message(half)],
                mark: mark(0, half),
            },
        );
        assert!(h.known(a).is_none());
        assert!(h.known(b).is_some());
        assert_eq!(h.rows(), MAX_CACHED_HISTORY_MESSAGES / 2 + 1);
        // A history longer than the budget is never held.
        let over = i64::try_from(MAX_CACHED_HISTORY_MESSAGES).unwrap() + 1;
        assert_eq!(
            h.settle(a, full(0..over, 0)).unwrap().len(),
            MAX_CACHED_HISTORY_MESSAGES + 1
        );
        assert!(h.known(a).is_none());
    }
}
