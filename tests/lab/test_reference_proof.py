"""Differential run on the real lab: --reference shows, check by check, where a candidate
departs from the runtime it replaces, with both values (README "The gate", --reference)."""
import pytest

from tests.conftest import cutover, lab_targets, load_results, subset_targets


@pytest.fixture(scope="module")
def run(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    ts = lab_targets(lab)
    tfile = subset_targets(lab, tmp / "targets.yaml", {n: ts[n] for n in ("docker", "docker-lxcfs")})
    out = str(tmp / "out")
    res = cutover("run", "--targets", tfile, "--out", out, "-n", "2", "--reference", "docker-lxcfs",
                  "-k", "meminfo or nproc", timeout=300)
    assert res.returncode == 1, f"exit {res.returncode}\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
    return res, load_results(out)


def test_outcome_departures_carry_both_values(run):
    res, data = run
    mem = [r for r in data["results"] if r["check"] == "vis.meminfo" and r["target"] == "docker"]
    assert len(mem) == 3, mem
    for r in mem:
        d = r["reference"]
        # Plain docker shows the host's memory; docker-lxcfs the allocation: both values kept.
        assert d["target"] == "docker-lxcfs" and d["departure"] == "outcome", d
        assert r["outcome"] == "fail" and d["outcome"] == "pass"
        limit_kb = r["allocation_spec"]["memory"] // 1024
        assert abs(d["observed"]["MemTotal"] - limit_kb) <= limit_kb * 0.01, (d["observed"], limit_kb)
        assert r["observed"]["MemTotal"] > 2 * limit_kb, r["observed"]
        assert f"vis.meminfo [{r['allocation']}] docker: fail" in res.stdout


def test_same_outcomes_do_not_depart_and_the_reference_has_no_reference(run):
    _, data = run
    nproc = [r for r in data["results"] if r["check"] == "vis.nproc" and r["target"] == "docker"]
    # nproc follows the cpuset on both (lxcfs does not touch the affinity mask): no departure.
    assert nproc and all(r["reference"]["differs"] is False for r in nproc), [r["reference"] for r in nproc]
    assert all("reference" not in r for r in data["results"] if r["target"] == "docker-lxcfs")
    counts = data["run"]["reference_departures"]
    assert data["run"]["reference"] == "docker-lxcfs" and counts["outcome"] == 3, counts


def test_unknown_reference_is_bad_input(lab, tmp_path):
    res = cutover("run", "--out", str(tmp_path / "out"), "--reference", "no-such-target", "-k", "meminfo")
    assert res.returncode == 2 and "--reference" in res.stderr and "Traceback" not in res.stderr, res.stderr
