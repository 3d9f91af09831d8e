#!/bin/sh
# semprep-hook: run semprep from any init script, right before it starts the
# container daemon. Installed as /usr/local/libexec/semprep/semprep-hook.
#
#   /usr/local/libexec/semprep/semprep-hook docker || exit 1
#
# Argument: the daemon about to start (docker, containerd, isulad; default
# docker). Settings: /etc/sysconfig/semprep and /etc/default/semprep (the
# same files the systemd drop-ins read), or SEMPREP_* in the environment.
#
# Exit status: 0 means go ahead. Non-zero is semprep's own verdict that the
# daemon cannot start (2 bad configuration, 3 no semaphore headroom); semprep
# said why on stderr. semprep's 4 (the daemon is already running, so semprep
# left everything alone) becomes 0: the init script knows what to do then.
# It never fails the start for semprep's own faults: a missing binary, a
# crash or a hang is a warning and exit 0, unless SEMPREP_STRICT is on.
# It never blocks long: semprep keeps its own time budget (SEMPREP_TIMEOUT,
# 10s); as a backstop the hook kills it after SEMPREP_HOOK_TIMEOUT seconds
# (default 30) when a `timeout` command exists.

SEMPREP_BIN=${SEMPREP_BIN:-/usr/local/sbin/semprep}
daemon=${1:-docker}

warn() { echo "semprep: hook: $*" >&2; }

# Read the settings the way systemd's EnvironmentFile= does (later files win),
# skipping a file the shell cannot parse instead of dying on it. The same
# loop is in semprep-exec.sh, copied rather than sourced from a shared file:
# each hook is installed on its own and must start the daemon whatever else
# is missing. tests/sh/30-hooks.sh checks that the two copies match.
for f in ${SEMPREP_CONFIG:-/etc/sysconfig/semprep /etc/default/semprep}; do
	if [ ! -f "$f" ] || [ ! -r "$f" ]; then continue; fi
	# shellcheck disable=SC1090 # the path is the administrator's choice
	if (. "$f") >/dev/null 2>&1; then
		set -a
		. "$f"
		set +a
	else
		warn "ignoring $f: not plain VAR=value lines"
	fi
done

is_true() {
	case "$1" in [Tt][Rr][Uu][Ee] | 1 | [Yy][Ee][Ss] | [Oo][Nn]) return 0 ;; esac
	return 1
}

fault() { # $1 = what went wrong: semprep's own fault, never the daemon's
	if is_true "${SEMPREP_STRICT:-}"; then
		warn "$1 (SEMPREP_STRICT is on: failing the start)"
		exit 1
	fi
	warn "$1; starting $daemon without semprep"
	exit 0
}

[ -x "$SEMPREP_BIN" ] || fault "$SEMPREP_BIN is missing or not executable"

limit=${SEMPREP_HOOK_TIMEOUT:-30}
case "$limit" in '' | *[!0-9]*) warn "SEMPREP_HOOK_TIMEOUT=$limit is not whole seconds; using 30"; limit=30 ;; esac

# `timeout SECS PROG` is coreutils and busybox >= 1.30 syntax; without it (or
# with an older busybox) semprep's own --timeout is the only bound.
if command -v timeout >/dev/null 2>&1 && timeout -s KILL 5 true >/dev/null 2>&1; then
	timeout -s KILL "$limit" "$SEMPREP_BIN" run --daemon "$daemon"
else
	"$SEMPREP_BIN" run --daemon "$daemon"
fi
rc=$?
case $rc in
0 | 1 | 2 | 3) exit "$rc" ;; # semprep's verdict (1 only under --strict)
4) exit 0 ;;
124 | 137) fault "semprep did not finish within ${limit}s and was killed" ;;
*) fault "semprep failed unexpectedly (exit status $rc)" ;;
esac
