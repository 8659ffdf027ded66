-- GET BENCH_PATH (default /healthz), with BENCH_AUTHORIZATION as the Authorization header when set. No
-- response() callback: wrk counts non-2xx/3xx answers itself (http_errors).
dofile(os.getenv("BENCH_DIR") .. "/common.lua")
wrk.method = "GET"
wrk.path = os.getenv("BENCH_PATH") or "/healthz"
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization then wrk.headers["Authorization"] = authorization end
