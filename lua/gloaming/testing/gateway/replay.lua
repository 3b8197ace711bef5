--- Replay mode, for benchmarks: many dispatches (a JSON-lines corpus)
-- streamed to one connection as one valid stream.
--
-- Everything is numbered and encoded (compressed, when the connection
-- negotiated it) before the first byte is written, so a benchmark's clock
-- measures the client and not the fake. The payloads are read and encoded
-- in batches, so that only the encoded stream (about a fifth of the text
-- with zlib-stream) stays in memory, and they are not kept for resumes: a
-- Resume from before the end of a replay gets op 9.
local options = require "gloaming.options"

local replay = {}

local BATCH = 256 -- payloads per encode_payloads call
replay.END_EVENT = "GLOAMING_REPLAY_END"

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- Reads the non-blank lines of a file (gunzipped with the gzip command
-- when the name ends in .gz). Returns an iterator.
local function file_lines(path)
  local f, err
  if path:match("%.gz$") then
    -- LD_PRELOAD (a sanitizer runtime under `make test-asan`) stays ours.
    f, err = io.popen("env -u LD_PRELOAD gzip -dc " .. shell_quote(path), "r")
  else
    f, err = io.open(path, "rb")
  end
  if not f then error("replay: cannot read " .. path .. ": " .. tostring(err), 0) end
  local lines = f:lines()
  return function()
    while true do
      local line = lines()
      if line == nil then
        local ok = f:close()
        if not ok then error("replay: cannot read " .. path, 0) end
        return nil
      end
      line = line:gsub("\r$", "")
      if line:find("%S") then return line end
    end
  end
end

--- A function that starts a pass over the payloads of source (a list of
-- JSON strings, or a path) and returns an iterator.
local function open_source(source)
  if type(source) == "table" then
    return function()
      local i = 0
      return function()
        i = i + 1
        return source[i]
      end
    end
  end
  if type(source) ~= "string" then
    error("replay needs a list of JSON payloads or the path of a JSON-lines file", 3)
  end
  return function() return file_lines(source) end
end

--- The payload with its envelope's `"s":null` set to seq. The envelope's
-- null must come before "d" (as in Discord's own output and the corpus):
-- that finds it without parsing the data.
local function fill_sequence(payload, seq, line)
  local s_at = payload:find('"s":null', 1, true)
  local d_at = payload:find('"d":', 1, true)
  if not s_at or (d_at and d_at < s_at) then
    error(('replay: payload %d has no "s":null before "d"'):format(line), 0)
  end
  return payload:sub(1, s_at - 1) .. '"s":' .. seq .. payload:sub(s_at + 8)
end

--- Streams the payloads to conn (which got READY or RESUMED), `passes`
-- times (default 1) with rising sequence numbers, then the marker
-- dispatch GLOAMING_REPLAY_END with d = { count = payloads streamed }.
-- Returns { count, first_seq, last_seq, end_seq (the marker's), bytes
-- (the encoded stream, without the marker) }.
local OPTIONS = { passes = { "integer", 1, options.positive } }

function replay.run(conn, source, opts)
  -- fake:replay and conn:replay tail-call this: level 1 is their caller
  opts = options.check(opts, OPTIONS, "replay")
  local session = conn.session
  if conn.ended or not (session and conn.streaming) then
    error("replay needs a connection that got READY or RESUMED", 3)
  end
  local passes = opts.passes
  local start = open_source(source)
  local first_seq = session.seq + 1
  local chunks, batch, bytes, seq = {}, {}, 0, session.seq

  local function encode_batch()
    if #batch == 0 then return end
    local encoded, err = conn.raw:encode_payloads(batch)
    if not encoded then error("replay: " .. tostring(err), 0) end
    chunks[#chunks + 1] = encoded
    bytes = bytes + #encoded
    batch = {}
  end

  for _ = 1, passes do
    local line = 0
    for payload in start() do
      line = line + 1
      seq = seq + 1
      batch[#batch + 1] = fill_sequence(payload, seq, line)
      if #batch == BATCH then encode_batch() end
    end
  end
  encode_batch()

  -- Nothing above yields, so no other payload went through the
  -- compression context between the encoding and these writes.
  session:skip_to(seq)
  for _, chunk in ipairs(chunks) do
    local ok, err = conn.raw:write_raw(chunk)
    if not ok then error("replay: " .. tostring(err), 0) end
  end
  local count = seq - first_seq + 1
  local end_seq = session:dispatch(replay.END_EVENT, ('{"count":%d}'):format(count))
  return { count = count, first_seq = first_seq, last_seq = seq, end_seq = end_seq, bytes = bytes }
end

return replay
