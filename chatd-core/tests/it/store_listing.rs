//! Store tests of the chat list, read markers and chat metadata updates. Every test runs on
//! SQLite (a fresh temp file) and, when `CHATD_TEST_DATABASE_URL` names a PostgreSQL
//! database, also on PostgreSQL (a fresh schema dropped afterwards).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashSet};

use chatd_core::store::{
    now_micros, ChatListQuery, HiddenUsage, MessageVisibility, NewMessage, NewUser, SendMessage,
    SendOutcome, Step, Store, TurnOutcome, MAX_TURN_SUMMARY_RUNES,
};
use chatd_core::ErrorKind;
use codersdk::{
    Chat, ChatBusyBehavior, ChatDiffStatus, ChatMessagePart, ChatMessageRole, ChatPlanMode, Uuid,
    ValidatedChatUpdate, DEFAULT_CHAT_LIST_LIMIT, MAX_CHAT_LABELS, MAX_CHAT_LIST_LIMIT,
    MAX_CHAT_LIST_OFFSET,
};

use chatd_test_support::db::*;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

async fn chat_titled(store: &Store, f: &Fixture, title: &str) -> Uuid {
    let mut new = new_chat(f, "hello");
    new.title = title.into();
    store.create_chat(new).await.unwrap().0.id
}

async fn chat_labelled(store: &Store, f: &Fixture, labels: &[(&str, &str)]) -> Uuid {
    let mut new = new_chat(f, "hello");
    new.labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    store.create_chat(new).await.unwrap().0.id
}

/// A sub-agent chat of `root` (the store has no spawn operation yet, so it is inserted).
async fn child_of(store: &Store, f: &Fixture, root: Uuid, title: &str, updated_at: i64) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO chats (id, organization_id, owner_id, parent_chat_id, root_chat_id, \
         last_model_config_id, title, status, client_type, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4, $5, $6, 'waiting', 'api', $7, $7)",
    )
    .bind(id.to_string())
    .bind(f.org.to_string())
    .bind(f.user.to_string())
    .bind(root.to_string())
    .bind(Uuid::new_v4().to_string())
    .bind(title)
    .bind(updated_at)
    .execute(store.pool())
    .await
    .unwrap();
    id
}

async fn second_user(store: &Store, f: &Fixture) -> Fixture {
    let bob = store
        .create_user(NewUser {
            username: "bob".into(),
            name: "Bob".into(),
            role: chatd_core::Role::Member,
        })
        .await
        .unwrap();
    store.add_member(f.org, bob.id).await.unwrap();
    Fixture {
        org: f.org,
        user: bob.id,
    }
}

async fn exec(store: &Store, sql: &str, chat: Uuid) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(chat.to_string())
        .execute(store.pool())
        .await
        .unwrap();
}

async fn set_updated_at(store: &Store, chat: Uuid, at: i64) {
    sqlx::query("UPDATE chats SET updated_at = $2 WHERE id = $1")
        .bind(chat.to_string())
        .bind(at)
        .execute(store.pool())
        .await
        .unwrap();
}

