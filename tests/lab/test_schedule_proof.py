"""Proof that, under -n 2, a disruptive check never overlaps another check on its daemon.

One real run of the lifecycle and visibility suites against docker and docker-lxcfs: two
targets of one dockerd (and docker-lxcfs of the lab's lxcfs), so xdist's two workers run one
target each (fixtures/fleet.py) and both disrupt the same daemon while the other worker wants
it. tests/lab/schedprobe.py records, on each worker, when every test really used its daemon
(inside its locks) and on which worker; the assertions read that log:
- each target's checks ran on one worker, and the two workers ran at the same time;
- every daemon (and lxcfs) event of one target overlapped no other test that uses that
  daemon (or lxcfs), on either worker.
How the overlap assertion was shown to fail: the same run with the locks taken out
(CUTOVER_SCHEDPROBE_NO_LOCKS=1, see schedprobe.py) gives overlapping intervals (README).
"""
import os

import pytest

from tests.conftest import cutover, load_results
from tests.lab import schedprobe

SELECT = "lifecycle or visibility or loadavg"


@pytest.fixture(scope="module")
def run(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sched")
    out, log = str(tmp / "out"), str(tmp / "schedule.jsonl")
    os.environ["CUTOVER_SCHEDULE_LOG"] = log
    try:
        res = cutover("run", "--target", "docker,docker-lxcfs", "--out", out, "-n", "2", "-k", SELECT,
                      "-p", "tests.lab.schedprobe", timeout=900)
    finally:
        del os.environ["CUTOVER_SCHEDULE_LOG"]
    assert res.returncode == 1, f"expected exit 1 (plain docker fails visibility):\n{res.stdout[-3000:]}"
    return load_results(out), schedprobe.read(log)


def test_every_test_is_in_the_schedule(run):
    data, log = run
    assert data["run"]["complete"] is True, data["run"]
    assert {r["nodeid"] for r in data["results"]} == {e["nodeid"] for e in log}


def test_each_target_on_one_worker_and_both_at_once(run):
    _, log = run
    per = schedprobe.workers_per_target(log)
    assert set(per) == {"docker", "docker-lxcfs"}
    assert all(len(w) == 1 for w in per.values()), per
    assert per["docker"] != per["docker-lxcfs"], per            # two workers, one target each
    assert schedprobe.concurrent(log, "worker") == []


def test_no_disruption_overlaps_another_check_on_its_daemon(run):
    _, log = run
    disruptive = [e for e in log if e["disrupts"]]
    # Not vacuous: both targets disrupted the shared daemon, and the lxcfs was restarted.
    assert {e["targets"][0] for e in disruptive if any(k.startswith("daemon|") for k in e["disrupts"])} \
        == {"docker", "docker-lxcfs"}
    assert any(k.startswith("lxcfs|") for e in disruptive for k in e["disrupts"])
    assert len({k for e in log for k in e["uses"] if k.startswith("daemon|")}) == 1      # one daemon
    bad = schedprobe.overlaps(log)
    assert not bad, bad[:10]
