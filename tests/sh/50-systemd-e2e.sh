#!/usr/bin/env bash
# systemd, for real (docs/design.md §10): Debian bookworm with its docker.io, booted
# with systemd as PID 1 in systemd-nspawn; semprep installed by
# `install.sh --root` (or, with SEMPREP_E2E_DEB=FILE, that .deb by dpkg in
# the running container, purged at the end: lib/e2e-deb.sh, run by
# 70-packages.sh); `systemctl start docker` with SEMMNI full of residual
# udev cookies in the container's IPC namespace. A probe ExecStartPre= after
# semprep's needs one semaphore set, as devicemapper would.
#
#   1. with semprep: docker active, cookies gone, ExecStartPre lists semprep,
#      semprep's lines in the journal at info priority;
#   1b. semprep-metrics.timer, installed but not enabled: enabled, it writes
#      the Prometheus report within its period (lib/e2e-metrics.sh), as
#      a dynamic user whose counts equal root's (lib/e2e-metrics-sandbox.sh);
#   2. control, same state without semprep's drop-in: the start fails at the
#      probe (semget: No space left on device);
#   3. control, SEMMNI full of unrelated sets, SEMPREP_POLICY=clean: the start
#      fails with semprep's exit 3 and its explanation in `systemctl status`;
#   4. `semprep exec -- dockerd`: the lock is dockerd's process's alone. Its
#      containerd and a container's shim inherit the descriptor; a refused
#      run names dockerd; after `kill -9` of dockerd (the shim lives on, the
#      descriptor open) the next run takes the lock at once.
#
# The debootstrap root is built once and cached in $SEMPREP_E2E_ROOT
# (default /var/tmp/semprep-e2e-root; about a minute and 0.6 GB); each run
# boots an overlayfs copy of it, so the cache stays pristine. Needs root and
# the packages systemd-container and debootstrap. Cleans up after itself:
# the machine, the overlay, nspawn's cgroups and /run/systemd/nspawn.
set -uo pipefail

