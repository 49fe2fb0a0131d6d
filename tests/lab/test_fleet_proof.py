"""Proof that Cutover certifies a fleet: simulated hosts, for real, over ssh and Ansible.

`lab up --hosts 3 --host-variant 2:lxcfs-default --host-variant 3:ansible` makes three hosts
(own namespaces, sshd, dockerd, lxcfs): h1 as the lab's own, h2 running lxcfs with Debian's
default options (no -l, no --enable-cfs, what a site gets from the package), h3 reached through
the Ansible inventory alone (its connection data; no ssh config). One `cutover run -n auto`
certifies all three at the same time, and:
- every visibility cell of h1 and h3 is what the local lab's docker / docker-lxcfs give
  (tests/lab/test_visibility_proof.py pins those), reached over ssh and Ansible;
- each target's checks ran on one xdist worker, and the three hosts were certified at once
  (tests/lab/schedprobe.py logs where and when each test ran);
- the same target definition passes on h1 and fails on h2 where only the host's lxcfs options
  differ: vis.loadavg, and the CPU views under a CFS quota; the host facts show why;
- one target on `ansible://cutover_lab` (a group), in a targets file that names only the
  inventory, becomes a target per host of the group, each certified through the inventory;
  under -n 2 each host's checks ran on one worker and two hosts ran at the same time;
- a host whose sshd is stopped is reported as errors naming the host, for its own checks only,
  and as the run's one incomplete host, while the other host finishes with its real outcomes;
  a gate whose batch rule allows one uncertified host of two certifies h1 and not h2; a host
  that dies mid-run (its link goes down once the run has containers on it) likewise;
- shards of the fleet (--shard K/N) merge into one gate decision over every host;
- `lab up --hosts 0` and `lab down` leave none of the hosts' processes, network and mount
  namespaces, veths, bridge or mounts.
"""
import json
import os
import signal
import subprocess

import pytest
import yaml

from cutover import results
from tests.conftest import CUTOVER, cutover, load_results, outcomes
from tests.lab import schedprobe
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


def scheduled_run(tmp, *args, timeout=900):
    """cutover run with tests/lab/schedprobe.py logging where and when each test ran."""
    out, log = str(tmp / "out"), str(tmp / "schedule.jsonl")
    os.environ["CUTOVER_SCHEDULE_LOG"] = log
    try:
        res = cutover("run", "--out", out, *args, "-p", "tests.lab.schedprobe", timeout=timeout)
    finally:
        del os.environ["CUTOVER_SCHEDULE_LOG"]
    return res, out, (schedprobe.read(log) if os.path.exists(log) else [])


@pytest.fixture(scope="module")
def scheduled(fleet, tmp_path_factory):
    res, out, log = scheduled_run(tmp_path_factory.mktemp("fleet"), "--host", ",".join(HOSTS), "-n", "auto",
                                  "-k", "visibility or loadavg")
    assert res.returncode == 1, f"expected exit 1 (some checks fail):\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}"
    return load_results(out), log, res.stdout


@pytest.fixture(scope="module")
def run(scheduled):
    return scheduled[0]


def test_run_complete_on_three_hosts_at_once(run):
    assert run["run"]["complete"] is True and run["run"]["leaks"] == []
    assert run["run"]["incomplete_hosts"] == {}
    assert {r["host"] for r in run["results"]} == set(HOSTS.values())
    assert {t["host"] for t in run["run"]["targets"].values()} == set(HOSTS.values())


def test_each_target_on_one_worker_and_every_host_at_once(scheduled):
    data, log, stdout = scheduled
    assert "6 workers for 3 host(s), all checks of a target on one worker" in stdout, stdout[:2000]
    assert {e["nodeid"] for e in log} == {r["nodeid"] for r in data["results"]}
    per = schedprobe.workers_per_target(log)
    assert len(per) == 6 and all(len(w) == 1 for w in per.values()), per
    assert len({w for ws in per.values() for w in ws}) == 6              # one worker per target
    assert schedprobe.concurrent(log, "host") == []                       # every two hosts at once


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


# The checks docker-lxcfs passes under every allocation (LOCAL): blocking in the batch policy.
LXCFS_PASSES = sorted(c for c, cells in LOCAL.items()
                      if all(v == "pass" for (kind, _), v in cells.items() if kind == "docker-lxcfs"))


@pytest.fixture(scope="module")
def unreachable(fleet, tmp_path_factory):
    """h2's sshd stopped (by its pid file) and its ssh master closed: h2 is unreachable."""
    pid = int(open(os.path.join(fleet.root, "hosts", "h2", "run", "sshd.pid")).read())
    os.kill(pid, signal.SIGTERM)
    cfg = os.path.join(fleet.root, "fleet", "ssh_config")
    subprocess.run(["ssh", "-F", cfg, "-O", "exit", "h2"], capture_output=True, timeout=10)
    tmp = tmp_path_factory.mktemp("unreachable")
    out = str(tmp / "out")
    try:
        res = cutover("run", "--target", "h1-docker-lxcfs,h2-docker-lxcfs", "--out", out, "-n", "auto",
                      "-k", "visibility or loadavg", timeout=600)
    finally:
        cutover("lab", "up", timeout=300, check=True)       # restarts h2's sshd
    assert res.returncode == 1, res.stdout[-2000:]
    return load_results(out), out, tmp


