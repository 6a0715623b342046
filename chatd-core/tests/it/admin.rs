//! The administration handle (`chatd_core::Admin`) and the engine's file operations on both
//! backends: who may do what (administrators, the user themself, everyone filtered), that
//! requests are validated before anything is stored, bootstrap and token authentication.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;

use chatd_core::store::{ChatListQuery, Store, StoreOptions};
use chatd_core::{
    Actor, Admin, Bootstrap, Engine, EngineConfig, ErrorKind, FileUpload, Keyring, ModelResolver,
    ModelSelection, Role, SecretKey, UserRef, ADMIN_ONLY_MESSAGE, FILE_NOT_FOUND_MESSAGE,
    MODEL_KEY_MISSING_MESSAGE, NOT_A_MEMBER_MESSAGE, USER_NOT_FOUND_MESSAGE,
};
use chatd_test_support::db::on_each_backend;
use chatd_test_support::scripted::{engine, ScriptedModel};
use chatprovider::{Provider, ProviderApiKeys};
use codersdk::{
    ChatInputPart, ChatModelOverrideContext, CreateChatModelConfigRequest,
    CreateChatProviderConfigRequest, CreateChatRequest, CreateMCPServerConfigRequest,
    CreateUserChatProviderKeyRequest, CreateUserRequest, UpdateChatModelConfigRequest,
    UpdateChatModelOverrideRequest, UpdateChatProviderConfigRequest, UpdateChatSystemPromptRequest,
    UpdateMCPServerConfigRequest, UserChatCustomPrompt, Uuid,
};
use serde_json::json;

fn keyring() -> Arc<Keyring> {
    Arc::new(Keyring::new("test", SecretKey::generate().unwrap()).unwrap())
}

/// A handle with no environment keys, an administrator and a member in one organization.
async fn setup(store: &Store) -> (Admin, Actor, Actor, Uuid) {
    let admin = Admin::new(store.clone(), keyring(), ProviderApiKeys::new());
    let boot = admin
        .bootstrap(&Bootstrap::new("default", "admin"))
        .await
        .unwrap();
    let member = admin
        .create_user(
            &Actor::admin(boot.admin_id),
            &CreateUserRequest {
                username: "bob".into(),
                ..Default::default()
            },
            boot.organization_id,
        )
        .await
        .unwrap();
    (
        admin,
        Actor::admin(boot.admin_id),
        Actor::new(member.id, member.role),
        boot.organization_id,
    )
}

fn forbidden<T: std::fmt::Debug>(result: chatd_core::Result<T>) {
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden, "{err}");
    assert_eq!(err.to_string(), ADMIN_ONLY_MESSAGE);
}

fn openai_provider() -> CreateChatProviderConfigRequest {
    CreateChatProviderConfigRequest {
        provider: "openai".into(),
        api_key: Some("sk-central-key".into()),
        allow_user_api_key: Some(true),
        ..Default::default()
    }
}

fn model_request(model: &str) -> CreateChatModelConfigRequest {
    CreateChatModelConfigRequest {
        provider: "openai".into(),
        model: model.into(),
        context_limit: Some(128_000),
        ..Default::default()
    }
}

