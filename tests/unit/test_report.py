"""Allure extras: environment.properties as Java reads it, and categories that match results.json."""
import re

import pytest

from cutover import report

HOSTS = {"ssh://h1": {"kernel": "6.18.0-1", "os": "Debian GNU/Linux 12 (bookworm)", "cpus": 2,
                      "lxcfs": {"version": "5.0.3", "options": ["-l", "--enable-cfs"]},
                      "note": "a=b: #!\\ tab\there µ€𝄞",
                      "targets": {"h1-docker": {"runtime_version": "20.10.24", "storage_driver": "overlay2"}}},
         "local://": {"kernel": "6.18.0"}}


def java_properties(text):
    """java.util.Properties.load for the lines environment() writes (one logical line each)."""
    out = {}
    for line in text.splitlines():
        key, i, chars = [], 0, []
        while i < len(line):
            ch = line[i]
            if ch == "\\":
                nxt = line[i + 1]
                if nxt == "u":
                    chars.append(chr(int(line[i + 2:i + 6], 16)))
                    i += 6
                    continue
                chars.append({"n": "\n", "t": "\t", "r": "\r", "f": "\f"}.get(nxt, nxt))
                i += 2
                continue
            if not key and ch in "=:":
                key, chars = chars, []
                i += 1
                continue
            chars.append(ch)
            i += 1
        value = "".join(chars).encode("utf-16", "surrogatepass").decode("utf-16")
        out["".join(key)] = value
    return out


def test_environment_keys_survive_java_properties():
    text = report.environment(HOSTS)
    text.encode("ascii")                     # Properties.load reads ISO-8859-1: stay ASCII
    props = java_properties(text)
    assert props["ssh://h1 kernel"] == "6.18.0-1"
    assert props["local:// kernel"] == "6.18.0"
    assert props["ssh://h1 note"] == "a=b: #!\\ tab here µ€𝄞"
    assert props["h1-docker runtime_version"] == "20.10.24"
    assert props["ssh://h1 lxcfs"] == '{"options": ["-l", "--enable-cfs"], "version": "5.0.3"}'
    assert len(props) == len(text.splitlines())


def categories_of(status, message):
    """Which categories Allure 2 puts a result in: status listed, whole message matches (Java)."""
    out = []
    for c in report.CATEGORIES:
        rx = c["messageRegex"].replace("(?s)", "")
        if status in c["matchedStatuses"] and re.fullmatch(rx, message, re.S):
            out.append(c["name"])
    return out


@pytest.mark.parametrize("status, message, outcome", [
    ("failed", "fixtures.recorder.CheckFailed: vis.meminfo: MemTotal: expected 262144 kB", "fail"),
    ("failed", "AssertionError: teardown found the container still running", "error"),
    ("failed", "Failed: Timeout >300.0s", "error"),
    ("broken", "cutover.drivers.base.RuntimeFailure: create on docker: endpoint unreachable", "error"),
    ("skipped", "cutover.drivers.base.Unsupported: target 'lxc-t4' has no daemon.stop command", "unsupported"),
    ("skipped", "Skipped: unsupported: no registry", "unsupported"),
    ("skipped", "Skipped: no swap on this host", "skip"),
])
def test_each_result_lands_in_exactly_the_category_of_its_outcome(status, message, outcome):
    name = {"fail": "Runtime non-conformance", "error": "Harness errors", "unsupported": "Unsupported",
            "skip": "Skipped"}[outcome]
    cats = categories_of(status, message)
    assert len(cats) == 1 and cats[0].startswith(name), cats
