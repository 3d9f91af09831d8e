#!/usr/bin/env bash
# hooks/ under dash and busybox sh, against a fake daemon, each case in a
# private IPC namespace (unshare --ipc) so the host's semaphores are never
# touched: the generic hook (semprep-hook), the exec wrapper
# (semprep-dockerd) and the OpenRC / SysV snippets as init scripts use them.
# The hooks are installed with install.sh --root into a temp dir; the lock
# file and pidfile live there too, set through a semprep config file
# (SEMPREP_CONFIG), which also checks that the hooks read it.
set -uo pipefail

src=${SEMPREP_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
. "$(dirname "$0")/lib/report.sh"

for b in "${SEMPREP_BIN:-}" "${SEMFIXTURE_BIN:-}"; do
	if [ -z "$b" ] || [ ! -x "$b" ]; then
		skip "hooks: SEMPREP_BIN and SEMFIXTURE_BIN must name built binaries (cargo build --release)"
		exit 0
	fi
done
if [ "$(id -u)" = 0 ]; then
	NS=(unshare --ipc --)
else
	NS=(unshare --user --map-root-user --ipc --)
fi
if ! "${NS[@]}" true 2>/dev/null; then
	skip "hooks: cannot create a private IPC namespace (${NS[*]})"
	exit 0
fi

T=$(mktemp -d /tmp/semprep-hooks.XXXXXX)
# semprep refuses a lock file below a directory others can write (/tmp):
# the lock lives in /run, or, unprivileged, in the build's directory.
L=$(mktemp -d /run/semprep-hooks.XXXXXX 2>/dev/null || mktemp -d "$src/target/semprep-hooks.XXXXXX")
trap 'rm -rf "$T" "$L"' EXIT
export T SEMFIXTURE_BIN

mkdir "$T/root"
sh "$src/install.sh" --root "$T/root" --binary "$SEMPREP_BIN" --units all >"$T/install.log" 2>&1 ||
	{ fail "install.sh --root: $(cat "$T/install.log")"; exit 1; }
LIBEXEC=$T/root/usr/local/libexec/semprep
HOOK=$LIBEXEC/semprep-hook
WRAP=$LIBEXEC/semprep-dockerd
export SEMPREP_BIN="$T/root/usr/local/sbin/semprep"

# The fake daemon records its pid, its arguments, its open files and the
# sets in use when it starts.
mkdir -p "$T/bin"
cat >"$T/bin/dockerd" <<'EOF'
#!/bin/sh
echo $$ >"$T/daemon.pid"
for a in "$@"; do printf '%s\n' "$a"; done >"$T/daemon.args"
ls -l /proc/$$/fd >"$T/daemon.fds" 2>&1
"$SEMFIXTURE_BIN" count >"$T/daemon.count"
EOF
chmod 755 "$T/bin/dockerd"

# semprep's settings for every case: a lock and pidfile of our own, fresh
# cookies count as residual, and where the wrapper finds the fake daemon.
cat >"$T/semprep.conf" <<EOF
SEMPREP_LOCK_FILE=$L/lock
SEMPREP_PIDFILE=$T/docker.pid
SEMPREP_MIN_AGE=0
SEMPREP_DAEMON_BINARY=$T/bin/dockerd
EOF
export SEMPREP_CONFIG=$T/semprep.conf

# ns SEMMNI COOKIES UNRELATED CMD...: in a fresh IPC namespace, set SEMMNI,
# create residual cookies and unrelated sets, run CMD (its rc is returned,
# stdout+stderr in $T/out), then write the sets left in use to $T/count.
ns() {
	rm -f "$T"/daemon.* "$T/count"
	# shellcheck disable=SC2016 # expanded by the inner bash
	"${NS[@]}" bash -c '
		echo "32000 1024000000 500 $1" >/proc/sys/kernel/sem || exit 99
		"$SEMFIXTURE_BIN" cookie --count "$2" >/dev/null || exit 98
		"$SEMFIXTURE_BIN" unrelated --count "$3" >/dev/null || exit 97
		shift 3
		"$@"; rc=$?
		"$SEMFIXTURE_BIN" count >"$T/count"
		exit $rc' _ "$@" >"$T/out" 2>&1
}
count() { cat "$T/count" 2>/dev/null; }

# Both hooks read the settings with the same loop, copied rather than shared
# (each must start the daemon on its own, see the hooks): no drifting apart.
# shellcheck disable=SC2016 # the loop's first line, literally
config_loop() { sed -n '/^for f in ${SEMPREP_CONFIG:-/,/^done$/p' "$1"; }
loop=$(config_loop "$src/hooks/semprep-hook.sh")
if [ "$(printf '%s\n' "$loop" | wc -l)" -gt 5 ] && [ "$loop" = "$(config_loop "$src/hooks/semprep-exec.sh")" ]; then
	pass "hooks: semprep-hook.sh and semprep-exec.sh read the settings with the same loop"
else
	fail "hooks: the settings loops differ: $(diff <(printf '%s\n' "$loop") <(config_loop "$src/hooks/semprep-exec.sh"))"
fi

shells=()
if command -v dash >/dev/null; then shells+=("dash"); else skip "hooks under dash: dash is not installed"; fi
if command -v busybox >/dev/null; then shells+=("busybox sh"); else skip "hooks under busybox sh: busybox is not installed"; fi

for SH in "${shells[@]}"; do
	read -r -a sh <<<"$SH"

	# --- the generic hook ---
	if ns 40 40 0 "${sh[@]}" "$HOOK" docker && [ "$(count)" = 0 ]; then
		pass "[$SH] hook: SEMMNI 40 full of residual cookies: exit 0, all removed"
	else
		fail "[$SH] hook, full of cookies: rc $?, sets left $(count): $(cat "$T/out")"
	fi
	if ns 64 0 0 "${sh[@]}" "$HOOK" docker && [ ! -s "$T/out" ]; then
		pass "[$SH] hook: nothing to do: exit 0, prints nothing"
	else
		fail "[$SH] hook, nothing to do: $(cat "$T/out")"
	fi
	if ns 40 0 40 env SEMPREP_POLICY=clean "${sh[@]}" "$HOOK" docker; then
		fail "[$SH] hook: SEMMNI full of unrelated sets, policy clean: exit 0 (want 3)"
	else
		rc=$?
		if [ $rc = 3 ] && grep -q SEMMNI "$T/out" && grep -q /proc/sys/kernel/sem "$T/out" && [ "$(count)" = 40 ]; then
			pass "[$SH] hook: full of unrelated sets, policy clean: exit 3, says SEMMNI and /proc/sys/kernel/sem, touches nothing"
		else
			fail "[$SH] hook, unrelated sets: rc $rc, sets $(count): $(cat "$T/out")"
		fi
	fi
	if ns 40 40 0 env SEMPREP_BIN="$T/nonexistent" "${sh[@]}" "$HOOK" docker &&
		grep -q 'missing or not executable' "$T/out"; then
		pass "[$SH] hook: semprep binary missing: warning, exit 0 (the start goes on)"
	else
		fail "[$SH] hook, no binary: $(cat "$T/out")"
	fi
	printf '#!/bin/sh\nexec sleep 30\n' >"$T/hang" && chmod 755 "$T/hang"
	start=$(date +%s)
	if ns 40 0 0 env SEMPREP_BIN="$T/hang" SEMPREP_HOOK_TIMEOUT=1 "${sh[@]}" "$HOOK" docker &&
		[ $(($(date +%s) - start)) -lt 6 ] && grep -q 'killed' "$T/out"; then
		pass "[$SH] hook: a hanging semprep is killed after SEMPREP_HOOK_TIMEOUT=1: exit 0 within seconds"
	else
		fail "[$SH] hook, hang: $(($(date +%s) - start))s: $(cat "$T/out")"
	fi
	printf '#!/bin/sh\nexit 101\n' >"$T/crash" && chmod 755 "$T/crash"
	if ns 40 0 0 env SEMPREP_BIN="$T/crash" "${sh[@]}" "$HOOK" docker && grep -q 'exit status 101' "$T/out"; then
		pass "[$SH] hook: semprep crashing (exit 101): warning, exit 0"
	else
		fail "[$SH] hook, crash: $(cat "$T/out")"
	fi
	ns 40 0 0 env SEMPREP_BIN="$T/crash" SEMPREP_STRICT=yes "${sh[@]}" "$HOOK" docker
	rc=$?
	if [ $rc = 1 ]; then
		pass "[$SH] hook: semprep crashing under SEMPREP_STRICT=yes: exit 1"
	else
		fail "[$SH] hook, crash + strict: rc $rc: $(cat "$T/out")"
	fi
	printf 'SEMPREP_MIN_AGE=0\nif then fi (\n' >"$T/broken.conf"
	if ns 40 40 0 env SEMPREP_CONFIG="$T/broken.conf $T/semprep.conf" "${sh[@]}" "$HOOK" docker &&
		grep -q "ignoring $T/broken.conf" "$T/out" && [ "$(count)" = 0 ]; then
		pass "[$SH] hook: an unparsable config file is skipped with a warning, the rest applies"
	else
		fail "[$SH] hook, broken config: sets $(count): $(cat "$T/out")"
	fi
	# A live daemon (a process named dockerd whose pid is in the pidfile):
	# semprep refuses (4) and leaves the cookies; the hook lets the init
	# script carry on.
	mkdir -p "$T/livebin" && cp "$(type -P sleep)" "$T/livebin/dockerd"
	"$T/livebin/dockerd" 30 &
	live=$!
	echo "$live" >"$T/docker.pid"
	if ns 40 40 0 "${sh[@]}" "$HOOK" docker && [ "$(count)" = 40 ]; then
		pass "[$SH] hook: dockerd alive: semprep refuses and removes nothing, the hook exits 0"
	else
		fail "[$SH] hook, daemon alive: sets $(count): $(cat "$T/out")"
	fi
	kill "$live" 2>/dev/null
	wait "$live" 2>/dev/null
	rm -f "$T/docker.pid"

	# --- the exec wrapper ---
	# shellcheck disable=SC2016 # expanded by the inner bash
	if ns 40 40 0 bash -c '"$@" & p=$!; wait $p; rc=$?; echo $p >"$T/launcher.pid"; exit $rc' _ \
		"${sh[@]}" "$WRAP" -p /run/x.pid --log-level "two words" '' &&
		[ "$(cat "$T/daemon.pid")" = "$(cat "$T/launcher.pid")" ] &&
		[ "$(printf '%s\n' -p /run/x.pid --log-level "two words" '')" = "$(cat "$T/daemon.args")" ] &&
		[ "$(cat "$T/daemon.count")" = 0 ] && grep -q " -> $L/lock\$" "$T/daemon.fds"; then
		pass "[$SH] semprep-dockerd: cookies gone before the daemon runs, same pid, arguments intact, lock fd inherited"
	else
		fail "[$SH] semprep-dockerd: out: $(cat "$T/out"); pid $(cat "$T/daemon.pid" "$T/launcher.pid" 2>&1 | tr '\n' ' '); args $(tr '\n' '|' <"$T/daemon.args" 2>&1); fds $(cat "$T/daemon.fds" 2>&1)"
	fi
	if ns 40 40 0 env SEMPREP_BIN="$T/nonexistent" "${sh[@]}" "$WRAP" --x && [ -s "$T/daemon.pid" ] &&
		[ "$(cat "$T/daemon.count")" = 40 ] && grep -q 'starting dockerd without it' "$T/out"; then
		pass "[$SH] semprep-dockerd: semprep missing: the daemon starts anyway, with a warning"
	else
		fail "[$SH] semprep-dockerd, no semprep: $(cat "$T/out")"
	fi
	ns 40 0 40 env SEMPREP_POLICY=clean "${sh[@]}" "$WRAP" --x
	rc=$?
	if [ $rc = 3 ] && [ ! -e "$T/daemon.pid" ] && grep -q SEMMNI "$T/out"; then
		pass "[$SH] semprep-dockerd: no headroom and no allowed fix: exit 3, the daemon is not started"
	else
		fail "[$SH] semprep-dockerd, unfixable: rc $rc: $(cat "$T/out")"
	fi
	cp "$WRAP" "$T/semprep-podman"
	ns 40 0 0 "${sh[@]}" "$T/semprep-podman"
	rc=$?
	if [ $rc = 2 ] && grep -q 'cannot tell the daemon' "$T/out"; then
		pass "[$SH] the wrapper under an unknown name: exit 2, says why"
	else
		fail "[$SH] wrapper, unknown name: rc $rc: $(cat "$T/out")"
	fi

	# --- the init-script snippets, as the init scripts use them ---
	sed "s#/usr/local/libexec/semprep#$LIBEXEC#g" "$src/hooks/sysvinit/docker.default" >"$T/default-docker"
	cat >"$T/init-debian" <<'EOF'
#!/bin/sh
# Debian's /etc/init.d/docker, reduced to how it uses /etc/default/docker.
set -e
DOCKERD=/usr/sbin/dockerd
DOCKER_PIDFILE=$T/docker.pid
DOCKER_OPTS=
if [ -f "$T/default-docker" ]; then
	. "$T/default-docker"
fi
case "$1" in
start) "$DOCKERD" -p "$DOCKER_PIDFILE" $DOCKER_OPTS ;;
esac
EOF
	echo 'DOCKER_OPTS="--iptables=false --bridge=none"' >>"$T/default-docker"
	if ns 40 40 0 "${sh[@]}" "$T/init-debian" start && [ "$(cat "$T/daemon.count" 2>/dev/null)" = 0 ] &&
		[ "$(tr '\n' ' ' <"$T/daemon.args")" = "-p $T/docker.pid --iptables=false --bridge=none " ]; then
		pass "[$SH] SysV /etc/default/docker snippet (DOCKERD=): the daemon starts through semprep with its options"
	else
		fail "[$SH] SysV default snippet: $(cat "$T/out")"
	fi

	sed "s#/usr/local/libexec/semprep#$LIBEXEC#g" "$src/hooks/sysvinit/docker.sysconfig" >"$T/sysconfig-docker"
	cat >"$T/init-rhel" <<'EOF'
