"""The LXC driver on the real lab (lxc-t4), and `lab down` of an LXC lab after a crash.

Driver-level: everything the suites ask of a runtime works on LXC, labels and cleanup
included; a disk quota gives a loop ext4 root whose `df` is (about) the quota and which fills
with ENOSPC. Lab-level: down destroys every container under the lab's lxcpath, whatever its
state, and releases its loop devices, even when monitors were killed.
"""
import dataclasses
import os
import secrets
import signal
import subprocess
import time

import pytest

from cutover import allocations, probe_image
from cutover.drivers import driver_for
from cutover.drivers.base import ContainerSpec, RuntimeFailure, Unsupported
from cutover.errors import CutoverError
from cutover.lab import proc
from cutover.lab.lab import Lab
from cutover.lab.lxc import backing_files, loops_backed_by
from tests.conftest import cutover
from tests.lab.test_lab_lifecycle import leftovers

DOWN_ROOT = "/var/lib/cutover-lab-lxcdown"


@pytest.fixture(scope="module")
def lxc(lab):
    d = driver_for(lab.targets()["lxc-t4"], timeout=30)
    d.facts()
    run = "selftest-" + secrets.token_hex(3)
    yield d, {"cutover": "1", "cutover.run": run, "cutover.test": "tests/lab/test_lxc_driver.py"}
    for cid in d.list_containers({"cutover.run": run}):
        d.remove(cid)


def spec(labels, alloc="t:cpuset=0,mem=128m", **kw):
    kw.setdefault("command", ["sleep", "600"])
    return ContainerSpec(image=probe_image.TAG, allocation=allocations.parse_spec(alloc)[0],
                         labels=labels, **kw)


def loops_under(path):
    return loops_backed_by(backing_files(path))


def test_container_lifecycle(lxc):
    d, labels = lxc
    cid = d.create(spec(labels, env={"GREETING": "hello world"}, user="app",
                        command=["sh", "-c", "echo started as $(id -un); exec sleep 600"]))
    assert cid.startswith("cutover-") and cid.endswith(labels["cutover.run"])
    assert d.inspect(cid).status == "created"
    assert d.list_containers({"cutover.run": labels["cutover.run"]}) == [cid]
    d.start(cid)
    st = d.inspect(cid)
    assert st.status == "running" and proc.alive(st.pid)
    assert abs(time.time() - st.started_epoch) < 120 and st.raw["Config"]["Labels"] == labels
    res = d.exec(cid, ["sh", "-c", "echo $GREETING; id -u; exit 3"])
    assert (res.exit_code, res.stdout.split()) == (3, ["hello", "world", "1000"])
    assert d.exec(cid, ["id", "-u"], user="root").stdout.strip() == "0"
    assert "started as app" in d.logs(cid)
    d.pause(cid)
    assert d.inspect(cid).status == "paused"
    with pytest.raises(RuntimeFailure, match="not running"):
        d.exec(cid, ["true"])
    d.unpause(cid)
    d.stop(cid, grace=1)          # sleep as PID 1 ignores SIGTERM: SIGKILL after the grace
    assert d.inspect(cid).status == "exited" and not proc.alive(st.pid)
    d.remove(cid)
    assert d.list_containers({"cutover.run": labels["cutover.run"]}) == []
    with pytest.raises(RuntimeFailure, match="not found"):
        d.inspect(cid)
    d.remove(cid)                 # removing what is gone is no error


def test_init_forwards_signals(lxc):
    d, labels = lxc
    cid = d.run(spec(labels, init=True))
    try:
        assert "init" in d.read_file(cid, "/proc/1/cmdline")
        d.kill(cid, "TERM")       # lxc-init passes it on to sleep, which ends, and so does init
        st = d.wait_exit(cid, timeout=30)
        assert st is not None and st.status == "exited"
    finally:
        d.remove(cid)


