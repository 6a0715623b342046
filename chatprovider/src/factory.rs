//! Picks and builds the streaming client for a resolved provider and model.

use std::sync::Arc;

use codersdk::SecretString;

use crate::anthropic::AnthropicModel;
use crate::bedrock::{AwsEnvironment, BedrockAuth, BedrockModel};
use crate::catalog::Provider;
use crate::error::{Error, ErrorKind};
use crate::gemini::GeminiModel;
use crate::keys::ProviderCredentials;
use crate::language_model::LanguageModel;
use crate::openai_chat::OpenAiChatModel;
use crate::openai_responses::OpenAiResponsesModel;
use crate::options::is_openai_responses_model;
use crate::transport::ClientSettings;

/// Which OpenAI wire API an OpenAI or Azure model is called through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpenAiApi {
    /// `POST /responses`.
    Responses,
    /// `POST /chat/completions`.
    ChatCompletions,
}

impl OpenAiApi {
    /// The API for `model` when the model config does not say: Responses for the models
    /// [`is_openai_responses_model`] lists, Chat Completions otherwise.
    pub fn default_for(model: &str) -> Self {
        if is_openai_responses_model(model) {
            OpenAiApi::Responses
        } else {
            OpenAiApi::ChatCompletions
        }
    }

    /// From a model config's `openai_config.use_responses_api` (see
    /// [`uses_openai_responses_api`](crate::uses_openai_responses_api)).
    pub fn from_config(model: &str, config: Option<&codersdk::ChatModelOpenAIConfig>) -> Self {
        if crate::options::uses_openai_responses_api(Provider::OpenAi, model, config) {
            OpenAiApi::Responses
        } else {
            OpenAiApi::ChatCompletions
        }
    }
}

/// Whether this build has a streaming client for `provider`: the one test of "can this
/// provider be used", which the model catalogue and provider availability
/// ([`ResolvedProviderKeys::reason`](crate::ResolvedProviderKeys::reason)) apply, so a
/// provider is never offered when every turn on it would fail. [`language_model`] refuses
/// exactly the providers this returns `false` for.
///
/// ```
/// use chatprovider::{streams, Provider};
/// assert!(streams(Provider::Google));
/// assert!(streams(Provider::Anthropic));
/// ```
pub fn streams(provider: Provider) -> bool {
    match provider {
        Provider::OpenAi
        | Provider::Azure
        | Provider::Anthropic
        | Provider::OpenAiCompat
        | Provider::OpenRouter
        | Provider::Vercel
        | Provider::Bedrock
        | Provider::Google => true,
        // Any provider a newer codersdk adds.
        _ => false,
    }
}

/// Builds the client for `model_id` with the given credentials.
///
/// | provider | client |
/// |---|---|
/// | `openai`, `azure` | OpenAI Responses, or Chat Completions when `openai_api` says so (default: [`OpenAiApi::default_for`]) |
/// | `anthropic` | Anthropic Messages |
/// | `openai-compat`, `openrouter`, `vercel` | OpenAI Chat Completions at the configured base URL (OpenRouter's included) |
/// | `bedrock` | Anthropic Messages on Bedrock ([`BedrockModel`]): the key as a bearer token, or without one the process's ambient AWS credentials ([`AwsEnvironment::process`], resolved at the first request, never here) |
/// | `google` | Gemini `streamGenerateContent` |
///
/// Credentials come from
/// [`ResolvedProviderKeys::client_credentials`](crate::ResolvedProviderKeys::client_credentials),
/// which already refuses providers without a usable key.
pub fn language_model(
    credentials: &ProviderCredentials<'_>,
    model_id: &str,
    openai_api: Option<OpenAiApi>,
    settings: ClientSettings,
) -> Result<Arc<dyn LanguageModel>, Error> {
    let provider = credentials.provider();
    match provider {
        Provider::OpenAi | Provider::Azure => {
            match openai_api.unwrap_or_else(|| OpenAiApi::default_for(model_id)) {
                OpenAiApi::Responses => Ok(Arc::new(OpenAiResponsesModel::from_credentials(
                    credentials,
                    model_id,
                    settings,
                )?)),
                OpenAiApi::ChatCompletions => Ok(Arc::new(OpenAiChatModel::from_credentials(
                    credentials,
                    model_id,
                    settings,
                )?)),
            }
        }
        Provider::OpenAiCompat | Provider::OpenRouter | Provider::Vercel => Ok(Arc::new(
            OpenAiChatModel::from_credentials(credentials, model_id, settings)?,
        )),
        Provider::Anthropic => {
            let (key, model) = keyed(credentials, model_id)?;
            Ok(Arc::new(AnthropicModel::new(
                model,
                key.expose(),
                credentials.base_url(),
                settings,
            )))
        }
        Provider::Bedrock => {
            if model_id.trim().is_empty() {
                return Err(Error::model_required());
            }
            let auth = match credentials.api_key().filter(|k| !k.trim().is_empty()) {
                Some(token) => BedrockAuth::Bearer(SecretString::from(token.trim())),
                None => {
                    BedrockAuth::Aws(settings.aws.clone().unwrap_or_else(AwsEnvironment::process))
                }
            };
            Ok(Arc::new(BedrockModel::new(
                model_id.trim(),
                auth,
                credentials.base_url(),
                settings,
            )))
        }
        Provider::Google => {
            let (key, model) = keyed(credentials, model_id)?;
            Ok(Arc::new(GeminiModel::new(
                model,
                key.expose(),
                credentials.base_url(),
                settings,
            )))
        }
        // Any provider a newer codersdk adds: exactly those `streams` refuses.
        _ => Err(Error::new(
            ErrorKind::UnsupportedProvider,
            format!(
                "streaming for provider \"{}\" is not available in this version",
                provider.as_str()
            ),
        )
        .with_provider(provider)),
    }
}

