//! The AI Gateway: `/api/v2/aibridge/{provider}/v1/…`, an authenticated proxy in front of
//! provider instances for agents we did not write (Claude Code, Codex, OpenCode, any
//! OpenAI or Anthropic SDK).
//!
//! A request names a provider instance in its path, authenticates with the caller's chatd
//! token where the provider's SDK puts its key (central mode) or in
//! `X-Coder-AI-Governance-Token` beside the caller's own provider key (BYOK), passes the
//! usage limit, and is forwarded byte for byte; the response comes back byte for byte,
//! chunk by chunk, while `chatprovider::gateway::Observer` decodes a copy for the
//! interception record handed to the [`InterceptionSink`]. Refusals made here (bad token,
//! BYOK off, unknown instance, body too large, usage limit) are written in the provider's
//! own error shape, so the client's SDK reports them like the provider's. See
//! docs/ai-gateway.md.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chatd_core::aibridge::{
    CredentialKind, InstanceType, InterceptionRecord, InterceptionSink, InterceptionStart,
    ProviderInstance, ToolUsage,
};
use chatd_core::TokenCheck;
use chatprovider::gateway::{
    self, AddressPolicy, BodyEnd, ForwardError, GatewayClient, GatewaySettings, Observation,
    ObservedBody, Observer, WireApi,
};
use chatprovider::AwsEnvironment;
use codersdk::{
    AIBridgeProviderInstance, ChatErrorKind, CreateAIBridgeProviderInstanceRequest, SecretString,
    Timestamp, UpdateAIBridgeProviderInstanceRequest, Uuid,
};

use super::{Route, RouteBody, RouteKind};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Json};
use crate::extract::{InstanceName, NoQuery};
use crate::state::AppState;

/// Most bytes of a request body the gateway forwards: Anthropic's own limit for a
/// Messages request (32 MB); a larger body is answered 413 in the provider's shape.
pub const MAX_GATEWAY_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Most bytes of the client name kept from its `User-Agent`.
pub const MAX_CLIENT_NAME_BYTES: usize = 64;

/// Most bytes of a correlation id kept (`X-Coder-AI-Governance-Request-Id`).
pub const MAX_CORRELATION_ID_BYTES: usize = 128;

/// The deployment flag that turns BYOK off, named in the 403 it causes.
pub const ALLOW_BYOK_FLAG: &str = "--ai-gateway-allow-byok";

/// How the gateway is configured (`--ai-gateway-*`, `CHATD_AIBRIDGE_PROVIDER_<N>_*`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GatewayOptions {
    /// Whether callers may bring their own provider key (`--ai-gateway-allow-byok`,
    /// default on).
    pub allow_byok: bool,
    /// The private and reserved ranges upstreams may be in
    /// (`--ai-gateway-allowed-private-cidrs`; empty: none).
    pub allowed_private: AddressPolicy,
    /// Instances besides the default `openai` and `anthropic`.
    pub instances: Vec<ProviderInstance>,
    /// Where central requests to a `bedrock` instance without a key take the AWS
    /// credentials they are signed with (and the region, when the instance sets none): the
    /// process's standard AWS chain by default.
    pub aws: AwsEnvironment,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            allow_byok: true,
            allowed_private: AddressPolicy::new(),
            instances: Vec::new(),
            aws: AwsEnvironment::process(),
        }
    }
}

/// The gateway's shared part of the server state.
pub struct Gateway {
    client: GatewayClient,
    allow_byok: bool,
    instances: Vec<ProviderInstance>,
    aws: AwsEnvironment,
    sink: Option<Arc<dyn InterceptionSink>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("allow_byok", &self.allow_byok)
            .field("instances", &self.instances)
            .field("policy", self.client.policy())
            .field("sink", &self.sink)
            .finish()
    }
}

impl Gateway {
    /// A gateway with these options handing records to `sink` (`None`: no records are
    /// kept).
    pub fn new(
        options: GatewayOptions,
        sink: Option<Arc<dyn InterceptionSink>>,
    ) -> Result<Gateway, chaterror::ProviderError> {
        Ok(Gateway {
            client: GatewayClient::new(GatewaySettings::with_policy(options.allowed_private))?,
            allow_byok: options.allow_byok,
            instances: options.instances,
            aws: options.aws,
            sink,
        })
    }

    /// The instance named `name`: a configured one, else a default one.
    async fn instance(
        &self,
        state: &AppState,
        name: &str,
    ) -> Result<Option<ProviderInstance>, chatd_core::Error> {
        if let Some(i) = self.instances.iter().find(|i| i.name == name) {
            return Ok(Some(i.clone()));
        }
        if let Some(i) = state.admin().aibridge_default_instance(name).await? {
            return Ok(Some(i));
        }
        state.admin().aibridge_stored_instance(name).await
    }

    /// The instances configured by the environment.
    pub fn environment_instances(&self) -> &[ProviderInstance] {
        &self.instances
    }
}

