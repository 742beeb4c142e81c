//! The file store as another local user, an NFS client or a backup reader meets it:
//! private modes, names that give no id away, errors that name no id, and writers
//! queued on one session that do not slow another.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use tether_core::{Changes, Expiry, Id, Record, SessionStore};
use tether_file::FileStore;

use common::{files, temp_root};

fn record(user: Option<&str>) -> Record {
    let mut r = Record::new(time::OffsetDateTime::now_utc(), &Expiry::default());
    r.user = user.map(str::to_owned);
    r
}

fn all_dirs(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_owned()];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_dirs(&path));
        }
    }
    out
}

#[tokio::test]
async fn directories_and_files_are_private_and_names_give_no_id_away() {
    let root = temp_root("private");
    // A root that existed with the usual umask is tightened too.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = FileStore::open(&root).unwrap();
    let mut ids = Vec::new();
    for user in [Some("ada"), None, Some("bob")] {
        let id = Id::generate().unwrap();
        store.create(&id, &record(user)).await.unwrap();
        ids.push(id);
    }
    for dir in all_dirs(&root) {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
    }
    for file in files(&root) {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
        let name = file.file_name().unwrap().to_str().unwrap();
        let stem = name.split('.').next().unwrap();
        for id in &ids {
            assert!(!name.contains(&id.to_string()), "{name} holds an id");
            let hex = hex::encode(id.as_bytes());
            assert!(!name.contains(&hex), "{name} holds an id in hex");
        }
        // A cookie built from a file name opens nothing.
        let mut bytes = [0u8; 16];
        if stem.len() == 32 && hex_decode(stem, &mut bytes) {
            let forged = Id::from_bytes(bytes);
            assert!(
                store.load(&forged).await.unwrap().is_none(),
                "{name} logged in"
            );
        }
    }
    std::fs::remove_dir_all(&root).unwrap();
}

fn hex_decode(text: &str, out: &mut [u8; 16]) -> bool {
    (0..16).all(|i| {
        u8::from_str_radix(&text[2 * i..2 * i + 2], 16).is_ok_and(|b| {
            out[i] = b;
            true
        })
    })
}

#[tokio::test]
async fn errors_name_no_id() {
    let root = temp_root("redact");
    let store = FileStore::open(&root).unwrap();
    let id = Id::generate().unwrap();
    store.create(&id, &record(None)).await.unwrap();
    let file = files(&root)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    std::fs::write(&file, b"{ not json").unwrap();
    let err = store.load(&id).await.unwrap_err().to_string();
    assert!(!err.contains(&id.to_string()), "{err}");
    let hex = hex::encode(id.as_bytes());
    assert!(!err.contains(&hex), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_queued_on_one_session_do_not_hold_up_another() {
    let root = temp_root("queue");
    let store = FileStore::open(&root).unwrap().with_max_concurrency(4);
    let busy = Id::generate().unwrap();
    store.create(&busy, &record(None)).await.unwrap();
    // Hold the busy session's write lock, as a live writer in another process would.
    let lock = files(&root)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap()
        .with_extension("lock");
    let expiry = tether_core::unix_ms::now_ms() + 60_000;
    std::fs::write(&lock, format!("someone {expiry}\n")).unwrap();

    let now = time::OffsetDateTime::now_utc();
    let mut queued = Vec::new();
    for i in 0..40 {
        let (store, mut changes) = (
            store.clone(),
            Changes::new(now, now + time::Duration::hours(1)),
        );
        changes.set("i", serde_json::json!(i));
        queued.push(tokio::spawn(
            async move { store.save(&busy, &changes).await },
        ));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Another user's session is served while the 40 wait (they wait up to 10 s).
    let other = Id::generate().unwrap();
    let served = tokio::time::timeout(Duration::from_secs(8), async {
        store.create(&other, &record(None)).await.unwrap();
        store.load(&other).await.unwrap()
    })
    .await;
    assert!(
        matches!(served, Ok(Some(_))),
        "another session waited for the queue"
    );
    assert!(
        queued.iter().all(|q| !q.is_finished()),
        "the lock was not held"
    );
    std::fs::remove_file(&lock).unwrap();
    for q in queued {
        assert!(q.await.unwrap().is_ok());
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test]
async fn a_store_shared_by_a_group_gives_the_group_its_modes_whatever_the_umask() {
    let root = temp_root("group");
    let store = FileStore::open_shared_group(&root).unwrap();
    store
        .create(&Id::generate().unwrap(), &record(Some("ada")))
        .await
        .unwrap();
    for dir in all_dirs(&root) {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o2770, "{}", dir.display());
    }
    for file in files(&root) {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660, "{}", file.display());
    }
    std::fs::remove_dir_all(&root).unwrap();
}
