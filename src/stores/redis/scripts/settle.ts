import { SWEEP_LUA } from "./sweep.js";

/**
 * Settle a reservation: release what it held, charge the actual usage, add the request's spend,
 * remember the id — one atomic step, so spend counters and budgets can never disagree.
 *
 * KEYS[1] = P exp, KEYS[2] = P rec (see sweep.ts), KEYS[3] = P s:<id>, KEYS[4 .. 3+n] = counters
 * of the request, KEYS[4+n ..] = spend counters (hashes: c = cost nano-USD, i = input tokens,
 * o = output tokens, r = requests)
 * ARGV[1] = one JSON array: [id, record (what reserve stored for these tokens and scopes), reserved
 *   tokens, actual tokens, settled-marker TTL ms ('0': write no marker, an abandoned reservation), cost nano-USD, input tokens, output tokens, n,
 *   then n counter TTLs in ms, then one TTL in ms per spend counter (relative: why in reserve.ts)];
 *   n is a number, the rest are
 *   strings (why JSON and strings: reserve.ts).
 * Returns "settled" (the reservation was live), "expired" (it had been released already; the
 * actual usage is charged anyway) or "duplicate" (settled before: nothing changes).
 * A live reservation releases what its stored record holds. When that record is what this request
 * describes (the usual case), release and charge are one HINCRBY per counter (actual - reserved);
 * otherwise the record's own tokens are released from its own counters first, as the sweep does.
 * (SWEEP_LUA is included for its `release` function; settle does not sweep.)
 * Before any write, every field it may add to is read (`addable`, sweep.ts): a key under the
 * prefix that is not a counter (another type, a value that is not an integer) fails the call there
 * with `WRONGTYPE` or `TFCORRUPT`, nothing written, rather than halfway (a retry would then apply
 * the first half again). A counter none of whose fields exists is new: it gets its PEXPIRE only
 * then. Every script that creates a counter gives it its TTL, so one that exists has it; rewriting
 * the same TTL on every settlement was a third of the settlement's write calls.
 */
export const SETTLE_LUA = `${SWEEP_LUA}
if redis.call('EXISTS', KEYS[3]) == 1 then return 'duplicate' end
local a = cjson.decode(ARGV[1])
local exp, rec, id = KEYS[1], KEYS[2], a[1]
-- Every hash this call may write is read first (addable: sweep.ts): a key under the prefix that
-- is not a counter fails the call here, before anything is written (never halfway, which a retry
-- would apply again); a counter none of whose fields exists is new and gets its TTL when written.
redis.call('HLEN', rec)
local absent = {}
local n0 = a[9]
for i = 4, #KEYS do
  local none, bad
  if i <= 3 + n0 then none, bad = addable(KEYS[i], 't', 'u') else none, bad = addable(KEYS[i], 'c', 'i', 'o', 'r') end
  if bad then return redis.error_reply(bad) end
  absent[i] = none
end
local live = redis.call('ZREM', exp, id)
local au = a[4]
local actual = tonumber(au)
local n = a[9]
local delta = actual
if live == 1 then
  local r = redis.call('HGET', rec, id)
  redis.call('HDEL', rec, id)
  if r == a[2] or not r then delta = actual - tonumber(a[3])
  elseif r then release(string.sub(exp, 1, -4) .. 'c:', r, 1) end
end
if delta ~= 0 or actual > 0 then
  local dt = string.format('%d', delta)
  for i = 1, n do
    local key = KEYS[3 + i]
    if delta ~= 0 then redis.call('HINCRBY', key, 't', dt) end
    if actual > 0 then redis.call('HINCRBY', key, 'u', au) end
    if absent[3 + i] then redis.call('PEXPIRE', key, a[9 + i]) end
  end
end
if actual > 0 then
  local cost, input, output = a[6], a[7], a[8]
  for j = 4 + n, #KEYS do
    local key = KEYS[j]
    if cost ~= '0' then redis.call('HINCRBY', key, 'c', cost) end
    if input ~= '0' then redis.call('HINCRBY', key, 'i', input) end
    if output ~= '0' then redis.call('HINCRBY', key, 'o', output) end
    redis.call('HINCRBY', key, 'r', '1')
    if absent[j] then redis.call('PEXPIRE', key, a[6 + j]) end
  end
end
if a[5] ~= '0' then redis.call('SET', KEYS[3], '1', 'PX', a[5]) end
if live == 1 then return 'settled' end
return 'expired'
`;
