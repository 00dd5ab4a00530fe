/**
 * Lua shared by every script that reads or reserves: releases reservations whose expiry has passed.
 *
 * Layout (all keys under the store's prefix P):
 *   P exp         zset   member = "<tokens>\n<id>\n<counter key>\n<counter key>…", score = expiresAtMs
 *   P s:<id>      string settled marker (idempotent settle; expires after an hour)
 *   P c:<scope>   hash   t = used + reserved tokens, u = used (settled) tokens
 *
 * The member is the whole reservation record, so reserving costs one ZADD and settling one ZREM.
 * Why the sweep touches keys it was not passed: a reservation's counters are only known from its
 * record. This is safe on a single Redis primary (tokenfuse's supported topology), not on Cluster.
 * A counter that already expired is not recreated (it would come back without a TTL).
 * At most 64 reservations are released per call, so one call's cost stays bounded.
 */
export const SWEEP_LUA = `
local function sweep(exp, now)
  local members = redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', 0, 64)
  if #members == 0 then return end
  for _, m in ipairs(members) do
    local tokens, k = nil, 0
    for part in string.gmatch(m, '[^\\n]+') do
      k = k + 1
      if k == 1 then tokens = tonumber(part)
      elseif k > 2 and redis.call('EXISTS', part) == 1 then redis.call('HINCRBY', part, 't', -tokens) end
    end
  end
  redis.call('ZREM', exp, unpack(members))
end
`;
