//! Store tests of the deployment model overrides (`/chats/config/model-override/{context}`):
//! per-context values in `site_config`, validation against live enabled model configs,
//! clearing, malformed values, and overrides whose model config was disabled or deleted
//! later (still reported, never used). Every test runs on SQLite and, when
//! `CHATD_TEST_DATABASE_URL` names a PostgreSQL database, also on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use chatd_core::store::{
    Store, INVALID_MODEL_OVERRIDE_CONTEXT_MESSAGE, INVALID_MODEL_OVERRIDE_MESSAGE,
    MODEL_OVERRIDE_KEY_PREFIX,
};
use chatd_core::{Error, ErrorKind, Keyring, SecretKey};
use chatprovider::ProviderApiKeys;
use codersdk::{
    ChatModelConfig, ChatModelOverrideContext, CreateChatModelConfigRequest,
    CreateChatProviderConfigRequest, SecretString, UpdateChatModelConfigRequest, Uuid,
};

use chatd_test_support::db::{on_each_backend, RawSql};

/// An `openai` provider with a central key, and one model config per name (the first is
/// the default).
async fn models(store: &Store, names: &[&str]) -> Vec<ChatModelConfig> {
    let keyring = Keyring::new("k1", SecretKey::from_bytes([7; 32])).unwrap();
    let keys = ProviderApiKeys::new();
    let provider = CreateChatProviderConfigRequest {
        provider: "openai".into(),
        api_key: Some(SecretString::new("sk-central-0123456789abcdef")),
        ..Default::default()
    };
    let valid = chatprovider::validate_create_provider_request(&provider, &keys).unwrap();
    store
        .create_provider_config(&valid, &keyring)
        .await
        .unwrap();
    let mut out = Vec::new();
    for name in names {
        let req = CreateChatModelConfigRequest {
            provider: "openai".into(),
            model: (*name).into(),
            context_limit: Some(128_000),
            ..Default::default()
        };
        let valid = codersdk::validate_create_model_config(&req).unwrap();
        out.push(store.create_model_config(&valid, &keys).await.unwrap());
    }
    out
}

async fn set_enabled(store: &Store, id: Uuid, enabled: bool) {
    let update = UpdateChatModelConfigRequest {
        enabled: Some(enabled),
        ..Default::default()
    };
    store
        .update_model_config(id, &update, &ProviderApiKeys::new())
        .await
        .unwrap();
}

fn assert_invalid(err: &Error, message: &str, field: &str) {
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err:?}");
    let response = err.to_response();
    assert_eq!(response.message, message);
    let fields: Vec<&str> = response
        .validations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(fields, [field], "{response:?}");
}

#[tokio::test]
async fn every_context_starts_unset_and_is_set_and_cleared_on_its_own() {
    on_each_backend(|store| async move {
        let m = models(&store, &["gpt-4o", "gpt-4o-mini", "gpt-4.1"]).await;
        for context in ChatModelOverrideContext::ALL {
            let view = store.model_override(context).await.unwrap();
            assert_eq!(view.context, *context);
            assert_eq!(view.model_config_id, "");
            assert!(!view.is_malformed);
            assert!(store
                .usable_model_override(context)
                .await
                .unwrap()
                .is_none());
        }
        let general = ChatModelOverrideContext::General;
        let explore = ChatModelOverrideContext::Explore;
        let title = ChatModelOverrideContext::TitleGeneration;
        let set = store
            .set_model_override(&general, &m[1].id.to_string())
            .await
            .unwrap();
        assert_eq!(set.model_config_id, m[1].id.to_string());
        store
            .set_model_override(&title, &m[2].id.to_string())
            .await
            .unwrap();
        store
            .set_model_override(&explore, &m[0].id.to_string())
            .await
            .unwrap();
        // A second write replaces the first.
        store
            .set_model_override(&explore, &m[2].id.to_string())
            .await
            .unwrap();

        let read = |c: ChatModelOverrideContext| {
            let store = store.clone();
            async move { store.model_override(&c).await.unwrap().model_config_id }
        };
        assert_eq!(read(general.clone()).await, m[1].id.to_string());
        assert_eq!(read(title.clone()).await, m[2].id.to_string());
        assert_eq!(read(explore.clone()).await, m[2].id.to_string());
        let usable = store
            .usable_model_override(&general)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(usable.id, m[1].id);
        assert_eq!(usable.model, "gpt-4o-mini");

        // "" clears this context only; clearing what is not set is fine too.
        let cleared = store.set_model_override(&general, "").await.unwrap();
        assert_eq!(cleared.model_config_id, "");
        assert_eq!(read(general.clone()).await, "");
        assert!(store
            .usable_model_override(&general)
            .await
            .unwrap()
            .is_none());
        store.set_model_override(&general, "").await.unwrap();
        assert_eq!(read(title.clone()).await, m[2].id.to_string());

        // The row is where the docs say, under the documented key.
        let raw: String = sqlx::query_scalar("SELECT value FROM site_config WHERE key = $1")
            .bind(format!("{MODEL_OVERRIDE_KEY_PREFIX}title_generation"))
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(raw, m[2].id.to_string());
    })
    .await;
}

