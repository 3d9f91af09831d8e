#!/bin/sh
# Install semprep and hook it into docker/containerd/isulad's start.
# Run `./install.sh --help` for the options. POSIX sh; keep it shellcheck-clean.
set -eu
umask 022

usage() {
	cat <<'EOF'
Usage: ./install.sh [OPTIONS]
Install semprep, the systemd drop-ins that run it before the container
daemon starts, the init-script hooks and an example configuration.

Options:
  --binary PATH   install this semprep binary (default: build it with
                  `cargo build --release --locked` in this source tree, and
                  the man page and completions with `cargo xtask dist man
                  completions`)
  --dist DIR      take the man page and completions from DIR (default:
                  target/dist of this source tree); without them, install.sh
                  says so and installs the rest
  --prefix DIR    installation prefix (default: $PREFIX, else /usr/local)
  --units LIST    daemons to hook, comma-separated: docker, containerd,
                  isulad or all (default: docker)
  --root DIR      install into a staged root (packaging, tests); the paths
                  written inside the files stay the target's (default:
                  $DESTDIR, else /)
  --uninstall     remove exactly what install.sh installed (an edited
                  configuration file is kept), after stopping the metrics
                  timer; and its report in /run and its enablement link
  --force         replace files that exist but were not installed by
                  install.sh
  -n, --dry-run   print every action and change nothing
  -h, --help      show this help

Files (PREFIX=/usr/local):
  /usr/local/sbin/semprep
  /usr/local/libexec/semprep/semprep-hook         generic init-script hook
  /usr/local/libexec/semprep/semprep-<daemon>     exec wrapper per unit
  /usr/local/share/man/man8/semprep.8
  /usr/local/share/{bash-completion/completions/semprep,
                   zsh/site-functions/_semprep,
                   fish/vendor_completions.d/semprep.fish}
  /etc/systemd/system/<unit>.service.d/10-semprep.conf
  /etc/systemd/system/semprep-metrics.{service,timer}  (not enabled)
  /etc/sysconfig/semprep if /etc/sysconfig exists, else /etc/default/semprep
                  (only if absent; never overwritten)
  /var/lib/semprep/install-manifest               what --uninstall removes
EOF
}

die() { # $1 = exit status, $2 = message
	echo "install.sh: error: $2" >&2
	exit "$1"
}

# The command line as given, quoted for the shell, for the hint to re-run
# it as root (the loop below shifts the options away).
quote() { # $1 = one argument
	case "$1" in
	'' | *[!A-Za-z0-9_./=:,+@%-]*) printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")" ;;
	*) printf '%s' "$1" ;;
	esac
}
given=$(quote "$0")
for a in "$@"; do given="$given $(quote "$a")"; done

src=$(cd "$(dirname "$0")" && pwd -P)
prefix=${PREFIX:-/usr/local}
root=${DESTDIR:-/}
units=docker
binary=
dist=
uninstall=false
dry=false
force=false

while [ $# -gt 0 ]; do
	case "$1" in
	--binary) [ $# -ge 2 ] || die 2 "--binary needs a path"; binary=$2; shift ;;
	--binary=*) binary=${1#*=} ;;
	--dist) [ $# -ge 2 ] || die 2 "--dist needs a directory"; dist=$2; shift ;;
	--dist=*) dist=${1#*=} ;;
	--prefix) [ $# -ge 2 ] || die 2 "--prefix needs a directory"; prefix=$2; shift ;;
	--prefix=*) prefix=${1#*=} ;;
	--units) [ $# -ge 2 ] || die 2 "--units needs a list"; units=$2; shift ;;
	--units=*) units=${1#*=} ;;
	--root) [ $# -ge 2 ] || die 2 "--root needs a directory"; root=$2; shift ;;
	--root=*) root=${1#*=} ;;
	--uninstall) uninstall=true ;;
	--force) force=true ;;
	-n | --dry-run) dry=true ;;
	-h | --help) usage; exit 0 ;;
	*) die 2 "unknown option '$1' (see --help)" ;;
	esac
	shift
