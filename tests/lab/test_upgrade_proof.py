"""The runtime upgrade gate, for real: Debian 12's stack (baseline) against Debian 13's.

`cutover lab up --release trixie` runs trixie's dockerd 26.1.5 (with its containerd 1.7 and
runc 1.1.15) from a cached root next to the lab's dockerd 20.10; the lab's releases/*.yaml name
both stacks' targets `docker` and `docker-lxcfs`. The self-test certifies both, gates the
candidate against the baseline and diffs them, and pins what really differs. It also pins the
in-place upgrade check (20.10 -> 26.1.5 on one data root) on a target that can do it and on a
deliberately wrong one (the new release started without live-restore).

Needs the trixie root: cached under /var/cache/cutover/rootfs/trixie, or made (about 30-80 s)
from the Debian mirror. Skips, saying why, when neither is possible.
"""
import json
import os

import pytest
import yaml

from cutover.lab import release
from tests.conftest import cutover, load_results, outcomes

OK, WHY = release.available("trixie")
# Two certification runs happen in the first test's setup: more than pytest.ini's 900 s may pass.
pytestmark = [pytest.mark.skipif(not OK, reason=f"runtime upgrade proof: {WHY}"), pytest.mark.timeout(3600)]

# What both stacks are certified with here: the visibility suite (lxcfs and the kernel decide
# it) and the lifecycle suite (the daemon decides it). bench/upgrade_report.sh runs them all.
SELECT = "visibility or loadavg or lifecycle"
# check -> {(baseline outcome, candidate outcome)} wherever the two stacks' outcomes differ.
# Measured on this machine: none, on any check of any suite (README "Runtime upgrade gate");
# what differs is the stack itself (the facts) and observed values such as IDs and timings.
EXPECTED_CHANGES = {}


@pytest.fixture(scope="module")
def release_lab(lab):
    was = lab.releases.release
    cutover("lab", "up", "--release", "trixie", check=True, timeout=1500)
    yield lab
    if was != "trixie":
        cutover("lab", "up", "--release", "none", check=True, timeout=300)


def _certify_and_gate(targets_dir, tmp, select, timeout):
    """Certify <targets_dir>/bookworm.yaml (baseline) and trixie.yaml (candidate), then gate
    the candidate against the baseline: (runs, gate.json, gate's stdout)."""
    runs = {}
    for rel in ("bookworm", "trixie"):
        out = str(tmp / rel)
        res = cutover("run", "--targets", os.path.join(targets_dir, f"{rel}.yaml"),
                      "--out", out, "-n", "2", "-k", select, timeout=timeout)
        assert res.returncode in (0, 1), f"{rel}: exit {res.returncode}\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
        runs[rel] = out
    gate_dir = str(tmp / "gate")
    g = cutover("gate", runs["trixie"], "--baseline", runs["bookworm"], "--out", gate_dir, timeout=300)
    assert g.returncode in (0, 1), g.stdout + g.stderr
    with open(os.path.join(gate_dir, "gate.json")) as f:
        return runs, json.load(f), g.stdout


@pytest.fixture(scope="module")
def workflow(release_lab, tmp_path_factory):
    """The README's workflow: certify baseline and candidate, gate, diff (JSON)."""
    runs, gate, gate_stdout = _certify_and_gate(os.path.join(release_lab.root, "releases"),
                                                tmp_path_factory.mktemp("upgrade"), SELECT, 1800)
    d = cutover("diff", runs["bookworm"], runs["trixie"], "--json", timeout=300)
    assert d.returncode in (0, 1), d.stderr
    return {"runs": runs, "gate": gate, "gate_stdout": gate_stdout, "diff": json.loads(d.stdout),
            "base": load_results(runs["bookworm"]), "cand": load_results(runs["trixie"])}


def test_both_runs_complete_with_same_keys(workflow):
    base, cand = workflow["base"], workflow["cand"]
    for data in (base, cand):
        assert data["run"]["complete"] is True and data["run"]["leaks"] == []
    assert set(base["run"]["collected"]) == set(cand["run"]["collected"])


