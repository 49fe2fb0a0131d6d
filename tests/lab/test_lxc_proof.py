"""lxc-t4, the lab's reference target: the visibility suite's outcomes on it, pinned.

One real run of the visibility suite against lxc-t4 (LXC 5 + the lxcfs mount hook) and
lxc-t4-nolxcfs, the same target without lxcfs: the difference between the two shows that the
driver's lxcfs wiring, and nothing else, is what makes the /proc checks pass on LXC.
"""
import pytest
import yaml

from tests.conftest import cutover, load_results, outcomes

A1, A2, A3 = "cpuset1-256m", "cfs0.5-512m", "cpuset2-1g"
ALLOCS = (A1, A2, A3)


def table(lxc, nolxcfs, allocs=ALLOCS):
    out = {}
    for target, spec in (("lxc-t4", lxc), ("lxc-t4-nolxcfs", nolxcfs)):
        for i, a in enumerate(allocs):
            out[(target, a)] = spec if isinstance(spec, str) else spec[i]
    return out


CPUS = table("pass", ("fail", "fail", "pass"))      # cpuset 0-1 is all of this 2-CPU host
EXPECTED = {
    "vis.meminfo": table("pass", "fail"),
    "vis.top-memory": table("pass", "fail"),
    "vis.sysinfo-memory": table("fail", "fail"),     # sysinfo() is never virtualized
    "vis.cpuinfo": CPUS,
    "vis.proc-stat-cpus": CPUS,
    "vis.cpu-online": CPUS,
    "vis.nproc": table(("pass", "fail", "pass"), ("pass", "fail", "pass")),   # affinity: cpuset only
    "vis.proc-uptime": table("pass", "fail"),
    "vis.uptime-cmd": table("fail", "fail"),
    "vis.diskstats": table("fail", "fail"),         # lxcfs passes the host's diskstats through
    "vis.loadavg": table("pass", "fail", allocs=(A1,)),
    "vis.uptime-load": table("fail", "fail", allocs=(A1,)),
    "vis.swaps": table("pass", "pass"),
    "vis.net-dev": table("pass", "pass"),           # lxc.net.0.type = empty: loopback only
}


@pytest.fixture(scope="module")
def run(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lxc")
    with open(lab.targets_path) as f:
        data = yaml.safe_load(f)
    t = data["targets"]["lxc-t4"]
    nolxcfs = {k: v for k, v in t.items() if k not in ("lxcfs", "daemon")}
    nolxcfs["description"] = "lxc-t4 without lxcfs (control)"
    data["targets"] = {"lxc-t4": t, "lxc-t4-nolxcfs": nolxcfs}
    data.pop("pairs", None)
    tfile = tmp / "targets.yaml"
    tfile.write_text(yaml.safe_dump(data))
    out = str(tmp / "out")
    res = cutover("run", "--targets", str(tfile), "--out", out, "-n", "2", "-k", "visibility or loadavg",
                  timeout=300)
    assert res.returncode == 1, f"expected exit 1, got {res.returncode}:\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}"
    return load_results(out)


def test_run_complete_and_clean(run):
    assert run["run"]["complete"] is True
    assert run["run"]["leaks"] == []
    facts = run["run"]["hosts"]["local://"]["targets"]["lxc-t4"]
    assert facts["runtime"] == "lxc" and facts["runtime_version"].startswith("5."), facts


@pytest.mark.parametrize("check_id", sorted(EXPECTED))
def test_check_outcomes_pinned(run, check_id):
    got = outcomes(run)
    expected = EXPECTED[check_id]
    actual = {(t, a): got.get((check_id, t, a)) for (t, a) in expected}
    wrong = {k: f"expected {expected[k]}, got {actual[k]}" for k in expected if actual[k] != expected[k]}
    assert not wrong, f"{check_id}: {wrong}"
