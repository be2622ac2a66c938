#!/bin/sh
# `make run`: starts batond in the foreground on 127.0.0.1 with its data in run/data,
# creating a demo account on first use, and prints how to connect. Ctrl-C stops it.
set -eu

BUILD="${1:-build}"
DATA="${BATON_DATA:-run/data}"
DOMAIN="${BATON_DOMAIN:-localhost}"
C2S="${BATON_C2S:-127.0.0.1:5222}"
C2S_TLS="${BATON_C2S_TLS:-127.0.0.1:5223}"
HTTP="${BATON_HTTP:-127.0.0.1:5280}"
SIP="${BATON_SIP-127.0.0.1:5060}" # BATON_SIP= (empty) for no SIP
DEMO="demo@$DOMAIN"

mkdir -p "$DATA"
chmod 700 "$DATA"
# The demo password is made once and kept, so a client configured yesterday still works.
if [ ! -s "$DATA/demo-password" ]; then
	pw=$(od -An -N9 -tx1 /dev/urandom | tr -d ' \n')
	"$BUILD/batonctl" --data "$DATA" user del "$DEMO" >/dev/null 2>&1 || true
	"$BUILD/batonctl" --data "$DATA" user add "$DEMO" "$pw" >/dev/null
	(umask 077 && printf '%s\n' "$pw" >"$DATA/demo-password")
fi
pw=$(cat "$DATA/demo-password")
# Set again each time: an account made by an older baton then has its SIP digest keys too.
"$BUILD/batonctl" --data "$DATA" user passwd "$DEMO" "$pw" >/dev/null

cat <<INFO

  baton is starting on $C2S (STARTTLS), $C2S_TLS (direct TLS) and http://$HTTP.

  Log in with any XMPP client (Gajim, Conversations, profanity, ...):
      JID:       $DEMO
      password:  $pw
      server:    127.0.0.1, port ${C2S##*:}  (the certificate is self-signed: accept it)

  Or in a browser, no JavaScript needed:  http://$HTTP/m/  (user: demo)
  Web clients (Converse.js):  ws://$HTTP/xmpp-websocket  or BOSH  http://$HTTP/http-bind

  A SIP phone (softphone) is another device of the same account:
      user demo, domain $DOMAIN, password as above, registrar/proxy ${SIP:-(SIP off)} (UDP or TCP)

  For example:  profanity, then /connect $DEMO server 127.0.0.1 port ${C2S##*:} tls allow
  More users:   $BUILD/batonctl --data $DATA user add alice@$DOMAIN PASSWORD
  Status:       $BUILD/batonctl --data $DATA status
  Stop:         Ctrl-C

INFO
exec "$BUILD/batond" --data "$DATA" --domain "$DOMAIN" --c2s "$C2S" --c2s-tls "$C2S_TLS" \
	--http "$HTTP" --sip "$SIP"
