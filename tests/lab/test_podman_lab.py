"""The lab's podman and crun: they stay inside the lab and leave the host's podman state alone."""
import os

from cutover.drivers import driver_for
from cutover.drivers.base import ContainerSpec
from cutover.lab import hugetlb

# Where a default podman keeps host-wide state; the lab's podman must not create any of it.
HOST_PODMAN_PATHS = ("/var/lib/containers", "/run/containers", "/run/libpod", "/var/lib/cni",
                     "/dev/shm/libpod_lock", "/etc/cni/net.d/cni-podman0.conflist")


def _run_one(lab, name):
    t = lab.targets()[name]
    d = driver_for(t)
    cid = d.run(ContainerSpec(image=t.image, command=["sleep", "60"], labels={"cutover": "1", "cutover.test": name}))
    try:
        return d.inspect(cid).pid, d.exec(cid, ["cat", "/proc/1/cgroup"]).stdout
    finally:
        d.remove(cid)


def test_podman_leaves_host_paths_alone(lab):
    before = {p for p in HOST_PODMAN_PATHS if os.path.exists(p)}
    pid, cgroup = _run_one(lab, "podman")
    after = {p for p in HOST_PODMAN_PATHS if os.path.exists(p)}
    assert after <= before, f"the lab's podman created {sorted(after - before)}"
    assert f"/{lab.cgroup_name}/podman/" in cgroup, cgroup
    assert not any(l.startswith("cni-") for l in os.listdir("/sys/class/net")), "a CNI bridge appeared"


def test_podman_service_sees_var_lib_read_only(lab):
    pid = lab.podman.pid()
    with open(f"/proc/{pid}/mountinfo") as f:
        opts = {line.split()[4]: line.split()[5] for line in f}
    assert opts.get("/var/lib", "").startswith("ro"), opts.get("/var/lib")
    assert opts.get(lab.root, "").startswith("rw"), opts.get(lab.root)
    assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")


def test_crun_runs_with_the_hugetlb_hierarchy(lab):
    st = hugetlb.status(lab)
    assert st["mounted"], st
    assert lab.cgroup_name in st["users"], "the lab does not declare its use of the hugetlb hierarchy"
    _pid, cgroup = _run_one(lab, "docker-crun")
    assert f"/{lab.cgroup_name}/docker/" in cgroup


def test_loop_root_released_when_the_container_is_already_gone(lab):
    """A loop-root container removed behind the driver's back: its remove still frees the root."""
    from cutover import looproot, quota
    t = lab.targets()["podman"]
    d = driver_for(t)
    a = quota.parse(quota.DEFAULT)[0]
    cid = d.create(ContainerSpec(image=t.image, command=["sleep", "60"], allocation=a,
                                 labels={"cutover": "1", "cutover.test": "gone-loop-root"}))
    image = looproot.find(t.options["loop_dir"], container=cid)
    assert image and os.path.exists(image)
    d.client.api.remove_container(cid, force=True)          # gone, not through the driver
    d.remove(cid)
    assert not os.path.exists(image)
    assert image not in looproot.records(t.options["loop_dir"])
    assert not any(back == image for back in looproot.loop_devices().values())
