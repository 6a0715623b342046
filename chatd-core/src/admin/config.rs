//! Providers, model configs, users' own keys, prompts, model overrides and the retention
//! settings.

use codersdk::{
    ChatAutoArchiveDaysResponse, ChatModelConfig, ChatModelOverrideContext,
    ChatModelOverrideResponse, ChatPlanModeInstructionsResponse, ChatProviderConfig,
    ChatRetentionDaysResponse, ChatSystemPromptResponse, CreateChatModelConfigRequest,
    CreateChatProviderConfigRequest, CreateUserChatProviderKeyRequest,
    UpdateChatModelConfigRequest, UpdateChatModelOverrideRequest,
    UpdateChatPlanModeInstructionsRequest, UpdateChatProviderConfigRequest,
    UpdateChatSystemPromptRequest, UpdateUserChatCompactionThresholdRequest,
    UserChatCompactionThreshold, UserChatCompactionThresholds, UserChatCustomPrompt,
    UserChatProviderConfig, Uuid,
};

use super::{invalid, require_admin, Admin};
use crate::engine::Actor;
use crate::error::Result;
use crate::store::{
    provider_config_listing, DeletedModelConfig, DeletedProviderConfig, ModelConfigFilter,
};

use crate::cluster::ConfigChange;

impl Admin {
    // -----------------------------------------------------------------------------------
    // Providers (administrators)
    // -----------------------------------------------------------------------------------

    /// The listing of `GET /chats/providers`: one entry per supported provider (its stored
    /// config, an environment preset, or a `supported` placeholder), then stored configs of
    /// providers this version does not know. Keys are never returned, only `has_api_key`.
    pub async fn list_providers(&self, actor: &Actor) -> Result<Vec<ChatProviderConfig>> {
        require_admin(actor)?;
        let stored = self.store().list_provider_configs().await?;
        Ok(provider_config_listing(&stored, self.deployment_keys()))
    }

    /// Creates a provider config (`chatprovider::validate_create_provider_request`, with
    /// the deployment keys for the "central key from the environment" waiver); its central
    /// key is sealed with the handle's keyring. [`ErrorKind::Conflict`](crate::ErrorKind::Conflict)
    /// when the provider already has one.
    pub async fn create_provider(
        &self,
        actor: &Actor,
        request: &CreateChatProviderConfigRequest,
    ) -> Result<ChatProviderConfig> {
        require_admin(actor)?;
        let valid = chatprovider::validate_create_provider_request(request, self.deployment_keys())
            .map_err(invalid)?;
        let result = self
            .store()
            .create_provider_config(&valid, self.keyring())
            .await;
        self.announced(result, ConfigChange::Providers)
    }

    /// Applies `PATCH /chats/providers/{id}`, validated under the row lock against the row
    /// as it is (see [`Store::update_provider_config`](crate::store::Store::update_provider_config)).
    pub async fn update_provider(
        &self,
        actor: &Actor,
        id: Uuid,
        request: &UpdateChatProviderConfigRequest,
    ) -> Result<ChatProviderConfig> {
        require_admin(actor)?;
        let result = self
            .store()
            .update_provider_config(id, request, self.deployment_keys(), self.keyring())
            .await;
        self.announced(result, ConfigChange::Providers)
    }

    /// Deletes a provider config with its model configs and users' keys for it.
    pub async fn delete_provider(&self, actor: &Actor, id: Uuid) -> Result<DeletedProviderConfig> {
        require_admin(actor)?;
        let result = self.store().delete_provider_config(id).await;
        self.announced(result, ConfigChange::Providers)
    }

    // -----------------------------------------------------------------------------------
    // Model configs (read: everyone, enabled only for members; write: administrators)
    // -----------------------------------------------------------------------------------

    /// The model configs `actor` may see: every live one for administrators, the enabled
    /// ones of enabled providers for everyone else.
    pub async fn list_model_configs(&self, actor: &Actor) -> Result<Vec<ChatModelConfig>> {
        let filter = if actor.admin {
            ModelConfigFilter::All
        } else {
            ModelConfigFilter::Enabled
        };
        self.store().list_model_configs(filter).await
    }

    /// Creates a model config (`codersdk::validate_create_model_config`).
    pub async fn create_model_config(
        &self,
        actor: &Actor,
        request: &CreateChatModelConfigRequest,
    ) -> Result<ChatModelConfig> {
        require_admin(actor)?;
        let valid = codersdk::validate_create_model_config(request).map_err(invalid)?;
        let created = self
            .store()
            .create_model_config(&valid, self.deployment_keys())
            .await?;
        let id = created.id;
        self.announced(Ok(created), ConfigChange::ModelConfig { id })
    }

    /// Applies `PATCH /chats/model-configs/{id}`.
    pub async fn update_model_config(
        &self,
        actor: &Actor,
        id: Uuid,
        request: &UpdateChatModelConfigRequest,
    ) -> Result<ChatModelConfig> {
        require_admin(actor)?;
        let result = self
            .store()
            .update_model_config(id, request, self.deployment_keys())
            .await;
        self.announced(result, ConfigChange::ModelConfig { id })
    }

