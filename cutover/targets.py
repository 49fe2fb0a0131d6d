"""Targets: one runtime configuration on one host, described as data in a YAML file.

    targets:
      docker-lxcfs:
        host: local://                      # testinfra backend URL
        driver: docker                      # see cutover.drivers.DRIVERS
        endpoint: unix:///var/lib/cutover-lab/run/docker.sock
        runtime: runc                       # OCI runtime name the daemon knows
        lxcfs: /var/lib/cutover-lab/lxcfs   # lxcfs mount on the host, or omit/null for none
        image: cutover/probe:1              # probe image (built from busybox-static if missing)
        daemon:                             # shell commands run on the host
          stop: kill -TERM $(cat /var/lib/cutover-lab/run/docker.pid)
          kill: kill -KILL $(cat /var/lib/cutover-lab/run/docker.pid)
          start: /path/to/cutover lab start docker
        options: {}                         # driver-specific extras
        registry:                           # optional: a registry the images suite pushes to
          address: 127.0.0.1:5000           #   host:port as image references spell it
          storage: /var/lib/registry        #   optional: its storage dir on the controller
          pull_by: tag                      #   tag (default) or digest: how this site pulls
    ssh_config: fleet/ssh_config            # optional, top level: ssh -F for ssh:// hosts and endpoints
    ansible_inventory: fleet/inventory.yaml # optional, top level: for ansible:// hosts
"""
import os
import re
from dataclasses import dataclass, field

import yaml

from cutover.errors import CutoverError, show

HOST_SCHEMES = ("local://", "ssh://", "ansible://", "paramiko://", "docker://")
TARGET_KEYS = {"control", "host", "driver", "endpoint", "runtime", "lxcfs", "image", "daemon", "options",
               "description", "registry", "time_factor"}
# time_factor: a slow host (an emulated guest): the slack that timing checks allow beyond what
# they test (a stop's grace period, a container's age) is multiplied by it. Lower bounds are
# not: a stop that does not wait its grace period fails on any host.
MAX_TIME_FACTOR = 20
REGISTRY_KEYS = {"address", "storage", "pull_by"}
# upgrade: restart the daemon with a changed configuration (or version); containerd-kill:
# SIGKILL the runtime's containerd and return once it is back; lxcfs-restart: stop + start
# the lxcfs the target injects. All three are optional (the check is then 'unsupported').
# release-upgrade: stop the daemon and start the next release's on the same data (in place).
DAEMON_KEYS = {"stop", "kill", "start", "status", "upgrade", "containerd-kill", "lxcfs-restart",
               "release-upgrade"}


@dataclass(frozen=True)
class Target:
    name: str
    driver: str
    endpoint: str
    host: str = "local://"
    runtime: str = "runc"
    lxcfs: str = None
    image: str = "cutover/probe:1"
    daemon: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    description: str = ""
    control: bool = False     # a deliberately wrong configuration, kept to prove checks can fail
    time_factor: float = 1.0  # >1 on a slow (emulated) host: timing checks' slack is scaled
    registry: dict = field(default_factory=dict)   # {address, storage, pull_by}; {} for none
    # From the file's top level (fleets): how testinfra and the ssh:// endpoint reach the host.
    ssh_config: str = None
    ansible_inventory: str = None

    def host_options(self):
        """testinfra.get_host() keyword arguments for this target's host URL."""
        return {k: v for k, v in (("ssh_config", self.ssh_config),
                                  ("ansible_inventory", self.ansible_inventory)) if v}

    def as_dict(self):
        return {"host": self.host, "driver": self.driver, "endpoint": self.endpoint,
                "runtime": self.runtime, "lxcfs": self.lxcfs, "image": self.image,
                "description": self.description}