#[tokio::test]
async fn any_uuid_form_is_stored_canonically() {
    on_each_backend(|store| async move {
        let m = models(&store, &["gpt-4o"]).await;
        let general = ChatModelOverrideContext::General;
        let upper = m[0].id.to_string().to_uppercase();
        let view = store.set_model_override(&general, &upper).await.unwrap();
        assert_eq!(view.model_config_id, m[0].id.to_string());
        for form in [
            format!("{{{}}}", m[0].id),
            m[0].id.simple().to_string(),
            m[0].id.urn().to_string(),
        ] {
            store.set_model_override(&general, &form).await.unwrap();
            let read = store.model_override(&general).await.unwrap();
            assert_eq!(read.model_config_id, m[0].id.to_string(), "{form}");
            assert!(!read.is_malformed);
        }
    })
    .await;
}

#[tokio::test]
async fn bad_contexts_and_unusable_models_are_refused_and_nothing_changes() {
    on_each_backend(|store| async move {
        let m = models(&store, &["gpt-4o", "gpt-4o-mini", "gpt-4.1"]).await;
        let general = ChatModelOverrideContext::General;
        store
            .set_model_override(&general, &m[0].id.to_string())
            .await
            .unwrap();

        // Contexts of newer Coder versions (and typos) are unknown here.
        for raw in ["advisor", "General", ""] {
            let context = ChatModelOverrideContext::from_wire(raw);
            let err = store.model_override(&context).await.unwrap_err();
            assert_invalid(&err, INVALID_MODEL_OVERRIDE_CONTEXT_MESSAGE, "context");
            let err = store
                .set_model_override(&context, &m[0].id.to_string())
                .await
                .unwrap_err();
            assert_invalid(&err, INVALID_MODEL_OVERRIDE_CONTEXT_MESSAGE, "context");
            let err = store.usable_model_override(&context).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        }

        // Not a UUID (blank is not "clear"), unknown, nil, disabled, deleted.
        set_enabled(&store, m[1].id, false).await;
        store.delete_model_config(m[2].id).await.unwrap();
        for bad in [
            "not-a-uuid".to_owned(),
            " ".to_owned(),
            Uuid::new_v4().to_string(),
            Uuid::nil().to_string(),
            m[1].id.to_string(),
            m[2].id.to_string(),
        ] {
            let err = store.set_model_override(&general, &bad).await.unwrap_err();
            assert_invalid(&err, INVALID_MODEL_OVERRIDE_MESSAGE, "model_config_id");
            let view = store.model_override(&general).await.unwrap();
            assert_eq!(view.model_config_id, m[0].id.to_string(), "after {bad:?}");
        }
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM site_config WHERE key LIKE $1")
            .bind(format!("{MODEL_OVERRIDE_KEY_PREFIX}%"))
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(count, 1, "only the one valid override is stored");
    })
    .await;
}

#[tokio::test]
async fn an_override_whose_model_goes_away_is_reported_but_not_used() {
    on_each_backend(|store| async move {
        let m = models(&store, &["gpt-4o", "gpt-4o-mini"]).await;
        let title = ChatModelOverrideContext::TitleGeneration;
        let id = m[1].id.to_string();
        store.set_model_override(&title, &id).await.unwrap();

        // Disabled: still reported (an admin sees what is configured), not used.
        set_enabled(&store, m[1].id, false).await;
        let view = store.model_override(&title).await.unwrap();
        assert_eq!(view.model_config_id, id);
        assert!(!view.is_malformed);
        assert!(store.usable_model_override(&title).await.unwrap().is_none());

        // Enabled again: used again, without touching the override.
        set_enabled(&store, m[1].id, true).await;
        let usable = store.usable_model_override(&title).await.unwrap().unwrap();
        assert_eq!(usable.id, m[1].id);

        // Deleted: the model config delete succeeds, the override stays but is ignored.
        store.delete_model_config(m[1].id).await.unwrap();
        assert_eq!(
            store.model_override(&title).await.unwrap().model_config_id,
            id
        );
        assert!(store.usable_model_override(&title).await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn a_malformed_stored_value_is_reported_and_ignored() {
    on_each_backend(|store| async move {
        models(&store, &["gpt-4o"]).await;
        // Written by hand (or by another implementation sharing the table).
        sqlx::query("INSERT INTO site_config (key, value, updated_at) VALUES ($1, $2, 0)")
            .bind(format!("{MODEL_OVERRIDE_KEY_PREFIX}general"))
            .bind("gpt-4o")
            .execute(store.pool())
            .await
            .unwrap();
        let general = ChatModelOverrideContext::General;
        let view = store.model_override(&general).await.unwrap();
        assert_eq!(view.model_config_id, "gpt-4o");
        assert!(view.is_malformed);
        assert!(store
            .usable_model_override(&general)
            .await
            .unwrap()
            .is_none());
        // Clearing repairs it.
        store.set_model_override(&general, "").await.unwrap();
        let view = store.model_override(&general).await.unwrap();
        assert_eq!(view.model_config_id, "");
        assert!(!view.is_malformed);
    })
    .await;
}
