import { SWEEP_LUA } from "./sweep.js";

/**
 * Reserve `tokens` in every counter, or in none (one atomic script).
 *
 * KEYS[1] = P exp, KEYS[2] = P s:<id> (settled marker), KEYS[3..] = counters
 * ARGV[1] = member (the reservation record, see sweep.ts), ARGV[2] = tokens, ARGV[3] = nowMs,
 * ARGV[4] = expiresAtMs, ARGV[5] = TTL to keep P exp for (ms),
 * then per counter i (1-based): ARGV[4+2i] = limit, ARGV[5+2i] = counter expireAtMs
 * Returns {1, duplicate(0|1), t1, t2, …} when reserved (or already reserved/settled: nothing
 * charged again), {0, i (0-based index of the first full counter), t (its used + reserved)} when
 * refused. The happy path is one HINCRBY per counter: an overflow is rolled back.
 * Every key written gets its TTL in this script, so no key ever lives without one.
 */
export const RESERVE_LUA = `${SWEEP_LUA}
local exp = KEYS[1]
local tokens, now = tonumber(ARGV[2]), tonumber(ARGV[3])
sweep(exp, now)
local n = #KEYS - 2
local out = {1, 0}
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('ZADD', exp, 'NX', ARGV[4], ARGV[1]) == 0 then
  out[2] = 1
  for i = 1, n do out[i + 2] = tonumber(redis.call('HGET', KEYS[2 + i], 't') or 0) end
  return out
end
for i = 1, n do
  local key = KEYS[2 + i]
  local t = redis.call('HINCRBY', key, 't', tokens)
  if t > tonumber(ARGV[4 + 2 * i]) then
    if t == tokens then redis.call('DEL', key) else redis.call('HINCRBY', key, 't', -tokens) end
    for j = 1, i - 1 do redis.call('HINCRBY', KEYS[2 + j], 't', -tokens) end
    redis.call('ZREM', exp, ARGV[1])
    return {0, i - 1, t - tokens}
  end
  if t == tokens then redis.call('PEXPIREAT', key, ARGV[5 + 2 * i]) end
  out[i + 2] = t
end
redis.call('PEXPIRE', exp, ARGV[5])
return out
`;
