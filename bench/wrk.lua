-- wrk script for bench/run.py. Arguments (after --): a request file and the expected status.
-- The file's first line is "COOKIE<TAB>value" (may be empty); every other line is
-- "METHOD<TAB>path<TAB>body". Each connection cycles through the requests from a random start,
-- sending the session cookie (the last one the server sent, as a browser would: but see
-- response() for a form's redirect); any status
-- other than the expected one counts as an error (a redirect to the login page is a failure,
-- not a success). done() prints one JSON line.

local threads = {}
local count = 0

function setup(thread)
  count = count + 1
  thread:set("thread_number", count)
  table.insert(threads, thread)
end

local lines = {}
local position = 1
local cookie = ""
local posts = false
local sent = 0
local started = os.time()
expected = 200
unexpected = 0

function init(args)
  expected = tonumber(args[2])
  for line in io.lines(args[1]) do
    local first, second, third = line:match("^([^\t]*)\t([^\t]*)\t?(.*)$")
    if first == "COOKIE" then
      cookie = second
    elseif first then
      table.insert(lines, {first, second, third})
    end
  end
  posts = lines[1][1] == "POST"  -- one page a run: all its requests are of one method
  math.randomseed(os.time() * 100 + thread_number)
  position = math.random(#lines)
end

-- Formatted on each request with the thread's cookie as it now is: like a browser, the
-- thread keeps the session cookie the server last sent.
function request()
  position = position % #lines + 1
  local method, path, body = lines[position][1], lines[position][2], nil
  local headers = {["User-Agent"] = "infusion-bench"}
  if cookie ~= "" then headers["Cookie"] = cookie end
  if method == "POST" then
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    -- The body ends with the form key's field: each post a key of its own, as each form the
    -- page draws has (the same key again records nothing): the run's start, the thread and
    -- the post's number.
    sent = sent + 1
    body = string.format("%sw%x-%d-%d", lines[position][3], started, thread_number, sent)
  end
  return wrk.format(method, path, headers, body)
end

function response(status, headers, body)
  if status ~= expected then
    unexpected = unexpected + 1
  end
  -- A form's redirect carries its message ("Reading at 10:05 recorded.") in the cookie; a
  -- browser follows it to the page, which shows the message and takes it out again. Not
  -- followed here, the messages would pile up in the cookie, one a post, and each request
  -- would read and write them all (a recording with a few hundred of them cost twice as
  -- much CPU as one with none: bench/RESULTS.md, Stop 25). So the cookie stays as it was.
  if posts and status >= 300 and status < 400 then return end
  local set = headers["Set-Cookie"]
  local value = set and set:match("^(session=[^;]*)")
  if value then cookie = value end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("unexpected")
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, "status_errors": %d, ' ..
    '"unexpected_status": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read,
    errors.write, errors.timeout, errors.status, bad, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