def _time_factor(where, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= MAX_TIME_FACTOR:
        raise CutoverError(f"{where}.time_factor: must be a number from 1 to {MAX_TIME_FACTOR}, got {show(value)}")
    return float(value)


def _str(where, key, value, required=True):
    if value is None:
        if required:
            raise CutoverError(f"{where}.{key}: required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise CutoverError(f"{where}.{key}: must be a non-empty string, got {show(value)}")
    return value.strip()


def _registry(where, reg):
    """The images suite's registry for a target: {address, storage, pull_by} or {}."""
    if reg is None:
        return {}
    where = f"{where}.registry"
    if not isinstance(reg, dict):
        raise CutoverError(f"{where}: must be a mapping with address (and optionally storage, pull_by)")
    bad = set(reg) - REGISTRY_KEYS
    if bad:
        raise CutoverError(f"{where}: unknown key '{_first(bad)}' (known: {', '.join(sorted(REGISTRY_KEYS))})")
    address = _str(where, "address", reg.get("address"))
    if not re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?", address):
        raise CutoverError(f"{where}.address: '{address}' must be host[:port] (no scheme, no path)")
    pull_by = _str(where, "pull_by", reg.get("pull_by", "tag"))
    if pull_by not in ("tag", "digest"):
        raise CutoverError(f"{where}.pull_by: must be 'tag' or 'digest', got '{pull_by}'")
    out = {"address": address, "pull_by": pull_by}
    storage = _str(where, "storage", reg.get("storage"), required=False)
    if storage:
        out["storage"] = storage
    return out


def _fleet_file(data, key, source, base_dir):
    """A top-level ssh_config / ansible_inventory path, relative to the targets file."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise CutoverError(f"{source}: {key}: must be a path, got {show(value)}")
    path = os.path.join(base_dir or os.getcwd(), os.path.expanduser(value.strip()))
    if not os.path.isfile(path):
        raise CutoverError(f"{source}: {key}: {path} not found")
    return os.path.abspath(path)


def _first(keys):
    """The first of some unknown keys, for the message (YAML keys need not be strings)."""
    return sorted(str(k) for k in keys)[0]


def _driver_options(driver):
    """The option names a driver declares (its OPTIONS), or None when it declares none.

    Read here so that a misspelt option is refused when the file is loaded, not at the first
    container create as one error per check.
    """
    import importlib
    from cutover.drivers import DRIVERS
    mod, cls = DRIVERS[driver].split(":")
    try:
        options = getattr(getattr(importlib.import_module(mod), cls), "OPTIONS", None)
    except ImportError as e:
        raise CutoverError(f"driver '{driver}' cannot be loaded: {e}") from None
    return None if options is None else set(options)


def _options(where, driver, options):
    if not isinstance(options, dict):
        raise CutoverError(f"{where}.options: must be a mapping")
    known = _driver_options(driver)
    bad = set(options) - known if known is not None else set()
    if bad:
        raise CutoverError(f"{where}.options: unknown option '{_first(bad)}' for driver '{driver}' "
                           f"(known: {', '.join(sorted(known))})")
    return dict(options)


def _bool(where, key, value):
    if not isinstance(value, bool):
        raise CutoverError(f"{where}.{key}: must be true or false, got {show(value)}")
    return value


def parse(data, source="targets", base_dir=None):
    """Validate parsed YAML into {name: Target}; every problem is one CutoverError line."""
    from cutover.drivers import DRIVERS
    if not isinstance(data, dict) or "targets" not in data:
        raise CutoverError(f"{source}: must be a mapping with a 'targets' key")
    unknown = set(data) - {"targets", "lab", "ssh_config", "ansible_inventory", "pairs"}
    if unknown:
        raise CutoverError(f"{source}: unknown top-level key '{_first(unknown)}' (known: targets, lab, ssh_config, ansible_inventory, pairs)")
    fleet = {k: _fleet_file(data, k, source, base_dir) for k in ("ssh_config", "ansible_inventory")}
    raw = data["targets"]
    if not isinstance(raw, dict) or not raw:
        raise CutoverError(f"{source}: 'targets' must be a non-empty mapping of name -> target")
    out = {}
    for name, t in raw.items():
        where = f"{source}: targets.{name}"
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise CutoverError(f"{source}: target name {show(name)} must be letters, digits, '.', '_' or '-'")
        if not isinstance(t, dict):
            raise CutoverError(f"{where}: must be a mapping")
        bad = set(t) - TARGET_KEYS
        if bad:
            raise CutoverError(f"{where}: unknown key '{_first(bad)}' (known: {', '.join(sorted(TARGET_KEYS))})")
        driver = _str(where, "driver", t.get("driver"))
        if driver not in DRIVERS:
            raise CutoverError(f"{where}.driver: unknown driver '{driver}' (known: {', '.join(sorted(DRIVERS))})")
        host = _str(where, "host", t.get("host", "local://"))
        if not host.startswith(HOST_SCHEMES):
            raise CutoverError(f"{where}.host: '{host}' is not a testinfra URL ({', '.join(HOST_SCHEMES)})")
        endpoint = _str(where, "endpoint", t.get("endpoint"))
        if not re.match(r"^(unix|tcp|ssh|https?|lxc)://", endpoint):
            raise CutoverError(f"{where}.endpoint: '{endpoint}' must be unix://, tcp://, ssh:// or lxc:///<lxcpath>")
        daemon = t.get("daemon") or {}
        if not isinstance(daemon, dict):
            raise CutoverError(f"{where}.daemon: must be a mapping of stop/kill/start commands")
        bad = set(daemon) - DAEMON_KEYS
        if bad:
            raise CutoverError(f"{where}.daemon: unknown key '{_first(bad)}' (known: {', '.join(sorted(DAEMON_KEYS))})")
        for k, v in daemon.items():
            _str(f"{where}.daemon", k, v)
        options = _options(where, driver, t.get("options") or {})
        out[name] = Target(
            name=name, driver=driver, endpoint=endpoint, host=host,
            runtime=_str(where, "runtime", t.get("runtime", "runc")),
            lxcfs=_str(where, "lxcfs", t.get("lxcfs"), required=False),
            image=_str(where, "image", t.get("image", "cutover/probe:1")),
            daemon=dict(daemon), options=options,
            description=str(t.get("description", "")), registry=_registry(where, t.get("registry")),
            control=_bool(where, "control", t.get("control", False)),
            time_factor=_time_factor(where, t.get("time_factor", 1)),
            **fleet)
    if data.get("pairs") is not None:
        # The coexistence suite's pairs, checked against the file's own targets now, so that a
        # bad pair is a one-line error before the run, not a usage error inside pytest.
        from cutover import coexist
        coexist.check_file_pairs(data["pairs"], out, source)
    return out


def load(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
        data = yaml.safe_load(_text(path, raw))
    except FileNotFoundError:
        raise CutoverError(f"{path}: targets file not found (run 'cutover lab up' or pass --targets)") from None
    except OSError as e:
        raise CutoverError(f"{path}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "malformed"
        raise CutoverError(f"{path}: malformed YAML{at}: {problem}") from None
    except RecursionError:
        raise CutoverError(f"{path}: malformed YAML: nested too deeply") from None
    try:
        return parse(data, source=path, base_dir=os.path.dirname(os.path.abspath(path)))
    except RecursionError:     # a deep structure the parser's messages or copies choke on
        raise CutoverError(f"{path}: a value is nested too deeply") from None


def _text(path, raw):
    """The file as text: UTF-8 (YAML's default), else a one-line error naming the first bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise CutoverError(f"{path}: not UTF-8 text: byte 0x{raw[e.start]:02x} at line {line} "
                           f"(offset {e.start})") from None


def select(targets, names):
    """Keep the named targets (comma-separated or list), erroring on unknown names."""
    if not names:
        return targets
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    for n in names:
        if n not in targets:
            raise CutoverError(f"--target: unknown target '{n}' (known: {', '.join(targets)})")
    return {n: targets[n] for n in names}
