-- Shared by every scenario: the bearer token, a per-thread random seed, and one JSON line
-- with the figures the harness reads (latencies in microseconds).
local common = {}

local counter = 0

function common.bearer(variable)
  local token = os.getenv(variable or "BENCH_TOKEN")
  if token and token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
  end
end

function common.setup(thread)
  counter = counter + 1
  thread:set("thread_number", counter)
end

function common.seed()
  math.randomseed(os.time() * 100 + (thread_number or 0))
end

-- Distinct ids across every in-flight request: thread t of n walks the ids t, t + n, t + 2n...
-- (two writes to one task at once would rightly get 412, which is not what is measured).
local next_offset = nil

function common.next_id()
  local first = tonumber(os.getenv("BENCH_FIRST_ID"))
  local last = tonumber(os.getenv("BENCH_LAST_ID"))
  local threads = tonumber(os.getenv("BENCH_WRK_THREADS") or "1")
  local span = last - first + 1
  if next_offset == nil then
    next_offset = ((thread_number or 1) - 1) + threads * math.random(0, math.floor(span / threads) - 1)
  end
  local id = first + (next_offset % span)
  next_offset = next_offset + threads
  return id
end

function common.random_id()
  local first = tonumber(os.getenv("BENCH_FIRST_ID"))
  local last = tonumber(os.getenv("BENCH_LAST_ID"))
  return math.random(first, last)
end

function common.done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write,
    errors.status, errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end

return common
