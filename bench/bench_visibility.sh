#!/usr/bin/env bash
# Budgets of issue 2, measured (not asserted by a test):
#   lab up on a machine with the packages installed: under 20 s
#   visibility suite, docker + docker-lxcfs, three allocations, -n 2: under 60 s wall
# Usage: bench/bench_visibility.sh [runs]   (uses $CUTOVER_LAB or the default lab)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1}
bin/cutover lab down >/dev/null 2>&1 || true
t0=$EPOCHREALTIME; bin/cutover lab up 2>/dev/null; t1=$EPOCHREALTIME
printf 'lab up (cold daemons):        %6.1f s   budget 20 s\n' "$(awk "BEGIN{print $t1 - $t0}")"
t0=$EPOCHREALTIME; bin/cutover lab up 2>/dev/null; t1=$EPOCHREALTIME
printf 'lab up (already up):          %6.1f s\n' "$(awk "BEGIN{print $t1 - $t0}")"
for i in $(seq "$runs"); do
  out=$(mktemp -d)
  t0=$EPOCHREALTIME
  bin/cutover run --target docker,docker-lxcfs --out "$out" -n 2 -k "visibility or loadavg" >/dev/null 2>&1 || true
  t1=$EPOCHREALTIME
  n=$(.venv/bin/python -c "import json,sys; print(len(json.load(open('$out/results.json'))['results']))")
  printf 'visibility suite, 2 targets:  %6.1f s   (%s records)   budget 60 s\n' "$(awk "BEGIN{print $t1 - $t0}")" "$n"
  rm -rf "$out"
done