def test_unreachable_host_is_errors_naming_it(unreachable):
    data = unreachable[0]
    h2 = [r for r in data["results"] if r["host"] == "ssh://h2"]
    assert h2 and {r["outcome"] for r in h2} == {"error"}
    for r in h2:
        assert "ssh://h2" in r["message"] and "unreachable" in r["message"], r["message"]
    assert "error" in data["run"]["hosts"]["ssh://h2"]


def test_other_host_finishes_with_real_outcomes(unreachable):
    data = unreachable[0]
    got = outcomes(data)
    want = {k: v for k, v in expected().items() if k[1] == "h1-docker-lxcfs"}
    assert want and all(got.get(k) == v for k, v in want.items()), {k: (v, got.get(k)) for k, v in want.items()}
    # Every check h1 owed has its record. h2 could not be checked for leftovers at the end:
    # that is recorded for h2 alone (run.incomplete_hosts), and the run itself completed.
    owed = {k for k in data["run"]["collected"] if k.split("|")[1].startswith("h1-")}
    assert owed and owed <= {results.record_key(r) for r in data["results"]}
    assert data["run"]["complete"] is True and data["run"]["leaks"] == []
    assert set(data["run"]["incomplete_hosts"]) == {"ssh://h2"}
    assert "ssh://h2" in data["run"]["incomplete_hosts"]["ssh://h2"], data["run"]["incomplete_hosts"]


@pytest.mark.parametrize("ratio,exit_code", [(0.5, 0), (1.0, 1)])
def test_batch_rule_certifies_the_reachable_host_only(unreachable, ratio, exit_code):
    _, out, tmp = unreachable
    policy = tmp / f"batch-{ratio}.yaml"
    policy.write_text(yaml.safe_dump({"default": "advisory", "blocking": LXCFS_PASSES,
                                      "batch": {"min_certified_ratio": ratio}}))
    gate_dir = tmp / f"gate-{ratio}"
    res = cutover("gate", out, "--policy", str(policy), "--out", str(gate_dir), timeout=120)
    assert res.returncode == exit_code, res.stdout + res.stderr
    gate = json.load(open(gate_dir / "gate.json"))
    assert gate["hosts"]["ssh://h1"]["certified"] is True, gate["hosts"]["ssh://h1"]
    assert gate["hosts"]["ssh://h2"]["certified"] is False
    kinds = {r["kind"] for r in gate["reasons"] if r.get("host") == "ssh://h2"}
    assert "host-incomplete" in kinds, kinds
    assert not [r for r in gate["reasons"] if r.get("host") == "ssh://h1" and r["kind"] not in ("advisory", "note")]
    assert ({r["kind"] for r in gate["reasons"] if r.get("scope") == "batch"} == {"batch-ratio"}) == (ratio == 1.0)
    assert (tmp / f"gate-{ratio}" / "certificates").is_dir()


