"""Pure pieces behind the security suite, the podman driver and the lab's hugetlb mount."""
import json

import pytest

from cutover import security, targets
from cutover.drivers import driver_for
from cutover.drivers.base import DOCKER_DEFAULT_CAPS, ContainerSpec
from cutover.errors import CutoverError
from cutover.lab import hugetlb


def test_docker_default_mask_is_the_documented_set():
    assert security.cap_names("00000000a80425fb") == set(DOCKER_DEFAULT_CAPS)
    assert security.cap_names("0000000000000000") == set()
    assert "SYS_ADMIN" in security.cap_names("00000000a82e25ff")
    assert security.cap_names(f"{1 << 45:016x}") == {"CAP_45"}


@pytest.mark.parametrize("bad", [None, "", "zz", "0x-1"])
def test_bad_mask_is_one_line(bad):
    with pytest.raises(CutoverError, match="not a capability mask"):
        security.cap_names(bad)


def test_status_fields():
    st = security.status_fields("Name:\tsleep\nCapEff:\t00000000a80425fb\nSeccomp:\t2\nNoNewPrivs:\t1\n")
    assert (st["Name"], st["Seccomp"], st["NoNewPrivs"]) == ("sleep", "2", "1")


def test_ns_links_and_marks():
    assert security.ns_links("self: pid:[4026531836]\n12: pid:[4026532559]\njunk\n") == [
        ("self", "pid:[4026531836]"), ("12", "pid:[4026532559]")]
    assert security.marked("OPENED loop0\nDENIED vda\nOPENED mem\n", "OPENED") == ["loop0", "mem"]


def _target(options=None, driver="docker", runtime="runc"):
    return targets.parse({"targets": {"t": {"driver": driver, "endpoint": "unix:///nonexistent.sock",
                                            "runtime": runtime, "options": options or {}}}})["t"]


class _Recorder:
    """Stands in for the SDK's containers.create: records what the driver would send."""
    def __init__(self):
        self.kw = None

    def create(self, **kw):
        self.kw = kw
        return type("C", (), {"id": "x"})()


def _create_kw(options, **spec):
    d = driver_for(_target(options))
    rec = _Recorder()
    d._client = type("Client", (), {"containers": rec})()
    d.create(ContainerSpec(image="i", command=["sleep", "1"], **spec))
    return rec.kw


def test_unsafe_options_reach_create_after_the_containers_own():
    kw = _create_kw({"pid": "host", "cap_add": "SYS_ADMIN", "security_opt": ["no-new-privileges=false"],
                     "device_cgroup_rules": ["b *:* rwm"]}, no_new_privileges=True)
    assert kw["pid_mode"] == "host" and kw["cap_add"] == ["SYS_ADMIN"]
    assert kw["security_opt"] == ["no-new-privileges", "no-new-privileges=false"]
    assert kw["device_cgroup_rules"] == ["b *:* rwm"]


def test_unknown_option_is_one_line():
    with pytest.raises(CutoverError, match="unknown option 'priviliged'"):
        _create_kw({"priviliged": True})


def test_documented_capabilities_default_and_override():
    assert driver_for(_target()).documented_capabilities() == set(DOCKER_DEFAULT_CAPS)
    assert driver_for(_target({"default_capabilities": ["cap_chown", "KILL"]})).documented_capabilities() == \
        {"CHOWN", "KILL"}


def test_podman_declares_what_it_supports():
    d = driver_for(_target(driver="podman", runtime="crun"))
    assert "daemonless" in d.capabilities and "live-restore" not in d.capabilities
    assert "runtime-select" not in d.capabilities
    assert d.describe()["driver"] == "podman"


def test_podman_refuses_a_runtime_its_service_does_not_run():
    d = driver_for(_target(driver="podman", runtime="runc"))
    d._service_runtime = "crun"
    with pytest.raises(CutoverError, match="runtime 'runc', but the podman service"):
        d.create(ContainerSpec(image="i", command=["true"]))


class _Lab:
    def __init__(self, root):
        self.root, self.cgroup_name = str(root), "cutover-lab-test"


