"""Proof that Cutover certifies a fleet: simulated hosts, for real, over ssh and Ansible.

`lab up --hosts 3 --host-variant 2:lxcfs-default --host-variant 3:ansible` makes three hosts
(own namespaces, sshd, dockerd, lxcfs): h1 as the lab's own, h2 running lxcfs with Debian's
default options (no -l, no --enable-cfs, what a site gets from the package), h3 reached through
the Ansible inventory. One `cutover run -n auto` certifies all three at the same time, and:
- every visibility cell of h1 and h3 is what the local lab's docker / docker-lxcfs give
  (tests/lab/test_visibility_proof.py pins those), reached over ssh and Ansible;
- the same target definition passes on h1 and fails on h2 where only the host's lxcfs options
  differ: vis.loadavg, and the CPU views under a CFS quota; the host facts show why;
- a host whose sshd is stopped is reported as errors naming the host, for its own checks only,
  while the other host finishes with its real outcomes; so is a host that dies mid-run (its
  link goes down once the run has containers on it);
- shards of the fleet (--shard K/N) merge into one gate decision over every host.
"""
import os
import signal
import subprocess

import pytest

from cutover import results
from tests.conftest import CUTOVER, cutover, load_results, outcomes
from tests.lab.test_visibility_proof import EXPECTED as LOCAL

A1, A2, A3 = "cpuset1-256m", "cfs0.5-512m", "cpuset2-1g"
HOSTS = {"h1": "ssh://h1", "h2": "ssh://h2", "h3": "ansible://h3"}
KIND = {"docker": "docker", "docker-lxcfs": "docker-lxcfs"}      # hN-<kind> behaves like local <kind>

# h2's lxcfs runs without -l (no loadavg virtualization) and without --enable-cfs (CPU views
# follow the cpuset only, not a CFS quota): those cells flip from pass to fail.
H2_LXCFS = {("vis.loadavg", A1): "fail",
            ("vis.cpuinfo", A2): "fail", ("vis.proc-stat-cpus", A2): "fail", ("vis.cpu-online", A2): "fail"}


def expected():
    """{(check, target, allocation): outcome} for every host target."""
    out = {}
    for check, cells in LOCAL.items():
        for (kind, alloc), outcome in cells.items():
            for h in HOSTS:
                out[(check, f"{h}-{kind}", alloc)] = outcome
    for (check, alloc), outcome in H2_LXCFS.items():
        out[(check, "h2-docker-lxcfs", alloc)] = outcome
    return out


@pytest.fixture(scope="module")
def fleet(lab):
    res = cutover("lab", "up", "--hosts", "3", "--host-variant", "2:lxcfs-default",
                  "--host-variant", "3:ansible", timeout=300)
    assert res.returncode == 0, res.stderr
    yield lab
    cutover("lab", "up", "--hosts", "0", timeout=300, check=True)


@pytest.fixture(scope="module")
def run(fleet, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("fleet") / "out")
    res = cutover("run", "--host", ",".join(HOSTS), "--out", out, "-n", "auto",
                  "-k", "visibility or loadavg", timeout=900)
    assert res.returncode == 1, f"expected exit 1 (some checks fail):\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}"
    return load_results(out)


def test_run_complete_on_three_hosts_at_once(run):
    assert run["run"]["complete"] is True and run["run"]["leaks"] == []
    assert {r["host"] for r in run["results"]} == set(HOSTS.values())
    assert {t["host"] for t in run["run"]["targets"].values()} == set(HOSTS.values())


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_host_facts_collected_once_per_host(run, host):
    facts = run["run"]["hosts"][HOSTS[host]]
    assert "error" not in facts, facts
    assert facts["hostname"] == host                     # really inside the simulated host
    assert facts["connection"] == HOSTS[host]
    for key in ("kernel", "cgroup", "os", "cpus", "mem_kib", "lxcfs", "runc", "containerd", "dockerd"):
        assert facts.get(key), (key, facts)
    for name, tf in facts["targets"].items():
        assert tf["storage_driver"] == "overlay2" and tf["runtime_version"] and tf["live_restore"] is True, tf
    lxcfs = facts["targets"][f"{host}-docker-lxcfs"]["lxcfs_args"]
    assert ("--enable-cfs" in lxcfs.split()) == (host != "h2"), lxcfs


@pytest.mark.parametrize("check_id", sorted(LOCAL))
def test_cells_pinned_per_host(run, check_id):
    got = outcomes(run)
    want = {k: v for k, v in expected().items() if k[0] == check_id}
    wrong = {k: f"expected {v}, got {got.get(k)}" for k, v in want.items() if got.get(k) != v}
    assert not wrong, wrong


@pytest.mark.parametrize("check_id,alloc", sorted(H2_LXCFS))
def test_same_target_passes_on_one_host_and_fails_on_another(run, check_id, alloc):
    got = outcomes(run)
    assert got[(check_id, "h1-docker-lxcfs", alloc)] == "pass"
    assert got[(check_id, "h3-docker-lxcfs", alloc)] == "pass"
    assert got[(check_id, "h2-docker-lxcfs", alloc)] == "fail"
    rec = next(r for r in run["results"] if (r["check"], r["target"], r["allocation"]) ==
               (check_id, "h2-docker-lxcfs", alloc))
    assert "ssh://h2" in rec["message"] and rec["evidence"], rec