def test_disk_quota_is_a_loop_ext4_root(lxc, lab):
    d, labels = lxc
    cid = d.run(spec(labels, alloc="q:cpuset=0,mem=128m,disk=64m"))
    try:
        assert loops_under(f"{lab.lxc.lxcpath}/{cid}")
        size_kib = int(d.exec(cid, ["sh", "-c", "df -k / | tail -1"]).stdout.split()[1])
        # ext4's journal and inode tables take their share of a small file system.
        assert 0.8 * 65536 <= size_kib <= 65536, size_kib
        res = d.exec(cid, ["dd", "if=/dev/zero", "of=/fill", "bs=1M", "count=100"])
        assert res.exit_code != 0 and "No space left on device" in res.stderr, res.evidence()
        loops = loops_backed_by(backing_files(f"{lab.lxc.lxcpath}/{cid}"))
    finally:
        d.remove(cid)
    attached = loops_backed_by_name(loops)
    assert not attached, f"{attached} still attached after remove"


def loops_backed_by_name(names):
    out = subprocess.run(["losetup", "-n", "-O", "NAME", "--list"], capture_output=True, text=True).stdout
    return [n for n in out.split() if n in names]


def test_what_lxc_cannot_do_is_unsupported(lxc):
    d, labels = lxc
    with pytest.raises(Unsupported, match="restart"):
        d.create(spec(labels, restart="always"))
    ctx = probe_image.context_tar(dockerfile="FROM scratch\nCOPY rootfs/ /\nRUN echo no\n")
    with pytest.raises(Unsupported, match="cannot build images"):
        d.build_image(ctx, "cutover/other:1")
    with pytest.raises(Unsupported, match="daemon.stop"):
        d.daemon("stop")


def test_bad_targets_are_one_line_errors(lab):
    t = lab.targets()["lxc-t4"]
    with pytest.raises(CutoverError, match="unknown option 'network'"):
        driver_for(dataclasses.replace(t, options={"network": "host"}))
    with pytest.raises(CutoverError, match="must be lxc:///"):
        driver_for(dataclasses.replace(t, endpoint="unix:///x.sock"))
    with pytest.raises(CutoverError, match="does not exist"):
        driver_for(dataclasses.replace(t, endpoint="lxc:///nonexistent/lxcpath")).facts()


def test_down_destroys_every_container_even_after_a_crash():
    lab = Lab(DOWN_ROOT)
    try:
        cutover("lab", "up", lab=DOWN_ROOT, check=True, timeout=180)
        d = driver_for(lab.targets()["lxc-t4"], timeout=30)
        labels = {"cutover": "1", "cutover.run": "crashed"}
        running = d.run(spec(labels, alloc="q:cpuset=0,mem=128m,disk=32m"))
        frozen = d.run(spec(labels))
        d.pause(frozen)
        orphan = d.run(spec(labels))
        pids = [d.inspect(c).pid for c in (running, frozen, orphan)]
        # A monitor killed (its container dies with it and leaves its cgroups behind), and a
        # loop device an interrupted lxc-create would have left attached.
        monitor = next(int(p) for p in os.listdir("/proc") if p.isdigit()
                       and proc.cmdline(int(p)).startswith(f"[lxc monitor] {lab.lxc.lxcpath} {orphan}"))
        os.kill(monitor, signal.SIGKILL)
        stray = os.path.join(lab.lxc.lxcpath, "stray.img")
        subprocess.run(["truncate", "-s", "8M", stray], check=True)
        subprocess.run(["losetup", "-f", stray], check=True)
        stray_loops = loops_under(lab.lxc.lxcpath)
        assert len(stray_loops) == 2, stray_loops       # the stray file and running's root
        res = cutover("lab", "down", lab=DOWN_ROOT, check=True, timeout=180)
        assert "destroyed 3 container(s)" in res.stderr and "detached" in res.stderr, res.stderr
        assert not any(proc.alive(p) for p in pids)
        assert not loops_backed_by_name(stray_loops)
        assert leftovers(lab) == {"processes": [], "mounts": [], "cgroups": [], "dir": False}
    finally:
        cutover("lab", "down", lab=DOWN_ROOT, timeout=180)