@pytest.fixture(scope="module")
def group(fleet, tmp_path_factory):
    """One target on the inventory group of every lab host, in a file that names no ssh config."""
    tmp = tmp_path_factory.mktemp("group")
    with open(fleet.targets_path) as f:
        lab_targets = yaml.safe_load(f)["targets"]
    tfile = tmp / "targets.yaml"
    tfile.write_text(yaml.safe_dump({
        "ansible_inventory": os.path.join(fleet.root, "fleet", "inventory.yaml"),
        "targets": {"rack-lxcfs": {"host": "ansible://cutover_lab", "driver": "docker",
                                   "endpoint": "ssh:///var/run/docker.sock",
                                   "lxcfs": lab_targets["h1-docker-lxcfs"]["lxcfs"],
                                   "image": lab_targets["h1-docker"]["image"]}}}))
    res, out, log = scheduled_run(tmp, "--targets", str(tfile), "-n", "2", "-k", "meminfo", timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    return load_results(out), log, res.stdout


def test_a_group_is_certified_host_by_host_through_the_inventory(group):
    data, _, _ = group
    assert data["run"]["complete"] is True
    hosts = {f"ansible://h{i}" for i in (1, 2, 3)}
    assert {t: v["host"] for t, v in data["run"]["targets"].items()} == {f"rack-lxcfs@h{i}": f"ansible://h{i}"
                                                                         for i in (1, 2, 3)}
    assert {r["outcome"] for r in data["results"]} == {"pass"} and len(data["results"]) == 9
    for url in hosts:
        facts = data["run"]["hosts"][url]
        assert facts["hostname"] == url[-2:] and facts["connection"] == url, facts
        assert facts["targets"][f"rack-lxcfs@{url[-2:]}"]["live_restore"] is True


def test_under_two_workers_a_host_stays_on_one_and_two_hosts_run_at_once(group):
    _, log, stdout = group
    assert "2 workers for 3 host(s), all checks of a host on one worker" in stdout, stdout[:2000]
    per_host = {}
    for e in log:
        per_host.setdefault(e["host"], set()).add(e["worker"])
    assert len(per_host) == 3 and all(len(w) == 1 for w in per_host.values()), per_host
    spans = {h: [(e["start"], e["end"]) for e in log if e["host"] == h] for h in per_host}
    at_once = [(a, b) for a in spans for b in spans if a < b and
               any(s1 < e2 and s2 < e1 for s1, e1 in spans[a] for s2, e2 in spans[b])]
    assert at_once, spans


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
    gate = json.load(open(tmp_path / "gate" / "gate.json"))
    assert set(gate["hosts"]) == set(HOSTS.values())
    assert gate["batch"]["hosts"] == 3


# -- nothing of the hosts is left behind (runs last: it removes the hosts) ----------------------

def traces(root):
    """What the lab's simulated hosts leave on this machine, by kind; empty when they are gone."""
    from cutover.lab.lab import Lab
    hosts_dir = os.path.join(root, "hosts") + "/"
    fleet_dir = os.path.join(root, "fleet") + "/"          # ssh masters (ControlPath) to the hosts
    prefix = f"cvr{Lab(root).fleet.lab_id}"
    out = {"processes": [], "namespaces": set(), "links": [], "mounts": [], "dirs": []}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # holders (cutover-host:<lab>/hosts/hN), sshd, lxcfs, dockerd, containerd; ssh masters
        if hosts_dir in cmd or (cmd.startswith("ssh ") and fleet_dir in cmd):
            out["processes"].append(f"{pid} {cmd[:120]}")
            for ns in ("net", "mnt", "uts"):
                try:
                    out["namespaces"].add(os.readlink(f"/proc/{pid}/ns/{ns}"))
                except OSError:
                    pass
    ip = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, timeout=30).stdout
    out["links"] = [l.split(":")[1].strip().split("@")[0] for l in ip.splitlines()
                    if l.split(":")[1].strip().startswith(prefix)]
    with open("/proc/self/mountinfo") as f:
        out["mounts"] = [l.split()[4] for l in f if l.split()[4].startswith(hosts_dir)]
    if os.path.isdir(hosts_dir):
        out["dirs"] = sorted(os.listdir(hosts_dir))
    return out


def _starttime(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def members(namespaces):
    """(pid, start time) of every process in one of these namespaces, e.g. a host's containers
    and shims, whose command lines do not name the lab. Namespace inode numbers are reused
    once a namespace is gone, so they are compared only while the hosts are up."""
    out = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if any(os.readlink(f"/proc/{pid}/ns/{ns}") in namespaces for ns in ("net", "mnt", "uts")):
                out.add((pid, _starttime(pid)))
        except OSError:
            continue
    return out


def still_running(procs):
    """{pid: 'cmdline [net:[..] mnt:[..] uts:[..]]'} of those still alive, to say what was left."""
    from cutover.lab import proc
    left = {}
    for pid, start in procs:
        try:
            # A zombie has exited and left its namespaces; PID 1 here reaps orphans slowly.
            if _starttime(pid) == start and proc.alive(pid):
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")[:120]
                left[pid] = cmd + " [" + " ".join(os.readlink(f"/proc/{pid}/ns/{ns}") for ns in ("net", "mnt", "uts")) + "]"
        except OSError:
            pass
    return left


def machine_namespaces():
    """This process's own namespaces (the machine's): never a host's."""
    return {os.readlink(f"/proc/self/ns/{ns}") for ns in ("net", "mnt", "uts")}


def assert_gone(root, inside):
    after = traces(root)
    assert not any(after.values()), after
    assert still_running(inside) == {}


def test_hosts_0_then_lab_down_leave_no_trace(fleet):
    before = traces(fleet.root)
    # The detector sees every kind of trace while the three hosts are up.
    assert len([p for p in before["processes"] if "cutover-host:" in p]) == 3, before["processes"]
    assert all(any(f"/hosts/h{i}/" in p for p in before["processes"]) for i in (1, 2, 3))
    assert len(before["links"]) == 4, before["links"]              # the bridge and three veths
    host_ns = before["namespaces"] - machine_namespaces()
    assert len(host_ns) == 9, host_ns                               # net, mnt, uts of each host
    inside = members(host_ns)
    assert len(inside) >= 3 * 5, inside                # holder, sshd, lxcfs, dockerd, containerd each
    assert before["dirs"] == ["h1", "h2", "h3"]
    cutover("lab", "up", "--hosts", "0", timeout=300, check=True)
    assert_gone(fleet.root, inside)
    # Once more with one host, removed by `lab down` with the rest of the lab this time.
    cutover("lab", "up", "--hosts", "1", timeout=300, check=True)
    again = traces(fleet.root)
    assert any("cutover-host:" in p for p in again["processes"]) and len(again["links"]) == 2, again
    inside = members(again["namespaces"] - machine_namespaces())
    assert len(inside) >= 5, inside
    try:
        cutover("lab", "down", timeout=300, check=True)
        assert_gone(fleet.root, inside)
        assert not os.path.exists(fleet.root)
    finally:
        cutover("lab", "up", timeout=300, check=True)     # the session's lab, for the modules after
