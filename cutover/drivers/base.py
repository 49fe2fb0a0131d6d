"""The driver interface: everything a suite may ask of a runtime, and nothing of pytest.

A driver works on one target. Host-side actions (daemon stop/kill/start, reading host files)
go through `host`, a testinfra Host for the target's host URL; runtime actions go through the
runtime's own API. Every operation is bounded by `timeout` seconds.
"""
from dataclasses import dataclass, field

from cutover.errors import CutoverError


class Unsupported(Exception):
    """The target cannot express what a check needs; reported as 'unsupported', never a pass."""


class QuotaUnavailable(Unsupported):
    """The runtime cannot set the disk quota an allocation asks for (no mechanism, or it
    refused). Other suites report it 'unsupported'; the disk quota suite catches it and reports
    the promise as failed ("runtime cannot set a disk quota"): T4 always could."""


class RuntimeFailure(Exception):
    """The runtime refused or failed an operation (a harness-level error for the check)."""


class PullFailed(RuntimeFailure):
    """The runtime itself refused a pull (its own message, e.g. a digest verification error)."""


@dataclass
class ContainerSpec:
    image: str
    command: list
    allocation: object = None            # cutover.allocations.Allocation
    labels: dict = field(default_factory=dict)
    name: str = None
    lxcfs: bool = True                   # inject LXCFS if the target has it
    user: str = None
    env: dict = field(default_factory=dict)
    restart: str = "no"                  # "no" | "always"
    stop_signal: str = None
    stop_timeout: int = None
    init: bool = False                   # a minimal init (tini) as PID 1 that forwards signals
    volumes: dict = field(default_factory=dict)   # named volume -> path in the container
    no_new_privileges: bool = False      # ask for no_new_privs (setuid cannot raise privileges)


@dataclass
class ImageInfo:
    id: str                  # sha256:<config digest>
    repo_tags: list
    repo_digests: list
    config: dict             # Env, WorkingDir, User, Entrypoint, Cmd, Labels, ExposedPorts, ...
    layers: list             # the diff IDs of the root file system, lowest first
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class BuildResult:
    id: str
    steps: int               # Dockerfile steps the builder ran
    cached: int              # of which came from the build cache
    log: str


@dataclass
class ExecResult:
    argv: list
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self):
        return self.stdout + self.stderr

    def evidence(self):
        return f"$ {' '.join(self.argv)}\n[exit {self.exit_code}]\n{self.stdout}{self.stderr}"


@dataclass
class ContainerState:
    id: str
    status: str             # created | running | paused | exited | ...
    pid: int
    started_at: str         # RFC 3339 as the runtime reports it
    started_epoch: float    # seconds since the epoch (None when never started)
    exit_code: int
    oom_killed: bool
    raw: dict = field(default_factory=dict, repr=False)


