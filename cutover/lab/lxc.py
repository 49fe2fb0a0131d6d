"""LXC in the lab: not a daemon, a place. LXC 5 has no management daemon (each container has
its own `[lxc monitor]` process), so what the lab provides is an lxcpath of its own,
`<lab>/lxc`, never /var/lib/lxc, and a target that uses it:

- `lxc-t4`: containers from the probe image's rootfs, `lxc.net.0.type = empty`, the lab's
  lxcfs through Debian's lxcfs mount hook (rewritten by the driver for the lab's mount point),
  cgroup limits from the allocation, a loop ext4 root when the allocation has a disk quota,
  and cgroups under the lab's own tree (`lxc.cgroup.dir = <lab cgroup>/lxc`), so a crashed
  lab's containers are found by the cgroup sweep like docker's.

`down` destroys every container under the lxcpath (lxc-stop -k, lxc-destroy) whatever state
it is in, then detaches loop devices whose backing file is under the lxcpath (a
container's `-B loop` root after a crash), so nothing outlives the lab.
"""
import os
import shutil
import stat
import subprocess

from cutover import looproot, probe_image
from cutover.lab.daemon import say


class LxcHost:
    """Duck-types the lab's Daemon (start/stop/status/targets) for a daemon-less runtime."""
    kind = "lxc"

    def __init__(self, lab, name="lxc"):
        self.lab, self.name = lab, name
        self.lxcpath = os.path.join(lab.root, "lxc")

    def pid(self):
        return None          # no daemon: nothing to signal

    def start(self, timeout=30):
        if os.path.isdir(self.lxcpath):
            return False
        # LXC wants container directories that only root can enter.
        os.makedirs(self.lxcpath, mode=0o700, exist_ok=True)
        return True

    def containers(self):
        if not os.path.isdir(self.lxcpath):
            return []
        return sorted(n for n in os.listdir(self.lxcpath)
                      if os.path.isfile(os.path.join(self.lxcpath, n, "config")))

    def stop(self, grace=20):
        """Destroy every container under the lxcpath, then release the lab's loop devices."""
        # Loop devices are told by their backing file's inode: the path losetup reports is
        # the one seen from the container's mount namespace, not ours.
        existed = os.path.isdir(self.lxcpath)
        backing = backing_files(self.lxcpath)
        names = self.containers()
        for n in names:
            base = ["-n", n, "-P", self.lxcpath]
            # A frozen container cannot be stopped; an unfrozen one ignores the unfreeze.
            _run(["lxc-unfreeze", *base])
            _run(["lxc-stop", "-k", *base])
            if _run(["lxc-destroy", "-f", *base]).returncode != 0:
                shutil.rmtree(os.path.join(self.lxcpath, n), ignore_errors=True)
        if names:
            say(f"lab: {self.name:<12} destroyed {len(names)} container(s)")
        loops = 0
        # Listed and detached under Cutover's loop lock: a number LXC freed at the stop may be
        # taken at once by another lab's loop user (see looproot._detach_if_ours).
        with looproot.loop_lock():
            for dev in loops_backed_by(backing):
                loops += _run(["losetup", "-d", dev]).returncode == 0
        if loops:
            say(f"lab: {self.name:<12} detached {loops} loop device(s)")
        shutil.rmtree(self.lxcpath, ignore_errors=True)      # images and volumes too
        return existed

    def status(self):
        return {"name": self.name, "kind": self.kind, "pid": None,
                "running": os.path.isdir(self.lxcpath) and bool(shutil.which("lxc-start")),
                "containers": len(self.containers())}

    def endpoint(self):
        return f"lxc://{self.lxcpath}"

    def targets(self):
        entry = {"host": "local://", "driver": "lxc", "endpoint": self.endpoint(), "runtime": "lxc",
                 "lxcfs": self.lab.lxcfs.mountpoint, "image": probe_image.TAG,
                 "daemon": {"lxcfs-restart": self.lab.lxcfs.restart_command()},
                 "options": {"cgroup_dir": f"{self.lab.cgroup_name}/lxc"},
                 "description": "LXC 5 + lxcfs mount hook, loop ext4 root with a disk quota "
                                "(the closest open relative of T4; the lab's reference)"}
        return {"lxc-t4": entry}

    def pairs(self):
        """Coexistence pairs the lab certifies: T4's relative next to the T4-like docker."""
        return [["lxc-t4", "docker-lxcfs"]]


def _run(argv, timeout=60):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return subprocess.CompletedProcess(argv, 1, "", str(e))


def backing_files(root):
    """{(major:minor, inode)} of the regular files under root."""
    out = set()
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                out.add((f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}", str(st.st_ino)))
    return out


def loops_backed_by(files):
    """Loop devices attached to any of these files (see backing_files)."""
    res = _run(["losetup", "-n", "-O", "NAME,BACK-MAJ:MIN,BACK-INO", "--list"])
    return [p[0] for p in (l.split() for l in res.stdout.splitlines())
            if len(p) == 3 and (p[1], p[2]) in files]
