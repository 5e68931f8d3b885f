-- Record a decision and reserve its actions, if the customer's history is still the one it was ranked
-- on; store/redis/decisions.py names the arguments (RecordArgs).
--
-- Check and record in one step: if anything changed the history since it was read (another decision,
-- an event), nothing is written and 0 is returned, so the caller ranks again on fresh data. Otherwise
-- every returned action *reserves* an impression in the history (reservations count as impressions
-- until the real impression of that decision arrives and replaces it, or until they expire), so two
-- decisions racing for the last slot of a cap cannot both take it. `shown` maps each action to the
-- newest decision that returned it, so an answer reported without a decision_id (or on another
-- channel) finds its decision. Records pushed out of the index by the count limit are deleted (same
-- slot). Returns 1; 2 (nothing written) for an erased customer: its id must not come back; 3 (nothing
-- written) for a customer without a profile when the channel does not remember anonymous visitors.
-- With a request id (and KEYS[7], the customer's requests): 4 (nothing written) when the id already names
-- a live decision, a twin request's that was recorded first; else it is remembered with the answer.
local index_key, record_key, contacts_key, customer_key, shown_key, erased_key, requests_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local decision_id, ts, record = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local record_ttl, index_cutoff, records_max, record_prefix = ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7]
local contact_id, contact_ttl, expected_version = ARGV[8], ARGV[9], ARGV[10]
local history_ttl, history_cutoff, history_max, erased_field = ARGV[11], tonumber(ARGV[12]), tonumber(ARGV[13]),
  ARGV[14]
local anonymous_ttl = tonumber(ARGV[15])
local request_id, request_entry, request_until, answer, requests_max = ARGV[16], ARGV[17], tonumber(ARGV[18]),
  ARGV[19], tonumber(ARGV[20])
local FIRST_ACTION = 21  -- then (action_id, learning meta, reservation entry) per returned action

if request_id ~= '' and request_live(requests_key, request_id, record_prefix, ts) then
  return 4
end
if (redis.call('HGET', customer_key, F.version) or '0') ~= expected_version then
  return 0
end
if erased(erased_key, erased_field, ts) then
  return 2
end
if redis.call('HEXISTS', customer_key, F.revision) == 0 then
  -- no profile: kept only as long as the channel remembers anonymous visitors, or not at all
  if anonymous_ttl <= 0 then
    return 3
  end
  history_ttl = anonymous_ttl
  record_ttl = math.min(tonumber(record_ttl), anonymous_ttl)
end
redis.call('HINCRBY', customer_key, F.version, 1)
expire_unless_profile(customer_key, history_ttl)
redis.call('HSET', record_key, 'rec', record)
if request_id ~= '' then
  redis.call('HSET', record_key, 'ans', answer)
  request_remember(requests_key, request_id, request_entry, request_until, ts, requests_max, record_prefix)
end
local returned = (#ARGV - FIRST_ACTION + 1) / 3
if contact_id ~= '' and returned > 0 then
  redis.call('HINCRBY', contacts_key, contact_id, returned)
  redis.call('EXPIRE', contacts_key, contact_ttl)
end
if returned > 0 then
  local h = hist_get(customer_key)
  local fields, shown = {}, {}  -- one HSET each for all the returned actions
  for i = FIRST_ACTION, #ARGV, 3 do
    local action, meta, reservation = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    table.insert(fields, 'a:' .. action)
    table.insert(fields, meta)
    table.insert(fields, 'v:' .. action)
    table.insert(fields, reservation)
    table.insert(shown, action)
    table.insert(shown, decision_id)
    h = hist_insert(h, entry_ts(reservation, 1), reservation)  -- an outbound one may hold from its send time
  end
  redis.call('HSET', record_key, unpack(fields))
  redis.call('HSET', shown_key, unpack(shown))
  hist_store(customer_key, hist_trim(h, history_cutoff, history_max))
  redis.call('EXPIRE', shown_key, record_ttl)
end
redis.call('EXPIRE', record_key, record_ttl)
redis.call('ZADD', index_key, ts, decision_id)
redis.call('ZREMRANGEBYSCORE', index_key, '-inf', index_cutoff)
local extra = redis.call('ZCARD', index_key) - records_max
if extra > 0 then
  local popped = redis.call('ZPOPMIN', index_key, extra)
  for i = 1, #popped, 2 do
    redis.call('DEL', record_prefix .. popped[i])
  end
end
redis.call('EXPIRE', index_key, record_ttl)
return 1