/// The key and the trimmed model id of a client that needs both (Anthropic, Google):
/// [`Error::missing_key`] without a key, [`Error::model_required`] without a model.
fn keyed<'a>(
    credentials: &ProviderCredentials<'_>,
    model_id: &'a str,
) -> Result<(SecretString, &'a str), Error> {
    let key = credentials
        .api_key()
        .map(SecretString::from)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Error::missing_key(credentials.provider()))?;
    let model = model_id.trim();
    if model.is_empty() {
        return Err(Error::model_required());
    }
    Ok((key, model))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::keys::ProviderApiKeys;

    fn build(
        provider: &str,
        key: &str,
        model: &str,
        api: Option<OpenAiApi>,
    ) -> Result<Arc<dyn LanguageModel>, Error> {
        let id = Provider::parse(provider).unwrap();
        let keys = ProviderApiKeys::new().with_api_key(id, key)?;
        let creds = keys.client_credentials(provider)?;
        language_model(&creds, model, api, ClientSettings::default())
    }

    #[test]
    fn picks_the_client_by_provider_and_api() {
        let m = build("openai", "sk-test", "gpt-5", None).unwrap();
        assert_eq!((m.provider(), m.model_id()), (Provider::OpenAi, "gpt-5"));
        assert!(format!("{m:?}").contains("OpenAiResponsesModel"));
        let m = build(
            "openai",
            "sk-test",
            "gpt-5",
            Some(OpenAiApi::ChatCompletions),
        )
        .unwrap();
        assert!(format!("{m:?}").contains("OpenAiChatModel"));
        let m = build("anthropic", "sk-ant", "claude-sonnet-4-5", None).unwrap();
        assert!(format!("{m:?}").contains("AnthropicModel"));
        let m = build("openrouter", "or-key", "meta/llama", None).unwrap();
        assert_eq!(m.provider(), Provider::OpenRouter);
        for (provider, model, api) in [
            ("openai", "gpt-5", None),
            ("openai", "gpt-5", Some(OpenAiApi::ChatCompletions)),
            ("anthropic", "claude-sonnet-4-5", None),
        ] {
            let dbg = format!(
                "{:?}",
                build(provider, "sk-secret-1234567", model, api).unwrap()
            );
            assert!(!dbg.contains("sk-secret-1234567"), "{dbg}");
        }
    }

    #[test]
    fn google_and_bedrock_build_their_clients() {
        let m = build("google", "AIza-secret-key-123", "gemini-2.5-flash", None).unwrap();
        assert_eq!(
            (m.provider(), m.model_id()),
            (Provider::Google, "gemini-2.5-flash")
        );
        let dbg = format!("{m:?}");
        assert!(
            dbg.contains("GeminiModel") && !dbg.contains("AIza-secret-key-123"),
            "{dbg}"
        );
        // Every supported provider has a client; bedrock builds with a key (bearer mode).
        let keys = ProviderApiKeys::new()
            .with_api_key(Provider::Bedrock, "b-key")
            .unwrap();
        let creds = keys.client_credentials("bedrock").unwrap();
        let m =
            language_model(&creds, "anthropic.claude", None, ClientSettings::default()).unwrap();
        assert_eq!(m.provider(), Provider::Bedrock);
        for p in crate::SUPPORTED_PROVIDERS {
            assert!(streams(p), "{p:?}");
        }
        assert_eq!(
            OpenAiApi::from_config(
                "gpt-5",
                Some(&codersdk::ChatModelOpenAIConfig {
                    use_responses_api: Some(false)
                })
            ),
            OpenAiApi::ChatCompletions
        );
    }
}
