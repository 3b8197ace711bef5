--- `gloaming demo`: scripts/ping_bot.lua against the built-in fake gateway,
-- with two shards: a !ping, a /ping and a !join, then a clean shutdown.
local gloaming = require "gloaming"
local cli = require "gloaming.cli"
local json = require "gloaming.json"

-- Snowflakes whose (id >> 22) % 2 picks the shard: even for 0, odd for 1.
local snowflake = gloaming.testing.snowflake

local function find_script(name)
  local here = package.searchpath("gloaming.cli", package.path)
  local dir = here and here:match("^(.*)/[^/]*$") or "."
  for _, candidate in ipairs {
    dir .. "/scripts/" .. name,          -- installed by LuaRocks
    dir .. "/../../scripts/" .. name,    -- a checkout
    "scripts/" .. name,
  } do
    local f = io.open(candidate)
    if f then
      f:close()
      return candidate, candidate:match("^(.*)/[^/]*$")
    end
  end
  error("cannot find " .. name, 0)
end

local function say(fmt, ...) io.stdout:write(fmt:format(...), "\n"); io.stdout:flush() end

-- Waits (a few seconds at most) until check() returns something; the
-- fake looks again whenever it records a payload or a request.
local function eventually(fake, check, what)
  return fake:wait_until(check, 5) or error("the demo waited in vain for " .. what, 0)
end

local function demo()
  local guild_a = { id = snowflake(0), name = "Gloaming Garden",
    channels = { { id = snowflake(10), name = "general", type = 0 },
                 { id = snowflake(12), name = "Lounge", type = 2 } } }
  local guild_b = { id = snowflake(1), name = "Dusk Diner",
    channels = { { id = snowflake(11), name = "general", type = 0 } } }
  local fake = gloaming.testing.gateway { shards = 2, max_concurrency = 2, guilds = { guild_a, guild_b } }
  say("gloaming demo: a fake Discord gateway at %s (REST at %s), 2 shards", fake.url, fake.http_url)

  local script, dir = find_script("ping_bot.lua")
  package.path = dir .. "/?.lua;" .. package.path
  local closes = {}
  local bot_task = gloaming.spawn(function()
    return assert(loadfile(script)) {
      token = fake.token,
      gateway_url = fake.url,
      api_url = fake.http_url .. "/api/v10",
      on_bot = function(bot)
        bot:on("GATEWAY_CLOSE", function(event)
          closes[#closes + 1] = ("shard %s closed with %d (%s)"):format(
            tostring(event.shard), event.data.code, event.data.initiator)
        end)
      end,
    }
  end)
  for shard = 0, 1 do
    assert(fake:wait_ready(shard, 10))
    say("  shard %d: READY", shard)
  end

  local general = guild_a.channels[1].id
  say('\n-> a user says "!ping" in #general of %s (shard 0)', guild_a.name)
  fake:dispatch(0, "MESSAGE_CREATE", {
    channel_id = general, guild_id = guild_a.id, content = "!ping",
    author = { id = snowflake(99), username = "tester" } })
  local reply = eventually(fake, function() return fake:messages(general)[1] end, "the !ping reply")
  say("<- the bot answered through REST: POST /channels/%s/messages %s", general, json.encode(reply))

  say("\n-> a user runs /ping in %s (shard 1)", guild_b.name)
  local id = fake:interact(1, "ping")
  local answer = eventually(fake, function() return fake:interaction_responses(id)[1] end, "the /ping answer")
  say("<- the bot answered the interaction: %s", json.encode(answer))

  local lounge = guild_a.channels[2].id
  say('\n-> a user says "!join %s" in #general of %s', lounge, guild_a.name)
  fake:dispatch(0, "MESSAGE_CREATE", {
    channel_id = general, guild_id = guild_a.id, content = "!join " .. lounge,
    author = { id = snowflake(99), username = "tester" } })
  local voice = eventually(fake, function() return fake:received(0, 4)[1] end, "the voice state update")
  say("<- the gateway received op 4 (Update Voice State): %s", voice.raw)

  say("\nclosing: every shard closes with 1000, handlers see GATEWAY_CLOSE")
  bot_task:cancel()
  local ok, err = bot_task:wait(10)
  if ok == false then error(err, 0) end
  table.sort(closes)
  for _, line in ipairs(closes) do say("  %s", line) end
  fake:stop()
  say("done: the bot shut down cleanly")
end

return {
  usage = [[
usage: gloaming demo

Runs scripts/ping_bot.lua against the built-in fake gateway, with two
shards: a !ping, a /ping and a !join, then a clean shutdown. Nothing
leaves 127.0.0.1.
]],
  run = function() return cli.run_main(demo) end,
}
