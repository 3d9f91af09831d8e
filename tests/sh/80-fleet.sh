#!/usr/bin/env bash
# Monitoring across a fleet (issue 10), with the real tools:
#   - `promtool check metrics` accepts `status --format prometheus` for an
#     empty namespace, a mix of every class and 30,000 cookies, and its
#     values equal what `status --json` says for the same state, also as a
#     user who cannot read root's cookies (semprep_details_readable 0);
#   - the hook's --metrics-file, three daemons in one file (one run ended
#     by the time budget's watchdog), passes promtool;
#   - a real node_exporter on a loopback port, its textfile collector on the
#     directory semprep writes to, scraped with curl: semprep's families with
#     the right values, node_textfile_scrape_error 0; then the file is
#     rewritten in a loop while scraping: never a scrape error;
#   - semprep-metrics.timer and .service pass `systemd-analyze verify`.
# promtool and node_exporter come from Debian's packages, unpacked by
# `tests/deps.sh --unpack`, never installed. Every semprep runs in a
# private IPC namespace (unshare --ipc). Needs root, apt-get, dpkg-deb, jq,
# curl.
set -uo pipefail

src=${SEMPREP_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
failed=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failed=1; }

for b in "${SEMPREP_BIN:-}" "${SEMFIXTURE_BIN:-}"; do
	if [ -z "$b" ] || [ ! -x "$b" ]; then
		echo "SKIP: fleet monitoring: SEMPREP_BIN and SEMFIXTURE_BIN must name built binaries"
		exit 0
	fi
done
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: fleet monitoring: needs root (unshare --ipc)"
	exit 0
fi
for tool in apt-get dpkg-deb jq curl unshare systemd-analyze; do
	if ! command -v "$tool" >/dev/null; then
		echo "SKIP: fleet monitoring: $tool is not installed (tests/deps.sh installs it)"
		exit 0
	fi
done

tmp=$(mktemp -d /tmp/semprep-fleet.XXXXXX)
exporter_pid=
loop_pid=
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	[ -z "$loop_pid" ] || kill "$loop_pid" 2>/dev/null
	[ -z "$exporter_pid" ] || kill "$exporter_pid" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

if ! "$src/tests/deps.sh" --unpack "$tmp/root" 2>"$tmp/deps.err"; then
	fail "tests/deps.sh --unpack: $(cat "$tmp/deps.err")"
	exit 1
fi
promtool=$tmp/root/usr/bin/promtool
exporter=$tmp/root/usr/bin/prometheus-node-exporter
for t in "$promtool" "$exporter"; do
	[ -x "$t" ] || { fail "the packages ship no ${t#"$tmp/root"}"; exit 1; }
done

