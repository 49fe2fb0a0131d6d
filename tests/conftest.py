"""Self-test helpers: the real lab, and running Cutover as a user would (bin/cutover)."""
import json
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CUTOVER = os.path.join(REPO, "bin", "cutover")


def pytest_collection_modifyitems(config, items):
    # Tests that drive the lab's runtimes are marked `lab`, so `-m "not lab"` runs the pure ones.
    for item in items:
        if "/tests/lab/" in str(item.path):
            item.add_marker(pytest.mark.lab)


def cutover(*args, lab=None, timeout=600, check=False):
    """Run bin/cutover; returns CompletedProcess with text output."""
    env = dict(os.environ)
    if lab:
        env["CUTOVER_LAB"] = lab
    res = subprocess.run([CUTOVER, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    if check and res.returncode != 0:
        raise AssertionError(f"cutover {' '.join(args)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
    return res


def subset_targets(lab, path, targets):
    """Write a targets file at `path` holding `targets` ({name: entry}) and the lab's other keys.

    The lab's `pairs:` name lab targets a subset may leave out, and a targets file whose pair
    names a missing target is bad input: a subset keeps only the pairs it can still express."""
    import yaml
    with open(lab.targets_path) as f:
        data = yaml.safe_load(f)
    data["targets"] = targets
    data["pairs"] = [p for p in data.get("pairs") or [] if all(n in targets for n in p)]
    if not data["pairs"]:
        data.pop("pairs")
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return str(path)


def lab_targets(lab):
    import yaml
    with open(lab.targets_path) as f:
        return yaml.safe_load(f)["targets"]


def load_results(out):
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f)


def outcomes(data):
    """{(check, target, allocation): outcome}."""
    return {(r["check"], r["target"], r["allocation"]): r["outcome"] for r in data["results"]}


@pytest.fixture(scope="session")
def lab():
    """The default lab, up for the session; taken down at the end only if we brought it up."""
    from cutover.lab.lab import Lab
    lab = Lab()
    was_up = all(d["running"] for d in lab.status()["daemons"])
    cutover("lab", "up", check=True, timeout=120)
    yield lab
    if not was_up:
        cutover("lab", "down", check=True, timeout=120)


@pytest.fixture(scope="session")
def visibility_run(lab, tmp_path_factory):
    """One real run of the visibility suite, shared by the proofs that read it.

    Targets: the lab's docker and docker-lxcfs, plus docker-hostnet, a deliberately wrong
    target made from the same daemon (containers on the host's network namespace).
    Returns the run folder.
    """
    tmp = tmp_path_factory.mktemp("vis")
    ts = lab_targets(lab)
    wrong = dict(ts["docker"], options={"network": "host"},
                 description="deliberately wrong: host network namespace")
    tfile = subset_targets(lab, tmp / "targets.yaml",
                           {"docker": ts["docker"], "docker-lxcfs": ts["docker-lxcfs"], "docker-hostnet": wrong})
    out = str(tmp / "out")
    res = cutover("run", "--targets", tfile, "--out", out, "-n", "2", "-k", "visibility or loadavg",
                  timeout=300)
    assert res.returncode == 1, f"expected exit 1 (some checks fail), got {res.returncode}:\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}"
    return out


@pytest.fixture(scope="session")
def matrix_run(lab, tmp_path_factory):
    """One real run of every suite on every lab target (controls included, -n 2), as
    bench/readme_matrix.sh makes the README matrix, shared by the proofs that only read the
    lab's own targets: the matrix pins, the runtimes' side-by-side, the schedule proof (whose
    probe plugin logs where and when each test ran) and the lifecycle proof's -n 2 half.
    Returns {"dir", "data", "schedule"}."""
    from tests.lab import schedprobe
    tmp = tmp_path_factory.mktemp("matrix")
    out, log = str(tmp / "out"), str(tmp / "schedule.jsonl")
    os.environ["CUTOVER_SCHEDULE_LOG"] = log
    try:
        res = cutover("run", "--out", out, "-n", "2", "-p", "tests.lab.schedprobe", timeout=1800)
    finally:
        del os.environ["CUTOVER_SCHEDULE_LOG"]
    # Plain docker fails visibility, so a complete run exits 1; anything else is no matrix.
    assert res.returncode == 1, f"expected exit 1, got {res.returncode}:\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}"
    data = load_results(out)
    assert data["run"]["complete"] is True and data["run"]["leaks"] == [], data["run"]
    return {"dir": out, "data": data, "schedule": schedprobe.read(log)}


def restrict(data, keep):
    """A run's records (and the run's list of collected keys) for which keep(record) holds:
    the part of the session's matrix run a proof reads as if it had made that run itself."""
    from cutover.results import record_key
    results = [r for r in data["results"] if keep(r)]
    mine = {record_key(r) for r in results}
    run = dict(data["run"], collected=[k for k in data["run"].get("collected", []) if k in mine])
    return dict(data, run=run, results=results)
