//! The server-side scripts. Each touches the keys of one session only (one hash
//! slot: both its keys carry the id as their hash tag), so they run unchanged on
//! Redis Cluster.

use redis::Script;
use std::sync::LazyLock;

/// Lua every session script starts with: reading a session, the liveness check, and
/// writing it back.
///
/// A session is one string at `KEYS[1]`: its version in 16 decimal digits, then a
/// MessagePack map `{c, s, i, a?, u?, l?, d}` (created, last seen, idle and absolute
/// deadlines in ms since the epoch; user; its own lifetime, `Lifetime::to_ms`; data
/// keys to their JSON text).
const PRELUDE: &str = r"
local function read()
  local raw = redis.call('GET', KEYS[1])
  if not raw then return nil end
  local r = cmsgpack.unpack(string.sub(raw, 17))
  r.v = tonumber(string.sub(raw, 1, 16))
  return r
end
local function live(r, now)
  return r ~= nil and now < r.i and not (r.a and now >= r.a)
end
local function write(r, deadline)
  local v = r.v
  r.v = nil
  local packed = string.format('%016d', v) .. cmsgpack.pack(r)
  r.v = v
  redis.call('SET', KEYS[1], packed, 'PXAT', string.format('%d', deadline))
end
";

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

/// Merges one request's changes atomically. Returns `false` when the session is gone
/// (never recreates it), else `{version, old_user_flag, old_user, new_user_flag, new_user,
/// created, absolute_deadline (0: none), the new idle deadline (the session's expiry),
/// the session's own lifetime (0: none)}`. A session with a lifetime of its own (`l`)
/// is refreshed by it, not by the idle deadline given.
///
/// KEYS[1] the packed key. ARGV: now_ms, idle_deadline_ms,
/// clear (0/1), user_op (0 keep, 1 set, 2 unset), user, then key/JSON pairs, an empty
/// JSON removing the key (an empty string is never valid JSON, so it cannot be a
/// value).
pub(crate) static SAVE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local now = tonumber(ARGV[1])
local r = read()
if not live(r, now) then return false end
if ARGV[3] == '1' then r.d = {} end
for i = 6, #ARGV, 2 do
  if ARGV[i + 1] == '' then r.d[ARGV[i]] = nil else r.d[ARGV[i]] = ARGV[i + 1] end
end
local old_user = r.u
if ARGV[4] == '1' then r.u = ARGV[5] elseif ARGV[4] == '2' then r.u = nil end
if now > r.s then r.s = now end
local deadline = tonumber(ARGV[2])
if r.l then deadline = now + math.abs(r.l) end
if r.a and r.a < deadline then deadline = r.a end
r.i = deadline
r.v = r.v + 1
write(r, deadline)
return {r.v, old_user and 1 or 0, old_user or '', r.u and 1 or 0, r.u or '', r.c, r.a or 0, deadline, r.l or 0}
",
    )
});

/// Writes a session a request read, with its changes applied by the client, if its
/// version is still the one read: the common case of a save, with no unpacking.
/// Returns 1 when written, 0 when the version moved or the session is gone (the
/// caller then merges with `SAVE`, which tells the two apart). For a record of at
/// most [`LARGE_RECORD`] bytes; [`save_if_version`] picks the script.
///
/// One `SET … GET` writes and returns what it replaced: each `redis.call` costs Redis
/// about as much as a plain command, so writing first and checking after is a fifth
/// cheaper than a `GET` then a `SET` (2.1 against 2.6 µs per call, `INFO
/// commandstats`). When the version read is not the one replaced, the script puts
/// back what was there before it returns, so nothing else ever sees the write: the
/// record replaced, with the expiry every write gives a key (its idle deadline, or its
/// absolute one if earlier), or no key at all. A value there that is not a session
/// (its deadlines unreadable) is put back too, with the expiry given, and the merge
/// that follows reports it.
///
/// KEYS[1] the packed key. ARGV: the version read (16 digits), the new packed
/// record, its expiry (ms).
static SAVE_IF_VERSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local old = redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3], 'GET')
if old and string.sub(old, 1, 16) == ARGV[1] then return 1 end
if not old then
  redis.call('DEL', KEYS[1])
