//! Micro-benchmarks of the per-request hot paths: `cargo bench -p tether-bench`.
#![allow(missing_docs)] // criterion_group! makes an undocumented function

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use tether::{MemoryStore, SessionLayer};
use tether_cookie::{CookieStore, KeyRing};
use tether_core::{Changes, ClientStore, Expiry, Id, Record};
use time::OffsetDateTime;

fn record() -> Record {
    let now = OffsetDateTime::now_utc();
    let mut record = Record::new(now, &Expiry::default());
    record.data.insert("user_id".into(), json!(42));
    record
        .data
        .insert("cart".into(), json!(["book", "pen", "lamp"]));
    record.data.insert("theme".into(), json!("dark"));
    record
}

fn ids(c: &mut Criterion) {
    c.bench_function("id generate", |b| b.iter(Id::generate));
    let text = Id::generate().expect("an id").to_string();
    c.bench_function("id parse", |b| b.iter(|| Id::parse(black_box(&text))));
}

fn cookies(c: &mut Criterion) {
    let layer = SessionLayer::new(MemoryStore::new());
    let id = Id::generate().expect("an id").to_string();
    let mut headers = http::HeaderMap::new();
    let value = format!("_ga=GA1.2.3456; theme=dark; tether={id}; consent=yes");
    headers.insert(http::header::COOKIE, value.parse().expect("a header value"));
    c.bench_function("cookie header → session id", |b| {
        b.iter(|| layer.session_id(black_box(&headers)));
    });
}

fn records(c: &mut Criterion) {
    let record = record();
    let encoded = serde_json::to_vec(&record).expect("a record encodes");
    c.bench_function("record encode (JSON)", |b| {
        b.iter(|| serde_json::to_vec(black_box(&record)));
    });
    c.bench_function("record decode (JSON)", |b| {
        b.iter(|| serde_json::from_slice::<Record>(black_box(&encoded)));
    });
    let now = OffsetDateTime::now_utc();
    let mut changes = Changes::new(now, now + time::Duration::hours(1));
    changes.set("theme", json!("light"));
    changes.set("visits", json!(7));
    c.bench_function("change merge (Record::apply)", |b| {
        b.iter_batched_ref(
            || record.clone(),
            |r| r.apply(black_box(&changes)),
            criterion::BatchSize::SmallInput,
        );
    });
}

fn cookie_store(c: &mut Criterion) {
    let key = KeyRing::generate_key().expect("a fresh key");
    let keys = KeyRing::parse(&key).expect("a fresh key parses");
    let store = CookieStore::new(keys);
    let record = record();
    let now = OffsetDateTime::now_utc();
    let sealed = store.seal(&record, "tether", now).expect("a record seals");
    c.bench_function("cookie store seal", |b| {
        b.iter(|| store.seal(black_box(&record), "tether", now));
    });
    c.bench_function("cookie store open", |b| {
        b.iter(|| store.open(black_box(&sealed), "tether", now));
    });
}

criterion_group!(hot_paths, ids, cookies, records, cookie_store);
criterion_main!(hot_paths);
