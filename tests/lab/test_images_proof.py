"""Proof that every images check discriminates, on the real lab.

One real run of the images suite against three of the lab's targets (two dockerds: docker
with and without LXCFS on one, docker-no-live-restore on the other) and three deliberately
wrong targets made by this test from the same dockerd, through documented target options:

  docker-altered   a post-build step commits an altered image under the tag just built
                   (ENV, USER, WORKDIR, CMD, LABEL, EXPOSE, STOPSIGNAL, HEALTHCHECK changed, the
                   deleted file and the replaced directory's old file put back), and builds
                   run without the cache (options alter_after_build, build_cache: false);
  docker-hostdir   every container gets a host directory at /data, holding a file left from
                   an "old release" and keeping whatever containers write there (volumes);
  docker-bydigest  the site pulls by digest (registry.pull_by: digest), not by tag.

Each cell (check x target) is pinned, so a change in a runtime or in a check shows.
"""
import os

import pytest
import yaml

from tests.conftest import cutover, load_results, outcomes

GOOD = ("docker", "docker-lxcfs", "docker-no-live-restore")
ALTERED, HOSTDIR, BYDIGEST = "docker-altered", "docker-hostdir", "docker-bydigest"
TARGETS = GOOD + (ALTERED, HOSTDIR, BYDIGEST)
LEFTOVER = "leftover-from-an-old-release"

ALTER = {"config": {"stop_signal": "SIGTERM", "healthcheck": {"test": ["NONE"]}, "user": "root",
                    "working_dir": "/", "environment": ["GREETING=altered after build"],
                    "command": ["serve", "altered"], "labels": {"org.cutover.app": "altered"}},
         "changes": ["EXPOSE 7777"],
         "files": {"/app/secret.txt": "resurrected\n", "/app/conf/a.conf": "a=1\n"}}


def row(default, **per_target):
    """{target: outcome}: default for every target, except those named (dashes as _)."""
    out = dict.fromkeys(TARGETS, default)
    out.update({k.replace("_", "-"): v for k, v in per_target.items()})
    return out


ALTERED_FAILS = row("pass", docker_altered="fail")
EXPECTED = {
    "img.rootfs": row("pass", docker_altered="fail", docker_hostdir="fail"),
    "img.env": ALTERED_FAILS, "img.workdir": ALTERED_FAILS, "img.user": ALTERED_FAILS,
    "img.entrypoint-cmd": ALTERED_FAILS, "img.labels": ALTERED_FAILS, "img.expose": ALTERED_FAILS,
    "img.stopsignal": ALTERED_FAILS, "img.healthcheck": ALTERED_FAILS,
    "img.whiteout": ALTERED_FAILS, "img.opaque-dir": ALTERED_FAILS,
    "img.build-cache": ALTERED_FAILS,
    # dockerd's classic builder stamps creation times: never the same ID (README explains).
    "img.rebuild-reproducible": row("fail"),
    "img.immutable": row("pass", docker_altered="fail", docker_hostdir="fail"),
    "img.release": row("pass", docker_altered="fail", docker_hostdir="fail"),
    "img.save-load": ALTERED_FAILS,
    "img.push-pull": ALTERED_FAILS,
    # dockerd verifies every layer it downloads: refused everywhere (README explains).
    "img.tamper-layer": row("pass"),
    # By tag, dockerd 20.10 takes whatever manifest the registry serves; by digest it verifies.
    "img.tamper-manifest": row("fail", docker_bydigest="pass"),
    # The reference image is built by `docker` (first in the file); only a runner can spoil it.
    "img.portable": row("pass", docker_hostdir="fail"),
}


@pytest.fixture(scope="module")
def run(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("img")
    with open(lab.targets_path) as f:
        data = yaml.safe_load(f)
    lab_targets = data["targets"]
    assert lab_targets["docker"].get("registry"), "the lab writes no registry into its targets"
    persist = tmp / "persist"
    persist.mkdir()
    (persist / LEFTOVER).write_text("state an old container left behind\n")
    base = lab_targets["docker"]
    data["targets"] = {n: lab_targets[n] for n in GOOD}
    data["targets"][ALTERED] = dict(base, options={"alter_after_build": ALTER, "build_cache": False},
                                    description="deliberately wrong: images altered after build, no cache")
    data["targets"][HOSTDIR] = dict(base, options={"volumes": [f"{persist}:/data"]},
                                    description="deliberately wrong: a host directory kept across releases")
    data["targets"][BYDIGEST] = dict(base, registry=dict(base["registry"], pull_by="digest"),
                                     description="docker pulling by digest")
    tfile = tmp / "targets.yaml"
    tfile.write_text(yaml.safe_dump(data, sort_keys=False))
    out = str(tmp / "out")
    res = cutover("run", "--targets", str(tfile), "--out", out, "-n", "2", "-k", "images", timeout=900)
    assert res.returncode == 1, f"expected exit 1 (some checks fail), got {res.returncode}:\n" \
                                f"{res.stdout[-3000:]}\n{res.stderr[-2000:]}"
    result = load_results(out)
    result["persist_after"] = sorted(os.listdir(persist))
    return result


def test_run_complete_and_clean(run):
    assert run["run"]["complete"] is True
    assert run["run"]["leaks"] == []
    assert {r["check"] for r in run["results"]} == set(EXPECTED)
    assert {r["target"] for r in run["results"]} == set(TARGETS)


@pytest.mark.parametrize("check_id", sorted(EXPECTED))
def test_check_outcomes_pinned(run, check_id):
    got = outcomes(run)
    expected = EXPECTED[check_id]
    actual = {t: got.get((check_id, t, None)) for t in expected}
    wrong = {t: f"expected {expected[t]}, got {actual[t]}" for t in expected if actual[t] != expected[t]}
    assert not wrong, f"{check_id}: {wrong}"


def test_every_check_discriminates_or_is_explained(run):
    """A check must pass somewhere and fail somewhere, or be listed in the README with why."""
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")).read()
    by_check = {}
    for r in run["results"]:
        by_check.setdefault(r["check"], set()).add(r["outcome"])
    for check_id, seen in by_check.items():
        if not {"pass", "fail"} <= seen:
            assert f"`{check_id}`" in readme, f"{check_id} only ever {seen} and the README does not explain it"


def test_failures_say_expected_observed_where(run):
    for r in run["results"]:
        if r["outcome"] == "fail":
            assert "expected" in r["message"] and "observed" in r["message"] and r["target"] in r["message"], r
            assert r["evidence"], f"{r['nodeid']} has no raw evidence attached"


def test_hostdir_kept_what_the_old_container_wrote(run):
    """The wrong target really persisted state: the failure is about the target, not the check."""
    assert LEFTOVER in run["persist_after"] and "written" in run["persist_after"]


def test_wrong_targets_fail_for_their_reason(run):
    msgs = {(r["check"], r["target"]): r["message"] for r in run["results"]}
    assert "/data/" + LEFTOVER in msgs[("img.rootfs", HOSTDIR)]
    assert "/data/written" in msgs[("img.immutable", HOSTDIR)]
    assert "altered after build" in msgs[("img.env", ALTERED)]
    assert "the other image" in msgs[("img.tamper-manifest", "docker")]
    assert "the same ID today" in msgs[("img.rebuild-reproducible", "docker")]
