//! Memory of the stream hub, measured with a counting global allocator.
//!
//! Run: `cargo bench -p chatd-core --bench hub_memory`. It prints the net heap bytes of idle
//! subscriptions and of a full part buffer; docs/stream-hub.md records the numbers.
//! (`stats_alloc` provides the allocator because the workspace forbids `unsafe`, which a
//! hand-written `GlobalAlloc` needs.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::alloc::System;

use chatd_core::{HubConfig, StreamHub, DEFAULT_PART_BUFFER_CAPACITY};
use codersdk::{ChatMessagePart, ChatStreamEvent, Uuid};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const SUBSCRIPTIONS: usize = 10_000;

/// Net bytes still allocated after `f` ran, with what `f` returned kept alive.
fn net_bytes<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let region = Region::new(GLOBAL);
    let kept = f();
    let change = region.change();
    (
        change
            .bytes_allocated
            .saturating_sub(change.bytes_deallocated),
        kept,
    )
}

fn main() {
    let hub = StreamHub::new(HubConfig::default());
    // Warm up lazily allocated state (the maps' first buckets, tracing's callsite cache).
    drop(hub.subscribe(Uuid::new_v4()).unwrap());

    let chats: Vec<Uuid> = (0..SUBSCRIPTIONS).map(|_| Uuid::new_v4()).collect();
    let (bytes, subs) = net_bytes(|| {
        chats
            .iter()
            .map(|c| hub.subscribe(*c).unwrap())
            .collect::<Vec<_>>()
    });
    let vec_bytes = SUBSCRIPTIONS * std::mem::size_of_val(&subs[0]);
    println!(
        "{SUBSCRIPTIONS} idle chat subscriptions, one per chat: {} bytes each \
         (hub side + receiver; excluding the test's Vec: {} bytes each)",
        bytes / SUBSCRIPTIONS,
        (bytes - vec_bytes) / SUBSCRIPTIONS
    );

    let shared: Vec<Uuid> = (0..10).map(|_| Uuid::new_v4()).collect();
    let (bytes, more) = net_bytes(|| {
        (0..SUBSCRIPTIONS)
            .map(|i| hub.subscribe(shared[i % shared.len()]).unwrap())
            .collect::<Vec<_>>()
    });
    println!(
        "{SUBSCRIPTIONS} idle chat subscriptions over 10 chats: {} bytes each (excluding the \
         test's Vec: {} bytes each)",
        bytes / SUBSCRIPTIONS,
        (bytes - vec_bytes) / SUBSCRIPTIONS
    );

    let (bytes, watches) = net_bytes(|| {
        chats
            .iter()
            .map(|o| hub.watch(*o).unwrap())
            .collect::<Vec<_>>()
    });
    let watch_vec = SUBSCRIPTIONS * std::mem::size_of_val(&watches[0]);
    println!(
        "{SUBSCRIPTIONS} idle watch subscriptions, one per owner: {} bytes each (excluding \
         the test's Vec: {} bytes each)",
        bytes / SUBSCRIPTIONS,
        (bytes - watch_vec) / SUBSCRIPTIONS
    );

    drop(subs);
    drop(more);
    drop(watches);
    println!("after dropping them all, the hub holds {} chat entries", {
        chats
            .iter()
            .chain(&shared)
            .filter(|c| hub.chat_stats(**c).is_some())
            .count()
    });

    let chat = Uuid::new_v4();
    hub.begin_turn(chat);
    let (bytes, ()) = net_bytes(|| {
        for n in 0..DEFAULT_PART_BUFFER_CAPACITY {
            hub.publish(ChatStreamEvent::message_part(
                chat,
                None,
                ChatMessagePart::text(format!("token {n} ")),
            ));
        }
    });
    println!(
        "full part buffer ({DEFAULT_PART_BUFFER_CAPACITY} short text deltas): {} bytes \
         ({} per part; size_of ChatStreamEvent = {}, ChatMessagePart = {}, ChatMessage = {})",
        bytes,
        bytes / DEFAULT_PART_BUFFER_CAPACITY,
        std::mem::size_of::<ChatStreamEvent>(),
        std::mem::size_of::<codersdk::ChatMessagePart>(),
        std::mem::size_of::<codersdk::ChatMessage>(),
    );
}
