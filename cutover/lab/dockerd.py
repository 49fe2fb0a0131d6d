"""A private dockerd: own config file, data root, exec root, socket, pid file and cgroup parent."""
import json
import os

from cutover import probe_image
from cutover.errors import CutoverError
from cutover.lab import proc
from cutover.lab.daemon import Daemon, remove_all_containers, umount_all_under


class Dockerd(Daemon):
    kind = "dockerd"
    # `cutover lab start NAME --variant upgraded`: the same daemon restarted with a changed
    # configuration (the lifecycle suite's "upgrade" event): other log options and another
    # default OCI runtime (an alias of runc, so that existing containers keep working).
    VARIANTS = {"upgraded": {"log-opts": {"max-size": "20m", "max-file": "3"},
                             "runtimes": {"runc-upgraded": {"path": "runc"}},
                             "default-runtime": "runc-upgraded"}}

    def __init__(self, lab, name, live_restore=True, extra_config=None, serves=None):
        super().__init__(lab, name)
        self.live_restore = live_restore
        self.extra_config = extra_config or {}
        self.variant = None
        # {target name: {"lxcfs": bool, "runtime": str, "description": str, "options": {}}}
        self.serves = serves or {}

    def targets(self):
        out = {}
        for name, t in self.serves.items():
            entry = {"host": "local://", "driver": "docker", "endpoint": self.endpoint,
                     "runtime": t.get("runtime", "runc"), "image": probe_image.TAG,
                     "daemon": self.daemon_commands(), "description": t.get("description", "")}
            if t.get("control"):
                entry["control"] = True
            if t.get("lxcfs"):
                entry["lxcfs"] = self.lab.lxcfs.mountpoint
                entry["daemon"]["lxcfs-restart"] = self.lab.lxcfs.restart_command()
            if t.get("options"):
                entry["options"] = t["options"]
            out[name] = entry
        return out

    @property
    def socket(self):
        return os.path.join(self.lab.run_dir, f"{self.name}.sock")

    @property
    def endpoint(self):
        return f"unix://{self.socket}"

    @property
    def config_path(self):
        return os.path.join(self.dir, f"daemon-{self.variant}.json" if self.variant else "daemon.json")

    @property
    def containerd_pidfile(self):
        """The containerd this dockerd starts and supervises itself (no --containerd given)."""
        return os.path.join(self.dir, "exec", "containerd", "containerd.pid")

    def daemon_commands(self):
        me = self.lab.cutover_cmd()
        return dict(super().daemon_commands(),
                    upgrade=f"{me} lab signal {self.name} TERM && {me} lab start {self.name} --variant upgraded",
                    **{"containerd-kill": f"{me} lab kill-containerd {self.name}"})

    # What every dockerd of Cutover's runs with, here or in a kernel-gate guest (guest_image.py).
    BASE_CONFIG = {
        # No shared bridge and no iptables: the lab's containers have only loopback.
        "bridge": "none", "iptables": False, "ip6tables": False, "ip-masq": False,
        "storage-driver": "overlay2",
        # Root here has a hard nofile limit of 20000; container ulimits must fit in it.
        "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 20000, "Hard": 20000}},
        "log-driver": "json-file",
    }

    def config(self):
        cfg = {
            "data-root": os.path.join(self.dir, "data"),
            "exec-root": os.path.join(self.dir, "exec"),
            "pidfile": self.pidfile,
            # dockerd 20.10 otherwise writes its trust key (the engine ID) to /etc/docker/key.json:
            # the lab must not touch /etc/docker, and each lab daemon is its own engine.
            "deprecated-key-path": os.path.join(self.dir, "key.json"),
            "hosts": [self.endpoint],
            "live-restore": self.live_restore,
            "cgroup-parent": f"/{self.lab.cgroup_name}/{self.name}",
            **self.BASE_CONFIG,
        }
        cfg.update(self.extra_config)
        if self.variant:
            if self.variant not in self.VARIANTS:
                raise CutoverError(f"lab: {self.name} has no variant '{self.variant}' "
                                   f"(known: {', '.join(self.VARIANTS)})")
            variant = dict(self.VARIANTS[self.variant])
            # Add to the runtimes the daemon already knows (crun): an upgrade must not drop them.
            variant["runtimes"] = dict(cfg.get("runtimes", {}), **variant.get("runtimes", {}))
            cfg.update(variant)
        return cfg

    def prepare(self):
        with open(self.config_path, "w") as f:
            json.dump(self.config(), f, indent=1)
        # A stale socket from a crash would make dockerd refuse to listen.
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        # After a SIGKILL the pid files stay: dockerd refuses to start while /proc/<pid> exists,
        # and takes a zombie containerd (killed with it via its parent-death signal) for a live
        # one it then waits on -- both for as long as PID 1 leaves the dead processes zombies.
        for pidfile in (self.pidfile, self.containerd_pidfile):
            if os.path.exists(pidfile) and not proc.alive(proc.read_pidfile(pidfile) or 0):
                os.unlink(pidfile)

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
        return remove_all_containers(self.endpoint, self.name)

    def stop(self, grace=20):
        self.remove_all_containers()
        return super().stop(grace)

    def cleanup(self):
        umount_all_under(self.dir)


