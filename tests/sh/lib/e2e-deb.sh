# shellcheck shell=bash disable=SC2034 # sourced by 50-systemd-e2e.sh, which uses SBIN and DROPIN
# The .deb in the real-systemd test: 50-systemd-e2e.sh sources this when
# SEMPREP_E2E_DEB names a .deb (tests/sh/70-packages.sh does). semprep is
# then installed with dpkg inside the booted container, not by install.sh,
# and the same cases run on the packaged files alone; the last case purges
# the package. Uses 50's in_c, in_ipc, semmni, $M, $T, $LEADER, $DEB (deb_install
# runs before 50 defines its other helpers).

SBIN=/usr/sbin
DROPIN=/usr/lib/systemd/system/docker.service.d/10-semprep.conf
pass() { echo "PASS: deb: $*"; }
fail() { echo "FAIL: deb: $*"; failed=1; }

# Case 2 disables the drop-in the way packaging/README.md tells
# administrators to: a file of the same name in /etc/systemd/system, here a
# link to /dev/null.
hide_dropin() { ln -s /dev/null "$M/etc/systemd/system/docker.service.d/10-semprep.conf"; }
show_dropin() { rm "$M/etc/systemd/system/docker.service.d/10-semprep.conf"; }

semprep_paths() { # every path in the container (tmpfs mounts too) named *semprep*
	in_c find / \( -path /proc -o -path /sys -o -path /dev \) -prune -o -name '*semprep*' -print 2>/dev/null | sort
}

wait_until() { # CMD...: retry for up to 10 s
	local _
	for _ in $(seq 50); do "$@" && return 0; sleep 0.2; done
	return 1
}

# How often PID 1 has reloaded since boot. (`systemctl show` proves
# nothing here: an inactive docker.service is loaded afresh from disk.)
reloads() { in_c journalctl -b _PID=1 -o cat --no-pager 2>/dev/null | grep -c '^Reloading'; }
# shellcheck disable=SC2317 # called through wait_until
reloaded_since() { [ "$(reloads)" -gt "$1" ]; }

# After boot: dpkg -i in the running system, as an operator would. Its
# postinst must load the drop-in (daemon-reload): nothing else does before
# case 1 starts docker.
deb_install() {
	semprep_paths >"$T/paths.before"
	local n
	n=$(reloads)
	cp "$DEB" "$M/var/tmp/e2e-package.deb"
	if in_c dpkg -i /var/tmp/e2e-package.deb >"$T/dpkg.log" 2>&1; then
		pass "dpkg -i $(basename "$DEB") inside the running container"
	else
		fail "dpkg -i: $(cat "$T/dpkg.log")"
		return 1
	fi
	rm -f "$M/var/tmp/e2e-package.deb"
	if wait_until reloaded_since "$n"; then
		pass "the postinst ran systemctl daemon-reload (PID 1 logged Reloading)"
	else
		fail "no daemon-reload by the postinst: reloads $n -> $(reloads): $(cat "$T/dpkg.log")"
	fi
}

