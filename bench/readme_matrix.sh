#!/usr/bin/env bash
# Regenerate the README's target x check matrix from a real run of every suite against every
# lab target (controls included), so the README never shows a hand-typed table.
#   bench/readme_matrix.sh [RUN...]  (without RUN: runs the suites first, ~10 min on 2 cores;
#                                     several RUNs merge, a later run's records overriding)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=("$@")
if [ ${#runs[@]} = 0 ]; then
  runs=("out/matrix-$(date +%Y%m%d-%H%M%S)")
  bin/cutover lab up
  bin/cutover run --out "${runs[0]}" -n 2 || true
fi
table=$(.venv/bin/python -m cutover.matrix "${runs[@]}")
.venv/bin/python - "$table" <<'PY'
import re, sys
table = sys.argv[1]
s = open("README.md").read()
new = re.sub(r"(<!-- matrix:begin -->\n).*?(<!-- matrix:end -->)", lambda m: m.group(1) + table.rstrip("\n") + "\n" + m.group(2),
             s, flags=re.S)
if new == s and "<!-- matrix:begin -->" not in s:
    raise SystemExit("README.md has no <!-- matrix:begin --> marker")
open("README.md", "w").write(new)
PY
echo "README matrix updated from ${runs[*]}"
