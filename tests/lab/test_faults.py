"""Faults injected for real on a lab of the test's own: the harness must stay honest.

Each test brings its own trouble (a killed daemon, a dead lxcfs, SIGINT, SIGTERM, a killed
xdist worker, a full disk, a leaking check) and shows what really happens: the run ends in
bounded time, its exit code and `complete` flag say what happened, `cutover gate` refuses it,
the first error record comes within a bound derived from --op-timeout, and nothing labelled
with the run is left on the lab (or the next run sweeps it). Every fault test prints one
`FAULT <name>: ...` line with its measured times (run with -s to see them; the README's
numbers come from these lines).
"""
import json
import os
import signal
import subprocess
import time

import docker
import pytest

from cutover.drivers import driver_for
from cutover.lab.lab import Lab
from tests.conftest import CUTOVER, REPO, cutover, load_results

ROOT = "/var/lib/cutover-lab-faults"
SLOW = "loadavg or meminfo or cpuinfo"    # the load scenario keeps the run busy for ~15 s
OP = 15          # --op-timeout of every fault run: what bounds a fault's first error
# A fault's first error record comes within one op timeout of the fault, plus the slack of a
# loaded 2-core machine (a check already past its last runtime call, the next one's setup).
FIRST_ERROR_BOUND = OP + 15


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


class Run:
    """`cutover run` in the background, with the time of every test report it receives."""

    def __init__(self, out, *args):
        self.out, self.times = str(out), str(out) + ".times"
        env = dict(os.environ, CUTOVER_LAB=ROOT, CUTOVER_REPORT_TIMES=self.times)
        # Its own session: a signal to the group reaches the CLI, pytest and the workers at
        # once, as a Ctrl-C in a terminal does.
        self.p = subprocess.Popen([CUTOVER, "run", "--out", self.out, "--op-timeout", str(OP),
                                   "-p", "tests.lab.report_times", *args], cwd=REPO, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  start_new_session=True)
        self.output = ""

    def wait(self, timeout):
        self.output, _ = self.p.communicate(timeout=timeout)
        self.ended = time.time()
        return self.p.returncode

    def reports(self):
        """[(epoch, outcome, phase, nodeid)] in arrival order."""
        if not os.path.exists(self.times):
            return []
        with open(self.times) as f:
            return [(float(t), o, w, n) for t, o, w, n in (l.split(" ", 3) for l in f.read().splitlines())]

    def wait_for_reports(self, n, timeout=180):
        """Until n test reports came in (some checks done, others still running)."""
        deadline = time.monotonic() + timeout
        while len(self.reports()) < n:
            assert self.p.poll() is None, "the run ended before the fault"
            assert time.monotonic() < deadline, f"fewer than {n} reports in {timeout}s"
            time.sleep(0.2)

    def first_error_after(self, t):
        bad = [r[0] for r in self.reports() if r[0] >= t and r[1] == "failed"]
        return min(bad) - t if bad else None

    def passes_after(self, t):
        return [r for r in self.reports() if r[0] >= t and r[1] == "passed"]


def wait_for_containers(lab, n=1, timeout=60):
    """Wait until the run has made n labelled containers on the lab's dockerd."""
    c = docker.DockerClient(base_url=lab.docker.endpoint, timeout=10)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(c.containers.list(filters={"label": "cutover.run"})) >= n:
            return
        time.sleep(0.2)
    raise AssertionError("the run never created containers")


def leftovers(lab, run_id):
    """Everything labelled with run_id on every endpoint of the lab's targets: [(target, cid)]."""
    seen, out = set(), []
    for t in lab.targets().values():
        if t.endpoint in seen:
            continue
        seen.add(t.endpoint)
        out += [(t.name, cid[:12]) for cid in driver_for(t, timeout=30).list_containers({"cutover.run": run_id})]
    return out


