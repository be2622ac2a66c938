#!/bin/bash
# bench/run.sh: starts one XMPP server (baton, prosody or ejabberd) fresh on loopback in a temp
# dir, with plaintext SASL PLAIN allowed and no rate limits, registers users in band (XEP-0077),
# runs xmpp-load scenarios against it and prints one JSON line per scenario on stdout.
# Invariant: every server this script starts is stopped by its pid when the script exits, and
# nothing of the system's own prosody/ejabberd (config, spool, ports, service) is touched.
#
# usage: bench/run.sh baton|prosody|ejabberd|null [scenario...]
# `null` is build/null-relay, no server at all: it forwards the chat bytes and parses nothing,
# so its chat figure is the ceiling loopback TCP and the generator put on any server here
# (default scenario: chat; it has no archive, offline store or rooms).
# scenarios: login idle chat chat-mam offline muc idle-tls (default: all but idle-tls)
#   chat      1:1 chat, archive (MAM) off: ramp to the highest rate with p99 < 50 ms, no loss
#   chat-mam  the same with the archive on
#   (chat clients use XEP-0198 when the server offers it, as mobile clients do: an ack asked
#   for every message sent and given for every <r/>; Prosody with mod_smacks, ejabberd with
#   mod_stream_mgmt, so all three do the same work per message)
# environment: USERS (1000), IDLE_USERS (10000), IDLE_SETTLE_S (15), STEP_S (3), START_RATE (1000),
#   SRC_ADDRS (127.0.0.1..127.0.0.8 for idle), BATON_BUILD (build/), KEEP=1 keeps the temp dir.
# Prosody and ejabberd come from Debian's packages; if one is missing the script says which
# package to install (`apt-get install prosody ejabberd`) and exits 3 without installing it.

set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
server=${1:?usage: bench/run.sh baton|prosody|ejabberd|null [scenario...]}
shift
scenarios=${*:-login idle chat chat-mam offline muc}
[ "$server" = null ] && scenarios=${*:-chat}

USERS=${USERS:-1000}
IDLE_USERS=${IDLE_USERS:-10000}
IDLE_SETTLE_S=${IDLE_SETTLE_S:-15}
STEP_S=${STEP_S:-3}
START_RATE=${START_RATE:-1000}
SRC_ADDRS=${SRC_ADDRS:-127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8}
BUILD=${BATON_BUILD:-$root/build}
LOAD=$BUILD/xmpp-load
PW=benchpw

log() { echo "run.sh[$server]: $*" >&2; }

# Each connection is one fd on each side: raise the soft limit as far as the hard one allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
fdmax=$(ulimit -n)
case " $scenarios " in
*" idle"*)
	# The generator and the server each hold one fd per connection, plus their own files.
	if [ $((IDLE_USERS + 1000)) -gt "$fdmax" ]; then
		log "IDLE_USERS=$IDLE_USERS needs more open files than this shell may have ($fdmax," \
			"the hard limit): raise it (ulimit -Hn, as root) or lower IDLE_USERS"
		exit 3
	fi ;;
esac

case $server in
baton)
	[ -x "$BUILD/batond" ] || { log "build/batond missing: run make"; exit 3; } ;;
prosody)
	command -v prosody >/dev/null || { log "missing Debian package: prosody (apt-get install prosody)"; exit 3; } ;;
null)
	case " $scenarios " in *" chat-mam "* | *" offline "* | *" muc "*)
		log "null relays 1:1 chat only (no archive, offline store or rooms)"; exit 2 ;;
	esac
	[ -x "$BUILD/null-relay" ] || make -s -C "$here" BUILD="$BUILD" >&2 || exit 3 ;;
