/**
 * Settle a reservation: release what it held, charge the actual usage, remember the id.
 *
 * KEYS[1] = P exp, KEYS[2] = P r:<id>, KEYS[3] = P s:<id>, KEYS[4..] = counters of the request
 * ARGV[1] = id, ARGV[2] = actual tokens, ARGV[3] = settled-marker TTL ms,
 * then per counter i: ARGV[3+i] = counter expireAtMs
 * Returns "settled" (reservation found), "expired" (it had been released; the actual usage is
 * charged anyway) or "duplicate" (settled before: nothing changes).
 */
export const SETTLE_LUA = `
local exp, rk, sk = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', sk) == 1 then return 'duplicate' end
local actual = tonumber(ARGV[2])
local status = 'expired'
local rec = redis.call('HMGET', rk, 't', 'k')
if rec[1] then
  local t = tonumber(rec[1])
  for key in string.gmatch(rec[2], '[^\\n]+') do
    if redis.call('EXISTS', key) == 1 then redis.call('HINCRBY', key, 'r', -t) end
  end
  redis.call('DEL', rk)
  redis.call('ZREM', exp, ARGV[1])
  status = 'settled'
end
if actual > 0 then
  for i = 4, #KEYS do
    redis.call('HINCRBY', KEYS[i], 'u', actual)
    redis.call('PEXPIREAT', KEYS[i], ARGV[i])
  end
end
redis.call('SET', sk, '1', 'PX', ARGV[3])
return status
`;
