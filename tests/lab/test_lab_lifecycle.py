"""The lab itself: idempotent up, honest status, and a clean machine after down, even after a crash.

Uses a lab directory of its own, so it never disturbs the session's main lab.
"""
import os
import signal
import time

import pytest

from cutover.lab import cgroups, proc
from cutover.lab.lab import Lab
from tests.conftest import cutover

ROOT = "/var/lib/cutover-lab-selftest"


def leftovers(lab):
    """Everything of this lab still on the machine: processes, mounts, cgroups, files."""
    procs = [p for p in os.listdir("/proc") if p.isdigit() and proc.alive(int(p))
             and lab.root + "/" in proc.cmdline(int(p))]
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split()[4].startswith(lab.root):
                mounts.append(line.split()[4])
    cgs = [h for h in cgroups.hierarchies() if os.path.exists(os.path.join(h, lab.cgroup_name))]
    return {"processes": procs, "mounts": mounts, "cgroups": cgs, "dir": os.path.exists(lab.root)}


CLEAN = {"processes": [], "mounts": [], "cgroups": [], "dir": False}


def machine_docker_state():
    """What the lab must never touch: /etc/docker's files, and whether the default paths exist."""
    files = {}
    for top, _, names in os.walk("/etc/docker"):
        for n in names:
            p = os.path.join(top, n)
            files[p] = os.stat(p).st_mtime_ns
    return {"/etc/docker": files, **{p: os.path.exists(p) for p in
            ("/var/lib/docker", "/run/docker.sock", "/var/run/docker.sock", "/sys/class/net/docker0")}}


@pytest.fixture
def own_lab():
    lab = Lab(ROOT)
    yield lab
    cutover("lab", "down", lab=ROOT, timeout=120)
    assert leftovers(lab) == CLEAN


def test_up_twice_status_down_clean(own_lab):
    before = machine_docker_state()
    t0 = time.monotonic()
    cutover("lab", "up", lab=ROOT, check=True, timeout=120)
    first = time.monotonic() - t0
    pids = {d["name"]: d["pid"] for d in own_lab.status()["daemons"]}
    # LXC has no daemon (cutover/lab/lxc.py): its lxcpath is "running" without a pid.
    assert all(p for n, p in pids.items() if n != "lxc"), pids
    assert all(d["running"] for d in own_lab.status()["daemons"])
    res = cutover("lab", "up", lab=ROOT, check=True, timeout=120)
    assert "already running" in res.stderr
    assert {d["name"]: d["pid"] for d in own_lab.status()["daemons"]} == pids, "a second up restarted daemons"
    st = cutover("lab", "status", lab=ROOT)
    assert st.returncode == 0 and "running pid" in st.stdout
    # Sockets are private.
    assert oct(os.stat(own_lab.run_dir).st_mode & 0o777) == "0o700"
    assert oct(os.stat(own_lab.docker.socket).st_mode & 0o777) == "0o600"
    assert first < 60, f"lab up took {first:.1f}s"
    cutover("lab", "down", lab=ROOT, check=True, timeout=120)
    assert leftovers(own_lab) == CLEAN
    # e.g. dockerd 20.10 writes /etc/docker/key.json unless told where its trust key lives.
    assert machine_docker_state() == before, "the lab touched the machine's own docker paths"
    st = cutover("lab", "status", lab=ROOT)
    assert st.returncode == 1 and "stopped" in st.stdout


def test_down_after_crash_sweeps_everything(own_lab):
    """SIGKILL the daemons (a crash): down still removes containers' processes and mounts."""
    cutover("lab", "up", lab=ROOT, check=True, timeout=120)
    import docker
    c = docker.DockerClient(base_url=own_lab.docker.endpoint, timeout=30)
    ct = c.containers.run("cutover/probe:1", ["sleep", "600"], detach=True, labels={"cutover": "1"})
    shell_pid = c.api.inspect_container(ct.id)["State"]["Pid"]
    for d in (own_lab.docker, own_lab.lxcfs):
        os.kill(d.pid(), signal.SIGKILL)
    time.sleep(1)
    assert proc.alive(shell_pid), "live-restore container should outlive a killed dockerd"
    cutover("lab", "down", lab=ROOT, check=True, timeout=120)
    assert not proc.alive(shell_pid), "down left the container's process running"
    assert leftovers(own_lab) == CLEAN


def test_down_never_touches_foreign_processes(own_lab, tmp_path):
    """A process whose pid sits in the lab's pid file but is not the lab's survives down."""
    cutover("lab", "up", lab=ROOT, check=True, timeout=120)
    import subprocess
    foreign = subprocess.Popen(["sleep", "300"])
    try:
        cutover("lab", "down", lab=ROOT, check=True, timeout=120)
        os.makedirs(own_lab.run_dir, exist_ok=True)
        with open(own_lab.docker.pidfile, "w") as f:   # a stale pid file pointing elsewhere
            f.write(str(foreign.pid))
        cutover("lab", "down", lab=ROOT, check=True, timeout=120)
        assert foreign.poll() is None, "down signalled a process it did not start"
    finally:
        foreign.kill()
        foreign.wait()
