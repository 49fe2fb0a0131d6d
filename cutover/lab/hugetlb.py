"""The v1 hugetlb hierarchy crun needs on this kernel, mounted by the lab only if missing.

On a cgroup v1 hybrid host without a hugetlb hierarchy, crun refuses to start containers
("cgroups in hybrid mode not supported"): it looks for every controller the kernel has on a v1
hierarchy. Mounting `cgroup -o hugetlb` on /sys/fs/cgroup/hugetlb is host-wide state, so:

- `ensure` mounts it only when no hugetlb hierarchy is mounted, and records that *this* lab
  did it (a marker file in the lab directory, plus whether it also created the directory);
- every lab that needs it creates its own cgroup in the hierarchy (`<root>/<lab cgroup>`), so
  another lab's use is visible as a child cgroup that is not ours;
- `release` (lab down, after the cgroup sweep) unmounts only if this lab mounted it and the
  hierarchy has no child cgroup left (nothing else uses it); otherwise it stays mounted.
"""
import json
import os
import subprocess

from cutover.errors import CutoverError
from cutover.lab import cgroups

MOUNTPOINT = "/sys/fs/cgroup/hugetlb"


def _marker(lab):
    return os.path.join(lab.root, "hugetlb.mounted")


def mounted():
    """Mount point of a v1 hierarchy carrying hugetlb, or None."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            if parts[sep + 1] == "cgroup" and "hugetlb" in parts[sep + 3].split(","):
                return parts[4]
    return None


def available():
    """The kernel has a hugetlb controller (else there is nothing to mount, nor to need)."""
    try:
        with open("/proc/cgroups") as f:
            return any(line.split()[0] == "hugetlb" for line in f if not line.startswith("#"))
    except OSError:
        return False


def ensure(lab):
    """Mount the hierarchy if missing; register the lab's own cgroup in it. Returns the mount."""
    if os.path.exists(os.path.join(cgroups.CG, "cgroup.controllers")) or not available():
        return None          # pure cgroup v2, or no hugetlb in this kernel: crun needs nothing
    where = mounted()
    if where is None:
        made_dir = not os.path.isdir(MOUNTPOINT)
        try:
            os.makedirs(MOUNTPOINT, exist_ok=True)
            subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", MOUNTPOINT],
                           check=True, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.CalledProcessError) as e:
            err = getattr(e, "stderr", None) or str(e)
            raise CutoverError(f"lab: cannot mount the hugetlb cgroup hierarchy crun needs on "
                               f"{MOUNTPOINT}: {err.strip()[:200]}") from None
        with open(_marker(lab), "w") as f:
            json.dump({"mountpoint": MOUNTPOINT, "made_dir": made_dir}, f)
        where = MOUNTPOINT
    # Our own cgroup in the hierarchy: how other labs see that we use it (swept on down).
    os.makedirs(os.path.join(where, lab.cgroup_name), exist_ok=True)
    return where


def users(where):
    """Child cgroups of the hierarchy's root: someone (a lab, a docker, crun) uses it."""
    try:
        return sorted(e.name for e in os.scandir(where) if e.is_dir())
    except OSError:
        return []


def release(lab):
    """Unmount the hierarchy if this lab mounted it and nothing else uses it. Returns a note."""
    try:
        with open(_marker(lab)) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return None          # not ours to unmount
    where = rec.get("mountpoint", MOUNTPOINT)
    if mounted() != where:
        return None
    busy = users(where)
    if busy:
        return f"left {where} mounted: still used by {', '.join(busy[:3])}"
    res = subprocess.run(["umount", where], capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        return f"could not unmount {where}: {res.stderr.strip()[:200]}"
    if rec.get("made_dir"):
        try:
            os.rmdir(where)
        except OSError:
            pass
    os.unlink(_marker(lab))
    return f"unmounted {where}"


def status(lab):
    where = mounted()
    return {"mounted": where, "mounted_by_lab": os.path.exists(_marker(lab)),
            "users": users(where) if where else []}
