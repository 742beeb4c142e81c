//! An id's text form: exactly [`ID_LEN`] characters of the URL-safe base64 alphabet,
//! in the one canonical form (the last character's low 4 bits zero).
//!
//! Every request that presents a cookie parses one and every new cookie writes one, so
//! both are a table lookup per character rather than a general codec's setup; the
//! tests hold them equal to the `base64` crate's strict codec for any input.

use super::{ID_BYTES, ID_LEN};

/// The URL-safe alphabet, each character at its value.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Marks a byte that is not in the alphabet (bit 6 set: no character's value has it).
const NOT_IN_ALPHABET: u8 = 0xFF;

/// Each byte's value in the URL-safe alphabet, or [`NOT_IN_ALPHABET`].
const VALUES: [u8; 256] = {
    let mut table = [NOT_IN_ALPHABET; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        #[allow(clippy::cast_possible_truncation)] // i < 64
        {
            table[ALPHABET[i] as usize] = i as u8;
        }
        i += 1;
    }
    table
};

/// The id bytes `text` encodes, or `None` unless it is an id's canonical text.
pub(super) fn decode(text: &[u8]) -> Option<[u8; ID_BYTES]> {
    let text: &[u8; ID_LEN] = text.try_into().ok()?;
    let value = |byte: u8| VALUES[usize::from(byte)];
    let mut bytes = [0u8; ID_BYTES];
    // Any character outside the alphabet sets bit 6 here.
    let mut seen = 0u8;
    // 20 characters carry the first 15 bytes, four characters to three bytes.
    for (chars, out) in text[..20].chunks_exact(4).zip(bytes.chunks_exact_mut(3)) {
        let sextets = [chars[0], chars[1], chars[2], chars[3]].map(value);
        let mut bits = 0u32;
        for sextet in sextets {
            seen |= sextet;
            bits = bits << 6 | u32::from(sextet);
        }
        out.copy_from_slice(&bits.to_be_bytes()[1..]);
    }
    // The last two carry 12 bits: the 16th byte and 4 bits that must be zero.
    let (high, low) = (value(text[20]), value(text[21]));
    seen |= high | low;
    if seen & 0x40 != 0 || low & 0x0F != 0 {
        return None;
    }
    bytes[ID_BYTES - 1] = high << 2 | low >> 4;
    Some(bytes)
}

/// The canonical text of the id `bytes`.
pub(super) fn encode(bytes: &[u8; ID_BYTES]) -> [u8; ID_LEN] {
    let char_of = |sextet: u32| ALPHABET[(sextet & 0x3F) as usize];
    let mut text = [0u8; ID_LEN];
    for (three, out) in bytes.chunks_exact(3).zip(text.chunks_exact_mut(4)) {
        let bits = u32::from(three[0]) << 16 | u32::from(three[1]) << 8 | u32::from(three[2]);
        out.copy_from_slice(&[18, 12, 6, 0].map(|shift| char_of(bits >> shift)));
    }
    let last = u32::from(bytes[ID_BYTES - 1]);
    text[ID_LEN - 2] = char_of(last >> 2);
    text[ID_LEN - 1] = char_of(last << 4);
    text
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use proptest::prelude::*;

    use super::*;

    /// What the `base64` crate's strict URL-safe decoder makes of `text` as an id.
    fn oracle(text: &[u8]) -> Option<[u8; ID_BYTES]> {
        let mut bytes = [0u8; ID_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(text, &mut bytes) {
            Ok(ID_BYTES) if text.len() == ID_LEN => Some(bytes),
            _ => None,
        }
    }

    #[test]
    fn the_last_characters_low_bits_must_be_zero() {
        assert_eq!(decode(b"AAAAAAAAAAAAAAAAAAAAAA"), Some([0; ID_BYTES]));
        assert_eq!(decode(b"AAAAAAAAAAAAAAAAAAAAAB"), None);
        assert_eq!(decode(b"______________________"), None);
        assert_eq!(decode(b"_____________________w"), Some([0xFF; ID_BYTES]));
    }

    #[test]
    fn agrees_with_the_base64_crate_on_every_byte_at_every_position() {
        for position in 0..ID_LEN {
            for byte in 0..=u8::MAX {
                let mut text = *b"Zm9vYmFyLWlkLXRleHQtQQ";
                text[position] = byte;
                assert_eq!(decode(&text), oracle(&text), "{byte:#04x} at {position}");
            }
        }
    }

    proptest! {
        // Text near an id's shape: 22 characters from the alphabet and its neighbours
        // (the standard alphabet's `+` and `/`, padding, space, a non-ASCII letter).
        #[test]
        fn agrees_with_the_base64_crate_near_ids(text in "[A-Za-z0-9_+/= \u{e4}-]{22}") {
            prop_assert_eq!(decode(text.as_bytes()), oracle(text.as_bytes()));
        }

        #[test]
        fn agrees_with_the_base64_crate_on_any_bytes(text in proptest::collection::vec(any::<u8>(), 0..30)) {
            prop_assert_eq!(decode(&text), oracle(&text));
        }

        #[test]
        fn writes_every_id_as_the_base64_crate_does(bytes in any::<[u8; ID_BYTES]>()) {
            let (ours, theirs) = (encode(&bytes), URL_SAFE_NO_PAD.encode(bytes));
            prop_assert_eq!(ours.as_slice(), theirs.as_bytes());
        }

        #[test]
        fn reads_back_every_id(bytes in any::<[u8; ID_BYTES]>()) {
            prop_assert_eq!(decode(URL_SAFE_NO_PAD.encode(bytes).as_bytes()), Some(bytes));
        }
    }
}
