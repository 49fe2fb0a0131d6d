"""Faults injected for real on a lab of the test's own: the harness must stay honest.

Each test brings its own trouble (a killed daemon, a dead lxcfs, SIGTERM, a killed xdist
worker, a full disk, a leaking test) and shows the run ends in bounded time, says what
happened, never counts as complete, and leaves nothing of its own behind.
"""
import json
import os
import signal
import subprocess
import time

import docker
import pytest

from cutover.lab import proc
from cutover.lab.lab import Lab
from tests.conftest import CUTOVER, REPO, cutover, load_results

ROOT = "/var/lib/cutover-lab-faults"
SLOW = "loadavg or meminfo or cpuinfo"    # the load scenario keeps the run busy for ~15 s


@pytest.fixture(scope="module")
def flab():
    lab = Lab(ROOT)
    cutover("lab", "up", lab=ROOT, check=True, timeout=120)
    yield lab
    cutover("lab", "down", lab=ROOT, check=True, timeout=120)


@pytest.fixture
def fresh(flab):
    """Daemons of the fault lab running and empty before each test (a test may kill them)."""
    cutover("lab", "up", lab=ROOT, check=True, timeout=120)
    flab.docker.remove_all_containers()
    return flab


def start_run(out, *args):
    env = dict(os.environ, CUTOVER_LAB=ROOT)
    return subprocess.Popen([CUTOVER, "run", "--out", str(out), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_containers(lab, n=1, timeout=60, before=()):
    """Wait until the run has made n containers (not counting those in `before`)."""
    c = docker.DockerClient(base_url=lab.docker.endpoint, timeout=10)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len([x for x in c.containers.list(filters={"label": "cutover.run"}) if x.id not in before]) >= n:
            return
        time.sleep(0.2)
    raise AssertionError("the run never created containers")


def run_containers(lab, run_id):
    c = docker.DockerClient(base_url=lab.docker.endpoint, timeout=10)
    return c.containers.list(all=True, filters={"label": f"cutover.run={run_id}"})


def test_daemon_killed_mid_run(fresh, tmp_path):
    """dockerd dies for good: its targets' checks end as errors in bounded time, others go on."""
    p = start_run(tmp_path, "-n", "2", "-k", SLOW)
    wait_for_containers(fresh, 2)
    killed_at = time.monotonic()
    os.kill(fresh.docker.pid(), signal.SIGKILL)
    out, _ = p.communicate(timeout=400)
    took = time.monotonic() - killed_at
    assert p.returncode == 1, out[-2000:]
    data = load_results(tmp_path)
    by_target = {}
    for r in data["results"]:
        by_target.setdefault(r["target"], []).append(r)
    # The other dockerd's target finished normally: its checks passed or failed on their merits.
    assert {r["outcome"] for r in by_target["docker-no-live-restore"]} <= {"pass", "fail"}
    hit = [r for t in ("docker", "docker-lxcfs") for r in by_target[t] if r["outcome"] == "error"]
    assert hit, "no check of the killed daemon's targets ended as an error"
    assert all(r["message"] for r in hit)
    print(f"\nfault->end of run: {took:.1f}s; {len(hit)} checks in error, e.g. {hit[0]['message'][:160]}")
    assert took < 300


def test_lxcfs_dies_mid_run(fresh, tmp_path):
    p = start_run(tmp_path, "--target", "docker-lxcfs", "-k", "meminfo or cpuinfo or proc_uptime")
    wait_for_containers(fresh, 1)
    os.kill(fresh.lxcfs.pid(), signal.SIGKILL)
    out, _ = p.communicate(timeout=300)
    data = load_results(tmp_path)
    outcomes = {r["outcome"] for r in data["results"]}
    assert "pass" not in outcomes or "error" in outcomes, outcomes
    broken = [r for r in data["results"] if r["outcome"] == "error"]
    # Either a read in a running container hits the dead FUSE mount, or a new container
    # cannot bind the lxcfs files any more: both name the cause.
    assert broken and all("Transport endpoint is not connected" in r["message"] or "lxcfs" in r["message"]
                          for r in broken), [r["message"] for r in data["results"]]


def test_sigterm_keeps_partial_results_marked_incomplete(fresh, tmp_path):
    p = start_run(tmp_path, "-n", "2", "-k", SLOW)
    wait_for_containers(fresh, 2)
    time.sleep(2)
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=120)
    assert p.returncode != 0, out[-2000:]
    data = load_results(tmp_path)
    assert data["run"]["complete"] is False
    assert run_containers(fresh, data["run"]["id"]) == [], "the interrupted run left containers"


def test_worker_killed(fresh, tmp_path):
    p = start_run(tmp_path, "-n", "2", "-k", SLOW)
    wait_for_containers(fresh, 2)
    pytest_pid = children(p.pid)[0]          # bin/cutover execs the CLI, whose child is pytest
    workers = children(pytest_pid)
    assert workers, "no xdist workers found"
    os.kill(workers[0], signal.SIGKILL)
    out, _ = p.communicate(timeout=400)
    assert p.returncode == 1, out[-2000:]
    data = load_results(tmp_path)
    assert data["run"]["complete"] is False, "a run that lost a worker must not count as complete"
    time.sleep(1)
    # The dead worker's containers are the next run's to sweep (its run lock is free by now).
    cutover("run", "--out", str(tmp_path / "next"), "-k", "meminfo", "--target", "docker", lab=ROOT, timeout=300)
    assert run_containers(fresh, data["run"]["id"]) == []


def children(pid):
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(x) for x in f.read().split()]
    return out


