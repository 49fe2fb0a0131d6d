"""Allocations: what T4 hands an instance (CPUs, memory, pids, disk quota).

Every visibility check runs under several allocations that differ in every dimension, so a
runtime that hard-codes a number cannot pass. A spec on the command line looks like
    "cpu1:cpuset=0,mem=256m;half:cpus=0.5,mem=512m;cpu2:cpuset=0-1,mem=1g"
"""
import math
import re
from dataclasses import dataclass, asdict

from cutover.errors import CutoverError

DEFAULT_SPEC = "cpuset1-256m:cpuset=0,mem=256m;cfs0.5-512m:cpus=0.5,mem=512m;cpuset2-1g:cpuset=0-1,mem=1g"

# Below this a busybox probe container cannot even start reliably (runc's own overhead).
MIN_MEMORY = 6 * 1024 * 1024
# A disk quota must hold the probe image (busybox-static, about 2 MiB) plus the file system's
# own overhead (ext4: inode tables, journal; see cutover/quota.py): below this a container
# root cannot even be created. The same floor as the disk quota suite's --quotas.
MIN_DISK = 32 * 1024 * 1024
# No host has more CPUs than this: a larger CPU number is a typo, refused before a range of
# that many CPUs is ever built.
MAX_CPU = 8191
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


@dataclass(frozen=True)
class Allocation:
    name: str
    memory: int                  # bytes
    cpuset: str = None           # e.g. "0" or "0-1"
    cpus: float = None           # CFS quota in CPUs, e.g. 0.5
    pids: int = None
    disk: int = None             # bytes

    @property
    def cpuset_list(self):
        return parse_cpuset(self.cpuset) if self.cpuset else None

    def expected_cpus(self, host_cpus):
        """How many CPUs a T4 instance with this allocation is told it has."""
        n = host_cpus
        if self.cpuset:
            n = min(n, len(self.cpuset_list))
        if self.cpus:
            n = min(n, max(1, math.ceil(self.cpus)))
        return n

    def describe(self):
        parts = []
        if self.cpuset:
            parts.append(f"cpuset {self.cpuset}")
        if self.cpus:
            parts.append(f"{self.cpus:g} CPU (CFS quota)")
        parts.append(f"{self.memory // 2**20} MiB")
        if self.pids:
            parts.append(f"{self.pids} pids")
        if self.disk:
            parts.append(f"{self.disk // 2**20} MiB disk")
        return ", ".join(parts)

    def as_dict(self):
        return {k: v for k, v in asdict(self).items() if v is not None}


def parse_size(text, field):
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([bkmg]?)(?:i?b)?\s*", str(text).lower())
    if not m:
        raise CutoverError(f"{field}: '{text}' is not a size (e.g. 256m, 1g)")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def parse_cpuset(text, field="cpuset"):
    cpus = set()
    for part in str(text).split(","):
        m = re.fullmatch(r"\s*([0-9]+)(?:-([0-9]+))?\s*", part)
        if not m:
            raise CutoverError(f"{field}: '{text}' is not a CPU list (e.g. 0 or 0-1,3)")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise CutoverError(f"{field}: '{text}' has a descending range")
        if hi > MAX_CPU:
            raise CutoverError(f"{field}: CPU {hi} in '{text}' is beyond any host (at most {MAX_CPU})")
        cpus.update(range(lo, hi + 1))
    return sorted(cpus)


def make(name, fields, host_cpus=None):
    """Build and validate one allocation from a dict of raw fields."""
    where = f"allocation '{name}'"
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name or ""):
        raise CutoverError(f"{where}: name must be letters, digits, '.', '_' or '-'")
    known = {"mem", "memory", "cpuset", "cpus", "pids", "disk"}
    for k in fields:
        if k not in known:
            raise CutoverError(f"{where}: unknown field '{k}' (known: {', '.join(sorted(known))})")
    mem = fields.get("mem", fields.get("memory"))
    if mem is None:
        raise CutoverError(f"{where}: 'mem' is required")
    memory = parse_size(mem, f"{where}.mem")
    if memory < MIN_MEMORY:
        raise CutoverError(f"{where}.mem: {mem} is below {MIN_MEMORY // 2**20} MiB, too little for a container to start")
    cpuset = fields.get("cpuset")
    if cpuset is not None:
        cpuset = str(cpuset)
        cpu_list = parse_cpuset(cpuset, f"{where}.cpuset")
        if host_cpus is not None and cpu_list[-1] >= host_cpus:
            raise CutoverError(f"{where}.cpuset: CPU {cpu_list[-1]} does not exist (host has {host_cpus} CPUs: 0-{host_cpus - 1})")
    cpus = fields.get("cpus")
    if cpus is not None:
        try:
            cpus = float(cpus)
        except (TypeError, ValueError):
            raise CutoverError(f"{where}.cpus: '{cpus}' is not a number") from None
        if not cpus > 0 or math.isinf(cpus):
            raise CutoverError(f"{where}.cpus: must be a positive number of CPUs, got {fields.get('cpus')}")
        if host_cpus is not None and cpus > host_cpus:
            raise CutoverError(f"{where}.cpus: {cpus:g} exceeds the host's {host_cpus} CPUs")
    pids = fields.get("pids")
    if pids is not None:
        if not re.fullmatch(r"[0-9]+", str(pids)) or int(pids) < 8:
            raise CutoverError(f"{where}.pids: must be an integer >= 8, got {pids}")
        pids = int(pids)
    disk = fields.get("disk")
    if disk is not None:
        disk = parse_size(disk, f"{where}.disk")
        if disk < MIN_DISK:
            raise CutoverError(f"{where}.disk: {fields['disk']} is below {MIN_DISK // 2**20} MiB: the image and "
                               "the file system's own overhead would not fit")
    return Allocation(name=name, memory=memory, cpuset=cpuset, cpus=cpus, pids=pids, disk=disk)


def parse_spec(spec, host_cpus=None):
    """Parse 'name:k=v,k=v;name:...' into a list of allocations."""
    out = []
    for chunk in [c for c in spec.split(";") if c.strip()]:
        if ":" not in chunk:
            raise CutoverError(f"--allocations: '{chunk.strip()}' must look like NAME:mem=256m,cpuset=0")
        name, body = chunk.split(":", 1)
        fields = {}
        for kv in [p for p in body.split(",") if p.strip()]:
            if "=" not in kv:
                # "cpuset=0-1,3" splits on the comma; glue bare CPU numbers back on.
                if fields.get("cpuset") is not None and re.fullmatch(r"\s*\d+(-\d+)?\s*", kv):
                    fields["cpuset"] += "," + kv.strip()
                    continue
                raise CutoverError(f"--allocations: '{kv.strip()}' in '{name.strip()}' must be key=value")
            k, v = kv.split("=", 1)
            fields[k.strip()] = v.strip()
        out.append(make(name.strip(), fields, host_cpus))
    if not out:
        raise CutoverError("--allocations: no allocation given")
    names = [a.name for a in out]
    if len(set(names)) != len(names):
        raise CutoverError(f"--allocations: duplicate allocation names in {names}")
    return out
