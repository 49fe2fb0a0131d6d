#!/usr/bin/env bash
# Fleet scaling, measured (not asserted by a test), issue 7:
#   certify 1, 2 and 4 simulated hosts (`lab up --hosts 4`) at the same time with `-n auto`;
#   goal on a 2-core machine: 4 hosts in under 2.5x the wall time of one.
# Usage: bench/bench_fleet.sh [runs] [selection]
#   selection: a pytest -k expression (default: the visibility suite, and the lifecycle suite
#   when conformance/lifecycle has tests; e.g. "visibility or loadavg" for visibility only).
# $FLEET_SCOPE=host|target forces xdist's work unit (default: auto, see cutover/fleet.py).
# Uses $CUTOVER_LAB (or the default lab); leaves 4 hosts up (`lab up --hosts 0` removes them).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1}
sel=${2:-}
if [ -z "$sel" ]; then
  sel="visibility or loadavg"
  if ls conformance/lifecycle/test_*.py >/dev/null 2>&1; then sel="$sel or lifecycle"; fi
fi
t0=$EPOCHREALTIME; bin/cutover lab up --hosts 4 >/dev/null 2>&1; t1=$EPOCHREALTIME
printf 'lab up --hosts 4:             %6.1f s\n' "$(awk "BEGIN{print $t1 - $t0}")"
scope=()
[ -n "${FLEET_SCOPE:-}" ] && scope=(--fleet-scope "$FLEET_SCOPE")
workers=${WORKERS:-auto}
printf 'selection: -k "%s", -n %s, scope %s, %s core(s), load now: %s, %s\n' "$sel" "$workers" \
  "${FLEET_SCOPE:-auto}" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(date -u +%Y-%m-%dT%H:%MZ)"
declare -A wall
for i in $(seq "$runs"); do
  for n in 1 2 4; do
    hosts=$(seq -s, -f 'h%g' 1 "$n")
    out=$(mktemp -d)
    t0=$EPOCHREALTIME
    bin/cutover run --host "$hosts" --out "$out" -n "$workers" -k "$sel" "${scope[@]}" >"$out/log" 2>&1 || true
    t1=$EPOCHREALTIME
    s=$(awk "BEGIN{print $t1 - $t0}")
    read -r recs errs nw < <(.venv/bin/python - "$out" <<'EOF'
import json, re, sys
out = sys.argv[1]
try:
    recs = json.load(open(f"{out}/results.json"))["results"]
except (OSError, ValueError):
    recs = []
log = open(f"{out}/log", errors="replace").read()
m = re.search(r"(\d+) workers for \d+ host\(s\)(?:, all checks of an? (\w+))?", log)
print(len(recs), sum(r["outcome"] == "error" for r in recs), f"{m.group(1)}/{m.group(2) or '?'}" if m else "?")
EOF
)
    wall[$n]=$s
    ratio=$(awk "BEGIN{printf \"%.2f\", $s / ${wall[1]}}")
    printf 'run %s: %d host(s): %6.1f s  ratio %sx  (%s records, %s errors, workers/unit %s, load %s)\n' \
      "$i" "$n" "$s" "$ratio" "$recs" "$errs" "$nw" "$(cut -d' ' -f1 /proc/loadavg)"
    rm -rf "$out"
  done
done
echo "goal: 4 hosts under 2.5x one host"
