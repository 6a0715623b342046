//! The chats API inside your own axum application, behind your own authentication.
//!
//! ```sh
//! cargo run -p server-example --example embed_router
//! # in another terminal: alice creates a chat (the offline demo model answers)
//! curl -s -X POST http://127.0.0.1:3001/ai/api/experimental/chats \
//!   -H 'X-Demo-User: alice' -H 'Content-Type: application/json' \
//!   -d '{"content":[{"type":"text","text":"Please add 2 and 40"}]}'
//! curl -s http://127.0.0.1:3001/ai/api/experimental/chats -H 'X-Demo-User: alice'
//! ```
//!
//! The application owns the users and decides who is calling (here a header names the user;
//! yours would check a session cookie or a JWT). `server_example::chats_router` with
//! `Authentication::Upstream` trusts the `Authenticated` actor the middleware attaches and
//! ignores chatd's own API tokens.

use std::collections::HashMap;
use std::error::Error;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use chatd_core::{Actor, Keyring, Role, SecretKey, StoreOptions};
use server_example::state::{self, ServerOptions};
use server_example::{chats_router, AppState, Authenticated, Authentication};

/// Header this example's authentication reads. Stand-in for a real session check.
const USER_HEADER: &str = "x-demo-user";

/// Your application's sessions: who a request's credential names, as a chatd actor.
#[derive(Clone, Default)]
pub struct Users(Arc<HashMap<String, Actor>>);

/// Your application: its own routes, and the chats API under `/ai/api/experimental`
/// behind your authentication middleware.
pub fn app(state: AppState, users: Users) -> Router {
    let chats = chats_router(state, Authentication::Upstream)
        .layer(middleware::from_fn_with_state(users, authenticate));
    Router::new()
        .route("/", get(|| async { "my application" }))
        .nest("/ai/api/experimental", chats)
}

/// The authentication middleware: a known user gets an `Authenticated` actor, anyone else
/// your application's own 401.
async fn authenticate(State(users): State<Users>, mut request: Request, next: Next) -> Response {
    let actor = request
        .headers()
        .get(USER_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|name| users.0.get(name).copied());
    match actor {
        Some(actor) => {
            request.extensions_mut().insert(Authenticated(actor));
            next.run(request).await
        }
        None => (StatusCode::UNAUTHORIZED, "sign in to my application first").into_response(),
    }
}

/// Creates the application's users in chatd's store (once per user: chats belong to
/// users) and returns the session table.
pub async fn register_users(state: &AppState, names: &[(&str, bool)]) -> chatd_core::Result<Users> {
    let mut users = HashMap::new();
    for (name, admin) in names {
        let role = if *admin { Role::Admin } else { Role::Member };
        // New chats and uploads belong to an organization the user is a member of.
        let user = state
            .admin()
            .provision_user(name, name, role, state.default_organization())
            .await?;
        let actor = user.actor();
        users.insert((*name).to_owned(), actor);
    }
    Ok(Users(Arc::new(users)))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // A fresh database per run, removed on exit; the keyring is generated per run too.
    let database = std::env::temp_dir().join(format!(
        "chatd-embed-example-{}.db",
        codersdk::Uuid::new_v4()
    ));
    let keyring = Arc::new(Keyring::new("k1", SecretKey::generate()?)?);
    let options = ServerOptions::new(
        StoreOptions::new(format!("sqlite://{}", database.display())),
        keyring,
    );
    let state = state::build(options).await?.state;
    let users = register_users(&state, &[("alice", false), ("root", true)]).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    println!(
        "my application on http://127.0.0.1:3001 (chats under /ai/api/experimental; send \
         X-Demo-User: alice); database {}",
        database.display()
    );
    let engine = state.engine().clone();
    axum::serve(listener, app(state, users))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    engine.shutdown().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", database.display()));
    }
    Ok(())
}
