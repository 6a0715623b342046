//! How the engine gets a model for a turn: the [`ModelResolver`] seam.

use std::fmt;
use std::sync::Arc;

use chaterror::Redactor;
use chatprovider::{CallSettings, LanguageModel, ProviderRequestOptions};
use codersdk::{ChatError, ModelCostConfig, Uuid};

use crate::error::Result;
use crate::tools::Tool;

/// What [`ModelResolver::select`] is asked: the model config a request names, if any, for a
/// chat of `owner_id` in `organization_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModelSelection {
    /// The chat's owner.
    pub owner_id: Uuid,
    /// The chat's organization.
    pub organization_id: Uuid,
    /// The model config the request names; `None` asks for the default.
    pub requested: Option<Uuid>,
}

impl ModelSelection {
    /// A selection for `owner_id` in `organization_id`.
    pub fn new(owner_id: Uuid, organization_id: Uuid, requested: Option<Uuid>) -> Self {
        ModelSelection {
            owner_id,
            organization_id,
            requested,
        }
    }
}

/// What [`ModelResolver::resolve`] is asked at the start of each turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TurnModelRequest {
    /// The chat.
    pub chat_id: Uuid,
    /// The chat's owner (whose own provider keys may apply).
    pub owner_id: Uuid,
    /// The chat's organization.
    pub organization_id: Uuid,
    /// The model config of the newest user message, when it names one.
    pub requested: Option<Uuid>,
    /// The chat's last model config.
    pub last: Uuid,
    /// The reasoning effort the chat asks for (a sub-agent spawned with one); `None`: the
    /// model config's default.
    pub reasoning_effort: Option<chatprovider::ReasoningEffort>,
}

/// A model ready for a turn, with what the engine needs to account for it.
#[derive(Clone)]
#[non_exhaustive]
pub struct ResolvedModel {
    /// The model config the turn runs with (stored on each assistant message).
    pub model_config_id: Uuid,
    /// The client.
    pub model: Arc<dyn LanguageModel>,
    /// Sampling and length settings.
    pub settings: CallSettings,
    /// Provider-specific request options.
    pub provider_options: Option<ProviderRequestOptions>,
    /// Prices. Prices left unset are filled from `chatcost`'s embedded price book by the
    /// engine; `None` and no price-book row means the turn's cost is unknown (NULL).
    pub cost: Option<ModelCostConfig>,
    /// The model's context window in tokens, recorded with each step's usage; `None`:
    /// the embedded price book's value for the model, else
    /// [`FALLBACK_CONTEXT_LIMIT`](crate::FALLBACK_CONTEXT_LIMIT) (context compaction).
    pub context_limit: Option<i64>,
    /// Percent of the context limit at which the chat is summarized (the model config's
    /// `compression_threshold`, 0–100, 100 = never); a user's own threshold for the model
    /// config wins. `None`: [`codersdk::DEFAULT_COMPRESSION_THRESHOLD`].
    pub compression_threshold: Option<i32>,
    /// Whether the provider keeps responses (OpenAI Responses `store = true`): only then is
    /// the provider response id saved.
    pub store_response_id: bool,
    /// Server-side tools that exist only while this model serves the turn (a stand-in
    /// model's demo tools). They rank below every other tool of the turn, the chat's
    /// dynamic tools included ([`TurnToolsBuilder::with_model_tools`](crate::tools::TurnToolsBuilder::with_model_tools)).
    pub tools: Vec<Arc<dyn Tool>>,
    /// The credentials of the turn's requests: the model's own
    /// ([`LanguageModel::redactor`]) plus whatever the resolver adds (the chat's MCP
    /// secrets). Every failure of the turn is redacted with it before it is stored,
    /// published or logged.
    pub redactor: Redactor,
}

impl ResolvedModel {
    /// A resolved model with default settings, no prices and no context limit.
    pub fn new(model_config_id: Uuid, model: Arc<dyn LanguageModel>) -> Self {
        ResolvedModel {
            model_config_id,
            settings: CallSettings::default(),
            provider_options: None,
            cost: None,
            context_limit: None,
            compression_threshold: None,
            store_response_id: false,
            tools: Vec::new(),
            redactor: model.redactor(),
            model,
        }
    }

