//! Lua scripts of the operations that must be atomic in one round trip.
//!
//! Time comes from the server (`TIME`), so nodes with skewed clocks agree on windows and blocks.

/// `KEYS[1]`, `ARGV[1]` = value: deletes the key only while it holds exactly that value.
pub(super) const DELETE_IF: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// `KEYS[1]`: reads and deletes (works on servers older than `GETDEL`).
pub(super) const TAKE: &str = r"
local v = redis.call('GET', KEYS[1])
if v then
  redis.call('DEL', KEYS[1])
end
return v
";

/// `KEYS[1]`, `ARGV[1]` = window in ms: increments, and gives a new counter its lifetime.
pub(super) const INCR: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
";

/// Fixed window plus block, the semantics of `MemoryEphemeral::rate_limit`.
///
/// `KEYS[1]`; `ARGV` = limit, window ms, block ms. State is a hash: `w` window end, `c` count,
/// `b` blocked-until (all ms of server time); the key expires with the window or the block.
/// Returns `{1, 0}` when allowed, `{0, retry_ms}` when limited.
pub(super) const RATE_LIMIT: &str = r"
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local block = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'w', 'c', 'b')
local w, c, b = tonumber(s[1]), tonumber(s[2]), tonumber(s[3])
if w then
  if b then
    if b > now then
      return {0, b - now}
    end
  elseif w > now then
    if c < limit then
      redis.call('HINCRBY', KEYS[1], 'c', 1)
      return {1, 0}
    end
    redis.call('HSET', KEYS[1], 'b', now + block)
    redis.call('PEXPIRE', KEYS[1], block)
    return {0, block}
  end
end
-- No state, window over, or block over: a new window starts with this request.
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'w', now + window, 'c', 1)
redis.call('PEXPIRE', KEYS[1], window)
if limit == 0 then
  return {0, window}
end
return {1, 0}
";

/// `KEYS[1]` a sorted set of deadlines; `ARGV` = now (ms), most to take: removes and returns the
/// members due, earliest first (one script, so each member goes to exactly one caller).
pub(super) const TAKE_DUE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
end
return due
";
