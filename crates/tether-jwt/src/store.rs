//! `JwtStore`'s [`ClientStore`] impl: signing a record as a JWT and verifying it.

use jsonwebtoken::Header;
use tether_core::{ClientStore, Error, Id, Record, Result};
use time::OffsetDateTime;

use crate::claims::Claims;
use crate::{JwtStore, NBF_LEEWAY_SECONDS};

impl ClientStore for JwtStore {
    fn name(&self) -> &'static str {
        "jwt"
    }

    fn open(&self, value: &str, cookie: &str, now: OffsetDateTime) -> Option<Record> {
        self.open_with_id(value, cookie, now)
            .map(|(_, record)| record)
    }

    fn open_with_id(
        &self,
        value: &str,
        cookie: &str,
        now: OffsetDateTime,
    ) -> Option<(Option<Id>, Record)> {
        let verified = self.verify(value)?;
        let seconds = now.unix_timestamp();
        // `exp` is the deadline rounded down to the second (a verifier may end the
        // session up to a second early, never late); tether itself goes by the
        // millisecond deadlines in `ses`, checked below. `nbf` is the issuing
        // instance's clock: another instance a little behind still accepts the token.
        let valid = verified.nbf <= seconds.saturating_add(NBF_LEEWAY_SECONDS)
            && seconds <= verified.exp
            && verified.cookie == cookie
            && verified.iss == self.issuer
            && verified.aud == self.audience;
        if !valid
            || !self
                .not_before
                .admits(&verified.record, verified.issued, now)
        {
            return None;
        }
        Some((Some(verified.id), verified.record.clone()))
    }

    fn seal(&self, record: &Record, cookie: &str, now: OffsetDateTime) -> Result<String> {
        self.seal_with_id(&Id::generate()?, record, cookie, now)
    }

    fn seal_with_id(
        &self,
        id: &Id,
        record: &Record,
        cookie: &str,
        now: OffsetDateTime,
    ) -> Result<String> {
        let key = self.keys.signer();
        let signing = key
            .signing
            .as_ref()
            .ok_or_else(|| Error::Config(format!("key {:?} cannot sign", key.kid)))?;
        let claims = Claims::new(
            id,
            &Id::generate()?,
            record,
            cookie,
            now,
            self.issuer.as_deref(),
            self.audience.as_deref(),
        );
        let mut header = Header::new(key.algorithm);
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, signing)
            .map_err(|e| Error::Corrupt(format!("signing a session token: {e}")))?;
        if token.len() > self.max_len {
            return Err(Error::TooLarge {
                size: token.len(),
                limit: self.max_len,
            });
        }
        // The next request brings this token back: it is known good.
        if let Some(verified) = claims.into_verified() {
            drop(self.verified.put(&token, verified));
        }
        Ok(token)
    }

    fn size_limit(&self) -> usize {
        self.max_len
    }
}
