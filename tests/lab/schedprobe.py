"""A pytest plugin for self-tests: where and when each check of a run really ran.

`cutover run ... -p tests.lab.schedprobe` with $CUTOVER_SCHEDULE_LOG set: every worker appends
one JSON line per test: nodeid, worker (PYTEST_XDIST_WORKER), target names and host, the daemon
and lxcfs resources it uses and those it disrupts, and the wall-clock interval from the start
of its setup to the end of its teardown. The interval is taken *inside* the daemon locks (this
plugin's wrappers are innermost, daemonlock's outermost), so it is when the test really used
its daemon, not when it queued for it. results.json has only durations, no start times or
workers, hence this plugin.

CUTOVER_SCHEDPROBE_NO_LOCKS=1 takes the daemon locks out (self-test of the self-test only: it
is how test_schedule_proof's overlap assertion was shown to fail). Never set it elsewhere.
"""
import json
import os
import time

import pytest

from fixtures import daemonlock

if os.environ.get("CUTOVER_SCHEDPROBE_NO_LOCKS") == "1":
    from fixtures import pairs
    daemonlock._plan = pairs._plan = lambda item: []


def _subjects(item):
    cs = getattr(item, "callspec", None)
    if cs is None:
        return []
    t, p = cs.params.get("target"), cs.params.get("pair")
    if t is not None and hasattr(t, "endpoint"):
        return [t]
    return list(p.targets) if p is not None and hasattr(p, "targets") else []


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_setup(item):
    item.schedprobe_start = time.time()
    return (yield)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item, nextitem):
    try:
        return (yield)
    finally:
        end = time.time()
        path = os.environ.get("CUTOVER_SCHEDULE_LOG")
        ts = _subjects(item)
        if path and ts:
            m = item.get_closest_marker("disruptive")
            kinds = set(m.args) if m else set()
            uses = sorted({k for t in ts for k in daemonlock.resources(t).values()})
            disrupts = sorted({k for t in ts for kind, k in daemonlock.resources(t).items() if kind in kinds})
            line = json.dumps({"nodeid": item.nodeid, "worker": os.environ.get("PYTEST_XDIST_WORKER", "master"),
                               "targets": [t.name for t in ts], "host": ts[0].host, "uses": uses,
                               "disrupts": disrupts, "start": getattr(item, "schedprobe_start", end), "end": end})
            with open(path, "a") as f:       # one short write per line: O_APPEND keeps lines whole
                f.write(line + "\n")


def read(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def overlaps(entries):
    """[(disruptive entry, other entry)] that used one daemon (or lxcfs) at the same time."""
    out = []
    for a in entries:
        for b in entries:
            if a is b or not set(a["disrupts"]) & set(b["uses"]):
                continue
            if a["start"] < b["end"] and b["start"] < a["end"]:
                out.append((a["nodeid"], b["nodeid"]))
    return out


def workers_per_target(entries):
    out = {}
    for e in entries:
        if len(e["targets"]) == 1:
            out.setdefault(e["targets"][0], set()).add(e["worker"])
    return out


def concurrent(entries, key):
    """Whether, for every two values of key (e.g. 'host'), some of their tests ran at once."""
    spans = {}
    for e in entries:
        spans.setdefault(e[key], []).append((e["start"], e["end"]))
    names = sorted(spans)
    bad = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if not any(s1 < e2 and s2 < e1 for s1, e1 in spans[a] for s2, e2 in spans[b]):
                bad.append((a, b))
    return bad
