#!/usr/bin/env bash
# tests/run.sh itself: its closing line counts passes, failures and skips
# ("total: N passed, M failed, K skipped"), so a skipped test cannot hide,
# and under CI=true a skip also counts as a failure. Runs a copy of the
# runner on made-up shell tests; nothing is built.
set -uo pipefail

src=${SEMPREP_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
. "$(dirname "$0")/lib/report.sh"

tmp=$(mktemp -d /tmp/semprep-runner.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/tests/sh"
cp "$src/tests/run.sh" "$tmp/tests/"
printf '%s\n' 'echo "PASS: one"' 'echo "PASS: two"' 'echo "SKIP: three: no such tool"' \
	>"$tmp/tests/sh/10-mixed.sh"
printf '%s\n' 'echo "FAIL: four"' 'exit 1' >"$tmp/tests/sh/20-failing.sh"

# A stand-in cargo: builds nothing; its tests pass 3 and ignore 2.
mkdir "$tmp/bin"
cat >"$tmp/bin/cargo" <<'CARGO'
#!/bin/sh
if [ "$1" = test ]; then
	echo "test result: ok. 3 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.01s"
fi
CARGO
chmod 755 "$tmp/bin/cargo"

runner() { # $1 = value of CI ("" for unset), rest = run.sh arguments; sets out, rc
	local ci=$1
	shift
	if [ -n "$ci" ]; then
		out=$(PATH=$tmp/bin:$PATH CI=$ci bash "$tmp/tests/run.sh" "$@" 2>&1)
	else
		out=$(PATH=$tmp/bin:$PATH env -u CI bash "$tmp/tests/run.sh" "$@" 2>&1)
	fi
	rc=$?
}

# (CI, run.sh's mode, its name filter, the closing line, exit status); the
# whole suite adds cargo's ignored tests to the skips.
while IFS='|' read -r ci mode name want want_rc; do
	runner "$ci" ${mode:+"$mode" "$name"}
	last=$(printf '%s\n' "$out" | tail -n 1)
	if [ "$last" = "$want" ] && [ "$rc" = "$want_rc" ]; then
		pass "runner, CI=${ci:-unset}, ${mode:-whole suite} $name: '$want', exit $rc"
	else
		fail "runner, CI=${ci:-unset}, ${mode:-whole suite} $name: closing line '$last', exit $rc (want '$want', exit $want_rc)"
	fi
done <<'CASES'
|sh|10|total: 2 passed, 0 failed, 1 skipped|0
true|sh|10|total: 2 passed, 1 failed, 1 skipped|1
|sh||total: 2 passed, 1 failed, 1 skipped|1
|sh|20|total: 0 passed, 1 failed, 0 skipped|1
|||total: 5 passed, 1 failed, 3 skipped|1
true|||total: 5 passed, 4 failed, 3 skipped|1
CASES

# The skip is named loudly too, not only counted.
runner "" sh 10
if printf '%s\n' "$out" | grep -q '^!! 1 test(s) SKIPPED'; then
	pass "runner: a skip is announced before the closing line"
else
	fail "runner: no '!!' line for the skip: $(printf '%s' "$out" | tr '\n' ' ')"
fi

exit $failed
