-- Shared by the scripts that touch a customer: the fields of its hash (store/keys.py documents them;
-- tests/store/test_redis_layout.py checks that these names are keys.py's), its packed history, its
-- tombstone and its decisions.
local F = {attributes = 'a', segments = 's', segments_version = 'g', updated = 'u', revision = 'r',
           version = 'v', history = 'h', tally = 't'}

-- History entries: "<ts base 36>|<type>|<action>|<channel>|<id>\n", oldest first (store/history.py).
-- An entry that cannot be parsed (written by hand, or damaged) counts as the oldest: trimming drops it
-- and ordering steps over it, instead of the script failing on every later write of the customer.
local function entry_ts(h, pos)
  local t = string.match(h, '^(%w+)|', pos)
  return t and tonumber(t, 36) or 0
end

-- The stored history, every entry ended by a newline (the scripts rely on it)
local function hist_get(key)
  local h = redis.call('HGET', key, F.history) or ''
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
    redis.call('HSET', key, F.history, h)
  else
    redis.call('HDEL', key, F.history)
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
  if redis.call('HEXISTS', key, F.revision) == 0 then
    redis.call('EXPIRE', key, ttl)
  end
end

-- The decision an answer is for, and what it says about the action: its own decision id, or the newest
-- decision that showed the action (`shown`); the meta is false when there is none.
local function decision_of(shown_key, record_prefix, action, decision_id)
  if decision_id == '' then
    decision_id = redis.call('HGET', shown_key, action) or ''
  end
  if decision_id == '' then
    return decision_id, false
  end
  return decision_id, redis.call('HGET', record_prefix .. decision_id, 'a:' .. action)
end

-- The learner's meta of an action in a decision record (learning/record.py writes it): "channel|segment
-- key|arm|attribution deadline ms|feature signature|features". The channel and the deadline (nil when
-- it cannot be read).
local function parse_meta(meta)
  local channel, deadline = string.match(meta, '^([^|]*)|[^|]*|[^|]*|([^|]*)')
  return channel, tonumber(deadline)
end
