#!/bin/sh
# Runs a container daemon through `semprep exec`, for init systems that have
# no ExecStartPre= (OpenRC, SysV init). install.sh (and the packages)
# install this file once per unit as
# /usr/local/libexec/semprep/semprep-dockerd, semprep-containerd and
# semprep-isulad; the name says which daemon to run. Point the init
# script's daemon binary at it (DOCKERD_BINARY= in OpenRC's
# /etc/conf.d/docker, DOCKERD= in Debian's /etc/default/docker); it receives
# the daemon's arguments unchanged.
#
# semprep prepares the semaphores, then execve()s the real daemon in the same
# process: the pid the init system recorded stays the daemon's, and the
# daemon's process keeps semprep's lock (its children do not), so no other
# semprep run touches cookies while it lives. If semprep is missing the
# daemon starts without it.
#
# The real daemon is $SEMPREP_DAEMON_BINARY if set, else the first
# executable NAME in /usr/bin, /usr/sbin, /usr/local/bin, /usr/local/sbin,
# /bin, /sbin. Settings: /etc/sysconfig/semprep and /etc/default/semprep,
# as for the systemd drop-ins.
#
# Do not name it after the daemon itself (e.g. .../dockerd): the process
# runs under this name until the exec, and semprep looks for a live daemon
# by name.

SEMPREP_BIN=${SEMPREP_BIN:-/usr/local/sbin/semprep}
me=${0##*/}
warn() { echo "semprep: $me: $*" >&2; }

prog=${me#semprep-}
case "$prog" in
dockerd) daemon=docker ;;
containerd) daemon=containerd ;;
isulad) daemon=isulad ;;
*)
	warn "cannot tell the daemon from my name (want semprep-dockerd, semprep-containerd or semprep-isulad)"
	exit 2
	;;
esac

# The settings, read as semprep-hook.sh reads them (see there): the same
# loop, copied rather than sourced, because this wrapper must exec the daemon
# whatever else is missing. tests/sh/30-hooks.sh checks the copies match.
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

real=${SEMPREP_DAEMON_BINARY:-}
if [ -z "$real" ]; then
	for d in /usr/bin /usr/sbin /usr/local/bin /usr/local/sbin /bin /sbin; do
		if [ -x "$d/$prog" ] && [ ! -d "$d/$prog" ]; then
			real=$d/$prog
			break
		fi
	done
fi
if [ -z "$real" ] || [ ! -x "$real" ]; then
	warn "cannot find the $prog binary (set SEMPREP_DAEMON_BINARY)"
	exit 127
fi
# SEMPREP_DAEMON_BINARY is for this wrapper only; the daemon need not see it.
unset SEMPREP_DAEMON_BINARY

if [ -x "$SEMPREP_BIN" ]; then
	exec "$SEMPREP_BIN" exec --daemon "$daemon" -- "$real" "$@"
fi
warn "$SEMPREP_BIN is missing or not executable; starting $prog without it"
exec "$real" "$@"