src=${SEMPREP_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
CACHE=${SEMPREP_E2E_ROOT:-/var/tmp/semprep-e2e-root}
INCLUDE=systemd,systemd-sysv,dbus,procps,docker.io
MACHINE=semprep-e2e-$$
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
. "$(dirname "$0")/lib/report.sh"
note() { echo "   $*" >&2; }
# Where install.sh puts semprep; case 2 hides its drop-in by moving it away.
SBIN=/usr/local/sbin
DROPIN=/etc/systemd/system/docker.service.d/10-semprep.conf
hide_dropin() { mv "$M$DROPIN" "$T/10-semprep.conf"; }
show_dropin() { mv "$T/10-semprep.conf" "$M$DROPIN"; }
# SEMPREP_E2E_DEB=FILE: the same cases with that .deb installed by dpkg in
# the booted container instead of install.sh, then purged (lib/e2e-deb.sh).
DEB=${SEMPREP_E2E_DEB:-}
# shellcheck disable=SC1091 # 70-packages.sh shellchecks lib/e2e-deb.sh
[ -z "$DEB" ] || . "$src/tests/sh/lib/e2e-deb.sh"

for b in "${SEMPREP_BIN:-}" "${SEMFIXTURE_BIN:-}"; do
	if [ -z "$b" ] || [ ! -x "$b" ]; then
		skip "systemd e2e: SEMPREP_BIN and SEMFIXTURE_BIN must name built binaries"
		exit 0
	fi
done
if [ "$(id -u)" != 0 ]; then
	skip "systemd e2e: needs root (debootstrap, systemd-nspawn, nsenter)"
	exit 0
fi
for tool in debootstrap systemd-nspawn nsenter; do
	if ! command -v "$tool" >/dev/null; then
		skip "systemd e2e: $tool is not installed (apt-get install --no-install-recommends systemd-container debootstrap)"
		exit 0
	fi
done

T=$(mktemp -d /tmp/semprep-e2e.XXXXXX)
M=$T/merged
NSPAWN=
LEADER=

# shellcheck disable=SC2317 # called from the EXIT trap
cgroup_cleanup() { # what nspawn leaves when the host has no systemd
	local h base cg
	for h in systemd unified; do
		[ -d "/sys/fs/cgroup/$h" ] || continue
		if [ "$h" = unified ]; then
			cg=$(awk -F: '$1 == "0" { print $3 }' /proc/self/cgroup)
		else
			cg=$(awk -F: '$2 == "name=systemd" { print $3 }' /proc/self/cgroup)
		fi
		base=/sys/fs/cgroup/$h${cg%/}
		for d in "$base/payload" "$base/supervisor"; do
			[ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
		done
	done
	rm -rf "/run/systemd/nspawn/propagate/$MACHINE"
	rmdir /run/systemd/nspawn/propagate /run/systemd/nspawn/locks /run/systemd/nspawn 2>/dev/null
}

# shellcheck disable=SC2317 # the EXIT trap
cleanup() {
	if [ -n "$NSPAWN" ] && kill -0 "$NSPAWN" 2>/dev/null; then
		[ -n "$LEADER" ] && nsenter -t "$LEADER" -a systemctl poweroff >/dev/null 2>&1
		for _ in $(seq 100); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.2; done
		kill "$NSPAWN" 2>/dev/null
		wait "$NSPAWN" 2>/dev/null
	fi
	mountpoint -q "$M" && umount "$M"
	cgroup_cleanup
	rm -rf "$T"
}
trap cleanup EXIT

# --- the cached root: built once, reused while complete ---
stamp="$CACHE/.semprep-e2e-complete"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "bookworm $INCLUDE" ]; then
	note "building $CACHE with debootstrap (about a minute)"
	rm -rf "$CACHE" "$CACHE.tmp"
	if debootstrap --variant=minbase --include="$INCLUDE" bookworm "$CACHE.tmp" >"$T/debootstrap.log" 2>&1; then
		echo "bookworm $INCLUDE" >"$CACHE.tmp/.semprep-e2e-complete"
		mv "$CACHE.tmp" "$CACHE"
	else
		fail "debootstrap bookworm: $(tail -n 5 "$T/debootstrap.log" | tr '\n' ' ')"
		rm -rf "$CACHE.tmp"
		exit 1
	fi
fi

# --- this run's root: an overlay on the cache ---
mkdir -p "$T/upper" "$T/work" "$M"
if ! mount -t overlay overlay -o "lowerdir=$CACHE,upperdir=$T/upper,workdir=$T/work" "$M"; then
	fail "mount overlayfs on $CACHE"
	exit 1
fi
# dockerd only starts in the container with these (docs/design.md §10).
echo 'DOCKER_OPTS="--iptables=false --ip6tables=false --ip-forward=false --bridge=none"' >"$M/etc/default/docker"
# Boot with docker stopped: the test starts it.
rm -f "$M/etc/systemd/system/multi-user.target.wants/docker.service" \
	"$M/etc/systemd/system/sockets.target.wants/docker.socket"
if [ -z "$DEB" ] && ! sh "$src/install.sh" --root "$M" --binary "$SEMPREP_BIN" --units docker >"$T/install.log" 2>&1; then
	fail "install.sh --root: $(cat "$T/install.log")"
	exit 1
fi
CONF=$M/etc/default/semprep # a Debian root: install.sh picks /etc/default; the .deb ships it
CONF_BY="install.sh --root put the example config"
[ -z "$DEB" ] || CONF_BY="the .deb installed its conffile"
conf_ready() {
	if [ -f "$CONF" ] && grep -q '^#SEMPREP_MIN_AGE=5m' "$CONF"; then
		pass "$CONF_BY at /etc/default/semprep (Debian root)"
	else
		fail "no example config at /etc/default/semprep"
	fi
	# Fresh cookies count as residual here.
	echo 'SEMPREP_MIN_AGE=0' >>"$CONF"
}
[ -n "$DEB" ] || conf_ready
# The probe: after semprep's drop-in (10-), it needs one set, as libdm would.
install -m 755 "$SEMFIXTURE_BIN" "$M/usr/local/bin/semfixture"
mkdir -p "$M/etc/systemd/system/docker.service.d" # install.sh made it; dpkg does not
cat >"$M/etc/systemd/system/docker.service.d/20-probe.conf" <<'EOF'
[Service]
# semprep's e2e test: needs one SysV semaphore set, as devicemapper would.
ExecStartPre=/usr/local/bin/semfixture probe
EOF

# --- boot ---
systemd-nspawn -D "$M" -M "$MACHINE" --boot --register=no --keep-unit --console=passive \
	>"$T/nspawn.log" 2>&1 &
NSPAWN=$!
for _ in $(seq 100); do
	LEADER=$(ps --ppid "$NSPAWN" -o pid= -o comm= 2>/dev/null | awk '$2 == "systemd" { print $1 }')
	[ -n "$LEADER" ] && break
	sleep 0.1
done
if [ -z "$LEADER" ]; then
	fail "systemd-nspawn --boot: no systemd leader: $(tail -n 5 "$T/nspawn.log")"
	exit 1
fi
in_c() { nsenter -t "$LEADER" -a "$@"; }         # inside the container
in_ipc() { nsenter -t "$LEADER" --ipc "$@"; }    # host tools, container's IPC namespace
# Cookies are made from the container's pid namespace too, as the daemon in
# it would: seen from inside, a host process's pid reads 0 (owner-unseen).
in_ipc_pid() { nsenter -t "$LEADER" --ipc --pid "$@"; }
state=
for _ in $(seq 150); do
	state=$(in_c systemctl is-system-running 2>/dev/null)
	case "$state" in running | degraded) break ;; esac
	sleep 0.2
