#!/usr/bin/env bash
# install.sh into staged roots (--root TMP): the exact file list and modes,
# idempotence, --dry-run, --uninstall bringing the tree back (keeping an
# edited config), the config placement rule, clear errors; and shellcheck
# of install.sh and hooks/. Runs install.sh with dash, as /bin/sh would.
# Nothing is installed on the host.
set -uo pipefail

src=${SEMPREP_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
. "$(dirname "$0")/lib/report.sh"
SH=$(type -P dash || echo sh)

tmp=$(mktemp -d /tmp/semprep-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# A stand-in binary keeps this test independent of the build.
bin=$tmp/semprep
printf '#!/bin/sh\necho semprep stand-in\n' >"$bin" && chmod 755 "$bin"
bin2=$tmp/semprep2
printf '#!/bin/sh\necho semprep stand-in, newer\n' >"$bin2" && chmod 755 "$bin2"

# Stand-ins for what `cargo xtask dist man completions` makes (70-packages.sh
# installs the real ones).
dist=$tmp/dist
mkdir -p "$dist/completions/bash" "$dist/completions/zsh" "$dist/completions/fish"
printf '.TH SEMPREP 8\n' >"$dist/semprep.8"
for f in bash/semprep zsh/_semprep fish/semprep.fish; do echo "# $f" >"$dist/completions/$f"; done

inst() { # $1 = root, rest = options; output in $tmp/log
	local root=$1
	shift
	"$SH" "$src/install.sh" --root "$root" --dist "$dist" "$@" >"$tmp/log" 2>&1
}

# Path, mode, owner, type, checksum and (with $2 set) mtime of everything.
snap() { # $1 = root [, $2 = anything: include mtimes]
	(cd "$1" && find . -mindepth 1 | sort | while read -r p; do
		printf '%s %s %s %s\n' "$p" "$(stat -c '%a %U:%G %F' "$p")" \
			"$(if [ -f "$p" ] && [ ! -L "$p" ]; then cksum <"$p" | cut -d' ' -f1; else readlink "$p"; fi)" \
			"${2:+$(stat -c %y "$p")}"
	done)
}

# --- 1. a fresh, empty root: exactly these files, with these modes ---
R=$tmp/r1
mkdir "$R"
if inst "$R" --binary "$bin" --units all; then
	(cd "$R" && find . -mindepth 1 -printf '%m %y %p\n' | sort -k3) >"$tmp/got"
	cat >"$tmp/want" <<'EOF'
755 d ./etc
755 d ./etc/default
644 f ./etc/default/semprep
755 d ./etc/systemd
755 d ./etc/systemd/system
755 d ./etc/systemd/system/containerd.service.d
644 f ./etc/systemd/system/containerd.service.d/10-semprep.conf
755 d ./etc/systemd/system/docker.service.d
644 f ./etc/systemd/system/docker.service.d/10-semprep.conf
755 d ./etc/systemd/system/isulad.service.d
644 f ./etc/systemd/system/isulad.service.d/10-semprep.conf
644 f ./etc/systemd/system/semprep-metrics.service
644 f ./etc/systemd/system/semprep-metrics.timer
755 d ./usr
755 d ./usr/local
755 d ./usr/local/libexec
755 d ./usr/local/libexec/semprep
755 f ./usr/local/libexec/semprep/semprep-containerd
755 f ./usr/local/libexec/semprep/semprep-dockerd
755 f ./usr/local/libexec/semprep/semprep-hook
755 f ./usr/local/libexec/semprep/semprep-isulad
755 d ./usr/local/sbin
755 f ./usr/local/sbin/semprep
755 d ./usr/local/share
755 d ./usr/local/share/bash-completion
755 d ./usr/local/share/bash-completion/completions
644 f ./usr/local/share/bash-completion/completions/semprep
755 d ./usr/local/share/fish
755 d ./usr/local/share/fish/vendor_completions.d
644 f ./usr/local/share/fish/vendor_completions.d/semprep.fish
755 d ./usr/local/share/man
755 d ./usr/local/share/man/man8
644 f ./usr/local/share/man/man8/semprep.8
755 d ./usr/local/share/zsh
755 d ./usr/local/share/zsh/site-functions
644 f ./usr/local/share/zsh/site-functions/_semprep
755 d ./var
755 d ./var/lib
755 d ./var/lib/semprep
644 f ./var/lib/semprep/install-manifest
EOF
	if diff -u "$tmp/want" "$tmp/got" >"$tmp/diff"; then
		pass "install --root (empty) --units all: exact file list and modes"
	else
		fail "install --root file list: $(cat "$tmp/diff")"
	fi
	if cmp -s "$bin" "$R/usr/local/sbin/semprep" &&
		cmp -s "$src/config/semprep.conf" "$R/etc/default/semprep" &&
		cmp -s "$src/systemd/docker.service.d/10-semprep.conf" "$R/etc/systemd/system/docker.service.d/10-semprep.conf" &&
		cmp -s "$src/hooks/semprep-hook.sh" "$R/usr/local/libexec/semprep/semprep-hook" &&
		cmp -s "$src/hooks/semprep-exec.sh" "$R/usr/local/libexec/semprep/semprep-dockerd" &&
		cmp -s "$dist/semprep.8" "$R/usr/local/share/man/man8/semprep.8" &&
		cmp -s "$dist/completions/zsh/_semprep" "$R/usr/local/share/zsh/site-functions/_semprep"; then
		pass "installed files are the source files, unchanged for PREFIX=/usr/local"
	else
		fail "installed files differ from the sources"
	fi
else
	fail "install --root (empty): $(cat "$tmp/log")"
fi

# Without the generated files install.sh says so and installs the rest.
N=$tmp/noman
mkdir "$N"
if "$SH" "$src/install.sh" --root "$N" --dist "$tmp/nowhere" --binary "$bin" >"$tmp/log" 2>&1 &&
	grep -q "skipped the man page and completions: no $tmp/nowhere/semprep.8" "$tmp/log" &&
	grep -q "cargo xtask dist man completions" "$tmp/log" &&
	[ -x "$N/usr/local/sbin/semprep" ] && [ ! -e "$N/usr/local/share" ]; then
	pass "no generated man page: install.sh says how to make it and installs the rest"
else
	fail "install without the man page: $(cat "$tmp/log")"
fi

# --- 2. a second run changes nothing, not even an mtime ---
snap "$R" mtime >"$tmp/before"
if inst "$R" --binary "$bin" --units all && snap "$R" mtime >"$tmp/after" &&
	diff -u "$tmp/before" "$tmp/after" >"$tmp/diff" && grep -q '^Nothing to do' "$tmp/log"; then
	pass "second install run: tree unchanged (modes, contents, mtimes), says 'Nothing to do'"
else
	fail "second install run changed something: $(cat "$tmp/diff" "$tmp/log")"
fi

# --- 3. --dry-run changes nothing (install, update and uninstall) ---
ok=true
R3=$tmp/r3
mkdir "$R3"
inst "$R3" --binary "$bin" --dry-run || ok=false
[ -z "$(ls -A "$R3")" ] || ok=false
grep -q 'would installed /usr/local/sbin/semprep\|would install' "$tmp/log" || ok=false
cp "$tmp/log" "$tmp/dry-install"
inst "$R" --binary "$bin2" --units all --dry-run || ok=false
grep -q 'would update /usr/local/sbin/semprep' "$tmp/log" || ok=false
cp "$tmp/log" "$tmp/dry-update"
snap "$R" mtime >"$tmp/after"
diff -q "$tmp/before" "$tmp/after" >/dev/null || ok=false
inst "$R" --uninstall -n || ok=false
grep -q 'would remove /usr/local/sbin/semprep' "$tmp/log" || ok=false
cp "$tmp/log" "$tmp/dry-uninstall"
snap "$R" mtime >"$tmp/after"
diff -q "$tmp/before" "$tmp/after" >/dev/null || ok=false
if $ok; then
	pass "--dry-run: install, update and uninstall print their actions and change nothing"
else
	fail "--dry-run changed something or said nothing: $(cat "$tmp/log")"
fi
# Each action in the present tense after "would" ("would install", not
# "would installed"), and each directory once, as the real run creates it.
if ! cat "$tmp/dry-install" "$tmp/dry-update" "$tmp/dry-uninstall" |
	grep -E 'would [a-z]+(ed|ran|kept) ' >"$tmp/bad"; then
	pass "--dry-run: every 'would' is followed by a verb in the present tense"
else
	fail "--dry-run wording: $(cat "$tmp/bad")"
fi
R3b=$tmp/r3b
mkdir "$R3b"
inst "$R3" --binary "$bin" --units all --dry-run
sed -n -e 's/^  would install /  installed /p' -e 's/^  would create /  created /p' "$tmp/log" >"$tmp/said"
inst "$R3b" --binary "$bin" --units all
grep '^  ' "$tmp/log" >"$tmp/did"
if [ -s "$tmp/did" ] && diff -u "$tmp/did" "$tmp/said" >"$tmp/diff"; then
	pass "--dry-run into an empty root lists exactly what the real run does, each directory once"
else
	fail "--dry-run and the real run differ: $(cat "$tmp/diff")"
fi

# --- 4. an update replaces the binary, keeps the mode, reports it ---
if inst "$R" --binary "$bin2" --units all && cmp -s "$bin2" "$R/usr/local/sbin/semprep" &&
	[ "$(stat -c %a "$R/usr/local/sbin/semprep")" = 755 ] &&
	grep -q 'updated /usr/local/sbin/semprep' "$tmp/log" && ! grep -q 'updated /etc' "$tmp/log"; then
	pass "new binary: only /usr/local/sbin/semprep updated, mode 755"
else
	fail "update: $(cat "$tmp/log")"
fi

# --- 5. uninstall brings a lived-in root back exactly; an edited config stays ---
D=$tmp/distro
mkdir -p "$D/etc/default" "$D/etc/systemd/system/docker.service.d" "$D/usr/local/sbin" "$D/var/lib/dpkg"
echo 'DOCKER_OPTS=""' >"$D/etc/default/docker"
echo '[Service]' >"$D/etc/systemd/system/docker.service.d/override.conf"
printf '#!/bin/sh\n' >"$D/usr/local/sbin/other-tool" && chmod 700 "$D/usr/local/sbin/other-tool"
snap "$D" >"$tmp/pristine"
if inst "$D" --binary "$bin" --units docker,containerd && inst "$D" --uninstall &&
	snap "$D" >"$tmp/back" && diff -u "$tmp/pristine" "$tmp/back" >"$tmp/diff"; then
	pass "install then --uninstall: the tree is exactly as before (modes, owners, contents)"
else
	fail "uninstall did not restore the tree: $(cat "$tmp/diff" "$tmp/log")"
fi
if inst "$D" --binary "$bin" --units docker && echo 'SEMPREP_MIN_AGE=10m' >>"$D/etc/default/semprep" &&
	inst "$D" --uninstall && grep -q 'kept /etc/default/semprep' "$tmp/log" &&
	grep -qx 'SEMPREP_MIN_AGE=10m' "$D/etc/default/semprep" && rm "$D/etc/default/semprep" &&
	snap "$D" >"$tmp/back" && diff -u "$tmp/pristine" "$tmp/back" >"$tmp/diff"; then
	pass "--uninstall keeps an edited config and removes everything else"
else
	fail "edited config: $(cat "$tmp/diff" "$tmp/log")"
fi
# A second uninstall has nothing to work from, and says so.
if ! inst "$D" --uninstall && grep -q 'nothing here was installed by install.sh' "$tmp/log"; then
	pass "--uninstall without a manifest: clear error"
else
	fail "--uninstall without a manifest: $(cat "$tmp/log")"
fi

# --- 6. config placement and never overwriting ---
E=$tmp/rhel
mkdir -p "$E/etc/sysconfig"
if inst "$E" --binary "$bin" && [ -f "$E/etc/sysconfig/semprep" ] && [ ! -e "$E/etc/default" ]; then
	pass "with /etc/sysconfig present the config goes to /etc/sysconfig/semprep"
else
	fail "RHEL-like root: $(cd "$E" && find . | tr '\n' ' ')"
fi
F=$tmp/own
mkdir -p "$F/etc/default"
echo 'SEMPREP_POLICY=report' >"$F/etc/default/semprep"
if inst "$F" --binary "$bin" && grep -qx 'SEMPREP_POLICY=report' "$F/etc/default/semprep" &&
	[ "$(wc -l <"$F/etc/default/semprep")" = 1 ] && inst "$F" --uninstall &&
	grep -qx 'SEMPREP_POLICY=report' "$F/etc/default/semprep"; then
	pass "an existing config is never overwritten, nor removed by --uninstall"
else
	fail "existing config: $(cat "$tmp/log")"
fi

# --- 7. PREFIX ---
P=$tmp/prefix
mkdir "$P"
if PREFIX=/opt/semprep inst "$P" --binary "$bin" && [ -x "$P/opt/semprep/sbin/semprep" ] &&
	grep -qxF 'ExecStartPre=/opt/semprep/sbin/semprep run --daemon docker' "$P/etc/systemd/system/docker.service.d/10-semprep.conf" &&
	grep -qxF "SEMPREP_BIN=\${SEMPREP_BIN:-/opt/semprep/sbin/semprep}" "$P/opt/semprep/libexec/semprep/semprep-dockerd" &&
	! grep -rqE '/usr/local/(sbin|libexec)/semprep' "$P/etc/systemd" "$P/opt"; then
	pass "PREFIX=/opt/semprep: files under /opt/semprep, paths inside rewritten"
else
	fail "PREFIX: $(cat "$tmp/log")"
fi

# --- 8. clear errors, nothing touched ---
G=$tmp/errors
mkdir "$G"
check_err() { # $1 = expected rc, $2 = expected message part, $3 = what, rest = args
	local want_rc=$1 msg=$2 what=$3 rc
	shift 3
	"$@" >"$tmp/log" 2>&1
	rc=$?
	if [ "$rc" = "$want_rc" ] && grep -q "$msg" "$tmp/log" && [ -z "$(ls -A "$G")" ]; then
		pass "error: $what: exit $rc, '$msg'"
	else
		fail "error: $what: exit $rc (want $want_rc): $(cat "$tmp/log")"
	fi
}
check_err 2 "unknown unit 'podman'" "unknown unit" "$SH" "$src/install.sh" --root "$G" --binary "$bin" --units docker,podman
check_err 2 "must be an absolute path" "relative PREFIX" env PREFIX=opt "$SH" "$src/install.sh" --root "$G" --binary "$bin"
check_err 2 "unknown option" "unknown option" "$SH" "$src/install.sh" --root "$G" --frobnicate
check_err 2 "is not an executable file" "--binary missing" "$SH" "$src/install.sh" --root "$G" --binary "$tmp/nope"
check_err 1 "no cargo on PATH and no --binary" "no cargo, no --binary" \
	env PATH=/usr/sbin:/usr/bin:/sbin:/bin "$SH" "$src/install.sh" --root "$G"
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
	check_err 1 "needs root" "not root for /" \
		setpriv --reuid=65534 --regid=65534 --clear-groups "$SH" "$src/install.sh" --binary "$bin"
	# The hint to re-run as root keeps every option, quoted for the shell.
	setpriv --reuid=65534 --regid=65534 --clear-groups "$SH" "$src/install.sh" \
		--binary "$bin" --units 'docker containerd' --force >"$tmp/log" 2>&1
	want="sudo $src/install.sh --binary $bin --units 'docker containerd' --force"
	if grep -qF "$want" "$tmp/log"; then
		pass "not root for /: the sudo hint repeats the options: $want"
	else
		fail "not root for /: the hint lost the options (want: $want): $(cat "$tmp/log")"
	fi
else
	skip "error: not root for /: needs root and setpriv to drop privileges"
fi
H=$tmp/not-ours
mkdir -p "$H/usr/local/sbin"
echo 'not ours' >"$H/usr/local/sbin/semprep"
if ! inst "$H" --binary "$bin" && grep -q 'was not installed by install.sh' "$tmp/log" &&
	grep -qx 'not ours' "$H/usr/local/sbin/semprep" && [ ! -e "$H/etc" ]; then
	pass "error: a file install.sh did not install is not overwritten without --force"
else
	fail "a file install.sh did not install: $(cat "$tmp/log")"
fi

# --- 9. no daemon-reload for a staged root ---
mkdir -p "$tmp/fakebin"
printf '#!/bin/sh\necho "$@" >>%s/systemctl.calls\n' "$tmp" >"$tmp/fakebin/systemctl"
chmod 755 "$tmp/fakebin/systemctl"
K=$tmp/noreload
mkdir "$K"
if PATH=$tmp/fakebin:$PATH inst "$K" --binary "$bin" && PATH=$tmp/fakebin:$PATH inst "$K" --uninstall &&
	[ ! -e "$tmp/systemctl.calls" ]; then
	pass "--root: systemctl daemon-reload is never run"
else
	fail "--root ran systemctl: $(cat "$tmp/systemctl.calls" 2>/dev/null)"
fi

# --- 10. into / itself, in a private mount namespace ---
# What install.sh says after a real install: the full path for a user
# whose PATH lacks /usr/local/sbin. /usr/local, /etc/default,
# /etc/systemd/system and /var/lib are fresh tmpfs mounts in a mount
# namespace of its own, so nothing reaches the host.
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && [ -d /etc/systemd/system ] &&
	[ -d /etc/default ] && [ ! -e /etc/sysconfig ]; then
	# shellcheck disable=SC2016 # expanded by the inner sh
	PATH=$tmp/fakebin:$PATH unshare --mount --propagation private sh -c '
		for d in /usr/local /etc/default /etc/systemd/system /var/lib; do
			mount -t tmpfs semprep-test "$d" || exit 1
		done
		"$1" "$2/install.sh" --binary "$3" || exit 1
		[ -x /usr/local/sbin/semprep ] && [ -f /var/lib/semprep/install-manifest ] &&
			echo "(test: installed into /)"
	' sh "$SH" "$src" "$bin" >"$tmp/log" 2>&1
	if grep -q '^(test: installed into /)$' "$tmp/log" &&
		grep -qF '  /usr/local/sbin/semprep status' "$tmp/log" &&
		grep -qF 'as a user whose PATH lacks /usr/local/sbin' "$tmp/log" &&
		grep -qF 'type the full path' "$tmp/log"; then
		pass "install into /: says a user whose PATH lacks /usr/local/sbin types /usr/local/sbin/semprep status"
	else
		fail "install into /: $(cat "$tmp/log")"
	fi
else
	skip "install into /: needs root, unshare, /etc/systemd/system and /etc/default, and no /etc/sysconfig"
fi

# --- 11. uninstall takes the metrics timer's leftovers, and only those ---
# What the timer leaves in /run (DynamicUser=: the directory in
# /run/private, systemd's link at /run/semprep-metrics) and the link
# `systemctl enable` makes; the packages' removal takes the same.
M=$tmp/metrics-left
mkdir "$M"
if inst "$M" --binary "$bin"; then
	mkdir -p "$M/run/private/semprep-metrics" "$M/etc/systemd/system/timers.target.wants"
	echo 'semprep_details_readable 1' >"$M/run/private/semprep-metrics/semprep.prom"
	: >"$M/run/private/semprep-metrics/.semprep-tmp-1234"
	ln -s private/semprep-metrics "$M/run/semprep-metrics"
	ln -s /etc/systemd/system/semprep-metrics.timer "$M/etc/systemd/system/timers.target.wants/semprep-metrics.timer"
	if inst "$M" --uninstall && [ ! -e "$M/run/private/semprep-metrics" ] && [ ! -L "$M/run/semprep-metrics" ] &&
		[ ! -L "$M/etc/systemd/system/timers.target.wants/semprep-metrics.timer" ] &&
		grep -qF 'removed /run/private/semprep-metrics/semprep.prom' "$tmp/log"; then
		pass "--uninstall removes the metrics report, its directory, systemd's link and the timer's enablement"
	else
		fail "--uninstall left the metrics timer's leftovers: $(find "$M/run" "$M/etc/systemd" 2>&1) $(cat "$tmp/log")"
	fi
else
	fail "install for the metrics leftovers: $(cat "$tmp/log")"
fi
# Not semprep's: another file in the directory, a link planted at
# /run/semprep-metrics that points elsewhere, an enablement link to another
# unit file. All stay, and nothing is followed.
F2=$tmp/metrics-foreign
mkdir -p "$F2" "$tmp/victim"
echo 'victim' >"$tmp/victim/semprep.prom"
if inst "$F2" --binary "$bin"; then
	mkdir -p "$F2/run/private/semprep-metrics" "$F2/etc/systemd/system/timers.target.wants"
	echo 'x' >"$F2/run/private/semprep-metrics/semprep.prom"
	echo 'keep' >"$F2/run/private/semprep-metrics/other.prom"
	ln -s "$tmp/victim" "$F2/run/semprep-metrics"
	ln -s /usr/lib/systemd/system/semprep-metrics.timer "$F2/etc/systemd/system/timers.target.wants/semprep-metrics.timer"
	if inst "$F2" --uninstall && [ ! -e "$F2/run/private/semprep-metrics/semprep.prom" ] &&
		grep -qx keep "$F2/run/private/semprep-metrics/other.prom" &&
		[ -L "$F2/run/semprep-metrics" ] && grep -qx victim "$tmp/victim/semprep.prom" &&
		[ -L "$F2/etc/systemd/system/timers.target.wants/semprep-metrics.timer" ]; then
		pass "--uninstall keeps what is not semprep's in /run and follows no link"
	else
		fail "--uninstall touched what is not semprep's: $(find "$F2/run" "$tmp/victim" 2>&1) $(cat "$tmp/log")"
	fi
else
	fail "install for the foreign metrics files: $(cat "$tmp/log")"
fi

# --- 12. shellcheck (install.sh, hooks, and the init snippets as sh) ---
if command -v shellcheck >/dev/null; then
	if shellcheck -s sh "$src/install.sh" "$src"/hooks/*.sh >"$tmp/sc" 2>&1 &&
		shellcheck -s sh -e SC2034 "$src"/hooks/openrc/* "$src"/hooks/sysvinit/* >>"$tmp/sc" 2>&1 &&
		shellcheck -x "$src"/tests/run.sh "$src"/tests/deps.sh "$src"/tests/sh/*.sh "$src"/bench/run.sh "$src"/.ci/run >>"$tmp/sc" 2>&1; then
		pass "shellcheck: install.sh, hooks, the init snippets and the test and CI scripts are clean"
	else
		fail "shellcheck: $(cat "$tmp/sc")"
	fi
else
	skip "shellcheck: not installed (apt-get install shellcheck)"
fi
if "$SH" -n "$src/install.sh" && "$SH" -n "$src/hooks/semprep-hook.sh" && "$SH" -n "$src/hooks/semprep-exec.sh"; then
	pass "$SH -n: install.sh and hooks parse"
else
	fail "$SH -n rejected a script"
fi

exit $failed