/// The gateway's routes, relative to `/api/v2`: the instances' admin API, then the proxy.
pub fn routes() -> Vec<Route> {
    let raw = RouteBody::Upload {
        limit: MAX_GATEWAY_BODY_BYTES,
    };
    vec![
        Route::get("/aibridge/providers", list_instances),
        Route::json::<CreateAIBridgeProviderInstanceRequest, _, _>(
            Method::POST,
            "/aibridge/providers",
            create_instance,
        ),
        Route::json::<UpdateAIBridgeProviderInstanceRequest, _, _>(
            Method::PATCH,
            "/aibridge/providers/{instance}",
            update_instance,
        ),
        Route::new(
            Method::DELETE,
            "/aibridge/providers/{instance}",
            delete_instance,
        ),
        Route::new(
            Method::POST,
            "/aibridge/{provider}/v1/chat/completions",
            chat_completions,
        )
        .body(raw)
        .kind(RouteKind::Gateway),
        Route::new(Method::POST, "/aibridge/{provider}/v1/responses", responses)
            .body(raw)
            .kind(RouteKind::Gateway),
        Route::new(Method::POST, "/aibridge/{provider}/v1/messages", messages)
            .body(raw)
            .kind(RouteKind::Gateway),
        Route::get("/aibridge/{provider}/v1/models", models).kind(RouteKind::Gateway),
    ]
}

/// The environment's instances, or 404 when the gateway is off.
fn environment(state: &AppState) -> Result<Arc<Gateway>, ApiError> {
    state
        .gateway()
        .ok_or_else(|| ApiError::not_found("The AI Gateway is not enabled on this server."))
}

/// `GET /aibridge/providers` (admin): every instance, keys never shown.
async fn list_instances(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
) -> ApiResult<Json<Vec<AIBridgeProviderInstance>>> {
    let gateway = environment(&state)?;
    Ok(Json(
        state
            .admin()
            .list_aibridge_instances(&caller.actor, gateway.environment_instances())
            .await?,
    ))
}

