-- Apply a customer's events to its history. Returns per event: 'erased' (the customer was erased:
-- nothing is written, so the id does not come back), 'unknown' (no profile, and the events' channels
-- do not remember anonymous visitors: nothing is written), 'dup' (the event is in the history already),
-- 'hist' (history only: no decision showed this action; a tally mark is left for the learner), 'late'
-- (its decision's attribution window had closed), 'credited' (the learner will credit it to the
-- decision). An impression that answers a decision replaces the reservation that decision made
-- (record_decision.lua). The model itself is moved by the learner (credit_events.lua), not here.
local customer_key, shown_key, erased_key = KEYS[1], KEYS[2], KEYS[3]
local history_cutoff, history_max, history_ttl, record_prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3],
  ARGV[4]
local marks_most, erased_field, now, anonymous_ttl = tonumber(ARGV[5]), ARGV[6], ARGV[7], tonumber(ARGV[8])
local FIRST_EVENT = 9  -- then per event: event key (history.event_key), ts_ms, history entry, type, action,
                       -- decision id ('' for none)

local out = {}
local refused = false
if erased(erased_key, erased_field, now) then
  refused = 'erased'
elseif anonymous_ttl <= 0 and redis.call('HEXISTS', customer_key, F.revision) == 0 then
  refused = 'unknown'  -- no profile, and no channel of these events remembers anonymous visitors
end
if refused then
  for _ = FIRST_EVENT, #ARGV, 6 do
    out[#out + 1] = refused
  end
  return out
end
if anonymous_ttl > 0 then
  history_ttl = anonymous_ttl  -- only applies without a profile (expire_unless_profile)
end
local applied = 0
local marks = {}
local h = hist_get(customer_key)
for b = FIRST_EVENT, #ARGV, 6 do
  local key, ts, entry, etype, action = ARGV[b], tonumber(ARGV[b + 1]), ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  if string.find(h, '|' .. key .. '\n', 1, true) then
    out[#out + 1] = 'dup'
  else
    applied = applied + 1
    h = hist_insert(h, ts, entry)
    local did, meta = decision_of(shown_key, record_prefix, action, ARGV[b + 5])
    if not meta then
      out[#out + 1] = 'hist'
      marks[#marks + 1] = key
    else
      if etype == 'impression' then
        local reservation = redis.call('HGET', record_prefix .. did, 'v:' .. action)
        if reservation then
          h = hist_remove(h, reservation)
          redis.call('HDEL', record_prefix .. did, 'v:' .. action)
        end
      end
      local _, deadline = parse_meta(meta)
      if deadline and ts > deadline then
        out[#out + 1] = 'late'
      else
        out[#out + 1] = 'credited'
      end
    end
  end
end
if applied > 0 then
  redis.call('HINCRBY', customer_key, F.version, 1)
  hist_store(customer_key, hist_trim(h, history_cutoff, history_max))
  if #marks > 0 then
    local t = (redis.call('HGET', customer_key, F.tally) or '') .. table.concat(marks, '\n') .. '\n'
    if #t > marks_most then  -- a learner that has been away a long time: the oldest marks go
      t = string.sub(t, (string.find(t, '\n', #t - marks_most, true) or #t) + 1)
    end
    redis.call('HSET', customer_key, F.tally, t)
  end
  expire_unless_profile(customer_key, history_ttl)
end
return out
