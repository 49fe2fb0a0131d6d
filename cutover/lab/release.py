"""Debian releases in the lab: the runtime stack of another release, run on this kernel.

`cutover lab up --release trixie` makes the lab run, next to its own daemons (Debian 12's
packages: the 'bookworm' stack), the stack of Debian 13 from its own packages:

- a root file system made once by `debootstrap --variant=minbase --include=docker.io,...`
  and cached under /var/cache/cutover/rootfs/<release> (or $CUTOVER_CACHE) with a stamp file
  that records the package versions, so a second `lab up` does not bootstrap again;
- `release-ns`: a holder process in a mount namespace of its own (unshare --propagation
  private: nothing it mounts is seen by the machine) with the machine's root, a /run of the
  lab's and the lab directory as a shared mount;
- `release-root`: a holder in a namespace made from that one whose root is the cached root
  (pivot_root, mounted read-only, with /proc, /sys and so the cgroup hierarchies, /dev, a
  private /tmp, the same /run, and the lab directory at the same path as a peer of
  release-ns's), so the socket, pid file, data root and exec root of a daemon started there
  are the lab's own files, and what one namespace mounts under the lab the other sees;
- `lxcfs-ns`: an lxcfs in release-ns, on a mount point of its own, for the release's dockerd
  (the machine's lxcfs 5.0.3: see ReleaseLxcfs for why not the release's 6.0.4 on this machine);
- `docker-trixie`: that release's dockerd (26.1.5, with its containerd and runc) in
  release-root, live-restore; targets docker-trixie and docker-trixie-lxcfs;
- `docker-upgrade`: a dockerd whose data root outlives a change of release: it starts as the
  machine's dockerd 20.10 (in release-ns) and `daemon.release-upgrade` stops it and starts the
  release's dockerd (in release-root) on the same data and exec root, as `apt-get upgrade` does
  on a host with live-restore: the shims, netns files and overlay mounts the old daemon left
  are where the new one looks.

The lab also writes one targets file per release, `<lab>/releases/<release>.yaml`, whose targets
carry the same names (`docker`, `docker-lxcfs`) in both: a run of each can be compared check by
check by `cutover gate CANDIDATE --baseline BASELINE` and `cutover diff`.
"""
import datetime
import fcntl
import json
import os
import shutil
import subprocess
import time
import urllib.request

import yaml

from cutover.errors import CutoverError
from cutover.lab.daemon import Daemon, load_state, say
from cutover.lab.dockerd import Dockerd
from cutover.lab.lxcfs import Lxcfs

CACHE = os.environ.get("CUTOVER_CACHE", "/var/cache/cutover")
MIRROR = os.environ.get("CUTOVER_MIRROR", "http://deb.debian.org/debian")
# Releases the lab can bootstrap; 'bookworm' is the machine's own packages (nothing to make).
RELEASES = ("trixie",)
HOST_RELEASE = "bookworm"
PACKAGES = ("docker.io", "containerd", "runc", "lxcfs", "busybox-static")
STAMP = "cutover-rootfs.json"
BOOTSTRAP_TIMEOUT = 1200


def rootfs_dir(release):
    return os.path.join(CACHE, "rootfs", release)


def read_stamp(path):
    """A cached root's stamp ({release, packages: {name: version}, created, ...}) or None."""
    try:
        with open(os.path.join(path, STAMP)) as f:
            data = json.load(f)
        return data if isinstance(data.get("packages"), dict) else None
    except (OSError, ValueError):
        return None


def stamp(release):
    return read_stamp(rootfs_dir(release))


def mirror_reachable(release="trixie", timeout=5):
    """True when the Debian mirror answers for the release (a HEAD of its Release file)."""
    req = urllib.request.Request(f"{MIRROR}/dists/{release}/Release", method="HEAD")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status == 200
    except Exception:
        return False


def available(release, path=None):
    """(True, '') when the release's root is cached or can be made; else (False, why)."""
    path = path or rootfs_dir(release)
    if read_stamp(path):
        return True, ""
    if not shutil.which("debootstrap"):
        return False, "debootstrap is not installed (setup.sh installs it)"
    if not mirror_reachable(release):
        return False, f"no cached {release} root in {path} and the Debian mirror {MIRROR} is unreachable"
    return True, ""