def gate_refuses(out, kind="incomplete"):
    """`cutover gate` on the run: exit 1, with a reason of this kind."""
    res = cutover("gate", str(out), "--out", str(out) + ".gate", timeout=120)
    assert res.returncode == 1, f"the gate did not refuse the run (exit {res.returncode}):\n{res.stdout}\n{res.stderr}"
    with open(os.path.join(str(out) + ".gate", "gate.json")) as f:
        g = json.load(f)
    assert g["verdict"] == "FAIL"
    kinds = {r["kind"] for r in g["reasons"]}
    assert kind in kinds, kinds
    return g


def fault_line(name, **measured):
    line = f"FAULT {name}: " + ", ".join(f"{k} {v:.1f}s" if isinstance(v, float) else f"{k} {v}"
                                         for k, v in measured.items())
    print("\n" + line)
    return line


def test_daemon_killed_mid_run(fresh, tmp_path):
    """dockerd dies for good: its targets' checks end as errors in bounded time, others go on;
    the run's host is incomplete (its leak check cannot reach the dead daemon), the gate
    refuses it, and once the daemon is back the next run sweeps what the dead one still holds."""
    run = Run(tmp_path / "out", "-n", "2", "-k", SLOW)
    wait_for_containers(fresh, 2)
    killed_at = time.time()
    os.kill(fresh.docker.pid(), signal.SIGKILL)
    rc = run.wait(timeout=400)
    assert rc == 1, run.output[-3000:]
    data = load_results(run.out)
    by_target = {}
    for r in data["results"]:
        by_target.setdefault(r["target"], []).append(r)
    # The other dockerd's target finished normally: its checks passed or failed on their merits.
    assert {r["outcome"] for r in by_target["docker-no-live-restore"]} <= {"pass", "fail"}
    dead = {n for n, t in fresh.targets().items() if t.endpoint == fresh.docker.endpoint}
    hit = [r for t in dead for r in by_target.get(t, []) if r["outcome"] == "error"]
    assert hit, "no check of the killed daemon's targets ended as an error"
    assert all(r["message"] for r in hit)
    target_of = {r["nodeid"]: r["target"] for r in data["results"]}
    late = [n for _, _, _, n in run.passes_after(killed_at + 2) if target_of.get(n) in dead]
    assert late == [], f"checks of the dead daemon passed after it died: {late}"
    first = run.first_error_after(killed_at)
    end = run.ended - killed_at
    # Every test ran (complete), but the end-of-run leak check could not ask the dead daemon:
    # its host is recorded as incomplete, and the gate refuses that host's targets for it.
    why = data["run"].get("incomplete_hosts", {}).get("local://", "")
    assert "leak check impossible" in why and fresh.docker.endpoint in why, data["run"].get("incomplete_hosts")
    g = gate_refuses(run.out, kind="host-incomplete")
    refused = {r["target"] for r in g["reasons"] if r["kind"] == "host-incomplete" and r["blocking"]}
    assert dead <= refused, refused
    fault_line("daemon killed", first_error=first, end_of_run=end, errors=len(hit), records=len(data["results"]))
    assert first is not None and first < FIRST_ERROR_BOUND
    assert end < 300
    # The killed daemon's containers outlived it (live-restore) and its teardown could not
    # remove them: the run is kept on record, so the next run on that daemon, once it is
    # back, sweeps them.
    cutover("lab", "up", lab=ROOT, check=True, timeout=120)
    left = leftovers(fresh, data["run"]["id"])
    nxt = cutover("run", "--out", str(tmp_path / "next"), "-k", "meminfo", "--target", "docker",
                  lab=ROOT, timeout=300)
    assert leftovers(fresh, data["run"]["id"]) == [], f"the next run did not sweep {left}"
    print(f"left on the killed daemon: {len(left)} container(s); the next run: "
          f"{[l for l in nxt.stdout.splitlines() if 'removed' in l]}")


