//! What sealing and opening a typical session costs, and its cookie size.
//!
//! ```sh
//! cargo run --release -p tether-cookie --example seal_cost
//! ```

use std::time::Instant;

use tether_cookie::{CookieStore, KeyRing};
use tether_core::{ClientStore, Expiry, Record};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = CookieStore::new(KeyRing::parse(&KeyRing::generate_key()?)?);
    let now = time::OffsetDateTime::now_utc();
    let empty = store.seal(&Record::new(now, &Expiry::default()), "tether", now)?;
    let record = tether_testkit::typical_record(now);
    println!("cookie value: empty session {} bytes", empty.len());
    let n = 200_000_u32;
    for round in 1..=3 {
        let start = Instant::now();
        let mut value = String::new();
        for _ in 0..n {
            value = store.seal(&record, "tether", now)?;
        }
        let seal = start.elapsed() / n;
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(store.open(&value, "tether", now));
        }
        let open = start.elapsed() / n;
        println!(
            "round {round}: typical session {} bytes, seal {seal:?}, open {open:?}",
            value.len()
        );
    }
    Ok(())
}