def test_hugetlb_release_only_what_the_lab_mounted_and_nobody_uses(tmp_path, monkeypatch):
    lab = _Lab(tmp_path)
    calls = []
    monkeypatch.setattr(hugetlb, "mounted", lambda: hugetlb.MOUNTPOINT)
    monkeypatch.setattr(hugetlb.subprocess, "run", lambda argv, **kw: calls.append(argv) or
                        type("R", (), {"returncode": 0, "stderr": ""})())
    # Not mounted by this lab: never unmounted.
    assert hugetlb.release(lab) is None and calls == []
    (tmp_path / "hugetlb.mounted").write_text(json.dumps({"mountpoint": hugetlb.MOUNTPOINT, "made_dir": False}))
    # Mounted by this lab but another lab's cgroup is in it: left mounted.
    monkeypatch.setattr(hugetlb, "users", lambda where: ["cutover-lab-other"])
    assert "still used by cutover-lab-other" in hugetlb.release(lab) and calls == []
    # Mounted by this lab and unused: unmounted, and the record goes.
    monkeypatch.setattr(hugetlb, "users", lambda where: [])
    assert hugetlb.release(lab) == f"unmounted {hugetlb.MOUNTPOINT}"
    assert calls == [["umount", hugetlb.MOUNTPOINT]] and not (tmp_path / "hugetlb.mounted").exists()


def _loop_podman(tmp_path):
    return driver_for(_target({"disk_quota": "loop-rootfs", "loop_dir": str(tmp_path)}, driver="podman",
                              runtime="crun"))


def test_podman_remove_releases_the_loop_root_when_removal_fails(monkeypatch, tmp_path):
    from cutover.drivers import podman_rootfs
    from cutover.drivers.base import RuntimeFailure
    from cutover.drivers.docker import DockerDriver
    released = []
    monkeypatch.setattr(podman_rootfs, "root_of", lambda drv, cid: "/loops/root-1.img")
    monkeypatch.setattr(podman_rootfs, "release", lambda drv, image: released.append(image))

    def refuse(self, cid, force=True):
        raise RuntimeFailure("remove x: timed out")
    monkeypatch.setattr(DockerDriver, "remove", refuse)
    with pytest.raises(RuntimeFailure):
        _loop_podman(tmp_path).remove("x")
    assert released == ["/loops/root-1.img"]


def test_loop_root_of_a_container_already_gone_is_found_by_its_record(monkeypatch, tmp_path):
    from cutover import looproot
    from cutover.drivers import podman_rootfs
    from cutover.drivers.base import RuntimeFailure
    image = str(tmp_path / "root-1.img")
    with looproot._state(str(tmp_path)) as st:
        st[image] = {"dev": "/dev/loop99", "mountpoint": None, "fstype": "ext4"}
    looproot.note(str(tmp_path), image, container="c1")
    looproot.note(str(tmp_path), str(tmp_path / "unknown.img"), container="c2")     # no record: nothing
    d = _loop_podman(tmp_path)

    def gone(cid):
        raise RuntimeFailure(f"inspect {cid}: not found")
    monkeypatch.setattr(d, "inspect", gone)
    assert podman_rootfs.root_of(d, "c1") == image
    assert podman_rootfs.root_of(d, "c2") is None
    assert list(looproot.records(str(tmp_path))) == [image]


def test_declared_capabilities_are_the_vocabulary_and_in_the_readme():
    """Every capability a driver declares (and a check requires) is in base.CAPABILITIES, and
    each has a row in the README's "What each driver supports" table."""
    import os
    import re
    from cutover.drivers.base import CAPABILITIES
    from cutover.drivers.docker import DockerDriver
    from cutover.drivers.lxc import LxcDriver
    from cutover.drivers.podman import PodmanDriver
    for cls in (DockerDriver, PodmanDriver, LxcDriver):
        assert cls.capabilities <= set(CAPABILITIES), (cls.name, cls.capabilities - set(CAPABILITIES))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    required = set()
    for dirpath, _, files in os.walk(os.path.join(root, "conformance")):
        for f in files:
            if f.endswith(".py"):
                required |= set(re.findall(r'require\("([a-z-]+)"', open(os.path.join(dirpath, f)).read()))
    assert required <= set(CAPABILITIES), required - set(CAPABILITIES)
    readme = open(os.path.join(root, "README.md")).read()
    table = readme[readme.index("### What each driver supports"):readme.index("### Security isolation")]
    rows = " ".join(l.split("|")[1] for l in table.splitlines() if l.startswith("| `"))
    assert {c for c in CAPABILITIES if f"`{c}`" not in rows} == set()
