//! Session ids: 128 random bits from a CSPRNG, written as 22 URL-safe characters.

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

use rand::rngs::OsRng;
use rand::{RngCore as _, SeedableRng as _};
use rand_chacha::ChaCha12Rng;

mod text;

/// Number of random bytes in an [`Id`].
pub const ID_BYTES: usize = 16;

/// Output after which a thread's generator reseeds from the operating system.
const RESEED_AFTER_BYTES: u64 = 64 * 1024;

/// Fills `bytes` from this thread's CSPRNG: ChaCha12 (the generator behind `rand`'s
/// `StdRng` and `ThreadRng`), seeded from the operating system on the thread's first
/// use and reseeded from it every 64 KiB of output. Session ids and the cookie store's
/// nonces come from here; neither costs a system call.
///
/// A forked child never repeats its parent's output: the generator remembers the
/// process it was seeded in and reseeds from the operating system when that changes
/// (one `getpid` per call, no `getrandom`).
///
/// Fails only when the operating system cannot provide the first seed. Should a later
/// reseed fail, the generator keeps its current (still unpredictable) state and tries
/// again at the next call; it never panics. A child whose reseed fails gets an error,
/// never its parent's stream.
///
/// ```
/// let mut a = [0u8; 24];
/// let mut b = [0u8; 24];
/// tether_core::fill_random(&mut a)?;
/// tether_core::fill_random(&mut b)?;
/// assert_ne!(a, b);
/// # Ok::<(), tether_core::Error>(())
/// ```
pub fn fill_random(bytes: &mut [u8]) -> Result<(), crate::Error> {
    thread_local! {
        static RNG: RefCell<Option<Seeded>> = const { RefCell::new(None) };
    }
    let pid = std::process::id();
    RNG.with_borrow_mut(|slot| fill_from(slot, pid, bytes, from_os))
}

/// A thread's generator, the output it gave since its last seed, and the process it
/// was seeded in.
struct Seeded {
    rng: ChaCha12Rng,
    since_seed: u64,
    pid: u32,
}

fn from_os() -> Result<ChaCha12Rng, crate::Error> {
    ChaCha12Rng::try_from_rng(&mut OsRng).map_err(|e| crate::Error::Randomness(e.to_string()))
}

/// [`fill_random`]'s rule, with the process id and the seed source given.
fn fill_from(
    slot: &mut Option<Seeded>,
    pid: u32,
    bytes: &mut [u8],
    seed: fn() -> Result<ChaCha12Rng, crate::Error>,
) -> Result<(), crate::Error> {
    // A fork copies the generator: the child must not go on from its parent's state.
    if slot.as_ref().is_some_and(|s| s.pid != pid) {
        *slot = None;
    }
    let seeded = match slot {
        Some(seeded) => seeded,
        None => slot.insert(Seeded {
            rng: seed()?,
            since_seed: 0,
            pid,
        }),
    };
    if seeded.since_seed >= RESEED_AFTER_BYTES
        && let Ok(rng) = seed()
    {
        *seeded = Seeded {
            rng,
            since_seed: 0,
            pid,
        };
    }
    seeded.rng.fill_bytes(bytes);
    seeded.since_seed += bytes.len() as u64;
    Ok(())
}

/// Length of an [`Id`] in its text form (unpadded URL-safe base64 of [`ID_BYTES`]).
pub const ID_LEN: usize = 22;

/// A session id: 128 bits from a CSPRNG (ChaCha12, seeded from the operating system).
///
/// Its text form is exactly [`ID_LEN`] characters of unpadded URL-safe base64, so it is
/// safe in cookies, URLs, file names and keys. [`Id::parse`] accepts only that exact
/// shape (including canonical trailing bits); anything else is not an id, which is how
/// forged, truncated or hostile cookie values are dropped before any store I/O.
///
/// ```
/// use tether_core::Id;
///
/// let id = Id::generate()?;
/// let text = id.to_string();
/// assert_eq!(text.len(), tether_core::ID_LEN);
/// assert_eq!(Id::parse(&text), Some(id));
///
/// assert_eq!(Id::parse("../../etc/passwd"), None);
/// assert_eq!(Id::parse(&text[..21]), None);
/// # Ok::<(), tether_core::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id([u8; ID_BYTES]);

