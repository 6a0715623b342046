//! The HTTP routes, one module per group, and the one route table they form.
//!
//! Each group lists its routes as [`Route`]s: path, method, what the request body is, and
//! the handler. [`table`] is every route of the reference server; [`experimental`] and
//! [`v2`] build the routers from the same lists, so whatever the table says is exactly
//! what is served. axum cannot enumerate a router's routes, and the bad-input suite
//! (`tests/bad_inputs.rs`) walks this table instead: a route added to a group is
//! covered automatically.

pub mod aibridge;
pub mod chats;
pub mod config;
pub mod costs;
pub mod debug;
pub mod files;
pub mod groups;
pub mod interceptions;
pub mod mcp;
pub mod streams;
pub mod unsupported;
pub mod usage_limits;
pub mod users;

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

use crate::state::AppState;

/// Prefix of the chats API routes.
pub const EXPERIMENTAL_PREFIX: &str = "/api/experimental";

/// Prefix of Coder's user and token routes.
pub const V2_PREFIX: &str = "/api/v2";

/// What a route reads from the request body.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum RouteBody {
    /// Nothing; a body sent is not read.
    None,
    /// A JSON object (anything else is 400) of at most `limit` bytes, described by
    /// `schema`.
    Json {
        /// The JSON Schema of the body type.
        schema: fn() -> schemars::Schema,
        /// Most bytes read (413 beyond).
        limit: usize,
    },
    /// Raw bytes (a file upload) of at most `limit` bytes.
    Upload {
        /// Most bytes read (413 beyond).
        limit: usize,
    },
}

impl std::fmt::Debug for RouteBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteBody::None => f.write_str("None"),
            RouteBody::Json { limit, .. } => write!(f, "Json {{ limit: {limit} }}"),
            RouteBody::Upload { limit } => write!(f, "Upload {{ limit: {limit} }}"),
        }
    }
}

/// How a route answers, beyond its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteKind {
    /// An API route: authenticated, strict query, JSON answers.
    Api,
    /// A WebSocket upgrade: the session token may come in the query
    /// ([`crate::auth::QueryTokenAllowed`]).
    WebSocket,
    /// A file download: the session token may come in the query.
    Download,
    /// A page a browser navigates to by itself (the MCP OAuth2 connect link and callback):
    /// the session token may come in the `coder_session_token` cookie
    /// ([`crate::auth::CookieTokenAllowed`]); answers are redirects, a small HTML page, or
    /// JSON errors.
    Browser,
    /// A Coder-platform feature this server does not build: 501 to authenticated callers.
    Unsupported,
    /// Outside the API (`/healthz`, `/metrics`, the chat page and its assets):
    /// unauthenticated, plain text or the page.
    Public,
    /// An AI Gateway proxy route (`/api/v2/aibridge/…`): authenticated by the chatd token
    /// where a provider SDK puts its key, any query passed upstream, refusals in the
    /// provider's error shape rather than a `Response` (docs/ai-gateway.md).
    Gateway,
}

/// One route: method, path and handler, with what the bad-input suite needs to know.
pub struct Route {
    /// The method.
    pub method: Method,
    /// The path with `{param}` placeholders, including its prefix (`/api/experimental`,
    /// `/api/v2`) once it is in [`table`]; relative to the prefix inside a group.
    pub path: String,
    /// The request body.
    pub body: RouteBody,
    /// How the route answers.
    pub kind: RouteKind,
    handler: MethodRouter<AppState>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("body", &self.body)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

fn filter(method: &Method) -> MethodFilter {
    match *method {
        Method::POST => MethodFilter::POST,
        Method::PUT => MethodFilter::PUT,
        Method::PATCH => MethodFilter::PATCH,
        Method::DELETE => MethodFilter::DELETE,
        _ => MethodFilter::GET,
    }
}

/// The JSON Schema of `T`, for [`RouteBody::Json`].
pub fn schema_of<T: schemars::JsonSchema>() -> schemars::Schema {
    schemars::schema_for!(T)
}

impl Route {
    /// A route with no body.
    pub fn new<H, T>(method: Method, path: &str, handler: H) -> Route
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Route {
            handler: on(filter(&method), handler),
            method,
            path: path.to_owned(),
            body: RouteBody::None,
            kind: RouteKind::Api,
        }
    }

