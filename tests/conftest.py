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
