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

from cutover import looproot, probe_image
from cutover.errors import CutoverError, RuntimeTimeout
from cutover.lab import cgroups, proc
from cutover.lab.daemon import mounts_under, say, umount_all_under
from cutover.lab.dockerd import Containerd, Dockerd, ExternalContainerdDockerd
from cutover.lab.btrfs import BtrfsDockerd
from cutover.lab.lxcfs import Lxcfs
from cutover.lab.lxc import LxcHost
from cutover.lab.simhost import SimHosts
from cutover.lab import hugetlb
from cutover.lab.podman import Podman, share_lab_dir
from cutover.lab.registry import Registry
from cutover.lab.release import Releases
from cutover.lab.guests import Guests

DEFAULT_ROOT = "/var/lib/cutover-lab"
# The longest a lab operation waits for another to finish (`lab up --guests` building a guest
# image takes about 3 min the first time); $CUTOVER_LAB_LOCK_TIMEOUT overrides it.
LOCK_TIMEOUT = 900
# docker-unsafe's targets-file options (cutover/drivers/docker.py, OPTIONS): the pieces of
# `--privileged` one by one (privileged itself cannot start here: root lacks CAP_SYS_RESOURCE,
# so runc cannot grant every capability), plus the host's namespaces.
UNSAFE_OPTIONS = {
    "pid": "host", "ipc": "host", "uts": "host", "network": "host",
    "cap_add": ["SYS_ADMIN", "SYS_PTRACE", "SYS_RAWIO", "DAC_READ_SEARCH"],
    "security_opt": ["seccomp=unconfined", "no-new-privileges=false"], "systempaths": "unconfined",
    "device_cgroup_rules": ["b *:* rwm", "c *:* rwm"],
    "volumes": ["/sys:/sys:rw"],
}
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REQUIRED = {"dockerd": "docker.io", "containerd": "containerd", "runc": "runc", "lxcfs": "lxcfs",
            "docker-registry": "docker-registry", "crun": "crun", "podman": "podman",
            "conmon": "conmon", "catatonit": "catatonit", "lxc-start": "lxc",
            "mkfs.btrfs": "btrfs-progs", "mkfs.ext4": "e2fsprogs", "losetup": "mount"}


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
            # crun needs a v1 hugetlb hierarchy on this kernel: up mounts it (see hugetlb.py).
            "docker-crun": {"runtime": "crun", "description": "dockerd 20.10 + crun 1.8, live-restore, no LXCFS"},
            "docker-crun-lxcfs": {"runtime": "crun", "lxcfs": True,
                                  "description": "dockerd 20.10 + crun 1.8, LXCFS bind-mounted"},
            # The security suite's negative control: what a site gets when its orchestrator
            # injects privileged containers in the host's namespaces without seccomp.
            "docker-unsafe": {"options": UNSAFE_OPTIONS, "control": True, "description":
                              "deliberately unsafe: host pid/ipc/uts/network, SYS_ADMIN and more, "
                              "no seccomp, all devices, writable /proc/sys and /sys"},
        }, extra_config={"runtimes": {"crun": {"path": "/usr/bin/crun"}}})
        # The same dockerd without live-restore: what containers go through when a site
        # forgot it (the lifecycle suite's negative control).
        self.docker_nlr = Dockerd(self, "docker-nlr", live_restore=False, serves={
            "docker-no-live-restore": {"control": True,
                                       "description": "a second dockerd 20.10 + runc without live-restore"},
        })
        # Started on demand only (`lab start docker-extcd`, by the lifecycle self-test), never by
        # up, and in no targets file: a dockerd whose containerd is a service of its own that
        # nothing restarts (the negative control of a containerd kill). down stops them first.
        self.extcd_containerd = Containerd(self, "docker-extcd-containerd")
        self.docker_extcd = ExternalContainerdDockerd(self, "docker-extcd", self.extcd_containerd, serves={
            "docker-extcd": {"control": True, "description": "dockerd 20.10 + runc, live-restore, on an "
                             "external containerd that nothing restarts"}})
        self.on_demand = [self.extcd_containerd, self.docker_extcd]
        # Order matters: up starts in this order, down stops in reverse.
        # The images suite's registry (loopback only); every docker target pushes to it.
        self.registry = Registry(self, "registry")
        self.daemons = [self.lxcfs, self.registry, self.docker, self.docker_nlr]
        # podman 4.3's API service (crun), on storage and config files of the lab's own.
        self.podman = Podman(self, "podman", serves={
            "podman": {"description": "podman 4.3 + crun through its Docker-compatible API, no LXCFS",
                       "options": self.loop_quota_options()},
            "podman-lxcfs": {"lxcfs": True, "description": "podman 4.3 + crun, LXCFS bind-mounted",
                             "options": self.loop_quota_options()},
        })
        self.daemons.append(self.podman)
        # LXC has no daemon: an lxcpath of the lab's own (lxc-t4; down destroys its containers).
        self.lxc = LxcHost(self, "lxc")
        self.daemons.append(self.lxc)
        # A dockerd whose data root is a loop-backed btrfs: the lab's one docker that can set a
        # disk quota (--storage-opt size=, btrfs qgroups); see cutover/lab/btrfs.py.
        self.docker_btrfs = BtrfsDockerd(self, "docker-btrfs", serves={
            "docker-btrfs": {"description": "dockerd 20.10 + runc on a loop btrfs data root, "
                                            "disk quota by --storage-opt size= (btrfs qgroups)",
                             "options": {"disk_quota": "storage-opt", "volume_quota": "loop-ext4",
                                         "loop_dir": self.loop_dir}},
        })
        self.daemons.append(self.docker_btrfs)
        # Simulated hosts (`lab up --hosts N`, see simhost.py), appended to self.daemons.
        self.fleet = SimHosts(self)
        # Another Debian release's stack (`lab up --release trixie`, see release.py), appended too.
        self.releases = Releases(self)
        # Kernel-gate guests (`lab up --guests 6.1,6.12`, see guests.py): qemu, appended too.
        self.guests = Guests(self)

    @property
    def loop_dir(self):
        """Where the harness makes loop file systems for the lab's targets (options.loop_dir)."""
        return os.path.join(self.root, "loops")

    def loop_quota_options(self):
        """Disk quota by a loop ext4 file system per container root and per volume, made by the
        harness under <lab>/loops (cutover/drivers/podman_rootfs.py, cutover/looproot.py)."""
        return {"disk_quota": "loop-rootfs", "volume_quota": "loop-ext4", "loop_dir": self.loop_dir}

    # -- locking: one lab operation at a time ------------------------------------------------
    def _lock(self, timeout=None):
        """The lab's lock, waited for at most timeout seconds (LOCK_TIMEOUT): a lab operation
        stuck elsewhere becomes a one-line error naming its pid, never an endless wait."""
        if timeout is None:
            env = os.environ.get("CUTOVER_LAB_LOCK_TIMEOUT") or str(LOCK_TIMEOUT)
            try:
                timeout = float(env)
            except ValueError:
                raise CutoverError(f"CUTOVER_LAB_LOCK_TIMEOUT: '{env}' is not a number of seconds") from None
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        path = os.path.join(self.root, ".lock")
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    os.close(fd)
                    raise RuntimeTimeout(f"lab: {path} held by another lab operation (pid {holder}) "
                                         f"for over {timeout:g}s") from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)     # who holds it, for a waiter's message
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

    def up(self, hosts=None, host_variants=None, release=None, guests=None):
        self.check_prerequisites()
        fd = self._lock()
        try:
            if hosts is not None:
                self.fleet.configure(hosts, host_variants)
            if release is not None:
                self.releases.configure(release)
            if guests is not None:
                self.guests.configure(guests)
            for d in (self.run_dir, self.log_dir):
                os.makedirs(d, mode=0o700, exist_ok=True)
            os.chmod(self.root, 0o700)
            # Before any daemon mounts anything: the lab directory as a shared mount (podman).
            share_lab_dir(self)
            had_hugetlb = hugetlb.mounted()
            if hugetlb.ensure(self) and not had_hugetlb:
                say(f"lab: hugetlb      mounted {hugetlb.MOUNTPOINT} for crun (down unmounts it if unused)")
            for daemon in self.daemons:
                t0 = time.monotonic()
                started = daemon.start()
                say(f"lab: {daemon.name:<12} {'started' if started else 'already running'}"
                     f" (pid {daemon.pid()}, {time.monotonic() - t0:.1f}s)")
            # Sockets are private: the run directory is 0700 and the sockets 0600.
            for d in self.daemons:
                if isinstance(d, (Dockerd, Podman)) and os.path.exists(d.socket):
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
            for daemon in reversed(self.daemons + self.on_demand):
                stopped = daemon.stop()
                say(f"lab: {daemon.name:<12} {'stopped' if stopped else 'was not running'}")
            killed = cgroups.sweep(self.cgroup_name)
            if killed:
                say(f"lab: swept {killed} leftover process(es) from the lab's cgroups")
            self.fleet.sweep()
            # Loop devices backed by files under the lab (btrfs data root, quota volumes and
            # roots), found by backing file so that a crashed lab's are freed too; before the
            # lab directory's own mount goes, while the kernel still names them by their path.
            loops = looproot.release_under(self.root, [self.loop_dir])
            left = umount_all_under(self.root)
            if left:
                say(f"lab: unmounted {left} leftover mount(s)")
            loops += looproot.release_under(self.root, [self.loop_dir])
            if loops:
                say(f"lab: released {loops} loop device(s)")
            note = hugetlb.release(self)
            if note:
                say(f"lab: hugetlb      {note}")
        finally:
            os.close(fd)
        shutil.rmtree(self.root, ignore_errors=True)
        say(f"lab: removed {self.root}")

    def status(self):
        return {"root": self.root, "targets": self.targets_path if os.path.exists(self.targets_path) else None,
                "daemons": [d.status() for d in self.daemons],
                "mounts": mounts_under(self.root), "hugetlb": hugetlb.status(self),
                "loop_devices": looproot.devices_under(self.root, [self.root, self.loop_dir])}

    def daemon_named(self, name):
        for d in self.daemons + self.on_demand + self.fleet.inner_daemons():
            if d.name == name:
                return d
        raise CutoverError(f"lab: no daemon named '{name}' (known: {', '.join(d.name for d in self.daemons)})")

    def start_daemon(self, name, variant=None):
        """Start one daemon again (the targets' daemon.start command after a stop or kill)."""
        d = self.daemon_named(name)
        if variant and not isinstance(d, Dockerd):
            raise CutoverError(f"lab: {name} has no variants")
        fd = self._lock()
        try:
            if isinstance(d, Dockerd):
                d.variant = variant
            d.start()
        finally:
            os.close(fd)

    # -- daemon events of the lifecycle suite (the targets' daemon.stop/kill/... commands) ---
    def signal_daemon(self, name, signame, timeout=60):
        """Send one signal to a lab daemon and return once it is gone; nothing else.

        Unlike `down`, this leaves containers, mounts and pid files alone: it is what a plain
        service stop (TERM) or a crash (KILL) does. Only a process of the lab's is signalled.
        """
        import signal
        sig = {"TERM": signal.SIGTERM, "KILL": signal.SIGKILL, "INT": signal.SIGINT}.get(
            (signame or "").upper().removeprefix("SIG"))
        if sig is None:
            raise CutoverError(f"lab signal: name TERM, KILL or INT, not {signame!r}")
        d = self.daemon_named(name)
        pid = d.pid()
        if not pid:
            say(f"lab: {name} is not running")
            return False
        os.kill(pid, sig)
        if not proc.wait_gone(pid, timeout):
            raise RuntimeTimeout(f"lab: {name} (pid {pid}) still runs {timeout}s after SIG{signame.upper()}")
        return True

    def kill_containerd(self, name, timeout=60):
        """SIGKILL the containerd a lab dockerd supervises; return once dockerd runs a new one."""
        import signal
        import socket
        d = self.daemon_named(name)
        if not isinstance(d, Dockerd):
            raise CutoverError(f"lab: {name} is not a dockerd")
        old = proc.read_pidfile(d.containerd_pidfile)
        if not proc.ours(old, self.root):
            raise CutoverError(f"lab: {name} has no running containerd of the lab's")
        os.kill(old, signal.SIGKILL)
        sock = os.path.join(os.path.dirname(d.containerd_pidfile), "containerd.sock")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.2)
            new = proc.read_pidfile(d.containerd_pidfile)
            if new and new != old and proc.ours(new, self.root):
                s = socket.socket(socket.AF_UNIX)
                s.settimeout(1)
                try:
                    s.connect(sock)
                    return new
                except OSError:
                    pass
                finally:
                    s.close()
        raise RuntimeTimeout(f"lab: {name} did not start a new containerd within {timeout}s")

    # -- targets ---------------------------------------------------------------------------
    def cutover_cmd(self):
        """How a targets file's daemon.start command calls this lab back."""
        me = os.path.join(REPO, "bin", "cutover")
        return f"CUTOVER_LAB={self.root} {me}" if self.root != DEFAULT_ROOT else me

    def target_data(self):
        out = {}
        for d in self.daemons:
            out.update(d.targets())
        if self.registry.address:
            for entry in out.values():
                entry.setdefault("registry", self.registry.entry())
        return out

    def write_targets(self):
        data = {"lab": self.root, **self.fleet.targets_file_keys(), "targets": self.target_data(),
                "pairs": [p for d in self.daemons for p in getattr(d, "pairs", list)()]}
        tmp = self.targets_path + ".tmp"
        with open(tmp, "w") as f:
            f.write("# Written by 'cutover lab up'. Targets of the local lab; see README for the format.\n")
            yaml.safe_dump(data, f, sort_keys=False)
        os.replace(tmp, self.targets_path)
        self.releases.write_role_targets(data["targets"])
        self.fleet.write_role_targets(data["targets"])

    def targets(self):
        from cutover import targets
        return targets.parse({**self.fleet.targets_file_keys(), "targets": self.target_data()}, source="lab")


