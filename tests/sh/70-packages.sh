#!/usr/bin/env bash
# The packages: `cargo xtask dist` builds the .deb, the .rpm, the man page
# and the completions (packaging/README.md), and this checks each of them
# with the distributions' own tools:
#
#   1. cargo xtask dist builds everything into target/dist;
#   2. lintian: no error on the .deb (control: a conffile not declared is
#      one); rpmlint: no error on the .rpm and the spec;
#   3. the two packages hold the same files, modes and bytes, allowing for
#      each distribution's directories; both ship the guarded daemon-reload
#      and restart nothing;
#   4. the RPM installs into a staged root (rpm -i --root --nodeps), its
#      scriptlets run there without calling systemctl (no systemd running),
#      and its drop-in passes systemd-analyze verify against Debian's real
#      docker unit (control: without /usr/sbin/semprep it fails); rpm -e
#      and the .deb's prerm/postrm remove the metrics report from /run and
#      nothing else;
#   5. the man page renders without warnings (man --warnings, mandoc -T
#      lint), has every section and every long option of every command's
#      --help and every variable; `man semprep` works from the .deb, the
#      .rpm and install.sh;
#   6. the completions: bash through bash-completion's own loader (semprep
#      st -> status, --policy -> the four policies, ...), fish the same, zsh
#      parses;
#   7. the real-systemd test (50-systemd-e2e.sh) with the .deb alone,
#      installed by dpkg inside the container, then purged.
#
# Needs root (rpm --root, the container), and what .ci/run installs: rpm,
# rpmlint, lintian, mandoc, man-db, bash-completion, fish, zsh, dpkg-dev,
# systemd-container, debootstrap. The cached container root is shared:
# run this file under `flock /var/tmp/semprep-e2e.lock`, like 50.
set -uo pipefail

