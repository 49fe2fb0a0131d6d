#!/usr/bin/env bash
# The runtime upgrade gate, end to end on this machine (README: "Runtime upgrade gate"):
# bring up Debian 13's stack next to Debian 12's (cutover lab up --release trixie), certify
# both under the same target names, gate the candidate against the baseline, diff them, and
# write the Markdown report that the README pastes. Wall times go to stderr.
#   bench/upgrade_report.sh [--readme] [OUT] [pytest args, e.g. -k "visibility or lifecycle"]
# --readme: also put the report into README.md (between the upgrade-report markers).
# Exit: the gate's (0 PASS, 1 FAIL, 2 bad input). Uses $CUTOVER_LAB like every command.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
readme=""
[ "${1:-}" = "--readme" ] && { readme=1; shift; }
out=${1:-out/upgrade-$(date +%Y%m%d-%H%M%S)}
[ $# -gt 0 ] && shift
lab=${CUTOVER_LAB:-/var/lib/cutover-lab}
mkdir -p "$out"
t() { date +%s.%N; }
took() { awk -v a="$2" -v b="$(t)" -v w="$1" 'BEGIN { printf "%-28s %6.1f s\n", w, b - a }' >&2; }

t0=$(t); bin/cutover lab up --release trixie || exit 2; took "lab up --release trixie" "$t0"
t0=$(t); bin/cutover run --targets "$lab/releases/bookworm.yaml" --out "$out/bookworm" -n 2 "$@"
took "certify bookworm (baseline)" "$t0"
t0=$(t); bin/cutover run --targets "$lab/releases/trixie.yaml" --out "$out/trixie" -n 2 "$@"
took "certify trixie (candidate)" "$t0"
bin/cutover gate "$out/trixie" --baseline "$out/bookworm" --out "$out/gate"
gate_rc=$?
bin/cutover diff "$out/bookworm" "$out/trixie" --changed > "$out/diff.txt"
.venv/bin/python -m cutover.upgrade_report "$out/bookworm" "$out/trixie" --gate "$out/gate" \
  --names bookworm,trixie --title "Runtime upgrade: Debian 12 (bookworm) -> Debian 13 (trixie)" > "$out/REPORT.md" || exit 2
cat "$out/REPORT.md"
[ -n "$readme" ] && .venv/bin/python bench/readme_splice.py upgrade-report "$out/REPORT.md"
echo "upgrade_report: $out/REPORT.md, $out/diff.txt, $out/gate/summary.html" >&2
exit $gate_rc
