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
 * KEYS[1] = P exp, KEYS[2] = P rec (see sweep.ts), KEYS[3] = P s:<id> (settled marker),
 *   KEYS[4 .. n+3] = its counters (P c:<scope>)
 * ARGV[1] = one JSON array: [nowMs, TTL to keep P exp and P rec for (ms), id, record (see
 *   sweep.ts), tokens, expiresAtMs, then per counter: limit, counter TTL in ms]. All are JSON
 *   strings of decimal integers (or the id and record) except the limits (numbers); why: reserve.ts.
 * Returns `1,duplicate(0|1),t1,…,tn` when reserved (or already reserved/settled: nothing charged
 * again), `0,i,t` when refused (i = 0-based index of the first full counter, t = that counter's
 * used + reserved, read back as the counter's own string after the roll-back: exact even when
 * t - tokens, computed on Lua doubles, would be rounded near 2^53), as one comma-separated string
 * (why: reserve.ts). Every key written gets its TTL
 * in this script, so no key ever lives without one.
 */
export const RESERVE_ONE_LUA = `${SWEEP_LUA}
local a = cjson.decode(ARGV[1])
local exp, rec, id = KEYS[1], KEYS[2], a[3]
sweep(exp, rec, a[1])
local n = #KEYS - 3
local fmt = string.format
-- A counter value HINCRBY would refuse (another writer's, under the prefix) fails the call here,
-- before anything of this reservation is written (isint: sweep.ts); a key of another type fails
-- the HGET itself. Else a refusal halfway left earlier counters charged and the id recorded.
for i = 4, #KEYS do
  local t = redis.call('HGET', KEYS[i], 't')
  if t and not isint(t) then return redis.error_reply('TFCORRUPT ' .. KEYS[i] .. ' holds a value a reservation cannot add to') end
end
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('ZADD', exp, 'NX', a[6], id) == 0 then
  local out = {'1', '1'}
  for i = 1, n do out[i + 2] = redis.call('HGET', KEYS[i + 3], 't') or '0' end
  return table.concat(out, ',')
end
local tk = a[5]
local tokens = tonumber(tk)
local out = {'1', '0'}
for i = 1, n do
  local key = KEYS[i + 3]
  local t = redis.call('HINCRBY', key, 't', tk)
  if t > a[5 + 2 * i] then
    local cur = '0'
    if t == tokens then
      redis.call('DEL', key)
    elseif tokens ~= 0 then
      redis.call('HINCRBY', key, 't', '-' .. tk)
      cur = redis.call('HGET', key, 't')
    else
      cur = fmt('%d', t)
    end
    if tokens ~= 0 then
      for j = 1, i - 1 do redis.call('HINCRBY', KEYS[j + 3], 't', '-' .. tk) end
    end
    redis.call('ZREM', exp, id)
    return fmt('0,%d,', i - 1) .. cur
  end
  if t == tokens then redis.call('PEXPIRE', key, a[6 + 2 * i]) end
  out[i + 2] = fmt('%d', t)
end
redis.call('HSET', rec, id, a[4])
keep(exp, a[2])
keep(rec, a[2])
return table.concat(out, ',')
`;
