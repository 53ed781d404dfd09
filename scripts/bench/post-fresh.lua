-- wrk script: POST the component in BODY_FILE with a unique custom section appended to every
-- request, so each body has a new digest and must be compiled (the compile-per-request path).
local file = assert(io.open(os.getenv("BODY_FILE"), "rb"))
local base = file:read("*a")
file:close()
local counter = 0
local thread_tag = tostring(math.random(1, 1e9))

local function leb128(n)
  local out = {}
  repeat
    local byte = n % 128
    n = math.floor(n / 128)
    if n > 0 then byte = byte + 128 end
    out[#out + 1] = string.char(byte)
  until n == 0
  return table.concat(out)
end

request = function()
  counter = counter + 1
  local payload = thread_tag .. "-" .. counter
  local name = "bench"
  local content = leb128(#name) .. name .. payload
  local body = base .. "\0" .. leb128(#content) .. content
  return wrk.format("POST", nil, nil, body)
end
