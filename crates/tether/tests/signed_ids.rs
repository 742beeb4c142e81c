//! Signed ids: a token whose signature no key verifies is no id, and costs no store
//! call; a signed one works, under a rotated key ring too.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tether::core::{Changes, Created, Record, Saved, Touch, async_trait};
use tether::{Id, IdKeys, MemoryStore, SessionLayer, SessionStore};
use tether_testkit::http::send;

/// The memory store, counting every call the layer makes.
#[derive(Debug, Default)]
struct Counted {
    inner: MemoryStore,
    calls: AtomicUsize,
}

impl Counted {
    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl SessionStore for Counted {
    fn name(&self) -> &'static str {
        "counted"
    }
    async fn load(&self, id: &Id) -> tether::core::Result<Option<Record>> {
        self.count();
        self.inner.load(id).await
    }
    async fn create(&self, id: &Id, record: &Record) -> tether::core::Result<Created> {
        self.count();
        self.inner.create(id, record).await
    }
    async fn save(&self, id: &Id, changes: &Changes) -> tether::core::Result<Saved> {
        self.count();
        self.inner.save(id, changes).await
    }
    async fn touch(&self, id: &Id, touch: &Touch) -> tether::core::Result<bool> {
        self.count();
        self.inner.touch(id, touch).await
    }
    async fn delete(&self, id: &Id) -> tether::core::Result<bool> {
        self.count();
        self.inner.delete(id).await
    }
    async fn cycle_id(&self, old: &Id, new: &Id, c: &Changes) -> tether::core::Result<Saved> {
        self.count();
        self.inner.cycle_id(old, new, c).await
    }
}

fn key() -> String {
    IdKeys::generate_key().unwrap()
}

/// Store calls for 1,000 random ids, and 1,000 random ids with a random tag, sent to
/// a read route.
async fn calls_for_random_ids(layer: impl Fn(Arc<Counted>) -> SessionLayer) -> usize {
    let store = Arc::new(Counted::default());
    let app = tether_testkit::app::routes().layer(layer(store.clone()).with_insecure_cookie());
    for i in 0..1_000 {
        let id = Id::generate().unwrap();
        let value = if i % 2 == 0 {
            id.to_string()
        } else {
            format!("{id}.{}", &Id::generate().unwrap().to_string())
        };
        let reply = send(&app, "GET", "/read", Some(&format!("tether={value}"))).await;
        assert_eq!(reply.body, "0");
    }
    store.calls.load(Ordering::SeqCst)
}

#[tokio::test]
async fn random_ids_cost_no_store_call_when_ids_are_signed() {
    let keys = IdKeys::parse(&key()).unwrap();
    let signed = calls_for_random_ids(|s| SessionLayer::from_arc(s).with_signed_ids(keys.clone()));
    assert_eq!(signed.await, 0, "a random or forged id reached the store");
    // Without signing, each well-formed random id is one read: what signing saves.
    let unsigned = calls_for_random_ids(|s| SessionLayer::from_arc(s)).await;
    assert_eq!(unsigned, 500);
}

#[tokio::test]
async fn signed_ids_work_and_survive_a_key_rotation() {
    let (old, new) = (key(), key());
    let store = Arc::new(MemoryStore::new());
    let layer = |keys: &str| {
        SessionLayer::from_arc(store.clone())
            .with_insecure_cookie()
            .with_signed_ids(IdKeys::parse(keys).unwrap())
    };
    let app = tether_testkit::app::routes().layer(layer(&old));
    let first = send(&app, "POST", "/incr", None).await;
    let cookie = first.cookie();
    let (id, tag) = cookie
        .split_once('=')
        .unwrap()
        .1
        .split_once('.')
        .expect("the cookie carries ID.TAG");
    assert!(Id::parse(id).is_some() && !tag.is_empty(), "{cookie}");
    assert_eq!(send(&app, "POST", "/incr", Some(&cookie)).await.body, "2");
    // The id alone, unsigned, is no id.
    let bare = format!("tether={id}");
    assert_eq!(send(&app, "GET", "/read", Some(&bare)).await.body, "0");

    // A new key first: the old cookie still opens, and new cookies are signed anew.
    let rotated = tether_testkit::app::routes().layer(layer(&format!("{new}\n{old}")));
    assert_eq!(
        send(&rotated, "POST", "/incr", Some(&cookie)).await.body,
        "3"
    );
    // The old key dropped: the old cookie is no longer an id.
    let dropped = tether_testkit::app::routes().layer(layer(&new));
    assert_eq!(
        send(&dropped, "GET", "/read", Some(&cookie)).await.body,
        "0"
    );
}
