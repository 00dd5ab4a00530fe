import { SWEEP_LUA } from "./sweep.js";

/**
 * Reserve a batch of reservations, each in all of its counters or in none. The script runs
 * atomically, so every reservation in the batch is checked and applied as one indivisible step, in
 * batch order, exactly as if they had been sent one by one; batching only shares the round trip
 * between requests that arrived while the previous batch was on the wire.
 *
 * KEYS[1] = P exp; then per reservation: P s:<id> (settled marker), its counters (P c:<scope>)
 * ARGV[1] = nowMs, ARGV[2] = TTL to keep P exp for (ms); then per reservation:
 *   member (the reservation record, see sweep.ts), tokens, expiresAtMs, n (number of counters),
 *   and per counter: limit, counter expireAtMs
 * Returns, per reservation in order: {1, duplicate(0|1), t1 … tn} when reserved (or already
 * reserved/settled: nothing charged again), {0, i (0-based index of the first full counter), t}
 * when refused (t = that counter's used + reserved).
 *
 * Why it is shaped this way (measured with INFO commandstats; see docs/bench-redis.md): the cost of
 * a script is dominated by the number of redis.call()s, not by the arithmetic. So:
 * - the settled markers of the whole batch are read with ONE MGET and the live reservations with
 *   ONE ZMSCORE (Redis ≥ 6.2), instead of an EXISTS and a ZADD NX per reservation;
 * - each distinct counter is read once (HGET) and written once (HINCRBY by the batch's net sum);
 *   in between, the admission arithmetic runs on Lua numbers, in batch order. Exact: every value
 *   is an integer ≤ 2^53 (validate.ts), and a sum past 2^53 is still above any limit;
 * - every admitted record goes into the expiry zset with ONE ZADD.
 * A refused reservation writes nothing, so there is nothing to roll back. A duplicate id (settled,
 * live, or earlier in the same batch) charges nothing and reports the current totals.
 * Every key written gets its TTL in this script: a counter that did not exist before gets
 * PEXPIREAT right after its HINCRBY, and P exp a PEXPIRE; so no key ever lives without one.
 */
export const RESERVE_LUA = `${SWEEP_LUA}
local exp = KEYS[1]
sweep(exp, tonumber(ARGV[1]))
local nargv = #ARGV
local rk, ra, rn, markers, members = {}, {}, {}, {}, {}
local r, k, a = 0, 2, 3
while a <= nargv do
  local n = tonumber(ARGV[a + 3])
  r = r + 1
  rk[r], ra[r], rn[r], markers[r], members[r] = k, a, n, KEYS[k], ARGV[a]
  k = k + 1 + n
  a = a + 4 + 2 * n
end
local settled = redis.call('MGET', unpack(markers))
local live = redis.call('ZMSCORE', exp, unpack(members))
local cur, absent, delta, exat, order, nc = {}, {}, {}, {}, {}, 0
local seen, adds, na = {}, {}, 0
local out, o = {}, 0
for i = 1, r do
  local c, l, n, m = rk[i] + 1, ra[i] + 4, rn[i], members[i]
  for j = c, c + n - 1 do
    local key = KEYS[j]
    if cur[key] == nil then
      local t = redis.call('HGET', key, 't')
      if t then cur[key] = tonumber(t) else cur[key] = 0 absent[key] = true end
      delta[key] = 0
      nc = nc + 1
      order[nc] = key
    end
  end
  if settled[i] or live[i] or seen[m] then
    out[o + 1], out[o + 2] = 1, 1
    o = o + 2
    for j = c, c + n - 1 do o = o + 1 out[o] = cur[KEYS[j]] end
  else
    local tokens = tonumber(ARGV[ra[i] + 1])
    local refused = false
    for j = 0, n - 1 do
      local t = cur[KEYS[c + j]] + tokens
      if t > tonumber(ARGV[l + 2 * j]) then
        out[o + 1], out[o + 2], out[o + 3] = 0, j, t - tokens
        o = o + 3
        refused = true
        break
      end
    end
    if not refused then
      seen[m] = true
      adds[na + 1], adds[na + 2] = ARGV[ra[i] + 2], m
      na = na + 2
      out[o + 1], out[o + 2] = 1, 0
      o = o + 2
      for j = 0, n - 1 do
        local key = KEYS[c + j]
        local t = cur[key] + tokens
        cur[key] = t
        delta[key] = delta[key] + tokens
        if exat[key] == nil then exat[key] = ARGV[l + 2 * j + 1] end
        o = o + 1
        out[o] = t
      end
    end
  end
end
for i = 1, nc do
  local key = order[i]
  local d = delta[key]
  if d ~= 0 then
    redis.call('HINCRBY', key, 't', d)
    if absent[key] then redis.call('PEXPIREAT', key, exat[key]) end
  end
end
if na > 0 then
  redis.call('ZADD', exp, 'NX', unpack(adds))
  redis.call('PEXPIRE', exp, ARGV[2])
end
return out
`;
