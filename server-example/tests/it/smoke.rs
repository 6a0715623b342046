//! The server starts, answers health checks, and unknown routes get JSON 404s, on both
//! backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use chatd_test_support::db::on_each_backend;
use chatd_test_support::scripted::ScriptedModel;
use chatd_test_support::server::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_and_json_not_found() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let health = server
            .http
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        // Unknown routes are JSON 404s.
        let r = server
            .http
            .get(server.api("/no/such/route"))
            .header("Coder-Session-Token", &server.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let _: codersdk::Response = r.json().await.unwrap();
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_methods_and_wrong_shapes_get_json_errors() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        // A route that exists, with a method it does not take.
        let r = server
            .http
            .delete(format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405);
        let _: codersdk::Response = r.json().await.unwrap();
        // A JSON body with a field of the wrong type is a 400, not axum's 422.
        let r = server
            .http
            .put(server.api("/chats/config/user-prompt"))
            .header("Coder-Session-Token", &server.admin_token)
            .header("Content-Type", "application/json")
            .body(r#"{"custom_prompt": 42}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let body: codersdk::Response = r.json().await.unwrap();
        assert!(body.message.contains("shape"), "{body:?}");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_leaves_no_sqlite_wal_behind() {
    use chatd_core::StoreOptions;
    use chatd_test_support::db::TestDatabase;
    use chatd_test_support::server::test_keyring;
    use server_example::state::{build, ServerOptions};

    let db = TestDatabase::sqlite();
    let path = db.path().unwrap().to_path_buf();
    let wal = || {
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
    };
    let mut options = ServerOptions::new(StoreOptions::new(db.url()), test_keyring());
    options.engine = chatd_test_support::scripted::fast_settings();
    options.models = Some(chatd_test_support::scripted::ScriptedResolver::new(
        ScriptedModel::new([]),
    ));
    // The first start creates the administrator and their token: writes in the WAL.
    let started = build(options).await.unwrap();
    assert!(started.generated_admin_token.is_some());
    assert!(wal() > 0, "the bootstrap wrote to the WAL");
    started.state.shutdown().await;
    assert_eq!(wal(), 0, "a graceful stop leaves no WAL content");
    db.remove().await;
}
