//! What signing and verifying a typical session costs, and its token size, beside the
//! encrypted cookie's.
//!
//! ```sh
//! cargo run --release -p tether-jwt --example token_cost
//! ```

use std::time::Instant;

use tether_core::{ClientStore, Expiry, Record};
use tether_jwt::{JwtKeys, JwtStore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let now = time::OffsetDateTime::now_utc();
    let ed25519 = JwtStore::new(JwtKeys::parse(&JwtKeys::generate_ed25519("k1")?)?);
    let hs256 = JwtStore::new(JwtKeys::parse(&JwtKeys::generate_hs256("k1")?)?);
    let empty = ed25519.seal(&Record::new(now, &Expiry::default()), "tether", now)?;
    println!("token: empty session {} bytes", empty.len());
    let record = tether_testkit::typical_record(now);
    for (name, store) in [("EdDSA", &ed25519), ("HS256", &hs256)] {
        let n = 20_000_u32;
        let start = Instant::now();
        let mut token = String::new();
        for _ in 0..n {
            token = store.seal(&record, "tether", now)?;
        }
        let seal = start.elapsed() / n;
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(store.open(&token, "tether", now));
        }
        let open = start.elapsed() / n;
        println!(
            "{name}: typical session {} bytes, sign {seal:?}, verify {open:?}",
            token.len()
        );
    }
    Ok(())
}
