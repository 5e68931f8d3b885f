"""Server-side Lua: each script touches the keys of one customer only (one hash tag, one slot), so it
is atomic and runs unchanged on Redis Cluster. Every write is safe to apply twice: redis-py may resend
a call after a connection error, and the event ids make the second application a no-op."""

# Shared by the scripts that write a customer's packed history (field `h`, see history.py): entries
# "<ts base 36>|type|action|channel|id\n", oldest first.
_HISTORY = r"""
-- An entry that cannot be parsed (written by hand, or damaged) counts as the oldest: trimming drops it
-- and ordering steps over it, instead of the script failing on every later write of the customer.
local function entry_ts(h, pos)
  local t = string.match(h, '^(%w+)|', pos)
  return t and tonumber(t, 36) or 0
end

-- The stored history, every entry ended by a newline (the scripts rely on it)
local function hist_get(key)
  local h = redis.call('HGET', key, 'h') or ''
  if #h > 0 and string.byte(h, #h) ~= 10 then
    h = h .. '\n'
  end
  return h
end

-- Insert keeping the order: almost every entry is the newest and is appended; a late one is placed
-- before the first newer entry.
local function hist_insert(h, ts, entry)
  if #h == 0 then
    return entry
  end
  local p = #h - 1
  while p > 0 and string.byte(h, p) ~= 10 do
    p = p - 1
  end
  if ts >= entry_ts(h, p + 1) then
    return h .. entry
  end
  local pos = 1
  while entry_ts(h, pos) <= ts do
    pos = string.find(h, '\n', pos, true) + 1
  end
  return string.sub(h, 1, pos - 1) .. entry .. string.sub(h, pos)
end

local function hist_remove(h, entry)
  local p = 1
  while true do
    local s = string.find(h, entry, p, true)
    if not s then
      return h
    end
    if s == 1 or string.byte(h, s - 1) == 10 then
      return string.sub(h, 1, s - 1) .. string.sub(h, s + #entry)
    end
    p = s + 1
  end
end

-- Drop entries older than `cutoff`, then the oldest beyond `max`. No entry is shorter than 20 bytes, so
-- shorter histories cannot be over the count and are not counted.
local function hist_trim(h, cutoff, max)
  while #h > 0 and entry_ts(h, 1) < cutoff do
    h = string.sub(h, string.find(h, '\n', 1, true) + 1)
  end
  if #h > max * 20 then
    local _, n = string.gsub(h, '\n', '\n')
    local p = 1
    for _ = 1, n - max do
      p = string.find(h, '\n', p, true) + 1
    end
    h = string.sub(h, p)
  end
  return h
end

local function hist_store(key, h)
  if #h > 0 then
    redis.call('HSET', key, 'h', h)
  else
    redis.call('HDEL', key, 'h')
  end
end

-- Whether the customer was erased (a tombstone in its slot's bucket, see keys.erased) until after `now`
local function erased(bucket, field, now)
  local until_ms = redis.call('HGET', bucket, field)
  return until_ms and tonumber(until_ms) > tonumber(now)
end

-- After any write to the customer: one without a profile exists only through its history (and version),
-- so it goes with the history
local function expire_unless_profile(key, ttl)
  if redis.call('HEXISTS', key, 'r') == 0 then
    redis.call('EXPIRE', key, ttl)
  end
end
"""