else
  local expires = tonumber(ARGV[3])
  local ok, r = pcall(cmsgpack.unpack, string.sub(old, 17))
  if ok and type(r) == 'table' and type(r.i) == 'number' then
    expires = r.i
    if type(r.a) == 'number' and r.a < expires then expires = r.a end
  end
  redis.call('SET', KEYS[1], old, 'PXAT', string.format('%d', expires))
end
return 0
",
    )
});

/// [`SAVE_IF_VERSION`] for a larger record: reads only the version's 16 bytes
/// (`GETRANGE` of a missing key is empty, so a gone session does not match) instead
/// of copying the stored record into Lua.
static SAVE_IF_VERSION_LARGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GETRANGE', KEYS[1], 0, 15) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
return 1
",
    )
});

/// The size (bytes, packed) above which a save reads only the stored version. A
/// record copied into Lua costs Redis about 1 ns a byte (the copy, and the garbage
/// collection it drives); the second `redis.call` costs about 0.5 µs. Measured with
/// `INFO commandstats` (Redis 7.0), `SET … GET` against `GETRANGE` then `SET`: 2.7
/// against 3.2 µs per call at 300 bytes, even near 700, 0.35 µs more at 1 KiB, 1.3 µs
/// more at 2 KiB.
const LARGE_RECORD: usize = 512;

/// The compare-and-set script for a record of `packed` bytes.
pub(crate) fn save_if_version(packed: usize) -> &'static Script {
    if packed > LARGE_RECORD {
        &SAVE_IF_VERSION_LARGE
    } else {
        &SAVE_IF_VERSION
    }
}

/// Refreshes the idle deadline of a live session (by its own lifetime if it has one).
/// Returns 1 when refreshed.
///
/// KEYS[1] the packed key. ARGV: now_ms, last_seen_ms,
/// idle_deadline_ms.
pub(crate) static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local r = read()
if not live(r, tonumber(ARGV[1])) then return 0 end
local seen = tonumber(ARGV[2])
local deadline = tonumber(ARGV[3])
if r.l then deadline = seen + math.abs(r.l) end
if r.a and r.a < deadline then deadline = r.a end
if seen > r.s then r.s = seen end
r.i = deadline
-- A refresh moves the version too, so a save that read before it does not write its
-- older deadline back (SAVE_IF_VERSION compares the version only).
r.v = r.v + 1
write(r, deadline)
return 1
",
    )
});

/// Deletes a session, returning `{deleted, user}` (`user` false when unbound), so the
/// caller can remove it from its user's index.
///
/// KEYS[1] the packed key.
pub(crate) static DELETE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local r = read()
local deleted = redis.call('DEL', KEYS[1])
return {deleted, r and r.u or false}
",
    )
});

/// Deletes a session only if its version is still the one given: the last step of an
/// id rotation, after the new record exists. Returns 1 when deleted, 0 when the
/// version moved (a concurrent save), -1 when the session is gone.
///
/// KEYS[1] the packed key. ARGV[1] the version read.
pub(crate) static TAKE_IF_VERSION: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local r = read()
if not r then return -1 end
if r.v ~= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
return 1
",
    )
});

/// Adds a session to its user's index (a sorted set by creation time) and keeps the
/// index alive as long as its longest-lived session: `PEXPIREAT` moves only forward,
/// and an expiry of 0 (a session with no absolute lifetime) makes it persistent.
///
/// KEYS[1] the index. ARGV: created_ms, member, expires_at_ms (0: none), now_ms.
pub(crate) static INDEX: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local key = KEYS[1]
-- Before the ZADD: -2 (no index yet), -1 (persistent), or the ms it has left
-- (PTTL, not Redis 7's PEXPIRETIME, so Redis 6 runs it too).
local left = redis.call('PTTL', key)
redis.call('ZADD', key, ARGV[1], ARGV[2])
local expires = tonumber(ARGV[3])
if expires == 0 then
  redis.call('PERSIST', key)
elseif left == -2 or (left >= 0 and tonumber(ARGV[4]) + left < expires) then
  redis.call('PEXPIREAT', key, expires)
end
return 1
",
    )
});

/// Releases a lock only for its owner. KEYS[1] lock key, ARGV[1] token.
pub(crate) static UNLOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

#[cfg(test)]
mod tests {
    //! The compare-and-set scripts against a real Redis: a save whose version moved
    //! leaves the key exactly as it found it (bytes and expiry), or absent.

