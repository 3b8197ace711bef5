--- Test certificates, made with the openssl command: a CA, and leaf
-- certificates it signs. Used by the fake gateway's TLS mode and by specs.
local certs = {}

local function run(cmd)
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  if not ok then error("openssl failed: " .. cmd, 2) end
end

local function tmpdir()
  local p = io.popen("mktemp -d -t gloaming-certs.XXXXXX")
  local dir = p:read("*l")
  p:close()
  return dir
end

--- Makes a CA and a certificate signed by it.
-- opts.names: subject alternative names (default { "DNS:localhost",
-- "IP:127.0.0.1", "IP:::1" }); opts.dir: where to write (default: a new
-- temporary folder); opts.days: the leaf's validity (default 2; -1 makes
-- one that expired yesterday). Returns { dir, ca_file, cert_file, key_file }.
function certs.make(opts)
  opts = opts or {}
  local dir = opts.dir or tmpdir()
  local names = table.concat(opts.names or { "DNS:localhost", "IP:127.0.0.1", "IP:::1" }, ",")
  local ca_key, ca = dir .. "/ca.key", dir .. "/ca.pem"
  local key, csr, cert = dir .. "/server.key", dir .. "/server.csr", dir .. "/server.pem"
  local ext = dir .. "/server.ext"
  if not io.open(ca, "r") then
    run(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 " ..
      "-subj '/CN=gloaming test CA' -addext basicConstraints=critical,CA:TRUE " ..
      "-addext keyUsage=critical,keyCertSign,cRLSign -keyout %s -out %s"):format(ca_key, ca))
  end
  local f = assert(io.open(ext, "w"))
  f:write("subjectAltName=", names, "\nbasicConstraints=CA:FALSE\n",
    "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
  f:close()
  run(("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '/CN=gloaming test' " ..
    "-keyout %s -out %s"):format(key, csr))
  run(("openssl x509 -req -in %s -CA %s -CAkey %s -CAcreateserial -days %d -extfile %s -out %s")
    :format(csr, ca, ca_key, math.tointeger(opts.days or 2), ext, cert))
  return { dir = dir, ca_file = ca, cert_file = cert, key_file = key }
end

--- Removes a folder made by certs.make (once: safe to call again).
function certs.remove(c)
  if c and c.dir and c.dir:match("gloaming%-certs") and not c.removed then
    c.removed = true
    os.execute("rm -rf '" .. c.dir .. "'")
  end
end

return certs