async fn updated_at(store: &Store, chat: Uuid) -> i64 {
    sqlx::query_scalar("SELECT updated_at FROM chats WHERE id = $1")
        .bind(chat.to_string())
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// Archives as `set_archived` will: archived and unpinned, without renumbering.
async fn archive(store: &Store, chat: Uuid) {
    exec(
        store,
        "UPDATE chats SET archived = 1, pin_order = 0 WHERE id = $1",
        chat,
    )
    .await;
}

fn query(q: &str) -> ChatListQuery {
    ChatListQuery::parse(Some(q), Vec::<&str>::new(), None, None, None).unwrap()
}

async fn list(store: &Store, owner: Uuid, q: &str) -> Vec<Chat> {
    store.list_chats(owner, &query(q)).await.unwrap()
}

async fn list_ids(store: &Store, owner: Uuid, q: &str) -> Vec<Uuid> {
    ids(&list(store, owner, q).await)
}

fn ids(chats: &[Chat]) -> Vec<Uuid> {
    chats.iter().map(|c| c.id).collect()
}

fn set(ids: &[Uuid]) -> HashSet<Uuid> {
    ids.iter().copied().collect()
}

fn page(limit: i64, after_id: Option<Uuid>) -> ChatListQuery {
    let mut q = ChatListQuery::default();
    q.page.limit = limit;
    q.page.after_id = after_id;
    q
}

fn pin(order: i32) -> ValidatedChatUpdate {
    ValidatedChatUpdate {
        pin_order: Some(order),
        ..ValidatedChatUpdate::default()
    }
}

async fn pin_orders(store: &Store, chats: &[Uuid]) -> Vec<i32> {
    let mut out = Vec::new();
    for id in chats {
        out.push(store.get_chat(*id).await.unwrap().unwrap().pin_order);
    }
    out
}

async fn has_unread(store: &Store, chat: Uuid) -> bool {
    store.get_chat(chat).await.unwrap().unwrap().has_unread
}

fn assistant(text: &str, visibility: MessageVisibility) -> NewMessage {
    NewMessage {
        role: ChatMessageRole::Assistant,
        parts: vec![ChatMessagePart::text(text)],
        visibility,
        created_by: None,
        model_config_id: None,
        usage: None,
    }
}

async fn insert(store: &Store, chat: Uuid, message: NewMessage) -> i64 {
    let mut tx = store.begin_chat_tx(chat).await.unwrap();
    let m = tx.insert_message(message).await.unwrap();
    tx.commit().await.unwrap();
    m.id
}

// ---------------------------------------------------------------------------------------
// Listing, order and filters
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn list_holds_the_owners_root_chats_newest_activity_first() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let bob = second_user(&store, &f).await;
        let base = now_micros();
        let old = chat_titled(&store, &f, "old").await;
        let mid = chat_titled(&store, &f, "mid").await;
        let new = chat_titled(&store, &f, "new").await;
        let tie_a = chat_titled(&store, &f, "tie a").await;
        let tie_b = chat_titled(&store, &f, "tie b").await;
        set_updated_at(&store, old, base + 10).await;
        set_updated_at(&store, mid, base + 20).await;
        set_updated_at(&store, new, base + 30).await;
        set_updated_at(&store, tie_a, base + 5).await;
        set_updated_at(&store, tie_b, base + 5).await;
        child_of(&store, &f, mid, "sub-agent", base + 99).await;
        let foreign = chat_titled(&store, &bob, "bob's").await;

        let (hi, lo) = if tie_a > tie_b {
            (tie_a, tie_b)
        } else {
            (tie_b, tie_a)
        };
        assert_eq!(
            list_ids(&store, f.user, "").await,
            vec![new, mid, old, hi, lo],
            "updated_at descending, then id descending; no sub-agent or foreign chat"
        );
        assert_eq!(list_ids(&store, bob.user, "").await, vec![foreign]);
        assert!(list_ids(&store, Uuid::new_v4(), "").await.is_empty());

        // List rows carry what a single read does, plus the list's diff status stub.
        for listed in list(&store, f.user, "").await {
            let mut single = store.get_chat(listed.id).await.unwrap().unwrap();
            assert_eq!(
                listed.diff_status,
                Some(ChatDiffStatus {
                    chat_id: listed.id,
                    ..ChatDiffStatus::default()
                })
            );
            single.diff_status = listed.diff_status.clone();
            single.children = listed.children.clone();
            assert_eq!(listed, single);
        }
    })
    .await;
}

#[tokio::test]
async fn every_search_filter_applies() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let deploy = chat_titled(&store, &f, "Deploy the API").await;
        let literal = chat_titled(&store, &f, "ship 100%_done").await;
        let lookalike = chat_titled(&store, &f, "ship 100xyd").await;
        let other = chat_titled(&store, &f, "Other").await;
        let archived = chat_titled(&store, &f, "deploy old").await;
        archive(&store, archived).await;
        exec(
            &store,
            "UPDATE chats SET status = 'error' WHERE id = $1",
            other,
        )
        .await;
        exec(
            &store,
            "UPDATE chats SET status = 'waiting' WHERE id = $1",
            deploy,
        )
        .await;
        insert(&store, other, assistant("done", MessageVisibility::Both)).await;
        let live = set(&[deploy, literal, lookalike, other]);

        let cases: Vec<(&str, HashSet<Uuid>)> = vec![
            ("", live.clone()),
            ("archived:false", live.clone()),
            ("archived:true", set(&[archived])),
            ("archived:any", &live | &set(&[archived])),
            // Case-insensitive substring of the title.
            ("title:deploy", set(&[deploy])),
            ("title:API", set(&[deploy])),
            ("archived:any title:DEPLOY", set(&[deploy, archived])),
            // `%` and `_` are literal characters, not wildcards.
            (r#"title:"0%_d""#, set(&[literal])),
            ("title:nothing", set(&[])),
            ("status:error", set(&[other])),
            ("status:waiting", set(&[deploy])),
            ("status:pending", set(&[literal, lookalike])),
            ("status:completed", set(&[])),
            ("has_unread:true", set(&[other])),
            ("has_unread:false", set(&[deploy, literal, lookalike])),
            // Full text: every word, in any order, anywhere in the title.
            (r#"search:"api deploy""#, set(&[deploy])),
            (r#"search:"deploy missing""#, set(&[])),
            ("search:ship", set(&[literal, lookalike])),
            // No chat has a pull request this server knows of.
            ("pr_status:none", live.clone()),
            ("pr_status:open", set(&[])),
            ("pr_status:merged", set(&[])),
            ("diff_url:https://github.com/o/r/pull/1", set(&[])),
            ("pr:1", set(&[])),
            ("repo:coder/coder", set(&[])),
            ("pr_title:fix", set(&[])),
            ("status:error has_unread:true title:oth", set(&[other])),
            ("status:error has_unread:false", set(&[])),
        ];
        for (q, want) in cases {
            let got = list_ids(&store, f.user, q).await;
            assert_eq!(got.len(), set(&got).len(), "{q}: duplicates");
            assert_eq!(set(&got), want, "{q}");
        }
    })
    .await;
}

