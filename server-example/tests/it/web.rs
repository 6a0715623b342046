//! The chat page as the server serves it (docs/web.md): `index.html` on `/` and the page
//! paths with a strict Content-Security-Policy, hashed assets cached for good, JSON 404s
//! for unknown assets and JSON 405s for other methods, each file in the coding the request
//! accepts. The page itself is tested in a browser by `server-example/web/tests/browser.mjs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use chatd_test_support::db::on_each_backend;
use chatd_test_support::scripted::ScriptedModel;
use chatd_test_support::server::TestServer;
use std::io::Read;

use server_example::web::accept_encoding::MAX_ACCEPT_ENCODING_LEN;
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
        for name in [
            "app-NOPE.js",
            "..%2Fmanifest.rs",
            "index.html",
            "index.html.gz",
        ] {
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

/// The names of the assets `index.html` loads.
fn asset_names(html: &str) -> Vec<String> {
    html.split(&format!("{ASSETS_PREFIX}/"))
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// `bytes` decoded from `coding` (`None` for the identity).
fn decoded(coding: Option<&str>, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        None => out.extend_from_slice(bytes),
        Some("gzip") => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("br") => {
            brotli_decompressor::Decompressor::new(bytes, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some(other) => panic!("unexpected Content-Encoding {other}"),
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_file_is_sent_in_the_coding_the_request_accepts() {
    on_each_backend(|store| async move {
        let server = TestServer::start(&store, ScriptedModel::new([])).await;
        let send = |method: reqwest::Method, path: &str, accept: Option<&str>| {
            let mut request = server
                .http
                .request(method, format!("{}{path}", server.base));
            if let Some(accept) = accept {
                request = request.header("accept-encoding", accept);
            }
            async move { request.send().await.unwrap() }
        };
        let html = send(reqwest::Method::GET, "/", None)
            .await
            .text()
            .await
            .unwrap();
        let assets = asset_names(&html);
        assert_eq!(assets.len(), 2, "{html}");
        // Just over the limit, yet a valid list naming gzip first.
        let too_long = format!("gzip{}", ", zstd".repeat(MAX_ACCEPT_ENCODING_LEN / 6 + 1));
        assert!(too_long.len() > MAX_ACCEPT_ENCODING_LEN);
        let fits = format!("gzip{}", ", zstd".repeat((MAX_ACCEPT_ENCODING_LEN - 4) / 6));
        assert!(fits.len() <= MAX_ACCEPT_ENCODING_LEN);
        let cases: &[(Option<&str>, Option<&str>)] = &[
            (None, None),
            (Some("gzip, deflate, br, zstd"), Some("br")),
            (Some("gzip, deflate"), Some("gzip")),
            (Some("br;q=0, gzip"), Some("gzip")),
            (Some("br;q=0.5, gzip;q=0.8"), Some("gzip")),
            (Some("gzip;q=0.5, identity"), None),
            (Some("*"), Some("br")),
            (Some("br;q=0, gzip;q=0"), None),
            (Some("*;q=0"), None),
            (Some("identity"), None),
            (Some("deflate, zstd"), None),
            (Some(""), None),
            (Some("gzip;q=2, br"), None),
            (Some("gzip;level=9"), None),
            (Some(&fits), Some("gzip")),
            (Some(&too_long), None),
        ];
        for path in std::iter::once("/".to_owned())
            .chain(assets.iter().map(|name| format!("{ASSETS_PREFIX}/{name}")))
        {
            let identity = send(reqwest::Method::GET, &path, None)
                .await
                .bytes()
                .await
                .unwrap();
            for (accept, expected) in cases {
                let r = send(reqwest::Method::GET, &path, *accept).await;
                let what = format!("{path} with {accept:?}");
                assert_eq!(r.status(), 200, "{what}");
                let h = r.headers().clone();
                assert_eq!(h["vary"], "accept-encoding", "{what}");
                let coding = h.get("content-encoding").map(|v| v.to_str().unwrap());
                assert_eq!(coding, *expected, "{what}");
                // The headers of the identity answer, unchanged.
                let index = path == "/";
                assert_eq!(
                    h["cache-control"],
                    if index {
                        INDEX_CACHE_CONTROL
                    } else {
                        ASSET_CACHE_CONTROL
                    },
                    "{what}"
                );
                assert!(h["content-type"]
                    .to_str()
                    .unwrap()
                    .ends_with("charset=utf-8"));
                assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
                assert_eq!(h["x-frame-options"], "DENY", "{what}");
                assert_eq!(h["referrer-policy"], REFERRER_POLICY, "{what}");
                let csp = h["content-security-policy"].to_str().unwrap();
                assert!(csp.contains("default-src 'none';"), "{what}: {csp}");
                let length: usize = h["content-length"].to_str().unwrap().parse().unwrap();
                let body = r.bytes().await.unwrap();
                assert_eq!(length, body.len(), "{what}");
                if expected.is_some() {
                    assert!(body.len() < identity.len(), "{what}");
                }
                assert!(decoded(*expected, &body) == identity, "{what}: other bytes");

                // HEAD: the same headers, no body.
                let r = send(reqwest::Method::HEAD, &path, *accept).await;
                assert_eq!(r.status(), 200, "HEAD {what}");
                let head = r.headers().clone();
                for name in ["content-encoding", "content-length", "vary", "content-type"] {
                    assert_eq!(head.get(name), h.get(name), "HEAD {what}: {name}");
                }
                assert!(r.bytes().await.unwrap().is_empty(), "HEAD {what}");
            }
        }
        // The variants are not assets of their own.
        for name in &assets {
            for suffix in [".gz", ".br"] {
                let r = send(
                    reqwest::Method::GET,
                    &format!("{ASSETS_PREFIX}/{name}{suffix}"),
                    Some("gzip, br"),
                )
                .await;
                assert_eq!(r.status(), 404, "{name}{suffix}");
            }
        }
        server.stop().await;
    })
    .await;
}
