//! API token lifecycle in the store, on both backends: names (made up, unique per user
//! case-insensitively), expiry, revocation that survives re-insertion, the last
//! administrator token kept even under concurrent revocations.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use chatd_core::store::{NewApiToken, NewUser, Store, TokenCheck};
use chatd_core::{ErrorKind, Role};
use codersdk::Uuid;

use chatd_test_support::db::*;

async fn admin_user(store: &Store, name: &str) -> Uuid {
    store
        .create_user(NewUser {
            username: name.into(),
            name: name.into(),
            role: Role::Admin,
        })
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn tokens_have_names_lifetimes_and_are_revoked_for_good() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (named, secret) = store
            .issue_api_token(
                f.user,
                NewApiToken::new(Some("Laptop".into()), Some(Duration::from_secs(3600))),
            )
            .await
            .unwrap();
        assert_eq!(named.name, "Laptop");
        let expires = named.expires_at.unwrap();
        assert_eq!((expires.0 - named.created_at.0).num_seconds(), 3600);
        assert_eq!(named.to_api_key().lifetime_seconds, 3600);
        // Unnamed: `token-` and the id's first characters; no expiry.
        let (unnamed, _) = store
            .issue_api_token(f.user, NewApiToken::default())
            .await
            .unwrap();
        assert_eq!(
            unnamed.name,
            format!("token-{}", &unnamed.id.to_string()[..8])
        );
        assert_eq!(unnamed.expires_at, None);
        // Names are unique per user, case-insensitively.
        let err = store
            .issue_api_token(f.user, NewApiToken::new(Some("laptop".into()), None))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        let other = admin_user(&store, "root").await;
        store
            .issue_api_token(other, NewApiToken::new(Some("laptop".into()), None))
            .await
            .unwrap();

        match store.check_api_token(secret.expose()).await.unwrap() {
            TokenCheck::Valid { user, token_id } => {
                assert_eq!((user.id, token_id), (f.user, named.id));
            }
            other => panic!("{other:?}"),
        }
        let listed = store.list_api_tokens(f.user).await.unwrap();
        assert_eq!(
            listed.iter().map(|t| t.id).collect::<Vec<_>>(),
            [named.id, unnamed.id]
        );
        assert!(
            listed[0].last_used_at.is_some(),
            "the check wrote the last use"
        );
        assert_eq!(
            store
                .get_api_token(f.user, named.id)
                .await
                .unwrap()
                .unwrap()
                .name,
            "Laptop"
        );
        assert_eq!(store.get_api_token(other, named.id).await.unwrap(), None);

        // Expired.
        sqlx::query("UPDATE api_tokens SET expires_at = 5 WHERE id = $1")
            .bind(named.id.to_string())
            .execute(store.pool())
            .await
            .unwrap();
        assert!(matches!(
            store.check_api_token(secret.expose()).await.unwrap(),
            TokenCheck::Expired { .. }
        ));
        assert_eq!(
            store.authenticate_token(secret.expose()).await.unwrap(),
            None
        );

        // Revoked: gone from the list, refused, and not brought back by storing it again.
        store.revoke_api_token(f.user, unnamed.id).await.unwrap();
        let err = store
            .revoke_api_token(f.user, unnamed.id)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let err = store.revoke_api_token(other, named.id).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "another user's token");
        assert_eq!(store.list_api_tokens(f.user).await.unwrap().len(), 1);
        store
            .insert_api_token(f.user, "chatd_chosen")
            .await
            .unwrap();
        let id = store
            .list_api_tokens(f.user)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.id != named.id)
            .unwrap()
            .id;
        store.revoke_api_token(f.user, id).await.unwrap();
        assert_eq!(
            store
                .insert_api_token(f.user, "chatd_chosen")
                .await
                .unwrap(),
            TokenCheck::Revoked
        );
        assert_eq!(
            store.check_api_token("chatd_unknown").await.unwrap(),
            TokenCheck::Unknown
        );
    })
    .await;
}

#[tokio::test]
async fn concurrent_revocations_keep_the_last_administrator_token() {
    on_each_backend(|store| async move {
        let admin = admin_user(&store, "root").await;
        for round in 0..5 {
            let mut ids = Vec::new();
            for i in 0..2 {
                let (t, _) = store
                    .issue_api_token(admin, NewApiToken::new(Some(format!("r{round}-{i}")), None))
                    .await
                    .unwrap();
                ids.push(t.id);
            }
            // Leave exactly these two live.
            for t in store.list_api_tokens(admin).await.unwrap() {
                if !ids.contains(&t.id) {
                    store.revoke_api_token(admin, t.id).await.unwrap();
                }
            }
            let (a, b) = tokio::join!(
                store.revoke_api_token(admin, ids[0]),
                store.revoke_api_token(admin, ids[1])
            );
            let refused = [a, b]
                .into_iter()
                .filter(|r| r.as_ref().is_err_and(|e| e.kind() == ErrorKind::Conflict))
                .count();
            assert_eq!(
                refused, 1,
                "round {round}: exactly one revocation is refused"
            );
            assert_eq!(store.list_api_tokens(admin).await.unwrap().len(), 1);
        }
    })
    .await;
}
