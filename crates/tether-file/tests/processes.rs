//! Separate processes (not tasks) sharing one directory: concurrent writers lose no
//! key and tear no record; writers killed with SIGKILL at random moments leave every
//! record readable, and the store carries on.
//!
//! This binary runs the tests, and re-executes itself as the writer processes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tether_core::{Changes, Expiry, Id, Record, Saved, SessionStore};
use tether_file::FileStore;

use common::{files, temp_root};

const ROLE: &str = "TETHER_FILE_TEST_ROLE";
const STALE_LOCK: Duration = Duration::from_millis(300);

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        writer(&role);
        return;
    }
    let tests: [(&str, fn()); 2] = [
        ("three_processes_write_the_same_sessions", three_processes),
        ("writers_killed_at_random_moments", killed_writers),
    ];
    tether_testkit::harness::run(&tests);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn random_below(n: u64) -> u64 {
    let bytes = Id::generate().unwrap();
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes.as_bytes()[..8]);
    u64::from_le_bytes(word) % n
}

/// The writer process: `ROLE=proc:iterations`, root and ids in the environment.
fn writer(role: &str) {
    let (proc, iterations) = role.split_once(':').unwrap();
    let proc: u64 = proc.parse().unwrap();
    let iterations: u64 = iterations.parse().unwrap();
    let root = PathBuf::from(std::env::var("TETHER_FILE_TEST_ROOT").unwrap());
    let ids: Vec<Id> = std::env::var("TETHER_FILE_TEST_IDS")
        .unwrap()
        .split(',')
        .map(|s| Id::parse(s).unwrap())
        .collect();
    runtime().block_on(async {
        let store = FileStore::open(&root)
            .unwrap()
            .with_stale_lock_after(STALE_LOCK);
        for i in 0..iterations {
            let tasks: Vec<_> = ids
                .iter()
                .map(|id| {
                    let (store, id) = (store.clone(), *id);
                    tokio::spawn(async move {
                        let now = time::OffsetDateTime::now_utc();
                        let mut changes = Changes::new(now, now + time::Duration::hours(1));
                        changes.set(format!("p{proc}_{i}"), json!(i));
                        changes.set("shared", shared_value(proc, i));
                        store.save(&id, &changes).await
                    })
                })
                .collect();
            for task in tasks {
                let saved = task.await.unwrap().expect("save failed in writer");
                assert!(matches!(saved, Saved::Version { .. }), "session vanished");
            }
        }
    });
}

/// What process `proc` writes to the shared key in round `i`: a value whose parts
/// must agree, so a torn or mixed record shows.
fn shared_value(proc: u64, i: u64) -> Value {
    let pad = "x".repeat(usize::try_from(i % 7 * 300 + proc * 100).unwrap());
    json!({ "proc": proc, "i": i, "check": proc * 1000 + i, "pad": pad })
}

fn is_written_value(v: &Value) -> bool {
    let (Some(proc), Some(i)) = (v["proc"].as_u64(), v["i"].as_u64()) else {
        return false;
    };
    *v == shared_value(proc, i)
}

fn create_sessions(root: &Path, n: usize) -> Vec<Id> {
    runtime().block_on(async {
        let store = FileStore::open(root).unwrap();
        let mut ids = Vec::new();
        for _ in 0..n {
            let id = Id::generate().unwrap();
            let record = Record::new(time::OffsetDateTime::now_utc(), &Expiry::default());
            store.create(&id, &record).await.unwrap();
            ids.push(id);
        }
        ids
    })
}

fn spawn_writer(root: &Path, ids: &[Id], proc: u64, iterations: u64) -> std::process::Child {
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    Command::new(std::env::current_exe().unwrap())
        .env(ROLE, format!("{proc}:{iterations}"))
        .env("TETHER_FILE_TEST_ROOT", root)
        .env("TETHER_FILE_TEST_IDS", ids.join(","))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Every `.json` file under the root parses as a record, and the shared key (if any)
/// holds a value exactly as one writer wrote it.
fn every_record_reads(root: &Path) -> usize {
    let mut records = 0;
    for path in files(root) {
        if path.extension().is_some_and(|e| e == "json") {
            let bytes = std::fs::read(&path).unwrap();
            let record: Record = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("torn record {}: {e}", path.display()));
            if let Some(shared) = record.data.get("shared") {
                assert!(is_written_value(shared), "mixed value {shared}");
            }
            records += 1;
        }
    }
    records
}

fn three_processes() {
    let root = temp_root("procs");
    let ids = create_sessions(&root, 4);
    let iterations = 25;
    let writers: Vec<_> = (0..3)
        .map(|p| spawn_writer(&root, &ids, p, iterations))
        .collect();
    for mut w in writers {
        assert!(w.wait().unwrap().success(), "a writer process failed");
    }
    assert_eq!(every_record_reads(&root), ids.len());
    runtime().block_on(async {
        let store = FileStore::open(&root).unwrap();
        for id in &ids {
            let record = store.load(id).await.unwrap().expect("session lost");
            for p in 0..3 {
                for i in 0..iterations {
                    assert_eq!(
                        record.data.get(&format!("p{p}_{i}")),
                        Some(&json!(i)),
                        "process {p} lost its write {i}"
                    );
                }
            }
            assert!(is_written_value(&record.data["shared"]));
            assert_eq!(record.version, 1 + 3 * iterations, "a save was lost");
        }
    });
    let leftovers: Vec<_> = files(&root)
        .into_iter()
        .filter(|p| p.extension().is_none_or(|e| e != "json"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    std::fs::remove_dir_all(&root).unwrap();
}

fn killed_writers() {
    let root = temp_root("crash");
    let ids = create_sessions(&root, 3);
    let rounds = 30;
    for _ in 0..rounds {
        let mut writers: Vec<_> = (0..2)
            .map(|p| spawn_writer(&root, &ids, p, 1_000_000))
            .collect();
        std::thread::sleep(Duration::from_millis(20 + random_below(60)));
        for w in &mut writers {
            w.kill().unwrap(); // SIGKILL: no destructor, no cleanup
            w.wait().unwrap();
        }
        assert_eq!(every_record_reads(&root), ids.len());
    }
    // The store carries on: after the dead writers' locks go stale, saves succeed, and
    // a sweep removes what the killed processes left behind.
    std::thread::sleep(STALE_LOCK * 2);
    runtime().block_on(async {
        let store = FileStore::open(&root)
            .unwrap()
            .with_stale_lock_after(STALE_LOCK);
        for id in &ids {
            let now = time::OffsetDateTime::now_utc();
            let mut changes = Changes::new(now, now + time::Duration::hours(1));
            changes.set("after", json!(true));
            let saved = store.save(id, &changes).await.unwrap();
            assert!(matches!(saved, Saved::Version { .. }));
            assert_eq!(
                store.load(id).await.unwrap().unwrap().data["after"],
                json!(true)
            );
        }
        let report = store.sweep().await.unwrap();
        assert_eq!(report.errors, 0, "{report:?}");
    });
    let leftovers: Vec<_> = files(&root)
        .into_iter()
        .filter(|p| p.extension().is_none_or(|e| e != "json"))
        .collect();
    assert!(leftovers.is_empty(), "the sweep left: {leftovers:?}");
    std::fs::remove_dir_all(&root).unwrap();
}
