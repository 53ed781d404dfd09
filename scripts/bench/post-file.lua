-- wrk script: POST the file named by BODY_FILE (the same bytes every request).
local file = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()

-- DELAY_MS, if set, makes each connection wait that long between requests (a paced load).
local delay_ms = tonumber(os.getenv("DELAY_MS") or "")
if delay_ms then
  function delay()
    return delay_ms
  end
end
