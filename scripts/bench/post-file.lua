-- wrk script: POST the file named by BODY_FILE (the same bytes every request).
local file = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
