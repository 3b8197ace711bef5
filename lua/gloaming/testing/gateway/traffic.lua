--- Background traffic, for soaks and load: fake:traffic(rate) dispatches
-- a TYPING_START to every valid session `rate` times a second (a session
-- between connections keeps them for its resume, as any dispatch), and
-- fake:burst(shard_id, count) dispatches `count` at once to one shard.
local gloaming = require "gloaming"

local function typing(fake, n)
  return ('{"channel_id":"%s","user_id":"%s","timestamp":%d,"n":%d}')
    :format(fake.traffic_channel, fake.tester.id, os.time(), n)
end

return function(Fake)
  --- Starts (rate > 0, events a second per session) or stops (0) the
  -- background traffic; a new rate replaces the old one.
  function Fake:traffic(rate)
    if type(rate) ~= "number" or rate < 0 or rate ~= rate or rate == math.huge then
      error("bad argument #1 to 'traffic' (a finite rate, not negative, expected)", 2)
    end
    if self.traffic_task then self.traffic_task:cancel() end
    self.traffic_task = nil
    if rate == 0 then return true end
    self.traffic_channel = self.traffic_channel or self.new_id()
    self.traffic_task = gloaming.spawn(function()
      local n, next_at = 0, gloaming.now()
      while not self.stopped do
        n = n + 1
        for _, session in pairs(self.shard_sessions) do
          if session.valid then session:dispatch("TYPING_START", typing(self, n)) end
        end
        -- paced by the clock, not by the work: a busy fake catches up
        next_at = next_at + 1 / rate
        if not gloaming.sleep(math.max(0, next_at - gloaming.now())) then return end
      end
    end)
    return true
  end

  --- Dispatches count TYPING_STARTs to the shard's session at once;
  -- returns the last one's sequence number.
  function Fake:burst(shard_id, count)
    if math.type(count) ~= "integer" or count < 1 then
      error("bad argument #2 to 'burst' (a positive integer expected)", 2)
    end
    local session = self:_session_of(shard_id)
    self.traffic_channel = self.traffic_channel or self.new_id()
    local seq
    for n = 1, count do seq = session:dispatch("TYPING_START", typing(self, n)) end
    return seq
  end
end
