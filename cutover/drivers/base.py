"""The driver interface: everything a suite may ask of a runtime, and nothing of pytest.

A driver works on one target. Host-side actions (daemon stop/kill/start, reading host files)
go through `host`, a testinfra Host for the target's host URL; runtime actions go through the
runtime's own API. Every operation is bounded by `timeout` seconds.
"""
from dataclasses import dataclass, field

from cutover.errors import CutoverError


class Unsupported(Exception):
    """The target cannot express what a check needs; reported as 'unsupported', never a pass."""


class RuntimeFailure(Exception):
    """The runtime refused or failed an operation (a harness-level error for the check)."""


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


class Driver:
    """Base class. Subclasses set `capabilities` and implement the methods below."""
    name = "base"
    # What the driver can express; checks needing more report 'unsupported' with the reason.
    capabilities = frozenset()

    def __init__(self, target, host=None, timeout=30):
        self.target = target
        self.host = host
        self.timeout = timeout

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

    # -- images -----------------------------------------------------------------------
    def image_exists(self, ref):
        raise NotImplementedError

    def build_image(self, context_tar, tag, labels=None, nocache=False):
        raise NotImplementedError

    def remove_image(self, ref):
        raise NotImplementedError

    def list_images(self):
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


def _quote(s):
    return "'" + s.replace("'", "'\"'\"'") + "'"