src=${SEMPREP_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
# shellcheck source-path=SCRIPTDIR source=lib/report.sh
. "$(dirname "$0")/lib/report.sh"
note() { echo "   $*" >&2; }

if [ "$(id -u)" != 0 ]; then
	skip "packages: needs root (rpm -i --root, the systemd container)"
	exit 0
fi
for tool in cargo dpkg-deb dpkg-shlibdeps rpm rpmbuild rpmlint lintian mandoc man fish zsh \
	systemd-analyze apt-get shellcheck; do
	if ! command -v "$tool" >/dev/null; then
		skip "packages: $tool is not installed (.ci/run installs it)"
		exit 0
	fi
done
if [ ! -f /usr/share/bash-completion/bash_completion ]; then
	skip "packages: bash-completion is not installed (.ci/run installs it)"
	exit 0
fi

tmp=$(mktemp -d /tmp/semprep-packages.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
dist=${CARGO_TARGET_DIR:-$src/target}/dist
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$src/Cargo.toml" | head -n 1)
deb=$dist/semprep_${version}-1_$(dpkg --print-architecture).deb
rpm=$dist/semprep-${version}-1.$(rpm --eval '%{_arch}').rpm

# --- 1. one entry point builds everything ---
rm -f "$deb" "$rpm" "$dist/semprep.8"
start=$(date +%s)
if (cd "$src" && cargo xtask dist) >"$tmp/dist.log" 2>&1 &&
	[ -f "$deb" ] && [ -f "$rpm" ] && [ -f "$dist/semprep.8" ] && [ -f "$dist/semprep-$version.tar.gz" ] &&
	[ -f "$dist/completions/bash/semprep" ] && [ -f "$dist/completions/zsh/_semprep" ] &&
	[ -f "$dist/completions/fish/semprep.fish" ]; then
	pass "cargo xtask dist built $(basename "$deb"), $(basename "$rpm"), semprep.8, the completions and the source tarball in $(($(date +%s) - start)) s"
else
	fail "cargo xtask dist: $(tail -n 20 "$tmp/dist.log")"
	exit 1
fi
# The source tarball builds offline: vendored crates, cargo told to use them.
# (Tools' output goes to files before grep -q: an early exit of grep would
# kill the writer with SIGPIPE and fail the pipeline under pipefail.)
tar -tzf "$dist/semprep-$version.tar.gz" >"$tmp/tarball.list"
tar -xzf "$dist/semprep-$version.tar.gz" -C "$tmp" "semprep-$version/.cargo/config.toml" \
	"semprep-$version/Cargo.lock" "semprep-$version/packaging/rpm/semprep.spec" 2>/dev/null
git -C "$src" ls-files >"$tmp/git.list"
if grep -q "^semprep-$version/vendor/clap-[0-9.]*/Cargo.toml$" "$tmp/tarball.list" &&
	grep -qx 'replace-with = "vendored-sources"' "$tmp/semprep-$version/.cargo/config.toml" &&
	! grep -q "^semprep-$version/target/" "$tmp/tarball.list" &&
	[ -s "$tmp/git.list" ] && ! grep -q '^vendor/' "$tmp/git.list"; then
	pass "the source tarball holds the tree, packaging/rpm/semprep.spec and vendor/ (cargo told to use it); vendor/ is not committed"
else
	fail "source tarball: $(grep -c . "$tmp/tarball.list") entries, config: $(cat "$tmp/semprep-$version/.cargo/config.toml")"
fi

# --- 2. lintian and rpmlint ---
lintian -I -E --pedantic "$deb" >"$tmp/lintian" 2>&1
rc=$?
grep -E '^[EWIPX]: ' "$tmp/lintian" | while read -r line; do note "lintian: $line"; done
if [ "$rc" = 0 ] && ! grep -q '^E: ' "$tmp/lintian"; then
	pass "lintian $(basename "$deb"): no error ($(grep -c '^W: ' "$tmp/lintian") warning(s), listed above)"
else
	fail "lintian: rc $rc: $(grep -E '^(E|W): ' "$tmp/lintian")"
fi
# Control: the same package without its conffiles list is an error.
mkdir "$tmp/repack"
dpkg-deb -R "$deb" "$tmp/repack/root" && rm "$tmp/repack/root/DEBIAN/conffiles" &&
	dpkg-deb --root-owner-group -b "$tmp/repack/root" "$tmp/repack/broken.deb" >/dev/null
lintian "$tmp/repack/broken.deb" >"$tmp/lintian.broken" 2>&1
if grep -q '^E: semprep: file-in-etc-not-marked-as-conffile' "$tmp/lintian.broken"; then
	pass "control: lintian reports an error for the same .deb without DEBIAN/conffiles"
else
	fail "control: lintian did not flag a missing conffiles list"
fi
for target in "$rpm" "$src/packaging/rpm/semprep.spec"; do
	rpmlint -c "$src/packaging/rpm/rpmlint.toml" "$target" >"$tmp/rpmlint" 2>&1
	rc=$?
	grep -E ': [EW]: ' "$tmp/rpmlint" | while read -r line; do note "rpmlint: $line"; done
	if [ "$rc" = 0 ] && grep -q ' 0 errors' "$tmp/rpmlint"; then
		pass "rpmlint $(basename "$target"): no error ($(grep -oE '[0-9]+ warnings' "$tmp/rpmlint"), listed above)"
	else
		fail "rpmlint $(basename "$target"): rc $rc: $(tail -n 12 "$tmp/rpmlint")"
	fi
done

# --- 3. the same files in both packages ---
D=$tmp/deb-root
dpkg-deb -x "$deb" "$D"
dpkg-deb -e "$deb" "$tmp/DEBIAN"
# "mode path" of every file; each distribution's own places mapped to one
# name; the documentation and license files compared apart.
deb_list() {
	dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { sub(/^\.\//, "", $6); print $1, "/" $6 }' |
		sed 's# /etc/default/semprep$# SETTINGS#; s# /usr/share/zsh/vendor-completions/# ZSH/#' |
		grep -v ' /usr/share/doc/' | sort
}
rpm_list() {
	rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm" | awk '$1 !~ /^d/' |
		sed 's# /etc/sysconfig/semprep$# SETTINGS#; s# /usr/share/zsh/site-functions/# ZSH/#' |
		grep -v -e ' /usr/share/licenses/' -e ' /usr/lib/\.build-id/' | sort
}
cat >"$tmp/want" <<'EOF'
-rw-r--r-- /usr/lib/systemd/system/docker.service.d/10-semprep.conf
-rw-r--r-- /usr/lib/systemd/system/isulad.service.d/10-semprep.conf
-rw-r--r-- /usr/lib/systemd/system/semprep-metrics.service
-rw-r--r-- /usr/lib/systemd/system/semprep-metrics.timer
-rw-r--r-- /usr/share/bash-completion/completions/semprep
-rw-r--r-- /usr/share/fish/vendor_completions.d/semprep.fish
-rw-r--r-- /usr/share/man/man8/semprep.8.gz
-rw-r--r-- /usr/share/semprep/containerd.service.d/10-semprep.conf
-rw-r--r-- SETTINGS
-rw-r--r-- ZSH/_semprep
-rwxr-xr-x /usr/libexec/semprep/semprep-containerd
-rwxr-xr-x /usr/libexec/semprep/semprep-dockerd
-rwxr-xr-x /usr/libexec/semprep/semprep-hook
-rwxr-xr-x /usr/libexec/semprep/semprep-isulad
-rwxr-xr-x /usr/sbin/semprep
EOF
sort -o "$tmp/want" "$tmp/want"
deb_list >"$tmp/deb.list"
rpm_list >"$tmp/rpm.list"
if diff -u "$tmp/want" "$tmp/deb.list" >"$tmp/diff" && diff -u "$tmp/deb.list" "$tmp/rpm.list" >"$tmp/diff"; then
	pass "rpm -qlp and dpkg-deb -c list the same 13 files and modes (SETTINGS: /etc/default vs /etc/sysconfig; zsh: vendor-completions vs site-functions)"
else
	fail "package file lists: $(cat "$tmp/diff")"
fi
if [ -f "$D/usr/share/doc/semprep/copyright" ] &&
	grep -q '^License: MIT or Apache-2.0$' "$D/usr/share/doc/semprep/copyright" &&
	grep -q '^   clap [0-9.v]*: MIT OR Apache-2.0$' "$D/usr/share/doc/semprep/copyright" &&
	[ "$(rpm -qp --qf '%{LICENSE}' "$rpm")" = "MIT OR Apache-2.0" ] &&
	[ "$(rpm -qp --licensefiles "$rpm" | xargs -n 1 basename | sort | tr '\n' ' ')" = "LICENSE-APACHE LICENSE-MIT THIRD-PARTY " ]; then
	pass "license MIT OR Apache-2.0: the .deb's copyright (with the linked crates), the RPM's License: and %license files"
else
	fail "license: $(head -n 12 "$D/usr/share/doc/semprep/copyright"); RPM: $(rpm -qp --qf '%{LICENSE}' "$rpm") $(rpm -qp --licensefiles "$rpm" | tr '\n' ' ')"
fi
if [ "$(cat "$tmp/DEBIAN/conffiles")" = /etc/default/semprep ] &&
	[ "$(rpm -qp --configfiles "$rpm")" = /etc/sysconfig/semprep ] &&
	[ "$(rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm" | awk '$2 == "/etc/sysconfig/semprep" { print $1 }')" = cn ]; then
	pass "settings file: a conffile in the .deb, %config(noreplace) in the RPM"
else
	fail "settings file: conffiles '$(cat "$tmp/DEBIAN/conffiles")'; RPM: $(rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm" | grep sysconfig)"
fi
# Maintainer scripts: daemon-reload behind the systemd guard, nothing
# restarted; the one stop is the metrics timer's, on removal only.
guarded() { # stdin = a script: it calls systemctl (or deb-systemd-invoke)
	# only inside an `if` whose condition tests /run/systemd/system, and only
	# as daemon-reload, or as `stop semprep-metrics.timer
	# semprep-metrics.service` inside an `if` on removal ($1 = remove in the
	# .deb, 0 in the RPM)
	grep -v '^[[:space:]]*#' | awk '
		/(^|[[:space:];])if[[:space:]]/ {
			depth++
			g[depth] = ($0 ~ /\[ -d \/run\/systemd\/system \]/)
			r[depth] = ($0 ~ /\[ "\$1" = (remove|0) \]/)
		}
		/systemctl|deb-systemd-invoke/ && !/command -v (systemctl|deb-systemd-invoke)/ {
			calls++
			ok = 0; removal = 0
			for (i = 1; i <= depth; i++) { if (g[i]) ok = 1; if (r[i]) removal = 1 }
			if (!ok) bad++
			if ($0 ~ /(systemctl|deb-systemd-invoke) stop semprep-metrics\.timer semprep-metrics\.service /) {
				if (!removal) bad++
			} else if ($0 !~ /systemctl daemon-reload/) bad++
		}
		/(^|[[:space:];])fi([[:space:];]|$)/ { depth-- }
		END { exit !(calls > 0 && bad == 0) }'
}
stops=0
scripts=$(rpm -qp --scripts "$rpm")
for section in postinstall preuninstall postuninstall; do
	awk -v s="$section" '/^[a-z]+ scriptlet / { on = ($1 == s); next } on' <<<"$scripts" >"$tmp/rpm-$section"
done
if guarded <"$tmp/rpm-postinstall" && guarded <"$tmp/rpm-preuninstall" && guarded <"$tmp/rpm-postuninstall" &&
	guarded <"$tmp/DEBIAN/postinst" && guarded <"$tmp/DEBIAN/prerm" && guarded <"$tmp/DEBIAN/postrm" &&
	[ "$(cat - "$tmp/DEBIAN/postinst" "$tmp/DEBIAN/prerm" "$tmp/DEBIAN/postrm" <<<"$scripts" | grep -v '^[[:space:]]*#' |
		grep -vE '(systemctl|deb-systemd-invoke) stop semprep-metrics.timer semprep-metrics.service ' |
		grep -ciE 'restart|(systemctl|deb-systemd-invoke) +(start|stop|reload|enable|disable)')" = 0 ]; then
	stops=$(cat "$tmp/rpm-preuninstall" "$tmp/DEBIAN/prerm" | grep -cE '(systemctl|deb-systemd-invoke) stop semprep-metrics.timer')
fi
if [ "$stops" = 2 ]; then
	pass "rpm -qp --scripts and the .deb's postinst/prerm/postrm: systemctl (deb-systemd-invoke) only when /run/systemd/system exists: daemon-reload, and on removal alone a stop of semprep-metrics.timer and .service; nothing restarted"
else
	fail "maintainer scripts (metrics stops: $stops): $scripts"
fi
# shellcheck disable=SC2016 # the script's own $1
if printf 'systemctl daemon-reload\n' | guarded ||
	printf 'if [ "$1" = configure ]; then\n\tsystemctl daemon-reload\nfi\n' | guarded ||
	printf 'if [ -d /run/systemd/system ]; then\n\tsystemctl restart docker\nfi\n' | guarded ||
	printf 'if [ -d /run/systemd/system ]; then\n\tsystemctl stop semprep-metrics.timer semprep-metrics.service >/dev/null\nfi\n' | guarded ||
	printf 'if [ "$1" = remove ] && [ -d /run/systemd/system ]; then\n\tsystemctl stop docker\nfi\n' | guarded ||
	printf 'if [ "$1" = remove ]; then\n\tdeb-systemd-invoke stop semprep-metrics.timer semprep-metrics.service\nfi\n' | guarded; then
	fail "control: an unguarded daemon-reload, a restart, a stop outside removal or of a daemon passed the check"
else
	pass "control: an unguarded daemon-reload, a restart, the metrics stop outside removal, or a daemon's stop fails the check"
fi
if shellcheck -s sh "$src/packaging/deb/postinst" "$src/packaging/deb/prerm" "$src/packaging/deb/postrm" &&
	shellcheck -x "$src"/tests/sh/lib/*.sh; then
	pass "shellcheck: the .deb's maintainer scripts and tests/sh/lib"
else
	fail "shellcheck"
fi

# --- 4. the RPM in a staged root, against the real docker unit ---
R=$tmp/rpm-root
mkdir -p "$R/bin" "$R/usr/bin"
# What the scriptlets need: /bin/sh (dash and its libraries), and a
# systemctl that tells on itself: nothing runs systemd in this root.
cp /bin/dash "$R/bin/sh"
for lib in $(ldd /bin/dash | grep -oE '/[^ ]+'); do
	mkdir -p "$R$(dirname "$lib")" && cp -L "$lib" "$R$lib"
done
printf '#!/bin/sh\necho "$@" >>/systemctl.calls\n' >"$R/usr/bin/systemctl"
chmod 755 "$R/usr/bin/systemctl"
if rpm --root "$R" --initdb && rpm -i --root "$R" --nodeps "$rpm" >"$tmp/rpm-i.log" 2>&1 &&
	rpm --root "$R" -q semprep >/dev/null && [ -x "$R/usr/sbin/semprep" ] && [ ! -e "$R/systemctl.calls" ]; then
	pass "rpm -i --root --nodeps: installed, %post ran and did not call systemctl (no systemd running there)"
else
	fail "rpm -i --root: $(cat "$tmp/rpm-i.log"); systemctl calls: $(cat "$R/systemctl.calls" 2>/dev/null)"
fi
# Byte for byte, the RPM's files are the .deb's (the binaries are two builds
# of one source: their --help must match).
same=true
while read -r _ path; do
	case "$path" in
	/usr/sbin/semprep) [ "$("$D$path" --help)" = "$("$R$path" --help)" ] || { same=false; note "differs: $path --help"; } ;;
	*.gz) cmp -s <(zcat "$D$path") <(zcat "$R$path") || { same=false; note "differs: $path"; } ;;
	SETTINGS) cmp -s "$D/etc/default/semprep" "$R/etc/sysconfig/semprep" || { same=false; note "differs: settings"; } ;;
	ZSH/*) cmp -s "$D/usr/share/zsh/vendor-completions/${path#ZSH/}" "$R/usr/share/zsh/site-functions/${path#ZSH/}" || { same=false; note "differs: $path"; } ;;
	*) cmp -s "$D$path" "$R$path" || { same=false; note "differs: $path"; } ;;
	esac
done <"$tmp/deb.list"
# shellcheck disable=SC2016 # the wrapper's own line, literally
if $same && grep -qxF 'ExecStartPre=/usr/sbin/semprep run --daemon docker' "$R/usr/lib/systemd/system/docker.service.d/10-semprep.conf" &&
	grep -qxF 'SEMPREP_BIN=${SEMPREP_BIN:-/usr/sbin/semprep}' "$R/usr/libexec/semprep/semprep-dockerd" &&
	! grep -rqE '/usr/local/(sbin|libexec)/semprep' "$R/usr/lib/systemd" "$R/usr/libexec" "$D/usr/lib/systemd" "$D/usr/libexec"; then
	pass "the RPM's files are the .deb's, byte for byte; drop-ins and wrappers name /usr/sbin/semprep and /usr/libexec/semprep"
else
	fail "the packages' files differ (see above) or name install.sh's /usr/local paths"
fi
# Debian's docker.io unit, and what verify resolves inside the root.
mkdir -p "$tmp/debs"
if (cd "$tmp/debs" && apt-get download docker.io) >"$tmp/apt.log" 2>&1; then
	dpkg-deb -x "$tmp"/debs/docker.io_*.deb "$R"
	mkdir -p "$R/usr/lib/systemd/system" "$R/sbin"
	cp -a /usr/lib/systemd/system/. "$R/usr/lib/systemd/system/"
	cp "$(type -P kill)" "$R/bin/kill"
	[ -e "$R/sbin/modprobe" ] || cp "$(type -P true)" "$R/sbin/modprobe"
	verify() { # sets $err
		systemd-analyze verify --root="$R" --man=no --generators=no lib/systemd/system/docker.service \
			>"$tmp/out" 2>"$tmp/err"
		local rc=$?
		err=$(cat "$tmp/err" "$tmp/out")
		return $rc
	}
	if [ -f "$R/lib/systemd/system/docker.service" ] && verify && [ -z "$err" ]; then
		pass "systemd-analyze verify: Debian's docker.service + the RPM's /usr/lib/systemd/system/docker.service.d/10-semprep.conf: rc 0, no output"
	else
		fail "systemd-analyze verify with the RPM's drop-in: $err"
	fi
	mv "$R/usr/sbin/semprep" "$tmp/semprep.away"
	if ! verify && [[ "$err" == */usr/sbin/semprep* ]]; then
		pass "control: verify fails when /usr/sbin/semprep is missing, so it read the drop-in"
	else
		fail "control: verify did not miss /usr/sbin/semprep: $err"
	fi
	mv "$tmp/semprep.away" "$R/usr/sbin/semprep"
else
	fail "apt-get download docker.io: $(tail -n 3 "$tmp/apt.log" | tr '\n' ' ')"
fi

# --- 4b. removal takes the metrics report with it, and nothing else ---
# semprep-metrics.service keeps its report in /run (RuntimeDirectoryPreserve=
# yes); node_exporter, through the administrator's link, would export it
# until the next boot. In a staged root (no systemd: nothing may call
# systemctl), each remover meets three layouts: systemd's with DynamicUser=
# (the directory in /run/private, a link to it, a killed write's temporary
# file, the timer enabled), a plain directory holding another program's file
# too, and a /run/semprep-metrics that is a link systemd did not make.
E=$tmp/erase-root
mkdir -p "$E/bin" "$E/usr/bin"
cp /bin/dash "$E/bin/sh"
for tool in /bin/dash "$(type -P rm)" "$(type -P rmdir)" "$(type -P readlink)" "$(type -P dirname)"; do
	[ "$tool" = /bin/dash ] || cp "$tool" "$E/usr/bin/"
	for lib in $(ldd "$tool" | grep -oE '/[^ ]+'); do
		mkdir -p "$E$(dirname "$lib")" && cp -L "$lib" "$E$lib"
	done
done
printf '#!/bin/sh\necho "$@" >>/systemctl.calls\n' >"$E/usr/bin/systemctl"
chmod 755 "$E/usr/bin/systemctl"
mkdir "$E/dev" && mknod -m 0666 "$E/dev/null" c 1 3
cp "$tmp/DEBIAN/prerm" "$E/deb-prerm"
cp "$tmp/DEBIAN/postrm" "$E/deb-postrm"
report_layout() { # $1 = dynamic, shared or link
	rm -rf "$E/run" "$E/victim" "$E/etc/systemd/system/timers.target.wants"
	mkdir -p "$E/run" "$E/etc/systemd/system/timers.target.wants"
	case $1 in
	dynamic)
		mkdir -m 0700 "$E/run/private"
		mkdir -m 0755 "$E/run/private/semprep-metrics"
		echo 'semprep_semaphore_sets_in_use 7' >"$E/run/private/semprep-metrics/semprep.prom"
		: >"$E/run/private/semprep-metrics/.semprep-tmp-4242-0123456789abcdef"
		chown -R 61184:61184 "$E/run/private/semprep-metrics"
		ln -s private/semprep-metrics "$E/run/semprep-metrics"
		ln -s /usr/lib/systemd/system/semprep-metrics.timer "$E/etc/systemd/system/timers.target.wants/"
		;;
	shared)
		mkdir "$E/run/semprep-metrics"
		echo 'semprep_semaphore_sets_in_use 7' >"$E/run/semprep-metrics/semprep.prom"
		echo "another program's" >"$E/run/semprep-metrics/other.prom"
		;;
	link)
		mkdir "$E/victim"
		echo "not semprep's" >"$E/victim/semprep.prom"
		ln -s ../victim "$E/run/semprep-metrics"
		;;
	esac
}
left() { # what is left of the layout: "path type", sorted
	(cd "$E" && find run victim etc/systemd/system/timers.target.wants -printf '%p %y\n' 2>/dev/null | sort | paste -sd' ')
}
declare -A want=(
	[dynamic]='etc/systemd/system/timers.target.wants d run d run/private d'
	[shared]='etc/systemd/system/timers.target.wants d run d run/semprep-metrics d run/semprep-metrics/other.prom f'
	[link]='etc/systemd/system/timers.target.wants d run d run/semprep-metrics l victim d victim/semprep.prom f'
)
rpm --root "$E" --initdb
for how in "rpm -e" "dpkg remove, purge"; do
	ok=true
	for layout in dynamic shared link; do
		rm -f "$E/systemctl.calls"
		if [ "$how" = "rpm -e" ]; then
			rpm -i --root "$E" --nodeps "$rpm" >"$tmp/erase.log" 2>&1 || ok=false
			report_layout "$layout"
			rpm -e --root "$E" semprep >>"$tmp/erase.log" 2>&1 || ok=false
		else
			report_layout "$layout"
			for step in "deb-prerm remove" "deb-postrm remove" "deb-postrm purge"; do
				# shellcheck disable=SC2086 # the script and its argument
				chroot "$E" /bin/sh /$step >>"$tmp/erase.log" 2>&1 || ok=false
			done
		fi
		got=$(left)
		if [ "$got" != "${want[$layout]}" ] || [ -e "$E/systemctl.calls" ]; then
			ok=false
			note "$how, $layout: left '$got', want '${want[$layout]}'; systemctl calls: $(cat "$E/systemctl.calls" 2>/dev/null)"
		fi
	done
	if $ok; then
		pass "$how without systemd: the report, a killed write's file, systemd's link and the timer's enablement go; another program's file, a link systemd did not make and what it points at stay; no systemctl call"
	else
		fail "$how: the metrics report's removal (above): $(cat "$tmp/erase.log")"
	fi
