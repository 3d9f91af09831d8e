#!/usr/bin/env bash
# deploy/: the ready-made monitoring configurations, each checked by the real
# tool that will read it:
#   - Prometheus: `promtool check rules` and `promtool test rules`; every
#     alert must fire in some test (proved by making it never fire: the
#     tests must then fail) and be expected quiet in another;
#   - node-problem-detector: NPD's own load-time rules (pkg/custompluginmonitor
#     Validate: plugin "custom", a rule's timeout within the global one, a
#     default condition for each permanent one) and ours (timeouts within the
#     intervals, max_output_length 80, UpperCamelCase names), in jq;
#   - Nagios: `nagios4 -v` on a main config made of Debian's stock object
#     templates, deploy/nagios/semprep.cfg and one host;
#   - Icinga 2: `icinga2 daemon -C` with Debian's stock constants and
#     templates, then a real daemon run whose checks execute stand-ins for
#     sudo and semprep, to see the command lines Icinga builds;
#   - sudo: `visudo -c` on the sudoers line, and every way of running the
#     check (NRPE, check_by_ssh, Icinga) runs exactly that command.
# NPD itself is not packaged for Debian (nor buildable here): its rules are
# re-checked from its source instead.
#
# The tools come from Debian's packages, downloaded and unpacked into a temp
# dir, never installed: the prometheus, nagios4-core and icinga2-bin
# maintainer scripts start their servers, and these checks need only the
# binaries. Needs: apt-get (with package lists), dpkg-deb, jq. Root is not
# needed.
set -uo pipefail

