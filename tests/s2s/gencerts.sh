#!/bin/sh
# Throwaway test PKI for baton's s2s integration tests: a CA, and leaf certificates signed by
# it whose subjectAltName carries every domain the server answers for (RFC 6125 DNS-IDs).
# Invariant: everything is written below OUTDIR only; leaf certificates are good for both
# serverAuth and clientAuth, since an s2s peer presents the same certificate in both roles.
#
#   gencerts.sh ca   OUTDIR NAME                 -> OUTDIR/NAME.pem, OUTDIR/NAME.key
#   gencerts.sh leaf OUTDIR CANAME DOMAIN [ALT..] -> OUTDIR/DOMAIN.pem, OUTDIR/DOMAIN.key
set -eu

cmd=$1
out=$2
shift 2
mkdir -p "$out"

case "$cmd" in
ca)
	name=$1
	openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
		-keyout "$out/$name.key" -out "$out/$name.pem" -days 30 -subj "/CN=$name test CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	;;
leaf)
	ca=$1
	domain=$2
	shift 2
	san="DNS:$domain"
	for alt in "$@"; do
		san="$san,DNS:$alt"
	done
	ext="$out/$domain.ext"
	printf '%s\n' "basicConstraints=CA:FALSE" \
		"keyUsage=critical,digitalSignature,keyEncipherment,keyAgreement" \
		"extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=$san" >"$ext"
	openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
		-keyout "$out/$domain.key" -out "$out/$domain.csr" -subj "/CN=$domain" 2>/dev/null
	openssl x509 -req -in "$out/$domain.csr" -CA "$out/$ca.pem" -CAkey "$out/$ca.key" \
		-CAcreateserial -days 30 -extfile "$ext" -out "$out/$domain.pem" 2>/dev/null
	rm -f "$out/$domain.csr" "$ext"
	;;
*)
	echo "usage: $0 ca OUTDIR NAME | leaf OUTDIR CANAME DOMAIN [ALTNAME...]" >&2
	exit 2
	;;
esac
