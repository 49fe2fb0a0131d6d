"""Proof that every coexistence check discriminates, on the real lab.

One real run of the coexistence suite over two pairs on this host:
- lxc-t4+docker-lxcfs, the lab's real pair: LXC under `<lab cgroup>/lxc`, Docker under
  `<lab cgroup>/docker`;
- lxc-t4-nest+docker-lxcfs-nest, deliberately wrong: the LXC container's cgroup is a fixed
  `<lab cgroup>/coex-nest` (with every device allowed, as nesting another runtime needs) and
  the Docker target puts its containers under it (`cgroup_parent`), so Docker's containers
  live inside LXC's; its daemon.stop also kills everything under its cgroup parent, as systemd
  does with a unit's cgroup. Every coexistence check must fail on that pair.
"""
import os

import pytest
import yaml

from cutover.lab import cgroups
from tests.conftest import cutover, load_results

REAL = "lxc-t4+docker-lxcfs"
WRONG = "lxc-t4-nest+docker-lxcfs-nest"
CHECKS = ("coex.allocation", "coex.cgroup-paths", "coex.accounting", "coex.daemon-restart")
EXPECTED = {(c, REAL): "pass" for c in CHECKS} | {(c, WRONG): "fail" for c in CHECKS}


def wrong_pair(data, cgroup_name):
    nest = f"{cgroup_name}/coex-nest"
    lxc = dict(data["targets"]["lxc-t4"], description="deliberately wrong: a fixed container cgroup others nest in",
               options={"config": [f"lxc.cgroup.dir.container = {nest}", f"lxc.cgroup.dir.monitor = {nest}.monitor",
                                   "lxc.cgroup.devices.allow = a"]})
    docker = dict(data["targets"]["docker-lxcfs"], options={"cgroup_parent": f"/{nest}"},
                  description="deliberately wrong: containers inside the LXC container's cgroup")
    # A systemd-like stop: the unit's cgroup (here: the cgroup parent) is killed with the daemon.
    kill_tree = (f"for f in $(find /sys/fs/cgroup/pids/{nest} -name cgroup.procs 2>/dev/null); do "
                 f"for p in $(cat $f); do kill -KILL $p 2>/dev/null; done; done; true")
    docker["daemon"] = dict(docker["daemon"], stop=f"{docker['daemon']['stop']} && {kill_tree}")
    return {"lxc-t4-nest": lxc, "docker-lxcfs-nest": docker}


@pytest.fixture(scope="module")
def run(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("coex")
    with open(lab.targets_path) as f:
        data = yaml.safe_load(f)
    keep = {n: data["targets"][n] for n in ("lxc-t4", "docker-lxcfs")}
    data["targets"] = keep | wrong_pair(data, lab.cgroup_name)
    data.pop("pairs", None)
    tfile = tmp / "targets.yaml"
    tfile.write_text(yaml.safe_dump(data))
    out = str(tmp / "out")
    # Serial: the wrong pair's limits sit on a cgroup the real pair never uses, but the daemon
    # check restarts the lab's dockerd, which both pairs share.
    res = cutover("run", "--targets", str(tfile), "--out", out, "-k", "coexistence",
                  "--pair", "lxc-t4,docker-lxcfs", "--pair", "lxc-t4-nest,docker-lxcfs-nest", timeout=600)
    assert res.returncode == 1, f"expected exit 1, got {res.returncode}:\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}"
    return load_results(out)


def test_run_complete_and_clean(run, lab):
    assert run["run"]["complete"] is True
    assert run["run"]["leaks"] == []
    # The wrong pair's fixed cgroup went with its containers.
    left = [h for h in cgroups.hierarchies()
            if os.path.exists(os.path.join(h, lab.cgroup_name, "coex-nest"))]
    assert left == [], f"coex-nest cgroups left in {left}"


@pytest.mark.parametrize("check_id,pair_name", sorted(EXPECTED))
def test_check_outcomes_pinned(run, check_id, pair_name):
    recs = [r for r in run["results"] if r["check"] == check_id and r["target"] == pair_name]
    assert [r["outcome"] for r in recs] == [EXPECTED[(check_id, pair_name)]], \
        f"{check_id} on {pair_name}: {[(r['outcome'], r['message']) for r in recs]}"


def test_failures_name_both_sides(run):
    for r in run["results"]:
        if r["outcome"] == "fail":
            assert "expected" in r["message"] and "observed" in r["message"] and WRONG in r["message"], r
            assert r["evidence"], f"{r['nodeid']} has no raw evidence attached"
