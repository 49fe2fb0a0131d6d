#!/usr/bin/env bash
# Budget of issue 3, measured (not asserted by a test):
#   lifecycle suite, docker + docker-no-live-restore, -n 2, on 2 cores: under 180 s wall
# Also prints -n 0 and the three-target run (with docker-lxcfs) for comparison, and the host
# load, since other work on the machine slows daemon restarts down.
# Usage: bench/bench_lifecycle.sh [runs]   (uses $CUTOVER_LAB or the default lab; brings it up)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1}
bin/cutover lab up >/dev/null 2>&1
one() {   # label, then cutover run arguments
  local label=$1; shift
  local out; out=$(mktemp -d)
  local load0; load0=$(cut -d' ' -f1 /proc/loadavg)
  local t0=$EPOCHREALTIME
  bin/cutover run --out "$out" -k lifecycle "$@" >/dev/null 2>&1 || true
  local t1=$EPOCHREALTIME
  local n; n=$(.venv/bin/python -c "import json; print(len(json.load(open('$out/results.json'))['results']))" 2>/dev/null || echo "no")
  printf '%-44s %6.1f s   (%s records, load1 before %s)\n' "$label" "$(awk "BEGIN{print $t1 - $t0}")" "$n" "$load0"
  rm -rf "$out"
}
for i in $(seq "$runs"); do
  one "lifecycle, docker + no-live-restore, -n 2:" --target docker,docker-no-live-restore -n 2
  one "lifecycle, docker + no-live-restore, -n 0:" --target docker,docker-no-live-restore
  one "lifecycle, + docker-lxcfs, -n 2:" --target docker,docker-lxcfs,docker-no-live-restore -n 2
done
echo "budget: docker + docker-no-live-restore under 180 s wall on 2 cores"