@pytest.fixture(scope="module")
def unreachable(fleet, tmp_path_factory):
    """h2's sshd stopped (by its pid file) and its ssh master closed: h2 is unreachable."""
    pid = int(open(os.path.join(fleet.root, "hosts", "h2", "run", "sshd.pid")).read())
    os.kill(pid, signal.SIGTERM)
    cfg = os.path.join(fleet.root, "fleet", "ssh_config")
    subprocess.run(["ssh", "-F", cfg, "-O", "exit", "h2"], capture_output=True, timeout=10)
    out = str(tmp_path_factory.mktemp("unreachable") / "out")
    try:
        res = cutover("run", "--host", "h1,h2", "--out", out, "-n", "auto", "-k", "meminfo or loadavg",
                      timeout=600)
    finally:
        cutover("lab", "up", timeout=300, check=True)       # restarts h2's sshd
    assert res.returncode == 1, res.stdout[-2000:]
    return load_results(out)


def test_unreachable_host_is_errors_naming_it(unreachable):
    h2 = [r for r in unreachable["results"] if r["host"] == "ssh://h2"]
    assert h2 and {r["outcome"] for r in h2} == {"error"}
    for r in h2:
        assert "ssh://h2" in r["message"] and "unreachable" in r["message"], r["message"]
    assert "error" in unreachable["run"]["hosts"]["ssh://h2"]


def test_other_host_finishes_with_real_outcomes(unreachable):
    got = outcomes(unreachable)
    want = {k: v for k, v in expected().items() if k[1].startswith("h1-") and k[0] in ("vis.meminfo", "vis.loadavg")}
    assert want and all(got.get(k) == v for k, v in want.items()), {k: (v, got.get(k)) for k, v in want.items()}
    # Every check h1 owed has its record; the only leak entries are h2's "could not check",
    # which keep the run marked incomplete (fail closed: h2 may hold leftovers).
    owed = {k for k in unreachable["run"]["collected"] if k.split("|")[1].startswith("h1-")}
    assert owed and owed <= {results.record_key(r) for r in unreachable["results"]}
    leaks = unreachable["run"]["leaks"]
    assert leaks and {l["target"] for l in leaks} <= {"h2-docker", "h2-docker-lxcfs"}
    assert all(l["container"] is None and "ssh://h2" in l["error"] for l in leaks), leaks
    assert unreachable["run"]["complete"] is False


@pytest.fixture(scope="module")
def died(fleet, tmp_path_factory):
    """h2 dies mid-run: once the run has containers on h2, h2's link goes down (no RST, no
    answer: what a controller sees of a host that lost power); it comes back after the run."""
    import time
    from cutover.lab.lab import Lab
    veth = Lab(fleet.root).fleet.hosts[1].veth
    out = str(tmp_path_factory.mktemp("died") / "out")
    env = dict(os.environ, CUTOVER_LAB=fleet.root)
    proc = subprocess.Popen([CUTOVER, "run",
                             "--host", "h1,h2", "--out", out, "-n", "auto", "-k", "visibility or loadavg"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    sock = os.path.join(fleet.root, "hosts", "h2", "run", "docker.sock")
    import docker
    client = docker.DockerClient(base_url=f"unix://{sock}", timeout=30)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not client.containers.list(filters={"label": "cutover.run"}):
            time.sleep(0.5)
        subprocess.run(["ip", "link", "set", veth, "down"], check=True)
        try:
            output, _ = proc.communicate(timeout=900)
        finally:
            subprocess.run(["ip", "link", "set", veth, "up"], check=True)
    finally:
        if proc.poll() is None:
            proc.kill()
        client.close()
    assert proc.returncode == 1, output[-3000:]
    return load_results(out)


def test_host_dying_mid_run_is_errors_naming_it(died):
    h2 = [r for r in died["results"] if r["host"] == "ssh://h2"]
    errors = [r for r in h2 if r["outcome"] == "error"]
    assert errors, {r["outcome"] for r in h2}
    assert all("h2" in r["message"] for r in errors), [r["message"] for r in errors]
    # Nothing owed is silently missing: every h2 check has a record.
    owed = {k for k in died["run"]["collected"] if k.split("|")[1].startswith("h2-")}
    assert owed == {results.record_key(r) for r in h2}


def test_other_host_finishes_while_one_dies(died):
    got = outcomes(died)
    want = {k: v for k, v in expected().items() if k[1].startswith("h1-")}
    wrong = {k: (v, got.get(k)) for k, v in want.items() if got.get(k) != v}
    assert not wrong, wrong


def test_shards_merge_into_one_gate_decision(fleet, tmp_path):
    runs = []
    for k in (1, 2):
        out = str(tmp_path / f"shard{k}")
        res = cutover("run", "--host", ",".join(HOSTS), "--shard", f"{k}/2", "--out", out, "-n", "auto",
                      "-k", "visibility or loadavg", "--allocations", "a:cpuset=0,mem=256m", timeout=600)
        assert res.returncode in (0, 1), res.stderr[-2000:]
        runs.append(out)
    shard_hosts = [{r["host"] for r in load_results(o)["results"]} for o in runs]
    assert not shard_hosts[0] & shard_hosts[1] and shard_hosts[0] | shard_hosts[1] == set(HOSTS.values())
    res = cutover("gate", *runs, "--out", str(tmp_path / "gate"), timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr          # plain docker fails visibility
    import json
    gate = json.load(open(tmp_path / "gate" / "gate.json"))
    assert set(gate["hosts"]) == set(HOSTS.values())
    assert gate["batch"]["hosts"] == 3
