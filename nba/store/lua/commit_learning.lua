-- Apply one learner batch if (and only if) the caller still holds the lease: the statistics and the
-- inbox position move together, so a batch is applied once even if a learner dies half-way.
local lease_key, inbox_key, position_key, counts_key, contextual_key, events_key, arms_key, version_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local token, lease_ms, position, reset, n_increments = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local FIRST_INCREMENT = 6  -- then n_increments triples (tally: 1 counts, 2 events, 3 arms; field; amount),
                           -- then pairs (action, contextual row bytes); reset '1' drops every row first
local tallies = {counts_key, events_key, arms_key}  -- contract.Tally

if redis.call('GET', lease_key) ~= token then
  return 0
end
redis.call('PEXPIRE', lease_key, lease_ms)
redis.call('SET', position_key, position)
if reset == '1' then
  redis.call('DEL', contextual_key)
end
local first_row = FIRST_INCREMENT + n_increments * 3
for b = FIRST_INCREMENT, first_row - 1, 3 do
  redis.call('HINCRBYFLOAT', tallies[tonumber(ARGV[b])], ARGV[b + 1], ARGV[b + 2])
end
for b = first_row, #ARGV, 2 do
  redis.call('HSET', contextual_key, ARGV[b], ARGV[b + 1])
end
redis.call('INCR', version_key)
-- everything up to and including the position: an applied entry must not linger (an erased customer's id)
redis.call('XTRIM', inbox_key, 'MINID', position)
redis.call('XDEL', inbox_key, position)
return 1
