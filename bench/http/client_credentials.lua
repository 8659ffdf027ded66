-- POST /token, grant_type=client_credentials, HTTP Basic client authentication (BENCH_BASIC: "id:secret"
-- base64-encoded) and BENCH_SCOPE. An answer that is not 200 with an access token is unexpected.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")
wrk.method = "POST"
wrk.path = "/token"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC")
wrk.body = "grant_type=client_credentials&scope=" .. (os.getenv("BENCH_SCOPE") or "")

function response(status, headers, body)
  count_token_answer(status, body)
end