#[tokio::test]
async fn label_filters_must_all_match_and_labels_come_back() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let both = chat_labelled(&store, &f, &[("env", "prod"), ("team", "core")]).await;
        let env = chat_labelled(&store, &f, &[("env", "prod")]).await;
        let team = chat_labelled(&store, &f, &[("team", "core"), ("env", "dev")]).await;
        let none = chat_labelled(&store, &f, &[]).await;
        let by = |labels: &'static [&'static str]| {
            let store = store.clone();
            async move {
                let q = ChatListQuery::parse(None, labels, None, None, None).unwrap();
                set(&ids(&store.list_chats(f.user, &q).await.unwrap()))
            }
        };
        assert_eq!(by(&[]).await, set(&[both, env, team, none]));
        assert_eq!(by(&["env:prod"]).await, set(&[both, env]));
        assert_eq!(by(&["env:prod", "team:core"]).await, set(&[both]));
        assert_eq!(by(&["team:core", "env:dev"]).await, set(&[team]));
        assert_eq!(by(&["env:staging"]).await, set(&[]));
        // The value must match too, not just the key.
        assert_eq!(by(&["team:cor"]).await, set(&[]));

        let listed = list(&store, f.user, "").await;
        let labels_of = |id: Uuid| listed.iter().find(|c| c.id == id).unwrap().labels.clone();
        assert_eq!(
            labels_of(both),
            BTreeMap::from([
                ("env".to_owned(), "prod".to_owned()),
                ("team".to_owned(), "core".to_owned())
            ])
        );
        assert!(labels_of(none).is_empty());

        // The largest filter set codersdk accepts is applied in one query.
        let many: Vec<(String, String)> = (0..MAX_CHAT_LABELS)
            .map(|i| (format!("k{i}"), format!("v{i}")))
            .collect();
        let refs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let full = chat_labelled(&store, &f, &refs).await;
        let filters: Vec<String> = many.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        let q = ChatListQuery::parse(None, &filters, None, None, None).unwrap();
        assert_eq!(
            ids(&store.list_chats(f.user, &q).await.unwrap()),
            vec![full]
        );
        let mut too_many = filters.clone();
        too_many.push("extra:1".into());
        let err = ChatListQuery::parse(None, &too_many, None, None, None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(err.to_response().validations[0].field, "label");
    })
    .await;
}