done

# --- 5. the man page ---
page=$dist/semprep.8
render() { LC_ALL=C.UTF-8 MANWIDTH=200 man --warnings -l "$1" 2>"$tmp/man.err"; }
render "$page" >"$tmp/man.txt"
mandoc -T lint -W warning "$page" >"$tmp/mandoc" 2>&1
mandoc_rc=$?
if [ -s "$tmp/man.txt" ] && [ ! -s "$tmp/man.err" ] && [ "$mandoc_rc" = 0 ] && [ ! -s "$tmp/mandoc" ]; then
	pass "semprep.8 renders with man -l, no groff warning (man --warnings), mandoc -T lint -W warning clean"
else
	fail "man page warnings: $(cat "$tmp/man.err" "$tmp/mandoc")"
fi
missing=
for section in NAME SYNOPSIS DESCRIPTION COMMANDS OPTIONS "EXIT STATUS" ENVIRONMENT FILES EXAMPLES "SEE ALSO"; do
	grep -qx "$section" "$tmp/man.txt" || missing="$missing [$section]"
done
for ref in 'dmsetup(8)' 'ipcs(1)' 'ipcrm(1)' 'sysctl.d(5)' 'systemd.unit(5)' \
	/usr/lib/systemd/system/docker.service.d/10-semprep.conf /etc/default/semprep /etc/sysconfig/semprep \
	/run/semprep.lock /etc/sysctl.d/90-semprep.conf 'semprep status' 'semprep --dry-run' \
	'semprep exec --daemon docker -- /usr/bin/dockerd' 'DOCKERD_BINARY=' ExecStartPre=; do
	grep -qF -- "$ref" "$tmp/man.txt" || missing="$missing [$ref]"
