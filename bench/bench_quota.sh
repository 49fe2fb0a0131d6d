#!/usr/bin/env bash
# Budget of issue 5, measured (not asserted by a test):
#   disk quota suite, every lab target, both default quotas (64m, 160m), -n 2: under 120 s wall
# Usage: bench/bench_quota.sh [runs]   (uses $CUTOVER_LAB or the default lab; brings it up)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1}
t0=$EPOCHREALTIME; bin/cutover lab up 2>/dev/null; t1=$EPOCHREALTIME
printf 'lab up:                       %6.1f s\n' "$(awk "BEGIN{print $t1 - $t0}")"
for i in $(seq "$runs"); do
  out=$(mktemp -d)
  t0=$EPOCHREALTIME
  bin/cutover run --out "$out" -n 2 -k disk_quota >/dev/null 2>&1 || true
  t1=$EPOCHREALTIME
  summary=$(.venv/bin/python -c "
import collections, json
d = json.load(open('$out/results.json'))
c = collections.Counter(r['outcome'] for r in d['results'])
print(len(d['results']), 'records,', len(d['run']['targets']), 'targets:', ', '.join(f'{n} {o}' for o, n in sorted(c.items())))
for r in d['results']:
    if r['outcome'] == 'error':
        print('  error:', r['check'], r['target'], r['allocation'], r['message'][:300])")
  printf 'disk quota suite, all targets:%6.1f s   (%s)   budget 120 s\n' "$(awk "BEGIN{print $t1 - $t0}")" "$summary"
  rm -rf "$out"
done
printf 'load average: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
