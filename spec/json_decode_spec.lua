-- The native JSON decoder (issue 21) against lua-cjson: the same values for
-- every event of the corpus and for generated edge cases, except the
-- documented number rule (integers that fit stay integers) and invalid
-- UTF-8 (which cjson accepts and gloaming refuses).
local gloaming = require "gloaming"
local json = require "gloaming.json"
local bench = require "gloaming.bench" -- count_allocations
local cjson = require("cjson").new()

local support = require "spec.gateway_support"
local F = gloaming.EventTypeFlags

local CORPUS = os.getenv("GLOAMING_CORPUS") or "../shared/corpus/gateway-20k.jsonl.gz"

-- Structural equality of a native value and cjson's: nil when equal, else
-- the path where they differ.
local function differ(n, c, path)
  path = path or "$"
  if math.type(n) == "integer" then
    -- cjson: the float nearest the same decimal, which int -> float gives
    if math.type(c) ~= "float" or c ~= n + 0.0 then return path end
    return nil
  end
  if math.type(n) == "float" then
    if math.type(c) ~= "float" or n ~= c or 1 / n ~= 1 / c then return path end
    return nil
  end
  if type(n) ~= type(c) then return path end
  if type(n) ~= "table" then return n ~= c and path or nil end
  for k, v in pairs(n) do
    local d = differ(v, c[k], path .. "." .. tostring(k))
    if d then return d end
  end
  for k in pairs(c) do
    if n[k] == nil then return path .. "." .. tostring(k) .. " (missing)" end
  end
  return nil
end

local function same_as_cjson(text)
  local n, msg = json.decode(text)
  assert(n ~= nil, ("native refused %q: %s"):format(text:sub(1, 200), tostring(msg)))
  local c = cjson.decode(text)
  local d = differ(n, c)
  assert(d == nil, ("%q differs at %s"):format(text:sub(1, 200), tostring(d)))
  return n
end

