-- wrk script for hack/bench.sh: counts every response whose status is not
-- the expected one, and prints one machine-readable RESULT line.
--
--   wrk ... -s hack/bench/status.lua URL -- EXPECTED_STATUS

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  expected = tonumber(args[1]) or 200
  responses = 0
  unexpected = 0
  first_unexpected = 0
end

function response(status, headers, body)
  responses = responses + 1
  if status ~= expected then
    unexpected = unexpected + 1
    if first_unexpected == 0 then
      first_unexpected = status
    end
  end
end

function done(summary, latency, requests)
  local bad, counted, seen = 0, 0, 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("unexpected")
    counted = counted + t:get("responses")
    if seen == 0 then
      seen = t:get("first_unexpected")
    end
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d responses=%d duration_us=%d unexpected=%d first_unexpected_status=%d " ..
    "socket_errors=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, counted, summary.duration, bad, seen,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
