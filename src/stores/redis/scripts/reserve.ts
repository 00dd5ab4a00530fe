import { SWEEP_LUA } from "./sweep.js";

/**
 * Reserve a batch of reservations, each in all of its counters or in none. The script runs
 * atomically, so every reservation in the batch is checked and applied as one indivisible step, in
 * batch order, exactly as if they had been sent one by one; batching only shares the round trip
 * between requests that arrived while earlier batches were on the wire.
 *
 * KEYS[1] = P exp, KEYS[2] = P rec (see sweep.ts); KEYS[3 .. m+2] = the m distinct counters of
 *   the batch (P c:<scope>), each once; then per reservation, in order: P s:<id> (settled marker)
 * ARGV[1] = one JSON array (see "Why JSON" below):
 *   [nowMs, TTL to keep P exp and P rec for (ms), m, TTL in ms of each distinct counter (m of
 *   them: set if this script creates it), then per reservation: id, record (see sweep.ts),
 *   tokens, expiresAtMs, n (number of its counters), and per counter: c (1-based index among the
 *   distinct counters), limit]
 *   Every value that is only handed on to a command (times, TTLs) is a JSON *string*; the ones the
 *   script computes with (m, tokens, n, c, limit) are JSON numbers.
 * Returns one string of comma-separated integers: first, for each of the m distinct counters, its
 * used + reserved total (`t`) before this batch; then per reservation, in order: `1` when reserved,
 * `2` when a duplicate (already reserved or settled: nothing charged again), `0,i` when refused (i =
 * 0-based index among its own counters of the first one that is full). The caller rebuilds each
 * reservation's totals from the counters' starting totals by replaying the batch in order, adding
 * the tokens of every reserved one (exactly the arithmetic this script does; redis-store.ts).
 *
 * Why it is shaped this way (measured with INFO commandstats, /proc CPU time of both processes and
 * --cpu-prof; docs/bench-redis.md): per reservation, the cost was dominated by per-argument and
 * per-call overhead on both sides of the connection, not by the arithmetic. So:
 * - Why JSON: one argument instead of ~12 per reservation. ioredis builds, measures and writes every
 *   argument separately, Redis parses each into an object and Lua interns each as a string; cjson
 *   (built into Redis) decodes the whole batch in C, numbers included. JSON numbers are exact for
 *   every value here (integers ≤ 2^53 - 1, validate.ts).
 * - Why a string reply: ioredis decodes an array reply element by element in JavaScript; one
 *   string split on commas costs less than half as much.
 * - Why starting totals and not each reservation's totals: formatting a number in Lua
 *   (string.format) costs about half a microsecond, three per reservation, on the one thread that
 *   limits throughput; the starting totals are the counters' own strings from HGET (exact, nothing
 *   to format) and the caller, which has CPU to spare, replays the additions.
 * - Why strings for pass-through values: Redis formats a Lua number argument of redis.call() with
 *   `%.17g`, about a microsecond each; a string goes through as is.
 * - a counter shared by many reservations of the batch (the feature's, the global one) is sent
 *   once and referred to by index;
 * - the settled markers of the whole batch are read with ONE MGET and the live reservations with
 *   ONE ZMSCORE on their ids (Redis ≥ 6.2), instead of an EXISTS and a ZADD NX per reservation;
 * - each distinct counter is read once (HGET) and written once (HINCRBY by the batch's net sum);
 *   in between, the admission arithmetic runs on Lua numbers, in batch order. Exact: every value
 *   is an integer ≤ 2^53 - 1 (validate.ts), and a sum past 2^53 is still above any limit;
 * - every admitted id goes into the expiry zset with ONE ZADD, and its record with ONE HSET.
 * A refused reservation writes nothing, so there is nothing to roll back. A duplicate (settled id,
 * live id, or the same id earlier in this batch) charges nothing and reports the totals of its
 * counters.
 * Every key written gets its TTL in this script: a counter that did not exist before gets a
 * PEXPIRE right after its HINCRBY, P exp and P rec one through keep() (sweep.ts); so no key ever
 * lives without one. Why counter TTLs are relative (PEXPIRE, not PEXPIREAT at the window's end):
 * Redis applies them by its own clock; an instant computed on a process whose clock lags Redis's by
 * a minute or two would already be past, and Redis would delete the counter as it is written,
 * which disabled every per-minute limit for that process. A relative TTL keeps the counter for its
 * whole retention whatever the skew. (The store also logs a warning when the skew is large.)
 */
export const RESERVE_LUA = `${SWEEP_LUA}
local exp, rec = KEYS[1], KEYS[2]
local a = cjson.decode(ARGV[1])
sweep(exp, rec, a[1])
local m = a[3]
local first = m + 3
local r = #KEYS - first + 1
local ra, ids = {}, {}
local p = m + 4
for i = 1, r do
  ra[i] = p
  ids[i] = a[p]
  p = p + 5 + 2 * a[p + 4]
end
local settled = redis.call('MGET', unpack(KEYS, first))
local live = redis.call('ZMSCORE', exp, unpack(ids))
local cur, absent, delta, out = {}, {}, {}, {}
for j = 1, m do
  local t = redis.call('HGET', KEYS[j + 2], 't')
  -- A value HINCRBY would refuse (another writer's, under the prefix) fails the call here, before
  -- this batch writes anything (isint: sweep.ts).
  if t and not isint(t) then return redis.error_reply('TFCORRUPT ' .. KEYS[j + 2] .. ' holds a value a reservation cannot add to') end
  if t then cur[j] = tonumber(t) out[j] = t else cur[j] = 0 absent[j] = true out[j] = '0' end
  delta[j] = 0
end
local seen, adds, recs, na, o = {}, {}, {}, 0, m
for i = 1, r do
  local p, id = ra[i], ids[i]
  if settled[i] or live[i] or seen[id] then
    o = o + 1
    out[o] = '2'
  else
    local n = a[p + 4]
    local l = p + 5
    local tokens = a[p + 2]
    local refused = false
    for j = 1, n do
      if cur[a[l + 2 * j - 2]] + tokens > a[l + 2 * j - 1] then
        out[o + 1], out[o + 2] = '0', j - 1
        o = o + 2
        refused = true
        break
      end
    end
    if not refused then
      seen[id] = true
      adds[na + 1], adds[na + 2] = a[p + 3], id
      recs[na + 1], recs[na + 2] = id, a[p + 1]
      na = na + 2
      o = o + 1
      out[o] = '1'
      for j = 1, n do
        local c = a[l + 2 * j - 2]
        cur[c] = cur[c] + tokens
        delta[c] = delta[c] + tokens
      end
    end
  end
end
for j = 1, m do
  if delta[j] ~= 0 then
    redis.call('HINCRBY', KEYS[j + 2], 't', string.format('%d', delta[j]))
    if absent[j] then redis.call('PEXPIRE', KEYS[j + 2], a[3 + j]) end
  end
end
if na > 0 then
  redis.call('ZADD', exp, 'NX', unpack(adds))
  redis.call('HSET', rec, unpack(recs))
  keep(exp, a[2])
  keep(rec, a[2])
end
return table.concat(out, ',')
`;