src=${SEMPREP_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
deploy=$src/deploy
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
. "$(dirname "$0")/lib/report.sh"

tmp=$(mktemp -d /tmp/semprep-deploy.XXXXXX)
icinga_pid= # the Icinga 2 daemon this test starts, while it runs
trap '[ -z "$icinga_pid" ] || kill "$icinga_pid" 2>/dev/null; rm -rf "$tmp"' EXIT

for tool in apt-get dpkg-deb jq; do
	if ! command -v "$tool" >/dev/null; then
		skip "deploy/ configurations: $tool is not installed"
		exit 0
	fi
done

# --- the tools, from Debian's packages -------------------------------------
root=$tmp/root
mkdir -p "$tmp/debs" "$root"
pkgs="prometheus nagios4-core nagios4-common icinga2-bin icinga2-common sudo"
# The shared libraries icinga2 needs that this machine lacks: what apt would
# install with it, as apt itself resolves them.
libs=$(apt-get -s -o Debug::NoLocking=1 install --no-install-recommends icinga2-bin 2>/dev/null |
	awk '/^Inst lib/ { print $2 }')
# shellcheck disable=SC2086 # word splitting wanted: package lists
if ! (cd "$tmp/debs" && apt-get download $pkgs $libs) >"$tmp/apt.log" 2>&1; then
	fail "apt-get download $pkgs $libs: $(tail -n 3 "$tmp/apt.log" | tr '\n' ' ')"
	exit 1
fi
for deb in "$tmp"/debs/*.deb; do
	dpkg-deb -x "$deb" "$root" || { fail "dpkg-deb -x $deb"; exit 1; }
done
# For icinga2 and visudo only: the libraries unpacked beside them.
libpath=$(find "$root" -name '*.so*' -printf '%h\n' | sort -u | paste -sd:)
promtool=$(command -v promtool || echo "$root/usr/bin/promtool")
nagios=$root/usr/sbin/nagios4
icinga=$root/usr/lib/x86_64-linux-gnu/icinga2/sbin/icinga2
[ -x "$icinga" ] || icinga=$(find "$root/usr/lib" -path '*/icinga2/sbin/icinga2' | head -n 1)
visudo=$root/usr/sbin/visudo
for t in "$promtool" "$nagios" "$icinga" "$visudo"; do
	[ -x "$t" ] || { fail "the packages ship no ${t#"$root"}"; exit 1; }
done

# --- Prometheus --------------------------------------------------------------
rules=("$deploy"/prometheus/*.yml)
if "$promtool" check rules --lint=all --lint-fatal "${rules[@]}" >"$tmp/out" 2>&1; then
	pass "promtool check rules --lint=all: $(grep -o '[0-9]* rules found' "$tmp/out" | paste -sd, -)"
else
	fail "promtool check rules: $(cat "$tmp/out")"
fi
if "$promtool" test rules "$deploy"/prometheus/tests/*.yml >"$tmp/out" 2>&1; then
	pass "promtool test rules deploy/prometheus/tests: SUCCESS"
else
	fail "promtool test rules: $(cat "$tmp/out")"
fi

alerts=$(sed -n 's/^ *- alert: *//p' "${rules[@]}")
[ "$(echo "$alerts" | wc -w)" -ge 12 ] || fail "only $(echo "$alerts" | wc -w) alerts found in ${rules[*]}"
# Each alert in turn never fires (its expr becomes `vector(0) == 1`, the
# rest of the file unchanged): the tests must then fail on that alert.
mkdir -p "$tmp/prom"
never_fires() { # $1 = alert name, $2 = rules file; prints the mutant
	awk -v name="$1" '
		skip { match($0, /^ */); if (RLENGTH > ind && $0 !~ /^ *$/) next; skip = 0 }
		/^ *- (alert|record):/ { mine = ($0 ~ ("- alert: " name "$")) }
		mine && /^ *expr:/ { match($0, /^ */); ind = RLENGTH
			printf "%*sexpr: vector(0) == 1\n", ind, ""; skip = 1; next }
		{ print }' "$2"
}
for a in $alerts; do
	rm -rf "$tmp/prom" && cp -a "$deploy/prometheus" "$tmp/prom"
	for f in "${rules[@]}"; do never_fires "$a" "$f" >"$tmp/prom/$(basename "$f")"; done
	if diff -r -q "$deploy/prometheus" "$tmp/prom" >/dev/null; then
		fail "alert $a: the mutation changed nothing (no expr found)"
	elif ! "$promtool" check rules "$tmp"/prom/*.yml >"$tmp/out" 2>&1; then
		fail "alert $a: the never-firing mutant is not a valid rules file: $(cat "$tmp/out")"
	elif "$promtool" test rules "$tmp"/prom/tests/*.yml >"$tmp/out" 2>&1; then
		fail "alert $a: no test expects it to fire (the tests pass when it never fires)"
	elif grep -q "alertname: $a," "$tmp/out"; then
		pass "alert $a: a test expects it to fire (fails when it never fires)"
	else
		fail "alert $a: the never-firing mutant failed for another reason: $(head -c 600 "$tmp/out")"
	fi
	# ... and some evaluation expects it quiet (exp_alerts: []), which the
	# passing promtool run above has then checked.
	if awk -v name="$a" '/alertname:/ { cur = $2 } /exp_alerts: \[\]/ && cur == name { n++ }
			END { exit !n }' "$deploy"/prometheus/tests/*.yml; then
		pass "alert $a: a test expects it not to fire"
	else
		fail "alert $a: no test expects it quiet (alertname: $a then exp_alerts: [])"
	fi
done

# The rules and tests use only the names deploy/README.md defines (the
# contract the code follows). semprep_last_run_* in a comment is a family.
unknown=
while read -r n; do
	grep -qF "| \`$n\` |" "$deploy/README.md" || unknown="$unknown $n"
done < <(grep -ohE 'semprep_[a-z_]*[a-z]_?\*?' "${rules[@]}" "$deploy"/prometheus/tests/*.yml |
	grep -v '_\*$' | sort -u)
if [ -z "$unknown" ]; then
	pass "every semprep_* metric the rules and tests use is in deploy/README.md's tables"
else
	fail "metrics used but not defined in deploy/README.md:$unknown"
fi

# --- node-problem-detector ---------------------------------------------------
npd=$deploy/node-problem-detector/semprep-monitor.json
# Prints one line per broken rule. NPD's defaults: timeout 5s, interval 30s,
# max_output_length 80.
cat >"$tmp/npd.jq" <<'EOF'
def secs: # a Go duration ("10s", "1m30s", "500ms") in seconds; null if malformed
  if type == "string" and test("^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$") then
    [scan("([0-9.]+)(ns|us|µs|ms|s|m|h)")
     | (.[0] | tonumber) * {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 0.001, "s": 1, "m": 60, "h": 3600}[.[1]]]
    | add
  else null end;
def camel: type == "string" and test("^[A-Z][A-Za-z0-9]*$");
. as $c
| ($c.pluginConfig.timeout // "5s" | secs) as $gt
| ($c.pluginConfig.invoke_interval // "30s" | secs) as $gi
| (if $c.plugin != "custom" then "plugin is \($c.plugin | tojson): NPD only runs \"custom\"" else empty end),
  (if $gt == null or $gi == null or $gi <= 0 then "global timeout or invoke_interval malformed or zero"
   elif $gt > $gi then "global timeout \($gt)s above the invoke interval \($gi)s"
   else empty end),
  (if ($c.pluginConfig.max_output_length // 80) != 80
   then "max_output_length \($c.pluginConfig.max_output_length): semprep check --format npd prints up to 80"
   else empty end),
  (if ($c.pluginConfig.concurrency // 3) < 1 then "concurrency below 1" else empty end),
  (if ($c.source | type) != "string" or $c.source == "" then "no source name" else empty end),
  ($c.conditions[] | select((.type | camel | not) or (.reason | camel | not))
   | "default condition \(.type)/\(.reason): not UpperCamelCase"),
  ($c.conditions[] | select((.message | type) != "string" or .message == "")
   | "default condition \(.type): no message"),
  ($c.conditions[] | .type as $t
   | select([$c.rules[] | select(.type == "permanent" and .condition == $t)] | length != 1)
   | "default condition \($t): not set by exactly one permanent rule"),
  ($c.rules[] | . as $r
   | (($r.timeout // $c.pluginConfig.timeout // "5s") | secs) as $t
   | (($r.invoke_interval // $c.pluginConfig.invoke_interval // "30s") | secs) as $i
   | (if $t == null or $i == null or $i <= 0 then "rule \($r.reason): timeout or invoke_interval malformed or zero"
      elif $t > $gt then "rule \($r.reason): timeout \($t)s above the global \($gt)s (NPD refuses to start)"
      elif $t > $i then "rule \($r.reason): timeout \($t)s above its invoke interval \($i)s"
      else empty end),
     (if $r.reason | camel | not then "rule reason \($r.reason | tojson): not UpperCamelCase" else empty end),
     (if $r.type == "permanent" then
        ([$c.conditions[] | select(.type == $r.condition)]
         | if length != 1 then "rule \($r.reason): condition \($r.condition | tojson) has no default condition"
           elif .[0].reason == $r.reason then "rule \($r.reason): same reason as the healthy default"
           else empty end)
      elif $r.type == "temporary" then empty
      else "rule \($r.reason): type \($r.type | tojson) is neither permanent nor temporary" end),
     (if $r.path != "/usr/sbin/semprep" then "rule \($r.reason): path \($r.path), not /usr/sbin/semprep" else empty end),
     (if $r.args[0:3] != ["check", "--format", "npd"] then "rule \($r.reason): args do not start check --format npd"
      elif ($r.args | index("--only")) as $o | $o == null
           or ($r.args[$o + 1] | split(",") | all(IN("headroom", "usage", "stuck", "residual")) | not)
      then "rule \($r.reason): --only names no aspect (headroom, usage, stuck, residual)"
      else empty end))
EOF
npd_check() { # $1 = monitor config; prints its problems, fails if any or unreadable
	jq -r -f "$tmp/npd.jq" "$1" >"$tmp/npd.out" 2>&1 && [ ! -s "$tmp/npd.out" ]
}
if npd_check "$npd"; then
	pass "NPD monitor: plugin custom, timeouts within the global timeout and the intervals, output 80, conditions and reasons valid"
else
	fail "NPD monitor: $(cat "$tmp/npd.out")"
fi
if [ "$(jq -r '[.rules[] | select(.type == "permanent") | .condition] | join(",")' "$npd")" = \
	"SemaphoreExhaustion,DMCookieStuck" ] &&
	[ "$(jq -r '[.rules[] | select(.type == "temporary") | .reason] | join(",")' "$npd")" = ResidualDMCookies ]; then
	pass "NPD monitor: permanent SemaphoreExhaustion and DMCookieStuck, temporary ResidualDMCookies"
else
	fail "NPD monitor: conditions and events are not the documented ones"
fi
# Controls: the checker catches what NPD refuses or would cut.
for mutant in '.rules[0].timeout = "20s"' '.conditions |= map(select(.type != "SemaphoreExhaustion"))' \
	'.pluginConfig.max_output_length = 200' '.rules[2].invoke_interval = "5s"' '.plugin = "kmsg"' \
	'.rules[1].args[4] = "everything"'; do
	jq "$mutant" "$npd" >"$tmp/mutant.json"
	if npd_check "$tmp/mutant.json"; then
		fail "NPD control: '$mutant' went unnoticed"
	else
		pass "NPD control: '$mutant' is caught ($(head -n 1 "$tmp/npd.out"))"
	fi
done
echo '{ "plugin": "custom", ' >"$tmp/broken.json"
if npd_check "$tmp/broken.json"; then fail "NPD control: malformed JSON went unnoticed"; else pass "NPD control: malformed JSON is caught"; fi

# --- sudo: one command line, run every way ------------------------------------
sudoers=$deploy/nagios/semprep.sudoers
if env LD_LIBRARY_PATH="$libpath" "$visudo" -c -f "$sudoers" >"$tmp/out" 2>&1; then
	pass "visudo -c: deploy/nagios/semprep.sudoers parses"
else
	fail "visudo -c semprep.sudoers: $(cat "$tmp/out")"
fi
sed 's/NOPASSWD:/NOPASSWD/' "$sudoers" >"$tmp/bad.sudoers"
if ! env LD_LIBRARY_PATH="$libpath" "$visudo" -c -f "$tmp/bad.sudoers" >/dev/null 2>&1; then
	pass "visudo control: a broken sudoers line fails"
else
	fail "visudo control: a broken sudoers line passed"
fi
allowed=$(sed -n 's/^[^#].*NOPASSWD: *//p' "$sudoers")
want="/usr/bin/sudo -n $allowed"
nrpe=$(sed -n 's/^command\[check_semprep\]=//p' "$deploy/nagios/nrpe-semprep.cfg")
by_ssh=$(sed -n "s/.*check_by_ssh .* -C '\([^']*\)'.*/\1/p" "$deploy/nagios/semprep.cfg")
icinga_default="$(sed -n 's/^ *vars.semprep_sudo = "\(.*\)"$/\1/p' "$deploy/icinga2/semprep.conf") -n $(sed -n 's/^ *vars.semprep_binary = "\(.*\)"$/\1/p' "$deploy/icinga2/semprep.conf") check"
if [ "$allowed" = "/usr/sbin/semprep check" ] && [ "$nrpe" = "$want" ] && [ "$by_ssh" = "$want" ] &&
	[ "$icinga_default" = "$want" ]; then
	pass "sudoers allows exactly '$allowed'; NRPE, check_by_ssh and Icinga's defaults run '$want'"
else
	fail "command lines differ: sudoers '$allowed', NRPE '$nrpe', by_ssh '$by_ssh', Icinga '$icinga_default'"
fi

# --- Nagios 4 ------------------------------------------------------------------
stock=$root/etc/nagios4
mkdir -p "$tmp/nagios"
cat >"$tmp/nagios/host.cfg" <<'EOF'
define command {
    command_name    test-host-up
    command_line    /bin/true
}
define host {
    use             linux-server
    host_name       node1
    address         192.0.2.10
    check_command   test-host-up
    hostgroups      semprep-hosts
}
EOF
nagios_cfg() { # $1 = semprep.cfg to load; prints a main config
	cat <<EOF
cfg_file=$stock/objects/commands.cfg
cfg_file=$stock/objects/contacts.cfg
cfg_file=$stock/objects/timeperiods.cfg
cfg_file=$stock/objects/templates.cfg
cfg_file=$1
cfg_file=$tmp/nagios/host.cfg
resource_file=$stock/resource.cfg
nagios_user=$(id -un)
nagios_group=$(id -gn)
log_file=$tmp/nagios/nagios.log
temp_path=$tmp/nagios
check_result_path=$tmp/nagios
illegal_macro_output_chars=\`~\$&|'"<>
EOF
}
nagios_cfg "$deploy/nagios/semprep.cfg" >"$tmp/nagios/nagios.cfg"
if "$nagios" -v "$tmp/nagios/nagios.cfg" >"$tmp/out" 2>&1 &&
	grep -q '^Total Warnings: 0' "$tmp/out" && grep -q '^Total Errors: *0' "$tmp/out" &&
	grep -q 'Checked 1 services' "$tmp/out"; then
	pass "nagios4 -v: semprep.cfg with Debian's stock templates: 0 warnings, 0 errors, the service on the semprep-hosts host"
else
	fail "nagios4 -v: $(grep -E 'Error|Warning' "$tmp/out" | head -n 5)"
fi
sed 's/^\( *check_command *\)check_semprep_nrpe$/\1check_semprep_nope/' "$deploy/nagios/semprep.cfg" >"$tmp/nagios/bad.cfg"
nagios_cfg "$tmp/nagios/bad.cfg" >"$tmp/nagios/bad-main.cfg"
if ! "$nagios" -v "$tmp/nagios/bad-main.cfg" >"$tmp/out" 2>&1 && grep -q check_semprep_nope "$tmp/out"; then
	pass "nagios4 control: a service naming an undefined command fails -v"
else
	fail "nagios4 control: an undefined check command went unnoticed"
fi

# --- Icinga 2 ------------------------------------------------------------------
ic=$tmp/icinga
mkdir -p "$ic/data" "$ic/log" "$ic/cache" "$ic/spool" "$ic/run"
# icinga2 daemon with every path in $ic; add -c CONFIG, and -C to validate.
icinga_daemon=(env LD_LIBRARY_PATH="$libpath" "$icinga" daemon -I "$root/usr/share/icinga2/include"
	-DRunAsUser="$(id -un)" -DRunAsGroup="$(id -gn)" -DConfigDir="$ic" -DDataDir="$ic/data"
	-DLogDir="$ic/log" -DCacheDir="$ic/cache" -DSpoolDir="$ic/spool" -DInitRunDir="$ic/run")
icinga_main() { # $1 = semprep.conf to load; then extra lines
	local conf=$1; shift
	printf '%s\n' "include \"$root/etc/icinga2/constants.conf\"" 'include <itl>' 'include <plugins>' \
		"include \"$root/etc/icinga2/conf.d/templates.conf\"" "include \"$conf\"" "$@"
}
hosts=('object Host "node1" { check_command = "dummy"; address = "192.0.2.10"; vars.semprep = true }'
	'object Host "node2" { check_command = "dummy"; address = "192.0.2.11" }')
icinga_main "$deploy/icinga2/semprep.conf" "${hosts[@]}" >"$ic/main.conf"
if "${icinga_daemon[@]}" -c "$ic/main.conf" -C >"$tmp/out" 2>&1 && grep -q 'Instantiated 1 Service\.' "$tmp/out" &&
	grep -q 'Instantiated 2 Hosts\.' "$tmp/out"; then
	pass "icinga2 daemon -C: semprep.conf with Debian's stock templates; the service applies to the vars.semprep host only"
else
	fail "icinga2 daemon -C: $(grep -E 'critical|warning|error|Instantiated' "$tmp/out" | head -n 8)"
fi
sed 's/max_check_attempts = 3/max_check_atempts = 3/' "$deploy/icinga2/semprep.conf" >"$ic/bad.conf"
icinga_main "$ic/bad.conf" "${hosts[@]}" >"$ic/bad-main.conf"
if ! "${icinga_daemon[@]}" -c "$ic/bad-main.conf" -C >"$tmp/out" 2>&1 && grep -q max_check_atempts "$tmp/out"; then
	pass "icinga2 control: a misspelt attribute in semprep.conf fails -C"
else
	fail "icinga2 control: a misspelt attribute went unnoticed"
fi

# A real run: the checker executes both CheckCommands once a second, with
# stand-ins for sudo and semprep that log their arguments.
cat >"$ic/sudo" <<EOF
#!/bin/sh
echo "sudo \$*" >>"$ic/argv"
shift
exec "\$@"
EOF
cat >"$ic/semprep" <<EOF
#!/bin/sh
echo "semprep \$*" >>"$ic/argv"
echo "SEMPREP OK - stand-in | 'sets_in_use'=1;;;0;128"
EOF
chmod 755 "$ic/sudo" "$ic/semprep"
icinga_main "$deploy/icinga2/semprep.conf" 'object CheckerComponent "checker" { }' \
	'object Host "node2" { check_command = "dummy"; address = "192.0.2.11" }' \
	"object Service \"plain\" { host_name = \"node2\"; check_command = \"semprep\"; check_interval = 1s
	  vars.semprep_sudo = \"$ic/sudo\"; vars.semprep_binary = \"$ic/semprep\" }" \
	"object Service \"tuned\" { host_name = \"node2\"; check_command = \"semprep-unprivileged\"; check_interval = 1s
	  vars.semprep_binary = \"$ic/semprep\"; vars.semprep_warning = 70; vars.semprep_critical = 90
	  vars.semprep_reserve = 64; vars.semprep_min_age = \"10m\"; vars.semprep_stuck_after = \"15m\" }" \
	>"$ic/run.conf"
# Started directly (not through a function, which would run in a subshell),
# so $! is icinga2's own pid (env execs it): SIGTERM to it stops its workers
# too.
"${icinga_daemon[@]}" -c "$ic/run.conf" >"$ic/daemon.log" 2>&1 &
icinga_pid=$!
want_plain="sudo -n $ic/semprep check"
want_tuned="semprep check --critical 90 --min-age 10m --reserve 64 --stuck-after 15m --warning 70"
for _ in $(seq 1 60); do
	grep -qxF "$want_plain" "$ic/argv" 2>/dev/null && grep -qxF "$want_tuned" "$ic/argv" && break
	kill -0 "$icinga_pid" 2>/dev/null || break
	sleep 0.5
done
kill "$icinga_pid" 2>/dev/null
wait "$icinga_pid" 2>/dev/null
icinga_pid=
if grep -qxF "$want_plain" "$ic/argv" 2>/dev/null && grep -qxF "semprep check" "$ic/argv"; then
	pass "icinga2 run: CheckCommand semprep runs 'sudo -n SEMPREP check' and nothing more when no threshold is set"
else
	fail "icinga2 run, semprep: $(sort -u "$ic/argv" 2>/dev/null | paste -sd'|') $(grep -E 'critical|warning' "$ic/daemon.log" | head -n 5)"
fi
if grep -qxF "$want_tuned" "$ic/argv" 2>/dev/null; then
	pass "icinga2 run: semprep-unprivileged passes each set threshold as its semprep option"
else
	fail "icinga2 run, semprep-unprivileged: $(sort -u "$ic/argv" 2>/dev/null | paste -sd'|')"
fi
if grep -q '^sudo ' <(grep -vxF "$want_plain" "$ic/argv"); then
	fail "icinga2 run: sudo ran with other arguments: $(sort -u "$ic/argv" | paste -sd'|')"
fi

exit $failed
