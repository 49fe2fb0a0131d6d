#!/usr/bin/env bash
# Regenerate the README's target x check matrix from a real run of every suite against every
# lab target (controls included), so the README never shows a hand-typed table, and the
# self-tests' pins (tests/lab/matrix_pins.txt) from the same run: review `git diff` of both.
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
.venv/bin/python -m cutover.matrix "${runs[@]}" | .venv/bin/python bench/readme_splice.py matrix -
.venv/bin/python -m cutover.matrix --pins tests/lab/matrix_pins.txt "${runs[@]}"
echo "README matrix and tests/lab/matrix_pins.txt updated from ${runs[*]}"