done
sed -n '/^EXIT STATUS$/,/^ENVIRONMENT$/p' "$tmp/man.txt" >"$tmp/man.exit"
for code in 0 1 2 3 4; do
	grep -qE "^ +$code( |$)" "$tmp/man.exit" || missing="$missing [exit $code]"
done
if [ -z "$missing" ]; then
	pass "semprep.8 has NAME ... SEE ALSO, exit statuses 0-4, the files, the examples (dry run, status, the drop-in, exec for OpenRC)"
else
	fail "semprep.8 lacks:$missing"
fi
# Every long option and variable of every command's --help is in the page.
help_missing() { # $1 = rendered page: prints what --help has and the page lacks
	local sub opt var env
	env=$(sed -n '/^ENVIRONMENT$/,/^FILES$/p' "$1")
	for sub in "" run status clean raise exec; do
		# shellcheck disable=SC2086 # "" is no subcommand
		for opt in $("$D/usr/sbin/semprep" $sub --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
			grep -qF -- "$opt" "$1" || echo "${sub:-semprep} $opt"
		done
		# shellcheck disable=SC2086
		for var in $("$D/usr/sbin/semprep" $sub --help | grep -oE 'SEMPREP_[A-Z_]+' | sort -u); do
			grep -qF -- "$var" <<<"$env" || echo "${sub:-semprep} $var"
		done
	done
}
n_opts=$(for s in run status clean raise exec; do "$D/usr/sbin/semprep" "$s" --help; done | grep -oE -- '--[a-z][a-z-]+' | sort -u | wc -l)
missing=$(help_missing "$tmp/man.txt")
if [ -z "$missing" ] && [ "$n_opts" -ge 18 ]; then
	pass "semprep.8 has all $n_opts long options of every command's --help, and each SEMPREP_* variable in ENVIRONMENT"
else
	fail "semprep.8 lacks (command, option): $missing (options seen: $n_opts)"
fi
sed 's/lock\\-timeout/lock\\-wait/g' "$page" >"$tmp/bad.8"
render "$tmp/bad.8" >"$tmp/bad.txt"
if [[ "$(help_missing "$tmp/bad.txt")" == *"--lock-timeout"* ]]; then
	pass "control: a page without --lock-timeout fails that check"
else
	fail "control: the option check missed a removed option"
fi
# man semprep after each install path.
I=$tmp/install-root
mkdir "$I"
if sh "$src/install.sh" --root "$I" --binary "$D/usr/sbin/semprep" --dist "$dist" >"$tmp/install.log" 2>&1; then :; else
	fail "install.sh --root: $(cat "$tmp/install.log")"
fi
for where in "installing the .deb:$D/usr/share/man" "installing the RPM:$R/usr/share/man" "install.sh --root:$I/usr/local/share/man"; do
	LC_ALL=C.UTF-8 MANWIDTH=80 man -M "${where#*:}" semprep >"$tmp/man.out" 2>"$tmp/man.err"
	if head -n 1 "$tmp/man.out" | grep -q '^SEMPREP(8) ' && [ ! -s "$tmp/man.err" ]; then
		pass "man semprep works after ${where%%:*} (man -M ${where#*:})"
	else
		fail "man semprep from ${where%%:*}: $(cat "$tmp/man.err")"
	fi
done

# --- 6. completions ---
# bash: bash-completion's loader finds semprep's file under XDG_DATA_DIRS,
# as it does in /usr/share and /usr/local/share; then COMP_WORDS and
# COMP_CWORD drive the function it registered.
bash_complete() { # $1 = share dir, rest = words (the last one is completed)
	local share=$1
	shift
	XDG_DATA_DIRS=$share bash --norc --noprofile -c '
		. /usr/share/bash-completion/bash_completion
		__load_completion semprep || { echo "no completion loaded"; exit 1; }
		fn=$(complete -p semprep | grep -oE -- "-F [^ ]+" | cut -d" " -f2)
		COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
		"$fn" semprep "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
		echo "${COMPREPLY[*]}"' bash "$@" 2>&1
}
check_bash() { # $1 = share dir, $2 = what
	local got ok=true
	[ "$(bash_complete "$1" semprep st)" = status ] || ok=false
	[ "$(bash_complete "$1" semprep run --policy '')" = "auto clean raise report" ] || ok=false
	[ "$(bash_complete "$1" semprep exec --daemon '')" = "docker containerd isulad none" ] || ok=false
	[ "$(bash_complete "$1" semprep run --lock)" = "--lock-file --lock-timeout" ] || ok=false
	got=$(bash_complete "$1" semprep r)
	[ "$got" = "run raise" ] || ok=false
	if $ok; then
		pass "bash completion ($2, via bash-completion's loader): 'semprep st' -> status, 'run --policy ' -> auto clean raise report, 'exec --daemon ' -> the 4 daemons, 'run --lock' -> --lock-file --lock-timeout"
	else
		fail "bash completion ($2): st -> '$(bash_complete "$1" semprep st)', --policy -> '$(bash_complete "$1" semprep run --policy '')', r -> '$got'"
	fi
}
check_bash "$D/usr/share" "the .deb"
check_bash "$I/usr/local/share" "install.sh"
if [ "$(bash_complete "$D/usr/share" semprep zz)" = "" ] && [[ "$(bash_complete "$tmp/nowhere" semprep st)" == *"no completion loaded"* ]]; then
	pass "control: 'semprep zz' completes to nothing; without semprep's file nothing is loaded"
else
	fail "control: bash completion: zz -> '$(bash_complete "$D/usr/share" semprep zz)'"
fi
# fish loads vendor_completions.d under each XDG_DATA_DIRS entry, for
# commands on PATH.
mkdir -p "$tmp/home"
fish_complete() { # $1 = the root, $2 = command line
	HOME=$tmp/home XDG_CONFIG_HOME=$tmp/home/.config XDG_DATA_DIRS=$1/usr/share PATH=$1/usr/sbin:$PATH \
		fish -c "complete -C '$2'" 2>&1 | cut -f1 | tr '\n' ' '
}
if [ "$(fish_complete "$D" 'semprep st')" = "status " ] &&
	[ "$(fish_complete "$D" 'semprep run --policy ')" = "auto clean raise report " ]; then
	pass "fish completion (the .deb's vendor_completions.d): 'semprep st' -> status, 'run --policy ' -> the 4 policies"
else
	fail "fish completion: st -> '$(fish_complete "$D" 'semprep st')', --policy -> '$(fish_complete "$D" 'semprep run --policy ')'"
fi
if zsh -n "$D/usr/share/zsh/vendor-completions/_semprep" && head -n 1 "$D/usr/share/zsh/vendor-completions/_semprep" | grep -qx '#compdef semprep'; then
	pass "zsh completion parses (zsh -n) and declares #compdef semprep"
else
	fail "zsh completion"
fi
sh "$src/install.sh" --root "$I" --uninstall >"$tmp/install.log" 2>&1
if [ -z "$(find "$I" -name '*semprep*' -print -quit)" ]; then
	pass "install.sh --uninstall removes the man page and completions too"
else
	fail "left after install.sh --uninstall: $(find "$I" -name '*semprep*')"
fi

# --- 7. the .deb alone in the real-systemd test ---
SEMPREP_E2E_DEB=$deb bash "$src/tests/sh/50-systemd-e2e.sh"
rc=$?
[ "$rc" = 0 ] || fail "50-systemd-e2e.sh with the .deb exited $rc"

exit $failed
