#!/usr/bin/env bash
# semprep against `dmsetup` and the shell, side by side: see BENCHMARKS.md.
#
#   bench/run.sh                 the full table (about 2 minutes on 2 cores)
#   bench/run.sh --smoke         tiny N, one run each: checks the script only
#   bench/run.sh --runs 9 --only "clear 30000"
#   bench/run.sh --only "status --json"    the scenarios that run that tool
#
# Needs root, or an unprivileged user namespace (the harness then maps
# itself to root in one). Every run happens in a fresh IPC namespace; the
# host's semaphores are never touched. SEMPREP_BIN and SEMFIXTURE_BIN name
# prebuilt binaries (as tests/run.sh sets them); otherwise they are built.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${SEMPREP_BIN:-}" ] || [ -z "${SEMFIXTURE_BIN:-}" ]; then
  cargo build --release --locked --bins
  export SEMPREP_BIN="$PWD/target/release/semprep"
  export SEMFIXTURE_BIN="$PWD/target/release/semfixture"
fi
command -v dmsetup >/dev/null || { echo "bench: dmsetup not found (apt-get install dmsetup)" >&2; exit 1; }
for tool in ipcs ipcrm; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (apt-get install util-linux)" >&2; exit 1; }
done

exec cargo bench --locked --quiet --bench compare -- "$@"
