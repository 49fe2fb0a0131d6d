"""The gate end to end on a real run: FAIL on docker, PASS on docker-lxcfs, waivers, expiry,
truncation, and what a person sees in the summary page rendered by headless Chromium."""
import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import cutover

FUTURE, PAST = "2099-12-31", "2020-01-01"


def gate(*args):
    return cutover("gate", *args, timeout=120)


def gate_json(folder):
    with open(os.path.join(folder, "gate.json")) as f:
        return json.load(f)


def waive_docker(tmp_path, expires):
    p = tmp_path / f"policy-{expires}.yaml"
    p.write_text(f"""
default: blocking
advisory: ["severity:minor", "vis.sysinfo-memory", "vis.nproc"]
waivers:
  - check: "vis.*"
    target: "docker*"
    reason: "plain Docker has no LXCFS yet; LXCFS injection is scheduled"
    owner: "platform-team"
    expires: {expires}
""")
    return str(p)


@pytest.fixture
def run(visibility_run, tmp_path):
    """A private copy of the shared run, so gate outputs never mix."""
    dst = tmp_path / "run"
    shutil.copytree(visibility_run, dst, ignore=shutil.ignore_patterns("gate.json", "certificates", "summary.html"))
    return str(dst)


def test_default_policy_fails_docker_passes_lxcfs(run):
    res = gate(run)
    assert res.returncode == 1, res.stdout + res.stderr
    g = gate_json(run)
    assert g["verdict"] == "FAIL"
    assert g["targets"]["docker"]["verdict"] == "FAIL"
    assert g["targets"]["docker-lxcfs"]["verdict"] == "PASS"
    [name] = os.listdir(os.path.join(run, "certificates"))
    cert = json.load(open(os.path.join(run, "certificates", name)))
    assert (cert["host"], cert["verdict"], cert["certified"]) == ("local://", "FAIL", False)
    assert cert["facts"]["kernel"] == os.uname().release
    assert cert["facts"]["targets"]["docker"]["runtime_version"].startswith("20.10")


def test_waivers_turn_pass_and_expiry_fails_again(run, tmp_path):
    res = gate(run, "--policy", waive_docker(tmp_path, FUTURE))
    assert res.returncode == 0, res.stdout + res.stderr
    assert gate_json(run)["verdict"] == "PASS"
    res = gate(run, "--policy", waive_docker(tmp_path, PAST))
    assert res.returncode == 1
    assert any(r["kind"] == "waiver-expired" or "expired" in r.get("message", "") for r in gate_json(run)["reasons"])


def test_truncated_results_fail_closed(run):
    path = os.path.join(run, "results.json")
    data = open(path).read()
    with open(path, "w") as f:
        f.write(data[: len(data) // 2])
    res = gate(run)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert gate_json(run)["verdict"] == "FAIL"


def test_edited_results_fail_closed(run):
    path = os.path.join(run, "results.json")
    data = json.load(open(path))
    for r in data["results"]:
        r["outcome"] = "pass"          # someone "fixes" the results by hand
    json.dump(data, open(path, "w"))
    assert gate(run).returncode == 1
    assert any(r["kind"] == "tampered" for r in gate_json(run)["reasons"])


def chromium(*args, timeout=60):
    return subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                           "--no-first-run", "--disable-background-networking", "--disable-component-update",
                           "--disable-sync", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not installed (setup.sh installs it)")
def test_summary_page_shows_verdict_failing_cell_and_waiver(run, tmp_path):
    gate(run, "--policy", waive_docker(tmp_path, FUTURE))
    page = "file://" + os.path.join(run, "summary.html")
    dom = chromium(f"--user-data-dir={tmp_path / 'chrome'}", "--dump-dom", page).stdout
    assert 'data-verdict="PASS"' in dom
    # A waived failing cell of docker, and passing cells of docker-lxcfs, as a person sees them.
    assert 'data-target="docker"' in dom and "waived" in dom
    assert "outcome-pass" in dom
    shot = tmp_path / "summary.png"
    chromium(f"--user-data-dir={tmp_path / 'chrome2'}", f"--screenshot={shot}", "--window-size=1400,1000", page)
    assert shot.exists() and shot.stat().st_size > 10_000