    /// A route whose body is a JSON object of type `B`, at most
    /// [`MAX_BODY_BYTES`](crate::MAX_BODY_BYTES) unless [`Route::limit`] says otherwise.
    pub fn json<B, H, T>(method: Method, path: &str, handler: H) -> Route
    where
        B: schemars::JsonSchema,
        H: Handler<T, AppState>,
        T: 'static,
    {
        Route {
            body: RouteBody::Json {
                schema: schema_of::<B>,
                limit: crate::MAX_BODY_BYTES,
            },
            ..Route::new(method, path, handler)
        }
    }

    /// A `GET` route with no body.
    pub fn get<H, T>(path: &str, handler: H) -> Route
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Route::new(Method::GET, path, handler)
    }

    /// Sets the kind.
    pub fn kind(mut self, kind: RouteKind) -> Route {
        self.kind = kind;
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: RouteBody) -> Route {
        self.body = body;
        self
    }

    /// Sets the body limit of a JSON or upload route.
    pub fn limit(mut self, bytes: usize) -> Route {
        match &mut self.body {
            RouteBody::Json { limit, .. } | RouteBody::Upload { limit } => *limit = bytes,
            RouteBody::None => {}
        }
        self
    }

    /// The route's parameter names, in path order (`["chat", "message"]`).
    pub fn params(&self) -> Vec<&str> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect()
    }

    /// The handler, with the body limit applied, on WebSocket and download routes the mark
    /// that lets the session token come in the query, and on browser pages the mark that
    /// lets it come in the cookie.
    fn into_method_router(self) -> (String, MethodRouter<AppState>) {
        let handler = match self.body {
            RouteBody::Json { limit, .. } | RouteBody::Upload { limit } => {
                self.handler.layer(DefaultBodyLimit::max(limit))
            }
            RouteBody::None => self.handler,
        };
        let handler = match self.kind {
            RouteKind::WebSocket | RouteKind::Download => {
                handler.layer(axum::Extension(crate::auth::QueryTokenAllowed))
            }
            RouteKind::Browser => handler.layer(axum::Extension(crate::auth::CookieTokenAllowed)),
            _ => handler,
        };
        (self.path, handler)
    }
}

/// A router serving `routes` (axum merges the methods of one path), with JSON 405s.
pub fn build(routes: Vec<Route>) -> Router<AppState> {
    routes
        .into_iter()
        .fold(Router::new(), |router, route| {
            let (path, handler) = route.into_method_router();
            router.route(&path, handler)
        })
        .method_not_allowed_fallback(unsupported::method_not_allowed)
}

/// The routes under [`EXPERIMENTAL_PREFIX`], relative to it.
pub fn experimental_routes() -> Vec<Route> {
    let mut routes = chats::routes();
    routes.extend(streams::routes());
    routes.extend(files::routes());
    routes.extend(config::routes());
    routes.extend(usage_limits::routes());
    routes.extend(costs::routes());
    routes.extend(debug::routes());
    routes.extend(mcp::routes());
    routes.extend(unsupported::routes());
    routes
}

/// The routes under [`V2_PREFIX`], relative to it.
pub fn v2_routes() -> Vec<Route> {
    let mut routes = users::routes();
    routes.extend(groups::routes());
    routes.extend(aibridge::routes());
    routes.extend(interceptions::routes());
    routes
}

/// Routes under `/api/experimental`.
pub fn experimental() -> Router<AppState> {
    build(experimental_routes())
}

/// Routes under `/api/v2` (Coder's user and token routes).
pub fn v2() -> Router<AppState> {
    build(v2_routes())
}

/// Every route of the reference server ([`crate::router`]), with full paths: `/healthz`,
/// `/metrics`, the chat page ([`crate::web::routes`]: `/`, its page paths, `/assets/…`),
/// then the `/api/experimental` and `/api/v2` routes.
pub fn table() -> Vec<Route> {
    let mut all = vec![
        Route::get("/healthz", crate::healthz).kind(RouteKind::Public),
        Route::get("/metrics", crate::metrics::serve).kind(RouteKind::Public),
    ];
    all.extend(crate::web::routes());
    for (prefix, routes) in [
        (EXPERIMENTAL_PREFIX, experimental_routes()),
        (V2_PREFIX, v2_routes()),
    ] {
        all.extend(routes.into_iter().map(|mut r| {
            r.path = format!("{prefix}{}", r.path);
            r
        }));
    }
    all
}
