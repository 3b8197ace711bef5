-- TLS against OpenSSL's own tools in other processes: the protocol floor
-- (RFC 8996: TLS 1.2 at least, on every context) and the certificate
-- diagnostics a user meets.
local gloaming = require "gloaming"
local testing = require "gloaming.testing"
local certs = require "gloaming.testing.certs"
local core = require "gloaming.core"

-- Debian's OpenSSL 3 refuses TLS 1.1 at its default security level; level
-- 0 lets it speak 1.1, so these probes can tell whether gloaming refuses.
local OLD_TLS = { "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0" }

--- Starts `openssl s_server` with args, serving c's certificate; returns
-- its port and a stop function. Its first lines say where it listens.
local function s_server(c, args)
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = "'" .. a .. "'" end
  -- popen's shell prints its pid, then becomes openssl
  local p = assert(io.popen(("echo $$; exec openssl s_server -accept 0 -cert '%s' -key '%s' %s 2>&1")
    :format(c.cert_file, c.key_file, table.concat(quoted, " ")), "r"))
  local pid = tonumber(p:read("l"))
  local port
  for line in p:lines() do
    port = line:match("^ACCEPT .*:(%d+)$")
    if port then break end
  end
  assert(port, "openssl s_server did not start")
  return tonumber(port), function()
    os.execute("kill " .. pid .. " 2>/dev/null")
    p:close()
  end
end

--- `openssl s_client` with args against port, in another process, without
-- blocking the loop: its exit code and output.
local function s_client(port, args)
  local argv = { "openssl", "s_client", "-connect", "127.0.0.1:" .. port, "-brief" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local code, out, err = gloaming.process.run(argv, { stdin = "", timeout = 10 })
  return code, (out or "") .. (err or "")
end

describe("TLS", function()
  it("is refused below 1.2 by gloaming's client, which openssl's own client accepts", function()
    local c = certs.make()
    local port, stop = s_server(c, { "-www", table.unpack(OLD_TLS) })
    finally(function()
      stop()
      certs.remove(c)
    end)
    testing.run(function()
      -- the server does speak 1.1: openssl's client gets through
      local code, out = s_client(port, { "-CAfile", c.ca_file, table.unpack(OLD_TLS) })
      assert.are.equal(0, code, out)
      assert.matches("Protocol version: TLSv1.1", out)
      -- gloaming's REST client refuses it, and says why
      local http = gloaming.http.new("tok", { base_url = ("https://127.0.0.1:%d/api"):format(port),
        tls = { ca_file = c.ca_file }, timeout = 5 })
      local body, msg, ecode = http:request("GET", "/gateway/bot")
      assert.is_nil(body)
      assert.are.equal("ETLS", ecode)
      assert.matches("TLS 1.2", msg)
      assert.matches("older", msg)
      http:close()
    end, 20)
  end)

  it("is refused below 1.2 by gloaming's server, which openssl's 1.2 client reaches", function()
    local c = certs.make()
    finally(function() certs.remove(c) end)
    testing.run(function()
      local listener = assert(core.listen { port = 0, tls = { cert_file = c.cert_file, key_file = c.key_file } })
      gloaming.spawn(function()
        while true do
          local conn = listener:accept()
          if not conn then return end
          gloaming.spawn(function() conn:receive(5) end)
        end
      end)
      local code, out = s_client(listener:port(), { "-CAfile", c.ca_file, "-tls1_2" })
      assert.are.equal(0, code, out)
      assert.matches("Protocol version: TLSv1.2", out)
      code, out = s_client(listener:port(), { "-CAfile", c.ca_file, table.unpack(OLD_TLS) })
      assert.are_not.equal(0, code, out)
      assert.is_nil(out:find("Protocol version: TLSv1.1", 1, true), out)
      listener:close()
    end, 20)
  end)

  it("says a certificate expired when it did", function()
    local c = certs.make { days = -1 }
    finally(function() certs.remove(c) end)
    testing.run(function()
      local listener = assert(core.listen { port = 0, tls = { cert_file = c.cert_file, key_file = c.key_file } })
      gloaming.spawn(function()
        local conn = listener:accept()
        if conn then conn:receive(5) end
      end)
      local http = gloaming.http.new("tok", { base_url = ("https://127.0.0.1:%d"):format(listener:port()),
        tls = { ca_file = c.ca_file }, timeout = 5 })
      assert.are.same({ nil, "the server's certificate expired", "ETLSVERIFY" }, { http:request("GET", "/x") })
      http:close()
      listener:close()
    end, 20)
  end)
end)
