#!/usr/bin/env bash
# semprep-metrics.service runs with least privilege (issue 13 item 3),
# statically, with the host's systemd:
#   - `systemd-analyze security --offline=yes` scores it at most 2.0 ("OK"),
#     and the score in the unit's comment is the one measured;
#   - it is a dynamic user with CAP_IPC_OWNER alone, in the host's IPC
#     namespace (no PrivateIPC=, no PrivateUsers=), seeing other users'
#     /proc/PID (no ProtectProc=invisible, no ProcSubset=pid);
#   - `systemd-analyze verify` of it and its timer is clean.
# In the booted container (50-systemd-e2e.sh, lib/e2e-metrics-sandbox.sh),
# the timer writes the report as that dynamic user with root's counts.
# Needs systemd-analyze (systemd 252 or later). Root is not needed.
set -uo pipefail

src=${SEMPREP_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
. "$(dirname "$0")/lib/report.sh"

if ! command -v systemd-analyze >/dev/null; then
	skip "metrics sandbox: systemd-analyze is not installed (apt-get install systemd)"
	exit 0
fi
tmp=$(mktemp -d /tmp/semprep-sandbox.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
unit=$src/systemd/semprep-metrics.service

# --- the exposure score -----------------------------------------------------------
# "→ Overall exposure level for semprep-metrics.service: 0.8 SAFE 😀"
score_of() {
	systemd-analyze security --offline=yes --no-pager "$1" 2>"$tmp/security.err" |
		sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\) .*/\1/p'
}
score=$(score_of "$unit")
if [ -z "$score" ]; then
	fail "systemd-analyze security --offline=yes: no overall score: $(head -n 3 "$tmp/security.err")"
elif awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
	pass "systemd-analyze security --offline=yes: semprep-metrics.service scores $score (at most 2.0)"
else
	fail "systemd-analyze security --offline=yes: semprep-metrics.service scores $score, more than 2.0: $(systemd-analyze security --offline=yes --no-pager "$unit" 2>&1 | grep '✗' | head -n 8)"
fi
if grep -q "scores it $score " "$unit"; then
	pass "the unit's comment gives the measured score, $score"
else
	fail "the unit's comment does not say 'scores it $score': $(grep -o 'scores it [0-9.]* [A-Z]*' "$unit")"
fi
# Control: the same unit without its sandboxing scores worse, so the
# parser reads a real score.
grep -Ev '^(DynamicUser|ProtectSystem|PrivateNetwork|SystemCallFilter|CapabilityBoundingSet|AmbientCapabilities)=' \
	"$unit" >"$tmp/bare.service"
bare=$(score_of "$tmp/bare.service")
if [ -n "$bare" ] && awk -v s="$bare" 'BEGIN { exit !(s > 2.0) }'; then
	pass "control: without DynamicUser, ProtectSystem, PrivateNetwork, the filter and the bounding set it scores $bare"
else
	fail "control: the unit without its sandboxing scores '$bare', not more than 2.0"
fi

# --- what the job needs is kept ---------------------------------------------------
setting() { sed -n "s/^$1=//p" "$unit" | tail -n 1; }
if [ "$(setting DynamicUser)" = yes ] && [ "$(setting AmbientCapabilities)" = CAP_IPC_OWNER ] &&
	[ "$(setting CapabilityBoundingSet)" = CAP_IPC_OWNER ] && [ "$(setting NoNewPrivileges)" = yes ] &&
	[ "$(setting ProtectSystem)" = strict ]; then
	pass "a dynamic user with CAP_IPC_OWNER alone, no new privileges, the file system read-only"
else
	fail "the unit's identity: DynamicUser '$(setting DynamicUser)', AmbientCapabilities '$(setting AmbientCapabilities)', CapabilityBoundingSet '$(setting CapabilityBoundingSet)', ProtectSystem '$(setting ProtectSystem)'"
fi
bad=
for k in PrivateIPC PrivateUsers; do
	case $(setting "$k") in '' | no) ;; *) bad+=" $k=$(setting "$k")" ;; esac
done
case $(setting ProtectProc) in '' | default) ;; *) bad+=" ProtectProc=$(setting ProtectProc)" ;; esac
case $(setting ProcSubset) in '' | all) ;; *) bad+=" ProcSubset=$(setting ProcSubset)" ;; esac
if [ -z "$bad" ]; then
	pass "the host's IPC namespace and every process in /proc stay visible (no PrivateIPC, PrivateUsers, ProtectProc, ProcSubset)"
else
	fail "settings that hide what the job must see:$bad"
fi
# The job calls semctl; semop and the shared memory and message calls
# stay denied.
if [ "$(systemd-analyze syscall-filter @system-service 2>/dev/null | sed -n 's/^ *//p' | grep -cx '@ipc')" = 1 ] &&
	systemd-analyze syscall-filter @ipc 2>/dev/null | grep -qx ' *semctl' &&
	! grep '^SystemCallFilter=~' "$unit" | grep -qw semctl &&
	grep '^SystemCallFilter=~' "$unit" | grep -qw semop; then
	pass "SystemCallFilter: semctl allowed (@system-service includes @ipc), semop denied"
else
	fail "SystemCallFilter: semctl must be allowed and semop denied: $(grep '^SystemCallFilter' "$unit" | tr '\n' ' ')"
fi

# --- verify -----------------------------------------------------------------------
mkdir -p "$tmp/units"
cp "$unit" "$src/systemd/semprep-metrics.timer" "$tmp/units/"
# verify resolves ExecStart= on the real file system: a stand-in binary.
printf '#!/bin/sh\n' >"$tmp/semprep" && chmod 755 "$tmp/semprep"
sed -i "s|^ExecStart=/usr/local/sbin/semprep|ExecStart=$tmp/semprep|" "$tmp/units/semprep-metrics.service"
if SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$tmp/units/semprep-metrics.timer" \
	"$tmp/units/semprep-metrics.service" >"$tmp/verify" 2>&1 && [ ! -s "$tmp/verify" ]; then
	pass "systemd-analyze verify: semprep-metrics.service and .timer, no warning"
else
	fail "systemd-analyze verify: $(head -n 5 "$tmp/verify")"
fi
# Control: a directive systemd does not know is reported.
echo 'ProtectEverything=yes' >>"$tmp/units/semprep-metrics.service"
if SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$tmp/units/semprep-metrics.service" 2>&1 |
	grep -q ProtectEverything; then
	pass "systemd-analyze control: an unknown directive is reported"
else
	fail "systemd-analyze control: an unknown directive went unnoticed"
fi

exit "$failed"
