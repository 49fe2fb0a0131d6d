"""Proof that every images check discriminates, on the real lab.

One real run of the images suite against four of the lab's targets (two dockerds: docker
with and without LXCFS on one, docker-no-live-restore on the other; and podman, pushing to and
pulling from the lab's registry through its own registries.conf) and three deliberately wrong
targets made by this test from the same dockerd, through documented target options:

  docker-altered   a post-build step commits an altered image under the tag just built
                   (ENV, USER, WORKDIR, CMD, LABEL, EXPOSE, STOPSIGNAL, HEALTHCHECK changed, the
                   deleted file and the replaced directory's old file put back), and builds
                   run without the cache (options alter_after_build, build_cache: false);
  docker-hostdir   every container gets a host directory at /data, holding a file left from
                   an "old release" and keeping whatever containers write there (volumes);
  docker-bydigest  the site pulls by digest (registry.pull_by: digest), not by tag.

Each cell (check x target) is pinned, so a change in a runtime or in a check shows. A check
that does not both pass and fail here must be explained, with its reason, in the README's
"What the images suite finds" section (test_every_check_discriminates_or_is_explained).
"""
import os
import re

import pytest
import yaml

from tests.conftest import cutover, load_results, outcomes

GOOD = ("docker", "docker-lxcfs", "docker-no-live-restore")
PODMAN = "podman"
ALTERED, HOSTDIR, BYDIGEST = "docker-altered", "docker-hostdir", "docker-bydigest"
TARGETS = GOOD + (PODMAN, ALTERED, HOSTDIR, BYDIGEST)
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
# podman 4.3: no health check ever runs without systemd (its timers), and the compatible API
# reports neither the image's Healthcheck nor, with network none, the container's ports.
PODMAN_AND_ALTERED_FAIL = row("pass", docker_altered="fail", podman="fail")
EXPECTED = {
    "img.rootfs": row("pass", docker_altered="fail", docker_hostdir="fail"),
    "img.env": ALTERED_FAILS, "img.workdir": ALTERED_FAILS, "img.user": ALTERED_FAILS,
    "img.entrypoint-cmd": ALTERED_FAILS, "img.labels": ALTERED_FAILS, "img.expose": PODMAN_AND_ALTERED_FAIL,
    "img.stopsignal": ALTERED_FAILS, "img.healthcheck": PODMAN_AND_ALTERED_FAIL,
    "img.whiteout": ALTERED_FAILS, "img.opaque-dir": ALTERED_FAILS,
    "img.build-cache": ALTERED_FAILS,
    # dockerd's classic builder and buildah stamp creation times: never the same ID (README explains).
    "img.rebuild-reproducible": row("fail"),
    "img.immutable": row("pass", docker_altered="fail", docker_hostdir="fail"),
    "img.release": row("pass", docker_altered="fail", docker_hostdir="fail"),
    "img.save-load": ALTERED_FAILS,
    "img.push-pull": ALTERED_FAILS,
    # A flipped layer is refused everywhere (dockerd and podman verify every blob); a layer
    # rewritten with its config and manifest, the tag pointed at them, is taken by every
    # client that pulls by tag; by digest the pushed image comes back.
    "img.tamper-layer": row("fail", docker_bydigest="pass"),
    # By tag, dockerd 20.10 and podman 4.3 take whatever manifest the registry serves; by digest
    # dockerd verifies.
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
    data["targets"] = {n: lab_targets[n] for n in GOOD + (PODMAN,)}
    data.pop("pairs", None)          # the lab's pair names targets left out here
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


README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
FINDINGS = "### What the images suite finds on this machine"


def explanations(readme):
    """{check: reason} from the bullets of the README's images findings section: a bullet
    `- `img.a`, `img.b` (aside): reason` names the checks it explains, and the reason is its text."""
    start = readme.find(FINDINGS)
    if start < 0:
        return {}
    end = readme.find("\n## ", start)
    section = readme[start:end if end > 0 else len(readme)]
    out = {}
    for bullet in re.split(r"\n(?=- )", section)[1:]:
        head = re.match(r"- ((?:`img\.[a-z-]+`(?:, | and )?)+)(?: \([^)]*\))?: (.+)", bullet, re.S)
        if head:
            reason = " ".join(head.group(2).split("\n\n")[0].split())     # a bullet ends at a blank line
            for check_id in re.findall(r"`(img\.[a-z-]+)`", head.group(1)):
                out[check_id] = reason
    return out


def unexplained(by_check, readme):
    """Checks seen only passing, or only failing, that no findings bullet explains with a reason."""
    said = explanations(readme)
    return sorted(c for c, seen in by_check.items()
                  if not {"pass", "fail"} <= seen and len(said.get(c, "").split()) < 8)


def test_every_check_discriminates_or_is_explained(run):
    """A check must pass somewhere and fail somewhere, or have its own findings bullet saying why."""
    by_check = {}
    for r in run["results"]:
        by_check.setdefault(r["check"], set()).add(r["outcome"])
    missing = unexplained(by_check, open(README).read())
    assert not missing, f"{missing} never both pass and fail here, and the README's images findings do not say why"


def test_the_explanation_rule_fails_without_its_bullet():
    """The rule above is not the old "named somewhere in backticks" test: with its findings
    bullet removed, a check named elsewhere in the README (tables, prose) is unexplained."""
    readme = open(README).read()
    said = explanations(readme)
    assert "img.rebuild-reproducible" in said, "the README's findings lost img.rebuild-reproducible"
    only_fails = {"img.rebuild-reproducible": {"fail"}}
    assert unexplained(only_fails, readme) == []
    bullet = re.search(r"\n- `img\.rebuild-reproducible`.*?(?=\n- |\n\n)", readme, re.S).group(0)
    without = readme.replace(bullet, "")
    assert "`img.rebuild-reproducible`" in without          # still named, in the tables above
    assert unexplained(only_fails, without) == ["img.rebuild-reproducible"]
    # A bullet that names the check without a reason does not count either.
    assert unexplained(only_fails, without.replace(FINDINGS, FINDINGS + "\n\n- `img.rebuild-reproducible`: see above.\n")) \
        == ["img.rebuild-reproducible"]


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
    assert "the rewritten image" in msgs[("img.tamper-layer", "docker")]
    # podman: its registry checks run (registries.conf), and its failures are its own.
    assert "no health check ran" in msgs[("img.healthcheck", PODMAN)]
    assert "the rewritten image" in msgs[("img.tamper-layer", PODMAN)]


def test_flipped_layer_refused_everywhere(run):
    """The in-place half of img.tamper-layer passes on every target: every client verifies."""
    for r in run["results"]:
        if r["check"] == "img.tamper-layer":
            assert r["observed"]["pull"] == "refused" and r["observed"]["refusal names the digest"] is True, r
            assert r["observed"]["image present after"] is False, r


def test_one_daemon_alone(lab, tmp_path):
    """A targets file with one daemon: save/load loads into it after removing the image (and
    says so), push/pull is unsupported (a pull back into the pusher proves nothing)."""
    with open(lab.targets_path) as f:
        data = yaml.safe_load(f)
    data["targets"] = {"docker": data["targets"]["docker"]}
    data.pop("pairs", None)
    tfile = tmp_path / "targets.yaml"
    tfile.write_text(yaml.safe_dump(data))
    out = str(tmp_path / "out")
    res = cutover("run", "--targets", str(tfile), "--out", out, "-k", "save_load or push_pull", timeout=300)
    # Exit 1: an unsupported check is not a pass.
    assert res.returncode == 1, f"{res.stdout[-2000:]}\n{res.stderr[-1000:]}"
    recs = {r["check"]: r for r in load_results(out)["results"]}
    assert recs["img.save-load"]["outcome"] == "pass", recs["img.save-load"]
    image = next(e["text"] for e in recs["img.save-load"]["evidence"] if e["name"] == "image")
    assert "absent from docker before the load: True (removed from it after the save)" in image, image
    assert recs["img.push-pull"]["outcome"] == "unsupported", recs["img.push-pull"]
    assert "no second daemon" in recs["img.push-pull"]["message"], recs["img.push-pull"]["message"]