#[tokio::test]
async fn children_follow_their_root_under_the_archived_filter() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let base = now_micros();
        let root = chat_labelled(&store, &f, &[("kind", "root")]).await;
        let lonely = chat_titled(&store, &f, "no children").await;
        set_updated_at(&store, root, base + 50).await;
        set_updated_at(&store, lonely, base + 10).await;
        let older = child_of(&store, &f, root, "older child", base + 1).await;
        let newer = child_of(&store, &f, root, "newer child", base + 2).await;
        let gone = child_of(&store, &f, root, "archived child", base + 3).await;
        archive(&store, gone).await;
        sqlx::query("INSERT INTO chat_labels (chat_id, key, value) VALUES ($1, 'kind', 'child')")
            .bind(newer.to_string())
            .execute(store.pool())
            .await
            .unwrap();

        let page = list(&store, f.user, "").await;
        assert_eq!(
            ids(&page),
            vec![root, lonely],
            "sub-agents are not listed on their own"
        );
        assert_eq!(ids(&page[0].children), vec![newer, older]);
        assert!(page[1].children.is_empty());
        let child = &page[0].children[0];
        assert_eq!(child.parent_chat_id, Some(root));
        assert_eq!(child.root_chat_id, Some(root));
        assert_eq!(child.labels.get("kind").map(String::as_str), Some("child"));
        assert_eq!(child.diff_status.as_ref().map(|d| d.chat_id), Some(newer));
        assert!(child.children.is_empty());
        assert_eq!(
            page[0].labels.get("kind").map(String::as_str),
            Some("root"),
            "a root's labels are its own, not its children's"
        );

        let any = list(&store, f.user, "archived:any").await;
        assert_eq!(ids(&any[0].children), vec![gone, newer, older]);
        // An archived family: the root and its archived children.
        archive(&store, root).await;
        archive(&store, newer).await;
        archive(&store, older).await;
        let archived = list(&store, f.user, "archived:true").await;
        assert_eq!(ids(&archived), vec![root]);
        assert_eq!(ids(&archived[0].children), vec![gone, newer, older]);
        // Filters other than `archived` select roots only; children come along unfiltered.
        let titled = list(&store, f.user, "archived:true title:child").await;
        assert!(titled.is_empty());
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Paging
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn cursor_pages_have_no_duplicates_or_gaps_while_chats_change() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let base = now_micros() - 1_000_000_000;
        let mut chats = Vec::new();
        for i in 0..12 {
            let id = chat_titled(&store, &f, &format!("chat {i}")).await;
            set_updated_at(&store, id, base + 10 * i).await;
            chats.push(id);
        }
        // Newest first: chats[11] .. chats[0].
        let expected: Vec<Uuid> = chats.iter().rev().copied().collect();

        let first = ids(&store.list_chats(f.user, &page(4, None)).await.unwrap());
        assert_eq!(first, expected[..4]);
        // Activity meanwhile: a chat already seen jumps to the top, a new chat appears.
        set_updated_at(&store, chats[10], base + 1_000).await;
        let fresh = chat_titled(&store, &f, "created meanwhile").await;

        let second = ids(&store
            .list_chats(f.user, &page(4, first.last().copied()))
            .await
            .unwrap());
        assert_eq!(second, expected[4..8]);
        // The previous cursor and another seen chat move; so does one not seen yet.
        set_updated_at(&store, chats[8], base + 2_000).await;
        set_updated_at(&store, chats[6], base + 3_000).await;

        let third = ids(&store
            .list_chats(f.user, &page(4, second.last().copied()))
            .await
            .unwrap());
        assert_eq!(third, expected[8..]);
        let fourth = store
            .list_chats(f.user, &page(4, third.last().copied()))
            .await
            .unwrap();
        assert!(fourth.is_empty());

        let all: Vec<Uuid> = [first, second, third].concat();
        assert_eq!(all.len(), 12);
        assert_eq!(set(&all), set(&chats), "every chat exactly once");
        // Chats updated during the pass are at the top of a fresh first page.
        let top = ids(&store.list_chats(f.user, &page(4, None)).await.unwrap());
        assert_eq!(top, vec![fresh, chats[6], chats[8], chats[10]]);
    })
    .await;
}

#[tokio::test]
async fn cursor_must_be_one_of_the_owners_chats() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let bob = second_user(&store, &f).await;
        let base = now_micros();
        let a = chat_titled(&store, &f, "a").await;
        let b = chat_titled(&store, &f, "b").await;
        let c = chat_titled(&store, &f, "c").await;
        set_updated_at(&store, a, base + 3).await;
        set_updated_at(&store, b, base + 2).await;
        set_updated_at(&store, c, base + 1).await;
        let foreign = chat_titled(&store, &bob, "bob's").await;
        for cursor in [foreign, Uuid::new_v4()] {
            let err = store
                .list_chats(f.user, &page(10, Some(cursor)))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            assert_eq!(err.http_status(), 400);
            let body = err.to_response();
            assert_eq!(body.validations[0].field, "after_id");
        }
        // A cursor chat archived meanwhile keeps its place in the order.
        archive(&store, b).await;
        let after_b = store.list_chats(f.user, &page(10, Some(b))).await.unwrap();
        assert_eq!(ids(&after_b), vec![c]);
    })
    .await;
}