def test_lxcfs_dies_mid_run(fresh, tmp_path):
    """lxcfs dies under a target that injects it: from then on no check that reads an
    lxcfs-served file can pass. The run itself finishes (complete), with errors that name
    the dead FUSE mount, exit 1, and the gate fails it on those errors."""
    run = Run(tmp_path / "out", "--target", "docker-lxcfs", "-k", "meminfo or cpuinfo or proc_uptime")
    wait_for_containers(fresh, 1)
    killed_at = time.time()
    os.kill(fresh.lxcfs.pid(), signal.SIGKILL)
    rc = run.wait(timeout=300)
    assert rc == 1, run.output[-3000:]
    data = load_results(run.out)
    broken = [r for r in data["results"] if r["outcome"] == "error"]
    # Either a read in a running container hits the dead FUSE mount, or a new container
    # cannot bind the lxcfs files any more: both name the cause.
    assert broken and all("Transport endpoint is not connected" in r["message"] or "lxcfs" in r["message"]
                          for r in broken), [r["message"] for r in data["results"]]
    late = run.passes_after(killed_at + 1)
    assert late == [], f"checks passed after lxcfs died: {late}"
    assert data["run"]["complete"] is True and data["run"]["leaks"] == []
    assert leftovers(fresh, data["run"]["id"]) == []
    # Complete, so not refused as incomplete: failed on the error records themselves.
    g = gate_refuses(run.out, kind="check")
    assert any(r["blocking"] and r["outcome"] == "error" and r["target"] == "docker-lxcfs" for r in g["reasons"])
    first = run.first_error_after(killed_at)
    fault_line("lxcfs killed", first_error=first, end_of_run=run.ended - killed_at, errors=len(broken),
               records=len(data["results"]), gate=g["verdict"])
    assert first is not None and first < FIRST_ERROR_BOUND


@pytest.mark.parametrize("how", ["SIGINT to the process group (Ctrl-C)", "SIGTERM to cutover"])
def test_interrupted_run_keeps_partial_results_marked_incomplete(fresh, tmp_path, how):
    run = Run(tmp_path / "out", "-n", "2", "-k", SLOW)
    run.wait_for_reports(4)                # some records made, many more to come
    sent = time.time()
    if how.startswith("SIGINT"):
        os.killpg(run.p.pid, signal.SIGINT)
    else:
        run.p.send_signal(signal.SIGTERM)
    rc = run.wait(timeout=120)
    assert rc == 1 and "INCOMPLETE" in run.output, run.output[-3000:]
    data = load_results(run.out)
    assert data["run"]["complete"] is False
    assert data["run"]["exitstatus"] == 2            # pytest's "interrupted"
    # Partial results kept: the records made before the signal. (Fewer than the run meant to
    # make; but with xdist the workers' collection reaches the controller only when they shut
    # down normally, so an interrupted run's `collected` may be empty: fixtures/recorder.py.)
    collected = data["run"]["collected"]
    assert len(data["results"]) >= 4 and (len(data["results"]) < len(collected) or collected == []), \
        (len(data["results"]), len(collected))
    assert leftovers(fresh, data["run"]["id"]) == [], "the interrupted run left containers"
    gate_refuses(run.out)
    end = run.ended - sent
    fault_line(how.split()[0], end_of_run=end, records=len(data["results"]), collected=len(data["run"]["collected"]))
    assert end < OP + 30