    /// Deletes a model config (another becomes the default when it was the default).
    pub async fn delete_model_config(&self, actor: &Actor, id: Uuid) -> Result<DeletedModelConfig> {
        require_admin(actor)?;
        let result = self.store().delete_model_config(id).await;
        self.announced(result, ConfigChange::ModelConfig { id })
    }

    // -----------------------------------------------------------------------------------
    // Users' own keys (BYOK): every user, for themself
    // -----------------------------------------------------------------------------------

    /// The providers `actor` may bring a key for, with whether they have one.
    pub async fn list_user_provider_configs(
        &self,
        actor: &Actor,
    ) -> Result<Vec<UserChatProviderConfig>> {
        self.store()
            .list_user_provider_configs(actor.user_id, self.deployment_keys())
            .await
    }

    /// Stores (or replaces) `actor`'s own key for a provider config, sealed with the
    /// handle's keyring; the provider and key are validated under the provider's row lock.
    pub async fn set_user_provider_key(
        &self,
        actor: &Actor,
        provider_config_id: Uuid,
        request: &CreateUserChatProviderKeyRequest,
    ) -> Result<UserChatProviderConfig> {
        let result = self
            .store()
            .set_user_provider_key(
                actor.user_id,
                provider_config_id,
                &request.api_key,
                self.keyring(),
                self.deployment_keys(),
            )
            .await;
        self.announced(
            result,
            ConfigChange::UserProviderKeys {
                user_id: actor.user_id,
            },
        )
    }

    /// Erases `actor`'s own key for a provider config; returns whether there was one. An
    /// unknown provider config is [`ErrorKind::NotFound`](crate::ErrorKind::NotFound);
    /// erasing a key that is not there is a success (the caller's goal, "no key of mine is
    /// stored", holds).
    pub async fn delete_user_provider_key(
        &self,
        actor: &Actor,
        provider_config_id: Uuid,
    ) -> Result<bool> {
        self.store().get_provider_config(provider_config_id).await?;
        let result = self
            .store()
            .delete_user_provider_key(actor.user_id, provider_config_id)
            .await;
        self.announced(
            result,
            ConfigChange::UserProviderKeys {
                user_id: actor.user_id,
            },
        )
    }

    // -----------------------------------------------------------------------------------
    // Prompts
    // -----------------------------------------------------------------------------------

    /// The deployment's system prompt settings with the built-in default prompt
    /// (administrators).
    pub async fn system_prompt(&self, actor: &Actor) -> Result<ChatSystemPromptResponse> {
        require_admin(actor)?;
        let config = self.store().system_prompt_config().await?;
        Ok(ChatSystemPromptResponse {
            system_prompt: config.system_prompt,
            include_default_system_prompt: config.include_default_system_prompt,
            default_system_prompt: crate::prompt::DEFAULT_SYSTEM_PROMPT.to_owned(),
        })
    }

    /// Sets the deployment's custom prompt (`codersdk::validate_deployment_system_prompt`)
    /// and, when given, whether the default prompt precedes it (administrators).
    pub async fn set_system_prompt(
        &self,
        actor: &Actor,
        request: &UpdateChatSystemPromptRequest,
    ) -> Result<()> {
        require_admin(actor)?;
        let result = self
            .store()
            .set_system_prompt_config(
                &request.system_prompt,
                request.include_default_system_prompt,
            )
            .await
            .map(|_| ());
        self.announced(result, ConfigChange::Deployment)
    }

    /// The deployment's plan-mode instructions, which root chats' plan turns get after the
    /// plan overlay. Any user may read them (they shape the user's own chats); empty when
    /// none.
    pub async fn plan_mode_instructions(
        &self,
        _actor: &Actor,
    ) -> Result<ChatPlanModeInstructionsResponse> {
        Ok(ChatPlanModeInstructionsResponse {
            plan_mode_instructions: self.store().plan_mode_instructions().await?,
        })
    }

    /// Sets the deployment's plan-mode instructions
    /// (`codersdk::validate_plan_mode_instructions`; empty clears them) (administrators).
    pub async fn set_plan_mode_instructions(
        &self,
        actor: &Actor,
        request: &UpdateChatPlanModeInstructionsRequest,
    ) -> Result<()> {
        require_admin(actor)?;
        let result = self
            .store()
            .set_plan_mode_instructions(&request.plan_mode_instructions)
            .await
            .map(|_| ());
        self.announced(result, ConfigChange::Deployment)
    }

    /// `actor`'s personal prompt; empty when none.
    pub async fn user_prompt(&self, actor: &Actor) -> Result<UserChatCustomPrompt> {
        Ok(UserChatCustomPrompt {
            custom_prompt: self.store().user_prompt(actor.user_id).await?,
        })
    }

