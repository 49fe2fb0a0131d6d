"""Proof that, under -n 2, a disruptive check never overlaps another check on its daemon.

The session's run of every suite on every lab target (`matrix_run`, tests/conftest.py, -n 2):
xdist's two workers run one target at a time each (fixtures/fleet.py), and several targets
share the lab's dockerd (docker, docker-lxcfs, docker-crun, ...) and its lxcfs, so the workers
disrupt the same daemon while the other one wants it. tests/lab/schedprobe.py records, on each worker, when every test really used its daemon
(inside its locks) and on which worker; the assertions read that log:
- each target's checks ran on one worker, and the two workers ran at the same time;
- every daemon (and lxcfs) event of one target overlapped no other test that uses that
  daemon (or lxcfs), on either worker.
How the overlap assertion was shown to fail: the same run with the locks taken out
(CUTOVER_SCHEDPROBE_NO_LOCKS=1, see schedprobe.py) gives overlapping intervals (README).
"""
import pytest

from tests.lab import schedprobe


@pytest.fixture(scope="module")
def run(matrix_run):
    return matrix_run["data"], matrix_run["schedule"]


def test_every_test_is_in_the_schedule(run):
    data, log = run
    assert data["run"]["complete"] is True, data["run"]
    assert {r["nodeid"] for r in data["results"]} == {e["nodeid"] for e in log}


def test_each_target_on_one_worker_and_both_at_once(run):
    data, log = run
    per = schedprobe.workers_per_target(log)
    assert set(per) == {r["target"] for r in data["results"] if "+" not in r["target"]}
    assert all(len(w) == 1 for w in per.values()), per
    assert len(set().union(*per.values())) == 2, per                 # both workers had targets
    assert schedprobe.concurrent(log, "worker") == []


def test_no_disruption_overlaps_another_check_on_its_daemon(run):
    _, log = run
    disruptive = [e for e in log if e["disrupts"]]
    # Not vacuous: one daemon was disrupted by targets of both workers, and lxcfs was restarted.
    by_daemon = {}
    for e in disruptive:
        for k in e["disrupts"]:
            if k.startswith("daemon|"):
                by_daemon.setdefault(k, set()).add(e["worker"])
    assert any(len(w) == 2 for w in by_daemon.values()), by_daemon
    assert any(k.startswith("lxcfs|") for e in disruptive for k in e["disrupts"])
    bad = schedprobe.overlaps(log)
    assert not bad, bad[:10]