/// `POST /aibridge/providers` (admin): a stored instance, 201.
async fn create_instance(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
    Json(request): Json<CreateAIBridgeProviderInstanceRequest>,
) -> ApiResult<(StatusCode, Json<AIBridgeProviderInstance>)> {
    let gateway = environment(&state)?;
    let created = state
        .admin()
        .create_aibridge_instance(&caller.actor, gateway.environment_instances(), &request)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `PATCH /aibridge/providers/{instance}` (admin): a stored instance's base URL or key.
async fn update_instance(
    State(state): State<AppState>,
    caller: Caller,
    InstanceName(name): InstanceName,
    _: NoQuery,
    Json(request): Json<UpdateAIBridgeProviderInstanceRequest>,
) -> ApiResult<Json<AIBridgeProviderInstance>> {
    let gateway = environment(&state)?;
    Ok(Json(
        state
            .admin()
            .update_aibridge_instance(
                &caller.actor,
                gateway.environment_instances(),
                &name,
                &request,
            )
            .await?,
    ))
}

/// `DELETE /aibridge/providers/{instance}` (admin): 204.
async fn delete_instance(
    State(state): State<AppState>,
    caller: Caller,
    InstanceName(name): InstanceName,
    _: NoQuery,
) -> ApiResult<StatusCode> {
    let gateway = environment(&state)?;
    state
        .admin()
        .delete_aibridge_instance(&caller.actor, gateway.environment_instances(), &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which error body shape a refusal takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    OpenAi,
    Anthropic,
}

impl Shape {
    fn of(api: WireApi) -> Shape {
        match api {
            WireApi::Messages => Shape::Anthropic,
            _ => Shape::OpenAi,
        }
    }

    fn of_instance(t: InstanceType) -> Shape {
        match t {
            InstanceType::Anthropic | InstanceType::Bedrock => Shape::Anthropic,
            _ => Shape::OpenAi,
        }
    }
}

/// A refusal in the provider's error shape: OpenAI's
/// `{"error":{"message","type","param","code"}}` or Anthropic's
/// `{"type":"error","error":{"type","message"}}`.
#[derive(Debug)]
struct Refusal {
    shape: Shape,
    status: StatusCode,
    message: String,
    /// Stop the client's SDK from retrying (`x-should-retry: false`, which both official
    /// SDKs honour): a usage limit does not lift in a second.
    no_retry: bool,
}

impl Refusal {
    fn new(shape: Shape, status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            shape,
            status,
            message: message.into(),
            no_retry: false,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = self.status.as_u16();
        let body = match self.shape {
            Shape::OpenAi => {
                let (kind, code) = match status {
                    401 => ("invalid_request_error", Some("invalid_api_key")),
                    403 => ("permission_error", None),
                    404 => ("invalid_request_error", Some("not_found")),
                    413 => ("invalid_request_error", Some("request_too_large")),
                    429 => ("insufficient_quota", Some("usage_limit_exceeded")),
                    s if s >= 500 => ("server_error", None),
                    _ => ("invalid_request_error", None),
                };
                serde_json::json!({"error": {
                    "message": self.message, "type": kind, "param": null, "code": code,
                }})
            }
            Shape::Anthropic => {
                let kind = match status {
                    401 => "authentication_error",
                    403 => "permission_error",
                    404 => "not_found_error",
                    413 => "request_too_large",
                    429 => "rate_limit_error",
                    s if s >= 500 => "api_error",
                    _ => "invalid_request_error",
                };
                serde_json::json!({"type": "error", "error": {"type": kind, "message": self.message}})
            }
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.no_retry {
            response
                .headers_mut()
                .insert("x-should-retry", HeaderValue::from_static("false"));
        }
        response
    }
}

async fn chat_completions(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    forward(
        state,
        WireApi::ChatCompletions,
        provider,
        uri,
        headers,
        body,
    )
    .await
}

async fn responses(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    forward(state, WireApi::Responses, provider, uri, headers, body).await
}

async fn messages(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    forward(state, WireApi::Messages, provider, uri, headers, body).await
}

/// Who is calling and how the upstream call is authenticated.
struct Credentials {
    user_id: Uuid,
    kind: CredentialKind,
    upstream: UpstreamAuth,
}

/// How the upstream call is authenticated.
enum UpstreamAuth {
    /// A key in a header: the caller's (BYOK) or the instance's.
    Key {
        key: SecretString,
        header: KeyHeader,
    },
    /// Signed with the server's AWS credentials (a `bedrock` instance without a key).
    Aws,
}

impl Credentials {
    /// The key sent upstream, when one is.
    fn key(&self) -> Option<&str> {
        match &self.upstream {
            UpstreamAuth::Key { key, .. } => Some(key.expose()),
            UpstreamAuth::Aws => None,
        }
    }
}

#[derive(Clone, Copy)]
enum KeyHeader {
    Bearer,
    XApiKey,
}

/// The caller's token and, in BYOK mode, their provider key (with the header it came in).
fn presented(headers: &HeaderMap) -> (Option<&str>, Option<(&str, KeyHeader)>) {
    let governance = gateway::header_text(headers, gateway::GOVERNANCE_TOKEN_HEADER)
        .or_else(|| gateway::header_text(headers, gateway::GOVERNANCE_TOKEN_ALT_HEADER));
    let standard = gateway::header_text(headers, "x-api-key")
        .map(|k| (k, KeyHeader::XApiKey))
        .or_else(|| gateway::bearer_token(headers).map(|k| (k, KeyHeader::Bearer)));
    match governance {
        Some(token) => (Some(token), standard),
        None => (standard.map(|(t, _)| t), None),
    }
}

async fn authenticate(
    state: &AppState,
    gateway: &Gateway,
    shape: Shape,
    instance: &ProviderInstance,
    headers: &HeaderMap,
) -> Result<Credentials, Refusal> {
    let (token, own_key) = presented(headers);
    let Some(token) = token else {
        return Err(Refusal::new(
            shape,
            StatusCode::UNAUTHORIZED,
            "Send your chatd API token as the API key (Authorization: Bearer or x-api-key), \
             or in X-Coder-AI-Governance-Token beside your own provider key.",
        ));
    };
    let user = match state.admin().check_token(token).await {
        Ok(TokenCheck::Valid { user, .. }) => user,
        Ok(TokenCheck::Expired { .. }) => {
            return Err(Refusal::new(
                shape,
                StatusCode::UNAUTHORIZED,
                "Your chatd API token expired.",
            ))
        }
        Ok(TokenCheck::Revoked) => {
            return Err(Refusal::new(
                shape,
                StatusCode::UNAUTHORIZED,
                "Your chatd API token was revoked.",
            ))
        }
        Ok(_) => {
            return Err(Refusal::new(
                shape,
                StatusCode::UNAUTHORIZED,
                "The chatd API token is not valid.",
            ))
        }
        Err(e) => {
            tracing::warn!(error = %e, "AI Gateway token check failed");
            return Err(Refusal::new(
                shape,
                StatusCode::INTERNAL_SERVER_ERROR,
                "The token could not be checked.",
            ));
        }
    };
    match own_key {
        Some((key, header)) => {
            if !gateway.allow_byok {
                return Err(Refusal::new(
                    shape,
                    StatusCode::FORBIDDEN,
                    format!(
                        "Bringing your own provider key is turned off on this deployment; an \
                         administrator can turn it on with {ALLOW_BYOK_FLAG} \
                         (CHATD_AI_GATEWAY_ALLOW_BYOK)."
                    ),
                ));
            }
            Ok(Credentials {
                user_id: user.id,
                kind: CredentialKind::Byok,
                upstream: UpstreamAuth::Key {
                    key: SecretString::from(key),
                    // A Bedrock API key is a bearer token wherever the client put it.
                    header: match instance.instance_type {
                        InstanceType::Bedrock => KeyHeader::Bearer,
                        _ => header,
                    },
                },
            })
        }
        None => {
            if instance.instance_type == InstanceType::Bedrock && instance.api_key.is_none() {
                return Ok(Credentials {
                    user_id: user.id,
                    kind: CredentialKind::Central,
                    upstream: UpstreamAuth::Aws,
                });
            }
            let Some(key) = instance.api_key.clone() else {
                return Err(Refusal::new(
                    shape,
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "The AI Gateway instance {:?} has no central key; bring your own \
                         provider key with your chatd token in X-Coder-AI-Governance-Token.",
                        instance.name
                    ),
                ));
            };
            Ok(Credentials {
                user_id: user.id,
                kind: CredentialKind::Central,
                upstream: UpstreamAuth::Key {
                    key,
                    header: match instance.instance_type {
                        InstanceType::Anthropic => KeyHeader::XApiKey,
                        _ => KeyHeader::Bearer,
                    },
                },
            })
        }
    }
}

/// The instance, refusing unknown names and instances of the other wire format.
async fn find_instance(
    state: &AppState,
    gateway: &Gateway,
    name: &str,
    shape: Shape,
    api: Option<WireApi>,
) -> Result<ProviderInstance, Refusal> {
    let instance = match gateway.instance(state, name).await {
        Ok(Some(i)) => i,
        Ok(None) => {
            return Err(Refusal::new(
                shape,
                StatusCode::NOT_FOUND,
                format!("No AI Gateway provider instance is named {:.64?}.", name),
            ))
        }
        Err(e) => {
            tracing::warn!(error = %e, "AI Gateway instance lookup failed");
            return Err(Refusal::new(
                shape,
                StatusCode::INTERNAL_SERVER_ERROR,
                "The provider instance could not be read.",
            ));
        }
    };
    if let Some(api) = api {
        let speaks = match instance.instance_type {
            InstanceType::Anthropic | InstanceType::Bedrock => api == WireApi::Messages,
            _ => matches!(api, WireApi::ChatCompletions | WireApi::Responses),
        };
        if !speaks {
            return Err(Refusal::new(
                shape,
                StatusCode::NOT_FOUND,
                format!(
                    "The AI Gateway instance {:?} is an {} instance and does not serve this API.",
                    instance.name,
                    instance.instance_type.as_str()
                ),
            ));
        }
    }
    Ok(instance)
}

fn gateway_of(state: &AppState, shape: Shape) -> Result<Arc<Gateway>, Refusal> {
    state.gateway().ok_or_else(|| {
        Refusal::new(
            shape,
            StatusCode::NOT_FOUND,
            "The AI Gateway is not enabled on this server.",
        )
    })
}

/// The upstream URL: the instance's base URL, the API's path, and the client's query
/// (Claude Code sends `?beta=true`) unchanged.
fn upstream_url(base: &str, path: &str, uri: &Uri) -> Result<url::Url, String> {
    let mut raw = format!("{base}{path}");
    if let Some(q) = uri.query() {
        raw.push('?');
        raw.push_str(q);
    }
    url::Url::parse(&raw).map_err(|e| format!("the instance's upstream URL is invalid: {e}"))
}

/// The client's name from its `User-Agent` (`claude-cli/2.0.1 (external, cli)` →
/// `claude-cli`), or Codex's `originator` header.
fn client_name(headers: &HeaderMap) -> Option<String> {
    let name = gateway::header_text(headers, "originator")
        .or_else(|| gateway::header_text(headers, "user-agent"))?
        .split(['/', ' '])
        .next()
        .unwrap_or_default();
    let mut end = name.len().min(MAX_CLIENT_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let name = name.get(..end).unwrap_or_default();
    (!name.is_empty()).then(|| name.to_owned())
}

fn correlation_id(headers: &HeaderMap) -> Option<String> {
    gateway::header_text(headers, gateway::GOVERNANCE_REQUEST_ID_HEADER)
        .filter(|v| v.len() <= MAX_CORRELATION_ID_BYTES)
        .map(str::to_owned)
}

/// The client's headers as sent upstream, with the credential set.
fn upstream_headers(incoming: &HeaderMap, credentials: &Credentials) -> Result<HeaderMap, String> {
    let mut out = gateway::upstream_request_headers(incoming);
    set_key(&mut out, credentials)?;
    Ok(out)
}

/// Puts the credential's key in its header (nothing for AWS-signed calls).
fn set_key(headers: &mut HeaderMap, credentials: &Credentials) -> Result<(), String> {
    let UpstreamAuth::Key { key, header } = &credentials.upstream else {
        return Ok(());
    };
    let secret = key.expose();
    let (name, value) = match header {
        KeyHeader::Bearer => ("authorization", format!("Bearer {secret}")),
        KeyHeader::XApiKey => ("x-api-key", secret.to_owned()),
    };
    let mut value = HeaderValue::from_str(&value)
        .map_err(|_| "the provider key cannot be sent in a header".to_owned())?;
    value.set_sensitive(true);
    headers.insert(name, value);
    Ok(())
}

async fn read_body(body: Body, shape: Shape) -> Result<bytes::Bytes, Refusal> {
    axum::body::to_bytes(body, MAX_GATEWAY_BODY_BYTES)
        .await
        .map_err(|e| {
            if over_limit(&e) {
                Refusal::new(
                    shape,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("The request body exceeds {MAX_GATEWAY_BODY_BYTES} bytes."),
                )
            } else {
                Refusal::new(
                    shape,
                    StatusCode::BAD_REQUEST,
                    "The request body could not be read.",
                )
            }
        })
}

/// Whether a body read failed on the length limit (somewhere in its source chain).
fn over_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut node = Some(e);
    for _ in 0..8 {
        let Some(current) = node else { return false };
        if current.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        node = current.source();
    }
    false
}

async fn forward(
    state: AppState,
    api: WireApi,
    provider: String,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match forward_inner(state, api, provider, uri, headers, body).await {
        Ok(response) => response,
        Err(refusal) => refusal.into_response(),
    }
}

async fn forward_inner(
    state: AppState,
    api: WireApi,
    provider: String,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let started_at = Timestamp::now();
    let shape = Shape::of(api);
    let gateway = gateway_of(&state, shape)?;
    let instance = find_instance(&state, &gateway, &provider, shape, Some(api)).await?;
    let credentials = authenticate(&state, &gateway, shape, &instance, &headers).await?;
    let body = read_body(body, shape).await?;
    let facts = gateway::inspect_request(api, &headers, &body)
        .map_err(|e| Refusal::new(shape, StatusCode::BAD_REQUEST, e.0))?;
    if let Err(e) = state.engine().check_usage_limit(credentials.user_id).await {
        let message = match e.usage_limit_exceeded() {
            Some(f) => format!(
                "{} {} of {} micro-dollars spent in this period; it resets at {}.",
                codersdk::USAGE_LIMIT_EXCEEDED_MESSAGE,
                f.spent_micros,
                f.limit_micros,
                f.resets_at
            ),
            None => e.to_string(),
        };
        let mut refusal = Refusal::new(shape, StatusCode::TOO_MANY_REQUESTS, message);
        refusal.no_retry = true;
        return Err(refusal);
    }
    let mut call = match instance.instance_type {
        InstanceType::Bedrock => bedrock_call(&instance, &headers, &body, &credentials)
            .map_err(|m| Refusal::new(shape, StatusCode::BAD_REQUEST, m))?,
        _ => UpstreamCall {
            url: upstream_url(&instance.base_url, api.upstream_path(), &uri)
                .map_err(|m| Refusal::new(shape, StatusCode::BAD_GATEWAY, m))?,
            headers: upstream_headers(&headers, &credentials)
                .map_err(|m| Refusal::new(shape, StatusCode::BAD_REQUEST, m))?,
            body,
            bedrock: None,
        },
    };
    // The server's AWS credentials, for a `bedrock` instance without a key (cached by the
    // AWS chain; the first call loads it).
    let aws = match credentials.upstream {
        UpstreamAuth::Aws => Some(
            gateway
                .aws
                .resolve_with_region(instance.bedrock.region.as_deref())
                .await,
        ),
        UpstreamAuth::Key { .. } => None,
    };
    let credential_hint = match (&aws, credentials.key()) {
        (Some(Ok((_, aws))), _) => chatprovider::key_hint(aws.access_key_id()),
        (_, Some(key)) => chatprovider::key_hint(key),
        _ => String::new(),
    };
    let start = InterceptionStart {
        id: Uuid::new_v4(),
        user_id: credentials.user_id,
        provider_name: instance.name.clone(),
        provider_type: instance.instance_type.as_str().to_owned(),
        api,
        // Bedrock prices by the model invoked, which the instance may have mapped.
        model: call
            .bedrock
            .as_ref()
            .map_or_else(|| facts.model.clone(), |b| b.model.clone()),
        streamed: facts.stream,
        credential_kind: credentials.kind,
        credential_hint,
        client_session_id: facts.client_session_id.clone(),
        client: client_name(&headers),
        correlation_id: correlation_id(&headers),
        tool_result_call_ids: facts.tool_result_call_ids.clone(),
        prompt: facts.prompt.clone(),
        started_at,
    };
    if let Some(sink) = &gateway.sink {
        sink.started(&start);
    }
    let mut redactor = chaterror::Redactor::new();
    if let Some(key) = credentials.key() {
        redactor.add_secret(key);
    }
    match aws {
        Some(Ok((region, aws))) => {
            for secret in [Some(aws.secret_access_key()), aws.session_token()]
                .into_iter()
                .flatten()
            {
                redactor.add_secret(secret);
            }
            if let Err(e) = sign_for_bedrock(&mut call, &region, &aws) {
                return Err(forward_failed(
                    &gateway,
                    start,
                    shape,
                    ForwardError::Transport(e),
                ));
            }
        }
        Some(Err(e)) => {
            return Err(forward_failed(
                &gateway,
                start,
                shape,
                ForwardError::Transport(redactor.redact_provider_error(e)),
            ))
        }
        None => {}
    }
    let sent = gateway
        .client
        .send(
            reqwest::Method::POST,
            call.url,
            call.headers,
            call.body,
            instance.instance_type.provider(),
        )
        .await;
    let upstream = match sent {
        Ok(upstream) => upstream,
        Err(e) => return Err(forward_failed(&gateway, start, shape, e)),
    };
    let status = upstream.status().as_u16();
    let mut response_headers = gateway::client_response_headers(upstream.headers());
    let sink = gateway.sink.clone();
    let model_from_response = call.bedrock.is_none();
    let on_end = move |observation, end| {
        if let Some(sink) = sink {
            sink.finished(record(
                start,
                Some(status),
                observation,
                end,
                model_from_response,
            ));
        }
    };
    let observed = match &call.bedrock {
        None => {
            let observer = Observer::new(api, status, upstream.headers(), redactor);
            ObservedBody::new(upstream, observer, on_end)
        }
        Some(bedrock) => {
            bedrock_response(
                upstream,
                bedrock.stream,
                &mut response_headers,
                redactor,
                on_end,
            )
            .await
        }
    };
    let mut response = Response::new(Body::from_stream(observed));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    *response.headers_mut() = response_headers;
    Ok(response)
}

/// One call as it goes upstream.
struct UpstreamCall {
    url: url::Url,
    headers: reqwest::header::HeaderMap,
    body: bytes::Bytes,
    /// What a call to a `bedrock` instance invokes.
    bedrock: Option<BedrockCall>,
}

struct BedrockCall {
    /// The Bedrock model invoked.
    model: String,
    /// Whether it is the streaming invocation.
    stream: bool,
}

/// A Messages request to a `bedrock` instance as Bedrock takes it
/// (`chatprovider::gateway::bedrock_invocation`): none of the client's headers are sent,
/// only the content type, what is accepted, and the key (an AWS-signed call is signed
/// later, [`sign_for_bedrock`]).
fn bedrock_call(
    instance: &ProviderInstance,
    headers: &HeaderMap,
    body: &[u8],
    credentials: &Credentials,
) -> Result<UpstreamCall, String> {
    let invocation =
        gateway::bedrock_invocation(body, headers, &instance.bedrock).map_err(|e| e.0)?;
    if !invocation.dropped_betas.is_empty() {
        tracing::debug!(
            instance = %instance.name,
            dropped = ?invocation.dropped_betas,
            "AI Gateway: anthropic-beta flags Bedrock does not accept were left out"
        );
    }
    let url = url::Url::parse(&format!("{}{}", instance.base_url, invocation.path))
        .map_err(|e| format!("the instance's upstream URL is invalid: {e}"))?;
    let mut out = reqwest::header::HeaderMap::new();
    out.insert(
        reqwest::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    out.insert(
        reqwest::header::ACCEPT,
        HeaderValue::from_static(if invocation.stream {
            chatprovider::BEDROCK_EVENT_STREAM_CONTENT_TYPE
        } else {
            "application/json"
        }),
    );
    set_key(&mut out, credentials)?;
    Ok(UpstreamCall {
        url,
        headers: out,
        body: invocation.body,
        bedrock: Some(BedrockCall {
            model: invocation.model,
            stream: invocation.stream,
        }),
    })
}

/// Signs a Bedrock call with AWS Signature Version 4 for `region`.
fn sign_for_bedrock(
    call: &mut UpstreamCall,
    region: &str,
    credentials: &chatprovider::AwsCredentials,
) -> Result<(), chaterror::ProviderError> {
    let signed =
        chatprovider::bedrock_signed_headers(call.url.as_str(), &call.body, credentials, region)?;
    call.headers.extend(signed);
    Ok(())
}

/// Bedrock's answer in Anthropic's terms (see `chatprovider::gateway`'s Bedrock module):
/// an error status's body rewritten in Anthropic's error shape, a stream's event-stream
/// frames turned into server-sent events, a non-streamed message passed as it is; each
/// observed as the Anthropic response it now is.
async fn bedrock_response(
    upstream: reqwest::Response,
    stream: bool,
    response_headers: &mut HeaderMap,
    redactor: chaterror::Redactor,
    on_end: impl FnOnce(Observation, BodyEnd) + Send + 'static,
) -> ObservedBody {
    let status = upstream.status().as_u16();
    let mut seen_headers = upstream.headers().clone();
    if status >= 400 {
        let error_type =
            gateway::header_text(upstream.headers(), "x-amzn-errortype").map(str::to_owned);
        let raw = bounded_body(upstream, chatprovider::MAX_ERROR_BODY_BYTES).await;
        let body = gateway::anthropic_error_body(status, &raw, error_type.as_deref());
        set_content_type(response_headers, "application/json");
        set_content_type(&mut seen_headers, "application/json");
        let observer = Observer::new(WireApi::Messages, status, &seen_headers, redactor);
        let len = u64::try_from(body.len()).ok();
        return ObservedBody::from_stream(
            futures_util::stream::once(async move { Ok(body) }),
            len,
            observer,
            on_end,
        );
    }
    if !stream {
        let observer = Observer::new(WireApi::Messages, status, &seen_headers, redactor);
        return ObservedBody::new(upstream, observer, on_end);
    }
    set_content_type(response_headers, "text/event-stream; charset=utf-8");
    set_content_type(&mut seen_headers, "text/event-stream");
    let observer = Observer::new(WireApi::Messages, status, &seen_headers, redactor);
    let events = gateway::event_stream_to_sse(Box::pin(upstream.bytes_stream()));
    ObservedBody::from_stream(events, None, observer, on_end)
}

/// Replaces the content type and drops the length (the body was rewritten).
fn set_content_type(headers: &mut HeaderMap, value: &'static str) {
    headers.remove(axum::http::header::CONTENT_LENGTH);
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(value),
    );
}

/// At most `limit` bytes of a body (an error's: small, and only read for its message); a
/// read failure keeps what arrived.
async fn bounded_body(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        if out.len() >= limit {
            break;
        }
    }
    out
}

/// The refusal of a request that could not be forwarded, after its record went to the
/// sink.
fn forward_failed(
    gateway: &Gateway,
    start: InterceptionStart,
    shape: Shape,
    e: ForwardError,
) -> Refusal {
    let (kind, status, message) = match &e {
        ForwardError::Refused(r) => (
            ChatErrorKind::Config,
            StatusCode::BAD_GATEWAY,
            r.to_string(),
        ),
        ForwardError::Transport(p) => {
            let c = chaterror::classify(p);
            let status = if c.kind() == Some(&ChatErrorKind::Timeout) {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::BAD_GATEWAY
            };
            (
                c.kind().cloned().unwrap_or(ChatErrorKind::Generic),
                status,
                p.message().to_owned(),
            )
        }
        _ => (
            ChatErrorKind::Generic,
            StatusCode::BAD_GATEWAY,
            e.to_string(),
        ),
    };
    tracing::warn!(
        interception_id = %start.id,
        provider = %start.provider_name,
        error = %message,
        "AI Gateway upstream unreachable"
    );
    if let Some(sink) = &gateway.sink {
        let mut observation = Observation::default();
        observation.error = Some(gateway::ObservedError {
            kind: kind.clone(),
            message: message.clone(),
        });
        sink.finished(record(
            start,
            None,
            observation,
            BodyEnd::UpstreamFailed,
            false,
        ));
    }
    Refusal::new(shape, status, message)
}

/// The complete record of one call.
///
/// The model is the one the response names, else the request's; with
/// `model_from_response` false (Bedrock: the model invoked is the one priced), always the
/// request's.
fn record(
    start: InterceptionStart,
    upstream_status: Option<u16>,
    observation: Observation,
    end: BodyEnd,
    model_from_response: bool,
) -> InterceptionRecord {
    let (error_kind, error_message) = match (observation.error, end) {
        (Some(e), _) => (Some(e.kind), Some(e.message)),
        (None, BodyEnd::UpstreamFailed) => (
            Some(ChatErrorKind::Timeout),
            Some("the upstream's response body failed before its end".to_owned()),
        ),
        (None, _) if observation.observation_truncated => (
            None,
            Some(format!(
                "the response exceeded {} bytes and was not read for usage",
                gateway::MAX_OBSERVED_JSON_BYTES
            )),
        ),
        (None, _) => (None, None),
    };
    InterceptionRecord {
        model: observation
            .model
            .filter(|_| model_from_response)
            .unwrap_or_else(|| start.model.clone()),
        ended_at: Timestamp::now(),
        upstream_status,
        error_kind,
        error_message,
        client_disconnected: end == BodyEnd::ClientGone,
        usage: observation.usage,
        tool_calls: observation
            .tool_calls
            .into_iter()
            .map(|c| ToolUsage {
                call_id: c.id,
                name: c.name,
                argument_bytes: c.argument_bytes,
            })
            .collect(),
        thoughts: observation.thoughts,
        start,
    }
}

/// `GET /aibridge/{provider}/v1/models`: the instance's model list, forwarded like the
/// calls (same authentication and key), without a record: it is not a model call.
async fn models(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let result = async {
        // The shape is unknown until the instance is: OpenAI's for an unknown name.
        let gateway = gateway_of(&state, Shape::OpenAi)?;
        let instance = find_instance(&state, &gateway, &provider, Shape::OpenAi, None).await?;
        let shape = Shape::of_instance(instance.instance_type);
        let credentials = authenticate(&state, &gateway, shape, &instance, &headers).await?;
        if instance.instance_type == InstanceType::Bedrock {
            return Ok(bedrock_models(&instance));
        }
        let url = upstream_url(
            &instance.base_url,
            gateway::models_path(instance.instance_type.provider()),
            &uri,
        )
        .map_err(|m| Refusal::new(shape, StatusCode::BAD_GATEWAY, m))?;
        let upstream_headers = upstream_headers(&headers, &credentials)
            .map_err(|m| Refusal::new(shape, StatusCode::BAD_REQUEST, m))?;
        let upstream = gateway
            .client
            .send(
                reqwest::Method::GET,
                url,
                upstream_headers,
                bytes::Bytes::new(),
                instance.instance_type.provider(),
            )
            .await
            .map_err(|e| Refusal::new(shape, StatusCode::BAD_GATEWAY, e.to_string()))?;
        let status =
            StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let response_headers = gateway::client_response_headers(upstream.headers());
        let mut response = Response::new(Body::from_stream(upstream.bytes_stream()));
        *response.status_mut() = status;
        *response.headers_mut() = response_headers;
        Ok::<Response, Refusal>(response)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// A `bedrock` instance's model list, in Anthropic's shape: the models it maps to (Bedrock's
/// runtime has no listing of its own; without a mapping the list is empty, and any model id
/// the caller's AWS account may invoke is accepted).
fn bedrock_models(instance: &ProviderInstance) -> Response {
    let models = instance.bedrock.configured_models();
    let data: Vec<serde_json::Value> = models
        .iter()
        .map(|id| serde_json::json!({"type": "model", "id": id, "display_name": id}))
        .collect();
    axum::Json(serde_json::json!({
        "data": data,
        "has_more": false,
        "first_id": models.first(),
        "last_id": models.last(),
    }))
    .into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn central_and_byok_credentials_are_told_apart() {
        // Central: the chatd token where the SDK puts its key.
        let h = headers(&[("authorization", "Bearer chatd_tok")]);
        let (token, own) = presented(&h);
        assert_eq!(token, Some("chatd_tok"));
        assert!(own.is_none());
        let h = headers(&[("x-api-key", "chatd_tok")]);
        assert_eq!(presented(&h).0, Some("chatd_tok"));
        // BYOK: the governance header carries the token, the standard header the key.
        let h = headers(&[
            ("x-api-key", "sk-ant-mine"),
            ("x-coder-ai-governance-token", "chatd_tok"),
        ]);
        let (token, own) = presented(&h);
        assert_eq!(token, Some("chatd_tok"));
        assert!(matches!(own, Some(("sk-ant-mine", KeyHeader::XApiKey))));
        let h = headers(&[
            ("authorization", "Bearer sk-mine"),
            ("x-ai-gov-token", "chatd_tok"),
        ]);
        let (token, own) = presented(&h);
        assert_eq!(token, Some("chatd_tok"));
        assert!(matches!(own, Some(("sk-mine", KeyHeader::Bearer))));
        // The governance header alone is central mode with the token there.
        let h = headers(&[("x-coder-ai-governance-token", "chatd_tok")]);
        let (token, own) = presented(&h);
        assert_eq!(token, Some("chatd_tok"));
        assert!(own.is_none());
        assert_eq!(presented(&HeaderMap::new()).0, None);
    }

    #[test]
    fn refusals_take_the_providers_shapes() {
        let openai = Refusal::new(Shape::OpenAi, StatusCode::UNAUTHORIZED, "no").into_response();
        assert_eq!(openai.status(), 401);
        let anthropic =
            Refusal::new(Shape::Anthropic, StatusCode::FORBIDDEN, "off").into_response();
        assert_eq!(anthropic.status(), 403);
        let mut limited = Refusal::new(Shape::Anthropic, StatusCode::TOO_MANY_REQUESTS, "x");
        limited.no_retry = true;
        let limited = limited.into_response();
        assert_eq!(limited.headers()["x-should-retry"], "false");
    }

    #[test]
    fn client_names_and_correlation_ids_are_bounded() {
        let h = headers(&[("user-agent", "claude-cli/2.0.14 (external, cli)")]);
        assert_eq!(client_name(&h).as_deref(), Some("claude-cli"));
        let h = headers(&[("user-agent", "x"), ("originator", "codex_cli_rs")]);
        assert_eq!(client_name(&h).as_deref(), Some("codex_cli_rs"));
        let long = "a".repeat(MAX_CLIENT_NAME_BYTES + 10);
        let h = headers(&[("user-agent", &long)]);
        assert_eq!(client_name(&h).unwrap().len(), MAX_CLIENT_NAME_BYTES);
        let at = "r".repeat(MAX_CORRELATION_ID_BYTES);
        let h = headers(&[(gateway::GOVERNANCE_REQUEST_ID_HEADER, &at)]);
        assert_eq!(correlation_id(&h).as_deref(), Some(at.as_str()));
        let over = format!("{at}r");
        let h = headers(&[(gateway::GOVERNANCE_REQUEST_ID_HEADER, &over)]);
        assert_eq!(correlation_id(&h), None);
    }

    #[tokio::test]
    async fn error_bodies_are_read_up_to_the_limit() {
        let response = |len: usize| {
            let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
                Ok(bytes::Bytes::from(vec![b'a'; len / 2])),
                Ok(bytes::Bytes::from(vec![b'b'; len - len / 2])),
            ];
            reqwest::Response::from(
                axum::http::Response::builder()
                    .status(429)
                    .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                        chunks,
                    )))
                    .unwrap(),
            )
        };
        let limit = chatprovider::MAX_ERROR_BODY_BYTES;
        assert_eq!(
            bounded_body(response(limit - 1), limit).await.len(),
            limit - 1
        );
        assert_eq!(bounded_body(response(limit), limit).await.len(), limit);
        let over = bounded_body(response(limit + 10), limit).await;
        assert_eq!(over.len(), limit);
        assert!(over.starts_with(b"aaa") && over.ends_with(b"bbb"));
    }

    #[test]
    fn upstream_urls_keep_the_query() {
        let uri: Uri = "/api/v2/aibridge/anthropic/v1/messages?beta=true"
            .parse()
            .unwrap();
        let url = upstream_url("https://api.anthropic.com", "/v1/messages", &uri).unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.anthropic.com/v1/messages?beta=true"
        );
        let uri: Uri = "/x".parse().unwrap();
        let url = upstream_url("https://api.openai.com/v1", "/responses", &uri).unwrap();
        assert_eq!(url.as_str(), "https://api.openai.com/v1/responses");
    }
}