# --- promtool check metrics, and the values against status --json --------------
# $1 = name, $2 = shell commands that make the state (semfixture calls),
# $3 = what runs semprep (default: root itself).
# In one IPC namespace: make the state, then status --json and --format
# prometheus, with the time between them for the age check.
check_state() {
	local name=$1 make=$2 as=${3:-} d=$tmp/$1
	mkdir -p "$d"
	# shellcheck disable=SC2016 # expanded by the inner shell
	unshare --ipc env F="$SEMFIXTURE_BIN" S="$SEMPREP_BIN" D="$d" bash -c "
		$make
		date +%s >\$D/t0
		$as \$S status --json --min-age 0 --stuck-after 0 >\$D/json
		$as \$S status --format prometheus --min-age 0 --stuck-after 0 >\$D/prom
		date +%s >\$D/t1
		kill \$(jobs -p) 2>/dev/null; wait
	" 2>"$d/err"
	if "$promtool" check metrics <"$d/prom" >"$d/lint" 2>&1; then
		pass "$name: promtool check metrics accepts the output ($(grep -c '^semprep_' "$d/prom") series)"
	else
		fail "$name: promtool check metrics: $(head -n 5 "$d/lint")"
	fi
	# Every family has HELP and TYPE; every series's value from the JSON.
	local want got m
	want=$(jq -r '
		def n(c): [.sets[] | select(.class == c)] | length;
		"semprep_semaphore_sets_in_use \(.usage.sets)",
		"semprep_semaphore_sets_limit \(.limits.semmni)",
		"semprep_semaphores_in_use \(.usage.semaphores)",
		"semprep_semaphores_limit \(.limits.semmns)",
		"semprep_semaphores_per_set_limit \(.limits.semmsl)",
		"semprep_semaphore_operations_per_call_limit \(.limits.semopm)",
		"semprep_dm_cookies{class=\"residual\"} \(n("residual"))",
		"semprep_dm_cookies{class=\"busy\"} \(n("busy"))",
		"semprep_dm_cookies{class=\"stuck\"} \(n("stuck"))",
		"semprep_dm_cookies{class=\"lookalike\"} \(n("lookalike"))",
		"semprep_details_readable \(if .privileged and ([.sets[] | select(.unreadable)] | length == 0) then 1 else 0 end)",
		"semprep_headroom_short \(if .plan.before.short then 1 else 0 end)"' "$d/json")
	got=$(grep -E '^semprep_(semaphore|dm_cookies|details|headroom)' "$d/prom")
	if [ "$want" = "$got" ]; then
		pass "$name: every value equals status --json's: $(echo "$got" | grep dm_cookies | sed 's/semprep_dm_cookies//' | paste -sd' ')"
	else
		fail "$name: values differ from status --json: $(diff <(echo "$want") <(echo "$got") | head -n 8 | paste -sd'|')"
	fi
	# The oldest residual age moves with the clock: within the seconds
	# between the two reads.
	local json_age prom_age
	json_age=$(jq '[.sets[] | select(.class == "residual") | .idle_secs] | max // 0' "$d/json")
	prom_age=$(sed -n 's/^semprep_oldest_residual_cookie_age_seconds //p' "$d/prom")
	if [ -n "$prom_age" ] && [ $((prom_age - json_age)) -ge 0 ] &&
		[ $((prom_age - json_age)) -le $(($(cat "$d/t1") - $(cat "$d/t0") + 1)) ]; then
		pass "$name: oldest residual age $prom_age s (JSON: $json_age s, read just before)"
	else
		fail "$name: oldest residual age $prom_age, status --json says $json_age"
	fi
	while read -r m; do
		if ! grep -q "^# HELP $m " "$d/prom" || ! grep -q "^# TYPE $m gauge$" "$d/prom"; then
			fail "$name: $m has no HELP or TYPE"
		fi
	done < <(sed -n 's/^\(semprep_[a-z_]*\).*/\1/p' "$d/prom" | sort -u)
	for m in semprep_build_info semprep_report_timestamp_seconds; do
		grep -q "^$m" "$d/prom" || fail "$name: $m missing"
	done
}

check_state empty ':'
# shellcheck disable=SC2016 # $F is the inner shell's
# Residual, busy (a live owner), stuck (a waiter, --stuck-after 0), and
# look-alikes: every class at least once.
mix='
	$F cookie --count 3 >/dev/null
	$F lookalike nsems2 >/dev/null; $F lookalike mode0666 >/dev/null
	busy=$($F cookie); $F hold $busy >/dev/null 2>&1 &
	stuck=$($F cookie --state ops --ops 1); $F waiter $stuck >/dev/null 2>&1 &
	for _ in $(seq 100); do [ "$(grep -c . /proc/sysvipc/sem)" -ge 7 ] && break; sleep 0.05; done
	sleep 0.3'
check_state mix "$mix"
# The same state seen by nobody: root's cookies are unreadable, so all five
# count as busy, and the report says it could not read them.
check_state mix-nobody "$mix" 'setpriv --reuid=65534 --regid=65534 --clear-groups'
# shellcheck disable=SC2016 # $F is the inner shell's
check_state cookies30000 'echo "250 64000 32 32768" >/proc/sys/kernel/sem; $F cookie --count 30000 >/dev/null'
if grep -q 'class="stuck"} 1' "$tmp/mix/prom" && grep -q 'class="busy"} 1' "$tmp/mix/prom" &&
	grep -q 'class="lookalike"} 2' "$tmp/mix/prom" && grep -q 'class="residual"} 3' "$tmp/mix/prom"; then
	pass "mix: 3 residual, 1 busy, 1 stuck, 2 look-alike"
else
	fail "mix: not every class: $(grep dm_cookies "$tmp/mix/prom" | paste -sd' ')"
fi
if grep -q '^semprep_details_readable 1$' "$tmp/mix/prom" && grep -q '^semprep_details_readable 0$' "$tmp/mix-nobody/prom" &&
	grep -q 'class="busy"} 5' "$tmp/mix-nobody/prom" && grep -q 'class="residual"} 0' "$tmp/mix-nobody/prom" &&
	[ "$(jq .privileged "$tmp/mix-nobody/json")" = false ]; then
	pass "mix as nobody: semprep_details_readable 0, the 5 cookies counted busy (as root: 1, and the classes)"
else
	fail "mix as nobody: $(grep -E 'dm_cookies|details' "$tmp/mix-nobody/prom" | paste -sd' ')"
fi
if grep -q 'semprep_dm_cookies{class="residual"} 30000' "$tmp/cookies30000/prom"; then
	pass "30,000 cookies counted"
else
	fail "30,000 cookies: $(grep dm_cookies "$tmp/cookies30000/prom" | paste -sd' ')"
fi

# --- the hook's file: three daemons, one file -------------------------------
# The textfile directory: semprep writes only where no one but root (or
# the collector's user) can write, so not under /tmp.
text=/run/semprep-fleet-textfile-$$
mkdir -p "$text"
# The lock's directory must be root's alone (not under /tmp).
lockdir=/run/semprep-fleet-$$
trap 'cleanup; rm -rf "$lockdir" "$text"' EXIT
# shellcheck disable=SC2016 # the inner shell's variables
unshare --ipc env F="$SEMFIXTURE_BIN" S="$SEMPREP_BIN" T="$text" L="$lockdir" bash -c '
	mkdir -p $L; chmod 700 $L
	$F cookie --count 4 >/dev/null
	SEMPREP_LOCK_FILE=$L/lock $S run --daemon none --min-age 0 --metrics-file $T/semprep-hook.prom
	SEMPREP_LOCK_FILE=$L/lock SEMPREP_METRICS_FILE=$T/semprep-hook.prom $S run --daemon containerd \
		--min-age 0 --pidfile /nonexistent
' >"$tmp/hook.out" 2>&1
# isulad's start hangs reading /proc/sys/kernel/sem (a FIFO over it): the
# time budget's watchdog ends it and records that.
mkfifo "$lockdir/sem-fifo"
# shellcheck disable=SC2016 # the inner shell's variables
unshare --ipc --mount --propagation private env S="$SEMPREP_BIN" T="$text" L="$lockdir" sh -c '
	mount --bind $L/sem-fifo /proc/sys/kernel/sem &&
	SEMPREP_LOCK_FILE=$L/lock $S run --daemon isulad --pidfile /nonexistent --timeout 300ms \
		--metrics-file $T/semprep-hook.prom
' >>"$tmp/hook.out" 2>&1
hook=$text/semprep-hook.prom
for _ in $(seq 50); do grep -q '^semprep_last_run_timed_out{daemon="isulad"} 1$' "$hook" && break; sleep 0.1; done
if "$promtool" check metrics <"$hook" >"$tmp/lint" 2>&1 &&
	grep -q '^semprep_last_run_cookies_removed{daemon="none"} 4$' "$hook" &&
	grep -q '^semprep_last_run_cookies_removed{daemon="containerd"} 0$' "$hook" &&
	grep -q '^semprep_last_run_exit_code{daemon="containerd"} 0$' "$hook" &&
	grep -q '^semprep_last_run_timed_out{daemon="containerd"} 0$' "$hook" &&
	grep -q '^semprep_last_run_timed_out{daemon="isulad"} 1$' "$hook" &&
	grep -q '^semprep_last_run_exit_code{daemon="isulad"} 0$' "$hook" &&
	! grep -q 'cookies_removed{daemon="isulad"}' "$hook" &&
	[ "$(grep -c '^# TYPE' "$hook")" = 7 ]; then
	pass "hook file: three daemons' outcomes (4 removed, 0, and one the watchdog ended: timed_out 1), one HELP/TYPE per family, promtool accepts it"
else
	fail "hook file: $(cat "$tmp/lint" "$hook" "$tmp/hook.out" | head -n 20 | paste -sd'|')"
fi
if grep -v '^#' "$hook" | grep -qv '^semprep_last_run_'; then
	fail "hook file holds more than semprep_last_run_* (node_exporter refuses a series in two files)"
fi

# --- a real node_exporter scraping the textfile directory ----------------------
# shellcheck disable=SC2016 # the inner shell's variables
unshare --ipc env F="$SEMFIXTURE_BIN" S="$SEMPREP_BIN" T="$text" bash -c '
	$F cookie --count 5 >/dev/null
	$S status --format prometheus --min-age 0 --output $T/semprep.prom'
start_exporter() {
	local port
	for _ in 1 2 3 4 5; do
		port=$(shuf -i 20000-60000 -n 1)
		"$exporter" --web.listen-address="127.0.0.1:$port" --collector.disable-defaults \
			--collector.textfile --collector.textfile.directory="$text" >"$tmp/exporter.log" 2>&1 &
		exporter_pid=$!
		for _ in $(seq 50); do
			if curl -sf "http://127.0.0.1:$port/metrics" >/dev/null 2>&1; then
				url="http://127.0.0.1:$port/metrics"
				return 0
			fi
			kill -0 "$exporter_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill "$exporter_pid" 2>/dev/null; wait "$exporter_pid" 2>/dev/null; exporter_pid=
	done
	return 1
}
url=
if ! start_exporter; then
	fail "node_exporter did not start on a loopback port: $(tail -n 5 "$tmp/exporter.log")"
	exit 1
fi
curl -sf "$url" >"$tmp/scrape" || fail "curl $url failed"
if grep -q '^node_textfile_scrape_error 0$' "$tmp/scrape" &&
	grep -q '^semprep_dm_cookies{class="residual"} 5$' "$tmp/scrape" &&
	grep -q '^semprep_semaphore_sets_in_use 5$' "$tmp/scrape" &&
	grep -q '^semprep_last_run_cookies_removed{daemon="none"} 4$' "$tmp/scrape" &&
	grep -q '^semprep_last_run_timed_out{daemon="isulad"} 1$' "$tmp/scrape" &&
	grep -q '^semprep_details_readable 1$' "$tmp/scrape" &&
	grep -q '^semprep_headroom_short 0$' "$tmp/scrape"; then
	pass "node_exporter: semprep's families from both files with the right values, node_textfile_scrape_error 0"
else
	fail "node_exporter scrape: $(grep -E '^(node_textfile_scrape_error|semprep_dm|semprep_semaphore_sets_in)' "$tmp/scrape" | paste -sd'|') $(tail -n 3 "$tmp/exporter.log")"
fi
# Control: a broken file is a scrape error, so the check above can fail.
printf 'semprep_broken{ 1\n' >"$text/broken.prom"
curl -sf "$url" >"$tmp/scrape-broken"
if grep -q '^node_textfile_scrape_error 1$' "$tmp/scrape-broken"; then
	pass "node_exporter control: a malformed .prom file makes node_textfile_scrape_error 1"
else
	fail "node_exporter control: a malformed file went unnoticed"
fi
rm -f "$text/broken.prom"

# Rewrite in a loop (different sizes each time) while scraping.
# shellcheck disable=SC2016 # the inner shell's variables
unshare --ipc env F="$SEMFIXTURE_BIN" S="$SEMPREP_BIN" T="$text" bash -c '
	while :; do
		$F cookie --count 50 >/dev/null
		$S status --format prometheus --min-age 0 --output $T/semprep.prom || exit 1
		[ "$(grep -c . /proc/sysvipc/sem)" -gt 3000 ] && ipcrm --all=sem
	done' >"$tmp/loop.log" 2>&1 &
loop_pid=$!
errors=0 scrapes=0 missing=0
for _ in $(seq 300); do
	out=$(curl -sf "$url") || { errors=$((errors + 1)); continue; }
	scrapes=$((scrapes + 1))
	# Here-strings, not `echo | grep -q`: under pipefail, grep -q leaving
	# early would fail echo with SIGPIPE.
	grep -q '^node_textfile_scrape_error 0$' <<<"$out" || errors=$((errors + 1))
	grep -q '^semprep_build_info{' <<<"$out" || missing=$((missing + 1))
done
kill "$loop_pid" 2>/dev/null; wait "$loop_pid" 2>/dev/null; loop_pid=
if [ "$scrapes" = 300 ] && [ "$errors" = 0 ] && [ "$missing" = 0 ]; then
	pass "300 scrapes while semprep rewrote the file in a loop: no scrape error, semprep's families every time"
else
	fail "rewrite loop: $scrapes scrapes, $errors errors, $missing without semprep's families; $(tail -n 3 "$tmp/loop.log") $(grep -v level=info "$tmp/exporter.log" | tail -n 3)"
fi
leftover=$(find "$text" -name '.*' -type f | wc -l)
if [ "$leftover" = 0 ]; then
	pass "no temporary file left in the textfile directory"
else
	fail "$leftover temporary files left in $text"
fi

# --- the timer and its service ---------------------------------------------------
units=("$src/systemd/semprep-metrics.timer" "$src/systemd/semprep-metrics.service")
mkdir -p "$tmp/units"
cp "${units[@]}" "$tmp/units/"
# verify resolves ExecStart= against the real file system: point it at
# this build.
sed -i "s|^ExecStart=/usr/local/sbin/semprep|ExecStart=$SEMPREP_BIN|" "$tmp/units/semprep-metrics.service"
if SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$tmp/units/semprep-metrics.timer" \
	"$tmp/units/semprep-metrics.service" >"$tmp/verify" 2>&1 && [ ! -s "$tmp/verify" ]; then
	pass "systemd-analyze verify: semprep-metrics.timer and .service, no warning"
else
	fail "systemd-analyze verify: $(head -n 5 "$tmp/verify")"
fi
sed 's/^OnUnitActiveSec=.*/OnUnitActiveSec=soon/' "$src/systemd/semprep-metrics.timer" >"$tmp/units/bad.timer"
if ! systemd-analyze verify --man=no "$tmp/units/bad.timer" 2>&1 | grep -q 'soon'; then
	fail "systemd-analyze control: a malformed OnUnitActiveSec went unnoticed"
else
	pass "systemd-analyze control: a malformed OnUnitActiveSec is reported"
fi

exit $failed
