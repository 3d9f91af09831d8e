# shellcheck shell=bash
# semprep-metrics.timer in the booted container: 50-systemd-e2e.sh sources
# this and runs metrics_timer_case while semprep is installed (by install.sh
# or the .deb). Installed but not enabled; once enabled, the report appears
# within the timer's period (a minute) with the container's state. Uses
# 50's in_c, fill, pass, fail, $LEADER, $T.

metrics_timer_case() {
	local file=/run/semprep-metrics/semprep.prom enabled _
	local M=/proc/$LEADER/root # the container's /run is its own tmpfs
	enabled=$(in_c systemctl is-enabled semprep-metrics.timer 2>&1)
	if [ "$enabled" = disabled ] && [ ! -e "$M$file" ]; then
		pass "semprep-metrics.timer is installed, not enabled, and no report is written"
	else
		fail "semprep-metrics.timer before enabling: is-enabled '$enabled', report exists: $([ -e "$M$file" ] && echo yes || echo no)"
	fi
	fill 48 3 0 || fail "fill the container's IPC namespace"
	in_c systemctl enable --now semprep-metrics.timer >"$T/timer.log" 2>&1 ||
		fail "systemctl enable --now semprep-metrics.timer: $(cat "$T/timer.log")"
	for _ in $(seq 70); do
		[ -s "$M$file" ] && break
		sleep 1
	done
	if grep -q '^semprep_dm_cookies{class="residual"} 3$' "$M$file" 2>/dev/null &&
		grep -q '^semprep_semaphore_sets_limit 48$' "$M$file" &&
		[ "$(stat -c %a "$M$file")" = 644 ] &&
		[ "$(in_c systemctl show semprep-metrics.service -p Result --value)" = success ]; then
		pass "enabled, the timer wrote $file within its period: 3 residual cookies, SEMMNI 48, mode 0644, the service succeeded"
	else
		fail "semprep-metrics.timer: $(head -c 300 "$M$file" 2>/dev/null); $(in_c systemctl status semprep-metrics.service --no-pager -n 10 2>&1 | tail -n 10)"
	fi
	in_c systemctl disable --now semprep-metrics.timer >/dev/null 2>&1
	# The report and its directory (RuntimeDirectory=, preserved between
	# runs): the .deb's purge test lists every file named *semprep* left behind.
	in_c rm -f "$file"
	# With DynamicUser= it is /run/private/semprep-metrics behind a link.
	in_c rm -rf /run/semprep-metrics /run/private/semprep-metrics
}
