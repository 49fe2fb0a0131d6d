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
    import yaml
    tmp = tmp_path_factory.mktemp("vis")
    with open(lab.targets_path) as f:
        data = yaml.safe_load(f)
    wrong = dict(data["targets"]["docker"], options={"network": "host"},
                 description="deliberately wrong: host network namespace")
    data["targets"] = {"docker": data["targets"]["docker"], "docker-lxcfs": data["targets"]["docker-lxcfs"],
                       "docker-hostnet": wrong}
    tfile = tmp / "targets.yaml"
    tfile.write_text(yaml.safe_dump(data))
    out = str(tmp / "out")
    res = cutover("run", "--targets", str(tfile), "--out", out, "-n", "2", "-k", "visibility or loadavg",
                  timeout=300)
    assert res.returncode == 1, f"expected exit 1 (some checks fail), got {res.returncode}:\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}"
    return out
