#!/bin/sh
# Installs every Debian package that gloaming's build, tests and tools need.
# Fast when everything is present: it only calls apt when a package is missing.
set -eu

PACKAGES="
  build-essential pkg-config ca-certificates openssl
  lua5.4 liblua5.4-dev lua-cjson lua-cjson-dev
  libuv1-dev libwolfssl-dev zlib1g-dev libzstd-dev
  node-llhttp
  libedit-dev
  lua-busted lua-check luarocks
  libcmocka-dev
  libhiredis-dev redis-server
  python3 python3-websockets
  clang libclang-rt-14-dev
  tmux curl
  prometheus python3-prometheus-client
"

missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done

if [ -z "$missing" ]; then
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "gloaming: missing Debian packages:$missing" >&2
  echo "run as root: sudo $0" >&2
  exit 1
fi

echo "gloaming: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