# Before power-off: purge, and nothing of semprep is left but what it must
# keep.
deb_purge() {
	local semmni_before paths n stage
	# The packaged semprep writes the persist file, as SEMPREP_PERSIST=yes
	# would: run from the host in the container's IPC namespace, since
	# /proc/sys is read-only inside the container. It writes files and
	# takes locks only where root alone can write, and $M and $T are below
	# /tmp: so it writes in a directory of /run, and the file is copied in.
	stage=$(mktemp -d /run/semprep-e2e-persist.XXXXXX)
	in_ipc "$M$SBIN/semprep" raise --semmni 96 --persist --persist-file "$stage/90-semprep.conf" \
		--lock-file "$stage/raise.lock" >"$T/raise.log" 2>&1
	cp "$stage/90-semprep.conf" "$M/etc/sysctl.d/90-semprep.conf" 2>>"$T/raise.log"
	rm -rf "$stage"
	if ! head -n 1 "$M/etc/sysctl.d/90-semprep.conf" 2>/dev/null | grep -q '^# Written by semprep --persist'; then
		fail "semprep raise --persist wrote no /etc/sysctl.d/90-semprep.conf: $(cat "$T/raise.log")"
	fi
	in_c test -f /run/semprep.lock || fail "no /run/semprep.lock after the runs"
	semmni_before=$(semmni)
	# The metrics timer enabled and running, its report written (with
	# DynamicUser=: /run/semprep-metrics links to /run/private/...): a
	# removal must stop both and take the report, which node_exporter would
	# otherwise export until the next boot.
	local root=/proc/$LEADER/root report=/run/semprep-metrics/semprep.prom state
	in_c systemctl enable --now semprep-metrics.timer >"$T/timer.log" 2>&1
	in_c systemctl start semprep-metrics.service >>"$T/timer.log" 2>&1
	if [ -s "$root$report" ] && [ "$(in_c systemctl is-active semprep-metrics.timer)" = active ]; then
		pass "before removal: semprep-metrics.timer active and its report $report written"
	else
		fail "semprep-metrics.timer before removal: $(cat "$T/timer.log"); $(ls -l "$root/run/semprep-metrics/" 2>&1)"
	fi
	n=$(reloads)
	if in_c dpkg -r semprep >"$T/dpkg.log" 2>&1; then
		pass "dpkg -r semprep"
	else
		fail "dpkg -r: $(cat "$T/dpkg.log")"
		return 1
	fi
	state="timer $(in_c systemctl is-active semprep-metrics.timer), service $(in_c systemctl is-active semprep-metrics.service)"
	if [ "$state" = "timer inactive, service inactive" ] &&
		! in_c test -e /run/semprep-metrics && ! in_c test -L /run/semprep-metrics &&
		! in_c test -e /run/private/semprep-metrics; then
		pass "dpkg -r stopped semprep-metrics.timer and .service and removed $report, its directory and systemd's link to it"
	else
		fail "after dpkg -r: $state; left: $(in_c ls -la /run/semprep-metrics/ /run/private/ 2>&1)"
	fi
	if in_c dpkg --purge semprep >>"$T/dpkg.log" 2>&1; then
		pass "dpkg --purge semprep"
	else
		fail "dpkg --purge: $(cat "$T/dpkg.log")"
		return 1
	fi
	semprep_paths >"$T/paths.after"
	if diff -u "$T/paths.before" "$T/paths.after" >"$T/paths.diff"; then
		pass "after the purge no path named *semprep* is left (the drop-ins, the conffile, /run/semprep.lock, the --persist file, the timer's enablement, the docs: all gone)"
	else
		fail "left after the purge: $(cat "$T/paths.diff")"
	fi
	if wait_until reloaded_since "$n" && [ "$(semmni)" = "$semmni_before" ]; then
		pass "the postrm ran systemctl daemon-reload; kernel.sem untouched (SEMMNI $semmni_before)"
	else
		fail "after the purge: reloads $n -> $(reloads); SEMMNI $semmni_before -> $(semmni)"
	fi

	# Control: a persist file semprep did not write, and a lock a process
	# holds (a daemon started by `semprep exec`), stay.
	cp "$DEB" "$M/var/tmp/e2e-package.deb"
	in_c dpkg -i /var/tmp/e2e-package.deb >"$T/dpkg.log" 2>&1 || fail "dpkg -i again: $(cat "$T/dpkg.log")"
	rm -f "$M/var/tmp/e2e-package.deb"
	printf '# the administrator'"'"'s\nkernel.sem = 250 32000 32 4096\n' >"$M/etc/sysctl.d/90-semprep.conf"
	in_c flock /run/semprep.lock sleep 8 &
	local holder=$!
	# shellcheck disable=SC2317 # called through wait_until
	lock_held() { ! in_c flock -n /run/semprep.lock true; }
	wait_until lock_held || fail "the control's lock holder did not take /run/semprep.lock"
	if in_c dpkg --purge semprep >"$T/dpkg.log" 2>&1 &&
		grep -q "the administrator's" "$M/etc/sysctl.d/90-semprep.conf" && in_c test -f /run/semprep.lock; then
		pass "control: the purge keeps a /etc/sysctl.d/90-semprep.conf semprep did not write, and a held /run/semprep.lock"
	else
		fail "control purge: $(cat "$T/dpkg.log"); $(in_c ls -l /etc/sysctl.d /run/semprep.lock 2>&1)"
	fi
	wait "$holder"
	rm -f "$M/etc/sysctl.d/90-semprep.conf"
	in_c rm -f /run/semprep.lock
	paths=$(semprep_paths)
	[ "$paths" = "$(cat "$T/paths.before")" ] || fail "left after the control: $paths"
}
