#!/bin/bash
# bench/all.sh: runs bench/run.sh for the null relay (chat only: the machine's ceiling), baton,
# Prosody and ejabberd one after another (never two servers at once, so each has the machine to
# itself) and prints the table of ratios.
# Invariant: the raw JSON lines are kept in $OUT (default build/bench/results-<time>.jsonl), so a
# table can be reprinted with `bench/table.py FILE`. Arguments are passed to run.sh as scenarios.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=${OUT:-$root/build/bench/results-$(date +%Y%m%d-%H%M%S).jsonl}
mkdir -p "$(dirname "$out")"
make -s -C "$here" BUILD="${BATON_BUILD:-$root/build}" || exit 1
if [ $# -eq 0 ] || [[ " $* " == *" chat "* ]]; then
	"$here/run.sh" null chat | tee -a "$out"
fi
for s in baton prosody ejabberd; do
	"$here/run.sh" "$s" "$@" | tee -a "$out"
done
echo "results: $out" >&2
/usr/bin/python3 "$here/table.py" "$out"
