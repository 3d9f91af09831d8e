# shellcheck shell=bash
# semprep-metrics.service's sandbox in the booted container (issue 13 item
# 3): 50-systemd-e2e.sh sources this and runs metrics_sandbox_case after
# metrics_timer_case. The timer's job runs as a dynamic user holding only
# CAP_IPC_OWNER, yet reads root's 0600 cookies as root does: with residual
# cookies, one with a waiter and one whose last-op pid is a live root
# process of the container (the ProtectProc= question: the job must still
# see it alive), its busy and residual counts equal root's `semprep status`.
# Without the capability every root cookie would read as busy. Uses 50's
# in_c, in_ipc_pid, fill, pass, fail, $T, $SBIN, $SEMFIXTURE_BIN, $LEADER.

metrics_sandbox_case() {
	local file=/run/semprep-metrics/semprep.prom root c held waiter_pid hold_pid uid mode
	root=/proc/$LEADER/root # the container's /run is its own tmpfs
	fill 48 3 0 || fail "fill the container's IPC namespace"
	# Two more cookies, made busy by root processes of the container.
	mapfile -t c < <(in_ipc_pid "$SEMFIXTURE_BIN" cookie --count 2)
	in_ipc_pid timeout 300 "$SEMFIXTURE_BIN" waiter "${c[0]}" >/dev/null 2>&1 &
	waiter_pid=$!
	in_ipc_pid timeout 300 "$SEMFIXTURE_BIN" hold "${c[1]}" >"$T/hold.out" 2>&1 &
	hold_pid=$!
	for _ in $(seq 50); do
		held=$(cat "$T/hold.out")
		[ "$held" = ready ] && break
		sleep 0.1
	done
	rm -f "$root$file"
	in_c systemctl enable --now semprep-metrics.timer >"$T/timer.log" 2>&1 ||
		fail "systemctl enable --now semprep-metrics.timer: $(cat "$T/timer.log")"
	for _ in $(seq 90); do
		[ -s "$root$file" ] && break
		sleep 1
	done
	in_c systemctl disable --now semprep-metrics.timer >/dev/null 2>&1
	# What root's status says of the same namespace, with the settings file
	# the service reads (SEMPREP_MIN_AGE=0 here).
	in_c sh -c "set -a; . /etc/default/semprep; exec $SBIN/semprep status --json" >"$T/root.json" 2>"$T/root.err"
	# The holder by its pid in the container (the live owner root saw);
	# removing the sets wakes the waiter.
	local owner
	owner=$(jq -r '[.sets[] | select(.owner.state == "alive") | .owner.pid][0] // empty' "$T/root.json" 2>/dev/null)
	[ -z "$owner" ] || in_c kill "$owner" 2>/dev/null
	in_ipc_pid ipcrm --all=sem >/dev/null 2>&1
	wait "$waiter_pid" "$hold_pid" 2>/dev/null

	local want_busy want_residual got_busy got_residual
	want_busy=$(jq '[.sets[] | select(.class == "busy")] | length' "$T/root.json" 2>/dev/null)
	want_residual=$(jq '[.sets[] | select(.class == "residual")] | length' "$T/root.json" 2>/dev/null)
	got_busy=$(sed -n 's/^semprep_dm_cookies{class="busy"} //p' "$root$file" 2>/dev/null)
	got_residual=$(sed -n 's/^semprep_dm_cookies{class="residual"} //p' "$root$file" 2>/dev/null)
	if [ "$held" = ready ] && [ "$want_busy" = 2 ] && [ "$want_residual" = 3 ] &&
		[ "$got_busy" = "$want_busy" ] && [ "$got_residual" = "$want_residual" ]; then
		pass "metrics sandbox: the dynamic user's report equals root's status: busy 2 (a waiter, a live owner), residual 3"
	else
		fail "metrics sandbox: report busy '$got_busy' residual '$got_residual', root's status busy '$want_busy' residual '$want_residual' (holder: '$held'; root: $(head -c 200 "$T/root.err")); $(in_c systemctl status semprep-metrics.service --no-pager -n 10 2>&1 | tail -n 10)"
	fi
	# The dynamic users' range (systemd's DYNAMIC_UID_MIN..MAX): not root,
	# nobody static.
	uid=$(stat -c %u "$root$file" 2>/dev/null)
	mode=$(stat -c %a "$root$file" 2>/dev/null)
	# (Once the job ends systemd hands its kept directory back to root, and
	# to the next run's user when it starts.)
	if [ -n "$uid" ] && [ "$uid" -ge 61184 ] && [ "$uid" -le 65519 ] && [ "$mode" = 644 ]; then
		pass "metrics sandbox: $file written by dynamic uid $uid (not root), mode 0644"
	else
		fail "metrics sandbox: $file owner '$uid' mode '$mode'"
	fi
	local complaints
	complaints=$(in_c journalctl -b -u semprep-metrics.service -o cat --no-pager 2>/dev/null | grep -ci 'error\|warn')
	if [ "$complaints" = 0 ] && [ "$(in_c systemctl show semprep-metrics.service -p Result --value)" = success ]; then
		pass "metrics sandbox: the service succeeded, no warning or error in its journal"
	else
		fail "metrics sandbox: service result $(in_c systemctl show semprep-metrics.service -p Result --value); journal: $(in_c journalctl -b -u semprep-metrics.service -o cat --no-pager 2>&1 | tail -n 5)"
	fi
	# The report and its kept directory: the .deb's purge test lists every
	# file named *semprep* left behind.
	in_c rm -f "$file"
	# With DynamicUser= it is /run/private/semprep-metrics behind a link.
	in_c rm -rf /run/semprep-metrics /run/private/semprep-metrics
}
