#!/bin/sh
# Validates the web client harness (xmpp-client-ws.mjs, converse.mjs) against a known-good server:
# a private Prosody (Debian package prosody: mod_bosh, mod_websocket) on free loopback ports, run
# as the current user from a temporary directory. Not part of the test suite; the system Prosody
# service is never touched, and the private one is stopped on every exit path.
#
# usage: tests/web/prosody-check.sh [ws|converse|all|serve]   (default all; needs `npm ci` in
# tests/web). serve: only run Prosody (users alice/alice-pw, bob/bob-pw) until interrupted.
# KEEP=1 keeps the temporary directory; NO_BLOCKLIST=1: see below; SHOTS=DIR makes converse.mjs
# save screenshots (and page HTML on failure) there.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
what=${1:-all}
command -v prosody >/dev/null || { echo "prosody-check: apt-get install prosody" >&2; exit 2; }
[ -d "$here/node_modules" ] || { echo "prosody-check: run 'npm ci' in $here" >&2; exit 2; }

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

tmp=$(mktemp -d /tmp/prosody-check.XXXXXX)
pid=""
cleanup() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	if [ "${KEEP:-}" = "" ]; then rm -rf "$tmp"; else echo "prosody-check: kept $tmp"; fi
}
trap cleanup EXIT INT TERM

c2s=$(free_port)
http=$(free_port)
while [ "$http" = "$c2s" ]; do http=$(free_port); done
mkdir -p "$tmp/data"
# NO_BLOCKLIST=1 leaves out XEP-0191, to see how the harness reports a server without it
# (Converse.js 14 opens no chat until it has fetched the blocklist).
extra_mods=', "blocklist"'
[ -z "${NO_BLOCKLIST:-}" ] || extra_mods=""

cat >"$tmp/prosody.cfg.lua" <<EOF
-- private Prosody for tests/web/prosody-check.sh
run_as_root = true
pidfile = "$tmp/prosody.pid"
data_path = "$tmp/data"
log = { { levels = { min = "debug" }, to = "file", filename = "$tmp/prosody.log" } }
interfaces = { "127.0.0.1" }
c2s_ports = { $c2s }
c2s_direct_tls_ports = { }
s2s_ports = { }
s2s_direct_tls_ports = { }
component_ports = { }
http_ports = { $http }
http_interfaces = { "127.0.0.1" }
https_ports = { }
modules_enabled = { "roster", "saslauth", "tls", "disco", "ping", "presence", "posix",
	"bosh", "websocket", "http"$extra_mods }
modules_disabled = { "s2s" }
authentication = "internal_plain"
allow_unencrypted_plain_auth = true
c2s_require_encryption = false
s2s_require_encryption = false
consider_bosh_secure = true
consider_websocket_secure = true
cross_domain_bosh = true
cross_domain_websocket = true
http_default_host = "localhost"
VirtualHost "localhost"
EOF

ctl() { prosodyctl --config "$tmp/prosody.cfg.lua" "$@" >>"$tmp/prosodyctl.log" 2>&1; }
ctl register alice localhost alice-pw
ctl register bob localhost bob-pw

prosody --config "$tmp/prosody.cfg.lua" -F >"$tmp/prosody.stdout" 2>&1 &
pid=$!

# wait for both listeners
i=0
until python3 -c "import socket
for p in ($c2s, $http):
    socket.create_connection(('127.0.0.1', p), timeout=0.5).close()" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "prosody-check: prosody did not start" >&2
		tail -30 "$tmp/prosody.stdout" "$tmp/prosody.log" >&2 || true
		exit 1
	fi
	sleep 0.1
done
echo "prosody-check: prosody pid $pid, c2s $c2s, http $http, dir $tmp"

rc=0
if [ "$what" = serve ]; then
	echo "prosody-check: serving until interrupted"
	wait "$pid" || true
	pid=""
	exit 0
fi
if [ "$what" = ws ] || [ "$what" = all ]; then
	echo "== xmpp-client-ws.mjs"
	node "$here/xmpp-client-ws.mjs" "ws://127.0.0.1:$http/xmpp-websocket" localhost \
		alice alice-pw bob bob-pw || rc=1
fi
if [ "$what" = converse ] || [ "$what" = all ]; then
	echo "== converse.mjs"
	node "$here/converse.mjs" --bosh "http://127.0.0.1:$http/http-bind" \
		--ws "ws://127.0.0.1:$http/xmpp-websocket" --domain localhost \
		--user1 alice@localhost --pw1 alice-pw --user2 bob@localhost --pw2 bob-pw \
		${SHOTS:+--screenshots "$SHOTS"} || rc=1
fi
if [ $rc -ne 0 ]; then
	echo "prosody-check: FAILED; prosody log tail:" >&2
	tail -40 "$tmp/prosody.log" >&2 || true
fi
echo "prosody-check: $([ $rc -eq 0 ] && echo passed || echo FAILED)"
exit $rc
