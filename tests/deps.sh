#!/usr/bin/env bash
# Installs what the test suite needs, on Debian or Ubuntu, as root. CI's
# .ci/run calls it on a fresh machine, and a developer runs it once before
# tests/run.sh, so both test with the same packages. Packages already
# installed are left alone: with none missing it changes nothing and needs
# no network.
#
#   tests/deps.sh           install the missing packages (apt-get)
#   tests/deps.sh --check   name the missing packages; exit 1 if any
#   tests/deps.sh --unpack DIR   download the `unpacked` packages below and
#                           unpack them into DIR, never installed (their
#                           maintainer scripts start servers); needs apt's
#                           package lists, not root
#
# The Rust toolchain (cargo) is not among them: the suite builds with the
# one on PATH.
set -euo pipefail

# --- the packages the tests need: one per line, nothing else in this block ---
packages=(
	dmsetup           # the oracle (tests/oracle.rs), bench smoke test
	strace            # bench smoke test: the benchmark counts semctl calls with it
	util-linux        # unshare, nsenter, setpriv, ipcs
	procps
	systemd           # systemd-analyze verify
	systemd-container # systemd-nspawn: the real-systemd test
	debootstrap       # that test's Debian root
	shellcheck        # every shell script
	busybox           # the hooks under busybox sh
	dash              # install.sh and the hooks under dash
	jq                # tests/sh/75-deploy.sh: the node-problem-detector config
	dpkg-dev          # tests/sh/70-packages.sh: dpkg-shlibdeps for the .deb
	rpm               # rpmbuild, rpm -qlp, rpm -i --root
	rpmlint
	lintian
	mandoc            # mandoc -T lint on the man page
	man-db            # man -l
	bash-completion   # the completion tests load it
	fish
	zsh
	git               # xtask's source tarball (git ls-files)
	curl              # tests/sh/80-fleet.sh scrapes node_exporter
)
# Unpacked into a temporary directory by the tests that run them, never
# installed: the prometheus and node_exporter packages start their servers.
unpacked=(
	prometheus               # promtool check metrics (tests/sh/80-fleet.sh)
	prometheus-node-exporter # a real textfile collector (tests/sh/80-fleet.sh)
)
# --- end of the packages ---

if [ "${1:-}" = --unpack ]; then
	dir=${2:?usage: tests/deps.sh --unpack DIR}
	mkdir -p "$dir/debs"
	if ! (cd "$dir/debs" && apt-get download "${unpacked[@]}") >"$dir/apt.log" 2>&1; then
		echo "tests/deps.sh: apt-get download ${unpacked[*]} failed: $(tail -n 3 "$dir/apt.log" | tr '\n' ' ')" >&2
		exit 1
	fi
	for deb in "$dir"/debs/*.deb; do
		dpkg-deb -x "$deb" "$dir" || exit 1
	done
	exit 0
fi

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii'; then
		missing+=("$p")
	fi
done

if [ "${1:-}" = --check ]; then
	if [ ${#missing[@]} = 0 ]; then
		echo "tests/deps.sh: all ${#packages[@]} packages the tests need are installed"
		exit 0
	fi
	echo "tests/deps.sh: missing: ${missing[*]} (install them with tests/deps.sh, as root)" >&2
	exit 1
elif [ $# != 0 ]; then
	echo "tests/deps.sh: unknown argument '$1' (usage: tests/deps.sh [--check])" >&2
	exit 2
fi

[ ${#missing[@]} = 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "tests/deps.sh: installing ${missing[*]} needs root: run it as root (or with sudo)" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null; then
	echo "tests/deps.sh: no apt-get: install the equivalents of ${missing[*]} by hand" >&2
	exit 1
fi
echo "tests/deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends: systemd-container recommends libnss-mymachines,
# which would edit the host's /etc/nsswitch.conf. The lock timeout waits
# for another apt-get instead of failing.
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
	"${missing[@]}" >/dev/null
