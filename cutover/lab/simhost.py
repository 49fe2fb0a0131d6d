"""Simulated hosts: `cutover lab up --hosts N` makes N "machines" on this one.

Each host hN is
- a holder process in its own network, mount and UTS namespaces (`unshare`), hostname hN, with
  lab directories bind-mounted over /run, /etc/docker, /var/lib/lxcfs (and /var/lib/docker when
  the machine has one), so the host's daemons use the default paths of a real machine
  (/var/run/docker.sock, /var/run/docker.pid) without touching this machine's;
- a veth pair from its eth0 to the lab's bridge `cvr<id>0`, on a private /24 of the lab's own
  (the bridge holds .1; no route, NAT or forwarding: nothing leaves the machine);
- inside it (`nsenter --net --mount --uts`, not `ip netns exec`, which remounts /sys and hides
  the cgroup mounts): Debian's sshd listening only on the host's address, its own lxcfs and
  its own dockerd (live-restore), each in the lab's cgroup, known by its pid file.

The lab writes, under <lab>/fleet/: a client key pair, the hosts' keys in known_hosts
(StrictHostKeyChecking yes), an ssh config (ControlMaster/ControlPath, BindInterface to the
lab's bridge so that no ssh of the lab's can ever leave through another interface) and an
Ansible inventory. Targets: hN-docker and hN-docker-lxcfs on host ssh://hN (or ansible://hN).

Variants (`--host-variant 2:lxcfs-default`) make hosts differ the way real fleets do:
  no-live-restore  dockerd without live-restore
  no-lxcfs         no lxcfs on the host (and no hN-docker-lxcfs target)
  lxcfs-default    lxcfs with Debian's default options (no -l, no --enable-cfs)
  ansible          the host's targets reach it through the inventory (ansible://hN)
  trixie           the host runs Debian 13's dockerd, containerd and runc: the cached root of
                   `lab up --release trixie` (cutover/lab/release.py) as the root of a mount
                   namespace inside the host's (pivot_root); its sshd and lxcfs stay the
                   machine's (trixie's lxcfs cannot serve here, see release.ReleaseLxcfs)

The lab writes <lab>/fleet/releases/<release>.yaml for each release its hosts run (bookworm: the
first host without a release variant), the release's host under the role names docker and
docker-lxcfs, so that a run on each can be held to the other by `cutover gate --baseline`.
"""
import hashlib
import ipaddress
import json
import os
import shutil
import socket
import subprocess

from cutover import probe_image
from cutover.errors import CutoverError
from cutover.results import write_text_atomic
from cutover.lab import proc
from cutover.lab import release as releases
from cutover.lab.daemon import Daemon, load_state, say
from cutover.lab.dockerd import Dockerd
from cutover.lab.lxcfs import Lxcfs

VARIANTS = {"no-live-restore", "no-lxcfs", "lxcfs-default", "ansible", *releases.RELEASES}
REQUIRED = {"sshd": "openssh-server", "ssh": "openssh-client", "ssh-keygen": "openssh-client",
            "unshare": "util-linux", "nsenter": "util-linux", "ip": "iproute2"}
MAX_HOSTS = 50
REMOTE_SOCKET = "/var/run/docker.sock"

# Runs as the holder inside the new namespaces: mounts, then becomes a sleep named after the
# host directory (so that the lab recognizes its own process by its command line).
HOLDER = r"""
set -e
root=$1
hostname "$2"
# The copies of this machine's container mounts (other labs' overlays, lxcfs, netns files)
# are not this host's: a real host would not have them, and they would pin their namespaces.
grep -E ' - (overlay|fuse\.lxcfs|nsfs) ' /proc/self/mountinfo | awk '{print $5}' | sort -r |
  while read -r m; do umount -l "$m" 2>/dev/null || true; done
mount --bind "$root/run" /run
[ -d /etc/docker ] && mount --bind "$root/etc-docker" /etc/docker
[ -d /var/lib/docker ] && mount --bind "$root/docker" /var/lib/docker
[ -d /var/lib/lxcfs ] && mount --bind "$root/lxcfs" /var/lib/lxcfs
ip link set lo up
: > "$root/ready"
exec -a "cutover-host:$root" sleep infinity
"""