class Containerd(Daemon):
    """A containerd of the lab's own, run as a service of its own (as Debian's packaging runs
    containerd beside dockerd), which nothing restarts when it dies: a site whose containerd
    service has no restart policy. Only ExternalContainerdDockerd uses it."""
    kind = "containerd"
    writes_pidfile = False

    @property
    def socket(self):
        return os.path.join(self.dir, "containerd.sock")

    @property
    def config_path(self):
        return os.path.join(self.dir, "containerd.toml")

    def config(self):
        q = json.dumps      # a JSON string is a TOML basic string
        return "\n".join([
            "version = 2",
            f"root = {q(os.path.join(self.dir, 'root'))}",
            f"state = {q(os.path.join(self.dir, 'state'))}",
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
            "[grpc]", f"  address = {q(self.socket)}",
            "[debug]", '  address = ""',
            "[metrics]", '  address = ""',
            # Its default is /opt/containerd: the lab keeps everything under its own directory.
            '[plugins."io.containerd.internal.v1.opt"]', f"  path = {q(os.path.join(self.dir, 'opt'))}",
            ""])

    def prepare(self):
        with open(self.config_path, "w") as f:
            f.write(self.config())
        for sock in (self.socket, self.socket + ".ttrpc"):
            if os.path.exists(sock):
                os.unlink(sock)

    def argv(self):
        return ["containerd", "--config", self.config_path]

    def ready(self):
        import socket
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(1)
        try:
            s.connect(self.socket)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def cleanup(self):
        umount_all_under(self.dir)


class ExternalContainerdDockerd(Dockerd):
    """A dockerd (live-restore) on an external containerd nothing restarts (`containerd` in
    daemon.json): the lifecycle suite's negative control for a containerd kill. Not started by
    `lab up` and in no targets file: `cutover lab start NAME` starts it (its containerd first),
    and the lifecycle self-test writes its target from on_demand_targets()."""

    def __init__(self, lab, name, containerd, serves=None):
        super().__init__(lab, name, live_restore=True, serves=serves)
        self.containerd = containerd

    @property
    def containerd_pidfile(self):
        return self.containerd.pidfile

    def config(self):
        return dict(super().config(), containerd=self.containerd.socket)

    def start(self, timeout=30):
        # `daemon.start` after a containerd kill: the dockerd still runs, its containerd not.
        self.containerd.start(timeout)
        return super().start(timeout)

    def daemon_commands(self):
        me = self.lab.cutover_cmd()
        # SIGKILL, returning once it is gone; nothing brings it back until daemon.start.
        return dict(super().daemon_commands(),
                    **{"containerd-kill": f"{me} lab signal {self.containerd.name} KILL"})

    def on_demand_targets(self):
        return Dockerd.targets(self)

    def targets(self):
        return {}       # in no targets file of `lab up` (see the class comment)
