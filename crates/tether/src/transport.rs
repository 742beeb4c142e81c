//! How the session's token travels: in the session cookie (the default), or in a
//! header, for API and mobile clients that keep it themselves.

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Response};
use smallvec::SmallVec;

use crate::config::{Config, Transport};
use crate::cookie_header::{self as cookie, CookieAction, MAX_CANDIDATES};

/// The tokens a request presents, in order; nearly always one, so kept inline.
pub(crate) type Tokens<'h> = SmallVec<[&'h str; 2]>;

/// The tokens the request presents, in order, at most [`MAX_CANDIDATES`].
pub(crate) fn presented<'h>(config: &Config, headers: &'h HeaderMap) -> Tokens<'h> {
    let values = |name: &HeaderName| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .take(MAX_CANDIDATES)
    };
    match &config.transport {
        Transport::Cookie => cookie::values(headers, config.name()).collect(),
        Transport::Header(name) => values(name).filter(|v| !v.is_empty()).collect(),
        Transport::Bearer { .. } => values(&header::AUTHORIZATION)
            .filter_map(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| token.trim())
                    .filter(|t| !t.is_empty())
            })
            .collect(),
    }
}

/// Writes `action` the transport's way: `Set-Cookie`, or the response header (empty
/// when the session ended), with `Cache-Control: no-store`.
pub(crate) fn write<B>(config: &Config, action: CookieAction, response: &mut Response<B>) {
    let Some(name) = config.transport.response_header() else {
        cookie::apply(config, action, response);
        return;
    };
    let value = match action {
        CookieAction::Keep => return,
        CookieAction::Set { value, .. } => value,
        CookieAction::Remove => String::new(),
    };
    match HeaderValue::from_str(&value) {
        Ok(value) => {
            response.headers_mut().insert(name.clone(), value);
        }
        Err(error) => tracing::error!(header = %name, %error, "the session token cannot be sent"),
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// `Vary` on the header the token came in.
pub(crate) fn vary<B>(config: &Config, response: &mut Response<B>) {
    cookie::vary_on(&config.transport.request_header(), response);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(transport: Transport) -> Config {
        let mut config = Config::default();
        config.transport = transport;
        config
    }

    #[test]
    fn bearer_tokens_are_read_from_authorization_only() {
        let c = config(Transport::bearer());
        let mut h = HeaderMap::new();
        h.append(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        h.append(header::AUTHORIZATION, "bearer  tok1 ".parse().unwrap());
        h.append(header::COOKIE, "__Host-tether=cookie".parse().unwrap());
        assert_eq!(presented(&c, &h).as_slice(), ["tok1"]);
        let c = config(Transport::header(HeaderName::from_static("x-session")));
        h.append("x-session", "tok2".parse().unwrap());
        assert_eq!(presented(&c, &h).as_slice(), ["tok2"]);
    }

    proptest! {
        #[test]
        fn arbitrary_authorization_headers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                h.append(header::AUTHORIZATION, v);
            }
            let c = config(Transport::bearer());
            let got = presented(&c, &h);
            prop_assert!(got.len() <= MAX_CANDIDATES);
            prop_assert!(got.iter().all(|t| !t.is_empty() && t.trim() == *t));
        }
    }
}
