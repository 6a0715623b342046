//! Stream hub throughput: publishing parts with N subscribers, and subscribing to a chat
//! whose part buffer is full.
//!
//! Run: `cargo bench -p chatd-core --bench hub`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use chatd_core::{ChatSubscription, HubConfig, Keyring, SecretKey, StreamHub};
use codersdk::{ChatMessagePart, ChatStreamEvent, Uuid};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const BATCH: usize = 64;

fn drain(sub: &mut ChatSubscription) -> usize {
    let mut n = 0;
    while sub.try_recv().is_ok() {
        n += 1;
    }
    n
}

fn publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("hub_publish");
    group.throughput(Throughput::Elements(BATCH as u64));
    for subscribers in [0usize, 1, 16, 128] {
        let hub = StreamHub::new(HubConfig::default());
        let chat = Uuid::new_v4();
        hub.begin_turn(chat);
        let mut subs: Vec<_> = (0..subscribers)
            .map(|_| hub.subscribe(chat).unwrap())
            .collect();
        let part = ChatStreamEvent::message_part(chat, None, ChatMessagePart::text("token "));
        group.bench_with_input(
            BenchmarkId::new("parts_then_drain", subscribers),
            &subscribers,
            |b, _| {
                b.iter(|| {
                    for _ in 0..BATCH {
                        hub.publish(part.clone());
                    }
                    // Subscribers keep up, as WebSocket writers normally do.
                    for s in &mut subs {
                        drain(s);
                    }
                    // One step's worth of parts; the step is then committed.
                    hub.clear_parts(chat);
                });
            },
        );
    }
    group.finish();
}

fn subscribe_full_buffer(c: &mut Criterion) {
    let hub = StreamHub::new(HubConfig::default());
    let chat = Uuid::new_v4();
    hub.begin_turn(chat);
    for n in 0..10_000 {
        hub.publish(ChatStreamEvent::message_part(
            chat,
            None,
            ChatMessagePart::text(format!("token {n} ")),
        ));
    }
    c.bench_function("hub_subscribe_with_10000_buffered_parts", |b| {
        b.iter(|| hub.subscribe(chat).unwrap());
    });
}

fn secrets(c: &mut Criterion) {
    let keyring = Keyring::new("k", SecretKey::generate().unwrap()).unwrap();
    let aad = b"chat_providers.api_key:6f1c3a52-1111-4222-8333-944455556666";
    let sealed = keyring.encrypt(&[b'k'; 100], aad).unwrap();
    c.bench_function("secrets_encrypt_100_bytes", |b| {
        b.iter(|| keyring.encrypt(&[b'k'; 100], aad).unwrap());
    });
    c.bench_function("secrets_decrypt_100_bytes", |b| {
        b.iter(|| keyring.decrypt(&sealed, aad).unwrap());
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = publish, subscribe_full_buffer, secrets
}
criterion_main!(benches);