@pytest.fixture
def full_disk(tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(full)], check=True)
    yield full
    subprocess.run(["umount", "-l", str(full)])


def fill(path):
    with open(path / "filler", "wb") as f:
        try:
            f.write(b"x" * 1_000_000)
        except OSError:
            pass


def test_full_output_disk_is_refused_up_front(fresh, full_disk):
    fill(full_disk)
    res = cutover("run", "--out", str(full_disk / "out"), "--target", "docker", "-k", "meminfo",
                  lab=ROOT, timeout=300)
    assert res.returncode == 2
    assert "No space left on device" in res.stderr and "Traceback" not in res.stderr + res.stdout
    assert len(res.stderr.strip().splitlines()) == 1


def test_disk_filling_during_write_never_corrupts_results(full_disk):
    """The write itself hits ENOSPC: a one-line error, and the previous results.json stays whole."""
    from cutover import results
    from cutover.errors import CutoverError
    path = full_disk / "results.json"
    results.write_run(str(path), {"id": "before"}, [])
    fill(full_disk)
    big = [{"check": "vis.meminfo", "target": "t", "outcome": "pass", "observed": "x" * 10000}] * 100
    with pytest.raises(CutoverError) as e:
        results.write_run(str(path), {"id": "after"}, big)
    assert "No space left on device" in str(e.value)
    assert json.loads(path.read_text())["run"]["id"] == "before"
    assert [p.name for p in full_disk.iterdir() if p.name.startswith(".tmp-")] == []


def test_leak_is_named_and_unlabelled_container_survives(fresh, tmp_path):
    c = docker.DockerClient(base_url=fresh.docker.endpoint, timeout=30)
    bystander = c.containers.run("cutover/probe:1", ["sleep", "600"], detach=True)  # not ours
    try:
        env = dict(os.environ, CUTOVER_LAB=ROOT, CUTOVER_LEAK_TARGET="docker")
        res = subprocess.run([CUTOVER, "run", "--out", str(tmp_path), "--target", "docker", "-k", "meminfo",
                              "-p", "tests.lab.leaky_plugin"], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=300)
        assert res.returncode == 1
        data = load_results(tmp_path)
        assert data["run"]["complete"] is False
        assert [l["test"] for l in data["run"]["leaks"]] == ["leaky-plugin"], data["run"]["leaks"]
        assert "LEAK" in res.stdout and "leaky-plugin" in res.stdout
        assert run_containers(fresh, data["run"]["id"]) == [], "the leak check must also remove the leak"
        bystander.reload()
        assert bystander.status == "running", "the harness removed a container it did not create"
    finally:
        bystander.remove(force=True)


def test_run_ids_are_not_swept_while_alive(fresh):
    """Sanity of the sweep rule: a run whose lock is held is never treated as dead."""
    from cutover import runs
    fd = runs.hold("selftest-alive")
    try:
        assert "selftest-alive" not in runs.dead_runs()
    finally:
        runs.release("selftest-alive", fd)
    assert proc.alive(os.getpid())
