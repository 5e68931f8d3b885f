-- Shared by the scripts that read or remember a decide request id (keys.py, requests): entries are
-- "<decision_id>|<until ms>|<fingerprint>", the answer to give again is the field `ans` of the record.
local function request_parse(entry)
  local did, until_ms, fp = string.match(entry or '', '^([^|]+)|(%d+)|(.*)$')
  return did, tonumber(until_ms) or 0, fp
end

-- The decision (and fingerprint) a request id names while it has not ended and the answer is still
-- there: a record pushed out by DECISIONS_MAX, expired, or erased makes it a new request.
local function request_live(requests_key, request_id, record_prefix, now)
  local did, until_ms, fp = request_parse(redis.call('HGET', requests_key, request_id))
  if did and until_ms > now and redis.call('HEXISTS', record_prefix .. did, 'ans') == 1 then
    return did, fp
  end
  return nil, nil
end

-- Remember a request id. Entries that ended go (with the answers their records kept), and while `max`
-- or more remain, the ones ending first: a client sending a new id every time cannot grow the hash. It
-- lives as long as its last-ending entry (relative to `now`: the servers' clock, not Redis's).
local function request_remember(requests_key, request_id, entry, until_ms, now, max, record_prefix)
  local all = redis.call('HGETALL', requests_key)
  local kept, doomed, last = {}, {}, until_ms
  for i = 1, #all, 2 do
    local did, ends = request_parse(all[i + 1])
    if all[i] == request_id or ends <= now then
      table.insert(doomed, {all[i], did})
    else
      table.insert(kept, {all[i], did, ends})
      last = math.max(last, ends)
    end
  end
  if #kept >= max then
    table.sort(kept, function(a, b) return a[3] < b[3] end)
    for j = 1, #kept - max + 1 do
      table.insert(doomed, kept[j])
    end
  end
  for _, d in ipairs(doomed) do
    redis.call('HDEL', requests_key, d[1])
    if d[2] then
      redis.call('HDEL', record_prefix .. d[2], 'ans')
    end
  end
  redis.call('HSET', requests_key, request_id, entry)
  redis.call('PEXPIRE', requests_key, last - now)
end
