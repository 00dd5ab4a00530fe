import { SWEEP_LUA } from "./sweep.js";

/**
 * Reserve a batch of reservations, each in all of its counters or in none. The script runs
 * atomically, so every reservation in the batch is checked and applied as one indivisible step;
 * batching only shares the round trip between requests that arrived while the previous batch was
 * on the wire.
 *
 * KEYS[1] = P exp; then per reservation: P s:<id> (settled marker), its counters
 * ARGV[1] = nowMs, ARGV[2] = TTL to keep P exp for (ms); then per reservation:
 *   member (the reservation record, see sweep.ts), tokens, expiresAtMs, n (number of counters),
 *   and per counter: limit, counter expireAtMs
 * Returns, per reservation in order: {1, duplicate(0|1), t1 … tn} when reserved (or already
 * reserved/settled: nothing charged again), {0, i (0-based index of the first full counter), t}
 * when refused (t = that counter's used + reserved).
 * The happy path is one HINCRBY per counter: an overflow is rolled back. Every key written gets
 * its TTL in this script, so no key ever lives without one.
 */
export const RESERVE_LUA = `${SWEEP_LUA}
local exp = KEYS[1]
sweep(exp, tonumber(ARGV[1]))
local out = {}
local k, a = 2, 3
local any = false
while a <= #ARGV do
  local sk, member, tokens, expiresAt, n = KEYS[k], ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], tonumber(ARGV[a + 3])
  local c, l = k + 1, a + 4
  if redis.call('EXISTS', sk) == 1 or redis.call('ZADD', exp, 'NX', expiresAt, member) == 0 then
    out[#out + 1] = 1
    out[#out + 1] = 1
    for i = 0, n - 1 do out[#out + 1] = tonumber(redis.call('HGET', KEYS[c + i], 't') or 0) end
  else
    local totals, refused = {}, false
    for i = 0, n - 1 do
      local key = KEYS[c + i]
      local t = redis.call('HINCRBY', key, 't', tokens)
      if t > tonumber(ARGV[l + 2 * i]) then
        if t == tokens then redis.call('DEL', key) else redis.call('HINCRBY', key, 't', -tokens) end
        for j = 0, i - 1 do redis.call('HINCRBY', KEYS[c + j], 't', -tokens) end
        redis.call('ZREM', exp, member)
        out[#out + 1] = 0
        out[#out + 1] = i
        out[#out + 1] = t - tokens
        refused = true
        break
      end
      if t == tokens then redis.call('PEXPIREAT', key, ARGV[l + 2 * i + 1]) end
      totals[i + 1] = t
    end
    if not refused then
      any = true
      out[#out + 1] = 1
      out[#out + 1] = 0
      for i = 1, n do out[#out + 1] = totals[i] end
    end
  end
  k = c + n
  a = l + 2 * n
end
if any then redis.call('PEXPIRE', exp, ARGV[2]) end
return out
`;
