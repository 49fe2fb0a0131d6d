"""What a run leaves behind, for real: a leaked labelled volume and network are found, named
by the test that made them and removed, while an unlabelled volume survives; a dead run's
objects are swept and its record is kept until the sweep reached every endpoint; and a host
whose runtime cannot be reached at the end costs only its own targets their certificate."""
import json
import os
import secrets
import subprocess

import docker
import pytest
import yaml

from cutover import runs
from tests.conftest import CUTOVER, REPO, load_results

GHOST_SSH = """Host ghost
  HostName 127.0.0.1
  Port 9
  BatchMode yes
  ConnectTimeout 3
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
"""


@pytest.fixture
def state(tmp_path, monkeypatch):
    """A run-state directory of this test's own, so no other run sweeps (or forgets) its runs."""
    d = tmp_path / "state"
    d.mkdir()
    monkeypatch.setattr(runs, "STATE", str(d))
    return str(d)


@pytest.fixture
def client(lab):
    c = docker.DockerClient(base_url=lab.docker.endpoint, timeout=30)
    yield c
    c.close()


def targets_file(lab, tmp_path, names, ghost=False):
    with open(lab.targets_path) as f:
        data = yaml.safe_load(f)
    data.pop("pairs", None)
    data["targets"] = {n: data["targets"][n] for n in names}
    if ghost:
        (tmp_path / "ssh_config").write_text(GHOST_SSH)
        data["ssh_config"] = str(tmp_path / "ssh_config")
        data["targets"]["ghost-docker"] = {"host": "ssh://ghost", "driver": "docker", "endpoint": "ssh://ghost",
                                           "image": "cutover/probe:1",
                                           "description": "a host that cannot be reached"}
    path = tmp_path / "targets.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def run(tmp_path, state, *args, name="out", timeout=600):
    env = dict(os.environ, CUTOVER_STATE=state, CUTOVER_LEAK_TARGET="docker")
    out = str(tmp_path / name)
    res = subprocess.run([CUTOVER, "run", "--out", out, *args], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=timeout)
    return res, out


def names(items):
    return {i.name for i in items}


def test_leaked_volume_and_network_are_named_and_removed_unlabelled_volume_survives(lab, tmp_path, state, client):
    bystander = client.volumes.create(name=f"cutover-selftest-bystander-{secrets.token_hex(3)}")  # not ours
    try:
        res, out = run(tmp_path, state, "--targets", targets_file(lab, tmp_path, ["docker"]), "-k", "test_meminfo",
                       "-p", "tests.lab.leaky_volume_plugin")
        assert res.returncode == 1, res.stdout[-2000:] + res.stderr[-2000:]
        data = load_results(out)
        run_id = data["run"]["id"]
        leaks = {(l["kind"], l["id"], l["test"]) for l in data["run"]["leaks"]}
        assert leaks == {("volume", f"cutover-leak-{run_id}", "leaky-volume-plugin"),
                         ("network", f"cutover-leak-{run_id}", "leaky-volume-plugin")}, data["run"]["leaks"]
        assert data["run"]["complete"] is False and data["run"]["incomplete_hosts"] == {}
        assert "LEAK: volume" in res.stdout and "leaky-volume-plugin" in res.stdout
        assert f"cutover-leak-{run_id}" not in names(client.volumes.list()), "the leak check must remove it"
        assert f"cutover-leak-{run_id}" not in names(client.networks.list())
        assert bystander.name in names(client.volumes.list()), "the harness removed a volume it did not create"
        # The gate refuses the run: a leak makes it incomplete.
        g = subprocess.run([CUTOVER, "gate", out], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert g.returncode == 1 and "leaked object" in g.stdout, g.stdout
    finally:
        bystander.remove(force=True)


@pytest.fixture
def dead_run(state, client):
    """A run of this controller that died: its lock is free, its record and its volume remain."""
    run_id = f"selftest-dead-{secrets.token_hex(3)}"
    runs.release(run_id, runs.hold(run_id), forget=False)
    vol = client.volumes.create(name=f"cutover-{run_id}", labels={"cutover": "1", "cutover.run": run_id,
                                                                  "cutover.test": "test_that_died"})
    assert run_id in runs.dead_runs()
    yield run_id
    try:
        vol.remove(force=True)
    except docker.errors.NotFound:
        pass


def test_one_unreachable_host_costs_only_its_own_certificate(lab, tmp_path, state, client, dead_run):
    tfile = targets_file(lab, tmp_path, ["docker-lxcfs"], ghost=True)
    res, out = run(tmp_path, state, "--targets", tfile, "-n", "2", "-k", "visibility or loadavg")
    assert res.returncode == 1, res.stdout[-2000:] + res.stderr[-2000:]
    # The dead run's volume is swept where it could be, but its record is kept: ghost's
    # runtime could not be asked whether it holds some of that run's objects too.
    assert f"cutover-{dead_run}" not in names(client.volumes.list())
    assert f"removed 1 object(s) left by run {dead_run}" in res.stdout and "test_that_died" in res.stdout
    assert dead_run in runs.dead_runs() and f"could not sweep run {dead_run}" in res.stdout

    data = load_results(out)
    assert data["run"]["complete"] is True, "one unreachable host must not make the whole run incomplete"
    assert list(data["run"]["incomplete_hosts"]) == ["ssh://ghost"], data["run"]["incomplete_hosts"]
    assert "ghost-docker" in data["run"]["incomplete_hosts"]["ssh://ghost"]

    def gate(*args):
        g = subprocess.run([CUTOVER, "gate", out, "--out", str(tmp_path / "gate"), *args], cwd=REPO,
                           capture_output=True, text=True, timeout=120)
        return g.returncode, json.load(open(tmp_path / "gate" / "gate.json"))

    rc, g = gate()
    assert rc == 1
    assert g["hosts"]["local://"]["certified"] is True and g["hosts"]["ssh://ghost"]["certified"] is False
    assert {r["target"] for r in g["reasons"] if r["kind"] == "host-incomplete"} == {"ghost-docker"}
    cert = json.load(open(tmp_path / "gate" / "certificates" / "local.json"))
    assert cert["verdict"] == "PASS" and cert["reasons"] == []
    # A batch rule absorbs the dead host.
    policy = tmp_path / "half.yaml"
    policy.write_text("advisory: ['severity:minor', 'vis.sysinfo-memory', 'vis.nproc']\n"
                      "batch: {min_certified_ratio: 0.5}\n")
    rc, g = gate("--policy", str(policy))
    assert rc == 0 and g["verdict"] == "PASS" and g["batch"]["certified"] == 1

    # With the ghost gone from the targets, the next run sweeps the dead run fully and forgets it.
    res, _ = run(tmp_path, state, "--targets", targets_file(lab, tmp_path, ["docker"]), "-k", "test_meminfo",
                 name="next")
    assert res.returncode == 1, res.stdout[-2000:]
    assert dead_run not in runs.dead_runs()