# Docker's documented default capability set (moby oci/caps/defaults.go; also what podman
# 4.3 grants by built-in default): what sec.capabilities expects unless a target documents
# another set (targets file `options: {default_capabilities: [...]}`).
DOCKER_DEFAULT_CAPS = frozenset({
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"})

# What a driver may declare in `capabilities` (README: "What each driver supports").
CAPABILITIES = {
    "daemon": "a management daemon whose stop/kill/start the lifecycle suite drives",
    "live-restore": "containers outlive their daemon by the daemon's own setting (dockerd --live-restore)",
    "daemonless": "containers never depend on the API service (each has its own monitor, conmon)",
    "exit-status": "report a stopped container's exit code and whether the OOM killer ended it (inspect)",
    "pause": "freeze and thaw a container",
    "restart-policy": "restart a container that exits (policy 'always')",
    "image-build": "build an image from a Dockerfile context",
    "logs": "read a container's output",
    "runtime-select": "choose the OCI runtime per target (runc, crun)",
    "image-run": "run a container from an image by reference, with the image's own config",
    "image-inspect": "report an image's ID, config, layers and history (inspect_image, image_history)",
    "image-transfer": "save an image to a tar and load one (save_image, load_image)",
    "image-registry": "tag, push to and pull from a registry (tag_image, push_image, pull_image)",
}


class Driver:
    """Base class. Subclasses set `capabilities` and implement the methods below."""
    name = "base"
    # What the driver can express; checks needing more report 'unsupported' with the reason.
    capabilities = frozenset()
    # How a disk quota is set (e.g. "storage-opt size" or "loop ext4 root"); None: it cannot.
    disk_quota = None
    # Effective capabilities a container of this driver gets by default (sec.capabilities).
    default_capabilities = DOCKER_DEFAULT_CAPS

    @classmethod
    def describe(cls):
        """What the driver supports, for reports and the README."""
        return {"driver": cls.name, "capabilities": sorted(cls.capabilities),
                "disk_quota": cls.disk_quota}

    def documented_capabilities(self):
        """The default capability set this target documents (option default_capabilities)."""
        caps = self.target.options.get("default_capabilities")
        if caps is None:
            return set(self.default_capabilities)
        return {str(c).upper().removeprefix("CAP_") for c in caps}

    def __init__(self, target, host=None, timeout=30):
        self.target = target
        self.timeout = timeout
        self.host = host

    @property
    def host(self):
        """The target's testinfra host; every command on it is bounded (see timed_host)."""
        return self._host

    @host.setter
    def host(self, host):
        self._host = timed_host(host, lambda: self.timeout)

    def require(self, capability, why):
        if capability not in self.capabilities:
            raise Unsupported(f"driver '{self.name}' of target '{self.target.name}' cannot {why}")

    # -- the runtime ------------------------------------------------------------------
    def ping(self):
        """Return the runtime's version facts; CutoverError if the endpoint is unreachable."""
        raise NotImplementedError

    def facts(self):
        raise NotImplementedError

    def create(self, spec: ContainerSpec):
        raise NotImplementedError

    def start(self, cid):
        raise NotImplementedError

    def run(self, spec: ContainerSpec):
        cid = self.create(spec)
        self.start(cid)
        return cid

    def exec(self, cid, argv, user=None, timeout=None) -> ExecResult:
        raise NotImplementedError

    def read_file(self, cid, path):
        res = self.exec(cid, ["cat", path])
        if res.exit_code != 0:
            raise RuntimeFailure(f"cat {path} in {cid[:12]} failed ({res.exit_code}): {res.stderr.strip()}")
        return res.stdout

    def inspect(self, cid) -> ContainerState:
        raise NotImplementedError

    def stop(self, cid, grace=10):
        raise NotImplementedError

    def kill(self, cid, signal="KILL"):
        raise NotImplementedError

    def pause(self, cid):
        raise NotImplementedError

    def unpause(self, cid):
        raise NotImplementedError

    def logs(self, cid):
        raise NotImplementedError

    def remove(self, cid, force=True):
        raise NotImplementedError

    def list_containers(self, labels):
        """IDs of containers (any state) carrying all the given labels."""
        raise NotImplementedError

    def wait_exit(self, cid, timeout):
        """Poll until the container is no longer running; its state, or None on timeout."""
        import time
        deadline = time.monotonic() + timeout
        while True:
            st = self.inspect(cid)
            if st.status not in ("running", "restarting", "paused"):
                return st
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)

    # -- volumes ----------------------------------------------------------------------
    def create_volume(self, name, labels=None):
        raise NotImplementedError

    def remove_volume(self, name):
        raise NotImplementedError

    def list_volumes(self):
        """Names of every volume the runtime knows."""
        raise NotImplementedError

    def create_quota_volume(self, name, size, labels=None):
        """A volume holding at most `size` bytes; Unsupported if the target has none."""
        raise Unsupported(f"target '{self.target.name}' has no quota'd volumes")

    def storage_path(self, cid):
        """A host path on the file system that holds the container's writes (disk quota suite)."""
        raise Unsupported(f"driver '{self.name}' cannot say where a container's writes land on its host")

    # -- images -----------------------------------------------------------------------
    def image_exists(self, ref):
        raise NotImplementedError

    def build_image(self, context_tar, tag, labels=None, nocache=False):
        raise NotImplementedError

    def build(self, context_tar, tag, labels=None, nocache=False) -> "BuildResult":
        """Build like build_image, and say which steps came from the build cache."""
        raise NotImplementedError

    def inspect_image(self, ref) -> "ImageInfo":
        raise NotImplementedError

    def image_history(self, ref):
        """[{'id', 'created_by', 'size'}], newest step first."""
        raise NotImplementedError

    def tag_image(self, ref, repo, tag):
        raise NotImplementedError

    def push_image(self, repo, tag):
        """Push repo:tag; returns the manifest digest the registry acknowledged."""
        raise NotImplementedError

    def pull_image(self, ref):
        """Pull repo:tag or repo@digest; returns the image ID. PullFailed when refused."""
        raise NotImplementedError

    def save_image(self, ref) -> bytes:
        raise NotImplementedError

    def load_image(self, data: bytes):
        """Load a saved tar; returns what the runtime said it loaded (IDs and/or tags)."""
        raise NotImplementedError

    def remove_image(self, ref):
        raise NotImplementedError

    def list_images(self, labels=None):
        """Image IDs; only those carrying all the given labels when labels is given."""
        raise NotImplementedError

    # -- the daemon (host-side commands from the targets file) ----------------------------
    def daemon(self, action):
        """Run the target's daemon stop/kill/start command on its host."""
        cmd = self.target.daemon.get(action)
        if not cmd:
            raise Unsupported(f"target '{self.target.name}' has no daemon.{action} command")
        if self.host is None:
            raise CutoverError(f"target '{self.target.name}': no host to run daemon.{action} on")
        res = self.host.run(f"timeout {int(self.timeout * 2)} sh -c {_quote(cmd)}")
        if res.rc != 0:
            raise RuntimeFailure(f"daemon.{action} on {self.target.host} exited {res.rc}: "
                                 f"{(res.stderr or res.stdout).strip()[:300]}")
        return res

    def reconnect(self):
        """Forget connections to the runtime (after its daemon restarted)."""

    def wait_ready(self, timeout):
        """Poll the endpoint until the daemon answers; True, or False after timeout seconds."""
        import time
        deadline = time.monotonic() + timeout
        while True:
            self.reconnect()
            try:
                self.ping()
                return True
            except CutoverError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.2)


