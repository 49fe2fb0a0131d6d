"""The CLI and run bookkeeping never report what this run did not do (no lab needed)."""
import json
import os
import subprocess
import threading
import time

import pytest
import yaml

from cutover import cli, runs
from cutover.errors import RuntimeTimeout
from tests.conftest import CUTOVER, REPO

DEAD = {"targets": {"gone": {"driver": "docker", "endpoint": "unix:///nonexistent/cutover-selftest.sock"}}}
PASSED = {"run": {"id": "old-run", "complete": True},
          "results": [{"check": "vis.meminfo", "target": "gone", "allocation": "a", "outcome": "pass"}]}


def run_cli(*args, **kw):
    return subprocess.run([CUTOVER, *args], capture_output=True, text=True, timeout=120, cwd=REPO, **kw)


@pytest.fixture
def dead_targets(tmp_path):
    f = tmp_path / "targets.yaml"
    f.write_text(yaml.safe_dump(DEAD))
    return f


def test_reused_out_folder_is_refused_and_left_alone(tmp_path, dead_targets):
    """A previous run's passing results.json is never read back as this run's verdict."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text(json.dumps(PASSED))
    res = run_cli("run", "--targets", str(dead_targets), "--out", str(out), "-k", "meminfo")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "already holds a run's results.json" in res.stderr and "ALL PASSED" not in res.stdout
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert json.loads((out / "results.json").read_text()) == PASSED


def test_a_run_that_dies_is_incomplete_even_beside_a_passing_results_file(tmp_path, dead_targets):
    """pytest dies (exit 3) after another run's all-pass results.json appeared in the folder."""
    out = tmp_path / "out"
    res = run_cli("run", "--targets", str(dead_targets), "--out", str(out), "-k", "meminfo",
                  "-p", "tests.unit.foreign_results_plugin")
    assert json.loads((out / "results.json").read_text())["run"]["id"] == "someone-elses-run"
    assert res.returncode == 1, res.stdout + res.stderr
    assert "ALL PASSED" not in res.stdout
    assert "INCOMPLETE" in res.stderr and "someone-elses-run" in res.stderr, res.stderr


def _write(out, run_id, complete=True, outcome="pass"):
    os.makedirs(out, exist_ok=True)
    from cutover import results
    results.write_run(os.path.join(out, "results.json"), {"id": run_id, "complete": complete},
                      [{"check": "vis.meminfo", "target": "t", "allocation": "a", "outcome": outcome}])


@pytest.mark.parametrize("run_id,rc,complete,outcome,want", [
    ("r1", 0, True, "pass", 0),          # this run, complete, all passed
    ("r1", 1, True, "fail", 1),          # a check failed
    ("r2", 0, True, "pass", 1),          # another run's file
    ("r1", 3, True, "pass", 1),          # pytest internal error
    ("r1", 2, True, "pass", 1),          # pytest interrupted
    ("r1", -9, True, "pass", 1),         # pytest killed
    ("r1", 0, False, "pass", 1),         # the run itself says incomplete
])
def test_results_exit(tmp_path, capsys, run_id, rc, complete, outcome, want):
    _write(str(tmp_path), "r1", complete, outcome)
    assert cli.results_exit(str(tmp_path), run_id, rc) == want
    said = capsys.readouterr()
    assert ("ALL PASSED" in said.out) == (want == 0)


def test_results_exit_on_corrupt_file_is_incomplete_not_bad_input(tmp_path, capsys):
    (tmp_path / "results.json").write_text('{"run": {"id": "r1", "comp')
    assert cli.results_exit(str(tmp_path), "r1", 0) == 1
    assert "INCOMPLETE" in capsys.readouterr().err


def test_run_lock_is_never_seen_free_while_being_taken(tmp_path, monkeypatch):
    """A dead_runs() at the worst moment of hold() (before its flock) must not call it dead."""
    monkeypatch.setattr(runs, "STATE", str(tmp_path))
    real = runs.fcntl.flock
    seen = []

    def flock(fd, op):
        if op == runs.fcntl.LOCK_EX and not seen:
            seen.append(runs.dead_runs())     # another controller process sweeping right now
        return real(fd, op)
    monkeypatch.setattr(runs.fcntl, "flock", flock)
    fd = runs.hold("just-started")
    try:
        assert seen == [[]], seen
        monkeypatch.setattr(runs.fcntl, "flock", real)
        assert "just-started" not in runs.dead_runs()
        assert os.path.exists(tmp_path / "runs" / "just-started.lock")
    finally:
        runs.release("just-started", fd)
    assert os.listdir(tmp_path / "runs") == []


def test_lab_lock_waits_bounded_and_names_the_holder():
    import tempfile
    from cutover.lab.lab import Lab
    root = tempfile.mkdtemp(prefix="cv-lock-")          # short: a lab path must fit socket names
    held = Lab(root)._lock()
    try:
        t0 = time.monotonic()
        with pytest.raises(RuntimeTimeout) as e:
            Lab(root)._lock(timeout=0.6)
        assert 0.5 < time.monotonic() - t0 < 3
        assert f"pid {os.getpid()}" in str(e.value) and "for over 0.6s" in str(e.value)
        # Once the holder lets go, the waiter gets it.
        threading.Timer(0.3, os.close, [held]).start()
        fd = Lab(root)._lock(timeout=5)
        os.close(fd)
    finally:
        try:
            os.close(held)
        except OSError:
            pass
        import shutil
        shutil.rmtree(root)


def test_host_commands_are_bounded_by_the_op_timeout():
    import testinfra
    from cutover.drivers.base import Driver
    from cutover.targets import Target
    d = Driver(Target(name="x", driver="docker", endpoint="unix:///x"), host=testinfra.get_host("local://"), timeout=1)
    assert d.host.run("echo %s", "a b'c").stdout == "a b'c\n"
    assert d.host.file("/proc/self/status").content_string.startswith("Name:")
    t0 = time.monotonic()
    assert d.host.run("sleep 30").rc == 124
    assert time.monotonic() - t0 < 5
    t0 = time.monotonic()
    assert d.host.run("trap '' TERM; sleep 30").rc == 137        # ignores TERM: KILLed 5 s later
    assert time.monotonic() - t0 < 10
    # A command with its own timeout keeps it (daemon commands allow twice the op timeout).
    assert d.host.run("timeout 3 sleep 2; echo $?").stdout.strip() == "0"
    d.timeout = 3                                                # follows the driver's timeout
    assert d.host.run("sleep 2; echo ok").stdout.strip() == "ok"
