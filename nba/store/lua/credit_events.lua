-- The learner's half of an event (learning/learner.py): credit inbox entries to the decisions they
-- answer. Exactly once: the first inbox entry to credit an event records its grant in the decision
-- record (g:<event_id> = entry id|trial|reward delta); that same entry, replayed after a learner crash,
-- gets the same grant back (its model update was never committed); any other entry with that event id
-- (a re-sent batch) gets nothing. A shown action is one trial; its reward is the best answer it got, so
-- the grant is the rise of that best. An answer after the attribution window gets an empty grant, so
-- that it too is counted once.
-- Returns per event {status, trial, delta, meta, counted, marked}: status 'none' (no decision), 'late',
-- 'granted', 'dup' or 'bad' (the decision's meta cannot be read); `counted` '1' when this entry is the
-- one that counts the event in the per-action tally (its first inbox entry, or that entry replayed);
-- `marked` '1' when that was decided by a tally mark.
local shown_key, customer_key = KEYS[1], KEYS[2]
local record_prefix, position, n_rewards = ARGV[1], ARGV[2], tonumber(ARGV[3])
local FIRST_REWARD = 4  -- then n_rewards triples (channel, event type, reward)
local first_event = FIRST_REWARD + n_rewards * 3  -- then per event: inbox entry id, event_id, event key,
                                                  -- ts_ms, type, action, decision id ('' for none)

local rewards = {}
for i = FIRST_REWARD, first_event - 1, 3 do
  rewards[ARGV[i] .. '|' .. ARGV[i + 1]] = tonumber(ARGV[i + 2])
end
local stored = redis.call('HGET', customer_key, F.tally)
local marks, mark_of = marks_read(stored, position)
local marks_changed = false
local out = {}
for b = first_event, #ARGV, 7 do
  local entry, event_id, event_key, ts, etype, action = ARGV[b], ARGV[b + 1], ARGV[b + 2], tonumber(ARGV[b + 3]),
    ARGV[b + 4], ARGV[b + 5]
  local marked = '0'
  local m = mark_of[event_key]
  if m and (marks[m][2] == '' or marks[m][2] == entry) then
    marked = '1'
    if marks[m][2] == '' then
      marks[m][2] = entry
      marks_changed = true
    end
  end
  local did, meta = decision_of(shown_key, record_prefix, action, ARGV[b + 6])
  local record_key = record_prefix .. did
  if not meta then
    out[#out + 1] = {'none', '0', '0', '', marked, marked}
  else
    local grant = redis.call('HGET', record_key, 'g:' .. event_id)
    local channel, deadline = parse_meta(meta)
    if grant then
      local from, trial, delta = string.match(grant, '^([^|]*)|([^|]*)|(.*)$')
      if from == entry then
        out[#out + 1] = {'granted', trial, delta, meta, '1', marked}
      else
        out[#out + 1] = {'dup', '0', '0', meta, marked, marked}
      end
    elseif not deadline then
      out[#out + 1] = {'bad', '0', '0', meta, marked, marked}  -- damaged: reported and skipped by the learner
    elseif ts > deadline then
      redis.call('HSET', record_key, 'g:' .. event_id, entry .. '|0|0')
      out[#out + 1] = {'late', '0', '0', meta, '1', marked}
    else
      local credited = redis.call('HGET', record_key, 'r:' .. action)
      local trial = '0'
      if not credited then
        trial = '1'
        credited = 0
      else
        credited = tonumber(credited)
      end
      local best = math.max(credited, rewards[channel .. '|' .. etype] or 0)
      redis.call('HSET', record_key, 'r:' .. action, tostring(best), 'g:' .. event_id,
                 entry .. '|' .. trial .. '|' .. tostring(best - credited))
      out[#out + 1] = {'granted', trial, tostring(best - credited), meta, '1', marked}
    end
  end
end
-- only a customer that still exists keeps marks (an erased one is not re-created here)
if stored and (marks_changed or #marks ~= select(2, string.gsub(stored, '\n', '\n'))) then
  marks_store(customer_key, marks)
end
return out
