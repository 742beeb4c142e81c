//! Reading the session cookie from `Cookie` headers and writing `Set-Cookie`.
//!
//! The layer reads and writes its own cookie directly, without a cookie jar per
//! request, so it coexists with any other cookie middleware.

use std::fmt::Write as _;

use http::header::Entry;
use http::{HeaderMap, HeaderValue, Response, header};

use crate::config::Config;

/// How many cookies of the session's name are tried, at most: a sibling domain or a
/// longer path can plant one in front of the real one, and the browser sends both.
pub(crate) const MAX_CANDIDATES: usize = 4;

/// The values of the cookies named `name`, in the order the browser sent them, at most
/// four. Headers are read as bytes: a cookie that is not UTF-8 (another
/// app's `theme=café` in Latin-1, say) is skipped, never the whole header. Values are
/// used verbatim (ids and sealed values are URL-safe, never percent-encoded); quotes
/// around a value are removed.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.append("cookie", http::HeaderValue::from_bytes(b"theme=caf\xe9; sid=a").unwrap());
/// headers.append("cookie", "sid=\"b\"; other=1".parse().unwrap());
/// assert_eq!(tether::cookie_values(&headers, "sid"), ["a", "b"]);
/// ```
pub fn cookie_values<'h>(headers: &'h HeaderMap, name: &str) -> Vec<&'h str> {
    values(headers, name).collect()
}

/// [`cookie_values`] as an iterator, for collecting without a heap allocation.
pub(crate) fn values<'h>(headers: &'h HeaderMap, name: &str) -> impl Iterator<Item = &'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| Pairs(Some(v.as_bytes())))
        .filter_map(|pair| {
            let at = memchr::memchr(b'=', pair)?;
            let (key, value) = (trim(&pair[..at]), trim(&pair[at + 1..]));
            (key == name.as_bytes()).then_some(value)
        })
        .filter_map(unquoted)
        .take(MAX_CANDIDATES)
}

/// A cookie's value without the quotes around it, if it is UTF-8.
fn unquoted(value: &[u8]) -> Option<&str> {
    let value = value
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(value);
    std::str::from_utf8(value).ok()
}

/// A `Cookie` header's `name=value` pairs, split at each `;` as `<[u8]>::split`
/// would, but a word at a time (`memchr`): a signed or sealed session value runs to
/// hundreds of bytes, and every request's header is scanned.
struct Pairs<'h>(Option<&'h [u8]>);

impl<'h> Iterator for Pairs<'h> {
    type Item = &'h [u8];

    fn next(&mut self) -> Option<&'h [u8]> {
        let rest = self.0?;
        if let Some(at) = memchr::memchr(b';', rest) {
            self.0 = rest.get(at + 1..);
            rest.get(..at)
        } else {
            self.0 = None;
            Some(rest)
        }
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &bytes[start..end.max(start)]
}

/// What the layer must do with the cookie after the handler.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CookieAction {
    Keep,
    Set {
        value: String,
        max_age: Option<time::Duration>,
        /// The server-side session the value names (none for a sealed cookie).
        id: Option<tether_core::Id>,
    },
    Remove,
}

