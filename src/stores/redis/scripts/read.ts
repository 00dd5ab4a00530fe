import { SWEEP_LUA } from "./sweep.js";

/**
 * Read counters after releasing expired reservations.
 *
 * KEYS[1] = P exp, KEYS[2] = P rec, KEYS[3..] = counters; ARGV[1] = nowMs (decimal string)
 * Returns {u1, t1, u2, t2, …} (used, and used + reserved; 0 for missing counters).
 */
export const READ_LUA = `${SWEEP_LUA}
sweep(KEYS[1], KEYS[2], ARGV[1])
local out = {}
for i = 3, #KEYS do
  local s = redis.call('HMGET', KEYS[i], 'u', 't')
  out[#out + 1] = tonumber(s[1] or 0)
  out[#out + 1] = tonumber(s[2] or 0)
end
return out
`;
