//! The database file and its `-wal` and `-shm` hold every session: created `0600`
//! whatever the umask, and refused when others can read them.

use std::os::unix::fs::PermissionsExt as _;

use tether_core::{Expiry, Id, Record, SessionStore as _};
use tether_sqlite::SqliteStore;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_database_and_its_log_are_private_and_open_ones_are_refused() {
    // The umask most systems run with: before, it left all three files 0644.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let dir = tether_testkit::harness::private_dir("sqlite-files");
    let db = dir.join("sessions.db");
    let url = format!("sqlite://{}", db.display());

    let store = SqliteStore::connect(&url).unwrap();
    store.migrate().await.unwrap();
    let mut record = Record::new(time::OffsetDateTime::now_utc(), &Expiry::default());
    record
        .data
        .insert("cart".into(), serde_json::json!(["book"]));
    store
        .create(&Id::generate().unwrap(), &record)
        .await
        .unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = dir.join(format!("sessions.db{suffix}"));
        assert!(file.exists(), "{} was not made", file.display());
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    drop(store);

    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = SqliteStore::connect(&url).unwrap_err().to_string();
    assert!(
        error.contains("chmod 600") && error.contains(&db.display().to_string()),
        "{error}"
    );

    // A directory that appears after the store was made: SQLite creates the files on
    // first use, and they are made private then.
    let later = dir.join("later");
    let url = format!("sqlite://{}", later.join("sessions.db").display());
    let store = SqliteStore::connect(&url).unwrap();
    std::fs::create_dir(&later).unwrap();
    store.migrate().await.unwrap();
    store
        .create(&Id::generate().unwrap(), &record)
        .await
        .unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = later.join(format!("sessions.db{suffix}"));
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
