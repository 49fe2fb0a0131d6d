"""The lab: real runtimes started locally in a sandbox of their own.

Everything lives under one lab directory (default /var/lib/cutover-lab, or $CUTOVER_LAB):
own sockets, data roots, exec roots, pid files, lxcfs mount point and cgroup subtree. The
lab never uses the default docker socket, /var/lib/docker, docker0 or /etc/docker, and
`down` stops only what `up` started (pid files whose process names the lab directory), then
sweeps the lab's cgroups and mounts so that even a crashed lab leaves a clean machine.
"""
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time

import yaml

from cutover import probe_image
from cutover.errors import CutoverError
from cutover.lab import cgroups, proc

DEFAULT_ROOT = "/var/lib/cutover-lab"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REQUIRED = {"dockerd": "docker.io", "containerd": "containerd", "runc": "runc", "lxcfs": "lxcfs"}


def default_root():
    return os.environ.get("CUTOVER_LAB", DEFAULT_ROOT)


def _say(msg):
    print(msg, file=sys.stderr, flush=True)


class Daemon:
    """One long-running process of the lab, known by its pid file."""
    kind = "daemon"

    def __init__(self, lab, name):
        self.lab, self.name = lab, name
        self.dir = os.path.join(lab.root, name)
        self.pidfile = os.path.join(lab.run_dir, f"{name}.pid")
        self.log = os.path.join(lab.log_dir, f"{name}.log")

    def pid(self):
        pid = proc.read_pidfile(self.pidfile)
        return pid if proc.ours(pid, self.lab.root) else None

    def argv(self):
        raise NotImplementedError

    def ready(self):
        raise NotImplementedError

    def start(self, timeout=30):
        if self.pid():
            return False
        os.makedirs(self.dir, exist_ok=True)
        self.prepare()
        p = proc.start_detached(self.argv(), self.log, cgroup_procs=self.lab.cgroup_procs())
        self._write_pid_if_needed(p.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise CutoverError(f"lab: {self.name} exited with {p.returncode} at start; see {self.log}: "
                                   f"{_tail(self.log)}")
            if self.ready():
                return True
            time.sleep(0.1)
        raise CutoverError(f"lab: {self.name} not ready after {timeout}s; see {self.log}: {_tail(self.log)}")

    def prepare(self):
        pass

    def _write_pid_if_needed(self, pid):
        pass

    def stop(self, grace=20):
        pid = proc.read_pidfile(self.pidfile)
        stopped = proc.terminate(pid, self.lab.root, grace) if pid else False
        self.cleanup()
        try:
            os.unlink(self.pidfile)
        except FileNotFoundError:
            pass
        return stopped

    def cleanup(self):
        pass

    def status(self):
        pid = self.pid()
        return {"name": self.name, "kind": self.kind, "running": bool(pid), "pid": pid}


class Lxcfs(Daemon):
    kind = "lxcfs"

    @property
    def mountpoint(self):
        return os.path.join(self.dir, "mnt")

    def prepare(self):
        os.makedirs(self.mountpoint, exist_ok=True)
        _umount_all_under(self.mountpoint)

    def argv(self):
        # -l: virtualize loadavg; --enable-cfs: cpuinfo/stat/online follow a CFS quota.
        return ["lxcfs", "-l", "--enable-cfs", "-p", self.pidfile, self.mountpoint]

    def ready(self):
        return os.path.exists(os.path.join(self.mountpoint, "proc", "meminfo"))

    def cleanup(self):
        _umount_all_under(self.mountpoint)


class Dockerd(Daemon):
    kind = "dockerd"

    def __init__(self, lab, name, live_restore=True, extra_config=None):
        super().__init__(lab, name)
        self.live_restore = live_restore
        self.extra_config = extra_config or {}

    @property
    def socket(self):
        return os.path.join(self.lab.run_dir, f"{self.name}.sock")

    @property
    def endpoint(self):
        return f"unix://{self.socket}"

    @property
    def config_path(self):
        return os.path.join(self.dir, "daemon.json")

    def config(self):
        cfg = {
            "data-root": os.path.join(self.dir, "data"),
            "exec-root": os.path.join(self.dir, "exec"),
            "pidfile": self.pidfile,
            "hosts": [self.endpoint],
            "live-restore": self.live_restore,
            # No shared bridge and no iptables: the lab's containers have only loopback.
            "bridge": "none", "iptables": False, "ip6tables": False, "ip-masq": False,
            "cgroup-parent": f"/{self.lab.cgroup_name}/{self.name}",
            "storage-driver": "overlay2",
            # Root here has a hard nofile limit of 20000; container ulimits must fit in it.
            "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 20000, "Hard": 20000}},
            "log-driver": "json-file",
        }
        cfg.update(self.extra_config)
        return cfg

    def prepare(self):
        with open(self.config_path, "w") as f:
            json.dump(self.config(), f, indent=1)
        # A stale socket from a crash would make dockerd refuse to listen.
        if os.path.exists(self.socket):
            os.unlink(self.socket)

    def argv(self, config_path=None):
        return ["dockerd", "--config-file", config_path or self.config_path]

    def ready(self):
        import socket
        if not os.path.exists(self.socket):
            return False
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(1)
        try:
            s.connect(self.socket)
            s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return b"OK" in s.recv(512)
        except OSError:
            return False
        finally:
            s.close()

    def remove_all_containers(self):
        """Every container on a lab daemon is the lab's or a harness run's: remove them."""
        if not self.pid():
            return 0
        import docker
        try:
            c = docker.DockerClient(base_url=self.endpoint, timeout=30)
            ids = [x["Id"] for x in c.api.containers(all=True)]
            for cid in ids:
                c.api.remove_container(cid, force=True, v=True)
            for v in c.api.volumes().get("Volumes") or []:
                c.api.remove_volume(v["Name"], force=True)
            return len(ids)
        except Exception as e:  # the daemon may be half dead: the cgroup sweep follows
            _say(f"lab: could not clean containers of {self.name}: {str(e).splitlines()[0][:200]}")
            return 0

    def stop(self, grace=20):
        self.remove_all_containers()
        return super().stop(grace)

    def cleanup(self):
        _umount_all_under(self.dir)


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
        self.docker = Dockerd(self, "docker", live_restore=True)
        # The same dockerd without live-restore: what containers go through when a site
        # forgot it (the lifecycle suite's negative control).
        self.docker_nlr = Dockerd(self, "docker-nlr", live_restore=False)
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
                _say(f"lab: {daemon.name:<12} {'started' if started else 'already running'}"
                     f" (pid {daemon.pid()}, {time.monotonic() - t0:.1f}s)")
            # Sockets are private: the run directory is 0700 and the sockets 0600.
            for d in self.daemons:
                if isinstance(d, Dockerd) and os.path.exists(d.socket):
                    os.chmod(d.socket, 0o600)
            t0 = time.monotonic()
            self.build_images()
            _say(f"lab: probe image  {probe_image.TAG} ready ({time.monotonic() - t0:.1f}s)")
            self.write_targets()
            _say(f"lab: targets      {self.targets_path}")
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
            _say(f"lab: nothing at {self.root}")
            return
        fd = self._lock()
        try:
            for daemon in reversed(self.daemons):
                stopped = daemon.stop()
                _say(f"lab: {daemon.name:<12} {'stopped' if stopped else 'was not running'}")
            killed = cgroups.sweep(self.cgroup_name)
            if killed:
                _say(f"lab: swept {killed} leftover process(es) from the lab's cgroups")
            left = _umount_all_under(self.root)
            if left:
                _say(f"lab: unmounted {left} leftover mount(s)")
        finally:
            os.close(fd)
        shutil.rmtree(self.root, ignore_errors=True)
        _say(f"lab: removed {self.root}")

    def status(self):
        return {"root": self.root, "targets": self.targets_path if os.path.exists(self.targets_path) else None,
                "daemons": [d.status() for d in self.daemons],
                "mounts": _mounts_under(self.root)}

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
    def target_data(self):
        me = os.path.join(REPO, "bin", "cutover")
        if os.environ.get("CUTOVER_LAB"):
            me = f"CUTOVER_LAB={self.root} {me}"

        def daemon_cmds(d):
            return {"stop": f"kill -TERM $(cat {d.pidfile})",
                    "kill": f"kill -KILL $(cat {d.pidfile})",
                    "start": f"{me} lab start {d.name}"}

        lx = self.lxcfs.mountpoint
        dk, nlr = self.docker, self.docker_nlr
        return {
            "docker": {"host": "local://", "driver": "docker", "endpoint": dk.endpoint, "runtime": "runc",
                       "image": probe_image.TAG, "daemon": daemon_cmds(dk),
                       "description": "dockerd 20.10 + runc, live-restore, no LXCFS (the 'before' state)"},
            "docker-lxcfs": {"host": "local://", "driver": "docker", "endpoint": dk.endpoint, "runtime": "runc",
                             "lxcfs": lx, "image": probe_image.TAG, "daemon": daemon_cmds(dk),
                             "description": "dockerd 20.10 + runc, LXCFS bind-mounted into every container (T4-like)"},
            "docker-no-live-restore": {"host": "local://", "driver": "docker", "endpoint": nlr.endpoint,
                                       "runtime": "runc", "image": probe_image.TAG, "daemon": daemon_cmds(nlr),
                                       "description": "a second dockerd 20.10 + runc without live-restore"},
        }

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


def _mounts_under(root):
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4].replace("\\040", " ")
            if mnt == root or mnt.startswith(root.rstrip("/") + "/"):
                out.append(mnt)
    return out


def _umount_all_under(root):
    import subprocess
    mounts = sorted(set(_mounts_under(root)), key=lambda m: -m.count("/"))
    for m in mounts:
        subprocess.run(["umount", "-l", m], capture_output=True, timeout=30)
    return len(mounts)


def _tail(path, n=3):
    try:
        with open(path, errors="replace") as f:
            lines = [l.strip() for l in f.readlines()[-n:]]
        return " | ".join(lines)[-400:]
    except OSError:
        return "(no log)"
