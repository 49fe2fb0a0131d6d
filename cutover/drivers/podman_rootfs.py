"""Podman with a disk quota on this kernel: a per-container loop ext4 root (`podman --rootfs`).

podman's own `--storage-opt size=` needs overlay on xfs with project quota, which this kernel
lacks. What a site does instead, and what the target option `disk_quota: loop-rootfs` asks
for: per container, a sparse file of the quota's size under `options.loop_dir`, ext4 made with
`-m 0`, the probe image's root file system copied in (cutover.probe_image.rootfs_dir), and the
container created on it through the libpod API (`rootfs`; the Docker-compatible API has none).
`df /` is then the quota less ext4's overhead, and writing past it fails with ENOSPC.

The file is named on the container (label cutover.looproot) and in its loop record (the
container's ID), and released when the driver removes the container, also when the container
is already gone or its removal fails; `lab down` releases any left behind by a crash
(looproot.release_under).
The podman driver calls in here through three small hooks (create, remove, storage_path).
"""
import os
import secrets
import signal

from cutover import looproot, probe_image
from cutover.drivers.base import RuntimeFailure, Unsupported

LABEL = "cutover.looproot"
# Target options a loop-root container honours (the lab's podman targets use these).
OPTIONS = {"network", "cgroup_parent", "disk_quota", "disk_size", "loop_dir", "volume_quota",
           "default_capabilities"}


def wanted(driver, spec):
    a = spec.allocation
    return bool(a is not None and a.disk and driver.target.options.get("disk_quota") == "loop-rootfs")


def _loop_dir(driver):
    d = driver.target.options.get("loop_dir")
    if not d or not driver.target.host.startswith("local://"):
        raise Unsupported(f"target '{driver.target.name}': a loop root needs options.loop_dir on a local:// host")
    return d


def _spec(driver, spec, rootfs, image):
    """The libpod SpecGenerator for what the Docker driver would pass to the compat API."""
    t, a = driver.target, spec.allocation
    extra = set(t.options) - OPTIONS
    if extra:
        raise Unsupported(f"target '{t.name}': option '{sorted(extra)[0]}' is not supported with a loop root")
    limits = {"memory": {"limit": a.memory, "swap": a.memory}}     # no extra swap, as T4
    if a.cpuset:
        limits["cpu"] = {"cpus": a.cpuset}
    if a.cpus:
        limits.setdefault("cpu", {}).update(quota=int(a.cpus * 100000), period=100000)
    if a.pids:
        limits["pids"] = {"limit": a.pids}
    body = {"rootfs": rootfs, "command": list(spec.command), "oci_runtime": t.runtime,
            "labels": dict(spec.labels, **{LABEL: image}), "resource_limits": limits,
            "env": dict(spec.env or {}), "init": bool(spec.init),
            "no_new_privileges": bool(spec.no_new_privileges)}
    if spec.name:
        body["name"] = spec.name
    if spec.user:
        body["user"] = spec.user
    if spec.restart != "no":
        body["restart_policy"] = spec.restart
    if spec.stop_signal:
        body["stop_signal"] = int(getattr(signal, "SIG" + spec.stop_signal.upper().removeprefix("SIG")))
    if spec.stop_timeout is not None:
        body["stop_timeout"] = spec.stop_timeout
    if t.options.get("network"):
        body["netns"] = {"nsmode": t.options["network"]}
    if t.options.get("cgroup_parent"):
        body["cgroup_parent"] = t.options["cgroup_parent"]
    if spec.lxcfs and t.lxcfs:
        from cutover.drivers.docker import LXCFS_FILES
        root = t.lxcfs.rstrip("/")
        body["mounts"] = [{"destination": f"/{f}", "source": f"{root}/{f}", "type": "bind",
                           "options": ["ro", "rbind"]} for f in LXCFS_FILES]
    if spec.volumes:
        body["volumes"] = [{"Name": n, "Dest": p} for n, p in spec.volumes.items()]
    return body


def create(driver, spec):
    if spec.image != probe_image.TAG:
        raise Unsupported(f"target '{driver.target.name}': a loop root holds the probe image only, not {spec.image}")
    owner = _loop_dir(driver)
    token = secrets.token_hex(6)
    image, rootfs = os.path.join(owner, f"root-{token}.img"), os.path.join(owner, f"root-{token}")
    size = spec.allocation.disk
    if driver.target.options.get("disk_size"):
        from cutover.allocations import parse_size
        size = parse_size(driver.target.options["disk_size"], "options.disk_size")
    looproot.make(owner, image, rootfs, size, "ext4", populate=probe_image.rootfs_dir)
    try:
        api = driver.client.api
        url = f"{api.base_url}/v4.0.0/libpod/containers/create"
        res = driver._call("create container (libpod, loop root)",
                           lambda: api._result(api._post_json(url, data=_spec(driver, spec, rootfs, image)), json=True))
        # Also in the loop record: a container removed behind the driver's back still names it.
        looproot.note(owner, image, container=res["Id"])
        return res["Id"]
    except BaseException:
        looproot.release(owner, image)
        raise


def root_of(driver, cid):
    """The loop root file of a container, or None."""
    if driver.target.options.get("disk_quota") != "loop-rootfs":
        return None
    try:
        labels = driver.inspect(cid).raw.get("Config", {}).get("Labels") or {}
    except RuntimeFailure:
        labels = {}                    # already gone: its loop record still names it
    owner = driver.target.options.get("loop_dir")
    return labels.get(LABEL) or (looproot.find(owner, container=cid) if owner else None)


def release(driver, image):
    if image:
        looproot.release(_loop_dir(driver), image)


def storage_path(driver, cid):
    """The loop root's backing file: what the container's writes fill on the host."""
    return root_of(driver, cid)
