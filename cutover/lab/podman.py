"""A private podman API service: `podman system service` on the lab's own socket and storage.

Podman keeps state in several host-wide places by default (/var/lib/containers,
/run/containers, /run/libpod, /dev/shm/libpod_lock, CNI's /etc/cni and /var/lib/cni, and a
blob-info cache in /var/lib/containers/cache that no setting moves). The lab keeps all of it
under `<lab>/podman`:

- `containers.conf` and `storage.conf` of the lab's own, passed as CONTAINERS_CONF and
  CONTAINERS_STORAGE_CONF (they replace the system's files); storage.conf is written once and
  never changed, since podman refuses a storage root that differs from the one of first use;
- file locks under the lab instead of the host-wide shared-memory lock segment;
- no network: containers get `netns none` (the lab's targets also say `network: none`), and
  CNI's plugin directory is an empty one of the lab's, so nothing can create a bridge;
- the service runs in a mount namespace of its own, made once and kept for the lab's life, in
  which /var/lib and /etc are read-only except the lab directory: podman falls back to an
  in-memory blob-info cache instead of writing /var/lib/containers. The lab directory is a shared mount on the host, so mounts
  made there later (an lxcfs restart) reach the service's namespace; mounts the service makes
  (container root file systems) stay in its namespace and die with it.
"""
import os
import shlex
import socket
import subprocess

from cutover import probe_image
from cutover.lab.daemon import Daemon, mounts_under, remove_all_containers, umount_all_under

ULIMIT = 20000      # root's hard open-files limit here: container ulimits must fit in it


