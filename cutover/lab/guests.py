"""Kernel-gate guests: `cutover lab up --guests 6.1,6.12,6.12-cgroup2` boots real kernels.

This machine's kernel cannot be swapped, and KVM is not usable for stock kernels here, so a
kernel patch is certified in a qemu guest under TCG (software emulation, about 30 s to ready):
the cached Debian 12 image of guest_image.py, booted with one of its kernels, the cgroup layout
chosen on the kernel command line (`-cgroup2`: systemd.unified_cgroup_hierarchy=1
cgroup_no_v1=all, a pure v2 host; otherwise the v1 layout of this machine).

Each guest vm-<spec> is a Daemon of the lab: a qemu process known by its pid file, with
- the image as a read-only base (snapshot=on: writes go to a temporary file in the guest's lab
  directory and vanish with it), -smp 2 -m 2048;
- qemu's user network with restrict=on (the guest reaches nothing, not even the machine) and
  one forwarded port, 127.0.0.1:<free port> -> the guest's sshd;
- inside, started by the guest's own boot script: lxcfs -l --enable-cfs, dockerd 20.10 with the
  lab's configuration (live-restore), sshd last, so that an ssh banner means ready.
The lab writes <lab>/guests/ssh_config (strict known_hosts with the image's host key, one
master connection per guest) and one targets file per guest, <lab>/guests/vm-<spec>.yaml, with
targets `docker` and `docker-lxcfs` on host ssh://vm-<spec>: the same names for every kernel, so
that `cutover diff` and `cutover gate --baseline` compare the runs check by check. The daemon
events are /usr/local/sbin/cutover-daemon in the guest (run there, like any host's commands). Guests are not in the lab's
main targets file: `certify.sh` certifies this machine, the kernel gate certifies kernels.
"""
import json
import os
import re
import socket
import subprocess

import yaml

from cutover import probe_image
from cutover.errors import CutoverError
from cutover.results import write_text_atomic
from cutover.lab import guest_image
from cutover.lab.daemon import Daemon, load_state, say

SPEC = re.compile(r"^(\d+\.\d+)(-cgroup2)?$")
# Emulation makes every container start and stop slow (a `stop -t 2` took up to 12.8 s with three
# guests on this 2-core machine, against 2.0-2.3 s here): timing checks' slack x 5 (targets.py).
TIME_FACTOR = 5
BOOT_TIMEOUT = 300       # TCG on a loaded 2-core machine: boots take 30 s idle, several times that busy


def parse_specs(value):
    """'6.1,6.12-cgroup2' -> ['6.1', '6.12-cgroup2']; 'none' -> []."""
    if value in ("none", ""):
        return []
    specs = [s.strip() for s in value.split(",") if s.strip()]
    for s in specs:
        m = SPEC.match(s)
        if not m or m.group(1) not in guest_image.KERNELS:
            raise CutoverError(f"--guests: '{s}' is not KERNEL[-cgroup2] with KERNEL one of "
                               f"{', '.join(guest_image.KERNELS)} (e.g. 6.1,6.12,6.12-cgroup2)")
    if len(set(specs)) != len(specs):
        raise CutoverError(f"--guests: '{value}' names a guest twice")
    return specs


class Guests:
    """The lab's guests (`lab up --guests ...`), kept in <lab>/guests/state.json."""

    def __init__(self, lab):
        self.lab = lab
        self.dir = os.path.join(lab.root, "guests")
        self.state_path = os.path.join(self.dir, "state.json")
        self.ssh_config = os.path.join(self.dir, "ssh_config")
        self.known_hosts = os.path.join(self.dir, "known_hosts")
        self.guests = [Guest(self, s) for s in load_state(self.state_path).get("guests", [])]
        lab.daemons.extend(self.guests)

    def configure(self, value):
        specs = parse_specs(value)
        keep = [g for g in self.guests if g.spec in specs]
        for g in self.guests:
            if g not in keep:
                g.stop()
                self.lab.daemons.remove(g)
                say(f"lab: {g.name:<12} removed")
        have = {g.spec for g in keep}
        new = [Guest(self, s) for s in specs if s not in have]
        self.lab.daemons.extend(new)
        self.guests = keep + new
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        _write(self.state_path, json.dumps({"guests": specs}))

    def write_ssh_files(self, image):
        cfg = [f"# Written by 'cutover lab up --guests' for the lab at {self.lab.root}.", ""]
        for g in self.guests:
            port = g.port()
            if port:
                cfg += [f"Host {g.name}", "  HostName 127.0.0.1", f"  Port {port}", ""]
        cfg += ["Host *", "  User root", f"  IdentityFile {image.key}", "  IdentitiesOnly yes",
                # Every guest has the image's host key: one alias, one strict known_hosts line.
                "  HostKeyAlias cutover-guest", f"  UserKnownHostsFile {self.known_hosts}",
                "  GlobalKnownHostsFile /dev/null", "  StrictHostKeyChecking yes", "  BatchMode yes",
                "  ConnectTimeout 20", "  ServerAliveInterval 10", "  ServerAliveCountMax 6",
                "  ControlMaster auto", f"  ControlPath {self.dir}/cm-%n", "  ControlPersist 120",
                "  LogLevel ERROR", ""]
        _write(self.known_hosts, f"cutover-guest {image.host_key}\n")
        _write(self.ssh_config, "\n".join(cfg))