#[tokio::test]
async fn page_size_and_offset_edges() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let total = usize::try_from(MAX_CHAT_LIST_LIMIT).unwrap() + 1;
        let mut chats = Vec::new();
        for i in 0..total {
            chats.push(chat_titled(&store, &f, &format!("chat {i}")).await);
        }
        let parse = |limit: Option<&str>, offset: Option<&str>| {
            ChatListQuery::parse(None, Vec::<&str>::new(), limit, offset, None)
        };
        let count = |q: ChatListQuery| {
            let store = store.clone();
            async move { store.list_chats(f.user, &q).await.unwrap().len() }
        };
        let max = MAX_CHAT_LIST_LIMIT.to_string();
        assert_eq!(
            count(parse(Some(&max), None).unwrap()).await,
            usize::try_from(MAX_CHAT_LIST_LIMIT).unwrap()
        );
        let over = (MAX_CHAT_LIST_LIMIT + 1).to_string();
        let err = parse(Some(&over), None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(err.to_response().validations[0].field, "limit");
        let default = usize::try_from(DEFAULT_CHAT_LIST_LIMIT).unwrap();
        assert_eq!(count(parse(None, None).unwrap()).await, default);
        assert_eq!(count(parse(Some("0"), None).unwrap()).await, default);
        assert_eq!(count(parse(Some("1"), None).unwrap()).await, 1);
        // A page built by hand is clamped to the same bounds.
        assert_eq!(
            count(page(10 * MAX_CHAT_LIST_LIMIT, None)).await,
            usize::try_from(MAX_CHAT_LIST_LIMIT).unwrap()
        );
        assert_eq!(count(page(0, None)).await, 1);

        let offset = MAX_CHAT_LIST_LIMIT.to_string();
        let rest = store
            .list_chats(f.user, &parse(None, Some(&offset)).unwrap())
            .await
            .unwrap();
        let everything = store
            .list_chats(f.user, &parse(Some(&max), None).unwrap())
            .await
            .unwrap();
        assert_eq!(rest.len(), 1);
        assert!(!ids(&everything).contains(&rest[0].id));
        let far = MAX_CHAT_LIST_OFFSET.to_string();
        assert_eq!(count(parse(None, Some(&far)).unwrap()).await, 0);
        let beyond = (MAX_CHAT_LIST_OFFSET + 1).to_string();
        let err = parse(None, Some(&beyond)).unwrap_err();
        assert_eq!(err.to_response().validations[0].field, "offset");
        assert!(parse(None, Some("-1")).is_err());

        // Offset counts from the cursor.
        let mut q = page(2, Some(everything[0].id));
        q.page.offset = 1;
        let got = ids(&store.list_chats(f.user, &q).await.unwrap());
        assert_eq!(got, vec![everything[2].id, everything[3].id]);
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Pinning
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn pin_unpin_and_reorder_keep_positions_contiguous() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let base = now_micros();
        let mut chats = Vec::new();
        for i in 0..5 {
            let id = chat_titled(&store, &f, &format!("chat {i}")).await;
            set_updated_at(&store, id, base + i).await;
            chats.push(id);
        }
        let [a, b, c, d, e] = [chats[0], chats[1], chats[2], chats[3], chats[4]];

        // Pinning appends; the requested position of an unpinned chat is ignored.
        assert_eq!(store.update_chat(a, &pin(1)).await.unwrap().pin_order, 1);
        assert_eq!(store.update_chat(b, &pin(1)).await.unwrap().pin_order, 2);
        assert_eq!(store.update_chat(c, &pin(7)).await.unwrap().pin_order, 3);
        assert_eq!(pin_orders(&store, &[a, b, c, d, e]).await, [1, 2, 3, 0, 0]);
        // Pinned first by position, then the rest by activity.
        assert_eq!(list_ids(&store, f.user, "").await, vec![a, b, c, e, d]);

        // Moving shifts the neighbours.
        store.update_chat(c, &pin(1)).await.unwrap();
        assert_eq!(pin_orders(&store, &[c, a, b]).await, [1, 2, 3]);
        // Positions are clamped to the pinned list.
        store.update_chat(c, &pin(99)).await.unwrap();
        assert_eq!(pin_orders(&store, &[a, b, c]).await, [1, 2, 3]);
        store.update_chat(b, &pin(2)).await.unwrap();
        assert_eq!(pin_orders(&store, &[a, b, c]).await, [1, 2, 3]);
        // Unpinning closes the gap; unpinning an unpinned chat changes nothing.
        store.update_chat(a, &pin(0)).await.unwrap();
        assert_eq!(pin_orders(&store, &[a, b, c]).await, [0, 1, 2]);
        store.update_chat(d, &pin(0)).await.unwrap();
        assert_eq!(pin_orders(&store, &[a, b, c, d]).await, [0, 1, 2, 0]);

        // Archiving leaves a hole (the archive path does not renumber); the next pin
        // operation renumbers contiguously, and the archived chat takes no position.
        store.update_chat(d, &pin(1)).await.unwrap();
        assert_eq!(pin_orders(&store, &[b, c, d]).await, [1, 2, 3]);
        archive(&store, b).await;
        assert_eq!(pin_orders(&store, &[b, c, d]).await, [0, 2, 3]);
        store.update_chat(e, &pin(1)).await.unwrap();
        assert_eq!(pin_orders(&store, &[b, c, d, e]).await, [0, 1, 2, 3]);

        // The pinned block pages with the cursor like everything else.
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let chunk = ids(&store.list_chats(f.user, &page(2, after)).await.unwrap());
            if chunk.is_empty() {
                break;
            }
            after = chunk.last().copied();
            seen.extend(chunk);
        }
        assert_eq!(seen, vec![c, d, e, a]);
    })
    .await;
}

