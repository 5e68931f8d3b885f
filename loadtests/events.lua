-- wrk script: POST /v1/events, a batch of 10 impressions for random demo customers (c-1000 ..
-- c-(1000+N-1)), every event id new: the events path (history scripts, tally marks, inbox) without
-- duplicates. N comes from the environment (NBA_BENCH_CUSTOMERS), default 1000.
local n = tonumber(os.getenv("NBA_BENCH_CUSTOMERS") or "1000")
math.randomseed(os.time())
local run = math.random(0, 2 ^ 30)
local sent = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("NBA_BENCH_KEY")  -- set by bench_decide.py --key: an API key (nba keys create)
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

request = function()
  local events = {}
  for k = 1, 10 do
    sent = sent + 1
    local id = 1000 + math.random(0, n - 1)
    events[k] = '{"event_id":"b' .. run .. '-' .. sent .. '","type":"impression","customer_id":"c-' .. id ..
      '","action_id":"tv-addon","channel":"web"}'
  end
  return wrk.format(nil, "/v1/events", nil, '{"events":[' .. table.concat(events, ",") .. ']}')
end
