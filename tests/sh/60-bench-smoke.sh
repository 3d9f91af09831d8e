#!/usr/bin/env bash
# bench/run.sh --smoke: the benchmark script runs, and every run of every
# tool is verified by the harness (cookies gone, unrelated sets kept, listings
# exact). Timings are printed, never asserted: benchmarks are not tests.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
. "$(dirname "$0")/lib/report.sh"

src=${SEMPREP_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
for b in "${SEMPREP_BIN:-}" "${SEMFIXTURE_BIN:-}"; do
	if [ -z "$b" ] || [ ! -x "$b" ]; then
		skip "bench smoke: SEMPREP_BIN and SEMFIXTURE_BIN must name built binaries (cargo build --release)"
		exit 0
	fi
done
if ! command -v dmsetup >/dev/null; then
	skip "bench smoke: dmsetup is not installed (apt-get install dmsetup)"
	exit 0
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
if "$src/bench/run.sh" --smoke >"$out" 2>&1; then
	pass "bench/run.sh --smoke runs and verifies every run"
else
	fail "bench/run.sh --smoke: $(tail -5 "$out")"
	exit 1
fi
for want in "semprep run" "dmsetup udevcookies" "semprep clean --min-age 0" \
	"dmsetup udevcomplete_all -y" "six-call floor (reference)" "shell loop" \
	"semprep status --json" "semctl unit prices" "every run verified"; do
	if grep -qF -- "$want" "$out"; then
		pass "bench table has \"$want\""
	else
		fail "bench table lacks \"$want\": $(cat "$out")"
	fi
done
# The semctl bound is counted (strace -f -c), not timed: it must hold.
if grep -qE "semprep clean --min-age 0: [0-9]+ semctl = .*: met$" "$out"; then
	pass "bench counts semprep clean's semctl calls within (N+M) + 5 per removed cookie + a constant"
else
	fail "bench semctl count missing or above the bound: $(grep -A6 '^syscalls' "$out")"
fi
# The floor is a reference only if it makes the same calls as semprep.
if grep -qE "six-call floor \(reference\): [0-9]+ semctl = .*: met$" "$out"; then
	pass "bench's six-call floor makes the calls semprep's checks make"
else
	fail "bench six-call floor count missing or off: $(grep -A8 '^syscalls' "$out")"
fi
exit "$failed"