done

# Paths end up in unit files and sed expressions: keep them plain.
case "$prefix" in
/*) ;;
*) die 2 "PREFIX must be an absolute path, not '$prefix'" ;;
esac
case "$prefix" in
*[!A-Za-z0-9._/+-]*) die 2 "PREFIX '$prefix' may only hold letters, digits and . _ / + -" ;;
esac
prefix=$(printf '%s\n' "$prefix" | sed 's#//*#/#g; s#\(.\)/$#\1#')

[ -d "$root" ] || die 2 "--root '$root' is not a directory"
root=$(cd "$root" && pwd -P)
if [ "$root" = / ]; then R=; else R=$root; fi

# --units: validate all names before touching anything.
sel=
for u in $(printf '%s\n' "$units" | tr ',' ' '); do
	case "$u" in
	docker | containerd | isulad) sel="$sel $u" ;;
	all) sel="$sel docker containerd isulad" ;;
	*) die 2 "unknown unit '$u' (known: docker, containerd, isulad, all)" ;;
	esac
done
[ -n "$sel" ] || die 2 "--units is empty (known: docker, containerd, isulad, all)"

if [ -z "$R" ] && ! $dry && [ "$(id -u)" != 0 ]; then
	die 1 "installing into / needs root: run it as root (sudo $given), or use --root DIR or --dry-run"
fi

manifest=/var/lib/semprep/install-manifest
systemd_dir=/etc/systemd/system
sbin=$prefix/sbin
libexec=$prefix/libexec/semprep
share=$prefix/share
summary=
units_changed=false
made= # directories this run created (or, dry, would create), one per line

say() { # $1 = verb (install, update, create, remove, keep, run), rest = what
	# One line of the final summary, printed as it happens too: "would
	# install X" in a dry run, "installed X" in a real one.
	verb=$1
	shift
	if $dry; then
		verb="would $verb"
	else
		case "$verb" in
		keep) verb=kept ;;
		run) verb=ran ;;
		*e) verb=${verb}d ;;
		*) verb=${verb}ed ;;
		esac
	fi
	echo "  $verb $*"
	summary="$summary
  $verb $*"
}

sum() { cksum <"$1" | awk '{ print $1 "-" $2 }'; }

# Manifest: "dir PATH", "file PATH" or "config PATH CKSUM" per line, target
# paths, parents before children. The new one is built in $new_manifest.
work=$(mktemp -d "${TMPDIR:-/tmp}/semprep-install.XXXXXX")
trap 'rm -rf "$work"' EXIT HUP INT TERM
# Entries of earlier runs stay (e.g. units installed before with other --units).
new_manifest=$work/manifest
if [ -f "$R$manifest" ]; then cp "$R$manifest" "$work/old"; else : >"$work/old"; fi
cp "$work/old" "$new_manifest"

in_manifest() { # $1 = type, $2 = target path
	awk -v t="$1" -v p="$2" '$1 == t && $2 == p { f = 1 } END { exit !f }' "$new_manifest"
}

record() { # $@ = one manifest line; kept once, in first-seen order
	if ! awk -v l="$*" '$0 == l { f = 1 } END { exit !f }' "$new_manifest"; then
		echo "$*" >>"$new_manifest"
	fi
}

ensure_dir() { # $1 = target directory; creates missing parents, recording them
	if [ -d "$R$1" ]; then return 0; fi
	# A dry run creates nothing, so remember what it would have created.
	case "$made" in *"
$1
"*) return 0 ;;
	esac
	[ "$1" = / ] || ensure_dir "$(dirname "$1")"
	[ -e "$R$1" ] && die 1 "$R$1 exists and is not a directory"
	$dry || mkdir -m 755 "$R$1"
	made="${made:-
}$1
"
	say create "directory $1"
	record dir "$1"
}

# $1 = source file, $2 = target path, $3 = mode. Rewrites the default
# /usr/local/sbin/semprep and /usr/local/libexec/semprep to the PREFIX ones
# in text files.
put() {
	src_file=$1 dst=$2 mode=$3
	tmp=$work/put
	if [ "$src_file" = /dev/null ]; then
		: >"$tmp" # dry run without a binary: content unknown
	elif [ "$sbin" != /usr/local/sbin ] && grep -Iq . "$src_file"; then
		sed "s#/usr/local/sbin/semprep#$sbin/semprep#g; s#/usr/local/libexec/semprep#$libexec#g" "$src_file" >"$tmp"
	else
		cp "$src_file" "$tmp"
	fi
	ensure_dir "$(dirname "$dst")"
	if [ -e "$R$dst" ] || [ -L "$R$dst" ]; then
		if ! in_manifest file "$dst" && ! $force; then
			die 1 "$R$dst exists and was not installed by install.sh; remove it or pass --force"
		fi
		if [ "$src_file" != /dev/null ] && [ ! -L "$R$dst" ] && cmp -s "$tmp" "$R$dst" &&
			[ "$(stat -c %a "$R$dst")" = "$mode" ]; then
			record file "$dst"
			echo "  unchanged $dst"
			return 0
		fi
		$dry || { rm -f "$R$dst.semprep-new"; cp "$tmp" "$R$dst.semprep-new"; chmod "$mode" "$R$dst.semprep-new"; mv -f "$R$dst.semprep-new" "$R$dst"; }
		say update "$dst"
	else
		$dry || { cp "$tmp" "$R$dst.semprep-new"; chmod "$mode" "$R$dst.semprep-new"; mv -f "$R$dst.semprep-new" "$R$dst"; }
		say install "$dst (mode $mode)"
	fi
	record file "$dst"
	case "$dst" in "$systemd_dir"/*) units_changed=true ;; esac
}

daemon_reload() {
	# Only the running systemd of this very root can load the change.
	if [ -z "$R" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
		$dry || systemctl daemon-reload || return
		say run "systemctl daemon-reload"
	fi
}

write_manifest() {
	[ -s "$new_manifest" ] || return 0
	ensure_dir "$(dirname "$manifest")"
	if [ -f "$R$manifest" ] && cmp -s "$new_manifest" "$R$manifest"; then return 0; fi
	if ! $dry; then
		cp "$new_manifest" "$R$manifest.new"
		chmod 644 "$R$manifest.new"
		mv -f "$R$manifest.new" "$R$manifest"
	fi
	# Rewriting an existing manifest is bookkeeping, not news.
	if [ ! -s "$work/old" ]; then say install "$manifest (mode 644)"; fi
}

# The metrics timer, when install.sh installed it: stopped while its units
# still exist (only by the running systemd of this very root), and then,
# once its units are gone, the report it kept in /run and its enablement
# link, as the packages' removal does: node_exporter would otherwise export
# stale figures through the administrator's link until the next boot.
installed_metrics() {
	awk -v p="$systemd_dir/semprep-metrics.timer" '$1 == "file" && $2 == p { f = 1 } END { exit !f }' "$work/old"
}

stop_metrics() {
	installed_metrics || return 0
	if [ -z "$R" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
		$dry || systemctl stop semprep-metrics.timer semprep-metrics.service >/dev/null 2>&1 || true
		say run "systemctl stop semprep-metrics.timer semprep-metrics.service"
	fi
}

# Only semprep's files (the report, a killed write's temporary files), then
# the directory if that empties it. No link is followed, and a link is
# removed only when it is systemd's (DynamicUser= keeps the directory in
# /run/private and links /run/semprep-metrics to it) or the timer's
# enablement. Same rules as packaging/deb/postrm.
remove_metrics_leftovers() {
	installed_metrics || return 0
	for d in /run/private/semprep-metrics /run/semprep-metrics; do
		if [ ! -d "$R$d" ] || [ -L "$R$d" ] || [ -L "$R$(dirname "$d")" ]; then
			continue
		fi
		for f in "$R$d/semprep.prom" "$R$d"/.semprep-tmp-*; do
			if [ -f "$f" ] && [ ! -L "$f" ]; then
				$dry || rm -f "$f"
				say remove "${f#"$R"}"
			fi
		done
		if ! $dry && rmdir "$R$d" 2>/dev/null; then say remove "directory $d"; fi
	done
	if [ -L "$R/run/semprep-metrics" ] && [ "$(readlink "$R/run/semprep-metrics")" = private/semprep-metrics ]; then
		$dry || rm -f "$R/run/semprep-metrics"
		say remove "/run/semprep-metrics (systemd's link)"
	fi
	wants=$systemd_dir/timers.target.wants/semprep-metrics.timer
	if [ -L "$R$wants" ] && [ "$(readlink "$R$wants")" = "$systemd_dir/semprep-metrics.timer" ]; then
		$dry || rm -f "$R$wants"
		say remove "$wants (systemctl enable's link)"
	fi
}

do_uninstall() {
	[ -s "$work/old" ] || die 1 "no $R$manifest: nothing here was installed by install.sh"
	stop_metrics
	# Files and the config first; $work/old is a copy, as the manifest goes too.
	while read -r type path ck; do
		case "$type" in
		file)
			if [ -e "$R$path" ] || [ -L "$R$path" ]; then
				$dry || rm -f "$R$path"
				say remove "$path"
				case "$path" in "$systemd_dir"/*) units_changed=true ;; esac
			fi
			;;
		config)
			if [ ! -e "$R$path" ]; then
				:
			elif [ "$(sum "$R$path")" = "$ck" ]; then
				$dry || rm -f "$R$path"
				say remove "$path"
			else
				say keep "$path: edited since installation"
			fi
			;;
		esac
	done <"$work/old"
	remove_metrics_leftovers
	$dry || rm -f "$R$manifest"
	say remove "$manifest"
	# Then the directories install.sh created, children first (reverse sort),
	# each only if nothing else lives in it now.
	awk '$1 == "dir" { print $2 }' "$work/old" | sort -r >"$work/dirs"
	while read -r dir; do
		[ -d "$R$dir" ] || continue
		if $dry; then
			say remove "directory $dir if empty"
		elif rmdir "$R$dir" 2>/dev/null; then
			say remove "directory $dir"
		else
			say keep "directory $dir: not empty"
		fi
	done <"$work/dirs"
	if $units_changed; then daemon_reload; fi
	if $dry; then
		echo "Dry run: nothing was changed."
	else
		echo "Done: semprep is uninstalled${R:+ from $R}. Running daemons are untouched and"
		echo "kernel.sem stays as it is now (see /proc/sys/kernel/sem)."
	fi
	exit 0
}

if $uninstall; then
	echo "Uninstalling semprep from ${R:-/}:"
	do_uninstall
fi

# --- install ---
if [ -n "$binary" ]; then
	if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then
		die 2 "--binary '$binary' is not an executable file"
	fi
elif $dry; then
	echo "  would run cargo build --release --locked in $src"
	echo "  would run cargo xtask dist man completions in $src"
	binary=/dev/null
else
	command -v cargo >/dev/null 2>&1 ||
		die 1 "no cargo on PATH and no --binary: build first (cargo build --release --locked) and pass --binary target/release/semprep"
	[ -f "$src/Cargo.toml" ] || die 1 "no Cargo.toml in $src: pass --binary PATH"
	echo "Building: cargo build --release --locked"
	(cd "$src" && cargo build --release --locked) || die 1 "cargo build failed"
	binary=${CARGO_TARGET_DIR:-$src/target}/release/semprep
	[ -x "$binary" ] || die 1 "cargo build left no $binary"
	echo "Building: cargo xtask dist man completions"
	(cd "$src" && cargo xtask dist man completions) || die 1 "cargo xtask dist man completions failed"
fi

echo "Installing semprep into ${R:-/} (prefix $prefix):"
put "$binary" "$sbin/semprep" 755
put "$src/hooks/semprep-hook.sh" "$libexec/semprep-hook" 755
for u in $sel; do
	case "$u" in
	docker) exe=dockerd ;;
	*) exe=$u ;;
	esac
	put "$src/hooks/semprep-exec.sh" "$libexec/semprep-$exe" 755
	put "$src/systemd/$u.service.d/10-semprep.conf" "$systemd_dir/$u.service.d/10-semprep.conf" 644
done
# The metrics timer: installed, never enabled (README, "Monitoring").
for u in semprep-metrics.service semprep-metrics.timer; do
	put "$src/systemd/$u" "$systemd_dir/$u" 644
done

# The man page and completions, generated from semprep's --help definition
# (cargo xtask dist man completions), where man and each shell look under
# PREFIX.
dist=${dist:-${CARGO_TARGET_DIR:-$src/target}/dist}
if [ -f "$dist/semprep.8" ] || [ "$binary" = /dev/null ]; then
	for f in semprep.8:man/man8/semprep.8 \
		completions/bash/semprep:bash-completion/completions/semprep \
		completions/zsh/_semprep:zsh/site-functions/_semprep \
		completions/fish/semprep.fish:fish/vendor_completions.d/semprep.fish; do
		from=$dist/${f%%:*}
		# dry run without a build: they do not exist yet
		[ "$binary" = /dev/null ] && [ ! -f "$from" ] && from=/dev/null
		[ -f "$from" ] || [ "$from" = /dev/null ] || die 1 "$from is missing: run cargo xtask dist man completions"
		put "$from" "$share/${f#*:}" 644
	done
else
	echo "  skipped the man page and completions: no $dist/semprep.8 (make them as your user"
	echo "  with 'cargo xtask dist man completions', or pass --dist DIR)"
fi

# The configuration: where the distribution keeps such files, only if none.
if [ -e "$R/etc/sysconfig/semprep" ]; then
	config=/etc/sysconfig/semprep
elif [ -e "$R/etc/default/semprep" ]; then
	config=/etc/default/semprep
elif [ -d "$R/etc/sysconfig" ]; then
	config=/etc/sysconfig/semprep
else
	config=/etc/default/semprep
fi
if [ -e "$R$config" ]; then
	# Ours from an earlier run (the manifest keeps its original checksum) or
	# the administrator's: left alone either way.
	echo "  kept $config (already there; never overwritten)"
else
	ensure_dir "$(dirname "$config")"
	$dry || { cp "$src/config/semprep.conf" "$R$config"; chmod 644 "$R$config"; }
	say install "$config (mode 644)"
	record config "$config" "$(sum "$src/config/semprep.conf")"
fi

write_manifest
$units_changed && daemon_reload

if [ -z "$summary" ]; then
	echo "Nothing to do: everything was already installed."
fi
if $dry; then
	echo "Dry run: nothing was changed."
	exit 0
fi
echo "Done."
if [ -z "$R" ]; then
	echo "Next:"
	for u in $sel; do
		echo "  systemctl cat $u        # shows ExecStartPre=$sbin/semprep run --daemon $u"
	done
	echo "  $sbin/semprep status  # semaphore sets in use, residual cookies, headroom"
	echo "  (status needs no root; as a user whose PATH lacks $sbin, as on Debian, type the full path)"
	echo "  edit $config to change the settings; they apply at the next start."
	echo "  For Prometheus' node_exporter: systemctl enable --now semprep-metrics.timer"
	echo "  The hook runs at each start; restart a running daemon only if you need it now."
	if [ ! -d /run/systemd/system ]; then
		echo "  No systemd here: see the README (OpenRC: DOCKERD_BINARY=$libexec/semprep-dockerd"
		echo "  in /etc/conf.d/docker; SysV: DOCKERD=$libexec/semprep-dockerd in /etc/default/docker)."
	fi
else
	echo "Staged in $R; the files refer to the target's paths ($sbin/semprep)."
fi
