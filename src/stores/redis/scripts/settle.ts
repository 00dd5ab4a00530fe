/**
 * Settle a reservation: release what it held, charge the actual usage, remember the id.
 *
 * KEYS[1] = P exp, KEYS[2] = P s:<id>, KEYS[3..] = counters of the request
 * ARGV[1] = member (the reservation record), ARGV[2] = reserved tokens, ARGV[3] = actual tokens,
 * ARGV[4] = settled-marker TTL ms, then per counter i: ARGV[4+i] = counter expireAtMs
 * Returns "settled" (the reservation was live), "expired" (it had been released already; the
 * actual usage is charged anyway) or "duplicate" (settled before: nothing changes).
 */
export const SETTLE_LUA = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 'duplicate' end
local live = redis.call('ZREM', KEYS[1], ARGV[1])
local actual = tonumber(ARGV[3])
local delta = actual
if live == 1 then delta = actual - tonumber(ARGV[2]) end
if delta ~= 0 or actual > 0 then
  for i = 3, #KEYS do
    local key = KEYS[i]
    if delta ~= 0 then redis.call('HINCRBY', key, 't', delta) end
    if actual > 0 then redis.call('HINCRBY', key, 'u', actual) end
    redis.call('PEXPIREAT', key, ARGV[2 + i])
  end
end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[4])
if live == 1 then return 'settled' end
return 'expired'
`;
