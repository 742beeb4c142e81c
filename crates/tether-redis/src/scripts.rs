//! The server-side scripts. Each touches the keys of one session only (one hash
//! slot), so they run unchanged on Redis Cluster.

use redis::Script;
use std::sync::LazyLock;

/// Merges one request's changes atomically. Returns `false` when the session is gone
/// (never recreates it), else `{version, old_user_flag, old_user, new_user_flag, new_user,
/// created, absolute_deadline (0: none), the new idle deadline (the session's expiry),
/// the session's own lifetime (0: none)}`. A session with a lifetime of its own (`l`)
/// is refreshed by it, not by the idle deadline given.
///
/// KEYS[1] session hash. ARGV: now_ms, idle_deadline_ms, clear (0/1), user_op
/// (0 keep, 1 set, 2 unset), user, then field/value pairs, an empty value removing
/// the field (an empty string is never valid JSON, so it cannot be a value).
pub(crate) static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
-- Three calls in the common case (HMGET, HSET, PEXPIREAT): each redis.call costs the
-- server a command dispatch, and a save is on every writing request.
local key = KEYS[1]
local now = tonumber(ARGV[1])
local meta = redis.call('HMGET', key, 'v', 'i', 'a', 'u', 's', 'c', 'l')
if not meta[1] then return false end
local idle, abs = tonumber(meta[2]), tonumber(meta[3])
if now >= idle or (abs and now >= abs) then return false end
-- Large argument lists go in batches: Lua's unpack has a stack limit.
local function batched(cmd, list)
  for i = 1, #list, 1000 do
    redis.call(cmd, key, unpack(list, i, math.min(i + 999, #list)))
  end
end
local dels, sets = {}, {}
if ARGV[3] == '1' then
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if string.sub(f, 1, 2) == 'd:' then dels[#dels + 1] = f end
  end
end
for i = 6, #ARGV, 2 do
  if ARGV[i + 1] == '' then dels[#dels + 1] = ARGV[i]
  else sets[#sets + 1] = ARGV[i]; sets[#sets + 1] = ARGV[i + 1] end
end
local old_user, new_user = meta[4], meta[4]
if ARGV[4] == '1' then
  new_user = ARGV[5]
  sets[#sets + 1] = 'u'; sets[#sets + 1] = new_user
elseif ARGV[4] == '2' then
  new_user = false
  dels[#dels + 1] = 'u'
end
if now > tonumber(meta[5]) then sets[#sets + 1] = 's'; sets[#sets + 1] = ARGV[1] end
local deadline = tonumber(ARGV[2])
local life = tonumber(meta[7])
if life then deadline = now + math.abs(life) end
if abs and abs < deadline then deadline = abs end
local version = tonumber(meta[1]) + 1
sets[#sets + 1] = 'i'; sets[#sets + 1] = string.format('%d', deadline)
sets[#sets + 1] = 'v'; sets[#sets + 1] = string.format('%d', version)
-- Deletions first: a cleared field that this request sets again must end up set.
batched('HDEL', dels)
batched('HSET', sets)
redis.call('PEXPIREAT', key, deadline)
return {version, old_user and 1 or 0, old_user or '', new_user and 1 or 0, new_user or '', tonumber(meta[6]), abs or 0, deadline, life or 0}
",
    )
});

/// Reads a whole session hash as one MessagePack array of its field/value pairs
/// (`false` when there is none): one bulk string for the client to parse instead of
/// a reply element per field, which is where a load's client-side time went.
///
/// KEYS[1] session hash.
pub(crate) static LOAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local pairs = redis.call('HGETALL', KEYS[1])
if #pairs == 0 then return false end
return cmsgpack.pack(pairs)
",
    )
});

/// Creates a session unless a live one has the id. Returns 1 when created.
///
/// KEYS[1] session hash. ARGV: now_ms, expires_at_ms, then field/value pairs.
pub(crate) static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local key = KEYS[1]
local now = tonumber(ARGV[1])
local meta = redis.call('HMGET', key, 'i', 'a')
if meta[1] then
  local abs = tonumber(meta[2])
  if now < tonumber(meta[1]) and not (abs and now >= abs) then return 0 end
  redis.call('DEL', key)
end
-- In batches: Lua's unpack has a stack limit (a session may hold thousands of keys).
for i = 3, #ARGV, 1000 do
  redis.call('HSET', key, unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('PEXPIREAT', key, tonumber(ARGV[2]))
return 1
",
    )
});

/// Refreshes the idle deadline of a live session (by its own lifetime if it has one).
/// Returns 1 when refreshed.
///
/// KEYS[1] session hash. ARGV: now_ms, last_seen_ms, idle_deadline_ms.
pub(crate) static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local key = KEYS[1]
local now = tonumber(ARGV[1])
local meta = redis.call('HMGET', key, 'i', 'a', 's', 'l')
if not meta[1] then return 0 end
local abs = tonumber(meta[2])
if now >= tonumber(meta[1]) or (abs and now >= abs) then return 0 end
local deadline = tonumber(ARGV[3])
local life = tonumber(meta[4])
if life then deadline = tonumber(ARGV[2]) + math.abs(life) end
if abs and abs < deadline then deadline = abs end
if tonumber(ARGV[2]) > tonumber(meta[3]) then redis.call('HSET', key, 's', ARGV[2]) end
redis.call('HSET', key, 'i', string.format('%d', deadline))
redis.call('PEXPIREAT', key, deadline)
return 1
",
    )
});

/// Deletes a session, returning `{deleted, user}` (`user` false when unbound), so the
/// caller can remove it from its user's index.
///
/// KEYS[1] session hash.
pub(crate) static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local user = redis.call('HGET', KEYS[1], 'u')
local deleted = redis.call('DEL', KEYS[1])
return {deleted, user}
",
    )
});

/// Deletes a session only if its version is still the one given: the last step of an
/// id rotation, after the new record exists. Returns 1 when deleted, 0 when the
/// version moved (a concurrent save), -1 when the session is gone.
///
/// KEYS[1] session hash. ARGV[1] the version read.
pub(crate) static TAKE_IF_VERSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return -1 end
if v ~= ARGV[1] then return 0 end
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