def share_lab_dir(lab):
    """Make the lab directory a shared mount (once), so its later mounts propagate to slaves."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if parts[4] == lab.root and any(o.startswith("shared:") for o in parts[6:parts.index("-")]):
                return
    # --rbind keeps the mounts already under the lab (lxcfs, dockerd's) visible on top.
    for argv in (["mount", "--rbind", lab.root, lab.root], ["mount", "--make-rshared", lab.root]):
        subprocess.run(argv, check=True, capture_output=True, timeout=30)


def ping(sock_path):
    if not os.path.exists(sock_path):
        return False
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(1)
    try:
        s.connect(sock_path)
        s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
        return b"OK" in s.recv(512)
    except OSError:
        return False
    finally:
        s.close()


class Podman(Daemon):
    kind = "podman"
    writes_pidfile = False

    def __init__(self, lab, name, serves=None):
        super().__init__(lab, name)
        # {target name: {"lxcfs": bool, "description": str, "options": {}}}
        self.serves = serves or {}

    # -- paths -------------------------------------------------------------------------
    def path(self, *p):
        return os.path.join(self.dir, *p)

    @property
    def socket(self):
        return os.path.join(self.lab.run_dir, f"{self.name}.sock")

    @property
    def endpoint(self):
        return f"unix://{self.socket}"

    @property
    def cgroup_parent(self):
        return f"/{self.lab.cgroup_name}/{self.name}"

    # -- configuration ---------------------------------------------------------------------
    def containers_conf(self):
        q = lambda v: '"' + v + '"'
        return "\n".join([
            "# Written by 'cutover lab up'. It replaces the system's containers.conf files, so",
            "# everything not set here is podman's built-in default (e.g. Docker's capability set).",
            "[containers]",
            f'default_ulimits = ["nofile={ULIMIT}:{ULIMIT}", "nproc={ULIMIT}:{ULIMIT}"]',
            'netns = "none"',
            f"init_path = {q('/usr/bin/catatonit')}",
            "[engine]",
            'cgroup_manager = "cgroupfs"',
            'events_logger = "file"',
            f"events_logfile_path = {q(self.path('events.log'))}",
            # The default shm lock is one host-wide segment every podman shares.
            'lock_type = "file"',
            f"tmp_dir = {q(self.path('tmp'))}",
            f"static_dir = {q(self.path('storage', 'libpod'))}",
            f"volume_path = {q(self.path('storage', 'volumes'))}",
            f"image_copy_tmp_dir = {q(self.path('tmp'))}",
            'runtime = "crun"',
            # An exec session's conmon otherwise lingers 300 s after every exec.
            "exit_command_delay = 10",
            "[network]",
            f"network_config_dir = {q(self.path('cni'))}",
            f"cni_plugin_dirs = [{q(self.path('no-cni-plugins'))}]",
            ""])

    def storage_conf(self):
        return "\n".join([
            "# Written by 'cutover lab up' once: podman refuses a storage root other than the first.",
            "[storage]",
            'driver = "overlay"',
            f'graphroot = "{self.path("storage")}"',
            f'runroot = "{self.path("run")}"',
            ""])

    def registries_conf(self):
        """The lab's loopback registry, plain HTTP (podman, unlike dockerd, trusts no address
        by default); no search registries, so nothing short-named is ever looked up outside."""
        lines = ["# Written by 'cutover lab up'. It replaces the system's registries.conf.",
                 "unqualified-search-registries = []", ""]
        if self.lab.registry.address:
            lines += ["[[registry]]", f'location = "{self.lab.registry.address}"', "insecure = true", ""]
        return "\n".join(lines)

    def environment(self):
        return dict(os.environ, CONTAINERS_CONF=self.path("containers.conf"),
                    CONTAINERS_STORAGE_CONF=self.path("storage.conf"),
                    CONTAINERS_REGISTRIES_CONF=self.path("registries.conf"),
                    TMPDIR=self.path("tmp"))

    def prepare(self):
        for d in ("tmp", "cni", "no-cni-plugins"):
            os.makedirs(self.path(d), exist_ok=True)
        with open(self.path("containers.conf"), "w") as f:
            f.write(self.containers_conf())
        with open(self.path("registries.conf"), "w") as f:
            f.write(self.registries_conf())
        if not os.path.exists(self.path("storage.conf")):
            with open(self.path("storage.conf"), "w") as f:
                f.write(self.storage_conf())
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        share_lab_dir(self.lab)
        # The namespace file lives on a private mount: a namespace file on a shared mount
        # would propagate into the namespace itself, which the kernel refuses.
        if self.ns_dir not in mounts_under(self.ns_dir):
            os.makedirs(self.ns_dir, exist_ok=True)
            for argv in (["mount", "--bind", self.ns_dir, self.ns_dir], ["mount", "--make-private", self.ns_dir]):
                subprocess.run(argv, check=True, capture_output=True, timeout=30)
        if not os.path.exists(self.ns_file):
            open(self.ns_file, "w").close()

    # The service's mount namespace is made once and kept (bound to ns_file) for the lab's
    # life: a restarted service (the lifecycle suite's daemon events) enters the same one, as a
    # restarted podman on a host shares the host's, and so sees its running containers' root
    # file systems, which are mounted there.
    @property
    def ns_dir(self):
        return self.path("ns")

    @property
    def ns_file(self):
        return os.path.join(self.ns_dir, "mnt")

    def argv(self):
        podman = ["podman", "--root", self.path("storage"), "--runroot", self.path("run"),
                  "system", "service", "--time=0", self.endpoint]
        # The lab's own directory as the working directory: conmon drops files in it (an
        # `oom` marker), which must not land wherever `lab up` was called from.
        if self.ns_file in mounts_under(self.ns_dir):
            return ["nsenter", f"--mount={self.ns_file}", f"--wd={self.dir}", "--"] + podman
        # A new namespace: /var/lib and /etc read-only. Only the top mount of /var/lib turns
        # read-only; the lab directory, a mount of its own, stays writable (and a slave of
        # the host's, see share_lab_dir).
        setup = ("mount --rbind /var/lib /var/lib && mount -o remount,bind,ro /var/lib && "
                 f"mount --bind /etc /etc && mount -o remount,bind,ro /etc && cd {shlex.quote(self.dir)} && ")
        return ["unshare", f"--mount={self.ns_file}", "--propagation", "slave", "--", "sh", "-c",
                setup + "exec " + " ".join(shlex.quote(a) for a in podman)]

    def ready(self):
        return ping(self.socket)

    # -- targets -----------------------------------------------------------------------
    def targets(self):
        out = {}
        for name, t in self.serves.items():
            entry = {"host": "local://", "driver": "podman", "endpoint": self.endpoint,
                     "runtime": "crun", "image": probe_image.TAG,
                     "daemon": self.daemon_commands(), "description": t.get("description", ""),
                     "options": dict({"network": "none", "cgroup_parent": self.cgroup_parent},
                                     **t.get("options", {}))}
            if t.get("lxcfs"):
                entry["lxcfs"] = self.lab.lxcfs.mountpoint
                entry["daemon"]["lxcfs-restart"] = self.lab.lxcfs.restart_command()
            out[name] = entry
        return out

    # -- stop --------------------------------------------------------------------------
    def remove_all_containers(self):
        """Every container in the lab's podman storage is the lab's or a run's: remove them."""
        if not self.pid():
            return 0
        return remove_all_containers(self.endpoint, self.name, volumes=False)

    def stop(self, grace=20):
        self.remove_all_containers()
        return super().stop(grace)

    def cleanup(self):
        umount_all_under(self.dir)