#[tokio::test]
async fn archived_and_sub_agent_chats_cannot_be_pinned() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let root = chat_titled(&store, &f, "root").await;
        let child = child_of(&store, &f, root, "child", now_micros()).await;
        let archived = chat_titled(&store, &f, "archived").await;
        archive(&store, archived).await;
        for chat in [child, archived] {
            let err = store.update_chat(chat, &pin(1)).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            assert_eq!(err.to_response().validations[0].field, "pin_order");
            // Unpinning them is harmless.
            assert_eq!(store.update_chat(chat, &pin(0)).await.unwrap().pin_order, 0);
        }
        // A refused update writes nothing, even the fields before the refusal.
        let mixed = ValidatedChatUpdate {
            title: Some("renamed".into()),
            pin_order: Some(1),
            ..ValidatedChatUpdate::default()
        };
        assert!(store.update_chat(archived, &mixed).await.is_err());
        let after = store.get_chat(archived).await.unwrap().unwrap();
        assert_eq!(after.title, "archived");
        assert_eq!(
            store
                .update_chat(Uuid::new_v4(), &pin(1))
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::NotFound
        );
    })
    .await;
}

#[tokio::test]
async fn concurrent_pins_get_distinct_positions() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let mut chats = Vec::new();
        for i in 0..8 {
            chats.push(chat_titled(&store, &f, &format!("chat {i}")).await);
        }
        let pins = chats.iter().map(|id| {
            let store = store.clone();
            let id = *id;
            async move { store.update_chat(id, &pin(1)).await.map(|c| c.pin_order) }
        });
        let results = futures_util::future::join_all(pins).await;
        assert!(results.iter().all(Result::is_ok));
        let mut orders = pin_orders(&store, &chats).await;
        orders.sort_unstable();
        assert_eq!(orders, (1..=8).collect::<Vec<i32>>());
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Updates, titles, summaries
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn update_chat_applies_its_fields_without_bumping_updated_at() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let chat = chat_labelled(&store, &f, &[("old", "1")]).await;
        let before = updated_at(&store, chat).await;
        let labels: BTreeMap<String, String> = (0..MAX_CHAT_LABELS)
            .map(|i| (format!("k{i}"), "v".to_owned()))
            .collect();
        let update = ValidatedChatUpdate {
            title: Some("Renamed".into()),
            labels: Some(labels.clone()),
            plan_mode: Some(true),
            pin_order: Some(1),
            archived: Some(true),
            workspace_id: Some(None),
        };
        let updated = store.update_chat(chat, &update).await.unwrap();
        assert_eq!(updated.title, "Renamed");
        assert_eq!(updated.labels, labels, "the whole set is replaced");
        assert_eq!(updated.plan_mode, Some(ChatPlanMode::Plan));
        assert_eq!(updated.pin_order, 1);
        assert!(!updated.archived, "archiving is set_archived's job");
        assert_eq!(updated.workspace_id, None);
        assert_eq!(updated_at(&store, chat).await, before);
        assert_eq!(store.get_chat(chat).await.unwrap().unwrap(), updated);

        let cleared = store
            .update_chat(
                chat,
                &ValidatedChatUpdate {
                    labels: Some(BTreeMap::new()),
                    plan_mode: Some(false),
                    ..ValidatedChatUpdate::default()
                },
            )
            .await
            .unwrap();
        assert!(cleared.labels.is_empty());
        assert_eq!(cleared.plan_mode, None);
        assert_eq!(cleared.title, "Renamed", "absent fields are unchanged");
        assert_eq!(cleared.pin_order, 1);
        let q = ChatListQuery::parse(None, ["k0:v"], None, None, None).unwrap();
        assert!(store.list_chats(f.user, &q).await.unwrap().is_empty());

        // An empty update changes nothing and still answers with the chat.
        let same = store
            .update_chat(chat, &ValidatedChatUpdate::default())
            .await
            .unwrap();
        assert_eq!(same, cleared);

        let bind = ValidatedChatUpdate {
            workspace_id: Some(Some(Uuid::new_v4())),
            ..ValidatedChatUpdate::default()
        };
        let err = store.update_chat(chat, &bind).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(err.to_response().validations[0].field, "workspace_id");
        assert_eq!(
            store
                .update_chat(Uuid::new_v4(), &ValidatedChatUpdate::default())
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::NotFound
        );
    })
    .await;
}