# KEYS: decisions index, decision record, contacts, customer, shown, erased bucket. ARGV: decision_id,
# ts_ms, record JSON, ttl_s, index cutoff ts_ms, max records kept, key prefix of records, contact_id (''
# for none), contact ttl_s, expected version, history ttl_s, history cutoff ts_ms, history max entries,
# erased field, then triples (action_id, learning meta, reservation entry) of the ranked actions. The
# meta ("channel|segment key|arm|attribution deadline ms|feature signature|features") is what the learner
# needs to credit an answer; `shown` maps each action to the newest decision that returned it, so an
# answer reported without a decision_id (or on another channel) finds its decision.
#
# Check and record in one step: the decision was ranked on the customer's history at `expected
# version`; if anything changed it since (another decision, an event), nothing is written and 0 is
# returned, so the caller ranks again on fresh data. Otherwise every returned action *reserves* an
# impression in the history (reservations count as impressions until the real impression of that
# decision arrives and replaces it, or until they expire), so two decisions racing for the last slot
# of a cap cannot both take it. Records pushed out of the index by the count limit are deleted (same
# slot, see ERASE). Returns 1; 2 (nothing written) for an erased customer: its id must not come back.
RECORD_DECISION = _HISTORY + """
if (redis.call('HGET', KEYS[4], 'v') or '0') ~= ARGV[10] then
  return 0
end
if erased(KEYS[6], ARGV[14], ARGV[2]) then
  return 2
end
redis.call('HINCRBY', KEYS[4], 'v', 1)
expire_unless_profile(KEYS[4], ARGV[11])
redis.call('HSET', KEYS[2], 'rec', ARGV[3])
local returned = (#ARGV - 14) / 3
if ARGV[8] ~= '' and returned > 0 then
  redis.call('HINCRBY', KEYS[3], ARGV[8], returned)
  redis.call('EXPIRE', KEYS[3], ARGV[9])
end
if returned > 0 then
  local h = hist_get(KEYS[4])
  local ts = tonumber(ARGV[2])
  local record, shown = {}, {}  -- one HSET each for all the returned actions
  for i = 15, #ARGV, 3 do
    table.insert(record, 'a:' .. ARGV[i])
    table.insert(record, ARGV[i + 1])
    table.insert(record, 'v:' .. ARGV[i])
    table.insert(record, ARGV[i + 2])
    table.insert(shown, ARGV[i])
    table.insert(shown, ARGV[1])
    h = hist_insert(h, ts, ARGV[i + 2])
  end
  redis.call('HSET', KEYS[2], unpack(record))
  redis.call('HSET', KEYS[5], unpack(shown))
  hist_store(KEYS[4], hist_trim(h, tonumber(ARGV[12]), tonumber(ARGV[13])))
  redis.call('EXPIRE', KEYS[5], ARGV[4])
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

# Tally marks, field `t` of the customer: the event keys of events applied without a decision that showed
# their action, one per line: "<key>" until the learner counts the event, then "<key> <inbox entry id>"
# until the batch of that entry is committed (CLEAR_TALLY_MARKS, or the next CREDIT_EVENTS of the
# customer, removes it then). The per-action event tally counts each event id once through them: a
# re-sent event finds no mark of its own (the history said 'dup'), and an inbox entry replayed after a
# learner died finds the mark it consumed itself.
_MARKS = r"""
local function stream_id_le(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if not am or not bm then
    return false
  end
  am, bm = tonumber(am), tonumber(bm)
  if am ~= bm then
    return am < bm
  end
  return tonumber(as) <= tonumber(bs)
end

-- The marks of `t` without those consumed by entries at or before the committed `position`, as an
-- ordered list of {key, entry or ''} and an index by key.
local function marks_read(t, position)
  local list, index = {}, {}
  for line in string.gmatch(t or '', '[^\n]+') do
    local k, by = string.match(line, '^(%S+) ?(%S*)$')
    if k and not (by ~= '' and stream_id_le(by, position)) then
      list[#list + 1] = {k, by}
      index[k] = #list
    end
  end
  return list, index
end

local function marks_store(key, list)
  local lines = {}
  for _, m in ipairs(list) do
    if m[1] then
      lines[#lines + 1] = m[2] ~= '' and (m[1] .. ' ' .. m[2]) or m[1]
    end
  end
  if #lines > 0 then
    redis.call('HSET', key, 't', table.concat(lines, '\n') .. '\n')
  else
    redis.call('HDEL', key, 't')
  end
end
"""

# KEYS: customer, shown, erased bucket. ARGV: history cutoff ts_ms, history max entries, history ttl_s,
# key prefix of decision records, most tally-mark bytes kept, erased field, now ms, then 6 per event:
# event key (history.event_key), ts_ms, history entry, type, action_id, decision_id ('' for none).
# Returns per event: 'erased' (the customer was erased: nothing is written, so the id does not come
# back), 'dup' (the event is in the history already), 'hist' (history only: no decision
# showed this action; a tally mark is left for the learner), 'late' (its decision's attribution window
# had closed), 'credited' (the learner will credit it to the decision). An impression that answers a
# decision replaces the reservation that decision made (RECORD_DECISION). The model itself is moved by
# the learner (CREDIT_EVENTS), not here.
APPLY_EVENTS = _HISTORY + """
local out = {}
if erased(KEYS[3], ARGV[6], ARGV[7]) then
  for _ = 8, #ARGV, 6 do
    out[#out + 1] = 'erased'
  end
  return out
end
local applied = 0
local marks = {}
local h = hist_get(KEYS[1])
for b = 8, #ARGV, 6 do
  local key, ts, entry, etype, action, did = ARGV[b], tonumber(ARGV[b + 1]), ARGV[b + 2], ARGV[b + 3],
    ARGV[b + 4], ARGV[b + 5]
  if string.find(h, '|' .. key .. '\\n', 1, true) then
    out[#out + 1] = 'dup'
  else
    applied = applied + 1
    h = hist_insert(h, ts, entry)
    if did == '' then
      did = redis.call('HGET', KEYS[2], action) or ''
    end
    local meta = false
    if did ~= '' then
      meta = redis.call('HGET', ARGV[4] .. did, 'a:' .. action)
    end
    if not meta then
      out[#out + 1] = 'hist'
      marks[#marks + 1] = key
    else
      if etype == 'impression' then
        local reservation = redis.call('HGET', ARGV[4] .. did, 'v:' .. action)
        if reservation then
          h = hist_remove(h, reservation)
          redis.call('HDEL', ARGV[4] .. did, 'v:' .. action)
        end
      end
      local deadline = tonumber(string.match(meta, '^[^|]*|[^|]*|[^|]*|([^|]*)'))
      if deadline and ts > deadline then
        out[#out + 1] = 'late'
      else
        out[#out + 1] = 'credited'
      end
    end
  end
end
if applied > 0 then
  redis.call('HINCRBY', KEYS[1], 'v', 1)
  hist_store(KEYS[1], hist_trim(h, tonumber(ARGV[1]), tonumber(ARGV[2])))
  if #marks > 0 then
    local t = (redis.call('HGET', KEYS[1], 't') or '') .. table.concat(marks, '\\n') .. '\\n'
    local most = tonumber(ARGV[5])
    if #t > most then  -- a learner that has been away a long time: the oldest marks go
      t = string.sub(t, (string.find(t, '\\n', #t - most, true) or #t) + 1)
    end
    redis.call('HSET', KEYS[1], 't', t)
  end
  expire_unless_profile(KEYS[1], ARGV[3])
end
return out
"""

# The learner's half of an event (see nba/learning/learner.py). KEYS: shown, customer. ARGV: key prefix of
# decision records, the learner's committed inbox position, T, then T triples (channel, event type,
# reward), then 7 per event: inbox entry id, event_id, event key, ts_ms, type, action_id, decision_id
# ('' for none).
# Exactly once: the first inbox entry to credit an event records its grant in the decision record
# (g:<event_id> = entry id|trial|reward delta); that same entry, replayed after a learner crash, gets the
# same grant back (its model update was never committed); any other entry with that event id (a
# re-sent batch) gets nothing. A shown action is one trial; its reward is the best answer it got, so
# the grant is the rise of that best. An answer after the attribution window gets an empty grant, so
# that it too is counted once. Returns per event {status, trial, delta, meta, counted, marked}: status
# 'none' (no decision), 'late', 'granted', 'dup' or 'bad' (the decision's meta cannot be read);
# `counted` '1' when this entry is the one that counts the event in the per-action tally (its first
# inbox entry, or that entry replayed); `marked` '1' when that was decided by a tally mark.
CREDIT_EVENTS = _MARKS + """
local rewards = {}
local n_rewards = tonumber(ARGV[3])
for i = 0, n_rewards - 1 do
  rewards[ARGV[4 + i * 3] .. '|' .. ARGV[5 + i * 3]] = tonumber(ARGV[6 + i * 3])
end
local stored = redis.call('HGET', KEYS[2], 't')
local marks, mark_of = marks_read(stored, ARGV[2])
local marks_changed = false
local out = {}
for b = 4 + n_rewards * 3, #ARGV, 7 do
  local entry, event_id, ekey, ts, etype, action, did = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3],
    ARGV[b + 4], ARGV[b + 5], ARGV[b + 6]
  local marked = '0'
  local m = mark_of[ekey]
  if m and (marks[m][2] == '' or marks[m][2] == entry) then
    marked = '1'
    if marks[m][2] == '' then
      marks[m][2] = entry
      marks_changed = true
    end
  end
  if did == '' then
    did = redis.call('HGET', KEYS[1], action) or ''
  end
  local key = ARGV[1] .. did
  local meta = false
  if did ~= '' then
    meta = redis.call('HGET', key, 'a:' .. action)
  end
  if not meta then
    out[#out + 1] = {'none', '0', '0', '', marked, marked}
  else
    local grant = redis.call('HGET', key, 'g:' .. event_id)
    if grant then
      local from, trial, delta = string.match(grant, '^([^|]*)|([^|]*)|(.*)$')
      if from == entry then
        out[#out + 1] = {'granted', trial, delta, meta, '1', marked}
      else
        out[#out + 1] = {'dup', '0', '0', meta, marked, marked}
      end
    else
      local channel, _, _, deadline = string.match(meta, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)')
      if not tonumber(deadline) then
        out[#out + 1] = {'bad', '0', '0', meta, marked, marked}  -- damaged: reported and skipped by the learner
      elseif tonumber(ts) > tonumber(deadline) then
        redis.call('HSET', key, 'g:' .. event_id, entry .. '|0|0')
        out[#out + 1] = {'late', '0', '0', meta, '1', marked}
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
        out[#out + 1] = {'granted', trial, tostring(best - credited), meta, '1', marked}
      end
    end
  end
end
-- only a customer that still exists keeps marks (an erased one is not re-created here)
if stored and (marks_changed or #marks ~= select(2, string.gsub(stored, '\\n', '\\n'))) then
  marks_store(KEYS[2], marks)
end
return out
"""

# KEYS: customer. ARGV: the learner's committed inbox position. After a commit: the tally marks that
# the committed entries consumed are no longer needed.
CLEAR_TALLY_MARKS = _MARKS + """
local stored = redis.call('HGET', KEYS[1], 't')
if stored then
  marks_store(KEYS[1], (marks_read(stored, ARGV[1])))
end
return 0
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
-- everything up to and including the position: an applied entry must not linger (an erased customer's id)
redis.call('XTRIM', KEYS[2], 'MINID', ARGV[3])
redis.call('XDEL', KEYS[2], ARGV[3])
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

# KEYS: customer, erased bucket. ARGV: expected revision ('' when the profile must not exist yet, '*'
# for any), attributes, segment bits, segments version, updated_at ms, erased field. Compare-and-set: a
# PATCH merges on what it read, so a concurrent write in between makes it retry instead of losing that
# write. A profile makes the customer permanent (events of an unknown customer gave it a TTL), and the
# CRM writing one for an erased id starts a new relationship: its tombstone goes.
WRITE_PROFILE = """
local rev = redis.call('HGET', KEYS[1], 'r')
if ARGV[1] ~= '*' and (rev or '') ~= ARGV[1] then
  return -1
end
local next_rev = tonumber(rev or '0') + 1
redis.call('HSET', KEYS[1], 'a', ARGV[2], 's', ARGV[3], 'g', ARGV[4], 'u', ARGV[5], 'r', next_rev)
redis.call('PERSIST', KEYS[1])
redis.call('HDEL', KEYS[2], ARGV[6])
return next_rev
"""

# KEYS: customer, decisions index, contacts, shown, erased bucket. ARGV: key prefix of decision records,
# erased field, tombstone until (ms), now (ms). Deletes every key of the customer and leaves a tombstone
# (a hash of the id, not the id) so that late events and decisions record nothing; tombstones of this
# slot that have run out are dropped, and the bucket expires with its newest. The records are not
# declared in KEYS (their ids are only known inside the script); they share the customer's hash tag, so
# they live in the same slot and Redis Cluster accepts the access.
ERASE_CUSTOMER = """
local deleted = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  deleted = deleted + redis.call('DEL', ARGV[1] .. id)
end
deleted = deleted + redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
local tombstones = redis.call('HGETALL', KEYS[5])
for i = 1, #tombstones, 2 do
  if tonumber(tombstones[i + 1]) <= tonumber(ARGV[4]) then
    redis.call('HDEL', KEYS[5], tombstones[i])
  end
end
redis.call('HSET', KEYS[5], ARGV[2], ARGV[3])
redis.call('PEXPIREAT', KEYS[5], ARGV[3])
return deleted
"""

# KEYS: rewrite due. ARGV: the value read before the rewrite was asked for. Deletes it unless an
# erasure since has set a newer one (which then needs a rewrite of its own).
CLEAR_REWRITE_DUE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: attribute codes. ARGV: attribute names. The code of each name, giving new names the next free
# code (codes are never reused, so every stored profile stays readable). Returns the codes.
ATTRIBUTE_CODES = """
local out = {}
for i, name in ipairs(ARGV) do
  local code = redis.call('HGET', KEYS[1], name)
  if not code then
    code = redis.call('HLEN', KEYS[1])
    redis.call('HSET', KEYS[1], name, code)
  end
  out[i] = tonumber(code)
end
return out
"""

# KEYS: current, history, source. ARGV: version, set key prefix, max history, rule set JSON, mode.
# Publishes a validated rule set read from a rules directory: stores it, makes it current, records it in
# the history (moving it to the front if it was there) and as the directory's last published version
# (`source`). Mode 'changed' (start-up, the directory watcher) publishes only a directory whose content
# differs from the last one published, so a rollback stays in force while the files still hold the set
# it rolled back from; mode 'force' (an explicit reload) publishes in any case. Sets that fall off the
# history are deleted. Returns 1 when the current version changed.
PUBLISH_RULES = """
if ARGV[5] == 'changed' and redis.call('GET', KEYS[3]) == ARGV[1] then
  return 0
end
redis.call('SET', KEYS[3], ARGV[1])
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
