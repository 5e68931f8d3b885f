"""Server-side Lua: each script touches the keys of one customer only (one hash tag, one slot), so it
is atomic and runs unchanged on Redis Cluster. Every write is safe to apply twice: redis-py may resend
a call after a connection error, and the event ids make the second application a no-op."""

# KEYS: profile, hist, contacts, version. ARGV: oldest ts_ms to read, max entries, contact_id ('' for none).
READ_CUSTOMER = """
local p = redis.call('HMGET', KEYS[1], 'attrs', 'segments', 'segver')
local version = redis.call('GET', KEYS[4]) or '0'
local h = redis.call('ZRANGE', KEYS[2], '+inf', ARGV[1], 'BYSCORE', 'REV', 'LIMIT', 0, ARGV[2])
local shown = 0
if ARGV[3] ~= '' then
  shown = tonumber(redis.call('HGET', KEYS[3], ARGV[3]) or '0')
end
return {p[1], p[2], p[3], h, shown, version}
"""

# KEYS: decisions index, decision record, contacts, hist, version, shown. ARGV: decision_id, ts_ms, record
# JSON, ttl_s, index cutoff ts_ms, max records kept, key prefix of records, contact_id ('' for none),
# contact ttl_s, expected version, channel, history ttl_s, then pairs (action_id, learning meta) of the
# ranked actions. The meta ("channel|segment key|arm|attribution deadline ms|feature signature|features")
# is what the learner needs to credit an answer; `shown` maps each action to the newest decision that
# returned it, so an answer reported without a decision_id (or on another channel) finds its decision.
#
# Check and record in one step: the decision was ranked on the customer's history at `expected
# version`; if anything changed it since (another decision, an event), nothing is written and 0 is
# returned, so the caller ranks again on fresh data. Otherwise every returned action *reserves* an
# impression in the history (`reserved` entries count as impressions until the real impression of that
# decision arrives and replaces it, or until they expire), so two decisions racing for the last slot
# of a cap cannot both take it. Records pushed out of the index by the count limit are deleted (same
# slot, see ERASE). Returns 1.
RECORD_DECISION = """
if (redis.call('GET', KEYS[5]) or '0') ~= ARGV[10] then
  return 0
end
redis.call('INCR', KEYS[5])
redis.call('HSET', KEYS[2], 'rec', ARGV[3])
if ARGV[8] ~= '' and #ARGV > 12 then
  redis.call('HINCRBY', KEYS[3], ARGV[8], (#ARGV - 12) / 2)
  redis.call('EXPIRE', KEYS[3], ARGV[9])
end
for i = 13, #ARGV, 2 do
  redis.call('HSET', KEYS[2], 'a:' .. ARGV[i], ARGV[i + 1])
  local member = ARGV[2] .. '|reserved|' .. ARGV[i] .. '|' .. ARGV[11] .. '|' .. ARGV[1]
  redis.call('ZADD', KEYS[4], ARGV[2], member)
  redis.call('HSET', KEYS[2], 'v:' .. ARGV[i], member)
  redis.call('HSET', KEYS[6], ARGV[i], ARGV[1])
end
if #ARGV > 12 then
  redis.call('EXPIRE', KEYS[4], ARGV[12])
  redis.call('EXPIRE', KEYS[6], ARGV[4])
end
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[5])
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[6])
if extra > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[1], extra)
  for i = 1, #popped, 2 do
    redis.call('DEL', ARGV[7] .. popped[i])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

# KEYS: seen, hist, version, shown. ARGV: seen cutoff ts_ms, hist cutoff ts_ms, hist max entries, seen
# ttl_s, hist ttl_s, key prefix of decision records, then 6 per event: event_id, ts_ms, type, action_id,
# channel, decision_id ('' for none).
# Returns per event: 'dup' (event id seen before), 'hist' (history only: no decision showed this action),
# 'late' (its decision's attribution window had closed), 'credited' (the learner will credit it to the
# decision). An impression that answers a decision replaces the reservation that decision made
# (RECORD_DECISION). The model itself is moved by the learner (CREDIT_EVENTS), not here.
APPLY_EVENTS = """
local out = {}
local applied = 0
local n = (#ARGV - 6) / 6
for e = 0, n - 1 do
  local b = 7 + e * 6
  local event_id, ts, etype, action, channel, did = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4],
    ARGV[b + 5]
  if redis.call('ZADD', KEYS[1], 'NX', ts, event_id) == 0 then
    out[#out + 1] = 'dup'
  else
    applied = applied + 1
    redis.call('ZADD', KEYS[2], ts, ts .. '|' .. etype .. '|' .. action .. '|' .. channel .. '|' .. event_id)
    if did == '' then
      did = redis.call('HGET', KEYS[4], action) or ''
    end
    local meta = false
    if did ~= '' then
      meta = redis.call('HGET', ARGV[6] .. did, 'a:' .. action)
    end
    if not meta then
      out[#out + 1] = 'hist'
    else
      if etype == 'impression' then
        local reservation = redis.call('HGET', ARGV[6] .. did, 'v:' .. action)
        if reservation then
          redis.call('ZREM', KEYS[2], reservation)
          redis.call('HDEL', ARGV[6] .. did, 'v:' .. action)
        end
      end
      local deadline = tonumber(string.match(meta, '^[^|]*|[^|]*|[^|]*|([^|]*)'))
      if deadline and tonumber(ts) > deadline then
        out[#out + 1] = 'late'
      else
        out[#out + 1] = 'credited'
      end
    end
  end
end
if applied > 0 then
  redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], ARGV[5])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if extra > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, extra - 1)
end
redis.call('EXPIRE', KEYS[2], ARGV[5])
return out
"""

# The learner's half of an event (see nba/learner.py). KEYS: shown. ARGV: key prefix of decision records,
# T, then T triples (channel, event type, reward), then 6 per event: inbox entry id, event_id, ts_ms,
# type, action_id, decision_id ('' for none).
# Exactly once: the first inbox entry to credit an event records its grant in the decision record
# (g:<event_id> = entry id|trial|reward delta); that same entry, replayed after a learner crash, gets the
# same grant back (its model update was never committed); any other entry with that event id (a
# re-sent batch) gets nothing. A shown action is one trial; its reward is the best answer it got, so
# the grant is the rise of that best. Returns per event {status, trial, delta, meta}: status 'none'
# (no decision), 'late', 'granted' or 'dup'.
CREDIT_EVENTS = """
local rewards = {}
local t = tonumber(ARGV[2])
for i = 0, t - 1 do
  rewards[ARGV[3 + i * 3] .. '|' .. ARGV[4 + i * 3]] = tonumber(ARGV[5 + i * 3])
end
local out = {}
local first = 3 + t * 3
for b = first, #ARGV, 6 do
  local entry, event_id, ts, etype, action, did = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4],
    ARGV[b + 5]
  if did == '' then
    did = redis.call('HGET', KEYS[1], action) or ''
  end
  local key = ARGV[1] .. did
  local meta = false
  if did ~= '' then
    meta = redis.call('HGET', key, 'a:' .. action)
  end
  if not meta then
    out[#out + 1] = {'none', '0', '0', ''}
  else
    local grant = redis.call('HGET', key, 'g:' .. event_id)
    if grant then
      local from, trial, delta = string.match(grant, '^([^|]*)|([^|]*)|(.*)$')
      if from == entry then
        out[#out + 1] = {'granted', trial, delta, meta}
      else
        out[#out + 1] = {'dup', '0', '0', meta}
      end
    else
      local channel, _, _, deadline = string.match(meta, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)')
      if tonumber(ts) > tonumber(deadline) then
        out[#out + 1] = {'late', '0', '0', meta}
      else
        local credited = redis.call('HGET', key, 'r:' .. action)
        local trial = '0'
        if not credited then
          trial = '1'
          credited = 0
        else
          credited = tonumber(credited)
        end
        local reward = rewards[channel .. '|' .. etype] or 0
        local best = math.max(credited, reward)
        redis.call('HSET', key, 'r:' .. action, tostring(best), 'g:' .. event_id,
                   entry .. '|' .. trial .. '|' .. tostring(best - credited))
        out[#out + 1] = {'granted', trial, tostring(best - credited), meta}
      end
    end
  end
end
return out
"""

# KEYS: lease, inbox, position, counts, contextual rows, event counts, arm counts, version.
# ARGV: lease token, lease ms, position (last inbox entry applied), reset ('1': the feature columns changed,
# drop every contextual row first), N, then N triples (hash index 1-3 for counts/event counts/arm counts,
# field, increment), then M pairs (action, contextual row bytes).
# Applies one learner batch if (and only if) the caller still holds the lease: the statistics and the
# position move together, so a batch is applied once even if a learner dies half-way.
COMMIT_LEARNING = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SET', KEYS[3], ARGV[3])
if ARGV[4] == '1' then
  redis.call('DEL', KEYS[5])
end
local n = tonumber(ARGV[5])
local hashes = {KEYS[4], KEYS[6], KEYS[7]}
for i = 0, n - 1 do
  local b = 6 + i * 3
  redis.call('HINCRBYFLOAT', hashes[tonumber(ARGV[b])], ARGV[b + 1], ARGV[b + 2])
end
for b = 6 + n * 3, #ARGV, 2 do
  redis.call('HSET', KEYS[5], ARGV[b], ARGV[b + 1])
end
redis.call('INCR', KEYS[8])
redis.call('XTRIM', KEYS[2], 'MINID', ARGV[3])
return 1
"""

# KEYS: lease. ARGV: token, lease ms. Take the lease when free, or renew it when it is ours: 1 if held.
TAKE_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS: profile. ARGV: expected revision ('' when the profile must not exist yet, '*' for any), attrs
# JSON, segments JSON, segver, updated_at. Compare-and-set: a PATCH merges on what it read, so a
# concurrent write in between makes it retry instead of losing that write.
WRITE_PROFILE = """
local rev = redis.call('HGET', KEYS[1], 'rev')
if ARGV[1] ~= '*' and (rev or '') ~= ARGV[1] then
  return -1
end
local next_rev = tostring(tonumber(rev or '0') + 1)
redis.call('HSET', KEYS[1], 'attrs', ARGV[2], 'segments', ARGV[3], 'segver', ARGV[4], 'updated_at', ARGV[5],
           'rev', next_rev)
return tonumber(next_rev)
"""

# KEYS: profile, hist, seen, decisions index, contacts, version, shown. ARGV: key prefix of decision records.
# The records are not declared in KEYS (their ids are only known inside the script); they share the
# customer's hash tag, so they live in the same slot and Redis Cluster accepts the access.
ERASE_CUSTOMER = """
local deleted = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  deleted = deleted + redis.call('DEL', ARGV[1] .. id)
end
return deleted + redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
"""

# KEYS: current, history. ARGV: version, set key prefix, max history, rule set JSON.
# Publishes a validated rule set: stores it, makes it current, and records it in the history (moving
# it to the front if it was there). Sets that fall off the history are deleted. Returns 1 when the
# current version changed.
PUBLISH_RULES = """
redis.call('SET', ARGV[2] .. ARGV[1], ARGV[4])
local changed = redis.call('GET', KEYS[1]) ~= ARGV[1]
if changed then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  redis.call('LPUSH', KEYS[2], ARGV[1])
  redis.call('SET', KEYS[1], ARGV[1])
  local old = redis.call('LRANGE', KEYS[2], tonumber(ARGV[3]), -1)
  for _, v in ipairs(old) do
    redis.call('DEL', ARGV[2] .. v)
  end
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
  return 1
end
return 0
"""

# KEYS: current, history. ARGV: set key prefix. Makes the previous version current again and drops
# the current one from the history. Returns the version now current, or false when there is none.
ROLLBACK_RULES = """
local history = redis.call('LRANGE', KEYS[2], 0, 1)
if #history < 2 then
  return false
end
redis.call('LPOP', KEYS[2])
redis.call('DEL', ARGV[1] .. history[1])
redis.call('SET', KEYS[1], history[2])
return history[2]
"""