done
case "$state" in
running | degraded) pass "systemd booted as PID 1 in the container ($state)" ;;
*)
	fail "container did not boot: $state: $(tail -n 5 "$T/nspawn.log")"
	exit 1
	;;
esac
if [ "$(readlink "/proc/$LEADER/ns/ipc")" = "$(readlink /proc/self/ns/ipc)" ]; then
	fail "the container shares the host's IPC namespace: refusing to touch semaphores"
	exit 1
fi
if [ -n "$DEB" ]; then
	deb_install || exit 1
	conf_ready
fi

# fill SEMMNI POLICY COOKIES UNRELATED: reset the container's semaphores.
fill() {
	in_ipc ipcrm --all=sem >/dev/null 2>&1
	in_ipc sh -c "echo '32000 1024000000 500 $1' >/proc/sys/kernel/sem" &&
		in_ipc_pid "$SEMFIXTURE_BIN" cookie --count "$2" >/dev/null &&
		in_ipc "$SEMFIXTURE_BIN" unrelated --count "$3" >/dev/null
}
sets() { in_ipc "$SEMFIXTURE_BIN" count; }
semmni() { in_ipc cut -f4 /proc/sys/kernel/sem; }
reset_docker() {
	in_c systemctl stop docker.service docker.socket >/dev/null 2>&1
	in_c systemctl reset-failed docker.service docker.socket >/dev/null 2>&1
}
# journal [PRIOS]: docker.service's journal of this boot; with PRIOS (a
# bracket range such as 0-4), only semprep's lines at those priorities, as
# JSON. Each scenario looks for lines only it can produce, or compares
# counts: narrower filters (--after-cursor, _SYSTEMD_INVOCATION_ID=) missed
# lines on a freshly built root. Stream lines reach journald asynchronously:
# callers poll with until_ok.
journal() {
	if [ $# = 0 ]; then
		in_c journalctl -b -u docker.service -o cat --no-pager 2>/dev/null
		return
	fi
	in_c journalctl -b -u docker.service -o json --output-fields=PRIORITY,SYSLOG_IDENTIFIER,MESSAGE \
		--no-pager 2>/dev/null | grep -F '"SYSLOG_IDENTIFIER":"semprep"' | grep -E "\"PRIORITY\":\"[$1]\""
}
norestart() { # one failing start, no restart loop: the last invocation is the failed start
	printf '[Service]\n# semprep e2e: one failing start, no restart loop.\nRestart=no\n' \
		>"$M/etc/systemd/system/docker.service.d/30-norestart.conf"
}
until_ok() { # CMD...: retry for up to 10 s
	local _
	for _ in $(seq 50); do "$@" && return 0; sleep 0.2; done
	return 1
}
# shellcheck disable=SC2317 # called through until_ok
has() { # PATTERN [PRIOS]: a line of journal [PRIOS] matches
	local pat=$1
	shift
	journal "$@" | grep -- "$pat" >/dev/null # reads all: no SIGPIPE under pipefail
}

# --- 1. with semprep: SEMMNI 48, all in use by residual cookies ---
fill 48 48 0 || fail "fill the container's IPC namespace"
before=$(sets)
if in_c systemctl start docker >"$T/start.log" 2>&1 && [ "$(in_c systemctl is-active docker)" = active ]; then
	pass "systemctl start docker with SEMMNI 48 full of residual cookies ($before sets): docker is active"
else
	fail "systemctl start docker: $(cat "$T/start.log"); $(in_c systemctl status docker --no-pager -n 20 2>&1)"
fi
after=$(sets)
if [ "$before" = 48 ] && [ "$after" = 0 ] && [ "$(semmni)" = 48 ]; then
	pass "the 48 cookies are gone (sets in use 48 -> 0) and SEMMNI stays 48: cleaned, not raised"
else
	fail "sets in use $before -> $after, SEMMNI $(semmni)"
fi
show=$(in_c systemctl show docker -p ExecStartPre)
if [[ "$show" == *"path=$SBIN/semprep ; argv[]=$SBIN/semprep run --daemon docker ;"*"status=0 }"* ]] &&
	[[ "$show" == *"argv[]=/usr/local/bin/semfixture probe ;"* ]]; then
	pass "systemctl show docker -p ExecStartPre lists semprep run --daemon docker (status 0), then the probe"
else
	fail "ExecStartPre: $show"
fi
cat=$(in_c systemctl cat docker 2>/dev/null)
if grep -qxF "# $DROPIN" <<<"$cat" &&
	grep -qxF "ExecStartPre=$SBIN/semprep run --daemon docker" <<<"$cat"; then
	pass "systemctl cat docker shows $DROPIN"
else
	fail "systemctl cat docker does not show the drop-in"
fi
until_ok has 'semprep: removed 48 residual' 6
info=$(journal 6)
all=$(journal 0-7)
if [[ "$info" == *"semprep: removed 48 residual"* ]] && ! grep -q '"MESSAGE":"<[0-7]>' <<<"$all"; then
	pass "journal: semprep's 'removed 48 residual ...' at priority 6 (info), the <N> prefix parsed"
else
	fail "journal, semprep at info: '$info'; all semprep lines: '$all'; docker.service: $(journal | tail -n 8); semprep anywhere: $(in_c journalctl -o verbose --no-pager SYSLOG_IDENTIFIER=semprep | grep -E 'PRIORITY|MESSAGE|_SYSTEMD_UNIT|UNIT' | head)"
fi
warn=$(journal 0-4)
if [ -z "$warn" ]; then
	pass "journal: no semprep warning or error when it fixed everything"
else
	fail "journal: semprep warned: $warn"
fi

# --- 1b. semprep-metrics.timer: installed, not enabled; enabled, it reports ---
# shellcheck disable=SC1091 # 70-packages.sh shellchecks lib/ with -x
. "$src/tests/sh/lib/e2e-metrics.sh"
metrics_timer_case
# shellcheck disable=SC1091 # likewise
. "$src/tests/sh/lib/e2e-metrics-sandbox.sh"
metrics_sandbox_case

# --- 2. control: the same state without semprep fails at the probe ---
reset_docker
hide_dropin
# docker.service restarts a failed start (Restart=on-failure), and after
# StartLimitBurst=3 the last invocation is "Start request repeated too
# quickly", which ran nothing and logged nothing. Restart=no keeps the
# failed start the last invocation (what `systemctl status` shows) and keeps
# the state still; the README points users at `journalctl -u docker` for the
# restart case.
norestart
in_c systemctl daemon-reload
fill 48 48 0
semprep_lines=$(journal 0-7 | wc -l)
if ! in_c systemctl start docker >"$T/start.log" 2>&1 && [ "$(in_c systemctl is-active docker)" != active ] &&
	until_ok has 'semget: No space left on device' && [ "$(sets)" = 48 ] &&
	[ "$(journal 0-7 | wc -l)" = "$semprep_lines" ]; then
	pass "control: without semprep the same start fails at the probe (semget: No space left on device)"
else
	fail "control without semprep: $(cat "$T/start.log"); active=$(in_c systemctl is-active docker); sets $(sets); semprep lines $semprep_lines -> $(journal 0-7 | wc -l); journal: $(journal | tail -n 5)"
fi

# --- 3. control: unrelated sets, policy clean: semprep's exit 3 fails the start ---
reset_docker
show_dropin
echo 'SEMPREP_POLICY=clean' >>"$CONF"
in_c systemctl daemon-reload
fill 48 0 48
# shellcheck disable=SC2317 # called through until_ok
status_has_reason() {
	in_c systemctl status docker --no-pager -l -n 20 >"$T/status" 2>&1
	grep -q 'semprep.*SEMMNI' "$T/status"
}
if in_c systemctl start docker >"$T/start.log" 2>&1; then
	fail "unrelated sets + SEMPREP_POLICY=clean: docker started"
else
	# journald names a stream line's unit from its writer's cgroup, looked up
	# when it reads the line. semprep waits until journald has read its lines
	# before it exits (logging::drain), but journald can still file a line
	# under no unit (a stale cache entry for a reused pid); then status cannot
	# show it. Such a start is tried once more, and said loudly: a semprep
	# that logs no explanation fails both tries.
	if ! until_ok has 'headroom still short' 3 || ! until_ok status_has_reason; then
		note "NOTE: semprep's explanation is not under docker.service; journald filed it as: $(in_c journalctl -b -o verbose --no-pager SYSLOG_IDENTIFIER=semprep PRIORITY=3 | grep -E '^ *(_SYSTEMD_UNIT|_PID|MESSAGE)=' | tail -n 3 | tr '\n' ' '); starting once more"
		reset_docker
		in_c systemctl start docker >"$T/start.log" 2>&1
		until_ok has 'headroom still short' 3
		until_ok status_has_reason
	fi
	show=$(in_c systemctl show docker -p ExecStartPre)
	err=$(journal 3)
	if [[ "$show" == *"semprep run --daemon docker ;"*"status=3 }"* ]] && [[ "$show" == *"semfixture probe ;"*"pid=0 ;"* ]] &&
		grep -q 'SEMMNI' "$T/status" && grep -q '/proc/sys/kernel/sem' "$T/status" &&
		[[ "$err" == *"headroom still short"* ]] && [ "$(sets)" = 48 ]; then
		pass "control: SEMMNI full of unrelated sets, SEMPREP_POLICY=clean: start fails with semprep's exit 3, the probe never runs, unrelated sets untouched"
		pass "systemctl status docker shows semprep's explanation (SEMMNI, /proc/sys/kernel/sem) at priority 3 (error)"
	else
		fail "policy clean control: ExecStartPre=$show; status: $(cat "$T/status"); error lines: $err; sets $(sets)"
	fi
fi
reset_docker

# --- 4. semprep exec -- dockerd: the lock is dockerd's alone ---
# A flock (semprep's first lock) is held by every process that inherits its
# descriptor: here dockerd's containerd and the shim of a container, which
# outlives both. A record lock belongs to dockerd's process only. runc cannot
# create cgroups in this container (the host's cgroup v1 hierarchies are
# read-only inside), so a stand-in OCI runtime starts the container as a
# plain sleep; the containerd-shim-runc-v2 around it is the real one.
in_c systemctl stop containerd.service >/dev/null 2>&1 # dockerd then starts its own
cat >"$M/usr/local/bin/semprep-e2e-runtime" <<'RUNTIME'
#!/bin/sh
# semprep's e2e test: an OCI runtime that "runs" a container as a sleep.
cmd= pidfile= id=
while [ $# -gt 0 ]; do
	case $1 in
	--pid-file) pidfile=$2; shift 2 ;;
	--root | --log | --log-format | --bundle | --console-socket) shift 2 ;;
	--*) shift ;;
	create | start | state | kill | delete | features) cmd=$1; shift ;;
	*) id=$1; shift ;;
	esac
