"""The LXC driver's pure parts: the container config it writes, users, signals, names."""
import pytest

from cutover import allocations
from cutover.drivers.base import ContainerSpec, RuntimeFailure
from cutover.drivers.lxc import container_config, resolve_user, safe_ref, signal_name

P = "/lab/lxc"


def conf(alloc=None, **kw):
    a = allocations.parse_spec(f"a:{alloc}")[0] if alloc else None
    spec = ContainerSpec(image="cutover/probe:1", command=["sleep", "1"], allocation=a,
                         **{k: v for k, v in kw.items() if k in ("env", "volumes", "stop_signal")})
    extra = {k: v for k, v in kw.items() if k not in ("env", "volumes", "stop_signal")}
    return container_config("c1", P, spec, **extra).splitlines()


def test_allocation_becomes_v1_cgroup_limits_without_extra_swap():
    lines = conf("cpuset=0,mem=256m,pids=100")
    mem = lines.index("lxc.cgroup.memory.limit_in_bytes = 268435456")
    # memsw must follow memory: the kernel refuses memsw < memory.
    assert lines[mem + 1] == "lxc.cgroup.memory.memsw.limit_in_bytes = 268435456"
    assert "lxc.cgroup.cpuset.cpus = 0" in lines and "lxc.cgroup.pids.max = 100" in lines
    assert not any("cfs_quota" in l for l in lines)
    cfs = conf("cpus=0.5,mem=512m")
    assert cfs.index("lxc.cgroup.cpu.cfs_period_us = 100000") < cfs.index("lxc.cgroup.cpu.cfs_quota_us = 50000")
    assert not any("cpuset" in l for l in cfs)
    assert not any("memsw" in l for l in conf("mem=256m", memsw=False))


def test_allocation_on_cgroup_v2():
    lines = conf("cpus=1.5,cpuset=0-1,mem=1g", cgroup_v2=True)
    assert {"lxc.cgroup2.memory.max = 1073741824", "lxc.cgroup2.memory.swap.max = 0",
            "lxc.cgroup2.cpuset.cpus = 0-1", "lxc.cgroup2.cpu.max = 150000 100000"} <= set(lines)


def test_lxcfs_hook_replaces_the_system_one():
    lines = conf(hook="/lab/lxc/.cutover/lxcfs-1.mount.hook")
    # The packaged common.conf.d hook (/var/lib/lxcfs) is cleared before ours is added.
    assert lines.index("lxc.hook.mount =") < lines.index("lxc.hook.mount = /lab/lxc/.cutover/lxcfs-1.mount.hook")
    assert "lxc.autodev = 1" in lines and "lxc.net.0.type = empty" in lines
    assert [l for l in conf() if l.startswith("lxc.hook.mount")] == ["lxc.hook.mount ="]


def test_env_volumes_cgroup_dir_and_site_lines():
    lines = conf(env={"A": "b c"}, volumes={"data": "/srv/data"}, stop_signal="INT",
                 cgroup_dir="lab/lxc", volumes_dir="/lab/lxc/.cutover/volumes", init_ids=(1000, 1000),
                 extra=["lxc.cap.drop = sys_admin"])
    assert {"lxc.environment = A=b c", "lxc.signal.halt = SIGINT", "lxc.cgroup.dir = lab/lxc",
            "lxc.mount.entry = /lab/lxc/.cutover/volumes/data/data srv/data none bind,create=dir 0 0",
            "lxc.init.uid = 1000", "lxc.init.gid = 1000", "lxc.console.logfile = /lab/lxc/c1/console.log"} <= set(lines)
    assert lines[-1] == "lxc.cap.drop = sys_admin"


PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\napp:x:1000:\nstaff:x:50:\n"


@pytest.mark.parametrize("user,ids", [
    ("app", (1000, 1000, "/home/app")), ("0", (0, 0, "/root")), ("app:staff", (1000, 50, "/home/app")),
    ("4242", (4242, 4242, "/")), ("4242:7", (4242, 7, "/")), ("nobody", None), ("app:nogroup", None),
])
def test_resolve_user(user, ids):
    assert resolve_user(PASSWD, user) == ids


def test_signals_and_names():
    assert [signal_name(s) for s in ("TERM", "SIGKILL", 15, "2")] == ["TERM", "KILL", "TERM", "INT"]
    with pytest.raises(RuntimeFailure):
        signal_name("SIGNOPE")
    assert safe_ref("cutover/probe:1") == "cutover_probe_1"
