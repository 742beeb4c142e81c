//! The server-side scripts. Each touches the keys of one session only (one hash
//! slot), so they run unchanged on Redis Cluster.

use redis::Script;
use std::sync::LazyLock;

/// Merges one request's changes atomically. Returns `false` when the session is gone
/// (never recreates it), else `{version, old_user_flag, old_user, new_user_flag, new_user,
/// created}`.
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
local meta = redis.call('HMGET', key, 'v', 'i', 'a', 'u', 's', 'c')
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
if abs and abs < deadline then deadline = abs end
local version = tonumber(meta[1]) + 1
sets[#sets + 1] = 'i'; sets[#sets + 1] = string.format('%d', deadline)
sets[#sets + 1] = 'v'; sets[#sets + 1] = string.format('%d', version)
-- Deletions first: a cleared field that this request sets again must end up set.
batched('HDEL', dels)
batched('HSET', sets)
redis.call('PEXPIREAT', key, deadline)
return {version, old_user and 1 or 0, old_user or '', new_user and 1 or 0, new_user or '', tonumber(meta[6])}
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
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', key, unpack(fields))
redis.call('PEXPIREAT', key, tonumber(ARGV[2]))
return 1
",
    )
});

/// Refreshes the idle deadline of a live session. Returns 1 when refreshed.
///
/// KEYS[1] session hash. ARGV: now_ms, last_seen_ms, idle_deadline_ms.
pub(crate) static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local key = KEYS[1]
local now = tonumber(ARGV[1])
local meta = redis.call('HMGET', key, 'i', 'a', 's')
if not meta[1] then return 0 end
local abs = tonumber(meta[2])
if now >= tonumber(meta[1]) or (abs and now >= abs) then return 0 end
local deadline = tonumber(ARGV[3])
if abs and abs < deadline then deadline = abs end
if tonumber(ARGV[2]) > tonumber(meta[3]) then redis.call('HSET', key, 's', ARGV[2]) end
redis.call('HSET', key, 'i', tostring(deadline))
redis.call('PEXPIREAT', key, deadline)
return 1
",
    )
});

/// Reads and deletes a session in one step (the first half of an id rotation, so
/// the old id stops working at once). Returns the HGETALL pairs, or an empty list.
///
/// KEYS[1] session hash.
pub(crate) static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return all
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
