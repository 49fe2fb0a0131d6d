"""Proof that every visibility check discriminates, on the real lab.

One real run of the visibility suite against the lab's docker (no LXCFS) and docker-lxcfs
targets, plus a deliberately wrong target made from the same daemon (host networking);
each cell's outcome is pinned, so a change in a runtime's behaviour or in a check shows.
A second, small run shows the lower bounds at work: a target whose /proc files say "no
memory free, up for 0 s" (bind-mounted over the container's own) fails them.
"""
import os

import pytest
import yaml

from tests.conftest import cutover, load_results, outcomes
from tests.lab import readme_findings

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
FINDINGS_LEAD = "Checks that do not both pass and fail on the two lab targets, and why:"

A1, A2, A3 = "cpuset1-256m", "cfs0.5-512m", "cpuset2-1g"
ALLOCS = (A1, A2, A3)
ALL = {"docker": dict.fromkeys(ALLOCS), "docker-lxcfs": dict.fromkeys(ALLOCS)}


def table(docker, lxcfs, allocs=ALLOCS):
    """{(target, alloc): outcome} from per-target outcomes (a str, or a per-allocation tuple)."""
    out = {}
    for target, spec in (("docker", docker), ("docker-lxcfs", lxcfs)):
        for i, a in enumerate(allocs):
            out[(target, a)] = spec if isinstance(spec, str) else spec[i]
    return out


CPUS_FOLLOW_LXCFS = table(docker=("fail", "fail", "pass"), lxcfs="pass")
EXPECTED = {
    # LXCFS virtualizes the file; plain Docker shows the host's 24 GiB.
    "vis.meminfo": table("fail", "pass"),
    "vis.top-memory": table("fail", "pass"),
    # sysinfo() is never virtualized by lxcfs: a real finding, failing on both.
    "vis.sysinfo-memory": table("fail", "fail"),
    # A cpuset of 2 on this 2-CPU host equals the host, so plain Docker "passes" there.
    "vis.cpuinfo": CPUS_FOLLOW_LXCFS,
    "vis.proc-stat-cpus": CPUS_FOLLOW_LXCFS,
    "vis.cpu-online": CPUS_FOLLOW_LXCFS,
    # The affinity mask follows a cpuset but never a CFS quota, with or without lxcfs.
    "vis.nproc": table(("pass", "fail", "pass"), ("pass", "fail", "pass")),
    "vis.proc-uptime": table("fail", "pass"),
    "vis.uptime-cmd": table("fail", "fail"),
    # diskstats is not virtualized by lxcfs 5.0.3 on this kernel: the host's vda shows.
    "vis.diskstats": table("fail", "fail"),
    "vis.loadavg": table("fail", "pass", allocs=(A1,)),
    "vis.uptime-load": table("fail", "fail", allocs=(A1,)),
    # No host swap device to leak on this machine: see README (cannot fail here).
    "vis.swaps": table("pass", "pass"),
    "vis.net-dev": table("pass", "pass"),
}
# The wrong target: same dockerd, containers on the host's network namespace.
HOSTNET = {"vis.net-dev": "fail"}


@pytest.fixture(scope="module")
def run(visibility_run):
    return load_results(visibility_run)


def test_run_complete_and_clean(run):
    assert run["run"]["complete"] is True
    assert run["run"]["leaks"] == []
    assert run["run"]["digest"].startswith("sha256:")
    assert set(run["run"]["collected"]) == {f"{r['check']}|{r['target']}|{r['allocation']}" for r in run["results"]}


@pytest.mark.parametrize("check_id", sorted(EXPECTED))
def test_check_outcomes_pinned(run, check_id):
    got = outcomes(run)
    expected = EXPECTED[check_id]
    actual = {(t, a): got.get((check_id, t, a)) for (t, a) in expected}
    wrong = {k: f"expected {expected[k]}, got {actual[k]}" for k in expected if actual[k] != expected[k]}
    assert not wrong, f"{check_id}: {wrong}"


