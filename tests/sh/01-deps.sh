#!/usr/bin/env bash
# tests/deps.sh, the one place that installs what the tests need (.ci/run
# and developers call it): it installs exactly the missing packages without
# recommends, does nothing (not even apt-get update) when none is missing,
# and --check names the missing ones. dpkg-query and apt-get are stand-ins
# here: nothing is installed.
set -uo pipefail

src=${SEMPREP_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
. "$(dirname "$0")/lib/report.sh"

tmp=$(mktemp -d /tmp/semprep-deps.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/bin"
# dpkg-query: every package is installed except those in $tmp/missing.
cat >"$tmp/bin/dpkg-query" <<FAKE
#!/bin/sh
for p; do :; done
if grep -qx "\$p" "$tmp/missing" 2>/dev/null; then echo "un "; else echo "ii "; fi
FAKE
printf '#!/bin/sh\necho "$*" >>%s/apt-get.calls\n' "$tmp" >"$tmp/bin/apt-get"
chmod 755 "$tmp/bin/dpkg-query" "$tmp/bin/apt-get"

deps() { # rest = arguments; output in $tmp/out, exit status in rc
	: >"$tmp/apt-get.calls"
	PATH=$tmp/bin:$PATH bash "$src/tests/deps.sh" "$@" >"$tmp/out" 2>&1
	rc=$?
}

if [ "$(id -u)" != 0 ]; then
	skip "tests/deps.sh installing: needs root (it refuses to install otherwise)"
else
	: >"$tmp/missing"
	deps
	if [ "$rc" = 0 ] && [ ! -s "$tmp/apt-get.calls" ]; then
		pass "deps.sh with every package installed: exit 0, no apt-get at all"
	else
		fail "deps.sh, nothing missing: exit $rc, apt-get: $(cat "$tmp/apt-get.calls") $(cat "$tmp/out")"
	fi

	printf '%s\n' shellcheck debootstrap >"$tmp/missing"
	deps
	install=$(grep ' install ' "$tmp/apt-get.calls")
	if [ "$rc" = 0 ] && [ "$(head -n 1 "$tmp/apt-get.calls")" = "update -qq" ] &&
		[[ "$install" == *"--no-install-recommends debootstrap shellcheck" ]] &&
		[[ "$install" == *"DPkg::Lock::Timeout"* ]]; then
		pass "deps.sh with two packages missing: apt-get update, then installs exactly those, without recommends"
	else
		fail "deps.sh, two missing: exit $rc, apt-get: $(cat "$tmp/apt-get.calls") $(cat "$tmp/out")"
	fi
fi

printf '%s\n' dash >"$tmp/missing"
deps --check
if [ "$rc" = 1 ] && grep -q 'missing: dash' "$tmp/out" && [ ! -s "$tmp/apt-get.calls" ]; then
	pass "deps.sh --check: exit 1, names the missing package, installs nothing"
else
	fail "deps.sh --check: exit $rc: $(cat "$tmp/out" "$tmp/apt-get.calls")"
fi

# CI installs through it, before the suite.
if grep -q '^tests/deps.sh$' "$src/.ci/run" &&
	[ "$(grep -n '^tests/deps.sh$' "$src/.ci/run" | cut -d: -f1)" -lt "$(grep -n 'tests/run.sh' "$src/.ci/run" | tail -n 1 | cut -d: -f1)" ]; then
	pass ".ci/run installs the test dependencies with tests/deps.sh before running tests/run.sh"
else
	fail ".ci/run does not call tests/deps.sh before tests/run.sh: $(cat "$src/.ci/run")"
fi

exit $failed