def _run(argv, timeout=30, check=True):
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise CutoverError(f"lab: {' '.join(argv)[:120]} failed: {(res.stderr or res.stdout).strip()[:300]}")
    return res


def parse_variants(specs, n):
    """['2:no-lxcfs', '3:ansible,no-live-restore'] -> {2: {'no-lxcfs'}, 3: {...}}."""
    out = {}
    for spec in specs or []:
        idx, sep, names = spec.partition(":")
        if not sep or not idx.strip().isdigit():
            raise CutoverError(f"--host-variant '{spec}': expected HOST:VARIANT[,VARIANT] (e.g. 2:no-lxcfs)")
        i = int(idx)
        if not 1 <= i <= n:
            raise CutoverError(f"--host-variant '{spec}': host {i} is not one of 1..{n}")
        for v in (x.strip() for x in names.split(",")):
            if v not in VARIANTS:
                raise CutoverError(f"--host-variant '{spec}': unknown variant '{v}' (known: {', '.join(sorted(VARIANTS))})")
            out.setdefault(i, set()).add(v)
    for i, vs in out.items():
        if len(vs & set(releases.RELEASES)) > 1:
            raise CutoverError(f"--host-variant: host {i} cannot run two releases ({', '.join(sorted(vs))})")
    return out


class SimHosts:
    """The lab's simulated hosts, their bridge and the ssh/Ansible files that reach them."""

    def __init__(self, lab):
        self.lab = lab
        self.dir = os.path.join(lab.root, "fleet")
        self.state_path = os.path.join(self.dir, "state.json")
        self.lab_id = hashlib.sha1(lab.root.encode()).hexdigest()[:8]
        self.bridge = f"cvr{self.lab_id}0"
        self.ssh_config = os.path.join(self.dir, "ssh_config")
        self.inventory = os.path.join(self.dir, "inventory.yaml")
        self.key = os.path.join(self.dir, "id_ed25519")
        self.known_hosts = os.path.join(self.dir, "known_hosts")
        self.state = self._load()
        self.hosts = [SimHost(self, i, set(v)) for i, v in enumerate(self.state.get("hosts", []), 1)]
        lab.daemons.extend(self.hosts)

    def _load(self):
        return load_state(self.state_path)

    def _save(self):
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f, indent=1)
        os.replace(tmp, self.state_path)

    # -- configuration (lab up --hosts N --host-variant I:V) --------------------------------
    def configure(self, n, variant_specs=None):
        if not 0 <= n <= MAX_HOSTS:
            raise CutoverError(f"--hosts: {n} is not in 0..{MAX_HOSTS}")
        variants = parse_variants(variant_specs, n)
        if n:
            for binary, package in REQUIRED.items():
                if not shutil.which(binary):
                    raise CutoverError(f"lab: '{binary}' not found: install Debian's {package} package (see README)")
        want = [sorted(variants.get(i, ())) for i in range(1, n + 1)]
        keep = []
        for h in self.hosts:
            if h.index <= n and sorted(h.variants) == want[h.index - 1]:
                keep.append(h)
            else:      # gone, or its variants changed: rebuilt from scratch
                h.stop()
                h.remove_files()
                say(f"lab: {h.name:<12} removed")
        for h in self.hosts:
            self.lab.daemons.remove(h)
        have = {h.index for h in keep}
        self.hosts = sorted(keep + [SimHost(self, i, set(want[i - 1])) for i in range(1, n + 1) if i not in have],
                            key=lambda h: h.index)
        self.lab.daemons.extend(self.hosts)
        if n and "subnet" not in self.state:
            self.state["subnet"] = str(self._free_subnet())
        self.state["hosts"] = want
        self._save()
        if not n:
            self.sweep()

    def _free_subnet(self):
        """A /24 of 10.64.0.0/10 picked from the lab's id, not overlapping any route or address."""
        used = []
        for argv in (["ip", "-4", "-o", "addr"], ["ip", "-4", "route"]):
            for line in _run(argv).stdout.splitlines():
                for word in line.split():
                    try:
                        used.append(ipaddress.ip_network(word, strict=False))
                    except ValueError:
                        pass
        h = int(self.lab_id, 16)
        for k in range(256):
            net = ipaddress.ip_network(f"10.{64 + (h + k) % 64}.{(h >> 8) % 256}.0/24")
            if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
                return net
        raise CutoverError("lab: no free /24 in 10.64.0.0/10 for the simulated hosts")

    @property
    def subnet(self):
        return ipaddress.ip_network(self.state["subnet"])

    def address(self, index):
        return str(self.subnet.network_address + 10 + index)

    @property
    def gateway(self):
        return str(self.subnet.network_address + 1)

    # -- shared pieces: bridge, keys, files --------------------------------------------------
    def ensure_bridge(self):
        if not os.path.exists(f"/sys/class/net/{self.bridge}"):
            _run(["ip", "link", "add", self.bridge, "type", "bridge"])
            _quiet_ipv6(self.bridge)
            _run(["ip", "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge])
        _run(["ip", "link", "set", self.bridge, "up"])

    def ensure_keys(self):
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        if not os.path.exists(self.key):
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"cutover-lab-{self.lab_id}", "-f", self.key])
        shutil.copyfile(self.key + ".pub", os.path.join(self.dir, "authorized_keys"))

    def write_files(self):
        """ssh config, known_hosts and inventory for the hosts as they are now."""
        self.ensure_keys()
        kh, cfg = [], [f"# Written by 'cutover lab up --hosts N' for the lab at {self.lab.root}.",
                       "# Use with: ssh -F this-file h1", ""]
        for h in self.hosts:
            h.ensure_host_key()
            with open(h.host_key + ".pub") as f:
                kind, b64 = f.read().split()[:2]
            kh.append(f"{h.name},{h.address} {kind} {b64}")
            cfg += [f"Host {h.name}", f"  HostName {h.address}", ""]
        cfg += ["Host *", "  User root", "  Port 22",
                f"  IdentityFile {self.key}", "  IdentitiesOnly yes",
                f"  UserKnownHostsFile {self.known_hosts}", "  GlobalKnownHostsFile /dev/null",
                "  StrictHostKeyChecking yes", "  BatchMode yes", "  ConnectTimeout 5",
                "  ServerAliveInterval 5", "  ServerAliveCountMax 3",
                # One master connection per host, shared by every ssh of every worker.
                "  ControlMaster auto", f"  ControlPath {self.dir}/cm-%h", "  ControlPersist 60",
                # Only ever through the lab's bridge: a lab address can never leave the machine.
                f"  BindInterface {self.bridge}", "  LogLevel ERROR", ""]
        _write(self.known_hosts, "\n".join(kh) + "\n")
        _write(self.ssh_config, "\n".join(cfg))
        _write(self.inventory, self.inventory_text())

    def inventory_text(self):
        """The hosts with their own connection data (address, port, user, key, ssh options): an
        ansible:// host is reached through this file alone, not through the ssh config.
        Its own ControlPath, so that no inventory connection rides on an ssh-config master."""
        opts = ["IdentitiesOnly=yes", f"UserKnownHostsFile={self.known_hosts}", "GlobalKnownHostsFile=/dev/null",
                "StrictHostKeyChecking=yes", "BatchMode=yes", "ConnectTimeout=5", "ServerAliveInterval=5",
                "ServerAliveCountMax=3", "ControlMaster=auto", f"ControlPath={self.inventory_control_path}",
                "ControlPersist=60",
                f"BindInterface={self.bridge}", "LogLevel=ERROR"]
        lines = ["# Written by 'cutover lab up --hosts N'. Ansible inventory of the lab's simulated hosts.",
                 "all:", "  vars:", "    ansible_user: root", f"    ansible_ssh_private_key_file: {self.key}",
                 "    ansible_ssh_common_args: " + " ".join(f"-o {o}" for o in opts),
                 "    ansible_python_interpreter: /usr/bin/python3", "  children:", "    cutover_lab:",
                 "      hosts:"]
        lines += [f"        {h.name}: {{ansible_host: {h.address}, ansible_port: 22}}" for h in self.hosts] \
            or ["        {}"]
        groups = {}
        for h in self.hosts:
            for v in sorted(h.variants):
                groups.setdefault("variant_" + v.replace("-", "_"), []).append(h.name)
        for g, names in sorted(groups.items()):
            lines += [f"    {g}:", "      hosts:"] + [f"        {n}: {{}}" for n in names]
        return "\n".join(lines) + "\n"

    @property
    def inventory_control_path(self):
        return f"{self.dir}/ci-%h"

    def targets_file_keys(self):
        """Top-level keys of the lab's targets file when it has hosts."""
        if not self.hosts:
            return {}
        return {"ssh_config": self.ssh_config, "ansible_inventory": self.inventory}

    def write_role_targets(self, targets):
        """<lab>/fleet/releases/<release>.yaml for each release the hosts run, when one runs
        another release than the machine's (see the module's doc); stale files go."""
        d = os.path.join(self.dir, "releases")
        shutil.rmtree(d, ignore_errors=True)
        first = {}
        for h in self.hosts:
            first.setdefault(h.release or releases.HOST_RELEASE, h)
        if set(first) == {releases.HOST_RELEASE}:
            return
        for release, h in first.items():
            roles = {"docker": f"{h.name}-docker"}
            if h.lxcfs:
                roles["docker-lxcfs"] = f"{h.name}-docker-lxcfs"
            releases.write_roles_file(os.path.join(d, f"{release}.yaml"), release, roles, targets,
                                      {"lab": self.lab.root, **self.targets_file_keys()})

    def inner_daemons(self):
        return [d for h in self.hosts for d in h.parts]

    def sweep(self):
        """After the hosts stopped (or crashed): the lab's interfaces and the bridge."""
        for line in _run(["ip", "-o", "link"], check=False).stdout.splitlines():
            name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
            if name.startswith(f"cvr{self.lab_id}") and name != self.bridge:
                _run(["ip", "link", "del", name], check=False)
        if os.path.exists(f"/sys/class/net/{self.bridge}"):
            _run(["ip", "link", "del", self.bridge], check=False)
            say(f"lab: bridge       {self.bridge} removed")


