//! The text form of symmetric keys (the cookie store's key ring, signed ids): 32-byte
//! keys as unpadded URL-safe base64, newest first.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Parses keys written as unpadded URL-safe base64 (43 characters for 32 bytes),
/// separated by whitespace or commas, newest first; lines starting with `#` are
/// comments. `Err(n)` names the first key (from 1) that is not such a key. An empty
/// text is an empty list: the caller decides whether that is allowed.
///
/// ```
/// let key = "A".repeat(42) + "A";
/// assert_eq!(tether_core::keys::parse_keys(&format!("# newest first\n{key}, {key}")).unwrap().len(), 2);
/// assert_eq!(tether_core::keys::parse_keys("short"), Err(1));
/// ```
pub fn parse_keys(text: &str) -> Result<Vec<[u8; 32]>, usize> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| line.split([',', ' ', '\t']))
        .filter(|word| !word.is_empty())
        .enumerate()
        .map(|(i, word)| {
            let mut key = [0u8; 32];
            match URL_SAFE_NO_PAD.decode_slice(word.as_bytes(), &mut key) {
                Ok(32) if word.len() == 43 => Ok(key),
                _ => Err(i + 1),
            }
        })
        .collect()
}

/// A new random 32-byte key in that text form.
///
/// ```
/// let key = tether_core::keys::generate_key()?;
/// assert_eq!(tether_core::keys::parse_keys(&key).unwrap().len(), 1);
/// # Ok::<(), tether_core::Error>(())
/// ```
pub fn generate_key() -> Result<String, crate::Error> {
    let mut key = [0u8; 32];
    crate::fill_random(&mut key)?;
    Ok(URL_SAFE_NO_PAD.encode(key))
}