#[tokio::test]
async fn titles_change_without_bumping_updated_at() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let chat = chat_titled(&store, &f, "first words of the").await;
        let before = updated_at(&store, chat).await;
        assert!(store.set_title(chat, "  Generated title ").await.unwrap());
        let read = store.get_chat(chat).await.unwrap().unwrap();
        assert_eq!(read.title, "Generated title");
        assert!(!store.set_title(chat, "Generated title").await.unwrap());
        assert_eq!(updated_at(&store, chat).await, before);

        let err = store.set_title(chat, "   ").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        let err = store.set_title(Uuid::new_v4(), "x").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    })
    .await;
}

#[tokio::test]
async fn generated_title_loses_to_a_rename() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let chat = chat_titled(&store, &f, "fallback title").await;
        let other = chat_titled(&store, &f, "fallback title").await;
        // The user renames while the title is being generated.
        let rename = ValidatedChatUpdate {
            title: Some("My name".into()),
            ..ValidatedChatUpdate::default()
        };
        store.update_chat(chat, &rename).await.unwrap();
        assert!(!store
            .set_title_if(chat, "fallback title", "Generated")
            .await
            .unwrap());
        assert_eq!(
            store.get_chat(chat).await.unwrap().unwrap().title,
            "My name"
        );
        // Without a rename the generated title applies.
        assert!(store
            .set_title_if(other, "fallback title", "Generated")
            .await
            .unwrap());
        assert_eq!(
            store.get_chat(other).await.unwrap().unwrap().title,
            "Generated"
        );
    })
    .await;
}

#[tokio::test]
async fn turn_summary_is_trimmed_and_does_not_bump_updated_at() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let chat = chat_titled(&store, &f, "c").await;
        let as_of = store.newest_message_id(chat).await.unwrap().unwrap();
        let before = updated_at(&store, chat).await;
        let summary = |chat| {
            let store = store.clone();
            async move {
                store
                    .get_chat(chat)
                    .await
                    .unwrap()
                    .unwrap()
                    .last_turn_summary
            }
        };
        let set = |summary: Option<&str>| {
            let store = store.clone();
            let summary = summary.map(str::to_owned);
            async move {
                store
                    .set_turn_summary_if(chat, as_of, summary)
                    .await
                    .unwrap()
            }
        };
        assert!(set(Some("  Fixed the build\n")).await);
        assert_eq!(summary(chat).await.as_deref(), Some("Fixed the build"));
        assert!(!set(Some("Fixed the build")).await, "unchanged");
        let long = "x".repeat(MAX_TURN_SUMMARY_RUNES + 5);
        assert!(set(Some(&long)).await);
        assert_eq!(
            summary(chat).await.map(|s| s.chars().count()),
            Some(MAX_TURN_SUMMARY_RUNES)
        );
        assert!(set(Some("   ")).await, "blank clears");
        assert_eq!(summary(chat).await, None);
        assert!(!set(None).await, "NULL over NULL is no change");
        assert_eq!(updated_at(&store, chat).await, before);
        let err = store
            .set_turn_summary_if(Uuid::new_v4(), as_of, None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let err = store.newest_message_id(Uuid::new_v4()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    })
    .await;
}