def test_worker_killed(fresh, tmp_path):
    run = Run(tmp_path / "out", "-n", "2", "-k", SLOW)
    wait_for_containers(fresh, 2)
    pytest_pid = children(run.p.pid)[0]          # bin/cutover execs the CLI, whose child is pytest
    workers = children(pytest_pid)
    assert workers, "no xdist workers found"
    killed_at = time.time()
    os.kill(workers[0], signal.SIGKILL)
    rc = run.wait(timeout=400)
    assert rc == 1, run.output[-3000:]
    data = load_results(run.out)
    assert data["run"]["complete"] is False, "a run that lost a worker must not count as complete"
    assert "INCOMPLETE" in run.output
    gate_refuses(run.out)
    first = run.first_error_after(killed_at)
    fault_line("xdist worker killed", first_error=first, end_of_run=run.ended - killed_at,
               records=len(data["results"]))
    assert first is not None and first < FIRST_ERROR_BOUND
    time.sleep(1)
    # The dead worker's containers are the next run's to sweep (its run lock is free by now).
    cutover("run", "--out", str(tmp_path / "next"), "-k", "meminfo", "--target", "docker", lab=ROOT, timeout=300)
    assert leftovers(fresh, data["run"]["id"]) == []


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


LEAKER = "conformance/isolation/test_security.py::test_no_new_privs[docker-cpuset1-256m]"


def test_leak_names_the_check_that_left_it_and_unlabelled_container_survives(fresh, tmp_path):
    """A real check's container is left behind through the harness's own labelling (its
    teardown's remove does nothing, tests/lab/leaky_plugin.py): the leak check names that
    check's node id and no other, removes it, fails the run; a container the harness did not
    create survives the run, its leak check and its sweep."""
    c = docker.DockerClient(base_url=fresh.docker.endpoint, timeout=30)
    bystander = c.containers.run("cutover/probe:1", ["sleep", "600"], detach=True)  # not ours
    try:
        env = dict(os.environ, CUTOVER_LAB=ROOT, CUTOVER_LEAK_NODEID=LEAKER)
        res = subprocess.run([CUTOVER, "run", "--out", str(tmp_path / "out"), "--target", "docker",
                              "-k", "no_new_privs or test_devices", "-p", "tests.lab.leaky_plugin"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-2000:]
        data = load_results(tmp_path / "out")
        nodeids = {r["nodeid"] for r in data["results"]}
        assert LEAKER in nodeids and len(nodeids) >= 2, nodeids      # a neighbour that did not leak ran too
        assert data["run"]["complete"] is False
        assert [(l["target"], l["test"]) for l in data["run"]["leaks"]] == [("docker", LEAKER)], data["run"]["leaks"]
        assert "LEAK" in res.stdout and LEAKER in res.stdout
        assert leftovers(fresh, data["run"]["id"]) == [], "the leak check must also remove the leak"
        bystander.reload()
        assert bystander.status == "running", "the harness removed a container it did not create"
        gate_refuses(tmp_path / "out")
    finally:
        bystander.remove(force=True)


def test_run_ids_are_not_swept_while_alive(fresh, tmp_path):
    """The sweep rule on the real lab: a live run's containers are never swept by another run,
    and once that run is gone (its lock free) the next run sweeps them."""
    from cutover import runs
    from cutover.drivers.base import ContainerSpec
    t = fresh.targets()["docker"]
    d = driver_for(t)
    run_id = f"selftest-alive-{os.getpid()}"
    fd = runs.hold(run_id)
    cid = d.run(ContainerSpec(image=t.image, command=["sleep", "600"],
                              labels={"cutover": "1", "cutover.run": run_id, "cutover.test": "alive"}))
    try:
        assert run_id not in runs.dead_runs()
        res = cutover("run", "--out", str(tmp_path / "other"), "-k", "meminfo", "--target", "docker",
                      lab=ROOT, timeout=300)
        assert res.returncode in (0, 1), res.stdout[-2000:]
        assert leftovers(fresh, run_id) == [("docker", cid[:12])], "another run swept a live run's container"
    finally:
        runs.release(run_id, fd, forget=False)        # "dies" with its container still there
    assert run_id in runs.dead_runs()
    cutover("run", "--out", str(tmp_path / "next"), "-k", "meminfo", "--target", "docker", lab=ROOT, timeout=300)
    assert leftovers(fresh, run_id) == [], "the next run did not sweep the dead run's container"
    assert run_id not in runs.dead_runs()
