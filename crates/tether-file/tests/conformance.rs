//! The file store keeps the whole session contract, and hostile ids never reach a path.

mod common;

use tether_core::{Changes, Expiry, Id, Record, SessionStore};
use tether_file::FileStore;

use common::{files, temp_root};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_store_passes_the_conformance_suite() {
    let root = temp_root("suite");
    // A root that is a regular file: every operation must fail, not read as empty.
    let broken_root = temp_root("broken");
    let store = FileStore::open(&root).unwrap();
    let broken = FileStore::open(&broken_root).unwrap();
    std::fs::remove_dir_all(&broken_root).unwrap();
    std::fs::write(&broken_root, b"not a directory").unwrap();
    tether_testkit::Suite::new(store)
        .with_unavailable(broken)
        .run()
        .await;
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::remove_file(&broken_root).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_ids_and_user_names_never_touch_a_path_outside_the_root() {
    let outer = temp_root("outer");
    let root = outer.join("root");
    let store = FileStore::open(&root).unwrap();
    let canary = outer.join("canary");
    std::fs::write(&canary, b"untouched").unwrap();
    for hostile in [
        "../canary",
        "../../../../../../etc/passwd",
        "/etc/passwd",
        "..%2fcanary",
        "AAAAAAAAAAAAAAAAAAAA\0A",
        &"A".repeat(4096),
        "",
    ] {
        assert_eq!(Id::parse(hostile), None, "{hostile:?} parsed as an id");
    }
    let now = time::OffsetDateTime::now_utc();
    for user in [
        "../canary",
        "../../x",
        "/etc/passwd",
        "nul\0",
        &"u".repeat(5000),
    ] {
        let mut record = Record::new(now, &Expiry::default());
        record.user = Some(user.to_owned());
        let id = Id::generate().unwrap();
        store.create(&id, &record).await.unwrap();
        assert_eq!(store.user_sessions(user).await.unwrap().len(), 1);
        let mut changes = Changes::new(now, record.idle_deadline);
        changes.set("../../canary", serde_json::json!("value"));
        store.save(&id, &changes).await.unwrap();
        assert_eq!(store.delete_user_sessions(user).await.unwrap(), 1);
    }
    assert_eq!(std::fs::read(&canary).unwrap(), b"untouched");
    let escaped: Vec<_> = files(&outer)
        .into_iter()
        .filter(|p| !p.starts_with(&root) && *p != canary)
        .collect();
    assert!(escaped.is_empty(), "files outside the root: {escaped:?}");
    std::fs::remove_dir_all(&outer).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sweep_removes_expired_records_and_their_markers() {
    let root = temp_root("sweep");
    let store = FileStore::open(&root).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let mut short = Record::new(now, &Expiry::new(std::time::Duration::from_millis(50)));
    short.user = Some("sweepy".into());
    let long = Record::new(now, &Expiry::default());
    store
        .create(&Id::generate().unwrap(), &short)
        .await
        .unwrap();
    let kept = Id::generate().unwrap();
    store.create(&kept, &long).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let report = store.sweep().await.unwrap();
    assert_eq!(report.expired, 1);
    assert_eq!(report.errors, 0);
    let files = files(&root);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(store.load(&kept).await.unwrap().is_some());
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test]
async fn opening_an_unwritable_root_fails_at_start_up() {
    let file = temp_root("notadir").join("file");
    std::fs::write(&file, b"x").unwrap();
    let err = FileStore::open(file.join("sessions")).unwrap_err();
    assert!(
        err.to_string().contains("creating session directory"),
        "{err}"
    );
}
