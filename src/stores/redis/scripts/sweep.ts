/**
 * Lua shared by every script that reads or reserves: releases reservations whose expiry has passed.
 *
 * Layout (all keys under the store's prefix P):
 *   P exp         zset   member = reservation id, score = expiresAtMs
 *   P rec         hash   field = reservation id, value = "<tokens>\n<scope key>\n<scope key>…"
 *   P s:<id>      string settled marker (idempotent settle; expires after an hour)
 *   P c:<scope>   hash   t = used + reserved tokens, u = used (settled) tokens
 *
 * Why the id is the zset member (and the record lives beside it): a reservation is identified by
 * its id alone, as in every store (a second reserve with the same id is a duplicate even if its
 * tokens or scopes differ); ZMSCORE / ZADD NX on the id answer that in one step. The record holds
 * scope keys relative to `P c:` (shorter to hash, compare and keep); the counter key is rebuilt
 * here as `P c:` .. scope key.
 * Records written by versions before ids were members are members themselves
 * ("<tokens>\n<id>\n<scope key>…"; an id never holds a line break) and hold full counter keys; they
 * are still released (a part that already starts with `P c:` is used as is).
 * Why the sweep touches keys it was not passed: a reservation's counters are only known from its
 * record. This is safe on a single Redis primary (tokenfuse's supported topology), not on Cluster.
 * A counter that already expired is not recreated (it would come back without a TTL).
 * Up to 1 024 reservations are released per call, 128 at a time, so one call's cost stays bounded
 * (a few ms at worst, after a crash left that many behind) while a backlog larger than one chunk is
 * still cleared before the caller's own check: with 64 per call, a Redis store refused what the
 * memory store (which releases every expired reservation first) admitted. `now` is the
 * decimal string of nowMs; numbers reach redis.call() as strings (Redis would format a Lua number
 * with `%.17g` on every call) and a release is `-` followed by the record's own decimal tokens.
 * keep(key, want): gives P exp or P rec a TTL of \`want\` ms (a decimal string) unless it already has
 * one within an hour of that. Why not a plain PEXPIRE on every write: a PEXPIRE would replace a longer
 * TTL that an earlier, longer reservation needs (a shorter one must never cut it), and a PTTL read
 * costs about half as much as a PEXPIRE write, once per script. A key without a TTL (PTTL -1) always
 * gets one. Every caller passes the longest TTL its reservations need plus a day.
 * Why a 0-token record is skipped: Lua turns -0 into the string "-0", which HINCRBY refuses; the
 * error would abort every later script that sweeps, while the record would stay in the zset.
 */
export const SWEEP_LUA = `
-- Whether Redis's HINCRBY takes the string v as the integer it adds to (its own parsing: "0", or an
-- optional minus and digits without a leading zero), and small enough that adding what tokenfuse
-- adds cannot overflow (at most 18 digits).
local function isint(v)
  if v == '0' then return true end
  local d = string.match(v, '^%-?([1-9]%d*)$')
  return d ~= nil and #d <= 18
end
local function release(cp, r, skip)
  local ncp = #cp
  local minus, k = nil, 0
  for part in string.gmatch(r, '[^\\n]+') do
    k = k + 1
    if k == 1 then
      -- Only a record's own positive integer is released; anything else (a value another writer
      -- put in the record) is skipped whole: HINCRBY would refuse it after earlier writes.
      if part ~= '0' and isint(part) and string.sub(part, 1, 1) ~= '-' then minus = '-' .. part else return end
    elseif k > skip then
      local key = part
      if string.sub(part, 1, ncp) ~= cp then key = cp .. part end
      -- A missing counter is not recreated (it would come back without a TTL); a key under the
      -- prefix that is not a counter (another type, a value HINCRBY refuses) is skipped: it must not
      -- fail every later script that sweeps while this record stays in the zset. Checked first, so
      -- the write itself can only fail for the server's own reasons (OOM at a first write), which
      -- fail the call as they should.
      if redis.call('TYPE', key).ok == 'hash' then
        local t = redis.call('HGET', key, 't')
        if not t or isint(t) then redis.call('HINCRBY', key, 't', minus) end
      end
    end
  end
end
local function sweep(exp, rec, now)
  local cp = nil
  for round = 1, 8 do
    local ids = redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', '0', '128')
    if #ids == 0 then return end
    cp = cp or string.sub(exp, 1, -4) .. 'c:'
    local recs = redis.call('HMGET', rec, unpack(ids))
    for i, id in ipairs(ids) do
      local r = recs[i]
      if r then release(cp, r, 1)
      elseif string.find(id, '\\n', 1, true) then release(cp, id, 2) end
    end
    redis.call('ZREM', exp, unpack(ids))
    redis.call('HDEL', rec, unpack(ids))
    if #ids < 128 then return end
  end
end
-- For the settle scripts: reads the fields a settlement adds to, before anything is written.
-- Returns whether none of them exists (the key is new: it gets its TTL when written) and, when one
-- is not an integer HINCRBY takes (isint), the error the caller returns at once with
-- redis.error_reply (returned, not raised: Redis 6.2 cannot report an error table raised inside a
-- function), nothing written. A key of another type fails the HMGET itself (WRONGTYPE).
local function addable(key, ...)
  local vs = redis.call('HMGET', key, ...)
  local none = true
  for _, v in ipairs(vs) do
    if v then
      none = false
      if not isint(v) then return none, 'TFCORRUPT ' .. key .. ' holds a value a settlement cannot add to' end
    end
  end
  return none
end
local function keep(key, want)
  if redis.call('PTTL', key) < tonumber(want) - 3600000 then redis.call('PEXPIRE', key, want) end
end
`;
