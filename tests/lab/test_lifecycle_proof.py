"""Proof that the lifecycle checks discriminate, on the real lab, and that -n 2 = -n 0.

The lifecycle suite runs for real against the lab's docker (live-restore) and
docker-no-live-restore targets, once without xdist and once with two workers; every cell is
pinned (conformance/lifecycle/README.md explains the ones that do not tell the two targets
apart), and both runs must give the same outcomes. Smaller runs show the LXCFS restart breaking
docker-lxcfs, the stop/kill/OOM checks failing on a deliberately wrong target, and a daemon that
does not come back turning into errors of its target while the run goes on.
"""
import os
import re

import pytest
import yaml

from tests.conftest import cutover, load_results, outcomes

D, NLR, LX = "docker", "docker-no-live-restore", "docker-lxcfs"
EVENTS = ("daemon-stop", "daemon-kill", "containerd-kill", "daemon-upgrade")
RESTARTS = ("daemon-stop", "daemon-kill", "daemon-upgrade")    # events where dockerd restarts

EXPECTED = {}
for e in EVENTS:
    # Survival: live-restore keeps running and paused containers; without it they die or are
    # restarted -- except across a containerd kill, which dockerd itself survives.
    EXPECTED[f"life.{e}.live"] = {D: "pass", NLR: "fail" if e in RESTARTS else "pass"}
    # Docker restarts a stopped restart=always container whenever dockerd starts (a finding).
    EXPECTED[f"life.{e}.stopped"] = {D: "fail", NLR: "fail"} if e in RESTARTS else {D: "pass", NLR: "pass"}
for c in ("life.stop-grace", "life.exit-codes", "life.oom-kill", "life.lxcfs-restart"):
    EXPECTED[c] = {D: "pass", NLR: "pass"}
# The lab's docker targets name no daemon.release-upgrade (only docker-upgrade of `lab up
# --release trixie` does; tests/lab/test_upgrade_proof.py pins it): unsupported.
for c in ("life.upgrade-inplace.live", "life.upgrade-inplace.stopped"):
    EXPECTED[c] = {D: "unsupported", NLR: "unsupported"}

SURVIVAL = [f"life.{e}.live" for e in RESTARTS]
# All of conformance/lifecycle: a check added there must be pinned in EXPECTED above.
SELECT = "lifecycle"


def _mismatches(message):
    """The 'key: expected X, observed Y' parts of a failure message."""
    body = message.split(": ", 1)[1].rsplit(" [", 1)[0]
    return [p for p in body.split("; ") if ": expected " in p]


@pytest.fixture(scope="module")
def runs(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("life")
    out = {}
    for n in ("0", "2"):
        d = str(tmp / f"n{n}")
        res = cutover("run", "--target", f"{D},{NLR}", "--out", d, "-n", n, "-k", SELECT, timeout=900)
        assert res.returncode == 1, f"-n {n}: expected exit 1 (some checks fail), got {res.returncode}:\n" \
                                    f"{res.stdout[-3000:]}\n{res.stderr[-2000:]}"
        out[n] = load_results(d)
    return out


def test_runs_complete_and_clean(runs):
    for n, run in runs.items():
        assert run["run"]["complete"] is True, n
        assert run["run"]["leaks"] == [], n
        assert set(run["run"]["collected"]) == {f"{r['check']}|{r['target']}|-" for r in run["results"]}, n
        assert {r["check"] for r in run["results"]} == set(EXPECTED), n


@pytest.mark.parametrize("check_id", sorted(EXPECTED))
def test_check_outcomes_pinned(runs, check_id):
    for n, run in runs.items():
        got = outcomes(run)
        actual = {t: got.get((check_id, t, None)) for t in EXPECTED[check_id]}
        assert actual == EXPECTED[check_id], f"-n {n}: {check_id}: expected {EXPECTED[check_id]}, got {actual}"


def test_parallel_run_gives_the_serial_outcomes(runs):
    serial, parallel = outcomes(runs["0"]), outcomes(runs["2"])
    diff = {k: (serial.get(k), parallel.get(k)) for k in set(serial) | set(parallel) if serial.get(k) != parallel.get(k)}
    assert not diff, f"-n 0 vs -n 2: {diff}"


@pytest.mark.parametrize("check_id", SURVIVAL)
def test_survival_fails_without_live_restore_for_the_right_reasons(runs, check_id):
    """Without live-restore: running/no dies, running/always is restarted (new PID, new start)."""
    for run in runs.values():
        rec = next(r for r in run["results"] if r["check"] == check_id and r["target"] == NLR)
        bad = _mismatches(rec["message"])
        assert "running/no: state: expected running, observed exited" in bad, bad
        assert any(b.startswith("running/always: started at:") for b in bad), bad
        assert any(b.startswith("paused/no: state:") for b in bad), bad
        ok = next(r for r in run["results"] if r["check"] == check_id and r["target"] == D)
        assert ok["observed"]["running/always: started at"] == ok["expected"]["running/always: started at"]
        assert ok["observed"]["running/no: exec as app"].startswith("app "), ok["observed"]


@pytest.mark.parametrize("event", RESTARTS)
def test_stopped_fails_only_for_exited_restart_always(runs, event):
    """The finding behind the .stopped failures: nothing but the exited/always case breaks."""
    for run in runs.values():
        for target in (D, NLR):
            rec = next(r for r in run["results"] if r["check"] == f"life.{event}.stopped" and r["target"] == target)
            bad = _mismatches(rec["message"])
            assert bad and all(b.startswith("exited/always: ") for b in bad), bad
            assert "exited/always: state: expected exited, observed running" in bad, bad


def test_failures_say_expected_observed_where(runs):
    for run in runs.values():
        for r in run["results"]:
            if r["outcome"] == "fail":
                assert "expected" in r["message"] and "observed" in r["message"] and r["target"] in r["message"], r
                assert r["evidence"], f"{r['nodeid']} has no raw evidence attached"


def test_every_check_discriminates_or_is_explained(runs):
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "conformance", "lifecycle", "README.md")).read()
    seen = {}
    for r in runs["0"]["results"]:
        seen.setdefault(r["check"], set()).add(r["outcome"])
    for check_id, outs in seen.items():
        if not {"pass", "fail"} <= outs:
            assert f"`{check_id}`" in readme, f"{check_id} only ever {outs} and the lifecycle README does not say why"


