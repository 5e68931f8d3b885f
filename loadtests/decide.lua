-- wrk script: POST /v1/decide for a random demo customer (c-1000 .. c-(1000+N-1)) on the web channel.
-- N comes from the environment (NBA_BENCH_CUSTOMERS), default 1000.
local n = tonumber(os.getenv("NBA_BENCH_CUSTOMERS") or "1000")
math.randomseed(os.time())
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("NBA_BENCH_KEY")  -- set by bench_decide.py --key: an API key (nba keys create)
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

request = function()
  local id = 1000 + math.random(0, n - 1)
  local body = '{"customer_id":"c-' .. id .. '","channel":"web","context":{"device":"mobile"},"limit":3}'
  return wrk.format(nil, "/v1/decide", nil, body)
end