ejabberd)
	[ -d /usr/lib/x86_64-linux-gnu/ejabberd-23.01 ] || ls -d /usr/lib/*/ejabberd-* >/dev/null 2>&1 ||
		{ log "missing Debian package: ejabberd (apt-get install ejabberd)"; exit 3; } ;;
*)
	echo "usage: bench/run.sh baton|prosody|ejabberd|null [scenario...]" >&2; exit 2 ;;
esac
[ -x "$LOAD" ] || make -s -C "$here" BUILD="$BUILD" >&2 || exit 3

tmp=$(mktemp -d /tmp/bench-"$server".XXXXXX)
spid=
stop_server() {
	[ -n "$spid" ] || return 0
	kill -TERM "$spid" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$spid" 2>/dev/null || break; sleep 0.2; done
	kill -KILL "$spid" 2>/dev/null
	wait "$spid" 2>/dev/null
	spid=
}
cleanup() {
	stop_server
	[ "${KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
	for _ in $(seq 300); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		kill -0 "$spid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# ---- one function per server: start_<name> ARCHIVE(on|off) DIR PORT; sets spid ----

start_baton() {
	local archive=true
	[ "$1" = off ] && archive=false
	"$BUILD/batond" --data "$2" --domain localhost --c2s "127.0.0.1:$3" --c2s-tls "" \
		--allow-plaintext --set limits.rate=0 --set c2s.registration=open \
		--set c2s.registration_rate=0 \
		--set archive.enabled=$archive --set offline.quota=0 \
		--set limits.send_queue=64M --set limits.auth_timeout=300s \
		--set server.log_level=warn 2>"$2/batond.log" &
	spid=$!
}

start_null() {
	"$BUILD/null-relay" "$3" localhost 2>"$2/null-relay.log" &
	spid=$!
}

start_prosody() {
	local mam=
	[ "$1" = on ] && mam='"mam";'
	mkdir -p "$2/data"
	cat >"$2/prosody.cfg.lua" <<EOF
-- generated by baton bench/run.sh: loopback benchmark, plaintext PLAIN, no limits
run_as_root = true
daemonize = false
pidfile = "$2/prosody.pid"
data_path = "$2/data"
admin_socket = "$2/prosody.sock"
log = { { levels = { min = "warn" }, to = "file", filename = "$2/prosody.log" } }
network_backend = "epoll"
interfaces = { "127.0.0.1" }
c2s_ports = { $3 }
c2s_direct_tls_ports = { }
s2s_ports = { }
http_ports = { }
https_ports = { }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
allow_registration = true
min_seconds_between_registrations = 0
registration_throttle_max = 1000000
registration_whitelist = { "127.0.0.1" }
storage = { archive = "sql" }
sql = { driver = "SQLite3", database = "$2/prosody.sqlite" }
default_archive_policy = true
archive_expires_after = "never"
modules_enabled = { "roster"; "saslauth"; "disco"; "ping"; "register"; "offline"; "posix"; "smacks"; $mam }
modules_disabled = { "s2s"; "limits" }
VirtualHost "localhost"
Component "conference.localhost" "muc"
	restrict_room_creation = false
	muc_room_locking = false
	muc_room_default_history_length = 0
EOF
	prosody --config "$2/prosody.cfg.lua" -F >"$2/prosody.stdout" 2>&1 &
	spid=$!
}

start_ejabberd() {
	local mam=
	[ "$1" = on ] && mam="  mod_mam:
    default: always
    db_type: mnesia"
	local lib
	lib=$(ls -d /usr/lib/*/ejabberd-* | head -1)
	mkdir -p "$2/spool"
	cat >"$2/ejabberd.yml" <<EOF
# generated by baton bench/run.sh: loopback benchmark, plaintext PLAIN, no shapers
hosts:
  - localhost
loglevel: warning
log_rotate_count: 0
listen:
  -
    port: $3
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: 262144
    shaper: none
    access: c2s
    starttls_required: false
    backlog: 4096
auth_method: internal
auth_password_format: plain
disable_sasl_mechanisms: []
registration_timeout: infinity
max_fsm_queue: 1000000
acl:
  local:
    user_regexp: ""
access_rules:
  c2s:
    allow: all
  register:
    allow: all
shaper: {}
shaper_rules:
  max_user_sessions: 10
  max_user_offline_messages: 1000000
  c2s_shaper: none
