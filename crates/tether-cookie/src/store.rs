//! `CookieStore`'s [`ClientStore`] impl: sealing a record into a cookie value and
//! opening it again.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::XNonce;
use chacha20poly1305::aead::{Aead, Payload as AeadPayload};
use tether_core::{ClientStore, Error, Record, Result, unix_ms};
use time::OffsetDateTime;

use crate::opened::{Opened, cached};
use crate::{CookieStore, DEFLATED, FORMAT, NONCE_LEN, RAW, Sealed, TAG_LEN};

impl ClientStore for CookieStore {
    fn name(&self) -> &'static str {
        "cookie"
    }

    fn open(&self, value: &str, cookie: &str, now: OffsetDateTime) -> Option<Record> {
        if let Some(opened) = cached(&self.opened, value, cookie) {
            return self
                .not_before
                .admits(&opened.record, opened.issued, now)
                .then(|| opened.record.clone());
        }
        let (record, issued) = self.open_uncached(value, cookie)?;
        let admitted = self
            .not_before
            .admits(&record, issued, now)
            .then(|| record.clone());
        let cookie = cookie.into();
        self.opened.put(
            value,
            Opened {
                cookie,
                record,
                issued,
            },
        );
        admitted
    }

    fn seal(&self, record: &Record, cookie: &str, now: OffsetDateTime) -> Result<String> {
        let sealed = Sealed::new(record, now);
        let json = serde_json::to_vec(&sealed).map_err(|e| Error::Corrupt(e.to_string()))?;
        let mut plaintext = Vec::with_capacity(json.len() + 1);
        let deflated = self
            .compress
            .then(|| miniz_oxide::deflate::compress_to_vec(&json, 6))
            .filter(|d| d.len() < json.len());
        if let Some(d) = deflated {
            plaintext.push(DEFLATED);
            plaintext.extend_from_slice(&d);
        } else {
            plaintext.push(RAW);
            plaintext.extend_from_slice(&json);
        }
        // Bound before encrypting: base64 of 1 + 24 + len + 16 bytes.
        let size = (1 + NONCE_LEN + plaintext.len() + TAG_LEN).div_ceil(3) * 4;
        if size > self.max_len + 3 {
            return Err(Error::TooLarge {
                size,
                limit: self.max_len,
            });
        }
        let mut nonce = [0u8; NONCE_LEN];
        tether_core::fill_random(&mut nonce)?;
        let ciphertext = self.keys.ciphers[0]
            .encrypt(
                XNonce::from_slice(&nonce),
                AeadPayload {
                    msg: &plaintext,
                    aad: &self.aad(cookie),
                },
            )
            .map_err(|_| Error::Corrupt("encryption failed".into()))?;
        let mut bytes = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        bytes.push(FORMAT);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ciphertext);
        let value = URL_SAFE_NO_PAD.encode(bytes);
        if value.len() > self.max_len {
            return Err(Error::TooLarge {
                size: value.len(),
                limit: self.max_len,
            });
        }
        // The browser sends it back next: remember what it holds, as opening it would.
        let issued = unix_ms::from_ms(sealed.t);
        let cookie = cookie.into();
        let record = sealed.record();
        self.opened.put(
            &value,
            Opened {
                cookie,
                record,
                issued,
            },
        );
        Ok(value)
    }

    fn size_limit(&self) -> usize {
        self.max_len
    }
}
