# shellcheck shell=bash disable=SC2034 # failed is read by the script that sources this
# One line per case, as tests/run.sh counts them: "PASS: what",
# "FAIL: what" or "SKIP: what: why". Every tests/sh/*.sh sources this first
# and ends with `exit "$failed"` (1 once any case failed).

failed=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failed=1; }
skip() { echo "SKIP: $*"; }
