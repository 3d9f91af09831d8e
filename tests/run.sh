#!/usr/bin/env bash
# The whole semprep test suite: the README's test command, and what .ci/run runs.
#
#   tests/run.sh            build, then every Rust test and every tests/sh/*.sh
#   tests/run.sh sh NAME    only tests/sh/NAME*.sh (the binaries must be built)
#
# Shell tests print one line per case: "PASS: what", "FAIL: what" or
# "SKIP: what: why"; cargo's ignored tests are skips too. A skip is loud
# here, counted in the closing "total: N passed, M failed, K skipped", and a
# failure as well under CI=true, where every test must run (CI runs as root
# with everything tests/deps.sh installs).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

export SEMPREP_BIN="$PWD/target/release/semprep"
export SEMFIXTURE_BIN="$PWD/target/release/semfixture"
export SEMPREP_SRC="$PWD"

passed=0 failed=0 skipped=0
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

count_sh() { # $1 = output file of one shell test script, $2 = its exit code
  local p f s
  p=$(grep -c '^PASS: ' "$1"); f=$(grep -c '^FAIL: ' "$1"); s=$(grep -c '^SKIP: ' "$1")
  if [ "$2" != 0 ] && [ "$f" = 0 ]; then f=1; echo "FAIL: $(basename "$3") exited $2"; fi
  if [ "$p$f$s" = "000" ]; then f=1; echo "FAIL: $(basename "$3") ran no case"; fi
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
}

run_sh() {
  local t
  for t in "$@"; do
    echo "== $t"
    bash "$t" 2>&1 | tee "$log/out"
    count_sh "$log/out" "${PIPESTATUS[0]}" "$t"
  done
}

if [ "${1:-}" = sh ]; then
  run_sh tests/sh/"${2:-}"*.sh
else
  echo "== cargo build --release --locked"
  cargo build --release --locked --bins || { echo "total: 0 passed, 1 failed, 0 skipped"; exit 1; }
  echo "== cargo test --locked"
  cargo test --locked 2>&1 | tee "$log/cargo"
  rc=${PIPESTATUS[0]}
  p=$(awk '/^test result:/ {s += $4} END {print s + 0}' "$log/cargo")
  f=$(awk '/^test result:/ {s += $6} END {print s + 0}' "$log/cargo")
  s=$(awk '/^test result:/ {s += $8} END {print s + 0}' "$log/cargo")
  [ "$rc" != 0 ] && [ "$f" = 0 ] && f=1
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  run_sh tests/sh/*.sh
fi

if [ "$skipped" != 0 ]; then
  echo "!! $skipped test(s) SKIPPED: they did not run on this machine (see SKIP: lines and cargo's ignored tests above)" >&2
  [ "${CI:-}" = true ] && failed=$((failed + skipped))
fi
echo "total: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
