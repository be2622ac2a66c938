#!/usr/bin/env bash
# Runs baton's test suites and prints one summary: every unit-test binary is one suite,
# every pytest test counts on its own. The last line is always
# "SUMMARY: <passed> passed, <failed> failed", and the exit status is non-zero if anything
# failed (a crash, a hang or a missing binary counts as a failure, never as a pass).
#
# usage: scripts/test.sh [--unit-only] BUILD_DIR UNIT_TEST_BINARY...   (called by `make test`)
set -u

unit_only=0
if [ "${1:-}" = "--unit-only" ]; then
	unit_only=1
	shift
fi
if [ $# -lt 1 ]; then
	echo "usage: $0 [--unit-only] BUILD_DIR UNIT_TEST_BINARY..." >&2
	exit 2
fi
build=$1
shift

cd "$(dirname "$0")/.." || exit 2
export BATON_ROOT=$PWD
# Sanitizer builds (build/san) report leaks and stop at the first UB; harmless otherwise.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

UNIT_TIMEOUT=${UNIT_TIMEOUT:-300}
INTEGRATION_TIMEOUT=${INTEGRATION_TIMEOUT:-1800}
logdir=$build/test-logs
mkdir -p "$logdir"

total_pass=0
total_fail=0
summary=()

record() { # record PASS|FAIL|NOTE name detail
	summary+=("$(printf '%-4s  %-20s %s' "$1" "$2" "${3:-}")")
}

# ---- house style: the checked-in .clang-format (STYLE.md rule 7) ----
if command -v clang-format >/dev/null 2>&1 && [ -d .git ]; then
	echo "== format"
	if make -s --no-print-directory format-check >"$logdir/format.log" 2>&1; then
		record PASS format "(clang-format clean)"
		total_pass=$((total_pass + 1))
	else
		head -20 "$logdir/format.log"
		record FAIL format "(run 'make format'; see $logdir/format.log)"
		total_fail=$((total_fail + 1))
	fi
fi

# ---- unit tests: one binary = one suite ----
for bin in "$@"; do
	name=$(basename "$bin")
	log=$logdir/$name.log
	echo "== $name"
	if [ ! -x "$bin" ]; then
		echo "$bin: not built" | tee "$log"
		record FAIL "$name" "(binary missing)"
		total_fail=$((total_fail + 1))
		continue
	fi
	timeout "$UNIT_TIMEOUT" "$bin" >"$log" 2>&1
	rc=$?
	cat "$log"
	last=$(grep -E "^$name: [0-9]+ passed, [0-9]+ failed" "$log" | tail -n 1)
	if [ $rc -eq 0 ] && [ -n "$last" ]; then
		record PASS "$name" "${last#"$name: "}"
		total_pass=$((total_pass + 1))
	else
		if [ $rc -eq 124 ]; then
			detail="(timed out after ${UNIT_TIMEOUT}s)"
		elif [ $rc -gt 128 ]; then
			detail="(killed by signal $((rc - 128)))"
		elif [ -n "$last" ]; then
			detail="${last#"$name: "}"
		else
			detail="(exit $rc, no summary line)"
		fi
		record FAIL "$name" "$detail"
		total_fail=$((total_fail + 1))
	fi
done

# ---- integration tests: pytest, each test counted ----
if [ $unit_only -eq 1 ]; then
	record NOTE integration "(skipped: --unit-only)"
elif [ ! -d tests/integration ]; then
	record NOTE integration "(no tests/integration directory)"
else
	echo "== integration (pytest)"
	xml=$build/pytest.xml
	rm -f "$xml"
	BATOND=$build/batond BATONCTL=$build/batonctl timeout "$INTEGRATION_TIMEOUT" \
		/usr/bin/python3 -m pytest -q -p no:cacheprovider --junitxml="$xml" tests/integration
	rc=$?
	counts=""
	if [ -s "$xml" ]; then
		# "tests failures errors skipped", summed over every <testsuite>.
		counts=$(/usr/bin/python3 - "$xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
t = [0, 0, 0, 0]
for s in suites:
    for i, a in enumerate(("tests", "failures", "errors", "skipped")):
        t[i] += int(s.get(a, 0))
print(*t)
EOF
		)
	fi
	if [ $rc -eq 5 ]; then
		record NOTE integration "(no tests collected)"
	elif [ $rc -eq 124 ]; then
		record FAIL integration "(timed out after ${INTEGRATION_TIMEOUT}s)"
		total_fail=$((total_fail + 1))
	elif [ -z "$counts" ]; then
		record FAIL integration "(pytest exit $rc, no report in $xml)"
		total_fail=$((total_fail + 1))
	else
		read -r n nfail nerr nskip <<<"$counts"
		p=$((n - nfail - nerr - nskip))
		f=$((nfail + nerr))
		# pytest failing without a failed test (an internal or usage error) still fails.
		if [ $rc -ne 0 ] && [ $f -eq 0 ]; then
			f=1
		fi
		total_pass=$((total_pass + p))
		total_fail=$((total_fail + f))
		detail="$p passed, $f failed, $nskip skipped"
		if [ $f -eq 0 ]; then
			record PASS integration "$detail"
		else
			record FAIL integration "$detail (exit $rc)"
		fi
	fi
fi

echo
echo "==================== test summary ===================="
for line in "${summary[@]}"; do
	echo "$line"
done
echo "unit logs: $logdir/"
echo "SUMMARY: $total_pass passed, $total_fail failed"
[ $total_fail -eq 0 ]
