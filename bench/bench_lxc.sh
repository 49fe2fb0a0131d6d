#!/usr/bin/env bash
# Wall times of lxc-t4 and the coexistence suite, measured (not asserted by a test):
#   one container create + start + exec + remove on lxc-t4 (with and without a loop root)
#   visibility suite on lxc-t4, three allocations, -n 2
#   coexistence suite on lxc-t4+docker-lxcfs (serial; its daemon check restarts dockerd)
# Usage: bench/bench_lxc.sh   (uses $CUTOVER_LAB or the default lab; brings it up if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
bin/cutover lab up >/dev/null 2>&1
PYTHONPATH=. .venv/bin/python - <<'EOF'
import time
from cutover import allocations, probe_image
from cutover.drivers import driver_for
from cutover.drivers.base import ContainerSpec
from cutover.lab.lab import Lab
d = driver_for(Lab().targets()["lxc-t4"])
for alloc in ("a:cpuset=0,mem=256m", "b:cpuset=0,mem=256m,disk=256m"):
    a = allocations.parse_spec(alloc)[0]
    t0 = time.monotonic()
    cid = d.run(ContainerSpec(image=probe_image.TAG, command=["sleep", "60"], allocation=a,
                              labels={"cutover": "1", "cutover.run": "bench"}))
    t1 = time.monotonic()
    d.exec(cid, ["true"])
    t2 = time.monotonic()
    d.remove(cid)
    t3 = time.monotonic()
    print(f"lxc-t4 {a.describe():<28} create+start {t1 - t0:5.2f} s  exec {t2 - t1:5.2f} s  remove {t3 - t2:5.2f} s")
EOF
for what in "visibility or loadavg|lxc-t4|-n 2" "coexistence|lxc-t4,docker-lxcfs|"; do
  IFS='|' read -r k targets n <<<"$what"
  out=$(mktemp -d)
  t0=$EPOCHREALTIME
  bin/cutover run --target "$targets" --out "$out" $n -k "$k" >/dev/null 2>&1 || true
  t1=$EPOCHREALTIME
  recs=$(.venv/bin/python -c "import json; print(len(json.load(open('$out/results.json'))['results']))")
  printf '%-22s on %-22s %6.1f s   (%s records)\n' "$k" "$targets" "$(awk "BEGIN{print $t1 - $t0}")" "$recs"
  rm -rf "$out"
done
