-- One request shape for wrk, from the environment (scripts/bench/compare and scale set these):
--   BENCH_METHOD  GET, POST, PUT, ...
--   BENCH_PATH    the path and query
--   BENCH_BODY    the body, if any
--   BENCH_RUN     a token unique to this invocation, so names never repeat across runs
--   BENCH_PICKS   optional: a file of lines "MODEL_ID NAME"; each request picks one at random
--   BENCH_MAX_VERSION  optional: the highest version number "{vnum}" may pick (default 3)
--   BENCH_OFFSET  optional: where this invocation's "{i}" numbers start; give each invocation its
--                 own (scripts/bench/compare does), or a second one sends the first one's again
--   BENCH_THREADS optional: wrk's thread count, so that "{i}" stays dense (default 2)
-- In the path and body, "{n}" becomes a name unique to this run, thread and request, "{i}" a
-- number unique to this invocation, thread and request, the threads' numbers interleaved so
-- that together they count up like one training loop's steps (offset + (request - 1) * threads
-- + thread), "{r3}" a
-- random 1, 2 or 3 (which version a tag moves to), "{model}" and "{name}" a random line's model
-- id and name from BENCH_PICKS, "{vnum}" a random version number.
local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/"
local body = os.getenv("BENCH_BODY")
local run = os.getenv("BENCH_RUN") or tostring(os.time())
local picks_file = os.getenv("BENCH_PICKS")
local max_version = tonumber(os.getenv("BENCH_MAX_VERSION") or "3")
local offset = tonumber(os.getenv("BENCH_OFFSET") or "0")
local thread_count = tonumber(os.getenv("BENCH_THREADS") or "2")
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
local picks = {}
function init(args)
  prefix = run .. "-" .. tostring(thread_id or 0)
  math.randomseed(os.time() + (thread_id or 0))
  if picks_file and picks_file ~= "" then
    for line in io.lines(picks_file) do
      local id, name = line:match("^(%S+)%s+(%S+)$")
      if id then picks[#picks + 1] = {id, name} end
    end
  end
end

-- A text is split once, at startup, into its literal pieces and its placeholders; a request's
-- text is then one table.concat. (Filling by a gsub pass over the whole text per placeholder cost
-- wrk about 4 ms of CPU for a log-batch body of 70 KB, as much as the server spent answering it,
-- and on two cores that CPU is taken from the server being measured.) Every occurrence of a
-- placeholder in one text gets the same value, as the passes gave it.
local placeholders = {n = true, r3 = true, i = true, model = true, name = true, vnum = true}

local function compile(text)
  local parts, position = {}, 1
  while true do
    local first, last, key = text:find("{(%w+)}", position)
    if not first then break end
    if placeholders[key] then
      parts[#parts + 1] = text:sub(position, first - 1)
      parts[#parts + 1] = {key}
    else
      parts[#parts + 1] = text:sub(position, last)
    end
    position = last + 1
  end
  parts[#parts + 1] = text:sub(position)
  return parts
end

local function fill(parts)
  local values, pick = {}, nil
  local function value(key)
    if values[key] then return values[key] end
    local v
    if key == "n" then v = prefix .. "-" .. counter
    elseif key == "r3" then v = tostring(math.random(1, 3))
    elseif key == "i" then v = string.format("%d", offset + (counter - 1) * thread_count + (thread_id or 1))
    elseif key == "vnum" then v = tostring(math.random(1, max_version))
    elseif #picks == 0 then v = "{" .. key .. "}"
    else
      pick = pick or picks[math.random(1, #picks)]
      v = key == "model" and pick[1] or pick[2]
    end
    values[key] = v
    return v
  end
  local out = {}
  for index, part in ipairs(parts) do
    out[index] = type(part) == "table" and value(part[1]) or part
  end
  return table.concat(out)
end

local path_parts = compile(path)
local body_parts = body and compile(body)

function request()
  counter = counter + 1
  return wrk.format(method, fill(path_parts), headers, body_parts and fill(body_parts))
end
