-- Apply one learner batch if (and only if) the caller still holds the lease: the statistics, the board's
-- counters and the inbox positions move together, so a batch is applied once even if a learner dies
-- half-way. (The committed entries are deleted from their shards afterwards: store/redis/learner.py.)
local lease_key, positions_key, counts_key, contextual_key, events_key, arms_key, version_key, updated_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local FIRST_PERF_KEY = 9  -- KEYS from here: the board's counter hashes (keys.perf_hours, keys.perf_days)
local token, lease_ms, reset, n_positions = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local FIRST_POSITION = 5  -- then n_positions pairs (shard, entry id); then the number of increments,
                          -- then that many triples (tally: 1 counts, 2 events, 3 arms; field; amount);
                          -- then for each counter hash the epoch ms it expires at; then the number of
                          -- counter increments and that many triples (counter hash: 0 for KEYS[9], ...;
                          -- field; amount); then pairs (action, contextual row bytes); reset '1' drops
                          -- every row first
local tallies = {counts_key, events_key, arms_key}  -- contract.Tally

if redis.call('GET', lease_key) ~= token then
  return 0
end
redis.call('PEXPIRE', lease_key, lease_ms)
local b = FIRST_POSITION
for _ = 1, n_positions do
  redis.call('HSET', positions_key, ARGV[b], ARGV[b + 1])
  b = b + 2
end
local n_increments = tonumber(ARGV[b])
b = b + 1
if reset == '1' then
  redis.call('DEL', contextual_key)
end
for i = b, b + n_increments * 3 - 1, 3 do
  redis.call('HINCRBYFLOAT', tallies[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2])
end
b = b + n_increments * 3
local n_perf_keys = #KEYS - FIRST_PERF_KEY + 1
local expire_at = b
b = b + n_perf_keys
local n_perf = tonumber(ARGV[b])
b = b + 1
for i = b, b + n_perf * 3 - 1, 3 do
  -- counts are whole numbers: HINCRBY is cheaper than HINCRBYFLOAT; a value may have cents
  local op = string.sub(ARGV[i + 1], -6) == '|value' and 'HINCRBYFLOAT' or 'HINCRBY'
  redis.call(op, KEYS[FIRST_PERF_KEY + tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2])
end
for k = 0, n_perf_keys - 1 do
  redis.call('PEXPIREAT', KEYS[FIRST_PERF_KEY + k], ARGV[expire_at + k])
end
for i = b + n_perf * 3, #ARGV, 2 do
  redis.call('HSET', contextual_key, ARGV[i], ARGV[i + 1])
end
local now = redis.call('TIME')
redis.call('SET', updated_key, tostring(now[1] * 1000 + math.floor(now[2] / 1000)))
redis.call('INCR', version_key)
return 1
