"""Proof that img.portable compares hosts: an image built on one host runs the same on others.

The lab brings up two simulated hosts (`lab up --hosts 2`: own network, mount and UTS
namespaces, sshd, dockerd), and the portability check runs over:

  h1-docker    the reference builder (first in the file): the image is built on h1
  h2-docker    another host: the image saved on h1 and loaded into h2's dockerd over ssh
  docker       this machine's lab dockerd, loaded the same way
  h2-hostdir   deliberately wrong, on h2: a host directory at /data holding an "old release"

The hosts have no registry (the lab's listens on this machine's loopback only), so the image
travels by save/load through each target's own endpoint. Every record compares a container's
root tree hash and the entrypoint's output with what h1's build and h1's own run gave. The
hosts are taken down at the end (`lab up --hosts 0`).
"""
import pytest
import yaml

from tests.conftest import cutover, load_results

BUILDER, OTHER, LOCAL, WRONG = "h1-docker", "h2-docker", "docker", "h2-hostdir"
LEFTOVER = "leftover-from-an-old-release"


@pytest.fixture(scope="module")
def run(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("img-hosts")
    cutover("lab", "up", "--hosts", "2", check=True, timeout=600)
    try:
        with open(lab.targets_path) as f:
            data = yaml.safe_load(f)
        ts = data["targets"]
        assert ts[BUILDER]["host"] == "ssh://h1" and ts[OTHER]["host"] == "ssh://h2", (ts[BUILDER], ts[OTHER])
        persist = tmp / "persist"
        persist.mkdir()
        (persist / LEFTOVER).write_text("state an old container left behind\n")
        # Order matters: the reference is built by the first target that can build and save.
        data["targets"] = {BUILDER: ts[BUILDER], OTHER: ts[OTHER], LOCAL: ts[LOCAL],
                           WRONG: dict(ts[OTHER], options={"volumes": [f"{persist}:/data"]},
                                       description="deliberately wrong: a host directory kept across releases")}
        data.pop("pairs", None)
        tfile = tmp / "targets.yaml"
        tfile.write_text(yaml.safe_dump(data, sort_keys=False))
        out = str(tmp / "out")
        res = cutover("run", "--targets", str(tfile), "--out", out, "-n", "2", "-k", "images and portable",
                      timeout=900)
        assert res.returncode == 1, f"expected exit 1 (h2-hostdir fails), got {res.returncode}:\n" \
                                    f"{res.stdout[-3000:]}\n{res.stderr[-2000:]}"
        return load_results(out)
    finally:
        cutover("lab", "up", "--hosts", "0", timeout=600)


def _records(run):
    return {r["target"]: r for r in run["results"] if r["check"] == "img.portable"}


def test_run_complete_and_clean(run):
    assert run["run"]["complete"] is True
    assert run["run"]["leaks"] == []
    assert set(_records(run)) == {BUILDER, OTHER, LOCAL, WRONG}


def test_two_hosts_and_this_machine_agree(run):
    recs = _records(run)
    outcomes = {t: r["outcome"] for t, r in recs.items()}
    assert outcomes == {BUILDER: "pass", OTHER: "pass", LOCAL: "pass", WRONG: "fail"}, outcomes
    # One tree hash and one entrypoint output on every good target, the builder's own.
    good = [recs[t] for t in (BUILDER, OTHER, LOCAL)]
    assert len({r["observed"]["tree"] for r in good}) == 1, [r["observed"] for r in good]
    assert len({r["observed"]["output"] for r in good}) == 1, [r["observed"] for r in good]
    assert all(r["observed"]["tree"] == r["expected"]["tree"] for r in good)


def test_the_image_crossed_hosts(run):
    """Built on h1, run on h2 and here: each record says which two hosts it compares."""
    recs = _records(run)
    texts = {t: " ".join(e["text"] for e in r["evidence"] if e["name"] == "entry lines") for t, r in recs.items()}
    for t, host in ((OTHER, "ssh://h2"), (LOCAL, "local://"), (WRONG, "ssh://h2")):
        assert f"builder {BUILDER} on ssh://h1" in texts[t] and f"{t} on {host}" in texts[t], texts[t]
    assert "another host: ssh://h1 -> ssh://h2" in recs[WRONG]["message"], recs[WRONG]["message"]


def test_wrong_host_target_fails_for_its_reason(run):
    msg = _records(run)[WRONG]["message"]
    assert "/data/" + LEFTOVER in msg and "ssh://h2" in msg, msg