modules:
  mod_disco: {}
  mod_offline:
    access_max_user_messages: max_user_offline_messages
  mod_ping: {}
  mod_roster: {}
  mod_stream_mgmt: {}
  mod_register:
    ip_access: all
    access: register
    welcome_message: {}
  mod_muc:
    host: conference.localhost
    access: all
    access_create: all
    access_persistent: all
    history_size: 0
    default_room_options:
      mam: false
$mam
EOF
	# erl directly (not ejabberdctl, which would switch to the system's ejabberd user and
	# its /etc config): no distribution, so no epmd and no cookie either.
	ERL_LIBS=$(dirname "$lib") EJABBERD_CONFIG_PATH="$2/ejabberd.yml" \
		EJABBERD_LOG_PATH="$2/ejabberd.log" ERL_MAX_PORTS=$((fdmax + 1000)) \
		ERL_CRASH_DUMP="$2/erl_crash.dump" \
		erl -noinput +K true +P 1000000 -mnesia dir "\"$2/spool\"" -s ejabberd \
		>"$2/ejabberd.stdout" 2>&1 &
	spid=$!
}

# ---- scenarios ----

port=
load() {
	"$LOAD" --port "$port" --domain localhost --prefix u --password $PW --server "$server" \
		--server-pid "$spid" "$@"
}

run_scenario() {
	case $1 in
	login) load --scenario login --users "$USERS" --concurrency 100 --label login ;;
	# Memory is read once the last login has been idle for IDLE_SETTLE_S: a connection that
	# just logged in still holds its login's working memory (baton gives an idle stream's
	# parser back after 5-10 s, ejabberd hibernates idle processes), and idle means idle.
	idle) load --scenario idle --users "$IDLE_USERS" --src-addrs "$SRC_ADDRS" --duration 0 \
		--settle "$IDLE_SETTLE_S" --concurrency 200 --label idle ;;
	idle-tls) load --scenario idle --users "$IDLE_USERS" --src-addrs "$SRC_ADDRS" --tls \
		--duration 0 --settle "$IDLE_SETTLE_S" --concurrency 200 --label idle-tls ;;
	chat | chat-mam) load --scenario chat --users "$USERS" --rate "$START_RATE" --ramp \
		--duration "$STEP_S" --drain 5 --sm --label "$1" ;;
	offline) load --scenario offline --users "$USERS" --backlog 20 --settle 3 \
		--login-timeout 120 --label offline ;;
	muc) load --scenario muc --users "$USERS" --room-size 50 --rate 100 --ramp \
		--duration "$STEP_S" --drain 5 --label muc ;;
	*) log "unknown scenario $1"; return 2 ;;
	esac
}

# Scenarios grouped by the archive setting they need; one fresh server per group.
group_off= group_on=
for s in $scenarios; do
	case $s in
	chat-mam | offline) group_on="$group_on $s" ;;
	*) group_off="$group_off $s" ;;
	esac
done

status=0
for archive in off on; do
	[ $archive = off ] && group=$group_off || group=$group_on
	[ -n "$group" ] || continue
	dir="$tmp/$archive"
	mkdir -p "$dir"
	port=$(free_port)
	nusers=$USERS
	case " $group " in *" idle"*) [ "$IDLE_USERS" -gt "$nusers" ] && nusers=$IDLE_USERS ;; esac
	log "starting $server (archive $archive) on 127.0.0.1:$port in $dir"
	"start_$server" $archive "$dir" "$port"
	if ! wait_port "$port"; then
		log "server did not start; its log:"
		tail -20 "$dir"/*.log "$dir"/*.stdout >&2 2>/dev/null
		exit 1
	fi
	t0=$(date +%s.%N)
	reg=$(load --scenario register --users "$nusers" --concurrency 50 --login-timeout 600)
	log "registered $nusers users in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s: $reg"
	for s in $group; do
		log "scenario $s"
		run_scenario "$s" || status=1
		sleep 2
	done
	stop_server
done
exit $status