/// Appends the `Set-Cookie` for `action`, with `Cache-Control: no-store`: a shared
/// cache must never hand one user's session cookie to another.
pub(crate) fn apply<B>(config: &Config, action: CookieAction, response: &mut Response<B>) {
    let text = match action {
        // A request that keeps its cookie (most of them) builds nothing.
        CookieAction::Keep => return,
        // The common case, a cookie set: its fixed attributes were formatted once.
        CookieAction::Set { value, max_age, .. } => {
            let attributes = config.attributes();
            let mut text =
                String::with_capacity(config.name().len() + value.len() + attributes.len() + 32);
            text.push_str(config.name());
            text.push('=');
            text.push_str(&value);
            text.push_str(attributes);
            if let Some(max_age) = max_age {
                let _ = write!(
                    text,
                    "; Max-Age={}",
                    max_age.max(time::Duration::ZERO).whole_seconds()
                );
            }
            text
        }
        CookieAction::Remove => {
            let mut cookie = config.cookie();
            cookie.make_removal();
            cookie.to_string()
        }
    };
    // The value is ours and URL-safe; the name, path and domain come from the
    // configuration, and a character a header cannot carry there is a setup mistake
    // that must not pass silently.
    match HeaderValue::from_str(&text) {
        Ok(value) => {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        Err(error) => tracing::error!(
            cookie = config.name(),
            %error,
            "the session cookie cannot be sent: its name, path or domain is not a valid header value"
        ),
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// Adds `Vary: NAME` (keeping what `Vary` already names): the response was made with
/// the session the header `name` carries, so a cache must not serve it for another.
pub(crate) fn vary_on<B>(name: &http::HeaderName, response: &mut Response<B>) {
    let value = || {
        if name == header::COOKIE {
            HeaderValue::from_static("Cookie")
        } else {
            HeaderValue::from_name(name.clone())
        }
    };
    // One lookup of `Vary`: most responses have none yet.
    match response.headers_mut().entry(header::VARY) {
        Entry::Vacant(entry) => {
            entry.insert(value());
        }
        Entry::Occupied(mut entry) => {
            let named = entry
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|v| {
                    let v = v.trim();
                    v == "*" || v.eq_ignore_ascii_case(name.as_str())
                });
            if !named {
                entry.append(value());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::cookie::SameSite;
    use proptest::prelude::*;

    fn header(bytes: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(bytes) {
            h.append(header::COOKIE, v);
        }
        h
    }

    #[test]
    fn vary_names_the_session_header_once_and_keeps_what_it_named() {
        let vary = |before: &[&'static str], name: &http::HeaderName| {
            let mut response = Response::new(());
            for v in before {
                response
                    .headers_mut()
                    .append(header::VARY, HeaderValue::from_static(v));
            }
            vary_on(name, &mut response);
            let values = response.headers().get_all(header::VARY).iter();
            values
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(vary(&[], &header::COOKIE), ["Cookie"]);
        assert_eq!(
            vary(&["Accept-Encoding"], &header::COOKIE),
            ["Accept-Encoding", "Cookie"]
        );
        assert_eq!(
            vary(&["accept, cookie"], &header::COOKIE),
            ["accept, cookie"]
        );
        assert_eq!(vary(&["*"], &header::COOKIE), ["*"]);
        let x = http::HeaderName::from_static("x-session");
        assert_eq!(vary(&["Cookie"], &x), ["Cookie", "x-session"]);
        assert_eq!(vary(&["Origin", "X-Session"], &x), ["Origin", "X-Session"]);
    }

    #[test]
    fn other_cookies_cannot_hide_the_session() {
        let h = header(b"theme=caf\xe9; tether=abc");
        assert_eq!(cookie_values(&h, "tether"), ["abc"]);
        let h = header(
            b"tether=first; x=1; tether=second; tether=\xff; tether=third; tether=4; tether=5",
        );
        assert_eq!(
            cookie_values(&h, "tether"),
            ["first", "second", "third", "4"]
        );
        assert!(cookie_values(&header(b"xtether=a; tether2=b"), "tether").is_empty());
    }

    /// The `Set-Cookie` the `cookie` crate writes for `value` and `max_age`.
    fn by_the_cookie_crate(
        config: &Config,
        value: &str,
        max_age: Option<time::Duration>,
    ) -> String {
        let mut cookie = config.cookie();
        cookie.set_value(value);
        if let Some(max_age) = max_age {
            cookie.set_max_age(max_age.max(time::Duration::ZERO));
        }
        cookie.to_string()
    }

    fn set_cookie(config: &Config, action: CookieAction) -> Vec<String> {
        let mut response = Response::new(());
        apply(config, action, &mut response);
        response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn a_removal_expires_the_cookie_with_its_attributes() {
        let config = Config::default();
        let [removal] = &set_cookie(&config, CookieAction::Remove)[..] else {
            panic!("one Set-Cookie");
        };
        assert!(removal.starts_with(
            "__Host-tether=; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=0; Expires="
        ));
    }

    /// The values as a plain byte-at-a-time split finds them: the model the fast
    /// split must agree with.
    fn by_bytes<'h>(headers: &'h HeaderMap, name: &str) -> Vec<&'h str> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
            .filter_map(|pair| {
                let at = pair.iter().position(|b| *b == b'=')?;
                (trim(&pair[..at]) == name.as_bytes()).then(|| trim(&pair[at + 1..]))
            })
            .filter_map(unquoted)
            .take(MAX_CANDIDATES)
            .collect()
    }

    /// Header bytes made mostly of the pieces that matter to the split.
    fn cookie_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"tether".to_vec()),
            Just(b"=".to_vec()),
            Just(b";".to_vec()),
            Just(b" ".to_vec()),
            Just(b"\"".to_vec()),
            Just(b"a".to_vec()),
            any::<u8>().prop_map(|b| vec![b]),
        ];
        proptest::collection::vec(piece, 0..80).prop_map(|p| p.concat())
    }

    proptest! {
        #[test]
        fn the_values_are_those_a_byte_at_a_time_reading_finds(
            first in cookie_bytes(),
            second in proptest::option::of(cookie_bytes()),
        ) {
            let mut h = HeaderMap::new();
            for bytes in std::iter::once(first).chain(second) {
                if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                    h.append(header::COOKIE, value);
                }
            }
            prop_assert_eq!(cookie_values(&h, "tether"), by_bytes(&h, "tether"));
        }

        #[test]
        fn arbitrary_cookie_headers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let h = header(&bytes);
            let values = cookie_values(&h, "tether");
            prop_assert!(values.len() <= MAX_CANDIDATES);
        }

        /// The attributes formatted once at configuration and the cookie crate's
        /// formatting per response write the same header, whatever the configuration.
        #[test]
        fn a_set_cookie_is_what_the_cookie_crate_writes(
            name in "[A-Za-z0-9_]{1,12}",
            chosen in any::<bool>(),
            path in "/[A-Za-z0-9/_-]{0,12}",
            domain in proptest::option::of("\\.?[a-z]{1,8}\\.[a-z]{2,3}"),
            secure in any::<bool>(),
            http_only in any::<bool>(),
            same_site in 0..3_u8,
            value in "[A-Za-z0-9_-]{0,60}",
            max_age in proptest::option::of(-10_i64..100_000_000),
        ) {
            let mut config = Config::default();
            config.cookie_name = name;
            config.name_chosen = chosen;
            config.path = path;
            config.domain = domain;
            config.secure = secure;
            config.http_only = http_only;
            config.same_site = [SameSite::Strict, SameSite::Lax, SameSite::None][usize::from(same_site)];
            config.refresh_name();
            let max_age = max_age.map(time::Duration::seconds);
            let expected = by_the_cookie_crate(&config, &value, max_age);
            let sent = set_cookie(&config, CookieAction::Set { value, max_age, id: None });
            prop_assert_eq!(sent, vec![expected]);
        }

        #[test]
        fn the_session_cookie_is_found_among_any_others(
            others in proptest::collection::vec(("[a-z]{1,8}", proptest::collection::vec(any::<u8>(), 0..20)), 0..6),
            value in "[A-Za-z0-9_-]{22}",
        ) {
            let mut bytes = Vec::new();
            for (name, v) in &others {
                if name == "tether" { continue; }
                bytes.extend_from_slice(name.as_bytes());
                bytes.push(b'=');
                bytes.extend(v.iter().filter(|b| **b != b';' && **b >= 0x20 && **b != 0x7f));
                bytes.extend_from_slice(b"; ");
            }
            bytes.extend_from_slice(format!("tether={value}").as_bytes());
            let h = header(&bytes);
            prop_assert_eq!(cookie_values(&h, "tether"), vec![value.as_str()]);
        }
    }
}