done
case $cmd in
create)
	sleep 600 </dev/null >/dev/null 2>&1 &
	printf %s $! >"$pidfile"
	printf %s $! >"/run/semprep-e2e-$id.pid" ;;
state) printf '{"ociVersion":"1.0.2","id":"%s","pid":%s,"status":"running","bundle":"/"}\n' \
	"$id" "$(cat "/run/semprep-e2e-$id.pid")" ;;
kill) kill "$(cat "/run/semprep-e2e-$id.pid")" 2>/dev/null ;;
esac
exit 0
RUNTIME
chmod 755 "$M/usr/local/bin/semprep-e2e-runtime"
fill 48 5 0 # young cookies: semprep exec (--min-age 5m) keeps them
# shellcheck disable=SC2016 # expanded by the container's sh
# containerd hands the shim its socket as fd 3 (Go's ExtraFiles), which
# replaces whatever the shim inherited there: fds 3-5 are taken first so
# that semprep's lock descriptor lands above them whatever this script
# inherited (under flock(1) it got fd 4 and passed; in CI, fd 3 and failed).
in_c sh -c 'exec 3</dev/null 4</dev/null 5</dev/null; . /etc/default/docker; '"$SBIN"'/semprep exec -- dockerd $DOCKER_OPTS \
	--add-runtime e2e=/usr/local/bin/semprep-e2e-runtime </dev/null >/var/log/semprep-e2e-dockerd.log 2>&1 &'
