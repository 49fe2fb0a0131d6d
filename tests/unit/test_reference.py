"""Differential runs: outcome and value departures from the reference target."""
from cutover import reference


def rec(target, outcome, observed, expected=None, check="vis.meminfo", alloc="cpuset1-256m"):
    return {"check": check, "target": target, "allocation": alloc, "outcome": outcome,
            "observed": observed, "expected": expected or {"MemTotal": "262144 kB ±1%"}}


def test_outcome_departure_keeps_both_values():
    recs = [rec("lxc-t4", "pass", {"MemTotal": 262144}), rec("docker", "fail", {"MemTotal": 24684084})]
    assert reference.compare(recs, "lxc-t4") == {"outcome": 1, "value": 0}
    d = recs[1]["reference"]
    assert d["departure"] == "outcome" and d["outcome"] == "pass" and d["observed"] == {"MemTotal": 262144}
    assert "reference" not in recs[0]
    line, = reference.lines(recs, "lxc-t4")
    assert "docker: fail" in line and "24684084" in line and "vs lxc-t4: pass" in line and "262144" in line


def test_same_outcome_other_value_is_a_value_departure():
    # Both fail nproc under a CFS quota, but report different CPU counts: worth seeing.
    exp = {"nproc": "1"}
    recs = [rec("lxc-t4", "fail", {"nproc": 2}, exp, "vis.nproc"), rec("podman", "fail", {"nproc": 4}, exp, "vis.nproc")]
    assert reference.compare(recs, "lxc-t4") == {"outcome": 0, "value": 1}
    assert recs[1]["reference"]["values"] == {"nproc": [4, 2]}
    assert "both fail, but nproc: 4 vs 2" in reference.lines(recs, "lxc-t4")[0]


def test_values_that_move_between_reads_and_unjudged_keys_are_not_departures():
    exp = {"MemFree": "<= 262144 kB"}
    recs = [rec("lxc-t4", "pass", {"MemFree": 250000, "image": "sha256:aa"}, exp),
            rec("docker-lxcfs", "pass", {"MemFree": 240000, "image": "sha256:bb"}, exp)]
    assert reference.compare(recs, "lxc-t4") == {"outcome": 0, "value": 0}
    assert recs[1]["reference"]["differs"] is False
    assert reference.lines(recs, "lxc-t4") == []


def test_records_are_paired_by_check_and_allocation_only():
    recs = [rec("lxc-t4", "pass", {"MemTotal": 262144}, alloc="a"),
            rec("docker", "fail", {"MemTotal": 1}, alloc="b"),          # no reference record for b
            rec("docker", "fail", {"MemTotal": 1}, check="vis.other")]  # nor for this check
    assert reference.compare(recs, "lxc-t4") == {"outcome": 0, "value": 0}
    assert all("reference" not in r for r in recs)


def test_a_quantity_only_one_side_saw_is_a_departure():
    exp = {"MemTotal": "262144 kB ±1%", "MemFree": "<= 262144 kB"}
    recs = [rec("lxc-t4", "fail", {"MemTotal": 262144, "MemFree": 1}, exp),
            rec("docker", "fail", {"MemTotal": 262144}, exp)]
    reference.compare(recs, "lxc-t4")
    assert recs[1]["reference"]["values"] == {"MemFree": ["<missing>", 1]}
