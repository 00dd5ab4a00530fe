import { SWEEP_LUA } from "./sweep.js";

/**
 * Reserve ONE reservation in all of its counters or in none: the lone-request path.
 *
 * Why a second script: the batch script (reserve.ts) pays a fixed cost to share work between the
 * reservations of a batch (one MGET, one ZMSCORE, one HGET then one HINCRBY per counter). With a
 * single reservation there is nothing to share, and that fixed cost made a lone reserve slower
 * (measured at 1 in flight: docs/bench-redis.md); this script does the minimum instead: EXISTS,
 * ZADD NX, then one HINCRBY per counter, rolled back on overflow.
 *
 * KEYS[1] = P exp, KEYS[2] = P s:<id> (settled marker), KEYS[3 .. n+2] = its counters (P c:<scope>)
 * ARGV[1] = nowMs, ARGV[2] = TTL to keep P exp for (ms), ARGV[3] = member (the reservation record,
 *   see sweep.ts), ARGV[4] = tokens, ARGV[5] = expiresAtMs, then per counter i (0-based):
 *   ARGV[6 + 2i] = limit, ARGV[7 + 2i] = counter expireAtMs
 * Returns {1, duplicate(0|1), t1 … tn} when reserved (or already reserved/settled: nothing charged
 * again), {0, i (0-based index of the first full counter), t} when refused (t = that counter's
 * used + reserved). Every key written gets its TTL in this script, so no key ever lives without one.
 */
export const RESERVE_ONE_LUA = `${SWEEP_LUA}
local exp, member = KEYS[1], ARGV[3]
sweep(exp, tonumber(ARGV[1]))
local n = #KEYS - 2
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('ZADD', exp, 'NX', ARGV[5], member) == 0 then
  local out = {1, 1}
  for i = 1, n do out[i + 2] = tonumber(redis.call('HGET', KEYS[i + 2], 't') or 0) end
  return out
end
local tokens = tonumber(ARGV[4])
local out = {1, 0}
for i = 1, n do
  local key = KEYS[i + 2]
  local t = redis.call('HINCRBY', key, 't', tokens)
  if t > tonumber(ARGV[4 + 2 * i]) then
    if t == tokens then redis.call('DEL', key) elseif tokens ~= 0 then redis.call('HINCRBY', key, 't', -tokens) end
    if tokens ~= 0 then
      for j = 1, i - 1 do redis.call('HINCRBY', KEYS[j + 2], 't', -tokens) end
    end
    redis.call('ZREM', exp, member)
    return {0, i - 1, t - tokens}
  end
  if t == tokens then redis.call('PEXPIREAT', key, ARGV[5 + 2 * i]) end
  out[i + 2] = t
end
redis.call('PEXPIRE', exp, ARGV[2])
return out
`;
