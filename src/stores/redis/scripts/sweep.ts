/**
 * Lua shared by every script that reads or reserves: releases reservations whose expiry has passed.
 *
 * Layout (all keys under the store's prefix P):
 *   P exp         zset   reservation id → expiresAtMs
 *   P r:<id>      hash   t = tokens reserved in each scope, k = the counter keys joined by "\n"
 *   P c:<scope>   hash   u = used (settled) tokens, r = reserved tokens
 *
 * Why the sweep touches keys it was not passed: a reservation's counters are only known from its
 * record. This is safe on a single Redis primary (tokenfuse's supported topology), not on Cluster.
 * A counter that already expired is not recreated (it would come back without a TTL).
 * At most 64 reservations are released per call, so one call's cost stays bounded.
 */
export const SWEEP_LUA = `
local function sweep(exp, now, rprefix)
  local ids = redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', 0, 64)
  for _, id in ipairs(ids) do
    local rk = rprefix .. id
    local rec = redis.call('HMGET', rk, 't', 'k')
    if rec[1] then
      local t = tonumber(rec[1])
      for key in string.gmatch(rec[2], '[^\\n]+') do
        if redis.call('EXISTS', key) == 1 then redis.call('HINCRBY', key, 'r', -t) end
      end
      redis.call('DEL', rk)
    end
    redis.call('ZREM', exp, id)
  end
end
`;