#[tokio::test]
async fn a_turn_summary_is_dropped_once_a_newer_message_exists() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let chat = chat_titled(&store, &f, "c").await;
        let first = store.newest_message_id(chat).await.unwrap().unwrap();
        let summary = || {
            let store = store.clone();
            async move {
                store
                    .get_chat(chat)
                    .await
                    .unwrap()
                    .unwrap()
                    .last_turn_summary
            }
        };
        // A hidden usage row (a model call's accounting) is no newer message: deleted.
        let hidden = store
            .record_hidden_usage(chat, HiddenUsage::default())
            .await
            .unwrap();
        assert!(hidden > first);
        assert_eq!(store.newest_message_id(chat).await.unwrap(), Some(first));
        assert!(store
            .set_turn_summary_if(chat, first, Some("Answered the question".into()))
            .await
            .unwrap());

        // A message of any visibility moves the chat on: a summary begun before it misses.
        let newer = insert(&store, chat, assistant("more", MessageVisibility::Model)).await;
        assert_eq!(store.newest_message_id(chat).await.unwrap(), Some(newer));
        assert!(!store
            .set_turn_summary_if(chat, first, Some("Stale label".into()))
            .await
            .unwrap());
        assert!(!store.set_turn_summary_if(chat, first, None).await.unwrap());
        assert_eq!(summary().await.as_deref(), Some("Answered the question"));
        // One captured after it applies.
        assert!(store
            .set_turn_summary_if(chat, newer, Some("Fresh label".into()))
            .await
            .unwrap());
        assert_eq!(summary().await.as_deref(), Some("Fresh label"));

        // A soft-deleted newest message (an edit's discarded tail) no longer counts.
        exec(
            &store,
            &format!("UPDATE chat_messages SET deleted = 1 WHERE chat_id = $1 AND id = {newer}"),
            chat,
        )
        .await;
        assert_eq!(store.newest_message_id(chat).await.unwrap(), Some(first));
        assert!(!store
            .set_turn_summary_if(chat, newer, Some("Gone".into()))
            .await
            .unwrap());
        assert!(store
            .set_turn_summary_if(chat, first, Some("Back again".into()))
            .await
            .unwrap());
        assert_eq!(summary().await.as_deref(), Some("Back again"));
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Read markers
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn has_unread_follows_visible_assistant_messages_and_the_read_marker() {
    on_each_backend(|store| async move {
        let f = fixture(&store).await;
        let (chat, _) = store.create_chat(new_chat(&f, "hi")).await.unwrap();
        let chat = chat.id;
        assert!(!has_unread(&store, chat).await, "the user's own message");

        let lease = store.claim_pending(Uuid::new_v4(), 1).await.unwrap()[0];
        let step = Step {
            assistant_parts: vec![ChatMessagePart::text("hello")],
            runtime_ms: 1,
            ..Step::default()
        };
        let persisted = store.persist_step(&lease, step).await.unwrap();
        let first_reply = persisted.transition.messages[0].id;
        assert!(has_unread(&store, chat).await);
        assert_eq!(
            list_ids(&store, f.user, "has_unread:true").await,
            vec![chat]
        );
        assert!(list(&store, f.user, "").await[0].has_unread);

        store
            .finish_turn(&lease, TurnOutcome::Completed)
            .await
            .unwrap();
        assert!(
            has_unread(&store, chat).await,
            "finishing does not read the reply"
        );
        let before = updated_at(&store, chat).await;
        store.mark_read(chat, None).await.unwrap();
        assert!(!has_unread(&store, chat).await);
        assert!(!list(&store, f.user, "").await[0].has_unread);
        assert_eq!(
            updated_at(&store, chat).await,
            before,
            "reading is not activity"
        );

        // Messages the user does not see as a reply leave the chat read.
        let sent = store
            .send_message(
                chat,
                SendMessage {
                    parts: vec![ChatMessagePart::text("more")],
                    created_by: Some(f.user),
                    model_config_id: None,
                    busy_behavior: ChatBusyBehavior::Queue,
                    plan_mode: None,
                    mcp_server_ids: None,
                },
            )
            .await
            .unwrap();
        assert!(matches!(sent.outcome, SendOutcome::Inserted(_)));
        insert(&store, chat, assistant("hidden", MessageVisibility::Model)).await;
        let deleted = insert(
            &store,
            chat,
            assistant("edited away", MessageVisibility::Both),
        )
        .await;
        sqlx::query("UPDATE chat_messages SET deleted = 1 WHERE id = $1")
            .bind(deleted)
            .execute(store.pool())
            .await
            .unwrap();
        assert!(!has_unread(&store, chat).await);
        let user_only = insert(&store, chat, assistant("shown", MessageVisibility::User)).await;
        assert!(has_unread(&store, chat).await);

        // The marker never moves backwards.
        store.mark_read(chat, Some(first_reply)).await.unwrap();
        assert!(has_unread(&store, chat).await);
        store.mark_read(chat, Some(user_only)).await.unwrap();
        assert!(!has_unread(&store, chat).await);
        store.mark_read(chat, Some(first_reply)).await.unwrap();
        assert!(!has_unread(&store, chat).await);

        // Nor past the newest message: a reply that arrives later is unread.
        store.mark_read(chat, Some(i64::MAX)).await.unwrap();
        insert(&store, chat, assistant("later", MessageVisibility::Both)).await;
        assert!(has_unread(&store, chat).await);

        let err = store.mark_read(Uuid::new_v4(), None).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    })
    .await;
}
