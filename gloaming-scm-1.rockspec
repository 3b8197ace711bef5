rockspec_format = "3.0"
package = "gloaming"
version = "scm-1"
source = {
  url = "git+https://github.com/gloaming/gloaming.git",
}
description = {
  summary = "A Discord gateway runtime: C on libuv, bots in Lua 5.4",
  detailed = [[
gloaming keeps Discord gateway shards connected (TLS websocket, zlib-stream
or zstd-stream, identify, resume, heartbeats, rate limits, identify queue) in
C on libuv and exposes them to Lua 5.4 coroutines. It ships a fake Discord
gateway for your bot's specs, a REPL on live shards, and resume across
restarts.]],
  homepage = "https://github.com/gloaming/gloaming",
  license = "MIT (builds link Debian's wolfSSL, GPL-2+)",
}
dependencies = {
  "lua >= 5.4, < 5.5",
  -- Debian's lua-cjson; declared provided by .luarocks-config.lua offline
  "lua-cjson",
}
external_dependencies = {
  LIBUV = { header = "uv.h" },
  WOLFSSL = { header = "wolfssl/ssl.h" },
  ZLIB = { header = "zlib.h" },
  ZSTD = { header = "zstd.h" },
  LIBEDIT = { header = "editline/readline.h" },
}
build = {
  type = "make",
  -- llhttp is compiled from Debian's node-llhttp sources into the build
  -- folder; GM_NO_DEPS keeps the Makefile from running apt.
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    GM_NO_DEPS = "1",
    BUILD = "build-rock",
  },
  install_variables = {
    INST_LIBDIR = "$(LIBDIR)",
    INST_LUADIR = "$(LUADIR)",
    BUILD = "build-rock",
    GM_NO_DEPS = "1",
  },
  install = {
    bin = { gloaming = "scripts/gloaming" },
  },
}
