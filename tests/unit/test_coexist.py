"""Coexistence's pure logic: pairs from input, and what two processes' cgroups say."""
import pytest

from cutover import coexist
from cutover.errors import CutoverError
from cutover.targets import Target


def t(name, driver="docker", host="local://"):
    return Target(name=name, driver=driver, endpoint="unix:///x.sock", host=host)


TS = {"lxc-t4": t("lxc-t4", "lxc"), "docker-lxcfs": t("docker-lxcfs"), "docker": t("docker"),
      "far": t("far", "lxc", host="ssh://web-07")}


def test_pairs_from_cli_file_or_derived():
    assert [p.name for p in coexist.resolve(TS, cli=["lxc-t4,docker-lxcfs"])] == ["lxc-t4+docker-lxcfs"]
    assert [p.name for p in coexist.resolve(TS, from_file=[["lxc-t4", "docker"]])] == ["lxc-t4+docker"]
    # Derived: same host, different drivers.
    assert [p.name for p in coexist.resolve(TS)] == ["lxc-t4+docker-lxcfs", "lxc-t4+docker"]
    p = coexist.resolve(TS, cli=["lxc-t4,docker"])[0]
    assert (p.host, [x.name for x in p.targets]) == ("local://", ["lxc-t4", "docker"])


def test_file_pairs_of_unselected_targets_are_not_owed():
    assert coexist.resolve({"docker": TS["docker"]}, from_file=[["lxc-t4", "docker"]]) == []


@pytest.mark.parametrize("cli,msg", [
    (["lxc-t4"], "two target names"),
    (["lxc-t4,lxc-t4"], "cannot coexist with itself"),
    (["lxc-t4,nope"], "unknown target 'nope'"),
    (["lxc-t4,far"], "a pair shares one host"),
])
def test_bad_pairs_are_one_line_errors(cli, msg):
    with pytest.raises(CutoverError, match=msg) as e:
        coexist.resolve(TS, cli=cli)
    assert "\n" not in str(e.value)


def test_bad_file_pairs():
    with pytest.raises(CutoverError, match="must be a list"):
        coexist.resolve(TS, from_file="lxc-t4,docker")


LXC = "10:hugetlb:/lab/lxc/lxc.payload.c1\n9:name=systemd:/lab/lxc/lxc.payload.c1\n" \
      "4:memory:/lab/lxc/lxc.payload.c1\n2:cpu,cpuacct:/lab/lxc/lxc.payload.c1\n0::/lab/lxc/lxc.payload.c1\n"
DOCKER = "4:memory:/lab/docker/abc\n2:cpu,cpuacct:/lab/docker/abc\n0::/\n"
NESTED = "4:memory:/lab/lxc/lxc.payload.c1/abc\n2:cpu,cpuacct:/lab/docker/abc\n"


def test_proc_cgroup_splits_joined_controllers():
    cg = coexist.proc_cgroup(LXC)
    assert cg["cpu"] == cg["cpuacct"] == "/lab/lxc/lxc.payload.c1" and cg["unified"] == "/lab/lxc/lxc.payload.c1"
    assert cg["name=systemd"] == "/lab/lxc/lxc.payload.c1"


def test_collisions():
    lxc, docker = coexist.proc_cgroup(LXC), coexist.proc_cgroup(DOCKER)
    # The v2 line of a hybrid host ('0::/' for docker) is not what limits or counts.
    assert coexist.collisions(lxc, docker) == []
    assert coexist.collisions(lxc, coexist.proc_cgroup(NESTED)) == \
        ["memory: /lab/lxc/lxc.payload.c1 and /lab/lxc/lxc.payload.c1/abc nested"]
    assert coexist.collisions(lxc, lxc) == [f"{c}: both in /lab/lxc/lxc.payload.c1" for c in ("memory", "cpu", "cpuacct")]
    # A container left in the root cgroup holds every other one.
    root = coexist.proc_cgroup("4:memory:/\n")
    assert coexist.collisions(root, lxc) == ["memory: / and /lab/lxc/lxc.payload.c1 nested"]
    # No prefix confusion: /lab/lxc1 is not inside /lab/lxc.
    assert coexist.collisions(coexist.proc_cgroup("4:memory:/lab/lxc\n"), coexist.proc_cgroup("4:memory:/lab/lxc1\n")) == []
    # A pure v2 host: the unified path decides.
    assert coexist.collisions({"unified": "/a"}, {"unified": "/a/b"}) == ["unified: /a and /a/b nested"]


MOUNTINFO = """\
30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
31 25 0:27 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
32 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
33 25 0:29 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd
"""


def test_accounting_files_v1_and_v2():
    mounts = coexist.hierarchy_mounts(MOUNTINFO)
    assert mounts == {"unified": "/sys/fs/cgroup/unified", "memory": "/sys/fs/cgroup/memory",
                      "cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct"}
    assert coexist.accounting_files(coexist.proc_cgroup(DOCKER), mounts) == {
        "cpu": "/sys/fs/cgroup/cpu,cpuacct/lab/docker/abc/cpuacct.usage",
        "memory": "/sys/fs/cgroup/memory/lab/docker/abc/memory.usage_in_bytes"}
    v2 = coexist.hierarchy_mounts("30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
    assert coexist.accounting_files({"unified": "/lab/x"}, v2) == {
        "cpu": "/sys/fs/cgroup/lab/x/cpu.stat", "memory": "/sys/fs/cgroup/lab/x/memory.current"}
    with pytest.raises(CutoverError):
        coexist.accounting_files({"pids": "/x"}, mounts)


def test_cpu_seconds():
    assert coexist.cpu_seconds("1500000000\n") == 1.5
    assert coexist.cpu_seconds("usage_usec 250000\nuser_usec 1\n") == 0.25
    with pytest.raises(ValueError):
        coexist.cpu_seconds("nothing here")
