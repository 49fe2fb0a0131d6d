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
"""
import re
from dataclasses import dataclass, field

import yaml

from cutover.errors import CutoverError

HOST_SCHEMES = ("local://", "ssh://", "ansible://", "paramiko://", "docker://")
TARGET_KEYS = {"host", "driver", "endpoint", "runtime", "lxcfs", "image", "daemon", "options",
               "description"}
DAEMON_KEYS = {"stop", "kill", "start", "status"}


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

    def as_dict(self):
        return {"host": self.host, "driver": self.driver, "endpoint": self.endpoint,
                "runtime": self.runtime, "lxcfs": self.lxcfs, "image": self.image,
                "description": self.description}


def _str(where, key, value, required=True):
    if value is None:
        if required:
            raise CutoverError(f"{where}.{key}: required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise CutoverError(f"{where}.{key}: must be a non-empty string, got {value!r}")
    return value.strip()


def parse(data, source="targets"):
    """Validate parsed YAML into {name: Target}; every problem is one CutoverError line."""
    from cutover.drivers import DRIVERS
    if not isinstance(data, dict) or "targets" not in data:
        raise CutoverError(f"{source}: must be a mapping with a 'targets' key")
    unknown = set(data) - {"targets", "lab"}
    if unknown:
        raise CutoverError(f"{source}: unknown top-level key '{sorted(unknown)[0]}' (known: targets, lab)")
    raw = data["targets"]
    if not isinstance(raw, dict) or not raw:
        raise CutoverError(f"{source}: 'targets' must be a non-empty mapping of name -> target")
    out = {}
    for name, t in raw.items():
        where = f"{source}: targets.{name}"
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise CutoverError(f"{source}: target name {name!r} must be letters, digits, '.', '_' or '-'")
        if not isinstance(t, dict):
            raise CutoverError(f"{where}: must be a mapping")
        bad = set(t) - TARGET_KEYS
        if bad:
            raise CutoverError(f"{where}: unknown key '{sorted(bad)[0]}' (known: {', '.join(sorted(TARGET_KEYS))})")
        driver = _str(where, "driver", t.get("driver"))
        if driver not in DRIVERS:
            raise CutoverError(f"{where}.driver: unknown driver '{driver}' (known: {', '.join(sorted(DRIVERS))})")
        host = _str(where, "host", t.get("host", "local://"))
        if not host.startswith(HOST_SCHEMES):
            raise CutoverError(f"{where}.host: '{host}' is not a testinfra URL ({', '.join(HOST_SCHEMES)})")
        endpoint = _str(where, "endpoint", t.get("endpoint"))
        if not re.match(r"^(unix|tcp|ssh|https?)://", endpoint):
            raise CutoverError(f"{where}.endpoint: '{endpoint}' must be unix://, tcp:// or ssh://")
        daemon = t.get("daemon") or {}
        if not isinstance(daemon, dict):
            raise CutoverError(f"{where}.daemon: must be a mapping of stop/kill/start commands")
        bad = set(daemon) - DAEMON_KEYS
        if bad:
            raise CutoverError(f"{where}.daemon: unknown key '{sorted(bad)[0]}' (known: {', '.join(sorted(DAEMON_KEYS))})")
        for k, v in daemon.items():
            _str(f"{where}.daemon", k, v)
        options = t.get("options") or {}
        if not isinstance(options, dict):
            raise CutoverError(f"{where}.options: must be a mapping")
        out[name] = Target(
            name=name, driver=driver, endpoint=endpoint, host=host,
            runtime=_str(where, "runtime", t.get("runtime", "runc")),
            lxcfs=_str(where, "lxcfs", t.get("lxcfs"), required=False),
            image=_str(where, "image", t.get("image", "cutover/probe:1")),
            daemon=dict(daemon), options=dict(options),
            description=str(t.get("description", "")))
    return out


def load(path):
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise CutoverError(f"{path}: targets file not found (run 'cutover lab up' or pass --targets)") from None
    except OSError as e:
        raise CutoverError(f"{path}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "malformed"
        raise CutoverError(f"{path}: malformed YAML{at}: {problem}") from None
    return parse(data, source=path)


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
