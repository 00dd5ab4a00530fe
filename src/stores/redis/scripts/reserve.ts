import { SWEEP_LUA } from "./sweep.js";

/**
 * Reserve a batch of reservations, each in all of its counters or in none. The script runs
 * atomically, so every reservation in the batch is checked and applied as one indivisible step, in
 * batch order, exactly as if they had been sent one by one; batching only shares the round trip
 * between requests that arrived while the previous batch was on the wire.
 *
 * KEYS[1] = P exp; KEYS[2 .. m+1] = the m distinct counters of the batch (P c:<scope>), each once;
 *   then per reservation, in order: P s:<id> (its settled marker)
 * ARGV[1] = nowMs, ARGV[2] = TTL to keep P exp for (ms), ARGV[3] = m;
 *   ARGV[4 .. m+3] = expireAtMs of each distinct counter (its TTL if this script creates it);
 *   then per reservation: member (the reservation record, see sweep.ts), tokens, expiresAtMs,
 *   n (number of its counters), and per counter: c (1-based index among the distinct counters), limit
 * Returns, per reservation in order: {1, duplicate(0|1), t1 … tn} when reserved (or already
 * reserved/settled: nothing charged again), {0, i (0-based index of the first full counter), t}
 * when refused (t = that counter's used + reserved).
 *
 * Why it is shaped this way (measured with INFO commandstats and --cpu-prof; docs/bench-redis.md):
 * the cost is dominated by the number of redis.call()s and of arguments, not by the arithmetic. So:
 * - a counter shared by many reservations of the batch (the feature's, the global one) is sent
 *   once and referred to by index: fewer bytes to build, write and parse on both sides;
 * - the settled markers of the whole batch are read with ONE MGET and the live reservations with
 *   ONE ZMSCORE (Redis ≥ 6.2), instead of an EXISTS and a ZADD NX per reservation;
 * - each distinct counter is read once (HGET) and written once (HINCRBY by the batch's net sum);
 *   in between, the admission arithmetic runs on Lua numbers, in batch order. Exact: every value
 *   is an integer ≤ 2^53 - 1 (validate.ts), and a sum past 2^53 is still above any limit;
 * - every admitted record goes into the expiry zset with ONE ZADD.
 * A refused reservation writes nothing, so there is nothing to roll back. A duplicate (settled id,
 * live record, or the same record earlier in this batch) charges nothing and reports the totals.
 * Every key written gets its TTL in this script: a counter that did not exist before gets
 * PEXPIREAT right after its HINCRBY, and P exp a PEXPIRE; so no key ever lives without one.
 */
export const RESERVE_LUA = `${SWEEP_LUA}
local exp = KEYS[1]
sweep(exp, tonumber(ARGV[1]))
local m = tonumber(ARGV[3])
local first = m + 2
local r = #KEYS - first + 1
local ra, members = {}, {}
local a = m + 4
for i = 1, r do
  ra[i] = a
  members[i] = ARGV[a]
  a = a + 4 + 2 * tonumber(ARGV[a + 3])
end
local settled = redis.call('MGET', unpack(KEYS, first))
local live = redis.call('ZMSCORE', exp, unpack(members))
local cur, absent, delta = {}, {}, {}
for j = 1, m do
  local t = redis.call('HGET', KEYS[j + 1], 't')
  if t then cur[j] = tonumber(t) else cur[j] = 0 absent[j] = true end
  delta[j] = 0
end
local seen, adds, na, out, o = {}, {}, 0, {}, 0
local idx = {}
for i = 1, r do
  local a, mem = ra[i], members[i]
  local n = tonumber(ARGV[a + 3])
  local l = a + 4
  for j = 1, n do idx[j] = tonumber(ARGV[l + 2 * j - 2]) end
  if settled[i] or live[i] or seen[mem] then
    out[o + 1], out[o + 2] = 1, 1
    o = o + 2
    for j = 1, n do o = o + 1 out[o] = cur[idx[j]] end
  else
    local tokens = tonumber(ARGV[a + 1])
    local refused = false
    for j = 1, n do
      local t = cur[idx[j]] + tokens
      if t > tonumber(ARGV[l + 2 * j - 1]) then
        out[o + 1], out[o + 2], out[o + 3] = 0, j - 1, t - tokens
        o = o + 3
        refused = true
        break
      end
    end
    if not refused then
      seen[mem] = true
      adds[na + 1], adds[na + 2] = ARGV[a + 2], mem
      na = na + 2
      out[o + 1], out[o + 2] = 1, 0
      o = o + 2
      for j = 1, n do
        local c = idx[j]
        local t = cur[c] + tokens
        cur[c] = t
        delta[c] = delta[c] + tokens
        o = o + 1
        out[o] = t
      end
    end
  end
end
for j = 1, m do
  if delta[j] ~= 0 then
    redis.call('HINCRBY', KEYS[j + 1], 't', delta[j])
    if absent[j] then redis.call('PEXPIREAT', KEYS[j + 1], ARGV[3 + j]) end
  end
end
if na > 0 then
  redis.call('ZADD', exp, 'NX', unpack(adds))
  redis.call('PEXPIRE', exp, ARGV[2])
end
return out
`;
