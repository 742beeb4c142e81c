//! Ids at rest are not credentials: after a login through the layer, no file name and
//! no file the store wrote contains an id the browser was given.

use tether::SessionLayer;
use tether_file::FileStore;
use tether_testkit::at_rest::{assert_absent, presented_ids, read_tree};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_never_holds_a_presented_id() {
    let dir = std::env::temp_dir().join(format!("tether-file-at-rest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ids = presented_ids(SessionLayer::new(FileStore::open(&dir).unwrap())).await;
    let written = read_tree(&dir);
    assert!(!written.is_empty());
    assert_absent("the file store's directory", &written, &ids);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_session_values_are_ciphertext_in_the_directory() {
    let dir = std::env::temp_dir().join(format!("tether-file-sealed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = std::sync::Arc::new(FileStore::open(&dir).unwrap());
    let watched = dir.clone();
    tether_testkit::at_rest::check_sealed_data(store, async || read_tree(&watched)).await;
    std::fs::remove_dir_all(&dir).unwrap();
}
