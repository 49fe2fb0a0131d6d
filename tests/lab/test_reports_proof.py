"""The reports of a real run, as a person and a CI system read them: Allure labels on every
result (an errored setup included), the raw evidence attached, steps, categories that agree
with results.json, environment.properties as Allure itself parses it, history across two
`cutover report` calls, and JUnit with the host facts; plain pytest --out writes them too."""
import glob
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
import yaml

from cutover import report
from tests.conftest import REPO, cutover, load_results

TARGETS = ("docker", "docker-lxcfs", "lxc-t4")
BROKEN_SETUP = "test_meminfo[docker-lxcfs-cfs0.5-512m]"       # passes on a good harness
BROKEN_TEARDOWN = "test_meminfo[lxc-t4-cpuset1-256m]"         # passes on a good harness
SELECT = "test_meminfo or test_env"                            # img.env: unsupported on lxc-t4

pytestmark = pytest.mark.skipif(not os.path.exists(report.ALLURE), reason="Allure not installed (./setup.sh)")


def targets_file(lab, tmp):
    with open(lab.targets_path) as f:
        data = yaml.safe_load(f)
    data.pop("pairs", None)
    data["targets"] = {n: data["targets"][n] for n in TARGETS}
    path = tmp / "targets.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.fixture(scope="module")