#!/bin/sh
# A SysV script that sources /etc/sysconfig/docker and hard-codes the binary.
[ -e "$T/sysconfig-docker" ] && . "$T/sysconfig-docker"
case "$1" in
start) "$T/bin/dockerd" ;;
stop) : ;;
esac
EOF
	if ns 40 40 0 "${sh[@]}" "$T/init-rhel" start && [ "$(cat "$T/daemon.count" 2>/dev/null)" = 0 ]; then
		pass "[$SH] SysV /etc/sysconfig/docker snippet: 'start' runs the hook before the daemon"
	else
		fail "[$SH] SysV sysconfig snippet, start: $(cat "$T/out")"
	fi
	if ns 40 40 0 "${sh[@]}" "$T/init-rhel" stop && [ "$(count)" = 40 ]; then
		pass "[$SH] SysV /etc/sysconfig/docker snippet: 'stop' does not run semprep"
	else
		fail "[$SH] SysV sysconfig snippet, stop: sets $(count): $(cat "$T/out")"
	fi
	ns 40 0 40 env SEMPREP_POLICY=clean "${sh[@]}" "$T/init-rhel" start
	rc=$?
	if [ $rc = 1 ] && [ ! -e "$T/daemon.pid" ] && grep -q SEMMNI "$T/out"; then
		pass "[$SH] SysV /etc/sysconfig/docker snippet: no headroom: the start fails (exit 1) with semprep's reason"
	else
		fail "[$SH] SysV sysconfig snippet, unfixable: rc $rc: $(cat "$T/out")"
	fi

	{
		echo 'DOCKER_OPTS="--log-level warn"'
		sed "s#/usr/local/libexec/semprep#$LIBEXEC#g" "$src/hooks/openrc/docker.confd"
	} >"$T/confd-docker"
	cat >"$T/init-openrc" <<'EOF'
#!/bin/sh
# How openrc-run and Alpine's /etc/init.d/docker use /etc/conf.d/docker:
# conf.d first, then the script's command= and command_args=, which
# supervise-daemon runs with the arguments word-split.
. "$T/confd-docker"
command="${DOCKERD_BINARY:-/usr/bin/dockerd}"
command_args="${DOCKER_OPTS}"
eval "\"\$command\" $command_args"
EOF
	if ns 40 40 0 "${sh[@]}" "$T/init-openrc" && [ "$(cat "$T/daemon.count" 2>/dev/null)" = 0 ] &&
		[ "$(tr '\n' ' ' <"$T/daemon.args")" = "--log-level warn " ] && grep -q " -> $L/lock\$" "$T/daemon.fds"; then
		pass "[$SH] OpenRC conf.d snippet (DOCKERD_BINARY=): the daemon runs through semprep exec with DOCKER_OPTS"
	else
		fail "[$SH] OpenRC snippet: $(cat "$T/out")"
	fi
done

exit $failed