def test_the_stacks_really_differ(workflow):
    """The host facts name the two stacks: the diff shows the daemon's versions changing."""
    def versions(data):
        t = data["run"]["hosts"]["local://"]["targets"]["docker"]
        return t["runtime_version"], t["components"].get("runc"), t["components"].get("containerd")
    base, cand = versions(workflow["base"]), versions(workflow["cand"])
    assert base[0].startswith("20.10") and cand[0].startswith("26.1.5"), (base, cand)
    # Both daemons name their runc and containerd (a missing one would make "differ" vacuous).
    assert all(base) and all(cand), f"a stack's facts lack runc or containerd: {base} {cand}"
    assert base[1].startswith("1.1.5") and cand[1].startswith("1.1.15"), (base, cand)
    assert base[2].startswith("1.6.") and cand[2].startswith("1.7."), (base, cand)
    facts = {(f["name"], f["fact"]) for f in workflow["diff"]["facts"]}
    assert ("local://", "targets") in facts


def test_gate_and_diff_agree_on_every_change(workflow):
    """Every regression and fix the gate lists is a diff row with both values, and back."""
    rows = {r["key"]: r for r in workflow["diff"]["rows"]}
    b = workflow["gate"]["baseline"]
    for kind, change in (("regressions", "regression"), ("fixes", "fix")):
        listed = {e["key"] for e in b[kind]}
        assert listed == {k for k, r in rows.items() if r["change"] == change}, kind
        for e in b[kind]:
            assert e["before"] == rows[e["key"]]["a"]["outcome"] and e["after"] == rows[e["key"]]["b"]["outcome"]
    assert f"{len(b['regressions'])} regression(s), {len(b['fixes'])} fix(es)" in workflow["gate_stdout"]


def test_outcome_changes_pinned(workflow):
    changed = {}
    for r in workflow["diff"]["rows"]:
        if r["change"] in ("regression", "fix", "changed"):
            changed.setdefault(r["check"], set()).add((r["a"]["outcome"], r["b"]["outcome"]))
    assert {c: sorted(v) for c, v in changed.items()} == \
        {c: sorted(v) for c, v in EXPECTED_CHANGES.items()}


def test_report_is_generated_from_the_runs(workflow):
    from cutover.upgrade_report import render
    text, _ = render(workflow["base"], workflow["cand"], workflow["gate"], None, "bookworm", "trixie")
    assert "| dockerd | 20.10" in text and "26.1.5" in text
    for check in EXPECTED_CHANGES:
        assert f"`{check}`" in text
    if not EXPECTED_CHANGES:
        assert "T4 promises whose outcomes differ between the stacks: none." in text


# -- the in-place upgrade ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def inplace_run(release_lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inplace")
    with open(release_lab.targets_path) as f:
        data = yaml.safe_load(f)
    t = data["targets"]["docker-upgrade"]
    wrong = dict(t, description="deliberately wrong: the new release starts without live-restore",
                 daemon=dict(t["daemon"], **{"release-upgrade": t["daemon"]["release-upgrade"].replace(
                     "--variant trixie", "--variant trixie-no-live-restore")}))
    data["targets"] = {"docker-upgrade": t, "docker-upgrade-nlr": wrong}
    data.pop("pairs", None)
    tfile = tmp / "targets.yaml"
    tfile.write_text(yaml.safe_dump(data))
    out = str(tmp / "out")
    res = cutover("run", "--targets", str(tfile), "--out", out, "-k", "upgrade_inplace", timeout=900)
    assert res.returncode == 1, f"exit {res.returncode}:\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}"
    return load_results(out)


INPLACE = {
    # 20.10 -> 26.1.5 on one data root with live-restore: every running and paused container is
    # re-adopted (same PID, exec, logs, stop, rm).
    ("life.upgrade-inplace.live", "docker-upgrade"): "pass",
    # The new release without live-restore kills them (or restarts the restart=always ones).
    ("life.upgrade-inplace.live", "docker-upgrade-nlr"): "fail",
    # Docker starts an exited restart=always container when the daemon starts (both releases).
    ("life.upgrade-inplace.stopped", "docker-upgrade"): "fail",
    ("life.upgrade-inplace.stopped", "docker-upgrade-nlr"): "fail",
}