impl Id {
    /// Draws a fresh id from [`fill_random`]: this thread's CSPRNG, so a login costs
    /// no system call.
    ///
    /// Fails only when the operating system cannot provide the seed, which is an
    /// error the caller must surface: a predictable id is never a fallback.
    pub fn generate() -> Result<Self, crate::Error> {
        let mut bytes = [0u8; ID_BYTES];
        fill_random(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// Parses the text form, accepting nothing but exactly [`ID_LEN`] canonical
    /// URL-safe base64 characters.
    pub fn parse(text: &str) -> Option<Self> {
        // Padding and non-canonical trailing bits are refused, so every id has exactly
        // one text form.
        text::decode(text.as_bytes()).map(Self)
    }

    /// The raw random bytes.
    pub fn as_bytes(&self) -> &[u8; ID_BYTES] {
        &self.0
    }

    /// Builds an id from raw bytes (for stores that keep ids in binary form).
    pub fn from_bytes(bytes: [u8; ID_BYTES]) -> Self {
        Self(bytes)
    }

    /// The text form, without allocating.
    ///
    /// ```
    /// let id = tether_core::Id::generate()?;
    /// assert_eq!(id.encode().as_str(), id.to_string());
    /// # Ok::<(), tether_core::Error>(())
    /// ```
    pub fn encode(&self) -> IdText {
        IdText(text::encode(&self.0))
    }
}

/// The text form of an [`Id`] on the stack; see [`Id::encode`].
#[derive(Clone, Copy)]
pub struct IdText([u8; ID_LEN]);

impl IdText {
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("base64 output is ASCII")
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encode().as_str())
    }
}

impl fmt::Debug for Id {
    // Ids are credentials: debug output shows only a prefix so logs cannot replay them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({}…)", &self.encode().as_str()[..6])
    }
}

impl FromStr for Id {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or(InvalidId)
    }
}

/// The error of parsing something that is not a session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a session id: expected {ID_LEN} URL-safe base64 characters")]
pub struct InvalidId;

impl serde::Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.encode().as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom(InvalidId))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generated_ids_are_unique_fixed_length_url_safe() {
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let id = Id::generate().unwrap();
            let text = id.to_string();
            assert_eq!(text.len(), ID_LEN);
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(Id::parse(&text), Some(id));
            assert!(seen.insert(id), "duplicate id");
        }
    }

    #[test]
    fn parse_is_strict() {
        let good = Id::generate().unwrap().to_string();
        let cases = [
            String::new(),
            good[..21].to_string(),
            format!("{good}A"),
            format!("{}=", &good[..21]),
            format!("{}+", &good[..21]),
            format!("{}/", &good[..21]),
            "../../../../etc/passwd".to_string(),
            "AAAAAAAAAAAAAAAAAAAA\0A".to_string(),
            "ÄAAAAAAAAAAAAAAAAAAA".to_string(),
            " AAAAAAAAAAAAAAAAAAAAA".to_string(),
            "A".repeat(5000),
        ];
        for case in cases {
            assert_eq!(Id::parse(&case), None, "accepted {case:?}");
        }
        // 22 characters carry 132 bits; the last 4 must be zero, so only one text
        // form exists per id.
        assert_eq!(Id::parse("AAAAAAAAAAAAAAAAAAAAAB"), None);
        assert!(Id::parse("AAAAAAAAAAAAAAAAAAAAAA").is_some());
    }

    #[test]
    fn a_forked_child_does_not_repeat_its_parents_stream() {
        // What fork leaves behind: the child's thread holds a copy of the parent's
        // generator. Seeded from a fixed seed here, so a copy would repeat exactly.
        #[allow(clippy::unnecessary_wraps)] // the seed source's signature
        fn fixed() -> Result<ChaCha12Rng, crate::Error> {
            Ok(ChaCha12Rng::from_seed([7; 32]))
        }
        let mut parent = None;
        let mut first = [0u8; 16];
        fill_from(&mut parent, 100, &mut first, fixed).unwrap();
        let mut child = parent.as_ref().map(|s: &Seeded| Seeded {
            rng: s.rng.clone(),
            since_seed: s.since_seed,
            pid: s.pid,
        });
        let (mut from_parent, mut from_child) = ([0u8; 16], [0u8; 16]);
        fill_from(&mut parent, 100, &mut from_parent, fixed).unwrap();
        fill_from(&mut child, 101, &mut from_child, from_os).unwrap();
        assert_ne!(
            from_parent, from_child,
            "the child repeated its parent's output"
        );
        assert_eq!(child.map(|s| s.pid), Some(101));
    }

    proptest::proptest! {
        // Whatever a cookie holds, parsing never panics, and only the exact canonical
        // text of an id parses, to that id.
        #[test]
        fn arbitrary_text_never_panics_and_only_canonical_ids_parse(text in ".{0,40}") {
            if let Some(id) = Id::parse(&text) {
                proptest::prop_assert_eq!(id.to_string(), text);
            }
        }

        #[test]
        fn every_id_round_trips(bytes in proptest::prelude::any::<[u8; 16]>()) {
            let id = Id::from_bytes(bytes);
            proptest::prop_assert_eq!(Id::parse(&id.to_string()), Some(id));
        }
    }

    #[test]
    fn debug_does_not_leak_the_id() {
        let id = Id::generate().unwrap();
        let debug = format!("{id:?}");
        assert!(!debug.contains(&id.to_string()));
    }
}
