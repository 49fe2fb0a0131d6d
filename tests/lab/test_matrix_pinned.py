"""Every cell of the README matrix, pinned.

One fresh run of every suite on every lab target (controls included, as bench/readme_matrix.sh
runs it: the session's `matrix_run`, tests/conftest.py) must give each (check, target) the cell
tests/lab/matrix_pins.txt expects, e.g. `F F P` for a visibility check under the three
allocations. A runtime whose behaviour changed (a new Debian package, a kernel patch) or a
check that changed shows up here as a pin to review; the suite proofs (test_*_proof.py) show, besides, that each check can both pass and fail.
"""
import collections
import os

import pytest

from cutover import matrix

PINS = os.path.join(os.path.dirname(__file__), "matrix_pins.txt")


def pins():
    with open(PINS) as f:
        return matrix.parse_pins(f.read(), PINS)


def pinned_checks():
    return sorted({check for check, _target in pins()})


@pytest.fixture(scope="module")
def run(matrix_run):
    return matrix_run["data"]


def _where(data, check, target):
    """The records behind a cell, one line each: allocation, outcome and the check's message."""
    return "\n".join(f"    {r.get('allocation') or '-'}: {r['outcome']}: {(r.get('message') or '')[:300]}"
                     for r in data["results"] if r["check"] == check and r["target"] == target)


@pytest.mark.parametrize("check", pinned_checks())
def test_cells_as_pinned(run, check):
    wrong = [(t, allowed, seen) for c, t, allowed, seen in matrix.departures(pins(), run)
             if c == check and allowed is not None]
    assert not wrong, f"{check}: cells that departed from {os.path.relpath(PINS)}:\n" + "\n".join(
        f"  {t}: expected {' or '.join(allowed)}, saw {seen or 'no record'}\n{_where(run, check, t)}"
        for t, allowed, seen in wrong)


def test_no_cell_without_a_pin(run):
    new = [(c, t, seen) for c, t, allowed, seen in matrix.departures(pins(), run) if allowed is None]
    assert not new, "cells with no pin (run bench/readme_matrix.sh and review): " + ", ".join(
        f"{c} on {t} = {seen}" for c, t, seen in new)


def test_the_matrix_is_not_uniform(run):
    """The pins are not a rubber stamp: every suite has cells that pass and cells that fail."""
    _checks, _targets, cells = matrix.build(run)
    letters, targets = collections.defaultdict(set), collections.defaultdict(set)
    for (check, target), cell in cells.items():
        letters[check.split(".")[0]].update(cell.split())
        targets[check.split(".")[0]].add(target)
    # The coexistence suite has one lab pair (lxc-t4+docker-lxcfs), which conforms; its failing
    # pairs are test_coexistence_proof's own.
    thin = {suite: sorted(l) for suite, l in letters.items() if len(targets[suite]) > 1 and not {"P", "F"} <= l}
    assert not thin, f"suites whose cells never both pass and fail: {thin}"
