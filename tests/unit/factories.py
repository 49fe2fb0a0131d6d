"""Hand-made runs for the gate's unit tests.

Runs are written as real files with results.write_run, so their digests are real and the
gate reads them exactly as it reads a run made by the harness. Check IDs are taken from the
catalogue (by severity), so the tests keep working as the catalogue grows.
"""
import json
import os

from cutover import catalogue
from cutover.gate import load_runs
from cutover.policy import parse_policy
from cutover.results import record_key, write_run

SUITE = "isolation/visibility"
SUITE_CHECKS = [c.id for c in catalogue.by_suite()[SUITE]]
BLOCKING = next(c.id for c in catalogue.by_suite()[SUITE] if c.severity == "critical")
ADVISORY = next(c.id for c in catalogue.by_suite()[SUITE] if c.severity == "minor")
ALLOCS = ("1cpu-512m", "2cpu-1g")
DEFAULT_POLICY = "default: blocking\nadvisory: ['severity:minor']\n"


def record(check, target="docker", outcome="pass", allocation=ALLOCS[0], host="ssh://h1", **extra):
    c = catalogue.get(check)
    rec = {
        "check": check, "title": c.title if c else check, "promise": c and c.promise,
        "severity": c and c.severity, "suite": c and c.suite, "target": target, "host": host,
        "allocation": allocation, "outcome": outcome, "expected": "512 MiB",
        "observed": "512 MiB" if outcome == "pass" else "15.5 GiB", "message": "",
        "nodeid": f"conformance/isolation/test_visibility.py::test_{check}[{target}-{allocation}]",
        "duration": 0.25,
    }
    rec.update(extra)
    return rec


def records(target="docker", host="ssh://h1", outcomes=None, checks=None, allocations=ALLOCS):
    """Every check x allocation of the suite for one target; outcomes={check: outcome}, others pass."""
    outcomes = outcomes or {}
    return [record(check, target, outcomes.get(check, "pass"), alloc, host)
            for check in (checks or SUITE_CHECKS) for alloc in allocations]


def write(folder, recs, complete=True, collected=None, targets=None, hosts=None, run_id=None, **run):
    """Write folder/results.json; collected defaults to exactly the records' keys."""
    folder = str(folder)
    os.makedirs(folder, exist_ok=True)
    if targets is None:
        targets = {r["target"]: {"host": r["host"], "driver": "docker", "runtime": "runc",
                                 "versions": {"dockerd": "20.10.24", "runc": "1.1.5"}} for r in recs}
    if hosts is None:
        hosts = {t["host"]: {"kernel": "6.18.0", "os": "Debian 12", "cgroup": "v1-hybrid"}
                 for t in targets.values()}
    meta = {"id": run_id or os.path.basename(folder), "started": "2026-01-10T10:00:00+00:00",
            "finished": "2026-01-10T10:05:00+00:00", "complete": complete,
            "exitstatus": 0 if complete else 2, "argv": ["cutover", "run"], "targets": targets,
            "allocations": [{"name": a} for a in ALLOCS], "hosts": hosts,
            "collected": [record_key(r) for r in recs] if collected is None else collected}
    meta.update(run)
    write_run(os.path.join(folder, "results.json"), meta, recs)
    return folder


def edit(folder, change):
    """Alter results.json in place WITHOUT updating the digest (what tampering looks like)."""
    path = os.path.join(str(folder), "results.json")
    with open(path) as f:
        data = json.load(f)
    change(data)
    with open(path, "w") as f:
        json.dump(data, f)


def load(*folders):
    return load_runs([str(f) for f in folders])


def policy(text=DEFAULT_POLICY):
    return parse_policy(text, name="policy.yaml")
