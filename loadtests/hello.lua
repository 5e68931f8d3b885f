-- wrk script: the same request shape as decide.lua, against the hello-world baseline.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local body = '{"customer_id":"c-1042","channel":"web","context":{"device":"mobile"},"limit":3}'

request = function()
  return wrk.format(nil, "/hello", nil, body)
end
