-- Shared by the scripts of bench/http/run: counts answers that were not the expected kind per thread, and
-- prints one RESULT line of JSON at the end (rate, p50, p99, unexpected answers, socket errors).
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

unexpected = 0
completed = 0

function done(summary, latency, requests)
  local bad, good = 0, 0
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("unexpected") or 0)
    good = good + (thread:get("completed") or 0)
  end
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"seconds":%.3f,"rate":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"unexpected":%d,"completed":%d,"http_errors":%d,"socket_errors":%d}\n',
    summary.requests, seconds, summary.requests / seconds, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    bad, good, e.status, e.connect + e.read + e.write + e.timeout))
end

-- Counts a token endpoint's answer: 200 with an access token is completed, anything else unexpected.
function count_token_answer(status, body)
  if status == 200 and body:find('"access_token"', 1, true) then
    completed = completed + 1
  else
    unexpected = unexpected + 1
  end
end

-- The non-empty lines of a file (tokens, cookies).
function bench_read_lines(path)
  local lines = {}
  for line in io.lines(path) do
    if #line > 0 then table.insert(lines, line) end
  end
  return lines
end
