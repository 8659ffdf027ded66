-- The authorization code grant as signed-in browsers with remembered consent drive it: GET /authorize
-- (BENCH_AUTHORIZE: the path and query, PKCE S256) with the next of the session cookies in BENCH_COOKIES
-- (one per line, one user each: a user may hold only 10 unused codes for a client) answers 302 with a code,
-- which the next request on the thread redeems at POST /token with the verifier (BENCH_VERIFIER) and the
-- client's Basic credentials. `completed` counts exchanges (200 with tokens); each needs one /authorize too.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")
local cookies = bench_read_lines(os.getenv("BENCH_COOKIES"))
local turn = 0
local token_headers = {
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC"),
}
local redeem = "grant_type=authorization_code&redirect_uri=" .. os.getenv("BENCH_REDIRECT") ..
  "&code_verifier=" .. os.getenv("BENCH_VERIFIER") .. "&code="
local codes = {}

function request()
  local code = table.remove(codes, 1)
  if code then return wrk.format("POST", "/token", token_headers, redeem .. code) end
  turn = turn % #cookies + 1
  return wrk.format("GET", os.getenv("BENCH_AUTHORIZE"), { ["Cookie"] = cookies[turn] })
end

function response(status, headers, body)
  if status == 302 or status == 303 then
    local location = headers["Location"] or headers["location"] or ""
    local code = location:match("[?&]code=([^&]+)")
    if code then table.insert(codes, code) else unexpected = unexpected + 1 end
  else
    count_token_answer(status, body)
  end
end
