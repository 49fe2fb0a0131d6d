"""Proof that every security check discriminates, on the real lab.

One real run of the security suite against the lab's safe targets (dockerd with runc, with
LXCFS, with crun, and podman) and its deliberately unsafe one (`docker-unsafe`: host
namespaces, SYS_ADMIN and friends, no seccomp, every device, writable /proc/sys and /sys, a
site override of no-new-privileges). Every check must pass on every safe target and fail on
the unsafe one; each cell is pinned so that a change in a runtime or a check shows.
"""
import glob
import os

import pytest
import yaml

from tests.conftest import cutover, load_results, outcomes

SAFE = ("docker", "docker-lxcfs", "docker-crun", "podman")
UNSAFE = "docker-unsafe"
CHECKS = ("sec.capabilities", "sec.seccomp", "sec.no-new-privs", "sec.ns-pid", "sec.ns-ipc", "sec.ns-uts",
          "sec.ns-mnt", "sec.ns-net", "sec.host-processes", "sec.proc-sys-ro", "sec.sys-ro", "sec.devices",
          "sec.release-agent", "sec.neighbour-files")
ALLOC = "cpuset1-256m"
PROC_SYS = "/proc/sys/vm/overcommit_ratio"


def sys_attribute():
    """The /sys attribute sec.sys-ro writes back: the same pick as the check makes inside the
    container (the first block device, by name, that is not a loop, ram or zram device), found
    on this host, so the host-unchanged assert below always compares a real value."""
    for dev in sorted(os.listdir("/sys/block")):
        if not dev.startswith(("loop", "zram", "ram")):
            path = f"/sys/block/{dev}/queue/read_ahead_kb"
            if os.path.exists(path):
                return path
    return "/sys/kernel/mm/transparent_hugepage/khugepaged/pages_to_scan"


# Host values the checks write back to themselves when a write is accepted (docker-unsafe).
WRITTEN_BACK = (PROC_SYS, sys_attribute())


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


@pytest.fixture(scope="module")
def run(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sec")
    with open(lab.targets_path) as f:
        data = yaml.safe_load(f)
    data["targets"] = {n: data["targets"][n] for n in SAFE + (UNSAFE,)}
    data.pop("pairs", None)          # the lab's pair names targets left out here
    tfile = tmp / "targets.yaml"
    tfile.write_text(yaml.safe_dump(data))
    before = {p: _read(p) for p in WRITTEN_BACK}
    out = str(tmp / "out")
    res = cutover("run", "--targets", str(tfile), "--out", out, "-n", "2", "-k", "security", timeout=600)
    assert res.returncode == 1, f"expected exit 1 (docker-unsafe fails), got {res.returncode}:\n" \
                                f"{res.stdout[-3000:]}\n{res.stderr[-2000:]}"
    data = load_results(out)
    data["host_before"], data["host_after"] = before, {p: _read(p) for p in WRITTEN_BACK}
    return data


def test_run_complete_and_clean(run):
    assert run["run"]["complete"] is True
    assert run["run"]["leaks"] == []
    assert {r["check"] for r in run["results"]} == set(CHECKS)


@pytest.mark.parametrize("check_id", CHECKS)
def test_passes_on_safe_targets_fails_on_unsafe(run, check_id):
    got = outcomes(run)
    expected = {t: "pass" for t in SAFE} | {UNSAFE: "fail"}
    actual = {t: got.get((check_id, t, ALLOC)) for t in expected}
    assert actual == expected, {t: f"expected {expected[t]}, got {actual[t]}" for t in expected
                                if actual[t] != expected[t]}


def test_failures_say_expected_observed_where(run):
    for r in run["results"]:
        if r["outcome"] == "fail":
            assert "expected" in r["message"] and "observed" in r["message"] and r["target"] in r["message"], r
            assert r["evidence"], f"{r['nodeid']} has no raw evidence attached"


def test_accepted_writes_left_the_host_unchanged(run):
    """docker-unsafe accepts the writes: each wrote the value it had read, so nothing changed."""
    assert all(v is not None for v in run["host_before"].values()), run["host_before"]
    assert run["host_after"] == run["host_before"]
    # The unsafe target really wrote these very files (its records name them): not vacuous.
    msgs = {r["check"]: r["message"] for r in run["results"] if r["target"] == UNSAFE}
    assert PROC_SYS in msgs["sec.proc-sys-ro"], msgs["sec.proc-sys-ro"]
    assert WRITTEN_BACK[1] in msgs["sec.sys-ro"], msgs["sec.sys-ro"]


def test_no_secret_left_on_the_host():
    """docker-unsafe shares the host's /dev/shm: the neighbour check must clean up after itself."""
    assert glob.glob("/dev/shm/.cutover-secret-*") == []


def test_unsafe_target_is_documented(lab):
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")).read()
    assert "`docker-unsafe`" in readme
    for check_id in CHECKS:
        assert f"`{check_id}`" in readme, f"{check_id} is not in the README's security section"
