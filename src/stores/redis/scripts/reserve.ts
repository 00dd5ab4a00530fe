import { SWEEP_LUA } from "./sweep.js";

/**
 * Reserve `tokens` in every counter, or in none (one atomic script).
 *
 * KEYS[1] = P exp, KEYS[2] = P r:<id>, KEYS[3] = P s:<id> (settled marker), KEYS[4..] = counters
 * ARGV[1] = record prefix (P r:), ARGV[2] = tokens, ARGV[3] = nowMs, ARGV[4] = expiresAtMs,
 * ARGV[5] = record keep-until ms (GC of the record, well after expiresAtMs),
 * then per counter i: ARGV[4+2i] = limit, ARGV[5+2i] = counter expireAtMs
 * Returns {1, duplicate(0|1), u1, r1, u2, r2, …} when reserved (or already reserved/settled),
 *         {0, i (0-based index of the first full counter), u, r} when refused.
 * Every key written gets its TTL in this script (PEXPIREAT), so no key ever lives without one.
 */
export const RESERVE_LUA = `${SWEEP_LUA}
local exp, rk, sk = KEYS[1], KEYS[2], KEYS[3]
local tokens, now = tonumber(ARGV[2]), tonumber(ARGV[3])
local expiresAt, keepUntil = ARGV[4], ARGV[5]
sweep(exp, now, ARGV[1])
local n = #KEYS - 3
local out = {1, 0}
if redis.call('EXISTS', rk) == 1 or redis.call('EXISTS', sk) == 1 then
  out[2] = 1
  for i = 1, n do
    local s = redis.call('HMGET', KEYS[3 + i], 'u', 'r')
    out[#out + 1] = tonumber(s[1] or 0)
    out[#out + 1] = tonumber(s[2] or 0)
  end
  return out
end
local used, reserved = {}, {}
for i = 1, n do
  local s = redis.call('HMGET', KEYS[3 + i], 'u', 'r')
  local u, r = tonumber(s[1] or 0), tonumber(s[2] or 0)
  if u + r + tokens > tonumber(ARGV[4 + 2 * i]) then return {0, i - 1, u, r} end
  used[i], reserved[i] = u, r
end
local keys = {}
for i = 1, n do
  local key = KEYS[3 + i]
  redis.call('HINCRBY', key, 'r', tokens)
  redis.call('PEXPIREAT', key, ARGV[5 + 2 * i])
  keys[i] = key
  out[#out + 1] = used[i]
  out[#out + 1] = reserved[i] + tokens
end
redis.call('HSET', rk, 't', tokens, 'k', table.concat(keys, '\\n'))
redis.call('PEXPIREAT', rk, keepUntil)
redis.call('ZADD', exp, expiresAt, string.sub(rk, #ARGV[1] + 1))
if redis.call('PTTL', exp) < tonumber(keepUntil) - now then redis.call('PEXPIREAT', exp, keepUntil) end
return out
`;