# shellcheck disable=SC2317 # called through until_ok
docker_up() { in_c docker info >/dev/null 2>&1; }
until_ok docker_up
in_c sh -c 'tar -C / -chf - usr/bin/sleep usr/lib/x86_64-linux-gnu/libc.so.6 lib64/ld-linux-x86-64.so.2 |
	docker import - semprep-e2e-sleep' >"$T/import.log" 2>&1
in_c docker run -d --runtime e2e --network none semprep-e2e-sleep /usr/bin/sleep 600 >"$T/run.log" 2>&1
dockerd=$(in_c pgrep -x dockerd)
containerd=$(in_c pgrep -x -P "${dockerd:-0}" containerd)
shim=$(in_c pgrep -f '^/usr/bin/containerd-shim-runc-v2 ')
has_lock() { in_c ls -l "/proc/$1/fd" 2>/dev/null | grep -q ' -> /run/semprep.lock$'; }
if [ -n "$dockerd" ] && [ -n "$containerd" ] && [ -n "$shim" ] &&
	has_lock "$dockerd" && has_lock "$containerd" && has_lock "$shim"; then
	pass "semprep exec -- dockerd: dockerd ($dockerd), its containerd ($containerd) and a container's shim ($shim) have /run/semprep.lock open"
else
	fail "semprep exec -- dockerd: dockerd '$dockerd', containerd '$containerd', shim '$shim'; $(in_c tail -n 5 /var/log/semprep-e2e-dockerd.log); $(cat "$T/import.log" "$T/run.log")"