    use super::save_if_version;
    use crate::codec::{encode, version_prefix};
    use redis::AsyncCommands as _;
    use tether_core::{Expiry, Id, Record, unix_ms};
    use time::{Duration, OffsetDateTime};

    async fn conn() -> redis::aio::MultiplexedConnection {
        let client =
            redis::Client::open(tether_testkit::services::redis_url()).expect("a Redis URL");
        client
            .get_multiplexed_async_connection()
            .await
            .expect("redis-server at TETHER_TEST_REDIS_URL")
    }

    /// A record of version 7, its absolute deadline before its idle one when
    /// `absolute_first`, padded with `pad` bytes of data.
    fn record(absolute_first: bool, pad: usize) -> Record {
        let now = OffsetDateTime::now_utc();
        let mut record = Record::new(now, &Expiry::default());
        record.version = 7;
        record.absolute_deadline = Some(if absolute_first {
            record.idle_deadline - Duration::minutes(3)
        } else {
            record.idle_deadline + Duration::hours(5)
        });
        record
            .data
            .insert("pad".into(), serde_json::json!("x".repeat(pad)));
        record
    }

    async fn run(
        conn: &mut redis::aio::MultiplexedConnection,
        key: &str,
        read: u64,
        new: &[u8],
        expires: i64,
    ) -> i64 {
        save_if_version(new.len())
            .key(key)
            .arg(&version_prefix(read)[..])
            .arg(new)
            .arg(expires)
            .invoke_async(conn)
            .await
            .expect("the script runs")
    }

    /// Stores `value` at `key` until `at` (ms).
    async fn set_until(
        conn: &mut redis::aio::MultiplexedConnection,
        key: &str,
        value: &[u8],
        at: i64,
    ) {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PXAT")
            .arg(at)
            .query_async(conn)
            .await
            .unwrap();
    }

    /// When `key` expires (ms; `PEXPIRETIME`).
    async fn expiry(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
        redis::cmd("PEXPIRETIME")
            .arg(key)
            .query_async(conn)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_moved_version_leaves_the_key_as_it_was() {
        let mut conn = conn().await;
        for pad in [10, 4096] {
            for absolute_first in [false, true] {
                let key = format!("scripts-test:{}", Id::generate().unwrap());
                let stored = record(absolute_first, pad);
                let packed = encode(&stored).unwrap();
                let expires = unix_ms::to_ms(stored.expires_at());
                set_until(&mut conn, &key, &packed, expires).await;
                let mut newer = stored.clone();
                newer.version = 8;
                newer.idle_deadline += Duration::hours(1);
                let new = encode(&newer).unwrap();
                let later = unix_ms::to_ms(newer.idle_deadline);

                // Read at version 6: the stored 7 stays, with its expiry.
                assert_eq!(run(&mut conn, &key, 6, &new, later).await, 0);
                let kept: Vec<u8> = conn.get(&key).await.unwrap();
                assert_eq!(kept, packed, "pad {pad}: the stored record changed");
                let at = expiry(&mut conn, &key).await;
                assert_eq!(
                    at, expires,
                    "pad {pad}, absolute first {absolute_first}: the expiry moved"
                );

                // Read at version 7: written, with the new expiry.
                assert_eq!(run(&mut conn, &key, 7, &new, later).await, 1);
                let written: Vec<u8> = conn.get(&key).await.unwrap();
                assert_eq!(written, new);
                let at = expiry(&mut conn, &key).await;
                assert_eq!(at, later);

                // Not a session: its bytes stay, and it still expires.
                let foreign = b"0000000000000007 not a session".to_vec();
                set_until(&mut conn, &key, &foreign, expires).await;
                assert_eq!(run(&mut conn, &key, 6, &new, later).await, 0);
                let kept: Vec<u8> = conn.get(&key).await.unwrap();
                assert_eq!(kept, foreign, "pad {pad}: a value not a session changed");
                let ttl: i64 = conn.pttl(&key).await.unwrap();
                assert!(
                    ttl > 0,
                    "pad {pad}: a value not a session lost its expiry ({ttl})"
                );

                // Gone: not recreated.
                let _: () = conn.del(&key).await.unwrap();
                assert_eq!(run(&mut conn, &key, 8, &new, later).await, 0);
                let exists: bool = conn.exists(&key).await.unwrap();
                assert!(!exists, "pad {pad}: a save recreated a gone session");
            }
        }
    }
}
