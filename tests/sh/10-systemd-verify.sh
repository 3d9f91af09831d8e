#!/usr/bin/env bash
# systemd, statically (docs/design.md §10): `systemd-analyze verify` of each semprep
# drop-in on top of the REAL unit files: Debian's docker.io and containerd
# packages (downloaded and unpacked here, into a temp dir) and iSulad's
# upstream unit (tests/fixtures/isulad.service). Everything goes into a
# staged root made by install.sh --root, so the drop-ins and the semprep
# path are exactly what users get; verify --root then resolves every path
# (ExecStart binaries, sysinit.target, /bin/kill) inside that root.
#
# verify reports syntax problems as warnings with exit 0: every case asserts
# rc 0 AND empty stderr. Needs: systemd, apt-get (with package lists),
# dpkg-deb. Root is not needed.
set -uo pipefail

src=${SEMPREP_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
. "$(dirname "$0")/lib/report.sh"

tmp=$(mktemp -d /tmp/semprep-verify.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

for tool in systemd-analyze apt-get dpkg-deb; do
	if ! command -v "$tool" >/dev/null; then
		skip "systemd-analyze verify: $tool is not installed"
		exit 0
	fi
done

# The real unit files, straight from the distribution's packages.
mkdir -p "$tmp/debs" "$tmp/root"
if ! (cd "$tmp/debs" && apt-get download docker.io containerd) >"$tmp/apt.log" 2>&1; then
	fail "apt-get download docker.io containerd: $(tail -n 3 "$tmp/apt.log" | tr '\n' ' ')"
	exit 1
fi
for deb in "$tmp"/debs/*.deb; do
	dpkg-deb -x "$deb" "$tmp/root" || { fail "dpkg-deb -x $deb"; exit 1; }
done
R=$tmp/root
unitdir=$R/lib/systemd/system
for u in docker.service docker.socket containerd.service; do
	[ -f "$unitdir/$u" ] || { fail "the packages ship no $u"; exit 1; }
done
cp "$src/tests/fixtures/isulad.service" "$unitdir/isulad.service"
# What the units need besides themselves: systemd's own units (sysinit.target
# and the like) and the commands they name. iSulad is not packaged in Debian:
# a stub stands in for /usr/bin/isulad.
mkdir -p "$R/usr/lib/systemd/system" "$R/bin" "$R/sbin" "$R/usr/bin"
cp -a /usr/lib/systemd/system/. "$R/usr/lib/systemd/system/"
cp "$(type -P kill)" "$R/bin/kill"
[ -e "$R/sbin/modprobe" ] || cp "$(type -P true)" "$R/sbin/modprobe"
printf '#!/bin/sh\n' >"$R/usr/bin/isulad" && chmod 755 "$R/usr/bin/isulad"

# semprep itself: the real binary when it is built; verify only needs the
# ExecStartPre= path to exist.
bin=${SEMPREP_BIN:-}
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
	bin=$tmp/semprep-stub
	printf '#!/bin/sh\nexit 0\n' >"$bin" && chmod 755 "$bin"
fi
if ! sh "$src/install.sh" --root "$R" --binary "$bin" --units all >"$tmp/install.log" 2>&1; then
	fail "install.sh --root: $(tail -n 3 "$tmp/install.log" | tr '\n' ' ')"
	exit 1
fi

verify() { # $1 = root, $2 = unit; sets $out, $err, returns verify's rc
	systemd-analyze verify --root="$1" --man=no --generators=no "lib/systemd/system/$2" \
		>"$tmp/out" 2>"$tmp/err"
	local rc=$?
	out=$(cat "$tmp/out") err=$(cat "$tmp/err")
	return $rc
}

for u in docker containerd isulad; do
	what="systemd-analyze verify $u.service (${u/isulad/iSulad upstream} unit) + 10-semprep.conf"
	[ "$u" = isulad ] || what="systemd-analyze verify $u.service (Debian's package) + 10-semprep.conf"
	if verify "$R" "$u.service" && [ -z "$err" ]; then
		pass "$what: rc 0, stderr empty"
	else
		fail "$what: rc $?, stderr: $err $out"
	fi
done

# The drop-ins say what the issue asks, exactly.
for u in docker containerd isulad; do
	f=$R/etc/systemd/system/$u.service.d/10-semprep.conf
	want="ExecStartPre=/usr/local/sbin/semprep run --daemon $u"
	if [ "$(grep -v '^#' "$f" | grep -c .)" = 4 ] &&
		grep -qxF '[Service]' "$f" &&
		grep -qxF "$want" "$f" &&
		grep -qxF 'EnvironmentFile=-/etc/sysconfig/semprep' "$f" &&
		grep -qxF 'EnvironmentFile=-/etc/default/semprep' "$f"; then
		pass "$u drop-in: [Service], both EnvironmentFile=- lines and '$want' (no '-' prefix)"
	else
		fail "$u drop-in content: $(grep -v '^#' "$f" | tr '\n' '|')"
	fi
	# Every directive carries a comment saying why (a run of the same key
	# shares one comment).
	if awk '/^[A-Za-z]+=/ { k = $0; sub(/=.*/, "", k)
			if (prev !~ /^#/ && prevkey != k) { print FILENAME ":" NR ": " $0; bad = 1 } }
		{ prev = $0; prevkey = ""; if ($0 ~ /^[A-Za-z]+=/) { prevkey = $0; sub(/=.*/, "", prevkey) } }
		END { exit bad }' "$f" >"$tmp/nocomment"; then
		pass "$u drop-in: every directive has a comment"
	else
		fail "$u drop-in: directives without a comment: $(cat "$tmp/nocomment")"
	fi
done

# Controls: the checks above can fail. A bad key in the drop-in is only a
# warning (rc 0), so stderr is what catches it; a missing semprep binary is
# an error for docker and isulad, whose first ExecStartPre= is semprep's.
cp -a "$R/etc/systemd/system/docker.service.d/10-semprep.conf" "$tmp/saved.conf"
echo 'ExecStartPre=/usr/local/sbin/semprep run --daemon docker --bogus' >>"$R/etc/systemd/system/docker.service.d/10-semprep.conf"
echo 'NoSuchDirective=1' >>"$R/etc/systemd/system/docker.service.d/10-semprep.conf"
if verify "$R" docker.service && [[ "$err" == *NoSuchDirective* ]]; then
	pass "control: a bad key in the drop-in shows on stderr (rc 0), so the drop-in is read"
else
	fail "control: a bad key in the drop-in went unnoticed (stderr: $err)"
fi
cp -a "$tmp/saved.conf" "$R/etc/systemd/system/docker.service.d/10-semprep.conf"
mv "$R/usr/local/sbin/semprep" "$R/usr/local/sbin/semprep.away"
if ! verify "$R" docker.service && [[ "$err" == */usr/local/sbin/semprep* ]]; then
	pass "control: verify fails when /usr/local/sbin/semprep is missing"
else
	fail "control: a missing semprep binary went unnoticed (stderr: $err)"
fi
mv "$R/usr/local/sbin/semprep.away" "$R/usr/local/sbin/semprep"

# Another PREFIX: install.sh rewrites the path inside the drop-ins.
sh "$src/install.sh" --root "$R" --uninstall >/dev/null 2>&1
if PREFIX=/opt/semprep sh "$src/install.sh" --root "$R" --binary "$bin" --units all >"$tmp/install.log" 2>&1 &&
	grep -qxF 'ExecStartPre=/opt/semprep/sbin/semprep run --daemon isulad' \
		"$R/etc/systemd/system/isulad.service.d/10-semprep.conf" &&
	verify "$R" isulad.service && [ -z "$err" ] && verify "$R" docker.service && [ -z "$err" ]; then
	pass "PREFIX=/opt/semprep: drop-ins name /opt/semprep/sbin/semprep and verify cleanly"
else
	fail "PREFIX=/opt/semprep: $err $(tail -n 3 "$tmp/install.log")"
fi

exit $failed