def _quote(s):
    return "'" + s.replace("'", "'\"'\"'") + "'"


# -- host commands, each with a time limit ---------------------------------------------------
# Suites and drivers run commands on a target's host (mountinfo, /proc reads, du) through
# testinfra, which waits for a command forever. A host whose /proc or mount hangs would then be
# stopped only by the check's whole time limit, or not at all outside pytest. So every command
# goes through a backend that wraps it in coreutils `timeout` with the driver's op timeout.
KILL_AFTER = 5          # seconds between timeout's TERM and its KILL


def timed_host(host, seconds):
    """`host` with every command bounded by seconds() (a callable: the driver's op timeout).

    A testinfra Host gets a Host of its own over a TimedBackend (its modules, host.file(...)
    included, then run through it); anything else (None, a test double) is returned as is.
    """
    backend = getattr(host, "backend", None)
    if backend is None or isinstance(backend, TimedBackend):
        return host
    import testinfra.host
    return testinfra.host.Host(TimedBackend(backend, seconds))


class TimedBackend:
    """A testinfra backend whose run() bounds each command; everything else is the inner's.

    The command runs under `timeout -k 5 T sh -c CMD` on the host, so a hung read ends with
    exit 124 (137 if it ignored TERM) within T + 5 s. A command that already starts with its
    own `timeout` (daemon commands, the LXC driver's scripts) keeps its own bound.
    """

    def __init__(self, inner, seconds):
        self._inner, self._seconds = inner, seconds

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def run(self, command, *args, **kwargs):
        cmd = self._inner.quote(command, *args)
        if not cmd.lstrip().startswith("timeout "):
            cmd = f"timeout -k {KILL_AFTER} {max(1, int(self._seconds()))} sh -c {_quote(cmd)}"
        return self._inner.run(cmd, **kwargs)