#[tokio::test]
async fn members_are_refused_every_administrator_operation() {
    on_each_backend(|store| async move {
        let (admin, root, bob, _) = setup(&store).await;
        let provider = admin
            .create_provider(&root, &openai_provider())
            .await
            .unwrap();
        let model = admin
            .create_model_config(&root, &model_request("gpt-4o"))
            .await
            .unwrap();
        let id = Uuid::new_v4();
        forbidden(admin.list_providers(&bob).await);
        forbidden(admin.create_provider(&bob, &openai_provider()).await);
        forbidden(
            admin
                .update_provider(
                    &bob,
                    provider.id,
                    &UpdateChatProviderConfigRequest {
                        allow_user_api_key: Some(false),
                        ..Default::default()
                    },
                )
                .await,
        );
        forbidden(admin.delete_provider(&bob, provider.id).await);
        forbidden(
            admin
                .create_model_config(&bob, &model_request("gpt-4.1"))
                .await,
        );
        forbidden(
            admin
                .update_model_config(&bob, model.id, &UpdateChatModelConfigRequest::default())
                .await,
        );
        forbidden(admin.delete_model_config(&bob, model.id).await);
        forbidden(admin.system_prompt(&bob).await);
        forbidden(
            admin
                .set_system_prompt(
                    &bob,
                    &UpdateChatSystemPromptRequest {
                        system_prompt: "be terse".into(),
                        include_default_system_prompt: None,
                    },
                )
                .await,
        );
        forbidden(
            admin
                .set_model_override(
                    &bob,
                    &ChatModelOverrideContext::General,
                    &UpdateChatModelOverrideRequest {
                        model_config_id: model.id.to_string(),
                    },
                )
                .await,
        );
        let mcp: CreateMCPServerConfigRequest = serde_json::from_value(json!({
            "display_name": "Docs", "slug": "docs", "transport": "streamable_http",
            "url": "https://mcp.example.com/mcp", "auth_type": "none",
            "availability": "default_on",
        }))
        .unwrap();
        forbidden(admin.create_mcp_server(&bob, &mcp, None).await);
        forbidden(
            admin
                .update_mcp_server(&bob, id, &UpdateMCPServerConfigRequest::default())
                .await,
        );
        forbidden(admin.delete_mcp_server(&bob, id).await);
        forbidden(
            admin
                .create_user(
                    &bob,
                    &CreateUserRequest {
                        username: "mallory".into(),
                        ..Default::default()
                    },
                    id,
                )
                .await,
        );
        forbidden(admin.list_users(&bob, 10, 0).await);
        forbidden(admin.set_user_role(&bob, &UserRef::Me, Role::Admin).await);
        // Nothing the member attempted was stored.
        let listing = admin.list_providers(&root).await.unwrap();
        let openai = listing.iter().find(|p| p.provider == "openai").unwrap();
        assert_eq!(openai.id, provider.id);
        assert!(
            openai.allow_user_api_key,
            "the member's update did not apply"
        );
        assert_eq!(admin.list_model_configs(&root).await.unwrap().len(), 1);
        assert!(admin.list_mcp_servers(&root).await.unwrap().is_empty());
        assert_eq!(admin.list_users(&root, 10, 0).await.unwrap().count, 2);
        assert_eq!(admin.system_prompt(&root).await.unwrap().system_prompt, "");
        // The administrator may do all of it.
        admin.create_mcp_server(&root, &mcp, None).await.unwrap();
        admin.delete_model_config(&root, model.id).await.unwrap();
        admin.delete_provider(&root, provider.id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn requests_are_validated_before_anything_is_stored() {
    on_each_backend(|store| async move {
        let (admin, root, _, org) = setup(&store).await;
        let bad_provider = CreateChatProviderConfigRequest {
            provider: "no-such-provider".into(),
            ..Default::default()
        };
        let err = admin
            .create_provider(&root, &bad_provider)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(!err.to_response().validations.is_empty(), "{err}");
        let err = admin
            .create_model_config(&root, &model_request(""))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        let err = admin
            .create_user(
                &root,
                &CreateUserRequest {
                    username: "not a username".into(),
                    ..Default::default()
                },
                org,
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(err.to_response().validations[0].field, "username");
        assert!(admin.list_model_configs(&root).await.unwrap().is_empty());
        assert_eq!(admin.list_users(&root, 10, 0).await.unwrap().count, 2);
    })
    .await;
}

#[tokio::test]
async fn members_read_the_usable_configuration_and_manage_their_own_keys_and_prompt() {
    on_each_backend(|store| async move {
        let (admin, root, bob, _) = setup(&store).await;
        assert!(!admin.is_configured().await.unwrap());
        let provider = admin
            .create_provider(&root, &openai_provider())
            .await
            .unwrap();
        assert!(admin.is_configured().await.unwrap());
        let enabled = admin
            .create_model_config(&root, &model_request("gpt-4o"))
            .await
            .unwrap();
        let mut disabled = model_request("gpt-4.1");
        disabled.enabled = Some(false);
        admin.create_model_config(&root, &disabled).await.unwrap();
        // Members see the enabled model configs, administrators all of them.
        let seen: Vec<_> = admin
            .list_model_configs(&bob)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(seen, vec![enabled.id]);
        assert_eq!(admin.list_model_configs(&root).await.unwrap().len(), 2);
        // The catalogue applies the key policy to the caller: the provider takes users'
        // keys without a central fallback, so Bob needs his own.
        let openai = |c: codersdk::ChatModelsResponse| {
            c.providers
                .into_iter()
                .find(|p| p.provider == "openai")
                .unwrap()
        };
        let before = openai(admin.list_models(&bob).await.unwrap());
        assert!(!before.available);
        assert_eq!(
            before.unavailable_reason,
            Some(codersdk::ChatModelProviderUnavailableReason::UserApiKeyRequired)
        );
        assert_eq!(before.models.len(), 1, "enabled models only");
        // Their own key, for themself only.
        let key = CreateUserChatProviderKeyRequest {
            api_key: "sk-bob-own-key".into(),
        };
        let view = admin
            .set_user_provider_key(&bob, provider.id, &key)
            .await
            .unwrap();
        assert!(openai(admin.list_models(&bob).await.unwrap()).available);
        assert!(!openai(admin.list_models(&root).await.unwrap()).available);
        assert!(view.has_user_api_key);
        let mine = admin.list_user_provider_configs(&bob).await.unwrap();
        assert!(mine.iter().all(|p| p.has_user_api_key));
        let roots = admin.list_user_provider_configs(&root).await.unwrap();
        assert!(roots.iter().all(|p| !p.has_user_api_key));
        assert!(admin
            .delete_user_provider_key(&bob, provider.id)
            .await
            .unwrap());
        assert!(!admin
            .delete_user_provider_key(&bob, provider.id)
            .await
            .unwrap());
        let err = admin
            .delete_user_provider_key(&bob, Uuid::new_v4())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        // Their own prompt.
        let stored = admin
            .set_user_prompt(
                &bob,
                &UserChatCustomPrompt {
                    custom_prompt: "  Answer in French.  ".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(stored.custom_prompt, "Answer in French.");
        assert_eq!(
            admin.user_prompt(&bob).await.unwrap().custom_prompt,
            "Answer in French."
        );
        assert_eq!(admin.user_prompt(&root).await.unwrap().custom_prompt, "");
        // Everyone reads the overrides; administrators set them.
        admin
            .set_model_override(
                &root,
                &ChatModelOverrideContext::General,
                &UpdateChatModelOverrideRequest {
                    model_config_id: enabled.id.to_string(),
                },
            )
            .await
            .unwrap();
        let read = admin
            .model_override(&bob, &ChatModelOverrideContext::General)
            .await
            .unwrap();
        assert_eq!(read.model_config_id, enabled.id.to_string());
    })
    .await;
}

#[tokio::test]
async fn environment_keys_count_as_configuration() {
    on_each_backend(|store| async move {
        let keys = ProviderApiKeys::new()
            .with_api_key(Provider::OpenAi, "sk-env")
            .unwrap();
        let admin = Admin::new(store.clone(), keyring(), keys);
        assert!(admin.is_configured().await.unwrap());
        let root = admin
            .bootstrap(&Bootstrap::new("default", "admin"))
            .await
            .unwrap();
        // The environment preset is listed, its key never.
        let listing = admin
            .list_providers(&Actor::admin(root.admin_id))
            .await
            .unwrap();
        let openai = listing.iter().find(|p| p.provider == "openai").unwrap();
        assert!(openai.has_api_key && openai.enabled);
        assert!(!format!("{listing:?}").contains("sk-env"));
    })
    .await;
}

#[tokio::test]
async fn mcp_servers_are_filtered_and_redacted_for_members() {
    on_each_backend(|store| async move {
        let (admin, root, bob, _) = setup(&store).await;
        let create = |slug: &str, enabled: bool| -> CreateMCPServerConfigRequest {
            serde_json::from_value(json!({
                "display_name": slug, "slug": slug, "transport": "streamable_http",
                "url": "https://user:pw@mcp.example.com/mcp", "auth_type": "api_key",
                "api_key_header": "X-Api-Key", "api_key_value": "mcp-secret",
                "availability": "default_on", "enabled": enabled,
            }))
            .unwrap()
        };
        let on = admin
            .create_mcp_server(&root, &create("on", true), None)
            .await
            .unwrap();
        let off = admin
            .create_mcp_server(&root, &create("off", false), None)
            .await
            .unwrap();
        assert_eq!(admin.list_mcp_servers(&root).await.unwrap().len(), 2);
        let seen = admin.list_mcp_servers(&bob).await.unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].id, on.id);
        assert!(seen[0].url.is_empty() && seen[0].api_key_header.is_empty());
        assert!(seen[0].has_api_key, "whether a key is stored stays visible");
        let one = admin.get_mcp_server(&bob, on.id).await.unwrap();
        assert_eq!(one, seen[0]);
        let err = admin.get_mcp_server(&bob, off.id).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let full = admin.get_mcp_server(&root, off.id).await.unwrap();
        assert_eq!(full.url, "https://user:pw@mcp.example.com/mcp");
    })
    .await;
}

#[tokio::test]
async fn accounts_and_tokens_are_for_administrators_or_the_user_themself() {
    on_each_backend(|store| async move {
        let (admin, root, bob, org) = setup(&store).await;
        let carol = admin
            .create_user(
                &root,
                &CreateUserRequest {
                    username: "carol".into(),
                    ..Default::default()
                },
                org,
            )
            .await
            .unwrap();
        assert_eq!(carol.role, Role::Member);
        assert_eq!(carol.organization_ids, vec![org]);
        // Bob reads himself by every name, case-insensitively by username.
        for me in [
            UserRef::Me,
            UserRef::Id(bob.user_id),
            UserRef::Username("BOB".into()),
        ] {
            assert_eq!(admin.get_user(&bob, &me).await.unwrap().id, bob.user_id);
        }
        // Someone else: 403 whether they exist or not, before any lookup.
        for other in [
            UserRef::Id(carol.id),
            UserRef::Username("carol".into()),
            UserRef::Username("nobody".into()),
            UserRef::Id(Uuid::new_v4()),
        ] {
            let err = admin.get_user(&bob, &other).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Forbidden);
            assert_eq!(
                err.to_string(),
                "Only administrators can view the accounts of other users."
            );
            let err = admin.create_api_token(&bob, &other).await.unwrap_err();
            assert_eq!(
                err.to_string(),
                "Only administrators can create API tokens of other users."
            );
        }
        let err = admin
            .get_user(&root, &UserRef::Username("nobody".into()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.to_string(), USER_NOT_FOUND_MESSAGE);
        // Tokens authenticate as their user, with the user's role.
        let issued = admin.create_api_token(&bob, &UserRef::Me).await.unwrap();
        assert_eq!(issued.user_id, bob.user_id);
        let user = admin
            .authenticate(issued.token.expose())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user.actor(), bob);
        let for_carol = admin
            .create_api_token(&root, &UserRef::Username("carol".into()))
            .await
            .unwrap();
        assert_eq!(for_carol.user_id, carol.id);
        assert!(admin
            .authenticate("chatd_not-a-token")
            .await
            .unwrap()
            .is_none());
        assert!(admin.authenticate("").await.unwrap().is_none());
        // Roles: not one's own; the last administrator keeps the role.
        let err = admin
            .set_user_role(&root, &UserRef::Me, Role::Member)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        let promoted = admin
            .set_user_role(&root, &UserRef::Id(bob.user_id), Role::Admin)
            .await
            .unwrap();
        assert_eq!(promoted.role, Role::Admin);
        let bob_admin = Actor::new(bob.user_id, promoted.role);
        assert!(bob_admin.admin);
        admin
            .set_user_role(&bob_admin, &UserRef::Id(root.user_id), Role::Member)
            .await
            .unwrap();
        let err = store
            .set_user_role(bob.user_id, Role::Member)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
    })
    .await;
}

#[tokio::test]
async fn bootstrap_is_idempotent_and_hands_out_a_token_once() {
    on_each_backend(|store| async move {
        let admin = Admin::new(store.clone(), keyring(), ProviderApiKeys::new());
        let first = admin
            .bootstrap(&Bootstrap::new("default", "admin"))
            .await
            .unwrap();
        let token = first.generated_admin_token.unwrap();
        let user = admin.authenticate(token.expose()).await.unwrap().unwrap();
        assert_eq!(user.id, first.admin_id);
        assert_eq!(user.role, Role::Admin);
        assert!(user.actor().admin);
        let again = admin
            .bootstrap(
                &Bootstrap::new("default", "admin")
                    .with_admin_token(Some("chatd_operator_token".into())),
            )
            .await
            .unwrap();
        assert_eq!(again.organization_id, first.organization_id);
        assert_eq!(again.admin_id, first.admin_id);
        assert!(again.generated_admin_token.is_none());
        let by_operator = admin
            .authenticate("chatd_operator_token")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_operator.id, first.admin_id);
        // The first token still works; a third start generates nothing new.
        assert!(admin.authenticate(token.expose()).await.unwrap().is_some());
        let third = admin
            .bootstrap(&Bootstrap::new("default", "admin"))
            .await
            .unwrap();
        assert!(third.generated_admin_token.is_none());
        assert!(store
            .is_member(first.organization_id, first.admin_id)
            .await
            .unwrap());
    })
    .await;
}

#[tokio::test]
async fn files_are_checked_on_upload_and_shown_to_their_uploader_only() {
    on_each_backend(|store| async move {
        let (admin, root, bob, org) = setup(&store).await;
        let _ = admin;
        let engine = engine(&store, ScriptedModel::new([])).await;
        let upload = || FileUpload::new(org, "text/plain", b"notes".to_vec()).with_name("a.txt");
        let meta = engine.upload_file(&bob, upload()).await.unwrap();
        assert_eq!(meta.owner_id, bob.user_id);
        assert_eq!(meta.mime_type, "text/plain");
        assert_eq!(meta.name, "a.txt");
        let file = engine.get_file(&bob, meta.id).await.unwrap();
        assert_eq!(file.data, b"notes");
        assert_eq!(engine.file_metadata(&bob, meta.id).await.unwrap(), meta);
        // Nobody else sees it, administrators included: the same 404 as a missing file.
        for (actor, id) in [(&root, meta.id), (&bob, Uuid::new_v4())] {
            let err = engine.get_file(actor, id).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound);
            assert_eq!(err.to_string(), FILE_NOT_FOUND_MESSAGE);
            let err = engine.file_metadata(actor, id).await.unwrap_err();
            assert_eq!(err.to_string(), FILE_NOT_FOUND_MESSAGE);
        }
        // Only into an organization of one's own.
        let elsewhere = FileUpload::new(Uuid::new_v4(), "text/plain", b"x".to_vec());
        let err = engine.upload_file(&bob, elsewhere).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Forbidden);
        assert_eq!(err.to_string(), NOT_A_MEMBER_MESSAGE);
        // The declared type must match the content and be allowed; empty files are refused.
        for (declared, data) in [
            ("image/png", b"not a png".to_vec()),
            ("application/x-msdownload", b"MZ\x90\x00".to_vec()),
            ("text/plain", Vec::new()),
        ] {
            let err = engine
                .upload_file(&bob, FileUpload::new(org, declared, data))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{declared}");
        }
        // One byte over the cap is too large (413), before any type check.
        let over = vec![b'a'; chatd_core::MAX_FILE_BYTES + 1];
        let err = engine
            .upload_file(&bob, FileUpload::new(org, "text/plain", over))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge);
        assert_eq!(err.http_status(), 413);
        let at = vec![b'a'; chatd_core::MAX_FILE_BYTES];
        engine
            .upload_file(&bob, FileUpload::new(org, "text/plain", at))
            .await
            .unwrap();
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn database_errors_keep_the_driver_error_as_their_source() {
    use std::error::Error as _;
    on_each_backend(|store| async move {
        store.create_organization("acme").await.unwrap();
        // The unique index refuses the second one: a Conflict whose source is the
        // database's own error.
        let err = store.create_organization("acme").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        let source = err.source().expect("the driver error is kept");
        let db = source
            .downcast_ref::<sqlx::Error>()
            .and_then(|e| e.as_database_error())
            .expect("a database error");
        assert!(db.is_unique_violation());
        // Errors of the engine's own rules have no source.
        let err = store.begin_chat_tx(Uuid::new_v4()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.source().is_none());
    })
    .await;
}

#[tokio::test]
async fn a_new_chat_whose_provider_has_no_key_is_refused_naming_the_provider_and_the_key() {
    on_each_backend(|store| async move {
        const ENV_KEY: &str = "sk-env-key-0123456789abcdef";
        let kr = keyring();
        // The server started with OPENAI_API_KEY set: openai is an environment preset.
        let env = ProviderApiKeys::new()
            .with_api_key(Provider::OpenAi, ENV_KEY)
            .unwrap();
        let before = Admin::new(store.clone(), Arc::clone(&kr), env);
        let boot = before
            .bootstrap(&Bootstrap::new("default", "admin"))
            .await
            .unwrap();
        let root = Actor::admin(boot.admin_id);
        let org = boot.organization_id;
        let gpt = before
            .create_model_config(&root, &model_request("gpt-4o"))
            .await
            .unwrap();
        let selection = ModelSelection::new(root.user_id, org, None);
        before
            .model_resolver()
            .check_new_chat(selection, gpt.id)
            .await
            .unwrap();

        // Restarted without it: a new chat is refused before anything is stored, instead
        // of failing its first turn with "started with an API key that is no longer
        // available".
        let after = Admin::new(store.clone(), Arc::clone(&kr), ProviderApiKeys::new());
        let config = EngineConfig::new(
            StoreOptions::new("unused"),
            Arc::new(after.model_resolver()),
        )
        .with_generated_titles(false);
        let engine = Engine::with_admin(&after, config).await.unwrap();
        let request = |model: Option<Uuid>| CreateChatRequest {
            organization_id: Some(org),
            content: vec![ChatInputPart::text("hello")],
            model_config_id: model,
            ..Default::default()
        };
        let err = engine.create_chat(&root, request(None)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(err.http_status(), 400);
        let response = err.to_response();
        assert_eq!(response.message, MODEL_KEY_MISSING_MESSAGE);
        assert_eq!(response.validations.len(), 1);
        assert_eq!(response.validations[0].field, "model_config_id");
        let detail = &response.validations[0].detail;
        assert!(detail.contains("\"openai\""), "{detail}");
        assert!(detail.contains("OPENAI_API_KEY"), "{detail}");
        let body = serde_json::to_string(&response).unwrap();
        assert!(!body.contains(ENV_KEY) && !body.contains("sk-"), "{body}");
        assert!(engine
            .list_chats(&root, &ChatListQuery::default())
            .await
            .unwrap()
            .is_empty());

        // A provider that wants the user's own key, which they have not added: refused
        // too, saying so; with the key added the same model is accepted.
        let anthropic = after
            .create_provider(
                &root,
                &CreateChatProviderConfigRequest {
                    provider: "anthropic".into(),
                    central_api_key_enabled: Some(false),
                    allow_user_api_key: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let claude = after
            .create_model_config(
                &root,
                &CreateChatModelConfigRequest {
                    provider: "anthropic".into(),
                    ..model_request("claude-x")
                },
            )
            .await
            .unwrap();
        let err = engine
            .create_chat(&root, request(Some(claude.id)))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        let detail = err.to_response().validations[0].detail.clone();
        assert!(detail.contains("\"anthropic\""), "{detail}");
        assert!(detail.contains("your own API key"), "{detail}");
        let own = CreateUserChatProviderKeyRequest {
            api_key: "sk-ant-own-key-0123".into(),
        };
        after
            .set_user_provider_key(&root, anthropic.id, &own)
            .await
            .unwrap();
        after
            .model_resolver()
            .check_new_chat(selection, claude.id)
            .await
            .unwrap();
        engine.shutdown().await;
    })
    .await;
}