fi
in_c "$SBIN/semprep" clean --daemon none --min-age 0 --lock-timeout 1s >"$T/busy.log" 2>&1
rc=$?
locks=$(in_c lslocks --noheadings -o COMMAND,PID,TYPE,PATH)
if [ "$rc" = 4 ] && grep -q "is held by pid $dockerd, dockerd" "$T/busy.log" && [ "$(sets)" = 5 ] &&
	grep -Eq "^dockerd +$dockerd +POSIX +/run/semprep.lock\$" <<<"$locks"; then
	pass "while dockerd runs, semprep clean is refused (4) naming it, and lslocks shows its POSIX lock: $(cat "$T/busy.log")"
else
	fail "semprep clean under dockerd: rc $rc, sets $(sets): $(cat "$T/busy.log"); lslocks: $locks"
fi
in_c kill -9 "$dockerd"
# shellcheck disable=SC2317 # called through until_ok
dockerd_gone() { ! in_c kill -0 "$dockerd" 2>/dev/null; }
until_ok dockerd_gone
in_c "$SBIN/semprep" clean --daemon none --min-age 0 --lock-timeout 0 >"$T/after.log" 2>&1
rc=$?
if [ "$rc" = 0 ] && [ "$(sets)" = 0 ] && has_lock "$shim"; then
	pass "after kill -9 of dockerd its shim still has the descriptor open, and the next semprep run takes the lock at once (removed the 5 cookies)"
else
	fail "after kill -9 of dockerd: rc $rc, sets $(sets), shim '$shim' has the descriptor: $(has_lock "$shim" && echo yes || echo no); $(cat "$T/after.log")"
fi
[ -n "$shim" ] && in_c kill -9 "$shim" # its sleep goes with the poweroff
# This scenario's own files, so that only the package's could be left below.
in_c sh -c 'rm -f /usr/local/bin/semprep-e2e-runtime /var/log/semprep-e2e-dockerd.log /run/semprep-e2e-*.pid'
[ -z "$DEB" ] || deb_purge

# --- power off ---
in_c systemctl poweroff >/dev/null 2>&1
for _ in $(seq 100); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.2; done
if ! kill -0 "$NSPAWN" 2>/dev/null; then
	wait "$NSPAWN" 2>/dev/null
	NSPAWN=
	pass "the container powered off"
else
	fail "the container did not power off within 20 s"
fi

exit $failed
