-- The sessions file under attack: a planted symlink, and files of valid
-- JSON in the wrong shape.
local gloaming = require "gloaming"
local json = require "gloaming.json"
local sessions = require "gloaming.sessions"
local helpers = require "spec.helpers"

local core = gloaming.core

local function my_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("l"):match("^(%d+)")
  f:close()
  return pid
end

local function listing(dir)
  local p = assert(io.popen("ls -A '" .. dir .. "'"))
  local names = {}
  for name in p:lines() do names[#names + 1] = name end
  p:close()
  table.sort(names)
  return names
end

describe("the sessions file", function()
  local dir
  before_each(function() dir = helpers.tmpdir() end)
  after_each(function() helpers.rmrf(dir) end)

  it("is written through a fresh temporary file, never through a planted symlink", function()
    local path, victim = dir .. "/sessions.json", dir .. "/victim"
    helpers.write_file(victim, "keep")
    os.execute("chmod 644 '" .. victim .. "'")
    -- the name the old code used: path .. ".tmp." .. pid
    local planted = path .. ".tmp." .. my_pid()
    assert(os.execute("ln -s '" .. victim .. "' '" .. planted .. "'"))
    assert(core.write_file_atomic(path, "new", 384))
    assert.are.same({ "keep", 420 }, { helpers.read_file(victim), core.file_mode(victim) }) -- 0644
    assert.are.same({ "new", 384 }, { helpers.read_file(path), core.file_mode(path) })
    -- no temporary file left behind, the planted link untouched
    assert.are.same({ "sessions.json", "sessions.json.tmp." .. my_pid(), "victim" }, listing(dir))
  end)

  it("skips entries of the wrong shape with a warning, and keeps the good ones", function()
    local token = core.secret("some-token")
    local path = dir .. "/s.json"
    local good = { session_id = "abc", sequence = 7, resume_url = "wss://example.test" }
    local function load(data)
      helpers.write_file(path, type(data) == "string" and data or json.encode(data))
      return sessions.load(path, token, 4)
    end
    local head = { version = 1, token = token:fingerprint(), total = 4 }
    local function with(shards)
      local d = {}
      for k, v in pairs(head) do d[k] = v end
      d.shards = shards
      return d
    end
    local expected = { [0] = { id = "abc", sequence = 7, resume_url = "wss://example.test" } }
    assert.are.same(expected, load(with { ["0"] = good }))
    -- the whole file in a wrong shape: nothing, no error
    for _, data in ipairs { "[1,2]", "5", '"text"', "null", with(5), with("x"), with { 1, 2 } } do
      local ok, got = pcall(load, data)
      assert.is_true(ok, got)
      assert.are.same({}, got)
    end
    -- bad entries beside a good one
    local bad = {
      ["1"] = 5, ["2"] = "x", ["3"] = { session_id = 1, sequence = 2 },
      ["x"] = good, ["-1"] = good, ["9"] = good, ["1.5"] = good,
    }
    bad["0"] = good
    local ok, got = pcall(load, with(bad))
    assert.is_true(ok, got)
    assert.are.same(expected, got)
    for _, e in ipairs { { session_id = "a", sequence = -1 }, { session_id = "a", sequence = "7" },
      { session_id = "a", sequence = 7, resume_url = 5 }, { session_id = "", sequence = 7 } } do
      ok, got = pcall(load, with { ["0"] = e })
      assert.is_true(ok, got)
      assert.are.same({}, got)
    end
  end)

  it("warns about the entries it skips, naming them", function()
    local token = core.secret("some-token")
    local path = dir .. "/s.json"
    helpers.write_file(path, json.encode { version = 1, token = token:fingerprint(), total = 2,
      shards = { ["0"] = 5 } })
    local out = helpers.run_gloaming(([[
      local s = require("gloaming.sessions").load(%q, require("gloaming").core.secret("some-token"), 2)
      print("loaded", next(s))
    ]]):format(path), nil, "GLOAMING_LOG=warn")
    assert.matches("warn .*sessions file [^\n]*: skipped the entry for shard 0", out)
    assert.matches("loaded\tnil", out)
  end)
end)

describe("the sessions file's messages", function()
  local log = require "gloaming.log"
  local dir, warnings
  before_each(function()
    dir = helpers.tmpdir()
    warnings = {}
    stub(log, "warn", function(fmt, ...) warnings[#warnings + 1] = fmt:format(...) end)
  end)
  after_each(function()
    log.warn:revert()
    helpers.rmrf(dir)
  end)

  -- What loading path said (one warning at most), and that it loaded nothing.
  local function load_says(path)
    warnings = {}
    assert.are.same({}, sessions.load(path, core.secret("some-token"), 1))
    assert.is_true(#warnings <= 1, table.concat(warnings, "\n"))
    return warnings[1]
  end

  it("say why a file is ignored", function()
    local token = core.secret("some-token")
    local good = json.encode { version = 1, token = token:fingerprint(), total = 1,
      shards = { ["0"] = { session_id = "abc", sequence = 7 } } }
    local path = dir .. "/s.json"
    helpers.write_file(path, good:sub(1, #good - 10))
    assert.are.equal("sessions file " .. path .. " is not valid JSON (truncated?): ignored", load_says(path))
    helpers.write_file(path, "")
    assert.are.equal("sessions file " .. path .. " is not valid JSON (truncated?): ignored", load_says(path))
    assert.are.equal("sessions file " .. dir .. " is a directory: ignored", load_says(dir))
    assert.are.equal("sessions file " .. path .. "/x cannot be read: Not a directory: ignored", load_says(path .. "/x"))
    assert.are.equal("sessions file /proc/self/mem cannot be read: Input/output error: ignored",
      load_says("/proc/self/mem"))
    assert.are.equal("sessions file /proc/version is not valid JSON (truncated?): ignored", load_says("/proc/version"))
    for _, text in ipairs { "[1,2]", '{"version":2}', "5" } do
      helpers.write_file(path, text)
      assert.are.equal("sessions file " .. path .. " is not a sessions file (wrong shape): ignored", load_says(path))
    end
    -- absent: the first start, nothing to say
    assert.is_nil(load_says(dir .. "/none.json"))
    helpers.write_file(path, good)
    warnings = {}
    assert.are.same({ [0] = { id = "abc", sequence = 7 } }, sessions.load(path, token, 1))
    assert.are.same({}, warnings)
  end)

  it("say why a write failed, naming the step and its error", function()
    assert.are.same({ nil, "cannot create a temporary file in " .. dir .. "/nodir: No such file or directory", "EIO" },
      { core.write_file_atomic(dir .. "/nodir/s.json", "x") })
    assert.are.same({ nil, "cannot create a temporary file in /proc: No such file or directory", "EIO" },
      { core.write_file_atomic("/proc/version", "x") })
    assert.are.same({ nil, "is a directory", "EIO" }, { core.write_file_atomic(dir, "x") })
    -- check_writable finds the same without writing anything
    assert.are.same({ nil, "is a directory", "EIO" }, { core.check_writable(dir) })
    assert.are.same({ true }, { core.check_writable(dir .. "/s.json") })
    assert.are.same({}, listing(dir))
  end)

  it("a failed save keeps the last snapshot, so the next save tries again", function()
    local token = core.secret("some-token")
    local path = dir .. "/nodir/s.json"
    local text, err = sessions.save(path, {}, token, 1, nil)
    assert.is_nil(text)
    assert.are.equal("cannot write sessions to " .. path .. ": cannot create a temporary file in "
      .. dir .. "/nodir: No such file or directory", err)
    assert(os.execute("mkdir '" .. dir .. "/nodir'"))
    text, err = sessions.save(path, {}, token, 1, text)
    assert.is_nil(err)
    assert.are.equal(text, helpers.read_file(path))
  end)
end)
