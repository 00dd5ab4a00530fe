/**
 * Settle a reservation: release what it held, charge the actual usage, add the request's spend,
 * remember the id — one atomic step, so spend counters and budgets can never disagree.
 *
 * KEYS[1] = P exp, KEYS[2] = P s:<id>, KEYS[3 .. 2+n] = counters of the request,
 * KEYS[3+n ..] = spend counters (hashes: c = cost nano-USD, i = input tokens, o = output tokens,
 * r = requests)
 * ARGV[1] = member (the reservation record), ARGV[2] = reserved tokens, ARGV[3] = actual tokens,
 * ARGV[4] = settled-marker TTL ms, ARGV[5] = n, ARGV[6] = cost nano-USD, ARGV[7] = input tokens,
 * ARGV[8] = output tokens, then n counter expireAtMs, then one expireAtMs per spend counter
 * Returns "settled" (the reservation was live), "expired" (it had been released already; the
 * actual usage is charged anyway) or "duplicate" (settled before: nothing changes).
 */
export const SETTLE_LUA = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 'duplicate' end
local live = redis.call('ZREM', KEYS[1], ARGV[1])
local actual = tonumber(ARGV[3])
local n = tonumber(ARGV[5])
local delta = actual
if live == 1 then delta = actual - tonumber(ARGV[2]) end
if delta ~= 0 or actual > 0 then
  for i = 1, n do
    local key = KEYS[2 + i]
    if delta ~= 0 then redis.call('HINCRBY', key, 't', delta) end
    if actual > 0 then redis.call('HINCRBY', key, 'u', actual) end
    redis.call('PEXPIREAT', key, ARGV[8 + i])
  end
end
if actual > 0 then
  local cost, input, output = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
  for j = 3 + n, #KEYS do
    local key = KEYS[j]
    if cost > 0 then redis.call('HINCRBY', key, 'c', cost) end
    if input > 0 then redis.call('HINCRBY', key, 'i', input) end
    if output > 0 then redis.call('HINCRBY', key, 'o', output) end
    redis.call('HINCRBY', key, 'r', 1)
    redis.call('PEXPIREAT', key, ARGV[6 + j])
  end
end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[4])
if live == 1 then return 'settled' end
return 'expired'
`;