describe("the native decoder", function()
  it("gives lua-cjson's values for every event of the corpus", function()
    local p = assert(io.popen("env -u LD_PRELOAD gzip -dc '" .. CORPUS .. "'"))
    local count, ints = 0, 0
    for line in p:lines() do
      if line:find("%S") then
        local v = same_as_cjson(line)
        count = count + 1
        if math.type(v.op) == "integer" then ints = ints + 1 end
      end
    end
    p:close()
    assert.are.equal(20000, count)
    assert.are.equal(count, ints) -- op is an integer now
  end)

  it("gives lua-cjson's values for the edge cases", function()
    local cases = {
      "{}", "[]", "[[]]", '{"a":{}}', '""', "0", "-0", "1", "-1", "0.0", "-0.0",
      "1e2", "1E2", "1e+2", "1e-2", "-1.5e-300", "1e400", "-1e400", "5e-324", "1e-400",
      "9007199254740993", "9223372036854775807", "9223372036854775808",
      "-9223372036854775808", "-9223372036854775809", "123456789012345678901234567890",
      "0.1", "3.141592653589793", "true", "false", "null", "[null,true,false]",
      '"\\"\\\\\\/\\b\\f\\n\\r\\t"', '"\\u0000"', '"\\u001f"', '"\\u00e9\\u20ac"', '"\\uFFFF"',
      '"\\ud83d\\ude00"', '"\\uD834\\uDD1E"', '"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"',
      '{"a":1,"a":2}', '{"a":{"b":1},"a":[1]}', ' \t\r\n{ "a" : [ 1 , 2 ] } \n',
      '{"":0}', '{"k\\u0041":"v"}', ("["):rep(1000) .. ("]"):rep(1000),
      '[' .. ('{"a":'):rep(499) .. '1' .. ('}'):rep(499) .. ']',
    }
    -- every escape of a single character, and a long escaped string (the
    -- scratch buffer grows)
    for c = 0, 0x7f do cases[#cases + 1] = ('"\\u%04x"'):format(c) end
    cases[#cases + 1] = '"' .. ('\\n\\u00e9x'):rep(5000) .. '"'
    for _, text in ipairs(cases) do same_as_cjson(text) end
  end)

  it("keeps integers integers and everything else floats", function()
    local v = json.decode('{"type":0,"big":9223372036854775807,"over":9223372036854775808,' ..
      '"neg":-9223372036854775808,"z":-0,"f":1.0,"e":1e2,"id":"1234567890123456789"}')
    assert.are.equal("integer", math.type(v.type))
    assert.are.equal("0", tostring(v.type))
    assert.are.equal(math.maxinteger, v.big)
    assert.are.equal("float", math.type(v.over))
    assert.are.equal(math.mininteger, v.neg)
    assert.are.equal("float", math.type(v.z))
    assert.are.equal(-math.huge, 1 / v.z)
    assert.are.equal("float", math.type(v.f))
    assert.are.equal("float", math.type(v.e))
    assert.are.equal("1234567890123456789", v.id) -- snowflakes stay strings
    assert.are.equal(json.null, json.decode("null"))
    assert.are.equal(cjson.null, json.decode("[null]")[1])
  end)

  it("refuses what is not JSON with the byte where it went wrong", function()
    local cases = {
      { '{"a":1', "unexpected end of text at byte 7" },
      { '{"a" 1}', "unexpected character at byte 6" },
      { "[1,]", "unexpected character at byte 4" },
      { "[01]", "invalid number at byte 3" },
      { "[1.]", "invalid number at byte 4" },
      { "[-]", "invalid number at byte 3" },
      { "tru", "unexpected end of text at byte 4" },
      { "nul!", "unexpected character at byte 4" },
      { '"a\\x"', "invalid escape in string at byte 3" },
      { '"a\\u12"', "invalid escape in string at byte 3" },
      { '"\\ud800"', "unpaired surrogate escape in string at byte 2" },
      { '"\\ud800\\u0041"', "unpaired surrogate escape in string at byte 2" },
      { '"\\udc00\\ud800"', "unpaired surrogate escape in string at byte 2" },
      { '"a\xff"', "invalid UTF-8 in string at byte 3" },
      { '"\xc0\xaf"', "invalid UTF-8 in string at byte 2" },       -- overlong
      { '"\xed\xa0\x80"', "invalid UTF-8 in string at byte 2" },   -- a surrogate
      { '"\xf4\x90\x80\x80"', "invalid UTF-8 in string at byte 2" }, -- > U+10FFFF
      { '"\xe2\x82"', "invalid UTF-8 in string at byte 2" },       -- cut short
      { '"a\nb"', "unescaped control character in string at byte 3" },
      { "1 2", "text after the JSON value at byte 3" },
      { "[1]\0", "unexpected NUL byte at byte 4" },
      { "", "unexpected end of text at byte 1" },
      { ("["):rep(1001) .. ("]"):rep(1001), "nesting deeper than 1000 at byte 1001" },
    }
    for _, case in ipairs(cases) do
      local v, msg, code = json.decode(case[1])
      assert.are.same({ nil, case[2], "EDECODE" }, { v, msg, code }, ("%q"):format(case[1]))
    end
    -- cjson too refuses each of them, except invalid UTF-8 and the NUL
    assert.is_false(pcall(cjson.decode, ("["):rep(1001) .. ("]"):rep(1001)))
    assert.is_true(pcall(cjson.decode, '"a\xff"'))
  end)

  it("raises on an argument that is not a string", function()
    assert.has_error(function() json.decode({}) end)
    assert.has_error(function() json.decode(nil) end)
  end)

  it("allocates nothing but the values it returns", function()
    -- A warm decode of a corpus event: each table is one allocation, plus
    -- one for its array part and one for its hash part when it has them,
    -- plus one per long string (short ones are interned, and alive in the
    -- first result); no table grows (the size hints were right) and no
    -- scratch memory is taken.
    local p = assert(io.popen("env -u LD_PRELOAD gzip -dc '" .. CORPUS .. "' | head -300"))
    local lines = {}
    for line in p:lines() do lines[#lines + 1] = line end
    p:close()
    local function expected(v)
      if type(v) == "string" then return #v > 40 and 1 or 0 end
      if type(v) ~= "table" then return 0 end
      local n, narr, nhash = 1, #v, 0
      for k, x in pairs(v) do
        if math.type(k) ~= "integer" or k < 1 or k > narr then nhash = nhash + 1 end
        n = n + expected(x)
      end
      return n + (narr > 0 and 1 or 0) + (nhash > 0 and 1 or 0)
    end
    local checked = 0
    for _, line in ipairs(lines) do
      if line:find('"t":"MESSAGE_CREATE"', 1, true) then
        -- warms the hints and interns the keys (twice: a hint settles on
        -- the largest of the containers that share it)
        local first = json.decode(line)
        json.decode(line)
        local count, v = bench.count_allocations(json.decode, line)
        assert.are.equal(expected(v), count)
        assert.is_truthy(first)
        checked = checked + 1
      end
    end
    assert.is_true(checked > 10)
  end)
end)

describe("events", function()
  it("carry integers as integers, and floats with decoder = \"cjson\"", function()
    support.virtual(function()
      for _, decoder in ipairs { "native", "cjson" } do
        local testing = require "gloaming.testing"
        local fake = testing.gateway { shards = 1 }
        local shard = support.shard(fake, { decoder = decoder })
        support.next_of(shard, F.READY)
        fake:dispatch(0, "MESSAGE_CREATE", { content = "hi", type = 0, flags = 4 })
        local ev = support.next_of(shard, F.MESSAGE_CREATE)
        assert.are.equal(decoder == "native" and "integer" or "float", math.type(ev.data.type))
        assert.are.equal(4, ev.data.flags)
        shard:close()
        fake:stop()
      end
    end)
  end)

  it("fail with EDECODE and the byte of a bad escape in d", function()
    support.virtual(function()
      local fake, shard = support.ready_shard({ shards = 1 })
      local seq = fake:dispatch(0, "TYPING_START", { channel_id = "1" }) + 1
      fake:inject(0, ('{"op":0,"t":"MESSAGE_CREATE","s":%d,"d":{"content":"a\\qb"}}'):format(seq),
        "payload")
      local ev, msg, code = shard:next_event(F.MESSAGE_CREATE, 30)
      assert.are.same({ nil, "MESSAGE_CREATE: cannot decode d: invalid escape in string at byte 14",
        "EDECODE" }, { ev, msg, code })
      shard:close()
    end)
  end)

  it("fail with EDECODE for invalid UTF-8 in d (gloaming.parse; the websocket refuses it first)",
    function()
      local ev, msg, code = gloaming.parse('{"op":0,"t":"MESSAGE_CREATE","s":1,"d":{"content":"a\xffb"}}',
        F.MESSAGE_CREATE)
      assert.are.same({ nil, "MESSAGE_CREATE: cannot decode d: invalid UTF-8 in string at byte 14",
        "EDECODE" }, { ev, msg, code })
      ev = assert(gloaming.parse('{"op":0,"t":"MESSAGE_CREATE","s":1,"d":{"type":19}}', F.MESSAGE_CREATE))
      assert.are.equal("integer", math.type(ev.data.type))
    end)

  it("and REST replies follow the same number rule", function()
    require("gloaming.testing").run(function()
      local fake = require("gloaming.testing").gateway { shards = 3 }
      local http = gloaming.http.new("Bot " .. fake.token, { base_url = fake.http_url .. "/api/v10" })
      local info = assert(http:gateway_bot())
      assert.are.equal("integer", math.type(info.shards))
      assert.are.equal("3", tostring(info.shards))
      http:close()
    end, 30)
  end)

  it("refuse an unknown decoder", function()
    local b = gloaming.Config.new("abc", 0):builder()
    assert.has_error(function() b:decoder("simdjson") end, 'decoder must be "native" or "cjson"')
    assert.are.equal("native", b:build():decoder())
    assert.are.equal("cjson", b:decoder("cjson"):build():decoder())
    assert.has_error(function() gloaming.Bot.new { token = "abc", decoder = "fast" } end)
  end)
end)
