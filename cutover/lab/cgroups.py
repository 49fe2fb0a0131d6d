"""The lab's own cgroup subtree, `/cutover-lab-<id>`, in every hierarchy.

Daemons the lab starts join `<root>/daemons` in the pids hierarchy (or the unified one on
cgroup v2); containers go under `<root>/<daemon>` through dockerd's --cgroup-parent. After a
crash, `sweep()` can therefore find every process the lab left behind without guessing by name.
"""
import os
import signal
import time

CG = "/sys/fs/cgroup"


def hierarchies():
    """Mount points of cgroup hierarchies (v1 controllers and/or the v2 unified tree)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            fstype, mnt = parts[sep + 1], parts[4]
            if fstype in ("cgroup", "cgroup2"):
                out.append(mnt)
    return out


def tracking_dir(root_name):
    """Where daemons are tracked: the pids v1 hierarchy, else the unified v2 one."""
    for h in hierarchies():
        if h.endswith("/pids"):
            return os.path.join(h, root_name, "daemons")
    if os.path.exists(os.path.join(CG, "cgroup.controllers")):
        return os.path.join(CG, root_name, "daemons")
    for h in hierarchies():
        if os.path.basename(h) == "unified":
            return os.path.join(h, root_name, "daemons")
    return None


def ensure(path):
    if path:
        os.makedirs(path, exist_ok=True)
    return path


def pids_under(root_name):
    pids = set()
    for h in hierarchies():
        top = os.path.join(h, root_name)
        for dirpath, _dirs, files in os.walk(top):
            if "cgroup.procs" in files:
                try:
                    with open(os.path.join(dirpath, "cgroup.procs")) as f:
                        pids.update(int(p) for p in f.read().split())
                except OSError:
                    pass
    return pids


def sweep(root_name, timeout=10):
    """Kill every process in the lab's cgroups, then remove the (empty) cgroups."""
    killed = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = pids_under(root_name)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    for h in hierarchies():
        top = os.path.join(h, root_name)
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass
    return killed
