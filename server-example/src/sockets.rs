//! The per-user cap on open WebSockets (chat streams and watches together).
//!
//! The stream hub bounds subscribers per chat and watchers per owner, but one user could
//! still open a stream on each of thousands of chats; every open socket holds a task, a hub
//! subscription with its queue, and one of the server's connection permits. This cap keeps
//! one user (or one leaked token) from taking the server's connection budget from everyone
//! else. The count lives in this process: with several replicas the limit is per replica.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::StatusCode;
use codersdk::Uuid;

use crate::error::ApiError;

/// Default most WebSockets (streams and watches) one user may hold open at once. Coder's
/// chat page opens one watch and one stream per visible chat; 64 leaves room for many tabs
/// and bots while keeping one user far below [`crate::serve::DEFAULT_MAX_CONNECTIONS`].
pub const DEFAULT_MAX_WEBSOCKETS_PER_USER: usize = 64;

/// Counts each user's open WebSockets against a limit.
#[derive(Debug)]
pub struct UserSockets {
    limit: AtomicUsize,
    open: Mutex<HashMap<Uuid, usize>>,
}

impl Default for UserSockets {
    fn default() -> Self {
        UserSockets::new(DEFAULT_MAX_WEBSOCKETS_PER_USER)
    }
}

impl UserSockets {
    /// A counter allowing `limit` sockets per user (0 refuses every socket).
    pub fn new(limit: usize) -> Self {
        UserSockets {
            limit: AtomicUsize::new(limit),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The limit per user.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Changes the limit; sockets already open stay open.
    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// How many sockets are open, all users together.
    pub fn total(&self) -> usize {
        self.lock().values().sum()
    }

    /// How many sockets `user` holds open.
    pub fn open(&self, user: Uuid) -> usize {
        self.lock().get(&user).copied().unwrap_or(0)
    }

    /// Takes one of `user`'s sockets, or answers 429 when they hold the limit already. The
    /// permit gives the socket back when dropped (when the socket's task ends).
    pub fn acquire(self: &Arc<Self>, user: Uuid) -> Result<SocketPermit, ApiError> {
        let limit = self.limit();
        let mut open = self.lock();
        let count = open.entry(user).or_insert(0);
        if *count >= limit {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many open chat streams for this user.",
            )
            .with_detail(format!(
                "At most {limit} chat streams and watches may be open at once per user; close one and retry."
            )));
        }
        *count += 1;
        Ok(SocketPermit {
            sockets: Arc::clone(self),
            user,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, usize>> {
        // The map holds plain counters, consistent after any panic elsewhere.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One open WebSocket of a user; dropping it gives the socket back.
#[derive(Debug)]
pub struct SocketPermit {
    sockets: Arc<UserSockets>,
    user: Uuid,
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        let mut open = self.sockets.lock();
        if let Some(count) = open.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_refuses_one_more_and_a_drop_frees_a_place() {
        let sockets = Arc::new(UserSockets::new(2));
        let user = Uuid::new_v4();
        let other = Uuid::new_v4();
        let a = sockets.acquire(user).map_err(|e| e.status);
        let b = sockets.acquire(user).map_err(|e| e.status);
        assert!(a.is_ok() && b.is_ok());
        let refused = sockets.acquire(user).map(|_| ()).map_err(|e| e.status);
        assert_eq!(refused, Err(StatusCode::TOO_MANY_REQUESTS));
        // Another user is not affected.
        assert!(sockets.acquire(other).is_ok());
        drop(a);
        assert_eq!(sockets.open(user), 1);
        assert!(sockets.acquire(user).is_ok());
        drop(b);
        assert_eq!(sockets.open(user), 0);
        assert!(
            sockets.lock().is_empty(),
            "no entry is kept for a user with none open"
        );
    }

    #[test]
    fn zero_refuses_every_socket() {
        let sockets = Arc::new(UserSockets::new(0));
        assert!(sockets.acquire(Uuid::new_v4()).is_err());
    }
}
