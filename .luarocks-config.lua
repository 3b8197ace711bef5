-- Used by `luarocks --lua-version=5.4 make` (see README): Debian's lua-cjson
-- is installed by apt, not as a rock, so it is declared provided, and no
-- rocks server is asked (installs work offline).
rocks_provided = { ["lua-cjson"] = "2.1.0-1" }
rocks_servers = {}
