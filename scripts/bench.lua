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
-- The fleet mix (scripts/bench's download-url-fleet, upload-url-fleet, download-url-new): with
-- BENCH_TOKEN_USES=K set, a device has several lines in the data file, one per token (in
-- order), and uses each token for K requests before it takes its next one, as a fleet's devices
-- replace their short-lived tokens; run number BENCH_RUN (from 0) of the server takes the
-- device's tokens BENCH_RUN * BENCH_RUN_TOKENS + 1 to (BENCH_RUN + 1) * BENCH_RUN_TOKENS, so no
-- run meets a token the server verified in an earlier one. A device past its last token keeps
-- using it: counted as `reused`, and scripts/bench says the rate is not the fleet's then.
--
-- Prints one line for scripts/bench:
--   RESULT requests=N duration_us=N errors=N p50_us=N p99_us=N p999_us=N status_errors=N reused=N
-- (errors: socket errors, timeouts and answers of 400 or more; status_errors: the last alone)

local operation, rows, requests, position, pause = nil, {}, {}, 0, 0
local threads_set_up = 0
-- The fleet mix: per device (rows[i]), its requests by token (tokens[i][j]) and its uses so far.
local uses_per_token, tokens, used = 0, {}, {}
-- A global: the main state reads it from each thread in done().
reused = 0
local threads = {}

-- Runs in wrk's main state once per thread, before that thread's init.
function setup(thread)
  thread:set("thread_index", threads_set_up)
  threads_set_up = threads_set_up + 1
  threads[#threads + 1] = thread
end

function init(args)
  operation = args[1]
  uses_per_token = tonumber(os.getenv("BENCH_TOKEN_USES") or "0") or 0
  local run = tonumber(os.getenv("BENCH_RUN") or "0") or 0
  local run_tokens = tonumber(os.getenv("BENCH_RUN_TOKENS") or "1") or 1
  local all, by_device = {}, {}
  for line in io.lines(args[2]) do
    local tenant, device, token, file = line:match("^(%S+) (%S+) (%S+) (%S+)$")
    if tenant then
      local row = by_device[device]
      if row == nil then
        row = { tenant = tenant, device = device, token = token, file = file, tokens = {} }
        by_device[device] = row
        all[#all + 1] = row
      end
      row.tokens[#row.tokens + 1] = token
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
    requests[i] = build(row, row.token)
    if uses_per_token > 0 then
      tokens[i], used[i] = {}, 0
      for j = run * run_tokens + 1, math.min((run + 1) * run_tokens, #row.tokens) do
        tokens[i][#tokens[i] + 1] = build(row, row.tokens[j])
      end
      if #tokens[i] == 0 then
        error("device " .. row.device .. " has no token left for run " .. run)
      end
    end
  end
  pause = tonumber(args[3] or "0")
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
  position = math.random(#rows)
end

local upload_body = '{"file_name": "bench/upload.bin", "size": 1048576, '
  .. '"sha256": "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"}'

function request()
  position = position % #rows + 1
  if uses_per_token == 0 then
    return requests[position]
  end
  local own = tokens[position]
  local next = math.floor(used[position] / uses_per_token) + 1
  used[position] = used[position] + 1
  if next > #own then
    reused = reused + 1
    next = #own
  end
  return own[next]
end

function build(row, token)
  local scope = "/v1/tenants/" .. row.tenant .. "/devices/" .. row.device
  local headers = { ["Authorization"] = "Bearer " .. token }
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
  local reused_all = 0
  for _, thread in ipairs(threads) do
    reused_all = reused_all + (tonumber(thread:get("reused")) or 0)
  end
  io.write(string.format(
    "RESULT requests=%d duration_us=%d errors=%d p50_us=%d p99_us=%d p999_us=%d status_errors=%d reused=%d\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), e.status, reused_all))
end
