//! Usage-limit administration and groups (docs/usage-limits.md): the deployment's limit
//! and period, per-user and per-group overrides, and the groups the overrides name.
//! Administrators only; the caller's own status is an engine read
//! ([`Engine::usage_limit_status`](crate::Engine::usage_limit_status)).

use codersdk::{
    ChatModelConfig, ChatUsageLimitConfig, ChatUsageLimitConfigResponse,
    ChatUsageLimitGroupOverride, ChatUsageLimitOverride, CreateGroupRequest, Group,
    PatchGroupRequest, Uuid,
};

use super::{invalid, require_admin, Admin, UserRef};
use crate::cluster::ConfigChange;
use crate::engine::Actor;
use crate::error::{Error, ErrorKind, Result};
use crate::store::{ModelConfigFilter, GROUP_NOT_FOUND_MESSAGE};

/// Whether `config` has no price at all once the embedded price book filled what its own
/// `cost` leaves unset: its calls are recorded with no cost, so limits do not see them.
pub fn is_unpriced_model(config: &ChatModelConfig) -> bool {
    let mut cost = config.model_config.as_ref().and_then(|c| c.cost.clone());
    chatcost::PriceBook::embedded().fill_missing(&config.provider, &config.model, &mut cost);
    cost.is_none_or(|c| c.is_empty())
}

impl Admin {
    /// The usage-limit configuration with the overrides and how many enabled models have
    /// no price (`GET /chats/usage-limits`).
    pub async fn usage_limit_config(&self, actor: &Actor) -> Result<ChatUsageLimitConfigResponse> {
        require_admin(actor)?;
        let store = self.store();
        let config = store.usage_limit_config().await?;
        let unpriced = store
            .list_model_configs(ModelConfigFilter::Enabled)
            .await?
            .iter()
            .filter(|m| is_unpriced_model(m))
            .count();
        Ok(ChatUsageLimitConfigResponse {
            config,
            unpriced_model_count: i64::try_from(unpriced).unwrap_or(i64::MAX),
            overrides: store.list_user_usage_limits().await?,
            group_overrides: store.list_group_usage_limits().await?,
        })
    }

    /// Sets the deployment's limit (`None` turns limits off) and period
    /// (`PUT /chats/usage-limits`), validated with `codersdk::validate_usage_limit_config`
    /// (a missing or empty period is a month).
    pub async fn set_usage_limit_config(
        &self,
        actor: &Actor,
        spend_limit_micros: Option<i64>,
        period: Option<&str>,
    ) -> Result<ChatUsageLimitConfig> {
        require_admin(actor)?;
        let valid =
            codersdk::validate_usage_limit_config(spend_limit_micros, period).map_err(invalid)?;
        let result = self
            .store()
            .set_usage_limit_config(valid.spend_limit_micros, valid.period)
            .await;
        self.announced(result, ConfigChange::UsageLimits)
    }

    /// Sets the override of the user `user` names (`PUT …/overrides/{user}`).
    pub async fn set_user_usage_limit(
        &self,
        actor: &Actor,
        user: &UserRef,
        spend_limit_micros: Option<i64>,
    ) -> Result<ChatUsageLimitOverride> {
        require_admin(actor)?;
        let limit = codersdk::validate_usage_limit_override(spend_limit_micros).map_err(invalid)?;
        let target = self.resolve(actor, user).await?;
        self.store().set_user_usage_limit(target.id, limit).await
    }

    /// Removes the override of the user `user` names (none is fine).
    pub async fn delete_user_usage_limit(&self, actor: &Actor, user: &UserRef) -> Result<()> {
        require_admin(actor)?;
        let target = self.resolve(actor, user).await?;
        self.store().delete_user_usage_limit(target.id).await
    }

    /// Sets group `group_id`'s override (`PUT …/group-overrides/{group}`).
    pub async fn set_group_usage_limit(
        &self,
        actor: &Actor,
        group_id: Uuid,
        spend_limit_micros: Option<i64>,
    ) -> Result<ChatUsageLimitGroupOverride> {
        require_admin(actor)?;
        let limit = codersdk::validate_usage_limit_override(spend_limit_micros).map_err(invalid)?;
        self.store().set_group_usage_limit(group_id, limit).await
    }

    /// Removes group `group_id`'s override (none is fine).
    pub async fn delete_group_usage_limit(&self, actor: &Actor, group_id: Uuid) -> Result<()> {
        require_admin(actor)?;
        self.store().delete_group_usage_limit(group_id).await
    }

    /// Creates a group in `organization_id` (administrators).
    pub async fn create_group(
        &self,
        actor: &Actor,
        organization_id: Uuid,
        request: &CreateGroupRequest,
    ) -> Result<Group> {
        require_admin(actor)?;
        let valid = codersdk::validate_create_group_request(request).map_err(invalid)?;
        self.store().create_group(organization_id, &valid).await
    }

    /// The groups of `organization_id`, or of every organization (administrators).
    pub async fn list_groups(
        &self,
        actor: &Actor,
        organization_id: Option<Uuid>,
    ) -> Result<Vec<Group>> {
        require_admin(actor)?;
        self.store().list_groups(organization_id).await
    }

    /// Group `id` with its members (administrators).
    pub async fn get_group(&self, actor: &Actor, id: Uuid) -> Result<Group> {
        require_admin(actor)?;
        self.store()
            .get_group(id)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, GROUP_NOT_FOUND_MESSAGE))
    }

    /// Renames group `id` and adds or removes members (administrators).
    pub async fn patch_group(
        &self,
        actor: &Actor,
        id: Uuid,
        request: &PatchGroupRequest,
    ) -> Result<Group> {
        require_admin(actor)?;
        let valid = codersdk::validate_patch_group_request(request).map_err(invalid)?;
        self.store().patch_group(id, &valid).await
    }

    /// Deletes group `id` with its memberships and override (administrators).
    pub async fn delete_group(&self, actor: &Actor, id: Uuid) -> Result<()> {
        require_admin(actor)?;
        self.store().delete_group(id).await
    }
}
