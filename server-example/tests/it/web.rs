//! The chat page as the server serves it (docs/web.md): `index.html` on `/` and the page
//! paths with a strict Content-Security-Policy, hashed assets cached for good, JSON 404s
//! for unknown assets and JSON 405s for other methods. The page itself is tested in a
//! browser by `server-example/web/tests/browser.mjs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use chatd_test_support::db::on_each_backend;
use chatd_test_support::scripted::ScriptedModel;
use chatd_test_support::server::TestServer;
use server_example::web::{
    ASSETS_PREFIX, ASSET_CACHE_CONTROL, INDEX_CACHE_CONTROL, REFERRER_POLICY,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_served_with_their_headers() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let get = |path: String| {
            let http = server.http.clone();
            let url = format!("{}{path}", server.base);
            async move { http.get(url).send().await.unwrap() }
        };
        let chat = uuid::Uuid::new_v4();
        let mut html = String::new();
        for path in [
            "/".to_owned(),
            "/admin".to_owned(),
            format!("/chats/{chat}"),
        ] {
            let r = get(path.clone()).await;
            assert_eq!(r.status(), 200, "{path}");
            let h = r.headers();
            assert_eq!(h["content-type"], "text/html; charset=utf-8");
            assert_eq!(h["cache-control"], INDEX_CACHE_CONTROL);
            assert_eq!(h["x-content-type-options"], "nosniff");
            assert_eq!(h["referrer-policy"], REFERRER_POLICY);
            let csp = h["content-security-policy"].to_str().unwrap().to_owned();
            assert!(csp.contains("script-src 'self';"), "{csp}");
            assert!(csp.contains("default-src 'none';"), "{csp}");
            assert!(!csp.contains("unsafe"), "{csp}");
            html = r.text().await.unwrap();
        }
        // No inline script: the page loads its hashed script and stylesheet.
        assert!(!html.contains("<script>"), "{html}");
        let assets: Vec<&str> = html
            .split(&format!("{ASSETS_PREFIX}/"))
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert_eq!(assets.len(), 2, "{html}");
        for name in assets {
            let r = get(format!("{ASSETS_PREFIX}/{name}")).await;
            assert_eq!(r.status(), 200, "{name}");
            assert_eq!(r.headers()["cache-control"], ASSET_CACHE_CONTROL);
            assert_eq!(r.headers()["x-content-type-options"], "nosniff");
            let ty = r.headers()["content-type"].to_str().unwrap().to_owned();
            assert!(
                ty.starts_with(if name.ends_with(".js") {
                    "text/javascript"
                } else {
                    "text/css"
                }),
                "{name}: {ty}"
            );
            assert!(!r.bytes().await.unwrap().is_empty());
        }
        // Unknown assets are JSON 404s; other methods JSON 405s.
        for name in ["app-NOPE.js", "..%2Fmanifest.rs", "index.html"] {
            let r = get(format!("{ASSETS_PREFIX}/{name}")).await;
            assert_eq!(r.status(), 404, "{name}");
            let _: codersdk::Response = r.json().await.unwrap();
        }
        let r = server
            .http
            .post(format!("{}/", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405);
        let _: codersdk::Response = r.json().await.unwrap();
        server.stop().await;
    })
    .await;
}