    /// Sets `actor`'s personal prompt ([`validate_user_prompt`](crate::store::validate_user_prompt));
    /// blank removes it. Returns the prompt as stored.
    pub async fn set_user_prompt(
        &self,
        actor: &Actor,
        request: &UserChatCustomPrompt,
    ) -> Result<UserChatCustomPrompt> {
        let result = self
            .store()
            .set_user_prompt(actor.user_id, &request.custom_prompt)
            .await
            .map(|custom_prompt| UserChatCustomPrompt { custom_prompt });
        self.announced(
            result,
            ConfigChange::UserPrompt {
                user_id: actor.user_id,
            },
        )
    }

    /// `actor`'s own compaction thresholds, per model config.
    pub async fn user_compaction_thresholds(
        &self,
        actor: &Actor,
    ) -> Result<UserChatCompactionThresholds> {
        Ok(UserChatCompactionThresholds {
            thresholds: self
                .store()
                .user_compaction_thresholds(actor.user_id)
                .await?,
        })
    }

    /// Sets `actor`'s own compaction threshold for `model_config_id` (0–100, 100 turns
    /// automatic compaction off for their chats on that model). 400 out of range, 404 for a
    /// model config that does not exist.
    pub async fn set_user_compaction_threshold(
        &self,
        actor: &Actor,
        model_config_id: Uuid,
        request: &UpdateUserChatCompactionThresholdRequest,
    ) -> Result<UserChatCompactionThreshold> {
        let result = self
            .store()
            .set_user_compaction_threshold(
                actor.user_id,
                model_config_id,
                request.threshold_percent,
            )
            .await;
        self.announced(
            result,
            ConfigChange::UserCompactionThresholds {
                user_id: actor.user_id,
            },
        )
    }

    /// Removes `actor`'s own threshold for `model_config_id` (the model config's applies
    /// again); removing one that is not set succeeds too.
    pub async fn delete_user_compaction_threshold(
        &self,
        actor: &Actor,
        model_config_id: Uuid,
    ) -> Result<()> {
        let result = self
            .store()
            .delete_user_compaction_threshold(actor.user_id, model_config_id)
            .await
            .map(|_| ());
        self.announced(
            result,
            ConfigChange::UserCompactionThresholds {
                user_id: actor.user_id,
            },
        )
    }

    // -----------------------------------------------------------------------------------
    // Deployment model overrides (read: every user; write: administrators)
    // -----------------------------------------------------------------------------------

    /// The override of `context` as stored. Any user may read it: it names a model config,
    /// no secret, and the `general` one is the model their new chats get.
    pub async fn model_override(
        &self,
        _actor: &Actor,
        context: &ChatModelOverrideContext,
    ) -> Result<ChatModelOverrideResponse> {
        self.store().model_override(context).await
    }

    /// Sets (or with `""` clears) the override of `context` (administrators): it must name
    /// a live, enabled model config.
    pub async fn set_model_override(
        &self,
        actor: &Actor,
        context: &ChatModelOverrideContext,
        request: &UpdateChatModelOverrideRequest,
    ) -> Result<ChatModelOverrideResponse> {
        require_admin(actor)?;
        let result = self
            .store()
            .set_model_override(context, &request.model_config_id)
            .await;
        self.announced(result, ConfigChange::Deployment)
    }

    // -----------------------------------------------------------------------------------
    // Retention (read: every user; write: administrators; docs/retention.md)
    // -----------------------------------------------------------------------------------

    /// How many days archived chats are kept (0: forever). Any user may read it: it says
    /// how long their archived chats last.
    pub async fn retention_days(&self, _actor: &Actor) -> Result<ChatRetentionDaysResponse> {
        Ok(ChatRetentionDaysResponse {
            retention_days: self.store().retention_days().await?,
        })
    }

    /// Sets the retention window (0 to `codersdk::MAX_CHAT_RETENTION_DAYS`; administrators).
    /// The engine's next retention sweep applies it.
    pub async fn set_retention_days(
        &self,
        actor: &Actor,
        request: &ChatRetentionDaysResponse,
    ) -> Result<()> {
        require_admin(actor)?;
        let result = self
            .store()
            .set_retention_days(request.retention_days)
            .await
            .map(|_| ());
        self.announced(result, ConfigChange::Deployment)
    }

    /// After how many whole idle days (UTC dates) a family is archived (0: never). Any user
    /// may read it.
    pub async fn auto_archive_days(&self, _actor: &Actor) -> Result<ChatAutoArchiveDaysResponse> {
        Ok(ChatAutoArchiveDaysResponse {
            auto_archive_days: self.store().auto_archive_days().await?,
        })
    }

    /// Sets the auto-archive window (0 to `codersdk::MAX_CHAT_RETENTION_DAYS`;
    /// administrators). The engine's next retention sweep applies it.
    pub async fn set_auto_archive_days(
        &self,
        actor: &Actor,
        request: &ChatAutoArchiveDaysResponse,
    ) -> Result<()> {
        require_admin(actor)?;
        let result = self
            .store()
            .set_auto_archive_days(request.auto_archive_days)
            .await
            .map(|_| ());
        self.announced(result, ConfigChange::Deployment)
    }
}