    /// Adds secrets the turn's failures must never show (beside the model's own).
    pub fn with_secrets<S: AsRef<str>>(mut self, secrets: impl IntoIterator<Item = S>) -> Self {
        self.redactor = self.redactor.with_secrets(secrets);
        self
    }

    /// Sets the tools that come with this model.
    pub fn with_tools(mut self, tools: impl IntoIterator<Item = Arc<dyn Tool>>) -> Self {
        self.tools = tools.into_iter().collect();
        self
    }

    /// Sets the sampling settings.
    pub fn with_settings(mut self, settings: CallSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Sets the prices.
    pub fn with_cost(mut self, cost: Option<ModelCostConfig>) -> Self {
        self.cost = cost;
        self
    }

    /// Sets the context window.
    pub fn with_context_limit(mut self, limit: Option<i64>) -> Self {
        self.context_limit = limit;
        self
    }

    /// Sets the compaction threshold (percent of the context limit).
    pub fn with_compression_threshold(mut self, percent: Option<i32>) -> Self {
        self.compression_threshold = percent;
        self
    }

    /// Sets the provider options.
    pub fn with_provider_options(mut self, options: Option<ProviderRequestOptions>) -> Self {
        self.provider_options = options;
        self
    }

    /// Sets whether the provider response id is kept.
    pub fn with_store_response_id(mut self, store: bool) -> Self {
        self.store_response_id = store;
        self
    }
}

impl fmt::Debug for ResolvedModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedModel")
            .field("model_config_id", &self.model_config_id)
            .field("provider", &self.model.provider())
            .field("model", &self.model.model_id())
            .field("context_limit", &self.context_limit)
            .finish_non_exhaustive()
    }
}

/// Where models come from: the engine asks it which model config a new chat or message
/// uses, and for a ready client at the start of each turn.
///
/// The engine ships [`crate::StoreModelResolver`]-style resolvers built on the store's
/// provider and model configs; tests and embedders can supply their own (a scripted model,
/// a fixed client).
#[async_trait::async_trait]
pub trait ModelResolver: Send + Sync + fmt::Debug + 'static {
    /// The model config id to store for a new chat or message: the requested one when it
    /// exists and may be used, else the default. A requested id that cannot be used is
    /// [`crate::ErrorKind::InvalidArgument`]; no default at all is also
    /// `InvalidArgument` ("no default model config").
    async fn select(&self, selection: ModelSelection) -> Result<Uuid>;

    /// Whether a new chat may start on `model_config_id` (what [`ModelResolver::select`]
    /// chose for `selection`): an error refuses the chat's creation before anything is
    /// stored. For failures a user can only fix outside the chat — the model's provider
    /// has no API key, or wants the user's own and they have none — so a brand-new chat is
    /// not created only to fail its first turn. Messages must name the provider and the
    /// missing key, never a secret. The default accepts every model.
    async fn check_new_chat(&self, selection: ModelSelection, model_config_id: Uuid) -> Result<()> {
        let _ = (selection, model_config_id);
        Ok(())
    }

    /// The model for a turn: the requested model config, else the chat's last one, else the
    /// default. A failure (unknown model, disabled provider, missing key) ends the turn in
    /// `error` with this payload, so it should be a classified `ChatError`.
    async fn resolve(
        &self,
        turn: TurnModelRequest,
    ) -> std::result::Result<ResolvedModel, ChatError>;

    /// The model that writes the chat's titles (the automatic title and the title
    /// propose/regenerate operations), when the deployment chose one for titles (the
    /// `title_generation` model override) and it can be used for the chat's owner. `None`
    /// means "use the chat's own model" ([`ModelResolver::resolve`]), which is also what a
    /// resolver should answer when the title model cannot be built: a title is never worth
    /// failing over. The default has no title model.
    async fn title_model(&self, turn: TurnModelRequest) -> Option<ResolvedModel> {
        let _ = turn;
        None
    }

    /// The model that summarizes a long chat (context compaction), when the deployment
    /// chose one (the `compaction` model override) and it can be used for the chat's owner.
    /// `None` means "the turn's own model", which is also the answer when the compaction
    /// model cannot be built. The stricter of the two models' context limits applies. The
    /// default has no compaction model.
    async fn compaction_model(&self, turn: TurnModelRequest) -> Option<ResolvedModel> {
        let _ = turn;
        None
    }
}