def _targets_file(lab, tmp, entries):
    with open(lab.targets_path) as f:
        data = yaml.safe_load(f)
    data["targets"] = entries(data["targets"])
    path = tmp / "targets.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_lxcfs_restart_breaks_docker_lxcfs(lab, tmp_path):
    out = str(tmp_path / "out")
    res = cutover("run", "--target", f"{D},{LX}", "--out", out, "-k", "lxcfs_restart", timeout=300)
    assert res.returncode == 1, res.stdout[-2000:] + res.stderr[-2000:]
    run = load_results(out)
    got = outcomes(run)
    assert got[("life.lxcfs-restart", D, None)] == "pass"
    assert got[("life.lxcfs-restart", LX, None)] == "fail"
    rec = next(r for r in run["results"] if r["target"] == LX)
    assert "Transport endpoint is not connected" in rec["message"], rec["message"]
    assert run["run"]["leaks"] == []


def test_stop_kill_oom_fail_on_a_wrong_target(lab, tmp_path):
    """A site that stops containers with SIGKILL and turned the OOM killer off."""
    wrong = lambda ts: {"docker-wrong": dict(ts[D], options={"stop_signal": "SIGKILL", "oom_kill_disable": True},
                                             description="deliberately wrong: SIGKILL on stop, no OOM killer")}
    tfile = _targets_file(lab, tmp_path, wrong)
    out = str(tmp_path / "out")
    res = cutover("run", "--targets", tfile, "--out", out, "-k", "stop_kill or oom", timeout=300)
    assert res.returncode == 1, res.stdout[-2000:] + res.stderr[-2000:]
    got = outcomes(load_results(out))
    assert got == {("life.stop-grace", "docker-wrong", None): "fail",
                   ("life.exit-codes", "docker-wrong", None): "fail",
                   ("life.oom-kill", "docker-wrong", None): "fail"}, got


def test_daemon_that_does_not_come_back_is_an_error_and_the_run_goes_on(lab, tmp_path):
    """docker-no-live-restore with a start command that fails: its event and every later check
    of it are errors; the docker target's checks in the same run still pass."""
    def broken(ts):
        t = dict(ts[NLR], daemon=dict(ts[NLR]["daemon"], start="echo cannot start >&2; false"))
        return {D: ts[D], "nlr-broken": t}
    tfile = _targets_file(lab, tmp_path, broken)
    out = str(tmp_path / "out")
    try:
        res = cutover("run", "--targets", tfile, "--out", out, "-k", "daemon-kill or oom", timeout=300)
    finally:
        cutover("lab", "start", "docker-nlr", check=True, timeout=120)
        _remove_leftovers(lab)
    assert res.returncode == 1, res.stdout[-2000:] + res.stderr[-2000:]
    run = load_results(out)
    got = outcomes(run)
    assert got[("life.daemon-kill.live", D, None)] == "pass"
    assert got[("life.oom-kill", D, None)] == "pass"
    for check in ("life.daemon-kill.live", "life.daemon-kill.stopped", "life.oom-kill"):
        assert got[(check, "nlr-broken", None)] == "error", (check, got)
    msg = next(r["message"] for r in run["results"] if r["target"] == "nlr-broken" and r["check"] == "life.daemon-kill.live")
    assert re.search(r"daemon\.start .*exited 1.*cannot start", msg), msg


def _remove_leftovers(lab):
    """The broken run's scenario containers stayed on the daemon it could not restart."""
    import docker
    ep = next(d for d in lab.daemons if d.name == "docker-nlr").endpoint
    c = docker.DockerClient(base_url=ep, timeout=60)
    for x in c.api.containers(all=True, filters={"label": "cutover"}):
        c.api.remove_container(x["Id"], force=True, v=True)
    for v in c.api.volumes(filters={"label": "cutover"}).get("Volumes") or []:
        c.api.remove_volume(v["Name"], force=True)
