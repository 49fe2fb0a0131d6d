#!/usr/bin/env bash
# The kernel gate, end to end on this machine (README: "Kernel gate"): did bookworm-backports'
# kernel 6.12 break a T4 promise that Debian 12's kernel 6.1 keeps, and what does a cgroup v2
# boot change? Boots one cached Debian 12 guest three times under qemu (TCG): kernel 6.1,
# kernel 6.12, kernel 6.12 with cgroup v2; certifies each over ssh with the visibility and
# lifecycle suites under the same target names; gates 6.12 against 6.1 as its baseline; diffs
# every pair; writes the Markdown report that the README pastes; stops the guests.
#   ./kernel-gate.sh [OUT] [pytest args]      (default OUT: out/kernel-gate-<date>)
# Exit: the gate's (0 PASS, 1 FAIL, 2 bad input or a run that did not complete).
# Uses $CUTOVER_LAB like every command. First run: about 3 min to build the guest image.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
out=${1:-out/kernel-gate-$(date +%Y%m%d-%H%M%S)}
[ $# -gt 0 ] && shift
sel=${CUTOVER_KERNEL_GATE_K:-visibility or loadavg or lifecycle}
lab=${CUTOVER_LAB:-/var/lib/cutover-lab}
guests=(6.1 6.12 6.12-cgroup2)
t() { date +%s.%N; }
took() { awk -v a="$2" -v b="$(t)" -v w="$1" 'BEGIN { printf "kernel-gate: %-34s %7.1f s\n", w, b - a }' >&2; }

./setup.sh --kernel-gate || exit 2
mkdir -p "$out"
# "Was up" = any daemon of the lab runs (`lab status` exits 1 when one is stopped, and a lab
# that is partly up is still someone's: it is left up, not taken down at the end).
was_up=$(bin/cutover lab status --json 2>/dev/null | .venv/bin/python -c \
  'import json, sys; print(1 if any(d["running"] for d in json.load(sys.stdin)["daemons"]) else "")' 2>/dev/null)
t0=$(t); bin/cutover lab up --guests "$(IFS=,; echo "${guests[*]}")" || exit 2
took "lab up --guests" "$t0"
# The three guests at once: each is emulated on one thread per vCPU and mostly waits (daemon
# restarts, grace periods), so together they take little more than the slowest alone. The
# guests' clocks run on their own; --op-timeout is raised for what TCG makes slow (a dockerd
# restoring eight containers takes a minute).
rc=0
for g in "${guests[@]}"; do
  echo "kernel-gate: certifying vm-$g ($(grep -m1 -o 'kernel [^,]*' "$lab/guests/vm-$g.yaml")) -> $out/$g.log" >&2
  ( bin/cutover run --targets "$lab/guests/vm-$g.yaml" --out "$out/$g" -n 2 --op-timeout 120 -k "$sel" "$@" \
      >"$out/$g.log" 2>&1; echo $? >"$out/$g.rc" ) &
done
t0=$(t)
while [ -n "$(jobs -r)" ]; do
  sleep 30
  line=""
  for g in "${guests[@]}"; do
    if [ -f "$out/$g.rc" ]; then line="$line  vm-$g: done (exit $(cat "$out/$g.rc"))"
    # pytest -q's progress characters, one per test done
    else line="$line  vm-$g: $(grep -E '^[.FEsx]+ *(\[ *[0-9]+%\])?$' "$out/$g.log" 2>/dev/null | tr -cd '.FEsx' | wc -c) tests"; fi
  done
  awk -v a="$t0" -v b="$(t)" -v l="$line" 'BEGIN { printf "kernel-gate: %5.0f s%s\n", b - a, l }' >&2
done
wait
for g in "${guests[@]}"; do
  r=$(cat "$out/$g.rc" 2>/dev/null || echo 2); [ "$r" -gt 1 ] && rc=2
  echo "kernel-gate: vm-$g: $(tail -n 1 "$out/$g.log")" >&2
done
took "certify the three guests" "$t0"
bin/cutover gate "$out/6.12" --baseline "$out/6.1" --out "$out/gate"
gate_rc=$?
bin/cutover diff "$out/6.1" "$out/6.12" --changed > "$out/diff-6.1-6.12.txt"
bin/cutover diff "$out/6.12" "$out/6.12-cgroup2" --changed > "$out/diff-6.12-cgroup2.txt"
{
  .venv/bin/python -m cutover.upgrade_report "$out/6.1" "$out/6.12" --gate "$out/gate" --names 6.1,6.12 \
    --title "Kernel patch: Debian 12's 6.1 -> bookworm-backports' 6.12 (cgroup v1, same userspace)" || exit 2
  echo
  .venv/bin/python -m cutover.upgrade_report "$out/6.12" "$out/6.12-cgroup2" --names "6.12 v1,6.12 v2" \
    --title "Cgroup v2: the same 6.12 guest booted with systemd.unified_cgroup_hierarchy=1" || exit 2
} > "$out/REPORT.md"
cat "$out/REPORT.md"
# Leave the lab as it was: without the guests, and down if it was down.
t0=$(t)
if [ -n "$was_up" ]; then bin/cutover lab up --guests none >/dev/null 2>&1; else bin/cutover lab down >/dev/null 2>&1; fi
took "guests stopped" "$t0"
echo "kernel-gate: $out/REPORT.md, $out/diff-*.txt, $out/gate/summary.html" >&2
[ $rc -ne 0 ] && exit $rc
exit $gate_rc