def run(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reports")
    out = str(tmp / "runs" / "run1")
    env = dict(os.environ, CUTOVER_BREAK_SETUP=BROKEN_SETUP, CUTOVER_BREAK_TEARDOWN=BROKEN_TEARDOWN)
    res = subprocess.run([os.path.join(REPO, "bin", "cutover"), "run", "--targets", targets_file(lab, tmp),
                          "--out", out, "-n", "2", "-k", SELECT, "-p", "tests.lab.harness_faults_plugin"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-2000:]
    data = load_results(out)
    results = [json.load(open(p)) for p in glob.glob(os.path.join(out, "allure-results", "*-result.json"))]
    return {"out": out, "tmp": tmp, "data": data, "allure": results, "targets": targets_file(lab, tmp)}


def title(rec):
    return f"{rec['title']} [{rec['target']}{' / ' + rec['allocation'] if rec['allocation'] else ''}]"


def by_title(run):
    out = {}
    for r in run["allure"]:
        out.setdefault(r["name"], []).append(r)
    return out


def labels(result):
    out = {}
    for label in result["labels"]:
        out.setdefault(label["name"], []).append(label["value"])
    return out


def steps(result):
    todo, out = list(result.get("steps", [])), []
    while todo:
        s = todo.pop(0)
        out.append(s)
        todo[:0] = s.get("steps", [])
    return out


def test_the_run_holds_every_kind_of_outcome(run):
    outcomes = {r["nodeid"].split("::")[-1]: r["outcome"] for r in run["data"]["results"]}
    assert outcomes[BROKEN_SETUP] == "error" and outcomes[BROKEN_TEARDOWN] == "error"
    assert {"pass", "fail", "error", "unsupported"} <= set(outcomes.values()), outcomes


def test_every_result_is_labelled_like_its_record_setup_errors_included(run):
    results = by_title(run)
    for rec in run["data"]["results"]:
        [result] = results[title(rec)]
        got = labels(result)
        want = {"check": [rec["check"]], "promise": [rec["promise"]], "suite": [rec["suite"]],
                "target": [rec["target"]], "host": [rec["host"]],
                "severity": [{"critical": "critical", "major": "normal", "minor": "minor"}[rec["severity"]]]}
        if rec["allocation"]:
            want["allocation"] = [rec["allocation"]]
        assert {k: got.get(k) for k in want} == want, (rec["nodeid"], got)
    broken = next(r for r in run["data"]["results"] if r["nodeid"].endswith(BROKEN_SETUP))
    assert broken["phase"] == "setup"
    [result] = results[title(broken)]
    assert labels(result)["check"] == ["vis.meminfo"] and labels(result)["target"] == ["docker-lxcfs"]
    arrange = [s for s in steps(result) if s["name"].startswith("arrange:")]
    assert arrange and arrange[0]["status"] == "broken", steps(result)


def test_steps_and_attached_evidence(run):
    results = by_title(run)
    recs = [r for r in run["data"]["results"] if r["check"] == "vis.meminfo" and r["phase"] == "call"]
    assert recs
    for rec in recs:
        [result] = results[title(rec)]
        names = [s["name"].split(":")[0] for s in steps(result)]
        assert names[:3] == ["arrange", "act", "assert"], names
        assert_step = next(s for s in steps(result) if s["name"].startswith("assert:"))
        assert assert_step["status"] == ("failed" if rec["outcome"] == "fail" else "passed")
        attached = [a for s in steps(result) for a in s.get("attachments", [])] + result.get("attachments", [])
        texts = [open(os.path.join(run["out"], "allure-results", a["source"])).read() for a in attached]
        assert rec["evidence"], rec["nodeid"]
        for ev in rec["evidence"]:
            assert any(t.startswith(ev["text"]) for t in texts), (rec["nodeid"], ev["name"])
        assert any("MemTotal:" in t for t in texts)


@pytest.fixture(scope="module")
def rendered(run):
    """Allure 2's own reading of the results: a multi-file report whose data we can open."""
    out = str(run["tmp"] / "allure-data")
    res = subprocess.run([report.ALLURE, "generate", os.path.join(run["out"], "allure-results"), "-o", out,
                          "--clean"], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, ALLURE_NO_ANALYTICS="true"))
    assert res.returncode == 0, res.stderr
    return out


def leaves(node):
    if "children" not in node:
        return [node]
    return [leaf for child in node["children"] for leaf in leaves(child)]


def test_categories_agree_with_results_json(run, rendered):
    assert os.path.exists(os.path.join(run["out"], "allure-results", "categories.json"))
    cats = json.load(open(os.path.join(rendered, "data", "categories.json")))
    category_of = {}
    for cat in cats["children"]:
        for leaf in leaves(cat):
            category_of.setdefault(leaf["name"], []).append(cat["name"])
    want = {"fail": "Runtime non-conformance", "error": "Harness errors", "unsupported": "Unsupported",
            "skip": "Skipped"}
    for rec in run["data"]["results"]:
        got = category_of.get(title(rec), [])
        if rec["outcome"] == "pass":
            assert got == [], (rec["nodeid"], got)
        else:
            assert len(got) == 1 and got[0].startswith(want[rec["outcome"]]), (rec["nodeid"], rec["outcome"], got)


def test_environment_is_parsed_by_allure_with_the_host_facts(run, rendered):
    env = {e["name"]: e["values"] for e in json.load(open(os.path.join(rendered, "widgets", "environment.json")))}
    assert env["local:// kernel"] == [os.uname().release]
    facts = run["data"]["run"]["hosts"]["local://"]
    assert env["local:// cgroup"] == [facts["cgroup"]]
    assert env["docker runtime_version"] == [facts["targets"]["docker"]["runtime_version"]]


def test_history_is_carried_across_two_reports(run):
    parent = os.path.dirname(run["out"])
    run2 = os.path.join(parent, "run2")
    shutil.copytree(run["out"], run2)
    for folder in (run["out"], run2):
        res = cutover("report", folder, timeout=300)
        assert res.returncode == 0 and os.path.exists(os.path.join(folder, "allure-report", "index.html")), res.stderr
    trend = json.load(open(os.path.join(parent, ".allure-history", "history-trend.json")))
    assert len(trend) == 2, trend
    assert trend[0]["data"]["total"] == len(run["data"]["results"])


def test_junit_carries_the_host_facts(run):
    root = ET.parse(os.path.join(run["out"], "junit.xml")).getroot()
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["local:// kernel"] == os.uname().release
    assert props["cutover run"] == run["data"]["run"]["id"]
    assert props["docker runtime_version"].startswith("20.10")


def test_plain_pytest_with_out_writes_junit_and_allure(run, tmp_path):
    out = tmp_path / "plain"
    res = subprocess.run([os.path.join(REPO, ".venv", "bin", "python"), "-m", "pytest", "conformance",
                          "--targets", run["targets"], "--target", "docker", "--out", str(out), "-k", "test_meminfo",
                          "-q", "-p", "no:cacheprovider"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stdout[-2000:]
    assert {"results.json", "junit.xml", "allure-results"} <= set(os.listdir(out))
    suites = ET.parse(out / "junit.xml").getroot()
    assert int(next(suites.iter("testsuite")).get("tests")) == 3
    assert len(glob.glob(str(out / "allure-results" / "*-result.json"))) == 3
    assert (out / "allure-results" / "environment.properties").exists()
