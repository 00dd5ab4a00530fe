import { SWEEP_LUA } from "./sweep.js";

/**
 * Settle a batch of settlements: each exactly as scripts/settle.ts would, in batch order, in one
 * atomic script call. Batching only shares the round trip and the per-call cost between settlements
 * that waited while earlier batches were on the wire (redis-store.ts); a lone settlement uses
 * settle.ts.
 *
 * KEYS[1] = P exp, KEYS[2] = P rec (see sweep.ts); KEYS[3 .. m+2] = the m distinct budget counters
 *   of the batch (P c:<scope>); KEYS[m+3 .. m+k+2] = its k distinct spend counters; then per
 *   settlement, in order: P s:<id> (settled marker)
 * ARGV[1] = one JSON array: [m, k, TTL in ms of each budget counter (m), TTL in ms of each spend
 *   counter (k), then per settlement: id, record (what reserve stored for these tokens and scopes),
 *   reserved tokens, actual tokens, settled-marker TTL ms ('0': write no marker, an abandoned
 *   reservation), cost nano-USD, input tokens, output tokens, n, n budget-counter indexes
 *   (1-based among the m), s, s spend-counter indexes (1-based among the k)]. TTLs are strings
 *   (handed on to PEXPIRE / SET as they are); the values the script adds up are JSON numbers, and
 *   the caller cuts batches so that every sum stays ≤ 2^53 - 1 (exact on Lua doubles).
 * Returns one string: per settlement, in order, `s` (the reservation was live: settled), `e` (it
 *   had been released already; the actual usage is charged anyway) or `d` (settled before, also
 *   earlier in this batch: nothing changes), comma-separated.
 *
 * Where the cost goes (why batch): a lone settle is one script call of ~8 nested commands, two of
 * them per counter; here the markers are read with ONE MGET, the live reservations with ONE ZMSCORE
 * and their records with ONE HMGET, removed with one ZREM and one HDEL, and each distinct counter
 * (the feature's and the global ones are shared by most of a batch) is written once with the
 * batch's net sum, and given its TTL when that write created it (as settle.ts does). Sums commute, so applying them at the end gives every
 * counter the value the settlements one by one would have. One exception is kept exact: a
 * settlement whose stored record differs from what it describes (its id was reserved with other
 * tokens or scopes) releases the record's own counters, which that release reads (EXISTS), so the
 * sums gathered so far are written first. What each settlement writes is what settle.ts writes:
 * the settled marker with its TTL (none for an abandoned reservation) and no key without a TTL.
 * Every counter is read (`addable`, sweep.ts) before the first write, so a key under the prefix that
 * is not a counter fails the call before it writes anything; the caller then sends each settlement
 * of the batch alone (redis-store.ts), and only the one that names that key fails. A misdescribed
 * record's release skips such a key (sweep.ts).
 */
export const SETTLE_MANY_LUA = `${SWEEP_LUA}
local exp, rec = KEYS[1], KEYS[2]
local a = cjson.decode(ARGV[1])
local m, k = a[1], a[2]
local first = m + k + 3
local r = #KEYS - first + 1
local sa, ids = {}, {}
local p = m + k + 3
for i = 1, r do
  sa[i] = p
  ids[i] = a[p]
  local n = a[p + 8]
  p = p + 10 + n + a[p + 9 + n]
end
local marked = redis.call('MGET', unpack(KEYS, first))
local live = redis.call('ZMSCORE', exp, unpack(ids))
local recs = redis.call('HMGET', rec, unpack(ids))
-- Every counter the batch may write is read before anything is written (addable: sweep.ts): a key
-- that is not a counter fails the whole call here, with nothing written (the caller then sends each
-- settlement alone, so only the one that names that key fails). A counter with none of the fields
-- is new: it gets its TTL when written.
local absent = {}
for j = 3, first - 1 do
  local none, bad
  if j <= m + 2 then none, bad = addable(KEYS[j], 't', 'u') else none, bad = addable(KEYS[j], 'c', 'i', 'o', 'r') end
  if bad then return redis.error_reply(bad) end
  absent[j] = none
end
local fmt = string.format
local dt, du, touched = {}, {}, {}
for j = 1, m do dt[j] = 0 du[j] = 0 end
local sc, si, so, sr = {}, {}, {}, {}
for j = 1, k do sc[j] = 0 si[j] = 0 so[j] = 0 sr[j] = 0 end
local function flush()
  for j = 1, m do
    if touched[j] then
      local key = KEYS[j + 2]
      if dt[j] ~= 0 then redis.call('HINCRBY', key, 't', fmt('%d', dt[j])) end
      if du[j] ~= 0 then redis.call('HINCRBY', key, 'u', fmt('%d', du[j])) end
      -- A key this call creates gets its TTL (as settle.ts); with no net change nothing is written.
      if absent[j + 2] and (dt[j] ~= 0 or du[j] ~= 0) then
        redis.call('PEXPIRE', key, a[2 + j])
        absent[j + 2] = false
      end
      dt[j] = 0 du[j] = 0 touched[j] = false
    end
  end
end
local seen, gone, marks, out = {}, {}, {}, {}
local cp = nil
for i = 1, r do
  local q, id = sa[i], ids[i]
  if marked[i] or seen[id] == 'm' then
    out[i] = 'd'
  else
    local actual = a[q + 3]
    local delta = actual
    if live[i] and not seen[id] then
      gone[#gone + 1] = id
      local rc = recs[i]
      if rc == a[q + 1] or not rc then
        delta = actual - a[q + 2]
      else
        flush()
        cp = cp or string.sub(exp, 1, -4) .. 'c:'
        release(cp, rc, 1)
      end
      out[i] = 's'
    else
      out[i] = 'e'
    end
    local n = a[q + 8]
    if delta ~= 0 or actual > 0 then
      for c = 1, n do
        local j = a[q + 8 + c]
        dt[j] = dt[j] + delta
        du[j] = du[j] + actual
        touched[j] = true
      end
    end
    if actual > 0 then
      local cost, input, output = a[q + 5], a[q + 6], a[q + 7]
      local o = q + 9 + n
      for c = 1, a[o] do
        local j = a[o + c]
        sc[j] = sc[j] + cost
        si[j] = si[j] + input
        so[j] = so[j] + output
        sr[j] = sr[j] + 1
      end
    end
    if a[q + 4] ~= '0' then
      marks[#marks + 1] = i
      seen[id] = 'm'
    else
      seen[id] = 'r'
    end
  end
end
flush()
for j = 1, k do
  if sr[j] > 0 then
    local key = KEYS[m + 2 + j]
    if sc[j] ~= 0 then redis.call('HINCRBY', key, 'c', fmt('%d', sc[j])) end
    if si[j] ~= 0 then redis.call('HINCRBY', key, 'i', fmt('%d', si[j])) end
    if so[j] ~= 0 then redis.call('HINCRBY', key, 'o', fmt('%d', so[j])) end
    redis.call('HINCRBY', key, 'r', fmt('%d', sr[j]))
    if absent[m + 2 + j] then redis.call('PEXPIRE', key, a[2 + m + j]) end
  end
end
if #gone > 0 then
  redis.call('ZREM', exp, unpack(gone))
  redis.call('HDEL', rec, unpack(gone))
end
for _, i in ipairs(marks) do redis.call('SET', KEYS[first + i - 1], '1', 'PX', a[sa[i] + 4]) end
return table.concat(out, ',')
`;
