-- wrk script of scripts/bench: one operation of the API, each request for the next device of
-- the data file (round robin from a random start, so the connections spread over the devices).
-- Each wrk thread takes its own share of the devices (every BENCH_WRK_THREADS-th), so that,
-- as in a fleet, a device has one request in flight at a time, not two from two threads.
--
-- wrk ... -s scripts/bench.lua URL -- OPERATION DATA_FILE
-- wrk ... -s scripts/bench-paced.lua URL -- OPERATION DATA_FILE DELAY_MS
--   OPERATION  download-url | upload-url | list | complete
--   DATA_FILE  one line per device: tenant device token file_id
--   DELAY_MS   pause of each connection between two requests (a fixed rate below the peak)
--
-- Prints one line for scripts/bench:
--   RESULT requests=N duration_us=N errors=N p50_us=N p99_us=N p999_us=N status_errors=N
-- (errors: socket errors, timeouts and answers of 400 or more; status_errors: the last alone)

local operation, rows, requests, position, pause = nil, {}, {}, 0, 0
local threads_set_up = 0

-- Runs in wrk's main state once per thread, before that thread's init.
function setup(thread)
  thread:set("thread_index", threads_set_up)
  threads_set_up = threads_set_up + 1
end

function init(args)
  operation = args[1]
  local all = {}
  for line in io.lines(args[2]) do
    local tenant, device, token, file = line:match("^(%S+) (%S+) (%S+) (%S+)$")
    if tenant then
      all[#all + 1] = { tenant = tenant, device = device, token = token, file = file }
    end
  end
  if #all == 0 then
    error("no devices in " .. args[2])
  end
  local threads = tonumber(os.getenv("BENCH_WRK_THREADS") or "1") or 1
  local index = thread_index or 0
  for i, row in ipairs(all) do
    if threads <= 1 or #all < threads or (i - 1) % threads == index then
      rows[#rows + 1] = row
    end
  end
  -- Every request is built once here: the load generator shares the cores with the server
  -- and the databases, and must spend as little of them as it can (pgbench's prepared
  -- statements, the peer of the ratio, cost it next to nothing too).
  for i, row in ipairs(rows) do
    requests[i] = build(row)
  end
  pause = tonumber(args[3] or "0")
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
  position = math.random(#rows)
end

local upload_body = '{"file_name": "bench/upload.bin", "size": 1048576, '
  .. '"sha256": "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"}'

function request()
  position = position % #rows + 1
  return requests[position]
end

function build(row)
  local scope = "/v1/tenants/" .. row.tenant .. "/devices/" .. row.device
  local headers = { ["Authorization"] = "Bearer " .. row.token }
  if operation == "download-url" then
    headers["Content-Type"] = "application/json"
    return wrk.format("POST", scope .. "/files/download-url", headers, '{"file_name": "bench/seed-0.txt"}')
  elseif operation == "upload-url" then
    headers["Content-Type"] = "application/json"
    return wrk.format("POST", scope .. "/files/upload-url", headers, upload_body)
  elseif operation == "list" then
    return wrk.format("GET", scope .. "/files?limit=20", headers)
  elseif operation == "complete" then
    return wrk.format("POST", "/v1/tenants/" .. row.tenant .. "/files/" .. row.file .. "/complete", headers)
  end
  error("unknown operation " .. tostring(operation))
end

-- `delay` is defined by scripts/bench-paced.lua only: when defined, wrk schedules a timer
-- before every request, even for a pause of 0.
function paced_delay()
  return pause
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d errors=%d p50_us=%d p99_us=%d p999_us=%d status_errors=%d\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), e.status))
end
