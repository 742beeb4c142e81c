//! What a token says: the registered claims verifiers read, and tether's own.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tether_core::{Id, Record, unix_ms};
use time::OffsetDateTime;

/// The token's payload.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Claims {
    /// Issued at (seconds since the epoch).
    pub(crate) iat: i64,
    /// Not before: the issue time.
    pub(crate) nbf: i64,
    /// Expires: the earlier of the idle and absolute deadlines, rounded down.
    pub(crate) exp: i64,
    /// The user the session is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sub: Option<String>,
    /// This token's own id, new for every token (RFC 7519: a verifier may keep a
    /// replay cache of them).
    pub(crate) jti: String,
    /// The session id (OpenID Connect's session claim): the same in every token of
    /// one session, new after `cycle_id`.
    pub(crate) sid: String,
    /// The issuer, when the store names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) iss: Option<String>,
    /// The audience, when the store names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) aud: Option<String>,
    /// The session itself (tether's private claim).
    pub(crate) ses: Session,
}

/// The private claim: the data and what the store needs to go on with the session.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Session {
    /// The cookie (or header) the token was issued for.
    pub(crate) ck: String,
    /// Issued at, in milliseconds (revocation compares it).
    pub(crate) at: i64,
    /// Version.
    pub(crate) v: u64,
    /// Created, last seen, idle deadline, absolute deadline (ms since the epoch).
    pub(crate) c: i64,
    pub(crate) s: i64,
    pub(crate) i: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) a: Option<i64>,
    /// The session's own lifetime (`Lifetime::to_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) l: Option<i64>,
    /// The session's data.
    #[serde(default)]
    pub(crate) d: Map<String, Value>,
}

impl Claims {
    /// The claims for `record` under `id`, issued `now` for the cookie `cookie`, as the
    /// token `token`.
    pub(crate) fn new(
        id: &Id,
        token: &Id,
        record: &Record,
        cookie: &str,
        now: OffsetDateTime,
        iss: Option<&str>,
        aud: Option<&str>,
    ) -> Self {
        Self {
            iat: now.unix_timestamp(),
            nbf: now.unix_timestamp(),
            exp: record.expires_at().unix_timestamp(),
            sub: record.user.clone(),
            jti: token.to_string(),
            sid: id.to_string(),
            iss: iss.map(str::to_owned),
            aud: aud.map(str::to_owned),
            ses: Session {
                ck: cookie.to_owned(),
                at: unix_ms::to_ms(now),
                v: record.version,
                c: unix_ms::to_ms(record.created),
                s: unix_ms::to_ms(record.last_seen),
                i: unix_ms::to_ms(record.idle_deadline),
                a: record.absolute_deadline.map(unix_ms::to_ms),
                l: record.lifetime.map(|l| l.to_ms()),
                d: record.data.clone(),
            },
        }
    }

    /// What is kept of the claims once the signature verified: the session they
    /// carry, decoded, and what every request checks again. `None` when the session
    /// id is not one of tether's.
    pub(crate) fn into_verified(self) -> Option<Verified> {
        let id = Id::parse(&self.sid)?;
        let record = Record {
            data: self.ses.d,
            version: self.ses.v,
            created: unix_ms::from_ms(self.ses.c),
            last_seen: unix_ms::from_ms(self.ses.s),
            idle_deadline: unix_ms::from_ms(self.ses.i),
            absolute_deadline: self.ses.a.map(unix_ms::from_ms),
            user: self.sub,
            lifetime: self.ses.l.and_then(tether_core::Lifetime::from_ms),
        };
        Some(Verified {
            nbf: self.nbf,
            exp: self.exp,
            cookie: self.ses.ck,
            iss: self.iss,
            aud: self.aud,
            issued: unix_ms::from_ms(self.ses.at),
            id,
            record,
        })
    }
}

/// A token whose signature verified (or that was signed here): remembered, so that a
/// token a browser sends again is neither verified nor decoded again, while its
/// times, cookie, issuer, audience and revocation are checked on every request.
#[derive(Debug)]
pub(crate) struct Verified {
    /// Not before and expires (seconds since the epoch).
    pub(crate) nbf: i64,
    pub(crate) exp: i64,
    /// The cookie (or header) the token was issued for.
    pub(crate) cookie: String,
    pub(crate) iss: Option<String>,
    pub(crate) aud: Option<String>,
    /// When the token was issued (revocation compares it).
    pub(crate) issued: OffsetDateTime,
    /// The session id and record the token carries.
    pub(crate) id: Id,
    pub(crate) record: Record,
}