@pytest.mark.parametrize("check_id", sorted(HOSTNET))
def test_wrong_target_fails(run, check_id):
    got = [r["outcome"] for r in run["results"] if r["check"] == check_id and r["target"] == "docker-hostnet"]
    assert got and set(got) == {HOSTNET[check_id]}, got


def test_every_check_discriminates_or_is_explained(run):
    """A check must pass somewhere and fail somewhere, or the README's findings list ("What
    the suites find on this machine") must name it and say why."""
    with open(README) as f:
        text = f.read()
    by_check = {}
    for r in run["results"]:
        by_check.setdefault(r["check"], set()).add(r["outcome"])
    flat = sorted(c for c, seen in by_check.items() if not {"pass", "fail"} <= seen)
    assert flat, "every check discriminates: then say so in the README instead of this test"
    missing = readme_findings.unexplained(text, FINDINGS_LEAD, flat)
    assert not missing, f"{missing}: only ever {[by_check[c] for c in missing]}, and the README does not say why"


def test_an_explanation_that_is_missing_is_noticed():
    """The check above fails when a check's bullet is gone from the findings list."""
    with open(README) as f:
        text = f.read()
    for cid in ("vis.sysinfo-memory", "vis.swaps"):
        assert readme_findings.unexplained(text, FINDINGS_LEAD, [cid]) == []
        assert readme_findings.unexplained(readme_findings.without_bullet(text, cid), FINDINGS_LEAD, [cid]) == [cid]


# A /proc that says "nothing free, up for 0 s" for the 256 MiB allocation: MemTotal right, so
# only the lower bounds can catch it.
ZERO_MEMINFO = "MemTotal:         262144 kB\nMemFree:               0 kB\nMemAvailable:          0 kB\n" \
               "Buffers:               0 kB\nCached:                0 kB\nSwapTotal:             0 kB\n" \
               "SwapFree:              0 kB\n"


@pytest.fixture(scope="module")
def zero_run(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("zero")
    (tmp / "meminfo").write_text(ZERO_MEMINFO)
    (tmp / "uptime").write_text("0.00 0.00\n")
    with open(lab.targets_path) as f:
        data = yaml.safe_load(f)
    zero = dict(data["targets"]["docker"], control=True, description="deliberately wrong: /proc says 0",
                options={"volumes": [f"{tmp}/meminfo:/proc/meminfo:ro", f"{tmp}/uptime:/proc/uptime:ro"]})
    data["targets"] = {"docker-zero": zero}
    data.pop("pairs", None)
    tfile = tmp / "targets.yaml"
    tfile.write_text(yaml.safe_dump(data))
    out = str(tmp / "out")
    res = cutover("run", "--targets", str(tfile), "--out", out, "--allocations", "cpuset1-256m:cpuset=0,mem=256m",
                  "-k", "meminfo or proc_uptime", timeout=300)
    assert res.returncode == 1, res.stdout[-2000:] + res.stderr[-2000:]
    return load_results(out)


def test_lower_bounds_fail_a_proc_that_says_zero(zero_run):
    got = outcomes(zero_run)
    assert got == {("vis.meminfo", "docker-zero", A1): "fail", ("vis.proc-uptime", "docker-zero", A1): "fail"}, got
    mem = next(r for r in zero_run["results"] if r["check"] == "vis.meminfo")
    assert "MemFree: expected 131072..262144 kB, observed 0" in mem["message"], mem["message"]
    assert "MemAvailable: expected" in mem["message"] and "MemTotal" not in mem["message"], mem["message"]
    up = next(r for r in zero_run["results"] if r["check"] == "vis.proc-uptime")
    assert up["observed"]["uptime s"] == 0 and up["expected"]["uptime s"].split("..")[0] not in ("0", "0.0"), up
    assert zero_run["run"]["complete"] is True and zero_run["run"]["leaks"] == []


def test_failures_say_expected_observed_where(run):
    for r in run["results"]:
        if r["outcome"] == "fail":
            assert "expected" in r["message"] and "observed" in r["message"] and r["target"] in r["message"], r
            assert r["evidence"], f"{r['nodeid']} has no raw evidence attached"
