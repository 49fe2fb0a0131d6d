#!/usr/bin/env bash
# Budget of issue 6, measured (not asserted by a test): the images suite under 120 s wall, -n 2,
#   on the lab targets (every target of the lab's targets file), and, for comparison with
#   earlier runs, on docker, docker-lxcfs and docker-no-live-restore alone.
# Usage: bench/bench_images.sh [runs]   (uses $CUTOVER_LAB or the default lab; brings it up)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1}
bin/cutover lab up >/dev/null 2>&1
measure() {   # label, budget, cutover run arguments...
  local label=$1 budget=$2; shift 2
  local out; out=$(mktemp -d)
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  local t0=$EPOCHREALTIME
  bin/cutover run --out "$out" -n 2 -k images "$@" >"$out/log" 2>&1 || true
  local t1=$EPOCHREALTIME
  local summary; summary=$(.venv/bin/python - "$out" <<'PY'
import collections, json, sys
try:
    recs = json.load(open(sys.argv[1] + "/results.json"))["results"]
except (OSError, ValueError):
    recs = []
c = collections.Counter(r["outcome"] for r in recs)
print(f"{len(recs)} records: " + ", ".join(f"{n} {o}" for o, n in sorted(c.items())))
PY
)
  printf '%-34s %6.1f s   budget %s   (%s; load before %s on %s CPUs)\n' "$label" \
    "$(awk "BEGIN{print $t1 - $t0}")" "$budget" "$summary" "$load" "$(nproc)"
  rm -rf "$out"
}
for i in $(seq "$runs"); do
  measure "images, 3 lab targets:" "120 s" --target docker,docker-lxcfs,docker-no-live-restore
  measure "images, every lab target:" "120 s"
done