def ensure_rootfs(release):
    """The release's cached root file system, bootstrapped once (about 30 s); returns its path."""
    if release not in RELEASES:
        raise CutoverError(f"--release: unknown release '{release}' (known: {', '.join(RELEASES)}; "
                           f"'{HOST_RELEASE}' is the machine's own packages)")
    return bootstrap(rootfs_dir(release), release, PACKAGES)


def bootstrap(path, release, packages, finish=None, what=None):
    """A root file system at path made once by debootstrap (then `finish(tmp, log)`), with a
    stamp of its package versions; a second call finds the stamp and returns at once."""
    what = what or f"Debian {release} root"
    if read_stamp(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # One bootstrap at a time per root, across labs and CI on this machine.
    fd = os.open(os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if read_stamp(path):
            return path
        ok, why = available(release, path)
        if not ok:
            raise CutoverError(f"lab: cannot make the {what}: {why}")
        tmp, log = path + ".tmp", path + ".log"
        shutil.rmtree(tmp, ignore_errors=True)
        say(f"lab: bootstrapping the {what} into {path} (debootstrap; log {log})")
        t0 = time.monotonic()
        argv = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", release, tmp, MIRROR]
        with open(log, "w") as lf:
            try:
                res = subprocess.run(argv, stdout=lf, stderr=subprocess.STDOUT, timeout=BOOTSTRAP_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise CutoverError(f"lab: debootstrap {release} took more than {BOOTSTRAP_TIMEOUT}s; see {log}") from None
        if res.returncode != 0:
            raise CutoverError(f"lab: debootstrap {release} exited {res.returncode}; see {log}")
        say(f"lab: debootstrap done in {time.monotonic() - t0:.0f}s")
        if finish:
            finish(tmp, log)
        q = subprocess.run(["chroot", tmp, "dpkg-query", "-W", "-f", "${Package}\t${Version}\n", *packages, "libc6"],
                           capture_output=True, text=True, timeout=60)
        versions = dict(line.split("\t", 1) for line in q.stdout.splitlines() if "\t" in line)
        missing = [p for p in packages if p not in versions]
        if missing:
            raise CutoverError(f"lab: the {what} lacks {', '.join(missing)} after debootstrap; see {log}")
        with open(os.path.join(tmp, STAMP), "w") as f:
            json.dump({"release": release, "packages": versions, "mirror": MIRROR,
                       "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                       "bootstrap_seconds": round(time.monotonic() - t0, 1)}, f, indent=1)
        shutil.rmtree(path, ignore_errors=True)      # a partial root without a stamp
        os.rename(tmp, path)
        say(f"lab: {what} ready in {time.monotonic() - t0:.0f}s: "
            + ", ".join(f"{p} {versions[p]}" for p in ("docker.io", "runc", "lxcfs") if p in versions))
        return path
    finally:
        os.close(fd)


# The machine-root namespace's holder. Arguments: lab dir, run dir, ready file.
HOLDER_HOST = r"""
set -e
L=$1; RUN=$2; READY=$3
# Copies of the machine's container mounts (other labs' overlays, lxcfs, netns files) are not
# ours and would pin what they mount: drop them from this namespace.
grep -E ' - (overlay|fuse\.lxcfs|nsfs) ' /proc/self/mountinfo | awk '{print $5}' | sort -r |
  while read -r m; do umount -l "$m" 2>/dev/null || true; done
mkdir -p "$RUN"
# One /run for both releases: an old daemon's shims keep their sockets in /run/containerd/s.
mount --bind "$RUN" /run
# The lab directory as a shared mount: the release root's namespace, made from this one,
# gets a peer of it, so the overlay roots and netns files one dockerd mounts (and the
# lxcfs mount) are where the other looks, as on one upgraded host.
mount --bind "$L" "$L"
mount --make-shared "$L"
: > "$READY"
exec -a "cutover-release:$L" sleep infinity
"""

# The release root's holder, started inside the machine-root namespace. Arguments: root, lab
# dir, run dir, ready file. The root becomes the namespace's root by pivot_root, not chroot:
# runc must see the namespace's root as its root (a container made by a chrooted runc has the
# machine's / as its mount namespace's root, and `exec` into it lands there).
HOLDER_ROOT = r"""
set -e
R=$1; L=$2; RUN=$3; READY=$4; SHARED=${5:-}
mkdir -p "$R$L" "$R/.cutover-old"
mount --bind "$R" "$R"
mount -o remount,bind,ro "$R"
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount --rbind /dev "$R/dev"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
mount --bind "$RUN" "$R/run"
mkdir -p "$R$L"
mount --bind "$L" "$R$L"
# A shared directory under the lab (a simulated host's lxcfs mount point): a peer of it, so
# what is mounted there later (lxcfs, also after a restart) is seen in the root too.
[ -z "$SHARED" ] || mount --bind "$SHARED" "$R$SHARED"
cd "$R"
pivot_root . .cutover-old
umount -l /.cutover-old
cd /
: > "$READY"
exec -a "cutover-release:$L" sleep infinity
"""


class Holder(Daemon):
    """A sleep that holds a mount namespace of the lab's, once its holder script set it up."""
    kind = "mountns"
    writes_pidfile = False

    def __init__(self, lab, name, release):
        super().__init__(lab, name)
        self.release = release
        self.run = os.path.join(lab.root, "release-ns", "run")
        self.ready_file = os.path.join(self.dir, "ready")

    def prepare(self):
        if os.path.exists(self.ready_file):
            os.unlink(self.ready_file)

    def ready(self):
        return os.path.exists(self.ready_file)

    def enter(self, argv):
        """argv run inside the namespace (with the namespace's root as its root)."""
        pid = self.pid()
        if not pid:
            raise CutoverError(f"lab: {self.name} is not running (cutover lab up --release ...)")
        return ["nsenter", f"--mount=/proc/{pid}/ns/mnt", "--"] + argv

    def holds(self, pid):
        """True when pid runs in this namespace (not in one of an earlier holder's)."""
        try:
            return os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink(f"/proc/{self.pid()}/ns/mnt")
        except OSError:
            return False

    def inside(self, path):
        """A path of the namespace, seen from the machine (through the holder's /proc)."""
        return f"/proc/{self.pid()}/root{path}"

    def daemon_commands(self):
        return {}


class ReleaseNS(Holder):
    """The machine's root with a /run and a shared lab directory of the releases' own."""

    def __init__(self, lab, release):
        super().__init__(lab, "release-ns", release)

    def argv(self):
        return ["unshare", "--mount", "--propagation", "private", "--",
                "bash", "-c", HOLDER_HOST, "cutover-release", self.lab.root, self.run, self.ready_file]


class ReleaseRoot(Holder):
    """The release's cached root as the root of a namespace made from release-ns."""

    def __init__(self, lab, release, host_ns):
        super().__init__(lab, "release-root", release)
        self.host_ns = host_ns

    @property
    def root(self):
        return rootfs_dir(self.release)

    def prepare(self):
        ensure_rootfs(self.release)
        super().prepare()

    def argv(self):
        # --propagation unchanged: the lab directory stays a peer of release-ns's.
        return self.host_ns.enter(["unshare", "--mount", "--propagation", "unchanged", "--",
                                   "bash", "-c", HOLDER_ROOT, "cutover-release", self.root, self.lab.root,
                                   self.run, self.ready_file])

    def status(self):
        return dict(super().status(), release=self.release, packages=(stamp(self.release) or {}).get("packages"))


class InNamespace:
    """Mixin: a daemon of the release namespace; one left in an earlier namespace is restarted."""

    def start(self, timeout=60):
        pid = self.pid()
        if pid and not self.holder().holds(pid):
            say(f"lab: {self.name} runs in an earlier release namespace: restarting it")
            self.stop()
        return super().start(timeout)


class ReleaseLxcfs(InNamespace, Lxcfs):
    """An lxcfs in the namespace, on a mount point of the lab's that the release's dockerd sees.

    By default it is the machine's lxcfs (5.0.3): the release's own (6.0.4) refuses every read
    on this machine ("Due to restricted personality access policy, reading proc files from
    containers is not permitted"): lxcfs >= 5.0.4 first reads /proc/1/personality, which root
    cannot read on this machine (its PID 1 is not systemd), and a file bind-mounted over it in
    the release's root does not help (tried: lxcfs reads from a /proc of its own making).
    CUTOVER_RELEASE_LXCFS=release runs the release's lxcfs anyway (to show that).
    """

    def __init__(self, lab, name, host_ns, root_ns):
        super().__init__(lab, name)
        self.host_ns, self.root_ns = host_ns, root_ns
        self.own = os.environ.get("CUTOVER_RELEASE_LXCFS") == "release"

    def holder(self):
        return self.root_ns if self.own else self.host_ns

    def argv(self):
        return self.holder().enter(super().argv())

    def _umount(self):
        if self.host_ns.pid():
            subprocess.run(self.host_ns.enter(["umount", "-l", self.mountpoint]),
                           capture_output=True, timeout=30)

    def prepare(self):
        # A dead FUSE mount from a crash is in the namespace, not on the machine.
        self._umount()
        os.makedirs(self.mountpoint, exist_ok=True)

    def ready(self):
        return os.path.exists(self.host_ns.inside(os.path.join(self.mountpoint, "proc", "meminfo")))

    def cleanup(self):
        self._umount()

    def status(self):
        return dict(super().status(), release=self.root_ns.release if self.own else HOST_RELEASE)


class ReleaseDockerd(InNamespace, Dockerd):
    """A dockerd of a Debian release, started in the release namespace.

    `release` is what a plain start runs; `--variant <release>` starts another release on the
    same data root (`--variant <release>-no-live-restore`: the same without live-restore, the
    in-place upgrade's negative control). Other variants are Dockerd's (config changes).
    """

    def __init__(self, lab, name, host_ns, root_ns, release, serves=None, upgrade_to=None, lxcfs=None):
        super().__init__(lab, name, live_restore=True, serves=serves)
        self.host_ns, self.root_ns = host_ns, root_ns
        self.base_release, self.upgrade_to = release, upgrade_to
        self.lxcfs = lxcfs          # the release's own lxcfs (None: the lab's)

    def targets(self):
        out = super().targets()
        if self.lxcfs:              # Dockerd names the lab's lxcfs; this stack injects its own
            for entry in out.values():
                if entry.get("lxcfs"):
                    entry["lxcfs"] = self.lxcfs.mountpoint
                    entry["daemon"]["lxcfs-restart"] = self.lxcfs.restart_command()
        return out

    def _release_variant(self):
        """(release, live_restore) for the current variant, or None for a config variant."""
        v = self.variant
        if v is None:
            return self.base_release, True
        for r in (HOST_RELEASE,) + RELEASES:
            if v == r:
                return r, True
            if v == f"{r}-no-live-restore":
                return r, False
        return None

    @property
    def release(self):
        rv = self._release_variant()
        return rv[0] if rv else self.base_release

    def config(self):
        rv = self._release_variant()
        if rv is None:                   # Dockerd's own variants (e.g. 'upgraded')
            return super().config()
        variant, self.variant = self.variant, None
        try:
            cfg = super().config()
        finally:
            self.variant = variant
        cfg["live-restore"] = rv[1]
        return cfg

    def argv(self, config_path=None):
        release = self.release
        if release not in (HOST_RELEASE, self.root_ns.release):
            raise CutoverError(f"lab: {self.name} cannot start {release}: the lab runs release {self.root_ns.release}")
        return self.holder().enter(["dockerd", "--config-file", config_path or self.config_path])

    def holder(self):
        """The machine's dockerd runs in release-ns, the release's in release-root."""
        return self.host_ns if self.release == HOST_RELEASE else self.root_ns

    def start(self, timeout=60):
        started = super().start(timeout)
        if os.path.exists(self.socket):
            os.chmod(self.socket, 0o600)   # the root's 'docker' group is some other gid here
        return started

    def daemon_commands(self):
        out = super().daemon_commands()
        if self.upgrade_to:
            me = self.lab.cutover_cmd()
            out["release-upgrade"] = (f"{me} lab signal {self.name} TERM && "
                                      f"{me} lab start {self.name} --variant {self.upgrade_to}")
        return out

    def status(self):
        return dict(super().status(), release=self.release)


def write_roles_file(path, release, roles, targets, top):
    """A targets file of one release's stack under role names ({role: lab target}), so that
    runs of two releases' files compare check by check (cutover gate --baseline, diff). Not
    written while a role's target is missing."""
    if not all(src in targets for src in roles.values()):
        return False
    data = dict(top, targets={role: dict(targets[src], description=f"[{release}] " + targets[src].get("description", ""))
                              for role, src in roles.items()})
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"# Written by 'cutover lab up'. Debian {release}'s stack under the role names "
                f"shared by every release's file (compare runs with cutover gate --baseline / diff).\n")
        yaml.safe_dump(data, f, sort_keys=False)
    os.replace(tmp, path)
    return True


class Releases:
    """Which releases the lab runs (`lab up --release R`), kept in <lab>/releases/state.json."""

    def __init__(self, lab):
        self.lab = lab
        self.dir = os.path.join(lab.root, "releases")
        self.state_path = os.path.join(self.dir, "state.json")
        self.daemons = []
        self.release = self._load().get("release")
        if self.release:
            self._make(self.release)

    def _load(self):
        return load_state(self.state_path)

    def _make(self, release):
        lab = self.lab
        ns = ReleaseNS(lab, release)
        root = ReleaseRoot(lab, release, ns)
        lxcfs = ReleaseLxcfs(lab, "lxcfs-ns", ns, root)
        # The candidate stack: the release's dockerd with its containerd, runc and lxcfs.
        docker = ReleaseDockerd(lab, f"docker-{release}", ns, root, release, lxcfs=lxcfs, serves={
            f"docker-{release}": {"description": f"Debian {release}'s dockerd + runc, live-restore, no LXCFS"},
            f"docker-{release}-lxcfs": {"lxcfs": True, "description":
                                        f"Debian {release}'s dockerd + runc, LXCFS bind-mounted (lxcfs-ns: "
                                        f"5.0.3; {release}'s 6.0.4 cannot read /proc/1/personality here)"},
        })
        # The in-place upgrade: starts as the machine's dockerd, upgrades to the release's.
        upgrade = ReleaseDockerd(lab, "docker-upgrade", ns, root, HOST_RELEASE, upgrade_to=release, serves={
            "docker-upgrade": {"description": f"dockerd 20.10 (Debian 12) whose daemon.release-upgrade "
                                              f"starts Debian {release}'s dockerd on the same data root"},
        })
        self.daemons = [ns, root, lxcfs, docker, upgrade]
        lab.daemons.extend(self.daemons)

    def configure(self, release):
        """lab up --release R ('none' removes the release daemons)."""
        release = None if release in (None, "", "none", HOST_RELEASE) else release
        if release is not None:
            ensure_rootfs(release)
        if release == self.release:
            return
        for d in reversed(self.daemons):
            d.stop()
            self.lab.daemons.remove(d)
            say(f"lab: {d.name:<12} removed")
        self.daemons = []
        self.release = release
        if release:
            self._make(release)
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"release": release}, f)
        os.replace(tmp, self.state_path)

    def write_role_targets(self, targets):
        """<lab>/releases/<release>.yaml: the same target names for each release's stack."""
        files = {HOST_RELEASE: {"docker": "docker", "docker-lxcfs": "docker-lxcfs"}}
        if self.release:
            files[self.release] = {"docker": f"docker-{self.release}",
                                   "docker-lxcfs": f"docker-{self.release}-lxcfs"}
        for release, roles in files.items():
            write_roles_file(os.path.join(self.dir, f"{release}.yaml"), release, roles, targets,
                             {"lab": self.lab.root})

    def status(self):
        return {"release": self.release, "cache": rootfs_dir(self.release) if self.release else None}

