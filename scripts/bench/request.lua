-- One request shape for wrk, from the environment (scripts/bench/compare sets these):
--   BENCH_METHOD  GET, POST, PUT, ...
--   BENCH_PATH    the path and query
--   BENCH_BODY    the body, if any; "{n}" becomes a name unique to this run, thread and request,
--                 "{r3}" a random 1, 2 or 3 (which version a tag moves to)
--   BENCH_RUN     a token unique to this invocation, so names never repeat across runs
local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/"
local body = os.getenv("BENCH_BODY")
local run = os.getenv("BENCH_RUN") or tostring(os.time())
local headers = {}
if body and body ~= "" then
  headers["Content-Type"] = "application/json"
else
  body = nil
end

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local counter = 0
local prefix
function init(args)
  prefix = run .. "-" .. tostring(thread_id or 0)
  math.randomseed(os.time() + (thread_id or 0))
end

function request()
  counter = counter + 1
  local b = body
  if b then
    b = b:gsub("{n}", prefix .. "-" .. counter):gsub("{r3}", tostring(math.random(1, 3)))
  end
  local p = path:gsub("{n}", prefix .. "-" .. counter)
  return wrk.format(method, p, headers, b)
end
