"""The lab: real runtimes started locally in a sandbox of their own.

Everything lives under one lab directory (default /var/lib/cutover-lab, or $CUTOVER_LAB):
own sockets, data roots, exec roots, pid files, lxcfs mount point and cgroup subtree. The
lab never uses the default docker socket, /var/lib/docker, docker0 or /etc/docker, and
`down` stops only what `up` started (pid files whose process names the lab directory), then
sweeps the lab's cgroups and mounts so that even a crashed lab leaves a clean machine.
"""
import fcntl
import hashlib
import os
import shutil
import time

import yaml

from cutover import probe_image
from cutover.errors import CutoverError
from cutover.lab import cgroups
from cutover.lab.daemon import mounts_under, say, umount_all_under
from cutover.lab.dockerd import Dockerd
from cutover.lab.lxcfs import Lxcfs

DEFAULT_ROOT = "/var/lib/cutover-lab"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REQUIRED = {"dockerd": "docker.io", "containerd": "containerd", "runc": "runc", "lxcfs": "lxcfs"}


def default_root():
    return os.environ.get("CUTOVER_LAB", DEFAULT_ROOT)


class Lab:
    def __init__(self, root=None):
        self.root = os.path.abspath(root or default_root())
        if len(self.root) > 60:
            raise CutoverError(f"lab directory {self.root} is too long for unix socket paths (max 60 chars)")
        self.run_dir = os.path.join(self.root, "run")
        self.log_dir = os.path.join(self.root, "log")
        self.targets_path = os.path.join(self.root, "targets.yaml")
        self.cgroup_name = "cutover-lab-" + hashlib.sha1(self.root.encode()).hexdigest()[:8]
        self.lxcfs = Lxcfs(self, "lxcfs")
        self.docker = Dockerd(self, "docker", live_restore=True, serves={
            "docker": {"description": "dockerd 20.10 + runc, live-restore, no LXCFS (the 'before' state)"},
            "docker-lxcfs": {"lxcfs": True, "description":
                             "dockerd 20.10 + runc, LXCFS bind-mounted into every container (T4-like)"},
        })
        # The same dockerd without live-restore: what containers go through when a site
        # forgot it (the lifecycle suite's negative control).
        self.docker_nlr = Dockerd(self, "docker-nlr", live_restore=False, serves={
            "docker-no-live-restore": {"description": "a second dockerd 20.10 + runc without live-restore"},
        })
        # Order matters: up starts in this order, down stops in reverse.
        self.daemons = [self.lxcfs, self.docker, self.docker_nlr]

    # -- locking: one lab operation at a time ------------------------------------------------
    def _lock(self):
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(self.root, ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def cgroup_procs(self):
        d = cgroups.ensure(cgroups.tracking_dir(self.cgroup_name))
        return os.path.join(d, "cgroup.procs") if d else None

    # -- up / down / status ----------------------------------------------------------------
    def check_prerequisites(self):
        for binary, package in REQUIRED.items():
            if not shutil.which(binary):
                raise CutoverError(f"lab: '{binary}' not found: install Debian's {package} package (see README)")
        probe_image.busybox_path()
        if os.geteuid() != 0:
            raise CutoverError("lab: must run as root (it starts dockerd and lxcfs)")

    def up(self):
        self.check_prerequisites()
        fd = self._lock()
        try:
            for d in (self.run_dir, self.log_dir):
                os.makedirs(d, mode=0o700, exist_ok=True)
            os.chmod(self.root, 0o700)
            for daemon in self.daemons:
                t0 = time.monotonic()
                started = daemon.start()
                say(f"lab: {daemon.name:<12} {'started' if started else 'already running'}"
                     f" (pid {daemon.pid()}, {time.monotonic() - t0:.1f}s)")
            # Sockets are private: the run directory is 0700 and the sockets 0600.
            for d in self.daemons:
                if isinstance(d, Dockerd) and os.path.exists(d.socket):
                    os.chmod(d.socket, 0o600)
            t0 = time.monotonic()
            self.build_images()
            say(f"lab: probe image  {probe_image.TAG} ready ({time.monotonic() - t0:.1f}s)")
            self.write_targets()
            say(f"lab: targets      {self.targets_path}")
        finally:
            os.close(fd)

    def build_images(self):
        from cutover.drivers import driver_for
        for t in self.targets().values():
            d = driver_for(t, timeout=120)
            if not d.image_exists(t.image):
                d.build_image(probe_image.context_tar(), t.image, labels=probe_image.LABELS)

    def down(self):
        if not os.path.isdir(self.root):
            say(f"lab: nothing at {self.root}")
            return
        fd = self._lock()
        try:
            for daemon in reversed(self.daemons):
                stopped = daemon.stop()
                say(f"lab: {daemon.name:<12} {'stopped' if stopped else 'was not running'}")
            killed = cgroups.sweep(self.cgroup_name)
            if killed:
                say(f"lab: swept {killed} leftover process(es) from the lab's cgroups")
            left = umount_all_under(self.root)
            if left:
                say(f"lab: unmounted {left} leftover mount(s)")
        finally:
            os.close(fd)
        shutil.rmtree(self.root, ignore_errors=True)
        say(f"lab: removed {self.root}")

    def status(self):
        return {"root": self.root, "targets": self.targets_path if os.path.exists(self.targets_path) else None,
                "daemons": [d.status() for d in self.daemons],
                "mounts": mounts_under(self.root)}

    def start_daemon(self, name):
        """Start one daemon again (the targets' daemon.start command after a stop or kill)."""
        for d in self.daemons:
            if d.name == name:
                fd = self._lock()
                try:
                    d.start()
                finally:
                    os.close(fd)
                return
        raise CutoverError(f"lab: no daemon named '{name}' (known: {', '.join(d.name for d in self.daemons)})")

    # -- targets ---------------------------------------------------------------------------
    def cutover_cmd(self):
        """How a targets file's daemon.start command calls this lab back."""
        me = os.path.join(REPO, "bin", "cutover")
        return f"CUTOVER_LAB={self.root} {me}" if self.root != DEFAULT_ROOT else me

    def target_data(self):
        out = {}
        for d in self.daemons:
            out.update(d.targets())
        return out

    def write_targets(self):
        data = {"lab": self.root, "targets": self.target_data()}
        tmp = self.targets_path + ".tmp"
        with open(tmp, "w") as f:
            f.write("# Written by 'cutover lab up'. Targets of the local lab; see README for the format.\n")
            yaml.safe_dump(data, f, sort_keys=False)
        os.replace(tmp, self.targets_path)

    def targets(self):
        from cutover import targets
        return targets.parse({"targets": self.target_data()}, source="lab")


