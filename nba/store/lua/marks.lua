-- Tally marks, field `t` of the customer: the event keys of events applied without a decision that showed
-- their action, one per line: "<key>" until the learner counts the event, then "<key> <inbox entry id>"
-- until the batch of that entry is committed (clear_tally_marks.lua, or the next credit_events.lua of the
-- customer, removes it then). The per-action event tally counts each event id once through them: a
-- re-sent event finds no mark of its own (the history said 'dup'), and an inbox entry replayed after a
-- learner died finds the mark it consumed itself.
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
    lines[#lines + 1] = m[2] ~= '' and (m[1] .. ' ' .. m[2]) or m[1]
  end
  if #lines > 0 then
    redis.call('HSET', key, F.tally, table.concat(lines, '\n') .. '\n')
  else
    redis.call('HDEL', key, F.tally)
  end
end