class SimHost:
    """One simulated host: the holder of its namespaces and the daemons inside (Daemon-like)."""
    kind = "host"

    def __init__(self, fleet, index, variants):
        self.fleet, self.lab, self.index, self.variants = fleet, fleet.lab, index, set(variants)
        self.name = f"h{index}"
        self.root = os.path.join(self.lab.root, "hosts", self.name)
        self.host_key = self.path("ssh_host_ed25519_key")
        self.veth = f"cvr{fleet.lab_id}h{index}"
        self.holder = Holder(self)
        self.sshd = Sshd(self)
        self.release = next((v for v in sorted(self.variants) if v in releases.RELEASES), None)
        self.rootns = HostRoot(self) if self.release else None
        self.lxcfs = None if "no-lxcfs" in self.variants else HostLxcfs(self)
        self.docker = HostDockerd(self)
        # Start order; stop is the reverse. The release root before lxcfs: it makes lxcfs's
        # mount point a shared mount first, so that the lxcfs mounted there is seen in the root.
        self.parts = [p for p in (self.holder, self.rootns, self.lxcfs, self.docker, self.sshd) if p]

    def path(self, *p):
        return os.path.join(self.root, *p)

    @property
    def address(self):
        return self.fleet.address(self.index)

    @property
    def url(self):
        return f"ansible://{self.name}" if "ansible" in self.variants else f"ssh://{self.name}"

    def nsenter(self):
        pid = self.holder.pid()
        if not pid:
            raise CutoverError(f"lab: host {self.name} has no namespace holder running")
        return ["nsenter", f"--target={pid}", "--net", "--mount", "--uts", "--"]

    def pid(self):
        return self.holder.pid()

    # -- up ---------------------------------------------------------------------------------
    def start(self):
        for d in ("run/sshd", "etc-docker", "docker", "lxcfs"):
            os.makedirs(self.path(d), exist_ok=True)
        # The host's /run holds its dockerd's socket: root's only, as the lab's own run/ is.
        # sshd checks only its privsep dir (root-owned, not group/world-writable).
        os.chmod(self.root, 0o700)
        os.chmod(self.path("run"), 0o700)
        os.chmod(self.path("run/sshd"), 0o755)
        self.fleet.ensure_bridge()
        self.fleet.write_files()
        started = self.holder.start()
        if started or not os.path.exists(f"/sys/class/net/{self.veth}"):
            self.plumb()
        for d in self.parts[1:]:
            started = d.start() or started
        self.ensure_image()
        return started

    def lxcfs_dir(self):
        return self.path("lxcfs")

    def ensure_host_key(self):
        if not os.path.exists(self.host_key):
            os.makedirs(self.root, exist_ok=True)
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.name, "-f", self.host_key])

    def plumb(self):
        """veth: host side on the bridge, the other end eth0 in the host's namespace."""
        peer = f"cvr{self.fleet.lab_id}p{self.index}"
        _run(["ip", "link", "del", self.veth], check=False)
        _run(["ip", "link", "add", self.veth, "type", "veth", "peer", "name", peer])
        _quiet_ipv6(self.veth)
        _run(["ip", "link", "set", self.veth, "master", self.fleet.bridge, "up"])
        _run(["ip", "link", "set", peer, "netns", str(self.holder.pid())])
        script = (f"echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; ip link set {peer} name eth0 && "
                  f"ip addr add {self.address}/{self.fleet.subnet.prefixlen} dev eth0 && ip link set eth0 up")
        _run(self.nsenter() + ["sh", "-c", script])

    def ensure_image(self):
        from cutover import targets
        from cutover.drivers import driver_for
        t = targets.Target(name=f"{self.name}-build", driver="docker", endpoint=self.docker.endpoint)
        d = driver_for(t, timeout=120)
        if not d.image_exists(probe_image.TAG):
            d.build_image(probe_image.context_tar(), probe_image.TAG, labels=probe_image.LABELS)

    # -- down -------------------------------------------------------------------------------
    def stop(self, grace=20):
        # Close the shared ssh masters first (the ssh config's and the inventory's): they would
        # otherwise outlive the host.
        if os.path.exists(self.fleet.ssh_config):
            _run(["ssh", "-F", self.fleet.ssh_config, "-O", "exit", self.name], timeout=10, check=False)
        if "subnet" in self.fleet.state:
            _run(["ssh", "-F", "/dev/null", "-o", f"ControlPath={self.fleet.inventory_control_path}", "-O", "exit",
                  self.address],
                 timeout=10, check=False)
        holder = self.holder.pid()
        ns = proc.net_namespace(holder) if holder else None
        stopped = False
        for d in reversed(self.parts):
            stopped = d.stop(grace) or stopped
        # What the parts leave in the host: sshd sessions of clients gone silent (a host whose
        # link went down mid-run), shims still winding down. The namespace is the lab's own.
        if ns and ns != proc.net_namespace("self"):
            left = proc.kill_in_net_namespace(ns)
            if left:
                say(f"lab: {self.name:<12} killed {left} leftover process(es) in its network namespace")
        _run(["ip", "link", "del", self.veth], check=False)
        return stopped

    def remove_files(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def status(self):
        parts = [p.status() for p in self.parts]
        return {"name": self.name, "kind": self.kind, "running": all(p["running"] for p in parts),
                "pid": self.holder.pid(), "url": self.url, "address": self.address,
                "variants": sorted(self.variants), "parts": parts}

    def targets(self):
        return self.docker.targets()


class Holder(Daemon):
    """Holds the host's namespaces: a sleep, after the holder script set up its mounts."""
    kind = "netns"
    writes_pidfile = False

    def __init__(self, host):
        super().__init__(host.lab, f"{host.name}-ns")
        self.host = host
        self.dir = host.root
        self.pidfile = host.path("holder.pid")

    def argv(self):
        return ["unshare", "--mount", "--uts", "--net", "--propagation", "private", "--",
                "bash", "-c", HOLDER, "cutover-host", self.host.root, self.host.name]

    def prepare(self):
        if os.path.exists(self.host.path("ready")):
            os.unlink(self.host.path("ready"))

    def ready(self):
        return os.path.exists(self.host.path("ready"))

    def daemon_commands(self):
        return {}


class InHost:
    """Mixin: the daemon runs inside its host's namespaces; its pid file is in the host's /run."""

    def _place(self, host, part, pidfile):
        self.host = host
        self.dir = host.path(part)
        self.pidfile = host.path("run", pidfile)
        self.log = os.path.join(self.lab.log_dir, f"{self.name}.log")

    def in_host(self, argv):
        return self.host.nsenter() + argv


class Sshd(InHost, Daemon):
    kind = "sshd"
    writes_pidfile = False     # nsenter execs sshd: the pid we started is sshd's

    def __init__(self, host):
        Daemon.__init__(self, host.lab, f"{host.name}-sshd")
        self._place(host, "sshd", "sshd.pid")
        self.config_path = host.path("sshd_config")

    def prepare(self):
        cfg = [f"# sshd of simulated host {self.host.name}: listens only on the host's own address.",
               f"ListenAddress {self.host.address}:22", f"HostKey {self.host.host_key}",
               f"PidFile {self.pidfile}", f"AuthorizedKeysFile {self.host.fleet.dir}/authorized_keys",
               "PermitRootLogin prohibit-password", "PasswordAuthentication no",
               "KbdInteractiveAuthentication no", "UsePAM no", "PrintMotd no",
               # Every worker's ssh (testinfra's master sessions, forwarders) at the same moment.
               "MaxSessions 100", "MaxStartups 100:30:200", "AllowStreamLocalForwarding yes",
               "Subsystem sftp internal-sftp", "LogLevel INFO"]
        _write(self.config_path, "\n".join(cfg) + "\n")

    def argv(self):
        return self.in_host(["/usr/sbin/sshd", "-D", "-e", "-f", self.config_path])

    def ready(self):
        try:
            with socket.create_connection((self.host.address, 22), timeout=1) as s:
                return s.recv(16).startswith(b"SSH-")
        except OSError:
            return False

    def daemon_commands(self):
        return {}


class HostLxcfs(InHost, Lxcfs):
    def __init__(self, host):
        Lxcfs.__init__(self, host.lab, f"{host.name}-lxcfs")
        self._place(host, "lxcfs", "lxcfs.pid")

    @property
    def mountpoint(self):
        # Debian's path (bound to a lab directory inside the host); else, and on a release
        # host (whose containers are made in the release's root), the lab directory.
        if os.path.isdir("/var/lib/lxcfs") and not self.host.release:
            return "/var/lib/lxcfs"
        return self.host.lxcfs_dir()

    def argv(self):
        opts = [] if "lxcfs-default" in self.host.variants else ["-l", "--enable-cfs"]
        return self.in_host(["lxcfs", *opts, "-p", self.pidfile, self.mountpoint])

    def _inside(self, path):
        return f"/proc/{self.host.holder.pid()}/root{path}"

    def ready(self):
        return os.path.exists(self._inside(os.path.join(self.mountpoint, "proc", "meminfo")))

    def prepare(self):
        self.cleanup()

    def cleanup(self):
        """A dead FUSE mount left inside the host by a crashed lxcfs (never this machine's)."""
        pid = self.host.holder.pid()
        if not pid:
            return
        with open(f"/proc/{pid}/mountinfo") as f:
            fuse = any(l.split()[4] == self.mountpoint and " - fuse" in l for l in f)
        if fuse:
            _run(self.in_host(["umount", "-l", self.mountpoint]), check=False)


class HostDockerd(InHost, Dockerd):
    def __init__(self, host):
        Dockerd.__init__(self, host.lab, f"{host.name}-docker", live_restore="no-live-restore" not in host.variants)
        self._place(host, "etc-docker", "docker.pid")

    @property
    def socket(self):
        return self.host.path("run", "docker.sock")

    @property
    def containerd_pidfile(self):
        return self.host.path("run", "docker", "containerd", "containerd.pid")

    def config(self):
        cfg = super().config()
        # The host's default socket and pid file (in its own /run). Data and exec root are
        # named by their lab paths (the same directories inside the host), so that the
        # containerd dockerd starts carries the lab's directory in its command line too.
        cfg.update({"data-root": self.host.path("docker"), "exec-root": self.host.path("run", "docker"),
                    "pidfile": "/var/run/docker.pid", "hosts": [f"unix://{REMOTE_SOCKET}"]})
        return cfg

    def argv(self, config_path=None):
        inner = super().argv(config_path)
        return self.host.rootns.enter(inner) if self.host.rootns else self.in_host(inner)

    def start(self, timeout=30):
        # dockerd makes its socket root:docker 0660; the lab's sockets are root's alone (0600),
        # also after a restart by a daemon event (`cutover lab start hN-docker`).
        started = super().start(timeout)
        if os.path.exists(self.socket):
            os.chmod(self.socket, 0o600)
        return started

    def targets(self):
        h = self.host
        how = ", ".join(sorted(h.variants - {"ansible"})) or "as configured"
        stack = f"Debian {h.release}'s dockerd" if h.release else "dockerd"
        # registry None: the lab's registry listens on this machine's loopback, which a host
        # in its own network namespace cannot reach (checks that need one: unsupported).
        base = {"host": h.url, "driver": "docker", "endpoint": f"ssh://{h.name}", "runtime": "runc",
                "image": probe_image.TAG, "daemon": self.daemon_commands(), "registry": None}
        out = {f"{h.name}-docker": dict(base, description=f"simulated host {h.name} ({how}): {stack}, no LXCFS")}
        if h.lxcfs:
            out[f"{h.name}-docker-lxcfs"] = dict(
                base, lxcfs=h.lxcfs.mountpoint, daemon=dict(base["daemon"], **{"lxcfs-restart": h.lxcfs.restart_command()}),
                description=f"simulated host {h.name} ({how}): {stack}, LXCFS bind-mounted")
        return out


class HostRoot(Daemon):
    """A release host's root: the release's cached root file system as the root of a mount
    namespace made inside the host's (release.HOLDER_ROOT: pivot_root, read-only, with /proc,
    /sys, /dev, the host's /run and the lab directory), in the host's network and UTS
    namespaces, so that the host's dockerd, containerd and runc are the release's."""
    kind = "mountns"
    writes_pidfile = False

    # Runs in the host's namespaces: lxcfs's mount point becomes a shared mount (the root's
    # namespace, made from this one, gets a peer of it), then the release root's holder.
    SHARE = ('mountpoint -q "$5" || mount --bind "$5" "$5"; mount --make-shared "$5"; '
             'exec unshare --mount --propagation unchanged -- bash -c "$6" cutover-release "$1" "$2" "$3" "$4" "$5"')

    def __init__(self, host):
        super().__init__(host.lab, f"{host.name}-root")
        self.host = host
        self.dir = host.path("root")
        self.pidfile = host.path("root.pid")
        self.ready_file = host.path("root", "ready")

    def prepare(self):
        releases.ensure_rootfs(self.host.release)
        os.makedirs(self.host.lxcfs_dir(), exist_ok=True)
        if os.path.exists(self.ready_file):
            os.unlink(self.ready_file)

    def argv(self):
        return self.host.nsenter() + ["bash", "-c", self.SHARE, "cutover-host-root",
                                      releases.rootfs_dir(self.host.release), self.lab.root, self.host.path("run"),
                                      self.ready_file, self.host.lxcfs_dir(), releases.HOLDER_ROOT]

    def ready(self):
        return os.path.exists(self.ready_file)

    def enter(self, argv):
        pid = self.pid()
        if not pid:
            raise CutoverError(f"lab: {self.name} is not running (cutover lab up)")
        return ["nsenter", f"--target={pid}", "--net", "--mount", "--uts", "--"] + argv

    def daemon_commands(self):
        return {}

    def status(self):
        return dict(super().status(), release=self.host.release,
                    packages=(releases.stamp(self.host.release) or {}).get("packages"))


def _write(path, text):
    write_text_atomic(path, text, mode=0o600)      # keys' paths, ports: root's business only


def _quiet_ipv6(dev):
    """No IPv6 autoconfiguration chatter on the lab's links."""
    try:
        with open(f"/proc/sys/net/ipv6/conf/{dev}/disable_ipv6", "w") as f:
            f.write("1")
    except OSError:
        pass
