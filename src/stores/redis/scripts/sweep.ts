/**
 * Lua shared by every script that reads or reserves: releases reservations whose expiry has passed.
 *
 * Layout (all keys under the store's prefix P):
 *   P exp         zset   member = "<tokens>\n<id>\n<scope key>\n<scope key>…", score = expiresAtMs
 *   P s:<id>      string settled marker (idempotent settle; expires after an hour)
 *   P c:<scope>   hash   t = used + reserved tokens, u = used (settled) tokens
 *
 * The member is the whole reservation record, so reserving costs one ZADD and settling one ZREM.
 * Why the record holds scope keys relative to `P c:` (not full counter keys): the member is hashed,
 * compared and stored for every live reservation; dropping the repeated prefix cut it from ~150 to
 * ~55 bytes in the benchmark and made the ZADD measurably cheaper. The counter key is rebuilt here
 * as `P c:` .. scope key (P is KEYS[1] without its trailing "exp"). A part that already starts with
 * `P c:` is a record written by an older version (full keys) and is used as is.
 * Why the sweep touches keys it was not passed: a reservation's counters are only known from its
 * record. This is safe on a single Redis primary (tokenfuse's supported topology), not on Cluster.
 * A counter that already expired is not recreated (it would come back without a TTL).
 * At most 64 reservations are released per call, so one call's cost stays bounded.
 * Why a 0-token record is skipped: Lua turns -0 into the string "-0", which HINCRBY refuses; the
 * error would abort every later script that sweeps, while the record would stay in the zset.
 */
export const SWEEP_LUA = `
local function sweep(exp, now)
  local members = redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', 0, 64)
  if #members == 0 then return end
  local cp = string.sub(exp, 1, -4) .. 'c:'
  local ncp = #cp
  for _, m in ipairs(members) do
    local tokens, k = nil, 0
    for part in string.gmatch(m, '[^\\n]+') do
      k = k + 1
      if k == 1 then tokens = tonumber(part)
      elseif k > 2 and tokens ~= 0 then
        local key = part
        if string.sub(part, 1, ncp) ~= cp then key = cp .. part end
        if redis.call('EXISTS', key) == 1 then redis.call('HINCRBY', key, 't', -tokens) end
      end
    end
  end
  redis.call('ZREM', exp, unpack(members))
end
`;
