-- Replace the forward-decayed model statistics with the same ones expressed against a new landmark (or
-- half-life), if (and only if) the caller still holds the lease: readers see the old or the new units,
-- never a mix (learning/forgetting.py).
local lease_key, counts_key, contextual_key, decay_key, version_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local token, lease_ms, landmark, half_life, n_counts = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local FIRST = 6  -- then n_counts pairs (field, value), then pairs (action, contextual row bytes)

if redis.call('GET', lease_key) ~= token then
  return 0
end
redis.call('PEXPIRE', lease_key, lease_ms)
redis.call('DEL', counts_key)
local first_row = FIRST + n_counts * 2
for b = FIRST, first_row - 1, 2 do
  redis.call('HSET', counts_key, ARGV[b], ARGV[b + 1])
end
for b = first_row, #ARGV, 2 do
  redis.call('HSET', contextual_key, ARGV[b], ARGV[b + 1])
end
redis.call('HSET', decay_key, 'landmark', landmark, 'half_life', half_life)
redis.call('INCR', version_key)
return 1