class Guest(Daemon):
    """One qemu guest booted with one kernel; its targets file is <lab>/guests/<name>.yaml."""
    kind = "guest"

    def __init__(self, guests, spec):
        super().__init__(guests.lab, f"vm-{spec}")
        self.guests, self.spec = guests, spec
        self.series = SPEC.match(spec).group(1)
        self.cgroup2 = spec.endswith("-cgroup2")
        self.dir = os.path.join(guests.dir, self.name)
        self.pidfile = os.path.join(self.dir, "qemu.pid")
        self.port_path = os.path.join(self.dir, "ssh.port")
        self.targets_path = os.path.join(guests.dir, f"{self.name}.yaml")
        self.console = os.path.join(self.lab.log_dir, f"{self.name}-console.log")

    def port(self):
        try:
            with open(self.port_path) as f:
                return int(f.read())
        except (OSError, ValueError):
            return None

    def prepare(self):
        # A free port on loopback for qemu's forward (qemu binds it; the window is tiny).
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        _write(self.port_path, str(port))
        if os.path.exists(self.console):
            os.unlink(self.console)

    def argv(self):
        kernel, initrd, _ = self.image.kernel(self.series)
        cmdline = f"root=/dev/vda rw console=ttyS0 net.ifnames=0 init=/sbin/init cutover.hostname={self.name}"
        if self.cgroup2:
            cmdline += " systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all"
        return ["qemu-system-x86_64", "-name", f"cutover-{self.name}", "-accel", "tcg", "-cpu", "max",
                "-smp", "2", "-m", "2048", "-display", "none", "-monitor", "none", "-no-reboot",
                "-serial", f"file:{self.console}", "-kernel", kernel, "-initrd", initrd, "-append", cmdline,
                "-drive", f"file={self.image.disk},format=raw,if=virtio,snapshot=on",
                "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{self.port()}-:22",
                "-device", "virtio-net-pci,netdev=n0", "-pidfile", self.pidfile]

    def environment(self):
        # snapshot=on's temporary overlay goes to $TMPDIR: the guest's lab directory.
        return dict(os.environ, TMPDIR=self.dir)

    def ready(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port()), timeout=2) as s:
                s.settimeout(2)
                return s.recv(16).startswith(b"SSH-")   # qemu accepts at once; sshd speaks last
        except OSError:
            return False

    def start(self, timeout=BOOT_TIMEOUT):
        """Boot (unless running), then the probe image and the targets file (every `lab up`)."""
        self.image = guest_image.ensure()
        started = False
        if not self.pid():
            say(f"lab: {self.name:<12} booting kernel {self.series}{' (cgroup v2)' if self.cgroup2 else ''} "
                f"under TCG (about 30 s; console {self.console})")
            started = super().start(timeout)
        self.guests.write_ssh_files(self.image)
        self.ensure_image()
        self.write_targets()
        return started

    def ensure_image(self):
        from cutover import targets
        from cutover.drivers import driver_for
        t = targets.Target(name=f"{self.name}-build", driver="docker", endpoint=f"ssh://{self.name}",
                           ssh_config=self.guests.ssh_config)
        d = driver_for(t, timeout=300)
        if not d.image_exists(probe_image.TAG):
            d.build_image(probe_image.context_tar(), probe_image.TAG, labels=probe_image.LABELS)

    def stop(self, grace=20):
        if os.path.exists(self.guests.ssh_config):
            subprocess.run(["ssh", "-F", self.guests.ssh_config, "-O", "exit", self.name],
                           capture_output=True, timeout=10)
        # The guest's disk is a throwaway snapshot: stopping qemu loses nothing of the cache.
        stopped = super().stop(grace)
        for path in (self.port_path, self.targets_path):
            if os.path.exists(path):
                os.unlink(path)
        return stopped

    def daemon_commands(self, events=("stop", "kill", "start", "upgrade", "containerd-kill")):
        # Daemon commands run on the target's host, i.e. in the guest (over testinfra's ssh).
        return {ev: f"cutover-daemon {ev}" for ev in events}

    def status(self):
        return dict(super().status(), port=self.port(), kernel=self.series, cgroup2=self.cgroup2,
                    targets=self.targets_path if os.path.exists(self.targets_path) else None)

    def write_targets(self):
        _, _, rel = self.image.kernel(self.series)
        pk = self.image.info["packages"]
        what = (f"guest {self.name}: Debian 12, kernel {rel}, cgroup {'v2' if self.cgroup2 else 'v1'}, "
                f"docker.io {pk.get('docker.io')}, lxcfs {pk.get('lxcfs')}")
        base = {"host": f"ssh://{self.name}", "driver": "docker", "endpoint": f"ssh://{self.name}",
                "runtime": "runc", "image": probe_image.TAG, "daemon": self.daemon_commands(), "registry": None,
                "time_factor": TIME_FACTOR}
        data = {"lab": self.lab.root, "ssh_config": self.guests.ssh_config, "targets": {
            "docker": dict(base, description=f"{what}; no LXCFS"),
            "docker-lxcfs": dict(base, lxcfs="/var/lib/lxcfs", description=f"{what}; LXCFS bind-mounted",
                                 daemon=dict(base["daemon"], **self.daemon_commands(("lxcfs-restart",)))),
        }}
        _write(self.targets_path, f"# Written by 'cutover lab up --guests'. {what}.\n"
               + yaml.safe_dump(data, sort_keys=False))


def _write(path, text):
    write_text_atomic(path, text, mode=0o600)      # keys' paths, ports: root's business only
