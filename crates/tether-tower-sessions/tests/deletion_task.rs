//! An app moving from tower-sessions' sqlx stores keeps its
//! `continuously_delete_expired` task unchanged (both tower-sessions versions): it
//! builds, deletes expired sessions with the store's own sweep, and never ends over a
//! failed sweep (an app that awaits the task would stop with it).

use std::time::Duration;

use tether::file::FileStore;
use tether_testkit::harness::wait_until;
use tether_tower_sessions::TowerSessions;

/// How many files the store keeps under `dir`.
fn files(dir: &std::path::Path) -> usize {
    let mut count = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                count += 1;
            }
        }
    }
    count
}

/// A store whose sweeps all fail (its database is down), counting them.
#[derive(Debug, Default)]
struct FailingSweeps {
    inner: tether::MemoryStore,
    sweeps: std::sync::atomic::AtomicUsize,
}

#[tether::core::async_trait]
impl tether::SessionStore for FailingSweeps {
    fn name(&self) -> &'static str {
        "failing-sweeps"
    }
    async fn load(&self, id: &tether::Id) -> tether::core::Result<Option<tether::core::Record>> {
        self.inner.load(id).await
    }
    async fn create(
        &self,
        id: &tether::Id,
        record: &tether::core::Record,
    ) -> tether::core::Result<tether::core::Created> {
        self.inner.create(id, record).await
    }
    async fn save(
        &self,
        id: &tether::Id,
        changes: &tether::core::Changes,
    ) -> tether::core::Result<tether::core::Saved> {
        self.inner.save(id, changes).await
    }
    async fn touch(
        &self,
        id: &tether::Id,
        touch: &tether::core::Touch,
    ) -> tether::core::Result<bool> {
        self.inner.touch(id, touch).await
    }
    async fn delete(&self, id: &tether::Id) -> tether::core::Result<bool> {
        self.inner.delete(id).await
    }
    async fn cycle_id(
        &self,
        old: &tether::Id,
        new: &tether::Id,
        changes: &tether::core::Changes,
    ) -> tether::core::Result<tether::core::Saved> {
        self.inner.cycle_id(old, new, changes).await
    }
    async fn sweep_once(&self) -> tether::core::Result<u64> {
        self.sweeps
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(tether::Error::unavailable(
            "sweeping",
            std::io::Error::other("the database is down"),
        ))
    }
}

macro_rules! deletion_task {
    ($name:ident, $ts:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            use $ts::session::{Id, Record};
            use $ts::session_store::{ExpiredDeletion as _, SessionStore as _};

            let dir = std::env::temp_dir().join(format!(
                "tether-deletion-{}-{}",
                stringify!($name),
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            let store = TowerSessions::new(FileStore::open(&dir).unwrap());
            let mut record = Record {
                id: Id::default(),
                data: std::collections::HashMap::new(),
                expiry_date: time::OffsetDateTime::now_utc() + time::Duration::milliseconds(200),
            };
            store.create(&mut record).await.unwrap();
            assert!(files(&dir) > 0, "the session was not written");

            // The call an app made with tower-sessions-sqlx-store, unchanged.
            let task = tokio::spawn(
                store
                    .clone()
                    .continuously_delete_expired(Duration::from_millis(50)),
            );
            let watched = dir.clone();
            tokio::task::spawn_blocking(move || {
                wait_until(
                    "the expired session deleted",
                    Duration::from_secs(30),
                    || files(&watched) == 0,
                );
            })
            .await
            .unwrap();
            assert!(!task.is_finished());
            task.abort();

            // A store whose every sweep fails at once: the task goes on sweeping.
            let down = std::sync::Arc::new(FailingSweeps::default());
            let task = tokio::spawn(
                TowerSessions::from_arc(down.clone())
                    .continuously_delete_expired(Duration::from_millis(10)),
            );
            let counted = down.clone();
            tokio::task::spawn_blocking(move || {
                wait_until("three failed sweeps", Duration::from_secs(30), || {
                    counted.sweeps.load(std::sync::atomic::Ordering::SeqCst) >= 3
                });
            })
            .await
            .unwrap();
            assert!(!task.is_finished());
            task.abort();
            std::fs::remove_dir_all(&dir).unwrap();
        }
    };
}

deletion_task!(
    tower_sessions_0_14_apps_keep_their_deletion_task,
    tower_sessions_014
);
deletion_task!(
    tower_sessions_0_15_apps_keep_their_deletion_task,
    tower_sessions_015
);
