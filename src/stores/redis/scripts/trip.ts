/**
 * Trip a breaker: switch a feature off until `until`, unless it is already off for at least as long
 * (switched off by hand with no end, or off until a later time). Why a script: read and write must be
 * one step, or a hand-made "off" written between them would be replaced by the breaker's shorter
 * one, and the feature would come back on by itself at the next hour.
 *
 * KEYS[1] = P switches (hash feature → "1" | "0" | "<0|1>@<untilMs>")
 * ARGV[1] = feature, ARGV[2] = untilMs (decimal string), ARGV[3] = the hash's TTL in ms
 * Returns 1 when written, 0 when an off switch already covers it.
 */
export const TRIP_LUA = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur == '0' then return 0 end
if cur and string.sub(cur, 1, 2) == '0@' and tonumber(string.sub(cur, 3)) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], '0@' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`;