def test_inplace_upgrade_pinned(inplace_run):
    got = {(c, t): o for (c, t, _a), o in outcomes(inplace_run).items()}
    assert {k: got.get(k) for k in INPLACE} == INPLACE
    assert inplace_run["run"]["complete"] is True and inplace_run["run"]["leaks"] == []


def test_inplace_upgrade_evidence(inplace_run):
    """The record says which versions it went between, and failures say which case broke."""
    for r in inplace_run["results"]:
        assert "20.10" in r["message"] + json.dumps(r["evidence"]) and "26.1.5" in json.dumps(r["evidence"]) + r["message"]
    nlr = [r for r in inplace_run["results"] if r["target"] == "docker-upgrade-nlr" and r["check"].endswith(".live")]
    assert "running/no: state: expected running, observed exited" in nlr[0]["message"]


# -- the same gate between two simulated hosts, over ssh --------------------------------------------
# `lab up --hosts 2 --host-variant 2:trixie`: h2 runs trixie's dockerd, containerd and runc from
# the cached root (pivot_root in a mount namespace of its own, cutover/lab/simhost.py HostRoot),
# with its own network namespace, sshd and lxcfs; h1 runs the machine's. The lab writes
# fleet/releases/{bookworm,trixie}.yaml with each host's targets under the role names.
# A small selection (CI time): the visibility that lxcfs decides and one daemon event, which
# restarts each host's dockerd through the lab's daemon commands over its own release.
HOST_SELECT = "meminfo or (daemon_events and upgrade)"


@pytest.fixture(scope="module")
def host_workflow(release_lab, tmp_path_factory):
    cutover("lab", "up", "--hosts", "2", "--host-variant", "2:trixie", check=True, timeout=900)
    try:
        runs, gate, gate_stdout = _certify_and_gate(os.path.join(release_lab.root, "fleet", "releases"),
                                                    tmp_path_factory.mktemp("upgrade-hosts"), HOST_SELECT, 1200)
        return {"gate": gate, "gate_stdout": gate_stdout,
                "base": load_results(runs["bookworm"]), "cand": load_results(runs["trixie"])}
    finally:
        cutover("lab", "up", "--hosts", "0", check=True, timeout=600)


def test_trixie_host_is_certified_over_ssh_on_its_own_stack(host_workflow):
    def stack(data):
        (url, h), = data["run"]["hosts"].items()
        t = h["targets"]["docker"]
        return url, t["runtime_version"], t["components"].get("runc"), t["components"].get("containerd")
    base, cand = stack(host_workflow["base"]), stack(host_workflow["cand"])
    assert base[0] == "ssh://h1" and cand[0] == "ssh://h2", (base, cand)
    assert base[1].startswith("20.10") and cand[1].startswith("26.1.5"), (base, cand)
    assert base[2].startswith("1.1.5") and cand[2].startswith("1.1.15"), (base, cand)
    assert cand[3].startswith("1.7."), cand
    for data in (host_workflow["base"], host_workflow["cand"]):
        assert data["run"]["complete"] is True and data["run"]["leaks"] == [], data["run"]
        # Both outcomes on each host: lxcfs decides meminfo (docker fails, docker-lxcfs passes),
        # and the upgrade event restarted the host's dockerd (an error would be "did not happen").
        got = outcomes(data)
        assert "pass" in got.values() and "fail" in got.values(), got
        assert "error" not in got.values(), {k: v for k, v in got.items() if v == "error"}


def test_host_gate_lists_the_pinned_changes(host_workflow):
    b = host_workflow["gate"]["baseline"]
    changed = {}
    for e in b["regressions"] + b["fixes"]:
        changed.setdefault(e["key"].split("|")[0], set()).add((e["before"], e["after"]))
    pinned = {c: v for c, v in EXPECTED_CHANGES.items() if c.startswith(("vis.meminfo", "life.daemon-upgrade"))}
    assert changed == pinned, (changed, host_workflow["gate_stdout"][-2000:])
    assert f"{len(b['regressions'])} regression(s), {len(b['fixes'])} fix(es)" in host_workflow["gate_stdout"]
    assert set(host_workflow["gate"]["targets"]) == {"docker", "docker-lxcfs"}
