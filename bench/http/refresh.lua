-- POST /token, grant_type=refresh_token. Each thread takes its share of the refresh tokens in
-- BENCH_TOKENS (one per line; BENCH_THREADS threads): a token is presented once, and the successor its
-- answer carries goes back to the thread's pool, so every request in flight rotates a family of its own and
-- each family is rotated in order, as a client does. (wrk has one Lua state per thread, not per connection.)
dofile(os.getenv("BENCH_DIR") .. "/common.lua")
local headers = {
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC"),
}
local pool = {}

function init(args)
  local threads = tonumber(os.getenv("BENCH_THREADS"))
  for index, token in ipairs(bench_read_lines(os.getenv("BENCH_TOKENS"))) do
    if (index - 1) % threads == id then table.insert(pool, token) end
  end
end

function request()
  local token = table.remove(pool, 1)
  -- An empty pool only after unexpected answers (a lost family): the request is then refused and counted.
  return wrk.format("POST", "/token", headers, "grant_type=refresh_token&refresh_token=" .. (token or "exhausted"))
end

function response(status, headers, body)
  local successor = status == 200 and body:match('"refresh_token":"([^"]+)"')
  if successor then
    completed = completed + 1
    table.insert(pool, successor)
  else
    unexpected = unexpected + 1
  end
end
