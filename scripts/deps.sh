#!/bin/sh
# Installs the Debian packages baton needs: "run" for building and running batond,
# "test" for that plus the test suite, "bench" for the servers bench/ compares with. Only
# missing packages are installed, so this is fast on a prepared machine; it needs root (or
# sudo) only when something is missing.
set -eu

RUN_PKGS="build-essential pkg-config libexpat1-dev libssl-dev libsqlite3-dev libinih-dev
libunistring-dev libhttp-parser-dev libwslay-dev libc-ares-dev openssl"
TEST_PKGS="python3 python3-slixmpp python3-pytest clang clang-format libclang-rt-14-dev sqlite3 w3m chromium
sip-tester biboumi ngircd prosody"

BENCH_PKGS="prosody ejabberd lua-dbi-sqlite3 kamailio kamailio-sqlite-modules sip-tester"

case "${1:-run}" in
run) want="$RUN_PKGS" ;;
test) want="$RUN_PKGS $TEST_PKGS" ;;
bench) want="$RUN_PKGS $BENCH_PKGS" ;;
*) echo "usage: $0 run|test|bench" >&2; exit 2 ;;
esac

# The web-client tests (tests/web) need Node.js >= 20.10 with npm; Debian 12's nodejs is 18,
# so the machine's own Node.js is used and only checked here.
if [ "${1:-run}" = test ]; then
	v=$(node -p 'process.versions.node' 2>/dev/null || echo 0)
	major=${v%%.*}
	minor=${v#*.}
	minor=${minor%%.*}
	if [ "$major" -lt 20 ] || { [ "$major" -eq 20 ] && [ "$minor" -lt 10 ]; } ||
		! command -v npm >/dev/null; then
		echo "deps.sh: the web-client tests need Node.js >= 20.10 and npm (found: $v)" >&2
		exit 1
	fi
fi

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "installing:$missing"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
